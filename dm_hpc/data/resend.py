"""Re-sent measurements: a sheet value for a sample and property that the store already holds.

Sending the same sheet twice is harmless: the same content has the same record id, so nothing
new is stored. A row that carries a value for a property the store already holds for that
sample (same ``sample_id``, campaign and source) with another value is a correction or a mistake,
and the engine cannot tell which: it is refused, with the line, both values and what to do, unless
the user says ``replace``. A row that repeats every stored value of the sample unchanged and adds
others (a property measured later, the sheet sent again with it filled in) is a completion: it
replaces the record it extends without ``replace``. Then the new record names the records it corrects in
``provenance.supersedes``; they stay in the store (provenance is never erased) and queries,
training and exports show only the current record unless asked (``superseded=True``).

Unchanged, for a value typed in another unit than the store's (``retyped_as_stored``): the stored
value, said in that unit, rounds to the number typed at its last typed digit (lies within half a
unit of it: 510 HV says a stored 5.0 GPa, 509.858 HV; 193.7 HV a stored 1900 MPa, 193.746 HV). A
conversion never gives the stored number to the last bit, and the lab typed only so many digits;
more than half a digit away is a change (``at_digits_typed``). An uncertainty typed in another unit
is judged alike, said in that unit as a difference (scale, no offset). In the store's own unit a
number is compared as stored (the lab can type, and exports write, the stored number itself). Every
door reads re-sent numbers by this one rule: a lab sheet (``dm-hpc ingest``, the Python API, the
portal) through ``campaign.lab``, a table through ``dm-hpc store import`` (``retyped_columns``).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dm_hpc.data.records import STORED, MaterialRecord
from dm_hpc.data.shards import RecordColumns
from dm_hpc.data.sheetfiles import SheetError, blank, typed_number
from dm_hpc.data.sheets import SheetColumns, parse_header
from dm_hpc.data.store import RETRACTION_METHOD, Store
from dm_hpc.data.verdicts import Decision, Verdict, converted_cell
from dm_hpc.data.vocabulary import canonical_unit, from_canonical, property_names, same_unit


def _stored_for(store: Store, sample_ids: set[str], table: pd.DataFrame | None = None
                ) -> tuple[pd.DataFrame, set[str]]:
    """Every stored record (current or superseded) of these samples, and the superseded ids.
    ``table``: the store's ``to_dataframe(superseded=True)`` where the caller has read it (one read
    for every step of an import: on a large store each read is the whole table)."""
    df = store.to_dataframe(superseded=True) if table is None else table
    if df.empty:
        return df, set()
    return df[df["sample_id"].isin(sample_ids)], store.superseded_ids()


def completes(store: Store, rec: MaterialRecord, old_ids: Sequence[str]) -> bool:
    """Whether ``rec`` only adds properties to the one current record ``old_ids`` names: the same
    composition, raw materials and process, every stored property with the same value, unit and
    uncertainty, and at least one more property (a value measured since). Anything else (another
    composition, another uncertainty, two current records of the sample) is a change the user must
    confirm with ``replace``."""
    if len(old_ids) != 1:
        return False
    try:
        prev = store.get(old_ids[0])
    except KeyError:
        return False
    if (prev.composition != rec.composition or prev.raw_materials != rec.raw_materials
            or prev.process != rec.process or len(rec.properties) <= len(prev.properties)):
        return False
    for p in prev.properties:
        q = rec.get_property(p.name)
        if (q is None or q.unit != p.unit or q.uncertainty != p.uncertainty or q.conditions != p.conditions
                or not np.isclose(q.value, p.value, rtol=1e-9, atol=0.0)):
            return False
    return True


def at_digits_typed(shown: float, cell) -> tuple[float, float] | None:
    """The typed-precision rule (the module docstring): the cell as typed, ``(value, step)``
    (``sheetfiles.typed_number``), when ``shown`` (a stored number said in the unit the cell was
    typed in) rounds to it at its last typed digit, i.e. lies within half a ``step`` of it; else None."""
    typed = typed_number(cell)
    if typed is None:
        return None
    value, step = typed
    # the 1e-9: conversion noise at an exact half
    return typed if abs(shown - value) <= step / 2 + 1e-9 * abs(shown) else None


def retyped_as_stored(records: Sequence[MaterialRecord], lines: Sequence[int], verdicts: Sequence[Verdict],
                      stored: Mapping[str, MaterialRecord]) -> tuple[list[MaterialRecord], list[str]]:
    """``records`` (their sheet ``lines``) with each value or uncertainty typed in another unit
    than the store's that is its sample's stored one at the digits typed (``at_digits_typed``)
    given the stored one itself, so the row reads as the record it repeats (same id: nothing new
    is stored) or completes; and one line per number so taken, for the reply. ``verdicts``: the
    reading's (its converted cells, ``verdicts.converted_cell``, give each number as typed and
    its unit); ``stored``: sample id -> the sample's current record."""
    at = {line: i for i, line in enumerate(lines)}
    out, said = list(records), []
    for v in verdicts:
        i = at.get(v.line)
        if (v.decision is not Decision.accepted or not v.converted_from or not v.column or i is None
                or v.sample_id not in stored):
            continue
        head, unit = parse_header(v.column), v.converted_from
        name, field = head.name, "uncertainty" if head.kind == "uncertainty" else "value"
        old, new = stored[v.sample_id].get_property(name), out[i].get_property(name)
        if old is None or new is None or getattr(old, field) is None or getattr(new, field) is None:
            continue
        held = getattr(old, field)
        if held == getattr(new, field):
            continue
        show = from_canonical(name, unit)
        # an uncertainty is a difference: said in another unit by its scale, no offset (as the sheet reads it)
        shown = (float(show(held)) if field == "value"
                 else abs(float(show(old.value + held)) - float(show(old.value))))
        typed = at_digits_typed(shown, v.value)
        if typed is None:
            continue
        out[i] = _with(out[i], name, field, held)
        value, step = typed
        digits = max(0, -round(math.log10(step)))
        what = name if field == "value" else f"uncertainty of {name}"
        said.append(f"sample {v.sample_id!r}: {what} {value:.{digits}f} {unit} is the stored "
                    f"{shown:.{digits + 1}f} {unit} ({held:g} {canonical_unit(name)}) at the digits "
                    f"typed ({value:.{digits}f} +- {step / 2:g} {unit}): unchanged")
    return out, said


