"""Lab sheets (CSV or XLSX) in the standard template, read all-or-nothing.

Header grammar (one column each; units in square brackets)::

    sample_id                                   the specimen or suggestion id
    composition:<El> [at_frac|at%|wt_frac|wt%]  amount of an element; "bal" for the balance element
    raw:<name> [unit]                           amount of a raw material (e.g. a polymer, a dopant)
    process:<step>:<parameter> [unit]           a process parameter (vocabulary term)
    property:<name> [unit]                      a measured or computed value (vocabulary term)
    uncertainty:<name> [unit]                   its standard uncertainty
    predicted:<name> [unit], predicted_std:<name> [unit]   written on suggestion sheets, ignored on import
    formula                                     a formula instead of composition columns
    material_class, source, method, contributor, institution, notes

A sheet with any bad row stores nothing: ``read_sheet`` raises ``SheetError`` listing every bad
row with its line number (the header is line 1) and the reason. Bad values include a composition
that does not sum to its basis's total (1 or 100, within ``COMPOSITION_TOLERANCE``; a "bal"
element takes what the others leave) and a value outside the vocabulary's physical range.
A row whose measurement cells are all empty was not made: ``read_sheet_contents`` lists it
apart (a lab sheet records it as such), it is no value. Columns outside the template grammar
are ignored with a warning; a template column naming an unknown term is an error.

Files that do not follow the template (public data sets) are read through a column map
(YAML, see ``configs/sheets/``) that renames their columns into the template.
"""
from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dm_hpc.data.column_map import ColumnMap, apply_column_map, load_column_map
from dm_hpc.data.composition import Basis, Composition, CompositionError
from dm_hpc.data.records import MaterialRecord, Source
from dm_hpc.data.sheetfiles import SheetError, describe_error, load_table, parse_number, write_frame
from dm_hpc.data.sheetfiles import blank as _blank
from dm_hpc.data.vocabulary import canonical_unit

__all__ = ["SheetError", "SheetContents", "SheetDefaults", "read_sheet", "read_sheet_contents", "write_sheet",
           "write_table", "records_to_table", "parse_header", "load_column_map", "apply_column_map", "ColumnMap"]

_HEADER = re.compile(r"^\s*(?P<key>[^\[\]]+?)\s*(?:\[(?P<unit>[^\]]*)\])?\s*$")
_BASIS_UNITS = {
    "at_frac": Basis.atomic_fraction, "at. frac": Basis.atomic_fraction, "": Basis.atomic_fraction,
    "at%": Basis.atomic_percent, "at_percent": Basis.atomic_percent,
    "wt_frac": Basis.weight_fraction, "wt%": Basis.weight_percent, "wt_percent": Basis.weight_percent,
}
_BASIS_LABEL = {Basis.atomic_fraction: "at_frac", Basis.atomic_percent: "at%",
                Basis.weight_fraction: "wt_frac", Basis.weight_percent: "wt%"}
META = ("sample_id", "formula", "material_class", "source", "method", "contributor", "institution", "notes")
_TEMPLATE_PREFIXES = ("composition:", "raw:", "process:", "property:", "uncertainty:", "predicted:", "predicted_std:")
#: A composition without a balance element must sum to 1 (fractions) or 100 (percent) within
#: this share: sheets round (0.333 x 3), but 1.47 is a typing error, not something to rescale.
COMPOSITION_TOLERANCE = 0.01


@dataclass(frozen=True)
class Column:
    """A parsed template header."""

    header: str
    kind: str  # composition | process | property | uncertainty | predicted | predicted_std | meta
    name: str
    unit: str | None = None
    step: str | None = None


def is_template_header(header: str) -> bool:
    """Whether ``header`` claims to be a template column (then it must parse)."""
    key = str(header).strip().lower()
    return key.startswith(_TEMPLATE_PREFIXES) or key.split("[")[0].strip() in META


