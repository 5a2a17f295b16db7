"""A checked sheet straight to store columns: record ids and JSON for a whole table at once.

Why: after the whole-column checks (``sheet_checks.check_columns``) every value is canonical,
yet building a ``MaterialRecord`` per row and serialising it with pydantic cost ten times the
store's own write (issue 21: 100,000 rows of ``dm-hpc store import``). Here the records are
never built. Each record's JSON is written from column tokens (numbers formatted by
pydantic-core, one call per column, so every digit is the one ``model_dump_json`` writes),
hashed to its id (``records.record_id_of``), and its numbers go to the shard's columns as
(row, name, value) triples (``shards.RecordColumns``). The store then holds exactly what
``Store.ingest`` stores for the records ``sheet_checks.check_table`` builds: same ids, same
bytes (``tests/data/test_sheet_columns.py`` ingests random sheets both ways and compares).

The content JSON follows ``MaterialRecord.content_json``: fields in model order, defaults and
Nones left out::

    {"material_class":"ceramic",                      (absent for the default, metal)
     "composition":{"fractions":{"Al":0.25,...}},     (alphabetical)
     "raw_materials":[{"name":..,"amount":{"value":..,"unit":..}}],   (by name; unit absent if dimensionless)
     "process":[{"name":..,"order":1,"parameters":{..}}],             (order absent when 0)
     "properties":[{"name":..,"value":..,"unit":..,"uncertainty":..}],  (by name)
     "sample_id":..,"provenance":{"source":..,"method":..}}

A sheet whose rows give a ``formula`` instead of composition cells is built record by record
(``sheet_checks.build_records``): formulas are parsed one at a time anyway. So is one whose rows
give a property's conditions or a step's equipment, settings or order (``CheckedColumns.details``,
most often an export of records made through the Python API): a JSON object per cell, rare enough
that one path for them is worth more than speed.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pydantic_core

from dm_hpc.data.records import MaterialClass, Provenance, provenance_json, record_id_of
from dm_hpc.data.sheet_checks import (
    PROVENANCE_COLUMNS,
    CheckedColumns,
    build_records,
    provenance_of,
    round_as_records,
)
from dm_hpc.data.shards import RecordColumns, Triples, columns_from_records, fixed_columns
from dm_hpc.data.vocabulary import term

__all__ = ["record_columns", "CHUNK_ROWS"]

#: Records encoded at a time: the strings of one chunk are freed before the next is built.
CHUNK_ROWS = 10_000


def _floats(values: np.ndarray) -> list[str]:
    """Each float as a record's JSON writes it (pydantic-core's formatting, one call)."""
    if not len(values):
        return []
    return pydantic_core.to_json(np.asarray(values, dtype=float).tolist()).decode()[1:-1].split(",")


def _text(value: str) -> str:
    """A JSON string as pydantic-core writes it (printable ASCII without quote or backslash
    is written as it is, the usual sample id)."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return pydantic_core.to_json(value).decode()