def retyped_columns(store: Store | None, sheet: SheetColumns, table: pd.DataFrame | None = None
                    ) -> tuple[RecordColumns, list[str]]:
    """``retyped_as_stored`` for a sheet read in column form (``dm-hpc store import``): the rows
    of samples the store holds are read back as records (from their JSON, exactly), their cells
    typed in another unit (``SheetColumns.typed``) judged against the sample's one current record
    of the row's campaign and source, and the rows so taken replaced. Returns the columns and the
    lines said. ``table``: as ``_stored_for``'s."""
    columns, typed = sheet.columns, sheet.typed
    if store is None or typed is None or len(store) == 0:
        return columns, []
    stored, superseded = _stored_for(store, set(_sample_ids(columns)) - {""}, table)
    again = _rows_of(columns, stored)
    if not again.size:
        return columns, []
    current = _current(stored, superseded)
    records = [MaterialRecord.from_json(columns.json[i].decode()) for i in again.tolist()]
    lines = [sheet.lines[i] for i in again.tolist()]
    held: dict[str, MaterialRecord] = {}
    for rec in records:
        ids = _same_sample(current, rec)["record_id"]
        if len(ids) == 1:  # several current records of a sample: resolve_resends refuses the row
            held[rec.sample_id] = store.get(ids.iloc[0])
    cells = [converted_cell(line, rec.sample_id, header, typed.at[line, header], parse_header(header).unit)
             for line, rec in zip(lines, records) for header in typed.columns if not blank(typed.at[line, header])]
    taken, said = retyped_as_stored(records, lines, cells, held)
    changed = [k for k, (a, b) in enumerate(zip(records, taken)) if a is not b]
    return columns.with_records(again[changed], [taken[k] for k in changed]), said