def parse_header(header: str) -> Column:
    """Parse one template header; raises ValueError naming it when it does not fit."""
    m = _HEADER.match(str(header))
    if not m:
        raise ValueError(f"column {header!r}: not a template header")
    key, unit = m.group("key"), m.group("unit")
    parts = key.split(":")
    if len(parts) == 1 and key in META:
        return Column(header, "meta", key)
    if parts[0] == "composition" and len(parts) == 2:
        return Column(header, "composition", parts[1], unit or "")
    if parts[0] == "raw" and len(parts) == 2 and parts[1].strip():
        return Column(header, "raw", parts[1].strip(), unit or "dimensionless")
    if parts[0] == "process" and len(parts) == 3:
        canonical_unit(parts[2], kind="process_parameter")
        return Column(header, "process", parts[2], unit, step=parts[1])
    if parts[0] in ("property", "uncertainty", "predicted", "predicted_std") and len(parts) == 2:
        canonical_unit(parts[1])
        return Column(header, parts[0], parts[1], unit)
    raise ValueError(
        f"column {header!r}: expected sample_id, composition:<El> [basis], process:<step>:<param> [unit], "
        f"property:<name> [unit], uncertainty:<name> [unit] or one of {', '.join(META)}"
    )


@dataclass
class SheetDefaults:
    """Values for columns a sheet leaves out (e.g. the lab's name as ``method``)."""

    source: Source = Source.experimental
    method: str = "lab"
    campaign: str | None = None
    contributor: str | None = None
    institution: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SheetContents:
    """A sheet read and validated: its records with their line numbers, the rows whose
    measurement cells were empty (``not_made``: line, sample_id), and warnings to show."""

    records: list[MaterialRecord]
    lines: list[int]
    not_made: list[tuple[int, str | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_sheet_contents(
    path: str | Path,
    defaults: SheetDefaults | None = None,
    column_map: Mapping[str, Any] | str | Path | None = None,
    known_ids: Collection[str] | None = None,
    sheet: str | None = None,
) -> SheetContents:
    """Read and validate a template sheet (CSV or XLSX; ``sheet`` names a workbook's sheet).

    Raises ``SheetError`` listing every bad row. ``known_ids``: when given, every ``sample_id``
    must be one of them (a lab sheet answers suggestions); unknown and duplicate ids are errors.
    """
    cmap = load_column_map(column_map) if column_map is not None else None
    loaded = load_table(path, sheet)
    table = loaded.frame
    if cmap is not None:
        table = apply_column_map(table, cmap, str(column_map) if not isinstance(column_map, Mapping) else "column map")
    return records_from_table(table, str(path), defaults or SheetDefaults(), known_ids, loaded.decimal)


def read_sheet(
    path: str | Path,
    defaults: SheetDefaults | None = None,
    column_map: Mapping[str, Any] | str | Path | None = None,
    known_ids: Collection[str] | None = None,
    sheet: str | None = None,
) -> list[MaterialRecord]:
    """The records of a sheet (see ``read_sheet_contents``; rows not made are left out)."""
    return read_sheet_contents(path, defaults, column_map, known_ids, sheet).records


@dataclass(frozen=True)
class _NotMade:
    sample_id: str | None


def records_from_table(
    table: pd.DataFrame, origin: str, defaults: SheetDefaults, known_ids: Collection[str] | None = None,
    decimal: str = ".",
) -> SheetContents:
    """Validate a template table row by row (see ``read_sheet_contents``).

    Lines are the table's index when it is named ``line`` (``load_table`` sets it), else the
    row's position + 2 (the header is line 1).
    """
    problems: list[tuple[int, str]] = []
    warnings: list[str] = []
    columns: list[Column] = []
    for header in table.columns:
        if not is_template_header(header):
            warnings.append(f"column {header!r} is not a template column; ignored")
            continue
        try:
            columns.append(parse_header(header))
        except (ValueError, KeyError) as exc:
            problems.append((1, str(exc)))
    bases = {_BASIS_UNITS.get(c.unit or "", None) for c in columns if c.kind == "composition"}
    if None in bases:
        bad = [c.header for c in columns if c.kind == "composition" and (c.unit or "") not in _BASIS_UNITS]
        problems.append((1, f"composition unit of {bad} must be one of {sorted(k for k in _BASIS_UNITS if k)}"))
    elif len(bases) > 1:
        problems.append((1, "composition columns mix bases; use one of at_frac, at%, wt_frac, wt% for all"))
    if not any(c.kind in ("composition", "raw") for c in columns) and not any(c.name == "formula" for c in columns):
        problems.append((1, "no composition:<El> columns, no raw:<name> columns and no formula column"))
    if not any(c.kind == "property" for c in columns):
        problems.append((1, "no property:<name> [unit] column"))
    if problems:
        raise SheetError(origin, problems)
    basis = next(iter(bases)) if bases else Basis.atomic_fraction

    lines = [int(i) for i in table.index] if table.index.name == "line" else list(range(2, len(table) + 2))
    records: list[MaterialRecord] = []
    record_lines: list[int] = []
    not_made: list[tuple[int, str | None]] = []
    seen_ids: dict[str, int] = {}
    for line, (_, row) in zip(lines, table.iterrows()):
        try:
            record = _row_to_record(row, columns, basis, defaults, decimal)
        except (ValueError, KeyError, TypeError, CompositionError) as exc:
            problems.append((line, describe_error(exc)))
            continue
        if record is None:  # a wholly empty row
            continue
        sid = record.sample_id
        if sid is not None:
            if sid in seen_ids:
                problems.append((line, f"duplicate sample_id {sid!r} (first on line {seen_ids[sid]})"))
                continue
            seen_ids[sid] = line
            if known_ids is not None and sid not in known_ids:
                problems.append((line, f"unknown sample_id {sid!r}: not a suggested experiment"))
                continue
        elif known_ids is not None:
            problems.append((line, "sample_id is empty; every row must answer a suggestion id"))
            continue
        if isinstance(record, _NotMade):
            not_made.append((line, sid))
            if known_ids is None:
                warnings.append(f"line {line}: no measurement in this row (not made); skipped")
            continue
        records.append(record)
        record_lines.append(line)
    if problems:
        raise SheetError(origin, problems)
    return SheetContents(records, record_lines, not_made, warnings)


def _cell_number(c: Column, raw: Any, decimal: str) -> float:
    try:
        return parse_number(raw, decimal)
    except (ValueError, TypeError):
        raise ValueError(f"{c.header}: not a number: {raw!r}") from None


def _composition(values: dict[str, Any], columns: list[Column], basis: Basis, decimal: str) -> Composition | None:
    """The elemental composition of a row (None when its composition cells are empty)."""
    amounts: dict[str, Any] = {}
    for c in columns:
        raw = values[c.header]
        if c.kind != "composition" or _blank(raw):
            continue
        if isinstance(raw, str) and raw.strip().lower().rstrip(".") in ("bal", "balance"):
            amounts[c.name] = "bal"
        else:
            amounts[c.name] = _cell_number(c, raw, decimal)
    if not amounts:
        return None
    composition = Composition.from_amounts(amounts, basis)  # unknown elements, negative amounts
    if "bal" not in amounts.values():
        total = sum(amounts.values())
        # (1 + 1e-9): a sum exactly at the tolerance, e.g. 1.01, is inside despite float rounding
        if not abs(total - basis.scale) <= COMPOSITION_TOLERANCE * basis.scale * (1 + 1e-9):
            raise ValueError(
                f"composition sums to {total:.6g} {_BASIS_LABEL[basis]}, not {basis.scale:g} "
                f"(tolerance {COMPOSITION_TOLERANCE * basis.scale:g}); correct the amounts or write "
                "'bal' for the balance element"
            )
    return composition


def _raw_materials(values: dict[str, Any], columns: list[Column], decimal: str) -> list[dict[str, Any]]:
    out = []
    for c in columns:
        if c.kind == "raw" and not _blank(values[c.header]):
            amount = _cell_number(c, values[c.header], decimal)
            if amount < 0:
                raise ValueError(f"{c.header}: negative amount {amount:g}")
            if amount == 0:
                continue  # not used in this sample
            out.append({"name": c.name, "amount": {"value": amount, "unit": c.unit}})
    return out


def _measurements(values: dict[str, Any], columns: list[Column], decimal: str) -> tuple[list[dict], dict]:
    """Property values (with their uncertainties) and process steps of a row."""
    properties: list[dict[str, Any]] = []
    uncertainties: dict[str, tuple[float, str]] = {}
    steps: dict[str | None, dict[str, Any]] = {}
    for c in columns:
        raw = values[c.header]
        if c.kind not in ("property", "uncertainty", "process") or _blank(raw):
            continue
        number = _cell_number(c, raw, decimal)
        if c.unit is None:
            raise ValueError(f"{c.header}: header has no [unit]")
        if c.kind == "property":
            properties.append({"name": c.name, "value": number, "unit": c.unit})
        elif c.kind == "uncertainty":
            uncertainties[c.name] = (number, c.unit)
        else:
            steps.setdefault(c.step, {})[c.name] = {"value": number, "unit": c.unit}
    for prop in properties:
        if prop["name"] in uncertainties:
            number, unit = uncertainties.pop(prop["name"])
            if unit != prop["unit"]:
                raise ValueError(f"uncertainty:{prop['name']}: unit {unit!r} differs from the value's {prop['unit']!r}")
            prop["uncertainty"] = number
    if uncertainties:
        raise ValueError(f"uncertainty without a value: {', '.join(uncertainties)}")
    return properties, steps


def _row_to_record(
    row: pd.Series, columns: list[Column], basis: Basis, defaults: SheetDefaults, decimal: str = "."
) -> MaterialRecord | _NotMade | None:
    values = {c.header: row[c.header] for c in columns}
    if all(_blank(v) for v in values.values()):
        return None
    # spaces around a cell are typing noise; a tab or CR that begins a text is content (it was
    # written, neutralised, by an export and must read back unchanged)
    meta = {c.name: str(values[c.header]).strip(" ") for c in columns if c.kind == "meta" and not _blank(values[c.header])}
    # the parts of a row are checked apart, so a row with two bad cells reports both
    errors: list[str] = []

    def attempt(part: Any, *args: Any) -> Any:
        try:
            return part(*args)
        except (ValueError, KeyError, TypeError, CompositionError) as exc:
            errors.append(describe_error(exc))
            return None

    composition = attempt(_composition, values, columns, basis, decimal)
    raw_materials = attempt(_raw_materials, values, columns, decimal) or []
    measured = attempt(_measurements, values, columns, decimal)
    if errors:
        raise ValueError("; ".join(errors))
    properties, steps = measured
    if composition is None and "formula" in meta:
        composition = Composition(meta["formula"])
    if composition is None and not raw_materials:
        raise ValueError("no composition given (all composition cells empty)")
    if not properties:
        return _NotMade(meta.get("sample_id"))
    provenance = {
        "source": meta.get("source", defaults.source.value),
        "method": meta.get("method", defaults.method),
        "campaign": defaults.campaign,
        "contributor": meta.get("contributor", defaults.contributor),
        "institution": meta.get("institution", defaults.institution),
        "extra": {**defaults.extra, **({"notes": meta["notes"]} if "notes" in meta else {})},
    }
    return MaterialRecord.model_validate({
        "material_class": meta.get("material_class", "metal"),
        "composition": composition,
        "raw_materials": raw_materials,
        "process": [{"name": step, "order": i, "parameters": params} for i, (step, params) in enumerate(steps.items())],
        "properties": properties,
        "sample_id": meta.get("sample_id"),
        "provenance": provenance,
    })


def records_to_table(records: Sequence[MaterialRecord], basis: Basis | str = Basis.atomic_fraction) -> pd.DataFrame:
    """Records as a template table (canonical units), the inverse of ``records_from_table``."""
    basis = Basis(basis)
    rows = []
    for rec in records:
        row: dict[str, Any] = {
            "sample_id": rec.sample_id or "",
            "material_class": rec.material_class.value,
            "source": rec.provenance.source.value,
            "method": rec.provenance.method,
        }
        if rec.provenance.contributor:
            row["contributor"] = rec.provenance.contributor
        if rec.provenance.institution:
            row["institution"] = rec.provenance.institution
        if rec.composition is not None:
            for el, amount in rec.composition.amounts(basis).items():
                row[f"composition:{el} [{_BASIS_LABEL[basis]}]"] = amount
        for rm in rec.raw_materials:
            if rm.amount is not None:
                row[f"raw:{rm.name} [{rm.amount.unit}]"] = rm.amount.value
        for step in rec.process:
            for key, val in step.parameters.items():
                row[f"process:{step.name}:{key} [{canonical_unit(key, kind='process_parameter')}]"] = val
        for p in rec.properties:
            row[f"property:{p.name} [{p.unit}]"] = p.value
            if p.uncertainty is not None:
                row[f"uncertainty:{p.name} [{p.unit}]"] = p.uncertainty
        rows.append(row)
    table = pd.DataFrame(rows)
    comp = sorted(c for c in table.columns if c.startswith(("composition:", "raw:")))
    rest = [c for c in table.columns if c not in comp and c not in META]
    meta = [c for c in META if c in table.columns]
    return table[meta + comp + rest]


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a template table as CSV or XLSX (by suffix), atomically; no cell is a formula
    (see ``sheetfiles``: text that could start one is neutralised)."""
    return write_frame(table, path)


def write_sheet(records: Sequence[MaterialRecord], path: str | Path, basis: Basis | str = Basis.atomic_fraction) -> Path:
    """Export records to a template sheet."""
    return write_table(records_to_table(records, basis), path)
