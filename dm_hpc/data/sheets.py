"""Lab sheets (CSV or XLSX) in the standard template, read all-or-nothing.

Header grammar (one column each; units in square brackets)::

    sample_id                                   the specimen or suggestion id
    composition:<El> [at_frac|at%|wt_frac|wt%]  amount of an element; "bal" for the balance element
    raw:<name> [unit]                           amount of a raw material (e.g. a polymer, a dopant): g, mL, mol, ..., or a share (wt%, wt_frac, ...)
    raw:<name>:material_class|manufacturer|formula|purchase_date   its details (texts)
    raw:<name>:purity                           its purity (a number)
    raw:<name>:used                             "yes": given with no amount above 0 and no detail (0 alone: not used)
    raw:<name>:<k> [unit], raw:<name>:<k>:<field>   the row's k-th raw material of that name (k = 2, 3, ...)
    process:<step>:<parameter> [unit]           a process parameter (vocabulary term)
    process:<step>:equipment                    the step's equipment (text)
    process:<step>:settings                     its settings, a JSON object of texts: {"atmosphere": "Ar"}
    process:<step>:order                        its place in the route (default: its place among the row's steps)
    process:<step>:<k>:<parameter> [unit], process:<step>:<k>:<field>   the row's k-th step of that name
    property:<name> [unit]                      a measured or computed value (vocabulary term)
    uncertainty:<name> [unit]                   its standard uncertainty
    conditions:<name>                           its conditions, a JSON object: {"temperature": 298.0, "load": "HV10"}
    predicted:<name> [unit], predicted_std:<name> [unit]   written on suggestion sheets, ignored on import
    ordered:<El> [at_frac], 99 % interval:<name> [unit], verdict   added by the annotated copy, ignored on import
    formula                                     a formula instead of composition columns
    material_class, source, method, contributor, institution, notes
    input_hash                                  a calculation's input hash (part of its record id; exports write it)
    record_id                                   an exported record's id; a row whose values are not its record's is said

A sheet with any bad row stores nothing: ``read_sheet`` raises ``SheetError`` listing every bad
cell or row (``Verdict``: line, where the header is line 1, sample id, column, value, reason).
Columns are checked whole (``sheet_checks``): numbers in one strict grammar, units converted,
finite values inside the vocabulary's physical range for the row's material class, compositions
that sum to their basis's total (1 or 100, within ``COMPOSITION_TOLERANCE``; a "bal" element
takes what the others leave). Nothing is inferred from absence: a row whose measurement cells
are blank is *pending* (listed apart, said in a warning); it was *not made* only when a
measurement cell says ``not made``. A column outside the template grammar is ignored with a
warning, unless it looks like a property, or holds the name of one the sheet is expected to
measure (``Density (g/cm3)`` on a lab sheet), and holds values (``hardness [GPa]``): then it is
refused with "did you mean"; a template column naming an unknown term is an error. A lab sheet
without a ``sample_id`` column is one error, not an empty id on every row.

Files that do not follow the template (public data sets) are read through a column map
(YAML, see ``configs/sheets/``) that renames their columns into the template.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dm_hpc.data.column_map import ColumnMap, apply_column_map, load_column_map
from dm_hpc.data.columns import (
    RAW_FIELDS,
    RAW_USED,
    STEP_FIELDS,
    composition_column,
    conditions_column,
    is_annotation,
    occurrence_name,
    process_column,
    property_column,
    raw_column,
    raw_field_column,
    step_column,
)
from dm_hpc.data.composition import COMPOSITION_TOLERANCE, Basis, Composition
from dm_hpc.data.elements import is_element, unknown_element
from dm_hpc.data.records import MaterialRecord, ProcessStep, Source
from dm_hpc.data.sheet_checks import (
    BASIS_LABEL,
    NOT_MADE,
    CheckedColumns,
    build_records,
    check_columns,
    formula_composition,
    not_made_and_pending,
    raw_unit_problem,
    record_id_warnings,
    shared_when_merged,
)
from dm_hpc.data.sheet_columns import record_columns
from dm_hpc.data.shards import RecordColumns
from dm_hpc.data.sheetfiles import SheetError, describe_error, formula_cell, load_table, parse_number, write_frame
from dm_hpc.data.sheetfiles import blank as _blank
from dm_hpc.data.verdicts import Decision, Verdict
from dm_hpc.data.vocabulary import (
    UnknownPropertyError,
    canonical_unit,
    closest_name,
    converter,
    process_parameter_names,
    property_names,
    same_unit,
)

__all__ = ["SheetError", "SheetContents", "SheetColumns", "SheetDefaults", "read_sheet", "read_sheet_contents",
           "read_sheet_columns", "write_sheet",
           "write_table", "records_to_table", "parse_header", "load_column_map", "apply_column_map", "ColumnMap",
           "COMPOSITION_TOLERANCE", "NOT_MADE", "did_you_mean", "unit_conversions"]

_HEADER = re.compile(r"^\s*(?P<key>[^\[\]]+?)\s*(?:\[(?P<unit>[^\]]*)\])?\s*$")
#: The occurrence segment of a raw or process header (``columns.occurrence_name``): 1, 2, ...
_OCCURRENCE = re.compile(r"[1-9][0-9]*")
_BASIS_UNITS = {
    "at_frac": Basis.atomic_fraction, "at. frac": Basis.atomic_fraction, "": Basis.atomic_fraction,
    "at%": Basis.atomic_percent, "at_percent": Basis.atomic_percent,
    "wt_frac": Basis.weight_fraction, "wt%": Basis.weight_percent, "wt_percent": Basis.weight_percent,
}
_BASIS_LABEL = BASIS_LABEL
META = ("sample_id", "formula", "material_class", "source", "method", "input_hash", "contributor", "institution",
        "notes", "confirm", "record_id")
_TEMPLATE_PREFIXES = ("composition:", "raw:", "process:", "property:", "uncertainty:", "conditions:", "predicted:",
                      "predicted_std:")


@dataclass(frozen=True)
class Column:
    """A parsed template header."""

    header: str
    # composition | raw | raw_field (a raw material's field) | process | step (a step's field) | property
    # | uncertainty | conditions | predicted | predicted_std | meta
    kind: str
    name: str  # a step's or a raw material's field for those kinds
    unit: str | None = None
    step: str | None = None  # the step of a process or step column; the raw material of a raw_field column
    occurrence: int = 1  # which of the row's raw materials or steps of that name (``columns.occurrence_name``)


def header_key(header: object) -> str:
    """A header's name without its unit, as the template reads it (``_HEADER``):
    'process:treatment:temperature [degC]' -> 'process:treatment:temperature'; a header outside
    that grammar (a bracket inside the name) whole, stripped."""
    m = _HEADER.match(str(header))
    return m.group("key") if m else str(header).strip()


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
    nth = 1
    if parts[0] in ("raw", "process") and len(parts) in (3, 4) and _OCCURRENCE.fullmatch(parts[2]):
        nth, parts = int(parts[2]), [*parts[:2], *parts[3:]]
    if len(parts) == 1 and key in META:
        return Column(header, "meta", key)
    if parts[0] == "composition" and len(parts) == 2:
        return Column(header, "composition", parts[1], unit or "")
    if parts[0] == "raw" and len(parts) == 3 and parts[1].strip() and parts[2] in (*RAW_FIELDS, RAW_USED):
        return Column(header, "raw_field", parts[2], unit, step=parts[1].strip(), occurrence=nth)
    if parts[0] == "raw" and len(parts) == 2 and parts[1].strip():
        return Column(header, "raw", parts[1].strip(), unit or "dimensionless", occurrence=nth)
    if parts[0] == "process" and len(parts) == 3 and parts[2] in STEP_FIELDS:
        return Column(header, "step", parts[2], unit, step=parts[1], occurrence=nth)
    if parts[0] == "process" and len(parts) == 3:
        canonical_unit(parts[2], kind="process_parameter")
        return Column(header, "process", parts[2], unit, step=parts[1], occurrence=nth)
    if parts[0] in ("property", "uncertainty", "conditions", "predicted", "predicted_std") and len(parts) == 2:
        canonical_unit(parts[1])
        return Column(header, parts[0], parts[1], unit)
    raise ValueError(
        f"column {header!r}: expected sample_id, composition:<El> [basis], raw:<name> [unit], "
        f"raw:<name>:{'|'.join((*RAW_FIELDS, RAW_USED))}, process:<step>:<param> [unit], "
        f"process:<step>:{'|'.join(STEP_FIELDS)}, property:<name> [unit], uncertainty:<name> [unit], conditions:<name> "
        f"or one of {', '.join(META)} (a row's second raw material or step of one name: raw:<name>:2 [unit], "
        "process:<step>:2:<param> [unit], and so on)"
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
    """A sheet read and checked: its records with their line numbers, the rows marked
    ``not made`` and the rows left ``pending`` (blank measurement cells), each as (line,
    sample_id), warnings to show, every ``Verdict`` (accepted rows, converted cells), and
    ``confirm``: sample id -> its ``confirm`` cell as written (empty without that column; the
    campaign's model check reads it, so no door reads the file a second time); ``units``: property
    -> the unit its column states, the one the lab typed the values in (the records hold them
    canonical; what is said back about a value says it in this unit)."""

    records: list[MaterialRecord]
    lines: list[int]
    not_made: list[tuple[int, str | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pending: list[tuple[int, str | None]] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    confirm: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)


def unit_conversions(verdicts: Sequence[Verdict]) -> list[str]:
    """One line per property column whose values were stored in another unit than the sheet's,
    in sheet order ('hardness: HV converted to GPa for the store'): what a reply says once, where
    the annotated copy says it on every cell."""
    said: dict[str, str] = {}
    for v in verdicts:
        if (v.decision is Decision.accepted and v.converted_from and v.column and v.column not in said
                and parse_header(v.column).kind == "property"):  # its uncertainty column goes with it
            name = parse_header(v.column).name
            said[v.column] = f"{name}: {v.converted_from} converted to {canonical_unit(name)} for the store"
    return list(said.values())


def read_sheet_contents(
    path: str | Path,
    defaults: SheetDefaults | None = None,
    column_map: Mapping[str, Any] | str | Path | None = None,
    known_ids: Collection[str] | None = None,
    sheet: str | None = None,
    shown: str | None = None,
) -> SheetContents:
    """Read and check a template sheet (CSV or XLSX; ``sheet`` names a workbook's sheet).

    Raises ``SheetError`` listing every bad row. ``known_ids``: when given, every ``sample_id``
    must be one of them (a lab sheet answers suggestions); unknown and duplicate ids are errors.
    ``shown``: the sheet's name in messages (default: ``path``).
    """
    cmap = load_column_map(column_map) if column_map is not None else None
    loaded = load_table(path, sheet, shown)
    table = loaded.frame
    if cmap is not None:
        table = apply_column_map(table, cmap, str(column_map) if not isinstance(column_map, Mapping) else "column map")
    return records_from_table(table, shown or str(path), defaults or SheetDefaults(), known_ids, loaded.decimal,
                              unread=loaded.refused)


def read_sheet(
    path: str | Path,
    defaults: SheetDefaults | None = None,
    column_map: Mapping[str, Any] | str | Path | None = None,
    known_ids: Collection[str] | None = None,
    sheet: str | None = None,
) -> list[MaterialRecord]:
    """The records of a sheet (see ``read_sheet_contents``; rows not made are left out)."""
    return read_sheet_contents(path, defaults, column_map, known_ids, sheet).records


#: Header prefixes of what was measured: a table of candidates (``read_candidates``) does not read them.
MEASURED_PREFIXES = ("property:", "uncertainty:", "conditions:")


def read_candidates(path: str | Path, column_map: Mapping[str, Any] | str | Path | None = None,
                    sheet: str | None = None) -> list[Composition]:
    """The compositions of a table of candidates (a campaign's ``space.pool``), in sheet order, one
    per row that gives one (composition columns or a formula), measured or not: its property,
    uncertainty and conditions columns may be there or not, and are not read (a candidate is where
    to look, not a value). Every other check of ``read_sheet_contents`` holds; raises ``SheetError``."""
    cmap = load_column_map(column_map) if column_map is not None else None
    loaded = load_table(path, sheet, None)
    table = loaded.frame
    if cmap is not None:
        table = apply_column_map(table, cmap, str(column_map) if not isinstance(column_map, Mapping) else "column map")
    table = table.drop(columns=[h for h in table.columns if str(h).strip().lower().startswith(MEASURED_PREFIXES)])
    # a refused cell (a formula without a saved result) counts only in a column that is read: a
    # pool's property column is not, nor is one its column map leaves out
    read = {str(h).strip() for h in table.columns}
    if cmap is not None:
        read = {str(o).strip() for o, t in cmap.columns.items() if getattr(t, "to", t) in table.columns}
    unread = tuple(v for v in loaded.refused if v.column is None or v.column in read)
    checked, _ = _checked(table, str(path), SheetDefaults(), None, loaded.decimal, unread=unread,
                          measured=False)
    out = []
    for i in np.flatnonzero(checked.keep).tolist():
        comp = checked.composition.of_row(i)
        if comp is None and checked.meta["formula"][i] is not None:
            comp = formula_composition(checked, i)
        if comp is not None:
            out.append(comp)
    return out


def did_you_mean(header: str) -> str | None:
    """The template header a foreign column probably meant (``Hardness`` ->
    ``property:hardness [GPa]``), or None when it looks like no vocabulary term."""
    m = _HEADER.match(str(header))
    if not m:
        return None
    match = _meant_name(m.group("key").split(":")[-1], property_names())
    if match is None:
        return None
    return f"property:{match} [{m.group('unit') or canonical_unit(match)}]"


def _meant_name(word: str, names: Sequence[str]) -> str | None:
    """The name of ``names`` that ``word`` probably means, case, spaces and hyphens aside
    ('Mixing Energy' -> mixing_energy), or None."""
    key = word.strip().lower().replace(" ", "_").replace("-", "_")
    return key if key in names else closest_name(key, names, 0.8)


def _unknown_term(header: str, exc: UnknownPropertyError) -> tuple[str, str | None]:
    """The problem of a template column naming a term the vocabulary lacks, and the known name it
    probably meant (or None). With such a name the problem is the header to write instead, once;
    the known names are listed only when none is close."""
    names = process_parameter_names() if exc.kind == "process_parameter" else property_names()
    meant = exc.close or _meant_name(exc.name or "", names)
    if meant is None:
        return f"column {header!r}: {exc}", None
    m = _HEADER.match(str(header))
    kind, *step = m.group("key").split(":")[:-1]
    fixed = (process_column(":".join(step), meant, m.group("unit")) if kind == "process"
             else conditions_column(meant) if kind == "conditions"
             else property_column(meant, m.group("unit"), kind=kind))
    return f"column {header!r}: unknown {exc.kind.replace('_', ' ')} {exc.name!r}; did you mean {fixed!r}?", meant


def _squeezed(text: str) -> str:
    """``text`` lower-cased without spaces and punctuation ('Density (g/cm3)' -> 'densitygcm3')."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def names_property(header: str, properties: Collection[str]) -> str | None:
    """The template header of the property (of ``properties``) whose name a foreign column holds,
    case and punctuation aside, with the unit the column states in () or [] ('Density (kg/m3)' ->
    'property:density [kg/m3]': a value typed in kg/m3 relabelled g/cm**3 would be stored 1000x
    off), else the canonical one; None when it holds none. A lab that types over a header keeps the
    word but rarely the template's grammar."""
    found = [p for p in properties if _squeezed(p) and _squeezed(p) in _squeezed(header)]
    if not found:
        return None
    stated = re.search(r"[(\[]\s*([^()\[\]]+?)\s*[)\]]\s*$", str(header))
    name = max(found, key=len)
    return property_column(name, stated.group(1)) if stated else property_column(name)


def _filled(table: pd.DataFrame, header: str) -> bool:
    """Whether any cell of a column holds something."""
    return bool(table[header].map(lambda v: not _blank(v)).any())


def _numbers_in(table: pd.DataFrame, header: str) -> bool:
    """Whether any cell of a column reads as a number (a measurement, not a note such as
    'pycnometer' under 'Density method'), by the reader's own rule (``parse_number``, either
    decimal mark)."""
    def number(v) -> bool:
        for mark in (".", ","):  # "1.234" is a number under either mark, only ambiguous under ','
            try:
                parse_number(v, mark)
                return True
            except (TypeError, ValueError):
                pass
        return False

    return bool(table[header].map(number).any())


@dataclass(frozen=True)
class Headers:
    """What a table's header row says (``_columns``): its template ``columns``, the header
    ``problems`` (line 1) and ``warnings``; ``unchecked``: the headers a problem names, whose cells
    are not checked (an unknown term or unit, a column given twice); ``foreign``: the headers
    outside the template, annotations aside, in sheet order; ``claims_property``: some header
    starts ``property:``, read or not (one that does not read says why itself)."""

    columns: list[Column]
    problems: list[tuple[int, str]]
    warnings: list[str]
    unchecked: set[object]
    foreign: list[object]
    claims_property: bool

    def readable(self) -> list[Column]:
        """The columns whose cells can be checked: those no problem names, an uncertainty only
        beside its property's column (its unit and its value are that column's)."""
        ok = [c for c in self.columns if c.header not in self.unchecked]
        props = {c.name for c in ok if c.kind == "property"}
        return [c for c in ok if c.kind not in ("uncertainty", "conditions") or c.name in props]

    def amounts_unchecked(self) -> bool:
        """Whether a problem names a composition or raw-material column: the rows' sums and
        whether a row gives a composition at all are then judged without it."""
        return any(str(h).strip().lower().startswith(("composition:", "raw:")) for h in self.unchecked)


def _columns(table: pd.DataFrame, properties: Collection[str] = ()) -> Headers:
    """The header row of a table, read once (``properties``: the names a column the template
    does not know may be a renamed measurement of)."""
    problems: list[tuple[int, str]] = []
    warnings: list[str] = []
    columns: list[Column] = []
    unchecked: set[object] = set()
    foreign: list[object] = []
    claims_property = False
    misspelt: set[str] = set()  # the properties that refused property columns probably meant

    def refuse(problem: str, *headers: object) -> None:
        problems.append((1, problem))
        unchecked.update(headers)

    for header in table.columns:
        if is_annotation(header):  # the annotated copy's information, sent back with the lab's corrections
            continue
        claims_property = claims_property or str(header).strip().lower().startswith("property:")
        if not is_template_header(header):
            foreign.append(header)
            by_name = names_property(header, properties)
            guess = did_you_mean(header) or by_name
            # a column named after a property refuses the sheet only when it holds numbers
            filled = _filled(table, header) and (by_name is None or did_you_mean(header) is not None
                                                 or _numbers_in(table, header))
            if guess and filled:  # a measurement under a wrong name would be lost: refuse
                refuse(f"column {header!r} is not a template column; did you mean {guess!r}?", header)
            else:
                warnings.append(f"column {header!r} is not a template column; ignored"
                                + (f" (did you mean {guess!r}?)" if guess else ""))
            continue
        try:
            columns.append(parse_header(header))
        except UnknownPropertyError as exc:
            problem, meant = _unknown_term(header, exc)
            refuse(problem, header)
            if meant and str(header).strip().lower().startswith("property:"):
                misspelt.add(meant)
        except (ValueError, KeyError) as exc:
            refuse(str(exc), header)
    for c in columns:
        if c.kind == "composition" and not is_element(c.name):
            refuse(f"column {c.header!r}: {unknown_element(c.name)}", c.header)
        if c.kind in ("process", "step"):
            try:
                ProcessStep(name=c.step)
            except ValueError as exc:
                refuse(f"column {c.header!r}: {describe_error(exc)}", c.header)
        if c.kind in ("step", "raw_field", "conditions") and c.unit is not None:
            named = occurrence_name(c.step, c.occurrence) if c.step is not None else None
            bare = (step_column(named, c.name) if c.kind == "step" else raw_field_column(named, c.name)
                    if c.kind == "raw_field" else conditions_column(c.name))
            refuse(f"column {c.header!r} takes no [unit]; write {bare!r}", c.header)
        if c.kind == "raw" and (why := raw_unit_problem(c.unit)):
            refuse(f"column {c.header!r}: {why}", c.header)
        if c.kind in ("property", "uncertainty", "process"):
            kind = "process_parameter" if c.kind == "process" else "property"
            if c.unit is None:
                refuse(f"column {c.header!r}: header has no [unit]", c.header)
                continue
            try:
                converter(c.name, c.unit, kind)
            except ValueError as exc:
                refuse(f"column {c.header!r}: {exc}", c.header)
    seen: dict[tuple, str] = {}
    for c in columns:  # two columns for one quantity: which one holds the value is a guess
        # a raw material's amount in two units is two columns, one per record's unit (a row fills one)
        key = (c.kind, c.step, c.name, c.occurrence, c.unit if c.kind == "raw" else None)
        if c.kind in ("composition", "raw", "raw_field", "process", "step", "property", "uncertainty",
                      "conditions") and key in seen:
            refuse(f"columns {seen[key]!r} and {c.header!r} both give "
                   f"{c.kind} {c.name if c.step is None else f'{c.step}:{c.name}'}; keep one", seen[key], c.header)
        seen.setdefault(key, c.header)
    props = {c.name: c for c in columns if c.kind == "property"}
    for c in columns:
        if c.kind in ("uncertainty", "conditions") and c.name not in props and c.name in misspelt:
            continue  # its property column is there, misspelt, and said so: one problem, not two
        if c.kind == "conditions" and c.name not in props:
            refuse(f"column {c.header!r}: conditions without a property:{c.name} column", c.header)
        if c.kind == "uncertainty" and c.name not in props:
            # its property column is most often there, typed over: name it, or the lab looks for a missing one
            renamed = [h for h in foreign if names_property(h, [c.name])]
            refuse(f"column {c.header!r}: an uncertainty without a property:{c.name} column"
                   + (f" (is {renamed[0]!r} it? name it {property_column(c.name)!r})" if renamed else ""), c.header)
        elif c.kind == "uncertainty" and c.unit != props[c.name].unit:
            if not _filled(table, c.header):
                # a lab that changed the value's unit (as docs/labs.md says) and sent no uncertainty:
                # the empty column says nothing, so its old unit is no conflict
                warnings.append(f"column {c.header!r} is empty and in another unit than the value's "
                                f"{props[c.name].unit!r}; ignored")
                columns = [k for k in columns if k is not c]
                continue
            refuse(f"column {c.header!r}: unit {c.unit!r} differs from the value's {props[c.name].unit!r}", c.header)
    return Headers(columns, problems, warnings, unchecked, foreign, claims_property)


def records_from_table(
    table: pd.DataFrame, origin: str, defaults: SheetDefaults, known_ids: Collection[str] | None = None,
    decimal: str = ".", properties: Collection[str] = (), unread: Sequence[Verdict] = (),
) -> SheetContents:
    """Check a template table column by column and build its records (see ``sheet_checks``).

    Lines are the table's index when it is named ``line`` (``load_table`` sets it), else the
    row's position + 2 (the header is line 1). ``properties``: the names the sheet is expected
    to measure; a foreign column with values that holds one of them is refused as a renamed
    property column; ``unread``: cells the reader refused (``LoadedTable.refused``). Raises
    ``SheetError`` with every problem.
    """
    checked, warnings = _checked(table, origin, defaults, known_ids, decimal, properties, unread)
    built = build_records(checked)
    warnings += record_id_warnings(checked, built.lines, [r.record_id for r in built.records])
    # a "yes" merged over the confirm cells of several rows is each row's (``SHARED_WHEN_MERGED``)
    confirm = ({str(sid).strip(): cell for sid, cell in
                zip(table["sample_id"], shared_when_merged(table["confirm"].tolist(), checked.lines))}
               if "confirm" in table.columns and "sample_id" in table.columns else {})
    return SheetContents(built.records, built.lines, built.not_made, warnings, built.pending, built.verdicts,
                         confirm, property_units(checked))


@dataclass(frozen=True)
class SheetColumns:
    """A sheet read and checked, its records as store columns (``Store.ingest_columns``)
    rather than objects: what ``store import`` needs of 100,000 rows. ``lines``: each record's
    sheet line; ``not_made``, ``pending``, ``warnings`` as in ``SheetContents``."""

    columns: RecordColumns
    lines: list[int]
    not_made: list[tuple[int, str | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pending: list[tuple[int, str | None]] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    #: the cells as typed (index: sheet line) of the property and uncertainty columns in another unit
    #: than the store's, what ``resend.retyped_columns`` judges a re-sent value by; None: no such column
    typed: pd.DataFrame | None = None


def read_sheet_columns(
    path: str | Path,
    defaults: SheetDefaults | None = None,
    column_map: Mapping[str, Any] | str | Path | None = None,
    sheet: str | None = None,
    shown: str | None = None,
) -> SheetColumns:
    """``read_sheet_contents`` without record objects: every check, the same refusals, and
    records (same ids, same stored bytes) as columns (see ``sheet_columns``)."""
    cmap = load_column_map(column_map) if column_map is not None else None
    loaded = load_table(path, sheet, shown)
    table = loaded.frame
    if cmap is not None:
        table = apply_column_map(table, cmap, str(column_map) if not isinstance(column_map, Mapping) else "column map")
    checked, warnings = _checked(table, shown or str(path), defaults or SheetDefaults(), None, loaded.decimal,
                                 unread=loaded.refused)
    typed = typed_in_other_units(checked)
    del loaded, table  # the cells as read (a Python object each): freed before the records are written
    columns, lines = record_columns(dataclasses.replace(checked, table=None))
    warnings += record_id_warnings(checked, lines, columns.ids)
    not_made, pending = not_made_and_pending(checked)
    return SheetColumns(columns, lines, not_made, warnings, pending, property_units(checked), typed)


def property_units(checked: CheckedColumns) -> dict[str, str]:
    """Property -> the unit its column states (``SheetContents.units``)."""
    return {c.name: c.unit for c in checked.columns if c.kind == "property" and c.unit}


def typed_in_other_units(checked: CheckedColumns) -> pd.DataFrame | None:
    """The cells as typed, indexed by sheet line, of the property and uncertainty columns in
    another unit than the store's (None when there is none): ``SheetColumns.typed``."""
    headers = [c.header for c in checked.columns
               if c.kind in ("property", "uncertainty") and not same_unit(c.name, c.unit)]
    if not headers or checked.table is None:
        return None
    return checked.table[headers].set_axis(list(checked.lines))


def _checked(
    table: pd.DataFrame, origin: str, defaults: SheetDefaults, known_ids: Collection[str] | None, decimal: str,
    properties: Collection[str] = (), unread: Sequence[Verdict] = (), measured: bool = True,
) -> tuple[CheckedColumns, list[str]]:
    """The table's header checks, then every column check; the warnings to show. ``unread``: cells
    the reader refused, said with the problems found here (one refusal names them all);
    ``measured``: False for a table of candidates (``read_candidates``), which needs no property column.

    A header problem does not hide the rows' problems: the cells of the columns that read
    (``Headers.readable``) are checked too and said in the same refusal, unless the rows'
    compositions cannot be judged (a composition column unread, no basis or no composition), where
    a sum taken without a column or on the wrong basis would refuse rows that are right."""
    unread = _of_their_rows(unread, table)
    heads = _columns(table, properties)
    columns, problems, warnings = heads.columns, list(heads.problems), list(heads.warnings)
    ids = known_ids
    if known_ids is not None and not any(c.kind == "meta" and c.name == "sample_id" for c in columns):
        # a renamed header would otherwise read as every row's sample_id left empty, one error a row
        like = [h for h in heads.foreign if closest_name(_squeezed(h), ["sampleid"], 0.8) is not None]
        problems.append((1, "no sample_id column" + (f"; did you mean {like[0]!r}?" if like
                                                     else ": every row must answer a suggestion id")))
        ids = None  # the rows' other cells are still checked; their ids are what this problem says
    bases = {_BASIS_UNITS.get(c.unit or "", None) for c in columns if c.kind == "composition"}
    if None in bases:
        bad = [c.header for c in columns if c.kind == "composition" and (c.unit or "") not in _BASIS_UNITS]
        problems.append((1, f"composition unit of {bad} must be one of {sorted(k for k in _BASIS_UNITS if k)}"))
    elif len(bases) > 1:
        problems.append((1, "composition columns mix bases; use one of at_frac, at%, wt_frac, wt% for all"))
    amounts = any(c.kind in ("composition", "raw") for c in columns) or any(c.name == "formula" for c in columns)
    if not amounts:
        problems.append((1, "no composition:<El> columns, no raw:<name> columns and no formula column"))
    if table.empty:
        problems.append((0, "the sheet has a header but no rows"))
    if measured and not any(c.kind == "property" for c in columns) and not heads.claims_property:  # else that column said why
        guesses = [f"{h!r} (did you mean {g!r}?)" if (g := did_you_mean(h) or names_property(h, properties)) else repr(h)
                   for h in heads.foreign]
        guesses.sort(key=lambda g: "did you mean" not in g)  # the likely fixes first
        shown = ", ".join(guesses[:12]) + (f" and {len(guesses) - 12} more" if len(guesses) > 12 else "")
        problems.append((1, "no property:<name> [unit] column, so no measurement can be read"
                            + (f"; columns not recognised: {shown}" if guesses else "")))
    # the header's problems (line 0 or 1) come before the cells' (line 2 on)
    judged = amounts and None not in bases and len(bases) <= 1 and not heads.amounts_unchecked()
    if problems and (not judged or table.empty):  # no cell of a row whose composition cannot be judged
        raise SheetError(origin, [*problems, *unread])
    basis = next(iter(bases)) if bases else Basis.atomic_fraction
    lines = [int(i) for i in table.index] if table.index.name == "line" else list(range(2, len(table) + 2))
    try:
        checked = check_columns(table, heads.readable(), basis, defaults, lines, origin, decimal, ids)
    except SheetError as exc:
        # a check's word on a cell the reader refused (its stand-in text "not a number", an
        # "unknown sample_id") would say that cell's problem twice, the second time wrongly
        marks = {formula_cell(v.value) for v in unread}
        said = [v for v in exc.verdicts if not (isinstance(v.value, str) and v.value in marks)]
        raise SheetError(origin, [*problems, *sorted([*unread, *said], key=lambda v: v.line)]) from None
    if problems or unread:
        raise SheetError(origin, [*problems, *unread])
    not_made, pending = not_made_and_pending(checked)
    if known_ids is None:
        warnings += [f"line {line}: no measurement in this row ({NOT_MADE}); skipped" for line, _ in not_made]
    if pending and measured:
        warnings.append(_pending_warning(checked, pending, measured=bool(not_made) or checked.has_value.any()))
    return checked, warnings


def _of_their_rows(unread: Sequence[Verdict], table: pd.DataFrame) -> list[Verdict]:
    """``unread`` with the sample id of each one's row: the reader, which refused them, reads cells
    without knowing which column is the sample id."""
    if not unread or "sample_id" not in table.columns or table.index.name != "line":
        return list(unread)
    marks = {formula_cell(v.value) for v in unread}
    ids = table["sample_id"]
    out = []
    for v in unread:
        sid = ids.get(v.line)
        sid = None if _blank(sid) or str(sid).strip() in marks else str(sid).strip()
        out.append(dataclasses.replace(v, sample_id=sid))
    return out


def _pending_warning(checked: CheckedColumns, pending: list[tuple[int, str | None]], measured: bool) -> str:
    """What the rows left pending are told. A sheet without one measured value (``measured``
    False: none, and no row ``not made``) stores nothing, however much else was typed into it (the
    composition made, a note): said as that, not as a few blank rows, or a lab that typed
    compositions reads its sheet as taken."""
    lines = f"lines {', '.join(str(line) for line, _ in pending[:20])}{', ...' if len(pending) > 20 else ''}"
    if measured:
        return (f"{len(pending)} row(s) with blank measurement cells left pending ({lines}); write {NOT_MADE!r} "
                "in a measurement cell of a sample that was not made")
    values = [c.header for c in checked.of_kind("property")]
    named = (f"the column {values[0]!r} is" if len(values) == 1
             else f"the columns {', '.join(repr(h) for h in values)} are")
    return (f"no measured value was found in the sheet: {named} blank in every row, so nothing was stored and "
            f"the {len(pending)} row(s) stay pending ({lines}); a composition or a note is stored only with a "
            f"value: type each measured value (or {NOT_MADE!r} for a sample that was not made) and send the "
            "sheet again")


def _exact(value: float) -> float | str:
    """A number no record rounds (a raw material's amount, its purity) as a cell that reads back
    as it: itself, or its shortest text where it has more than 15 significant digits (an XLSX
    cell keeps 15: 0.1 + 0.2 would read back as 0.3, another record id)."""
    return value if float(f"{value:.15g}") == value else repr(value)


def _occurrence_names(names: Sequence[str]) -> list[str]:
    """Each of a record's raw-material or step ``names`` (in the record's order) as its columns
    name it: the second of one name ``<name>:2`` (``columns.occurrence_name``), so two anneals
    are two column sets and read back as two steps, in this order."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(occurrence_name(name, seen[name]))
    return out


def records_to_table(records: Sequence[MaterialRecord], basis: Basis | str = Basis.atomic_fraction) -> pd.DataFrame:
    """Records as a template table (canonical units; column names from ``columns``), the
    inverse of ``records_from_table``: every part of a record's content is written, so a row
    read back is the same record (same id); the first column is each record's ``record_id``.

    A step's ``order`` is written only where the steps' places in their rows would not give it
    (some record with more than one step, a step at another place than 0, or one with nothing
    else to write): one step at 0, the usual route of a lab sheet, reads back without it.

    A record's second step or raw material of one name is written under ``<name>:2``
    (``_occurrence_names``); a raw material's amount in the unit the record holds it in (a column
    per unit where records differ: the unit is part of the id, so converting would change it)."""
    basis = Basis(basis)
    orders = any(len(rec.process) > 1 or any(s.order or not (s.parameters or s.equipment is not None or s.settings)
                                             for s in rec.process) for rec in records)
    rows, order_columns = [], set()
    for rec in records:
        row: dict[str, Any] = {
            "record_id": rec.record_id,  # first: what a row is cited by (read back, checked: ``record_id_warnings``)
            "sample_id": rec.sample_id or "",
            "material_class": rec.material_class.value,
            "source": rec.provenance.source.value,
            "method": rec.provenance.method,
        }
        if rec.provenance.input_hash:  # part of the record id: without it an export re-imported is another record
            row["input_hash"] = rec.provenance.input_hash
        if rec.provenance.contributor:
            row["contributor"] = rec.provenance.contributor
        if rec.provenance.institution:
            row["institution"] = rec.provenance.institution
        if rec.composition is not None:
            for el, amount in rec.composition.amounts(basis).items():
                row[composition_column(el, _BASIS_LABEL[basis])] = amount
        for rm, name in zip(rec.raw_materials, _occurrence_names([rm.name for rm in rec.raw_materials])):
            if rm.amount is not None:
                row[raw_column(name, rm.amount.unit)] = _exact(rm.amount.value)
            details = {f: getattr(rm, f) for f in RAW_FIELDS if getattr(rm, f) is not None}
            for f, value in details.items():
                row[raw_field_column(name, f)] = _exact(value) if f == "purity" else value
            if not details and (rm.amount is None or rm.amount.value <= 0):  # else it would read back as not used
                row[raw_field_column(name, RAW_USED)] = "yes"
        for step, name in zip(rec.process, _occurrence_names([s.name for s in rec.process])):
            for key, val in step.parameters.items():
                row[process_column(name, key)] = val
            if step.equipment is not None:
                row[step_column(name, "equipment")] = step.equipment
            if step.settings:
                row[step_column(name, "settings")] = json.dumps(step.settings, ensure_ascii=False)
            if orders:
                row[step_column(name, "order")] = step.order
                order_columns.add(step_column(name, "order"))
        for p in rec.properties:
            row[property_column(p.name, p.unit)] = p.value
            if p.uncertainty is not None:
                row[property_column(p.name, p.unit, kind="uncertainty")] = p.uncertainty
            if p.conditions:  # JSON: a number stays a number and a text a text ("10" is not 10.0)
                row[conditions_column(p.name)] = json.dumps(p.conditions, ensure_ascii=False)
        rows.append(row)
    table = pd.DataFrame(rows)
    for c in order_columns:
        table[c] = table[c].astype("Int64")  # a place in the route is written 1, not 1.0
    comp = sorted(c for c in table.columns if c.startswith(("composition:", "raw:")))
    rest = [c for c in table.columns if c not in comp and c not in META]
    meta = [c for c in ("record_id", *META) if c in table.columns]
    return table[list(dict.fromkeys(meta)) + comp + rest]


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a template table as CSV or XLSX (by suffix), atomically; no cell is a formula
    (see ``sheetfiles``: text that could start one is neutralised)."""
    return write_frame(table, path)


def write_sheet(records: Sequence[MaterialRecord], path: str | Path, basis: Basis | str = Basis.atomic_fraction) -> Path:
    """Export records to a template sheet."""
    return write_table(records_to_table(records, basis), path)