def _with(rec: MaterialRecord, name: str, field: str, number: float) -> MaterialRecord:
    """``rec`` with the ``field`` (value or uncertainty) of property ``name`` at ``number``
    (canonical), validated anew: its id is its content's. As stored: the number is the stored
    record's and the rest the sheet's, each checked where it came in (a range tightened since the
    value was stored must not refuse the lab's re-sent sheet)."""
    props = [p.model_copy(update={field: number}) if p.name == name else p for p in rec.properties]
    return MaterialRecord.model_validate({**{k: getattr(rec, k) for k in MaterialRecord.model_fields},
                                          "properties": props}, context=STORED)


def _two_values(name: str, stored: float, sent: float, unit: str | None) -> tuple[str, str]:
    """A stored and a re-sent value of ``name`` (canonical) as the refusal says them: in ``unit``,
    the sheet column's (None: canonical), with the significant digits that tell them apart (six
    at least), each with its unit. A value typed in another unit than it was stored in does not
    match to the last digit: the lab must see both numbers that differ ('stored as 1.9 GPa, this
    sheet says 1.9' did not)."""
    show = from_canonical(name, unit)
    a, b = float(show(stored)), float(show(sent))
    digits = next((d for d in range(6, 18) if f"{a:.{d}g}" != f"{b:.{d}g}"), 17)
    unit = unit or canonical_unit(name)
    return f"{a:.{digits}g} {unit}", f"{b:.{digits}g} {unit}"


def resolve_resends(
    store: Store | None, records: Sequence[MaterialRecord], lines: Sequence[int], origin: str, replace: bool = False,
    units: Mapping[str, str] | None = None, table: pd.DataFrame | None = None,
) -> list[MaterialRecord]:
    """The records to ingest: unchanged, or (``replace``) naming the records they supersede.

    Raises ``SheetError`` listing, by sheet line, every re-sent value when ``replace`` is False,
    and (also with ``replace``) a correction that would hide other properties of the old record.
    ``units``: property -> the unit of the sheet's column (``SheetContents.units``), in which a
    refused value and the stored one are said (default: the store's). ``table``: as ``_stored_for``'s.
    """
    units = units or {}
    sample_ids = {r.sample_id for r in records if r.sample_id}
    if store is None or not sample_ids or len(store) == 0:
        return list(records)
    stored, superseded = _stored_for(store, sample_ids, table)
    if stored.empty:
        return list(records)
    known = set(stored["record_id"])
    current = _current(stored, superseded)
    props = [p for p in property_names() if p in stored.columns]
    problems: list[tuple[int, str]] = []
    out: list[MaterialRecord] = []
    for line, rec in zip(lines, records):
        sid = rec.sample_id
        if sid is None or (rec.record_id in known and rec.record_id not in superseded):
            out.append(rec)  # no sample id, or this very record is already stored: idempotent
            continue
        if rec.record_id in superseded:
            problems.append((line, f"sample {sid!r}: these values were stored before and later corrected; "
                                   "a correction cannot be undone by re-sending the old values"))
            continue
        same = _same_sample(current, rec)
        clash = [p.name for p in rec.properties if p.name in props and same[p.name].notna().any()]
        if not clash:
            out.append(rec)
            continue
        old = same[same[clash].notna().any(axis=1)]
        hidden = [p for p in props if old[p].notna().any() and rec.get_property(p) is None]
        if not replace and not completes(store, rec, list(old["record_id"])):
            changed = [name for name in clash if not np.isclose(old[name].dropna().iloc[0], rec.get_property(name).value,
                                                                rtol=1e-9, atol=0.0)]
            if changed:  # what differs, not a value sent again unchanged
                told = "; ".join(_refused(name, old, rec, units.get(name)) for name in changed)
            elif hidden:
                told = (f"its stored record also holds {', '.join(hidden)}, which this row does not send; "
                        "give every value of the sample")
            else:
                told = (f"its stored record{'s' if len(old) > 1 else ''} ({', '.join(old['record_id'])}) hold"
                        f"{'' if len(old) > 1 else 's'} the same {', '.join(clash)} but differ"
                        f"{'' if len(old) > 1 else 's'} from this row in composition, process or an uncertainty, "
                        "or the sample has more than one record")
            problems.append((line, f"sample {sid!r}: {told}; use --replace to store the new value and keep "
                                   "the old one as superseded"))
            continue
        # here either --replace, or every stored value is sent again unchanged: a completion (the
        # lab measured another property of the sample since), which replaces the record it extends
        if hidden:
            problems.append((line, f"sample {sid!r}: the record it replaces also holds {', '.join(hidden)}, which "
                                   "this row does not re-send; give every value of the sample to replace it"))
            continue
        update = {"supersedes": sorted(old["record_id"])}
        out.append(rec.model_copy(update={"provenance": rec.provenance.model_copy(update=update)}))
    if problems:
        raise SheetError(origin, problems)
    return out


