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
row with its line number (the header is line 1) and the reason.

Files that do not follow the template (public data sets) are read through a column map
(YAML, see ``configs/sheets/``) that renames their columns into the template.
"""
from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import ValidationError

from dm_hpc.data.composition import Basis, Composition, CompositionError
from dm_hpc.data.records import MaterialRecord, Source
from dm_hpc.data.vocabulary import canonical_unit

_HEADER = re.compile(r"^\s*(?P<key>[^\[\]]+?)\s*(?:\[(?P<unit>[^\]]*)\])?\s*$")
_BASIS_UNITS = {
    "at_frac": Basis.atomic_fraction, "at. frac": Basis.atomic_fraction, "": Basis.atomic_fraction,
    "at%": Basis.atomic_percent, "at_percent": Basis.atomic_percent,
    "wt_frac": Basis.weight_fraction, "wt%": Basis.weight_percent, "wt_percent": Basis.weight_percent,
}
_BASIS_LABEL = {Basis.atomic_fraction: "at_frac", Basis.atomic_percent: "at%",
                Basis.weight_fraction: "wt_frac", Basis.weight_percent: "wt%"}
META = ("sample_id", "formula", "material_class", "source", "method", "contributor", "institution", "notes")


class SheetError(ValueError):
    """A sheet that cannot be imported; ``problems`` lists (line, message) for every bad row."""

    def __init__(self, path: str, problems: Sequence[tuple[int, str]]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  line {line}: {msg}" if line else f"  {msg}" for line, msg in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{path}: {len(self.problems)} problem(s), nothing imported:\n{lines}{more}")


@dataclass(frozen=True)
class Column:
    """A parsed template header."""

    header: str
    kind: str  # composition | process | property | uncertainty | predicted | predicted_std | meta
    name: str
    unit: str | None = None
    step: str | None = None


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


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def _number(value: Any) -> float:
    if isinstance(value, str):
        value = value.strip()
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or XLSX file as strings-or-numbers, keeping headers as written."""
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return pd.read_excel(path, sheet_name=0, dtype=object, engine="openpyxl")
    if path.suffix.lower() in (".csv", ".txt"):
        return pd.read_csv(path, dtype=object, keep_default_na=False, na_values=[""])
    raise ValueError(f"{path}: unsupported sheet type {path.suffix!r} (use .csv or .xlsx)")


def apply_column_map(table: pd.DataFrame, mapping: Mapping[str, Any]) -> pd.DataFrame:
    """Rename a foreign table into the template with a column map (see ``configs/sheets``).

    Keys: ``columns`` (original -> template header, or ``{to: header, values: {...}}`` to
    translate values), ``constants`` (template header -> value for every row), ``ignore``
    (original columns to drop; every other unmapped column is an error).
    """
    columns = mapping.get("columns", {})
    ignore = set(mapping.get("ignore", []))
    unmapped = [c for c in table.columns if c not in columns and c not in ignore]
    if unmapped and not mapping.get("ignore_unmapped", False):
        raise SheetError("column map", [(0, f"column {c!r} is neither mapped nor ignored") for c in unmapped])
    out = pd.DataFrame(index=table.index)
    for original, target in columns.items():
        if original not in table.columns:
            raise SheetError("column map", [(0, f"mapped column {original!r} is not in the file")])
        if isinstance(target, Mapping):
            values = {str(k): v for k, v in target.get("values", {}).items()}
            out[target["to"]] = table[original].map(lambda v: values.get(str(v).strip(), v))
        else:
            out[target] = table[original]
    for header, value in mapping.get("constants", {}).items():
        out[header] = value
    return out


def read_sheet(
    path: str | Path,
    defaults: SheetDefaults | None = None,
    column_map: Mapping[str, Any] | str | Path | None = None,
    known_ids: Collection[str] | None = None,
) -> list[MaterialRecord]:
    """Read every row of a template sheet as a record; raise ``SheetError`` on any bad row.

    ``known_ids``: when given, every ``sample_id`` must be one of them (a lab sheet answers
    suggestions); unknown and duplicate ids are errors.
    """
    defaults = defaults or SheetDefaults()
    try:
        table = load_table(path)
    except (OSError, ValueError) as exc:
        raise SheetError(str(path), [(0, f"cannot read the file: {exc}")]) from None
    if column_map is not None:
        if not isinstance(column_map, Mapping):
            column_map = yaml.safe_load(Path(column_map).read_text())
        table = apply_column_map(table, column_map)
    return records_from_table(table, str(path), defaults, known_ids)