def _per_row(n: int, rows: np.ndarray, items: Sequence[str]) -> list[str]:
    """``items`` (ordered by ``rows``, ascending) joined with commas per row; '' for none."""
    bounds = np.searchsorted(rows, np.arange(n + 1)).tolist()
    return [",".join(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _empty_triples():
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object), np.zeros(0)


def record_columns(checked: CheckedColumns) -> tuple[RecordColumns, list[int]]:
    """The records of a checked table as store columns, with each record's sheet line.

    Raises ``SheetError`` for a row whose provenance or formula is refused (as ``check_table``).
    """
    at = np.flatnonzero(checked.keep & checked.has_value)
    lines = [checked.lines[i] for i in at.tolist()]
    meta = checked.meta
    no_comp = ~checked.composition.present[at].any(axis=1) if len(checked.composition.elements) else np.ones(len(at), bool)
    if checked.has_details() or any(meta["formula"][i] is not None for i in at[no_comp].tolist()):
        records = build_records(checked).records
        return columns_from_records(records, [r.record_id for r in records], [r.to_json() for r in records]), lines
    cache: dict[tuple, Provenance] = {}
    keys = list(zip(*(meta[k] for k in PROVENANCE_COLUMNS)))
    first: dict[tuple, int] = {}
    for i in at.tolist():
        first.setdefault(keys[i], i)
    for i in first.values():  # in row order: the first refused row is the one check_table names
        provenance_of(checked, i, cache)
    provs = [cache[keys[i]] for i in at.tolist()]
    prov_json = {id(p): provenance_json(p) for p in cache.values()}
    ids: list[str] = []
    jsons: list[bytes] = []
    parts: list[dict[str, Triples]] = []
    for start in range(0, len(at), CHUNK_ROWS):  # a chunk's strings at a time: bounded memory
        chunk = at[start:start + CHUNK_ROWS]
        cells = _encode(checked, chunk, provs[start:start + CHUNK_ROWS], prov_json, ids, jsons)
        parts.append({g: (rows + start, names, values) for g, (rows, names, values) in cells.items()})
    cells = {g: tuple(np.concatenate([p[g][k] for p in parts]) if parts else _empty_triples()[k] for k in range(3))
             for g in ("composition", "properties", "uncertainty", "process", "raw_materials")}
    fixed = fixed_columns([p.source.value for p in provs], [p.method for p in provs],
                          [p.campaign or "" for p in provs], [p.task_id or "" for p in provs],
                          [meta["sample_id"][i] or "" for i in at.tolist()], [p.timestamp.timestamp() for p in provs])
    return RecordColumns(ids, fixed, cells, jsons), lines


def _encode(checked: CheckedColumns, at: np.ndarray, provs: list[Provenance], prov_json: dict[int, tuple[str, str]],
            ids: list[str], jsons: list[bytes]) -> dict[str, Triples]:
    """Append the ids and JSON of the records at table rows ``at`` to ``ids`` and ``jsons``;
    returns their (row, name, value) triples (rows counted from 0 in ``at``)."""
    n = len(at)
    sample_ids = [checked.meta["sample_id"][i] for i in at.tolist()]
    comp, comp_cells = _composition(checked, at)
    props, prop_cells, unc_cells = _properties(checked, at)
    procs, proc_cells = _process(checked, at)
    raws, raw_cells = _raw_materials(checked, at)
    classes = [checked.classes[i] for i in at.tolist()]
    default_class = MaterialClass.metal.value
    for m in range(n):
        parts = []
        if classes[m] != default_class:
            parts.append(f'"material_class":{_text(MaterialClass(classes[m]).value)}')
        if comp[m]:
            parts.append(f'"composition":{{"fractions":{{{comp[m]}}}}}')
        if raws[m]:
            parts.append(f'"raw_materials":[{raws[m]}]')
        if procs[m]:
            parts.append(f'"process":[{procs[m]}]')
        parts.append(f'"properties":[{props[m]}]')
        if sample_ids[m] is not None:
            parts.append(f'"sample_id":{_text(sample_ids[m])}')
        content_prov, circumstances = prov_json[id(provs[m])]
        parts.append(f'"provenance":{content_prov}')
        content = "{" + ",".join(parts) + "}"
        ids.append(record_id_of(content))
        jsons.append(f'{{"content":{content},"circumstances":{circumstances}}}'.encode())
    return {"composition": comp_cells, "properties": prop_cells, "uncertainty": unc_cells,
            "process": proc_cells, "raw_materials": raw_cells}


def _composition(checked: CheckedColumns, at: np.ndarray):
    """Per record: the ``fractions`` object's members; and the composition triples."""
    table = checked.composition
    if not table.elements:
        return [""] * len(at), _empty_triples()
    present = table.present[at]
    r, j = np.nonzero(present)  # row-major: by record, then alphabetically
    values = table.fractions[at][r, j]
    keys = [f"{_text(el)}:" for el in table.elements]
    items = [keys[k] + tok for k, tok in zip(j.tolist(), _floats(values))]
    names = np.array(table.elements, dtype=object)
    return _per_row(len(at), r, items), (r, names[j], values)


def _properties(checked: CheckedColumns, at: np.ndarray):
    """Per record: the ``properties`` list's members (by name); property and uncertainty triples."""
    cols = sorted(checked.of_kind("property"), key=lambda c: c.name)
    n = len(at)
    value = np.column_stack([checked.canonical[c.header][at] for c in cols])
    unc = np.column_stack([checked.uncertainty[c.name][at] if c.name in checked.uncertainty else np.full(n, np.nan)
                           for c in cols])
    present = ~np.isnan(value)
    r, j = np.nonzero(present)
    values = np.array(round_as_records(value[r, j]))
    has_unc = ~np.isnan(unc[r, j])
    unc_values = np.array(round_as_records(unc[r, j][has_unc]))
    unc_tokens = iter(_floats(unc_values))
    heads = [f'{{"name":{_text(c.name)},"value":' for c in cols]
    units = [f',"unit":{_text(term(c.name).unit)}' for c in cols]
    items = [heads[k] + tok + units[k] + (f',"uncertainty":{next(unc_tokens)}}}' if u else "}")
             for k, tok, u in zip(j.tolist(), _floats(values), has_unc.tolist())]
    names = np.array([c.name for c in cols], dtype=object)
    return (_per_row(n, r, items), (r, names[j], values),
            (r[has_unc], names[j[has_unc]], unc_values))


def _process(checked: CheckedColumns, at: np.ndarray):
    """Per record: the ``process`` list's members (steps in order of first column, numbered
    among the steps the row gives; parameters by name); process triples."""
    cols = checked.of_kind("process")
    n = len(at)
    if not cols:
        return [""] * n, _empty_triples()
    steps: list[tuple[str, int]] = []  # (name, occurrence): a second anneal is a step of its own
    for c in cols:
        if (c.step, c.occurrence) not in steps:
            steps.append((c.step, c.occurrence))
    per_step = [sorted((c for c in cols if (c.step, c.occurrence) == s), key=lambda c: c.name) for s in steps]
    items: list[list[str]] = [[] for _ in range(n)]
    order = np.zeros(n, dtype=np.int64)
    cells = []
    for (step, _), scols in zip(steps, per_step):
        value = np.column_stack([checked.canonical[c.header][at] for c in scols])
        present = ~np.isnan(value)
        r, j = np.nonzero(present)
        values = np.array(round_as_records(value[r, j]))
        keys = [f"{_text(c.name)}:" for c in scols]
        params = _per_row(n, r, [keys[k] + tok for k, tok in zip(j.tolist(), _floats(values))])
        head = f'{{"name":{_text(step)}'
        for m in np.flatnonzero(present.any(axis=1)).tolist():
            k = int(order[m])
            items[m].append(head + (f',"order":{k}' if k else "") + f',"parameters":{{{params[m]}}}}}')
        order += present.any(axis=1)
        names = np.array([f"{step}:{c.name}" for c in scols], dtype=object)
        cells.append((r, names[j], values))
    rows = np.concatenate([c[0] for c in cells])
    return [",".join(x) for x in items], (rows, np.concatenate([c[1] for c in cells]),
                                          np.concatenate([c[2] for c in cells]))


def _raw_materials(checked: CheckedColumns, at: np.ndarray):
    """Per record: the ``raw_materials`` list's members (by name, those of one name by occurrence;
    amounts > 0; a row fills one unit's column of each, checked); raw triples."""
    cols = sorted(checked.of_kind("raw"), key=lambda c: (c.name, c.occurrence))
    n = len(at)
    if not cols:
        return [""] * n, _empty_triples()
    value = np.column_stack([checked.parsed[c.header].values[at] for c in cols])
    present = np.nan_to_num(value, nan=0.0) > 0
    r, j = np.nonzero(present)
    values = value[r, j]
    heads = [f'{{"name":{_text(c.name)},"amount":{{"value":' for c in cols]
    tails = ["}}" if c.unit == "dimensionless" else f',"unit":{_text(c.unit)}}}}}' for c in cols]
    items = [heads[k] + tok + tails[k] for k, tok in zip(j.tolist(), _floats(values))]
    names = np.array([f"{c.name} [{c.unit}]" for c in cols], dtype=object)
    return _per_row(n, r, items), (r, names[j], values)