def _current(stored: pd.DataFrame, superseded: set[str]) -> pd.DataFrame:
    """The stored records that are current measurements: not superseded, and no retraction (it
    carries the withdrawn values but is no measurement: after a retract the sample is awaited
    again, and its new value was refused as "already stored", the retraction's)."""
    return stored[~stored["record_id"].isin(superseded) & (stored["method"] != RETRACTION_METHOD)]


def _same_sample(current: pd.DataFrame, rec: MaterialRecord) -> pd.DataFrame:
    """The rows of ``current`` that ``rec`` sends again: its sample id, campaign and source."""
    return current[(current["sample_id"] == rec.sample_id) & (current["campaign"] == (rec.provenance.campaign or ""))
                   & (current["source"] == rec.source.value)]


def _refused(name: str, old: pd.DataFrame, rec: MaterialRecord, unit: str | None) -> str:
    """What a changed value's refusal says of ``name``: both values in the sheet's ``unit``
    (``_two_values``), and the stored one as the store holds it where that unit is another."""
    value = float(old[name].dropna().iloc[0])
    stored, sent = _two_values(name, value, rec.get_property(name).value, unit)
    record = f"record {old.loc[old[name].notna(), 'record_id'].iloc[0]}"
    if unit and not same_unit(name, unit):
        return (f"{name} is already stored as {stored} ({value:g} {canonical_unit(name)}; {record}), this sheet says "
                f"{sent} (typed in another unit than the store's, a value is the stored one when the stored one "
                "rounds to it at the last digit typed)")
    return f"{name} is already stored as {stored} ({record}), this sheet says {sent}"


def resolve_resent_columns(
    store: Store | None, columns: RecordColumns, lines: Sequence[int], origin: str, replace: bool = False,
    units: Mapping[str, str] | None = None, table: pd.DataFrame | None = None,
) -> RecordColumns:
    """``resolve_resends`` for records in column form (``sheets.read_sheet_columns``): only the
    rows whose sample id the store already holds are read back as records (from their JSON,
    exactly) and resolved; a correction changes only a record's JSON (``supersedes`` is not
    content, so its id and numbers stay). ``units``: as ``resolve_resends``'s (``SheetColumns.units``);
    ``table``: as ``_stored_for``'s."""
    if store is None or len(store) == 0:
        return columns
    table = store.to_dataframe(superseded=True) if table is None else table
    again = _rows_of(columns, table)
    if not again.size:
        return columns
    records = [MaterialRecord.from_json(columns.json[i].decode()) for i in again.tolist()]
    resolved = resolve_resends(store, records, [lines[i] for i in again.tolist()], origin, replace, units, table)
    json = list(columns.json)
    for i, rec in zip(again.tolist(), resolved):
        json[i] = rec.to_json().encode()
    return dataclasses.replace(columns, json=json)


def _sample_ids(columns: RecordColumns) -> np.ndarray:
    return np.char.decode(columns.fixed["sample_id"], "utf-8")


def _rows_of(columns: RecordColumns, stored: pd.DataFrame) -> np.ndarray:
    """Positions of the records in ``columns`` whose sample id ``stored`` holds (ascending)."""
    if stored.empty:
        return np.zeros(0, dtype=np.int64)
    sample_ids = _sample_ids(columns)
    held = np.array(sorted(set(stored["sample_id"]) - {""}), dtype=object)
    return np.flatnonzero(np.isin(sample_ids, held) & (sample_ids != ""))