def records_from_table(
    table: pd.DataFrame, origin: str, defaults: SheetDefaults, known_ids: Collection[str] | None = None
) -> list[MaterialRecord]:
    """Validate a template table row by row (see ``read_sheet``)."""
    problems: list[tuple[int, str]] = []
    columns: list[Column] = []
    for header in table.columns:
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

    records: list[MaterialRecord] = []
    seen_ids: dict[str, int] = {}
    for offset, (_, row) in enumerate(table.iterrows()):
        line = offset + 2
        try:
            record = _row_to_record(row, columns, basis, defaults)
        except (ValueError, KeyError, TypeError, CompositionError) as exc:
            problems.append((line, _reason(exc)))
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
        records.append(record)
    if problems:
        raise SheetError(origin, problems)
    return records


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors())
    if isinstance(exc, KeyError):
        return str(exc.args[0]) if exc.args else str(exc)
    return str(exc)


def _row_to_record(row: pd.Series, columns: list[Column], basis: Basis, defaults: SheetDefaults) -> MaterialRecord | None:
    values = {c.header: row[c.header] for c in columns}
    if all(_blank(v) for v in values.values()):
        return None
    meta = {c.name: str(values[c.header]).strip() for c in columns if c.kind == "meta" and not _blank(values[c.header])}
    amounts: dict[str, Any] = {}
    for c in columns:
        if c.kind != "composition" or _blank(values[c.header]):
            continue
        raw = values[c.header]
        if isinstance(raw, str) and raw.strip().lower().rstrip(".") in ("bal", "balance"):
            amounts[c.name] = "bal"
        else:
            try:
                amounts[c.name] = _number(raw)
            except ValueError:
                raise ValueError(f"{c.header}: not a number: {raw!r}") from None
    raw_materials = []
    for c in columns:
        if c.kind == "raw" and not _blank(values[c.header]):
            try:
                amount = _number(values[c.header])
            except ValueError:
                raise ValueError(f"{c.header}: not a number: {values[c.header]!r}") from None
            if amount < 0:
                raise ValueError(f"{c.header}: negative amount {amount:g}")
            if amount == 0:
                continue  # not used in this sample
            raw_materials.append({"name": c.name, "amount": {"value": amount, "unit": c.unit}})
    if amounts:
        composition = Composition.from_amounts(amounts, basis)
    elif "formula" in meta:
        composition = Composition(meta["formula"])
    elif raw_materials:
        composition = None  # made of raw materials (a blend, a recipe): no elemental composition
    else:
        raise ValueError("no composition given (all composition cells empty)")

    properties, uncertainties, steps = [], {}, {}
    for c in columns:
        raw = values[c.header]
        if c.kind not in ("property", "uncertainty", "process") or _blank(raw):
            continue
        try:
            number = _number(raw)
        except ValueError:
            raise ValueError(f"{c.header}: not a number: {raw!r}") from None
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
    if not properties:
        raise ValueError("no property value in this row (a measurement is required)")
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
    """Write a template table as CSV or XLSX (by suffix), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    if path.suffix.lower() == ".xlsx":
        table.to_excel(tmp, index=False, engine="openpyxl")
    elif path.suffix.lower() == ".csv":
        table.to_csv(tmp, index=False)  # shortest repr: floats read back bit for bit
    else:
        raise ValueError(f"{path}: unsupported sheet type {path.suffix!r} (use .csv or .xlsx)")
    tmp.replace(path)
    return path


def write_sheet(records: Sequence[MaterialRecord], path: str | Path, basis: Basis | str = Basis.atomic_fraction) -> Path:
    """Export records to a template sheet."""
    return write_table(records_to_table(records, basis), path)
