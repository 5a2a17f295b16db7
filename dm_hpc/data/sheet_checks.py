"""Whole-column checks of a returned sheet, then records built in bulk.

The reading pipeline (``dm_hpc.data.sheets.records_from_table``) hands this module the
table and its parsed headers. Each column is checked at once (numpy/pandas): numbers parsed
from text with one strict grammar (ASCII digits, an optional decimal comma for a
decimal-comma sheet, no digit groups such as ``1_000``), converted to the vocabulary's unit,
checked finite and inside the physical range of the term for the row's material class.
Messages are made only for the cells that fail, as ``Verdict`` objects that name the line,
sample id, column, the value as written and what was expected.

Why not validate each row with pydantic: that costs twenty times the store's own write
(issue 21). The rows that pass every column check are built with ``model_construct`` from
values already in canonical form, rounded as the validators round them, so a record built
here is the record ``MaterialRecord.model_validate`` would build (same id; the fuzz tests
compare the two). ``check_columns`` stops before the records: ``sheet_columns`` writes the
checked columns straight to store columns (``store import``), without an object per row.

Absence is never read as a value: a row whose measurement cells are blank is *pending* (it
can be returned later); a row is *not made* only when a measurement cell holds the template's
marker ``not made``.
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
from datetime import date, datetime, time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dm_hpc.data.composition import (
    COMPOSITION_TOLERANCE,
    Basis,
    Composition,
    CompositionError,
    atomic_fractions_table,
    sums_to_total,
)
from dm_hpc.data.records import (
    MAX_LABEL,
    MAX_METHOD,
    MaterialClass,
    MaterialRecord,
    ProcessStep,
    PropertyValue,
    Provenance,
    Quantity,
    RawMaterial,
    Source,
    label_problem,
    purchase_date_problem,
    purity_problem,
    trimmed,
)
from dm_hpc.data.rounding import round_significant
from dm_hpc.data.columns import RAW_FIELDS, RAW_USED, property_column
from dm_hpc.data.sheetfiles import (DOT_GROUPS, MERGED_CELL, VALUELESS_CELL, SheetError, ascii_minus, blank,
                                     describe_error, why_dot_groups)
from dm_hpc.data.verdicts import Decision, Verdict, converted_cell, refused
from dm_hpc.data.vocabulary import closest_name, converter, same_unit, term

#: What a lab writes in a measurement cell of a sample it did not make (the one explicit marker).
NOT_MADE = "not made"
_NOT_MADE_SPELLINGS = frozenset({NOT_MADE, "not_made", "not-made"})
_BALANCE = frozenset({"bal", "bal.", "balance"})
#: A number as a sheet writes it: ASCII digits only (``\d`` would take Arabic-Indic digits too).
_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
#: The characters of plain numbers, one per line. Spelt with these alone, a text is a number to
#: ``float`` exactly when it matches ``_NUMBER`` (no space, underscore, other digit, inf or nan
#: can be written with them), so a column of them is read without a test per cell.
_NUMBER_CHARS = re.compile(r"[0-9.eE+\-\n]*")
_COMMA_NUMBER = r"[+-]?(?:[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]*),[0-9]+(?:[eE][+-]?[0-9]+)?"
_NON_FINITE = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity",
                         "#num!", "#div/0!", "#value!", "#n/a", VALUELESS_CELL.lower()})
#: What labs write in a measurement cell for "no value" (any ``MINUS_SIGNS`` dash counts as "-"):
#: refused with what to write instead, a blank cell or ``NOT_MADE``. Read as either, it would
#: guess which one the lab meant: "nd" is "not determined" to one lab, "not detected" to another.
_NO_VALUE = frozenset({"n/a", "na", "n.a.", "n/d", "nd", "n.d.", "none", "-", "--", "\u2014", "\u2015"})
#: A value written with its spread (``1.2 ± 0.1``, ``1.2 +/- 0.1``, ``1.2+-0.1``; minus signs as ASCII).
# the value: anything but a space, '±' or a '+' that is not an exponent's sign ("1.2e+3 ± 0.1")
_SPREAD = re.compile(r"\s*(?P<value>(?:[^\s±+]|(?<=[eE])\+)*)\s*(?P<sign>±|\+\s*/\s*-|\+-)\s*(?P<spread>.*?)\s*")
_SIG_DIGITS = 12  # as records._round: a record built here has the validated record's id
#: How a sheet header names each basis (``composition:Cu [at%]``).
BASIS_LABEL = {Basis.atomic_fraction: "at_frac", Basis.atomic_percent: "at%",
               Basis.weight_fraction: "wt_frac", Basis.weight_percent: "wt%"}


class ColumnLike(Protocol):
    """A parsed template header (``dm_hpc.data.sheets.Column``)."""

    header: str
    kind: str
    name: str
    unit: str | None
    step: str | None
    occurrence: int


@dataclass(frozen=True)
class Cells:
    """One column of a sheet read as numbers.

    ``values``: float64, NaN where blank or bad (shape ``(n_rows,)``); ``blank``: empty cells;
    ``marked``: cells holding one of the allowed words (``bal``, ``not made``);
    ``bad``: row position -> why the cell is not a number.
    """

    values: np.ndarray
    blank: np.ndarray
    marked: np.ndarray
    bad: dict[int, str]


#: ``MERGED_CELL`` as the reader writes it; groups: the merge's first ``cell`` and its ``row`` (sheet line).
_MERGED = re.compile(re.escape(MERGED_CELL).replace(re.escape("{}"), "(?P<cell>[A-Z]+(?P<row>[0-9]+))"))


def _meant_id(sid: Any, known_ids: Collection[str]) -> str:
    """"; did you mean ..." for a sample id typed in other case or with a slip ("hea-demo-l002-01")."""
    if not isinstance(sid, str):
        return ""
    by_case = {k.casefold(): k for k in known_ids}
    meant = by_case.get(sid.strip().casefold()) or closest_name(sid, list(known_ids), 0.9)
    return f" (did you mean {meant!r}?)" if meant else ""


def merged_into(value: Any) -> str | None:
    """The merge's first cell ('K2') when ``value`` is the reader's text for a cell a merge covers
    (``MERGED_CELL``), else None."""
    m = _MERGED.fullmatch(value) if isinstance(value, str) else None
    return m["cell"] if m else None


def shared_when_merged(cells: Sequence[Any], lines: Sequence[int]) -> list[Any]:
    """A column's ``cells`` (one per sheet line of ``lines``) with each cell a merge covers holding
    the cell of this column in the merge's first row: the merged text when the merge starts in
    this column; else (a merge from another column, or from the header) the covered cell itself,
    still ``MERGED_CELL`` (refused, or no yes). For the columns of ``SHARED_WHEN_MERGED``."""
    at = {line: i for i, line in enumerate(lines)}
    return [cells[at[int(m["row"])]] if isinstance(v, str) and (m := _MERGED.fullmatch(v)) and int(m["row"]) in at
            else v for v in cells]


def why_merged(text: str) -> str:
    """What is wrong with a cell a merge covers (``MERGED_CELL``), in the lab's words."""
    return f"{text[1:-1]}: the value shown is that cell's; unmerge the cells and type this row's own value"


#: Raw-material amounts given as shares of the sample: the unit's total (a row's amounts in such
#: columns add up to at most it; the list need not be complete, a dopant alone is fine).
RAW_SHARE_UNITS = {"%": 100.0, "wt%": 100.0, "at%": 100.0, "mol%": 100.0, "vol%": 100.0,
                   "wt_frac": 1.0, "at_frac": 1.0, "mol_frac": 1.0, "vol_frac": 1.0}
_RAW_DIMENSIONS = ("[mass]", "[length] ** 3", "[substance]")


def raw_unit_problem(unit: str) -> str | None:
    """Why ``unit`` is no unit of a raw material's amount, else None: a share of the sample
    (``RAW_SHARE_UNITS``), none (parts), or a mass, volume or amount of substance ("12 bananas"
    and "[MPa]" were stored as amounts)."""
    from dm_hpc.data.units import parse_unit

    if unit in RAW_SHARE_UNITS or unit == "dimensionless":
        return None
    try:
        dim = str(parse_unit(unit).dimensionality)
    except ValueError:
        return f"{unit!r} is not a unit"
    if dim in _RAW_DIMENSIONS:
        return None
    return (f"[{unit}] is not an amount: give a mass (g, kg), a volume (mL, L), moles (mol) or a share "
            f"({', '.join(sorted(RAW_SHARE_UNITS))})")


def _invisible_problem(text: str) -> str | None:
    """Why a sample id typed on a sheet would not read as what it is: a Unicode format or control
    character (a right-to-left override shows "S1\u202e2S" as another id; a zero-width space makes
    two ids that look alike). Asked of what a lab types; records already stored are not re-judged."""
    bad = next((ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf")), None)
    return None if bad is None else f"must not contain invisible characters (U+{ord(bad):04X} {unicodedata.name(bad, '')})".replace(" )", ")")


def why_not_a_number(text: str) -> str:
    """What is wrong with a text that is not a number, in the lab's words."""
    low = text.strip().lower()
    if _MERGED.fullmatch(text):
        return f"{why_merged(text)}, or leave it blank"
    if text == VALUELESS_CELL:
        return "a number cell without a value (inf or NaN saved by a program): type the measured value, or clear the cell"
    if low in _NON_FINITE:
        return "not a finite number (inf, NaN or a spreadsheet error): type the measured value, or leave the cell empty"
    if any(ch.isdigit() and not "0" <= ch <= "9" for ch in text):
        names = sorted({unicodedata.name(ch, "?").split(" DIGIT")[0].title() for ch in text if ch.isdigit() and not "0" <= ch <= "9"})
        return f"digits other than 0-9 ({', '.join(names)}): write the number with the digits 0-9"
    if "_" in text and re.fullmatch(r"[+-]?[0-9_.eE+-]+", text.strip()):
        return "digit groups are not read ('1_000'): write 1000"
    if "," in text:
        return "a comma in a number: this sheet uses '.' as its decimal mark; write 1.5, not 1,5 or 1,000"
    return "not a number"


def why_not_a_measurement(text: str, kind: str, uncertainty: str, has_uncertainty: bool) -> str:
    """``why_not_a_number`` for a cell of a property (``kind`` "property") or uncertainty column,
    with what to write instead of a "no value" word or a value with its spread. ``uncertainty``:
    the header of the property's uncertainty column (``has_uncertainty``: the sheet has it).

    A spread is refused, not split into the uncertainty column: "±" on a lab report is a
    standard uncertainty to one lab and a 95 % (k=2) interval or a half-range to another, and the
    store's uncertainty is the standard one (the model's noise, crosscheck's agreement)."""
    if ascii_minus(text.strip().lower()) in _NO_VALUE:
        if kind == "uncertainty":
            return "not a number: leave the cell blank when the uncertainty is not known"
        # a blank cell leaves a row pending only when the row holds no other value; beside one it
        # is stored without this property (a partial record), so the advice holds for both
        return (f"not a value: leave the cell blank while it is not measured yet and send the row again once it "
                f"is, or write {NOT_MADE!r} if the sample was not made")
    spread = _SPREAD.fullmatch(ascii_minus(text))
    if spread is None:
        why = why_not_a_number(text)
        if kind == "property" and why == "not a number" and any(ch.isalpha() for ch in text):
            # a word where a value goes is most often a sample that failed ("failed", "not  made")
            return f"not a number: type the measured value, or write {NOT_MADE!r} if the sample was not made"
        return why
    sign = re.sub(r"\s", "", spread["sign"])
    if kind == "uncertainty":
        return f"write the spread without {sign!r}" + (f" ({spread['spread']})" if spread["spread"] else "")
    plain = spread["value"] and spread["spread"] and not re.search(r"[\s%]", spread["spread"])  # not "5 %"
    value, width = (spread["value"], spread["spread"]) if plain else ("the value", "the spread")
    where = (f"in its {uncertainty!r} cell" if has_uncertainty
             else f"in it (add a column {uncertainty!r}, in the value's unit)")
    return (f"a value with its spread: write {value} here and {width} {where}; the column holds the standard "
            "uncertainty (halve a spread given at k=2 or 95 %)")


def parse_cells(column: pd.Series, decimal: str = ".", words: Collection[str] = (),
                why: Callable[[str], str] = why_not_a_number) -> Cells:
    """Read a column of cells (text, numbers, None) as float64, all at once.

    Text is read with one grammar (see the module docstring); ``decimal=","`` also reads
    ``1,5`` and ``1.234,5``; any of ``sheetfiles.MINUS_SIGNS`` is a minus. A float NaN cell is
    blank (a DataFrame's empty cell); an infinite one is bad. ``words`` are accepted texts (lower
    case), returned in ``marked``; ``why`` says what is wrong with a text that is not a number.
    """
    obj = column.to_numpy(dtype=object)
    n = len(obj)
    values = np.full(n, np.nan)
    blank = np.zeros(n, dtype=bool)
    marked = np.zeros(n, dtype=bool)
    bad: dict[int, str] = {}
    if pd.api.types.infer_dtype(obj, skipna=True) in ("string", "empty"):  # a CSV column: text and blanks
        is_none = pd.isna(obj)  # None, NaN and NA: all blank, as below
        is_str = ~is_none
    else:
        is_str = np.fromiter((isinstance(v, str) for v in obj), dtype=bool, count=n)
        is_none = np.fromiter((v is None or v is pd.NA for v in obj), dtype=bool, count=n)
    blank |= is_none
    for i in np.flatnonzero(~is_str & ~is_none):  # numbers from XLSX or a DataFrame
        v = obj[i]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            bad[int(i)] = f"not a number ({type(v).__name__})"
            continue
        x = float(v)
        if np.isnan(x):
            blank[i] = True
        elif not np.isfinite(x):
            bad[int(i)] = why_not_a_number("inf")
        else:
            values[i] = x
    at = np.flatnonzero(is_str)
    texts = obj[at].tolist()
    if texts and decimal == "." and _NUMBER_CHARS.fullmatch("\n".join(texts)):
        # the usual column, plain numbers only; a text float refuses, or a value that
        # overflows, takes the cell-by-cell path below for its message
        try:
            parsed = np.array(list(map(float, texts)), dtype=float)
        except ValueError:
            parsed = np.array([np.inf])
        if np.isfinite(parsed).all():
            values[at] = parsed
            return Cells(values, blank, marked, bad)
    if len(at):
        text = pd.Series(obj[at], dtype=object).str.strip()
        empty = (text == "").to_numpy()
        blank[at[empty]] = True
        word = text.str.lower().isin(words).to_numpy() if words else np.zeros(len(at), dtype=bool)
        marked[at[word]] = True
        text = text.map(ascii_minus)  # "−0.05" as Word and Excel autocorrect it
        ambiguous = np.zeros(len(at), dtype=bool)
        if decimal == ",":
            # "1.234" where "1.234,5" is 1234.5: a thousands group or a decimal point? Read either
            # way, one of them is off by 1000 (it was read as 1.234, silently)
            ambiguous = text.str.fullmatch(DOT_GROUPS.pattern).to_numpy(dtype=bool)
            comma = text.str.fullmatch(_COMMA_NUMBER).to_numpy(dtype=bool)
            text[comma] = text[comma].str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        number = text.str.fullmatch(_NUMBER).to_numpy(dtype=bool) & ~ambiguous
        # Python's float: correctly rounded, as the fast path above and pydantic's validation
        parsed = np.array([float(t) if ok else np.nan for t, ok in zip(text.tolist(), number.tolist())], dtype=float)
        finite = np.isfinite(parsed)
        values[at[number & finite]] = parsed[number & finite]
        for j in np.flatnonzero(~empty & ~word & ~(number & finite)):
            bad[int(at[j])] = (why_not_a_number("inf") if number[j] else why_dot_groups(text.iloc[j]) if ambiguous[j]
                               else why(str(obj[at[j]])))
    return Cells(values, blank, marked, bad)


def round_as_records(values: np.ndarray) -> np.ndarray:
    """12 significant digits, as ``records._round``: conversions do not change a record id."""
    return round_significant(values, _SIG_DIGITS)


@dataclass
class RowChecks:
    """What the column checks found, row by row (positions in the table, not sheet lines)."""

    lines: Sequence[int]
    sample_ids: list[str | None]
    verdicts: list[Verdict] = field(default_factory=list)
    bad_rows: set[int] = field(default_factory=set)

    def refuse(self, row: int, reason: str, column: str | None = None, value: Any = None, **extra: Any) -> None:
        self.verdicts.append(refused(self.lines[row], reason, sample_id=self.sample_ids[row], column=column,
                                     value=value, **extra))
        self.bad_rows.add(row)


@dataclass(frozen=True)
class CheckedRows:
    """A table checked: ``records`` (with their sheet ``lines``), rows ``not_made`` and rows
    ``pending`` (line, sample id) and every verdict (accepted rows, converted cells)."""

    records: list[MaterialRecord]
    lines: list[int]
    not_made: list[tuple[int, str | None]]
    pending: list[tuple[int, str | None]]
    verdicts: list[Verdict]


def _meta_header(columns: Sequence[ColumnLike], name: str) -> str | None:
    return next((c.header for c in columns if c.kind == "meta" and c.name == name), None)


def _meta(table: pd.DataFrame, columns: Sequence[ColumnLike], name: str, lines: Sequence[int]) -> list[str | None]:
    """A meta column's cells as stripped text (None when blank or absent); in a column of
    ``SHARED_WHEN_MERGED``, a cell a merge covers holds the merge's first cell's text."""
    header = _meta_header(columns, name)
    if header is None:
        return [None] * len(table)
    cells = table[header].tolist()
    if name in SHARED_WHEN_MERGED:
        cells = shared_when_merged(cells, lines)
    return _texts(cells)


def _texts(cells: Sequence[Any]) -> list[str | None]:
    """Cells as text without the spaces around them, None when blank (``records.trimmed``: the
    rule intake applies to a record's texts, so a record made in Python reads back as itself)."""
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else trimmed(str(v)) for v in cells]


def _calendar_dates(cells: Sequence[Any]) -> list[Any]:
    """Cells with a workbook's date cell (a datetime at midnight: Excel turns a typed 2024-03-01
    into one) as the date it shows, YYYY-MM-DD; any other cell as it is."""
    return [v.date().isoformat() if isinstance(v, datetime) and v.time() == time() and v.tzinfo is None
            else v.isoformat() if isinstance(v, date) and not isinstance(v, datetime) else v for v in cells]


@dataclass(frozen=True)
class CheckedColumns:
    """A table that passed every check, in canonical form; arrays have one entry per table row
    (shape ``(n,)``), ``canonical`` and ``uncertainty`` in the vocabulary's units.

    ``keep``: rows that are not wholly empty; ``has_value``: rows with a measurement (records);
    ``has_marker``: rows marked ``not made``; ``meta``: meta column -> texts (None when blank);
    ``classes``: material class per row; ``parsed``: header -> cells; ``canonical``: header of a
    property or process column -> values; ``uncertainty``: property name -> values; ``details``:
    header of a conditions or step column (equipment, settings, order) -> each row's value as the
    record holds it (a dict, a text or an int; None where blank).
    """

    table: pd.DataFrame | None  # None once the cells are no longer needed (then verdicts hold no value)
    columns: Sequence[ColumnLike]
    lines: Sequence[int]
    defaults: Any
    origin: str
    keep: np.ndarray
    has_value: np.ndarray
    has_marker: np.ndarray
    meta: dict[str, list[str | None]]
    classes: list[str]
    parsed: dict[str, Cells]
    canonical: dict[str, np.ndarray]
    uncertainty: dict[str, np.ndarray]
    composition: CompositionTable
    details: dict[str, list[Any]] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[ColumnLike]:
        return [c for c in self.columns if c.kind == kind]

    def has_details(self) -> bool:
        """Whether a row gives a property's conditions or a step's equipment, settings or order."""
        return any(v is not None for values in self.details.values() for v in values)


def check_table(
    table: pd.DataFrame, columns: Sequence[ColumnLike], basis: Basis, defaults: Any, lines: Sequence[int],
    origin: str, decimal: str = ".", known_ids: Collection[str] | None = None,
) -> CheckedRows:
    """Check every column of ``table`` at once and build its records; raises ``SheetError``
    with a verdict for every refused cell or row (nothing is built then).

    ``defaults``: a ``SheetDefaults`` (source, method, campaign, contributor, institution, extra).
    """
    return build_records(check_columns(table, columns, basis, defaults, lines, origin, decimal, known_ids))


def check_columns(
    table: pd.DataFrame, columns: Sequence[ColumnLike], basis: Basis, defaults: Any, lines: Sequence[int],
    origin: str, decimal: str = ".", known_ids: Collection[str] | None = None,
) -> CheckedColumns:
    """Every check of ``check_table``, without building records: the table in canonical form
    (for ``dm_hpc.data.sheet_columns``, which turns it into store columns directly)."""
    n = len(table)
    meta = {name: _meta(table, columns, name, lines) for name in
            ("sample_id", "formula", "material_class", "source", "method", "contributor", "institution", "notes",
             "input_hash", "record_id")}
    # a covered cell left in a meta column (one that names a sample, or a merge from another
    # column) is refused, never stored as text; a sample id it stood for is none (no "unknown id")
    merged = [(name, i, v) for name, cells in meta.items() for i, v in enumerate(cells)
              if v is not None and _MERGED.fullmatch(v)]
    merged_ids = {i for name, i, _ in merged if name == "sample_id"}
    for i in merged_ids:
        meta["sample_id"][i] = None
    rows = RowChecks(lines, meta["sample_id"])
    for name, i, v in merged:
        rows.refuse(i, why_merged(v), _meta_header(columns, name), v)
    parsed: dict[str, Cells] = {}
    uncertainties = {c.name: c.header for c in columns if c.kind == "uncertainty"}
    units = {c.name: c.unit for c in columns if c.kind == "property"}
    for c in columns:
        if c.kind in ("composition", "raw", "process", "property", "uncertainty"):
            words = _BALANCE if c.kind == "composition" else _NOT_MADE_SPELLINGS if c.kind == "property" else ()
            why = why_not_a_number
            if c.kind in ("property", "uncertainty"):
                header = uncertainties.get(c.name) or property_column(c.name, units.get(c.name), kind="uncertainty")
                why = partial(why_not_a_measurement, kind=c.kind, uncertainty=header,
                              has_uncertainty=c.name in uncertainties)
            parsed[c.header] = cells = parse_cells(table[c.header], decimal, words, why)
            for i, why in cells.bad.items():
                rows.refuse(i, why, c.header, table[c.header].iloc[i])
    details = _details(table, columns, rows, decimal)
    meta_blank = np.ones(n, dtype=bool)
    for c in columns:
        if c.kind == "meta" and c.name in meta:  # "confirm" is read by the campaign's model check
            meta_blank &= np.array([v is None for v in meta[c.name]], dtype=bool)
    template_blank = meta_blank.copy()
    for header, cells in parsed.items():
        template_blank &= cells.blank
    for header in details:
        template_blank &= table[header].map(blank).to_numpy(dtype=bool)
    keep = ~template_blank  # a wholly empty row is no row

    classes = [m or "metal" for m in meta["material_class"]]
    known_classes = {m.value for m in MaterialClass}
    sources = {s.value for s in Source}
    method_problems: dict[str, str | None] = {}  # a sheet has few methods and many rows
    for i in np.flatnonzero(keep).tolist():
        if classes[i] not in known_classes:
            rows.refuse(i, f"material class must be one of {', '.join(sorted(known_classes))}",
                        "material_class", classes[i])
        src = meta["source"][i] or defaults.source.value
        if src not in sources:
            rows.refuse(i, "source must be computed or experimental", "source", src)
        method = meta["method"][i] or defaults.method
        if method not in method_problems:
            method_problems[method] = "is empty" if not method.strip() else label_problem(method, MAX_METHOD)
        if method_problems[method] is not None:
            rows.refuse(i, f"method {method_problems[method]}", "method", method)
        sid = meta["sample_id"][i]
        plain = sid is None or (sid.isascii() and sid.isprintable() and len(sid) <= MAX_LABEL)
        problem = None if plain else label_problem(sid, MAX_LABEL) or _invisible_problem(sid)  # asked in full
        if problem is not None:
            rows.refuse(i, f"a sample id {problem}", "sample_id", sid)
    # a class's tighter range is for measurements (``MaterialRecord._in_class_range``): a computed
    # row keeps the general one ("" names no class), so an export of what the store holds reads back
    class_array = np.array([cls if (meta["source"][i] or defaults.source.value) == Source.experimental.value else ""
                            for i, cls in enumerate(classes)], dtype=object)

    canonical: dict[str, np.ndarray] = {}
    for c in columns:  # units, then physical ranges per material class
        if c.kind not in ("process", "property"):
            continue
        cells = parsed[c.header]
        kind = "process_parameter" if c.kind == "process" else "property"
        t = term(c.name, kind)
        canon = np.asarray(converter(c.name, c.unit, kind)(cells.values), dtype=float)
        canonical[c.header] = canon
        converted = not same_unit(c.name, c.unit, kind)
        have = ~np.isnan(canon)
        for cls in set(class_array[have].tolist()):
            low, high = t.bounds(cls)
            sel = have & (class_array == cls)
            with np.errstate(invalid="ignore"):
                out = sel & ((canon < low) | (canon > high) | ((canon <= 0) if t.positive else False) | ~np.isfinite(canon))
            for i in np.flatnonzero(out):
                hint = t.hint_for(float(canon[i]), low, high)
                raw = float(cells.values[i])
                if converted and low <= raw <= high and (raw > 0 or not t.positive):
                    # the number itself fits the canonical unit: the header's unit is what is wrong
                    # (the hint "a value in kg/m3? write [kg/m**3]" was given to a header saying just that)
                    hint = f"; the number reads as {t.unit}: write the header as [{t.unit}]"
                rows.refuse(int(i), f"{c.name} {canon[i]:g} {t.unit}{f' (converted from [{c.unit}])' if converted else ''}"
                                    f" is outside the physical range ({t.range_text(cls)}){hint}",
                            c.header, table[c.header].iloc[i], converted_from=c.unit if converted else None,
                            canonical=float(canon[i]))

    prop_cols = [c for c in columns if c.kind == "property"]
    unc_cols = {c.name: c for c in columns if c.kind == "uncertainty"}
    has_value = np.zeros(n, dtype=bool)
    has_marker = np.zeros(n, dtype=bool)
    for c in prop_cols:
        has_value |= ~np.isnan(parsed[c.header].values) | np.isin(np.arange(n), list(parsed[c.header].bad))
        has_marker |= parsed[c.header].marked
    for i in np.flatnonzero(keep & has_value & has_marker):
        rows.refuse(int(i), f"the row says {NOT_MADE!r} but also holds a measurement; keep one")
    for c in (c for c in columns if c.kind == "conditions"):
        value = parsed[next(pc.header for pc in prop_cols if pc.name == c.name)]
        for i in np.flatnonzero(keep & np.isnan(value.values) & ~value.marked).tolist():
            if details[c.header][i] is not None and i not in value.bad:
                rows.refuse(i, f"conditions without a value of {c.name}", c.header, table[c.header].iloc[i])
    uncertainty: dict[str, np.ndarray] = {}
    for name, uc in unc_cols.items():
        pc = next(c for c in prop_cols if c.name == name)
        u = parsed[uc.header].values
        without = keep & ~np.isnan(u) & np.isnan(parsed[pc.header].values) & ~parsed[pc.header].marked
        for i in np.flatnonzero(without & ~np.isin(np.arange(n), list(parsed[pc.header].bad))):
            rows.refuse(int(i), f"an uncertainty without a value of {name}", uc.header, table[uc.header].iloc[i])
        negative = ~np.isnan(u) & (u < 0)
        for i in np.flatnonzero(negative):
            rows.refuse(int(i), "an uncertainty must be >= 0", uc.header, table[uc.header].iloc[i])
        conv = converter(name, pc.unit, "property")
        v = parsed[pc.header].values
        # an uncertainty converts like a difference: scale only, no offset (as PropertyValue)
        with np.errstate(over="ignore", invalid="ignore"):
            uncertainty[name] = u if same_unit(name, pc.unit) else np.abs(conv(v + u) - conv(v))
        # 1e306 GPa is finite, 1e309 MPa is not: an infinite uncertainty stored would make every
        # later read of the record fail validation (and a store is never rewritten)
        for i in np.flatnonzero(keep & np.isfinite(u) & np.isfinite(v) & ~np.isfinite(uncertainty[name])):
            rows.refuse(int(i), f"the uncertainty of {name} is out of range once converted to "
                        f"{term(name).unit}", uc.header, table[uc.header].iloc[i])

    compositions = _compositions(table, columns, parsed, basis, rows, keep)
    comp_given = np.zeros(n, dtype=bool)
    for c in columns:
        if c.kind == "composition":
            comp_given |= ~parsed[c.header].blank
    raw_cols = [c for c in columns if c.kind == "raw"]
    for c in raw_cols:
        for i in np.flatnonzero(parsed[c.header].values < 0):
            rows.refuse(int(i), f"negative amount of {c.name}", c.header, table[c.header].iloc[i])
        total = RAW_SHARE_UNITS.get(c.unit)
        for i in np.flatnonzero(parsed[c.header].values > (total or np.inf) * (1 + 1e-9)):
            rows.refuse(int(i), f"{c.name} is more than the whole sample ({total:g} {c.unit})", c.header,
                        table[c.header].iloc[i])
    by_basis: dict[str, list] = {}  # wt% and wt_frac are shares of one whole; at% of another
    for c in raw_cols:
        if c.unit in RAW_SHARE_UNITS:
            by_basis.setdefault(c.unit.replace("%", "_").split("_")[0], []).append(c)
    for shares in by_basis.values():
        whole = np.column_stack([np.clip(parsed[c.header].values, 0, None) / RAW_SHARE_UNITS[c.unit] for c in shares])
        summed = np.nansum(whole, axis=1)
        for i in np.flatnonzero(keep & (summed > 1 + COMPOSITION_TOLERANCE) & ~(whole > 1 + 1e-9).any(axis=1)):
            rows.refuse(int(i), f"raw-material shares ({', '.join(c.header for c in shares)}) make "
                        f"{100 * summed[i]:.4g} % of the sample")

    for same in _amount_columns(columns).values():  # one raw material in columns of other units
        given = np.column_stack([~np.isnan(parsed[c.header].values) for c in same])
        for i in np.flatnonzero(keep & (given.sum(axis=1) > 1)).tolist():
            twice = [c.header for c, g in zip(same, given[i]) if g]
            rows.refuse(i, f"{same[0].name} is given in {' and '.join(twice)}: give its amount in one of them")

    raw_given = np.zeros(n, dtype=bool)  # an amount of a raw material the row gives (``_raw_in_rows``)
    for c in raw_cols:
        amount = parsed[c.header].values
        detailed = np.zeros(n, dtype=bool)
        for f in columns:
            if f.kind == "raw_field" and f.step == c.name and f.occurrence == c.occurrence:
                detailed |= np.array([v is not None for v in details[f.header]], dtype=bool)
        raw_given |= (np.nan_to_num(amount, nan=0.0) > 0) | (detailed & ~np.isnan(amount))
    seen: dict[str, int] = {}
    for i in np.flatnonzero(keep).tolist():
        sid = meta["sample_id"][i]
        unknown = known_ids is not None and sid is not None and sid not in known_ids
        # a row of an unknown id is refused by its id: its empty composition follows from it (a
        # lab's table of ids and values takes each composition from the id's suggestion)
        if not comp_given[i] and meta["formula"][i] is None and not raw_given[i] and not unknown:
            rows.refuse(int(i), "no composition given (all composition cells empty)")
        if sid is None:
            if known_ids is not None and i not in merged_ids:
                rows.refuse(int(i), "sample_id is empty; every row must answer a suggestion id", "sample_id")
            continue
        if sid in seen:
            rows.refuse(int(i), f"duplicate sample_id {sid!r} (first on line {seen[sid]})", "sample_id", sid)
            continue
        seen[sid] = lines[i]
        if unknown:
            rows.refuse(int(i), f"unknown sample_id {sid!r}: not a suggested experiment{_meant_id(sid, known_ids)}",
                        "sample_id", sid)
    if rows.bad_rows:
        raise SheetError(origin, sorted(rows.verdicts, key=lambda v: v.line))
    return CheckedColumns(table, columns, lines, defaults, origin, keep, has_value, has_marker, meta, classes,
                          parsed, canonical, uncertainty, compositions, details)


#: What the JSON cell of a property's conditions or a step's settings holds, said to a cell that does not.
_CONDITIONS_EXAMPLE = '{"temperature": 298.0, "load": "HV10"}'
_SETTINGS_EXAMPLE = '{"atmosphere": "Ar"}'


def _no_key_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    twice = next((k for k in keys if keys.count(k) > 1), None)
    if twice is not None:
        raise ValueError(f"{twice!r} given twice")
    return dict(pairs)


def _json_object(text: str, texts_only: bool = False) -> tuple[dict[str, float | str] | None, str | None]:
    """A cell of a property's conditions (numbers or texts) or, ``texts_only``, of a step's
    settings, as the record holds it (names sorted, numbers as floats), and None; or None and why
    it is not one. JSON, so a number stays a number and a text a text ("10" is not 10.0)."""
    example = _SETTINGS_EXAMPLE if texts_only else _CONDITIONS_EXAMPLE
    try:
        obj = json.loads(text, object_pairs_hook=_no_key_twice)
    except (ValueError, RecursionError) as exc:
        obj = exc
    if not isinstance(obj, dict):
        why = f" ({obj})" if isinstance(obj, ValueError) else ""
        return None, f"not a JSON object of names and {'texts' if texts_only else 'values'}, e.g. {example}{why}"
    out: dict[str, float | str] = {}
    for key, v in sorted(obj.items()):
        if isinstance(v, str):
            out[key] = v
        elif texts_only:
            return None, f"setting {key!r}: {json.dumps(v)} is not a text; a step's settings are texts (in quotes)"
        elif (number := _finite_number(v)) is not None:
            out[key] = number
        else:
            return None, (f"condition {key!r}: {json.dumps(v)} is not a number or a text (a finite number, or a text "
                          "in quotes)")
    return out, None


def _amount_columns(columns: Sequence[ColumnLike]) -> dict[tuple[str, int], list[ColumnLike]]:
    """The amount columns of each raw material (name, occurrence), one per unit the sheet gives it in."""
    out: dict[tuple[str, int], list[ColumnLike]] = {}
    for c in columns:
        if c.kind == "raw":
            out.setdefault((c.name, c.occurrence), []).append(c)
    return out


def _raw_in_rows(amounts: Sequence[ColumnLike], name: str, parsed: dict[str, Cells],
                 details: dict[str, list[Any]], fields: Sequence[ColumnLike], n: int) -> list[RawMaterial | None]:
    """Raw material ``name`` of each row (None where the row does not give it), from its amount
    columns (``amounts``, one per unit; a row fills one, checked) and its detail columns
    (``fields``, ``columns.RAW_FIELDS`` and ``RAW_USED``): a row gives it when its amount is above 0
    or a detail is given; then a given amount, 0 too, is its amount. An amount of 0 alone is a
    lab's "not used", as ever."""
    values = np.full(n, np.nan)
    units: list[str | None] = [None] * n
    for c in amounts:
        cells = parsed[c.header].values
        for i in np.flatnonzero(~np.isnan(cells) & np.isnan(values)).tolist():
            values[i], units[i] = cells[i], c.unit
    out: list[RawMaterial | None] = []
    for i in range(n):
        given = {f.name: details[f.header][i] for f in fields if details[f.header][i] is not None}
        if not given and not values[i] > 0:
            out.append(None)
            continue
        given.pop(RAW_USED, None)
        amount = None if np.isnan(values[i]) else Quantity.model_construct(value=float(values[i]), unit=units[i])
        # every field given: a default costs model_construct a signature look-up
        out.append(RawMaterial.model_construct(name=name, amount=amount,
                                               **{f: given.get(f) for f in RAW_FIELDS}))
    return out


def _raw_materials_by_row(columns: Sequence[ColumnLike], parsed: dict[str, Cells],
                         details: dict[str, list[Any]], n: int) -> list[list[RawMaterial]]:
    """Each row's raw materials, by name, those of one name by occurrence (``_raw_in_rows``)."""
    amounts = _amount_columns(columns)
    fields: dict[tuple[str, int], list[ColumnLike]] = {}
    for c in columns:
        if c.kind == "raw_field":
            fields.setdefault((c.step, c.occurrence), []).append(c)
    out: list[list[RawMaterial]] = [[] for _ in range(n)]
    for key in sorted({*amounts, *fields}):
        name = key[0]
        for i, rm in enumerate(_raw_in_rows(amounts.get(key, []), name, parsed, details, fields.get(key, []), n)):
            if rm is not None:
                out[i].append(rm)
    return out


def _finite_number(v: Any) -> float | None:
    """A JSON number as a float; None for anything else (true, null, a list, NaN, an integer beyond any float)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        number = float(v)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _details(table: pd.DataFrame, columns: Sequence[ColumnLike], rows: RowChecks, decimal: str) -> dict[str, list[Any]]:
    """``CheckedColumns.details``: the cells of the conditions, step and raw-material detail columns
    as the records hold them (None where blank or refused); each cell that is none is refused in ``rows``."""
    out: dict[str, list[Any]] = {}
    for c in columns:
        if c.kind == "raw_field" and c.name == "purity":
            cells = parse_cells(table[c.header], decimal)
            for i, why in cells.bad.items():
                rows.refuse(i, why, c.header, table[c.header].iloc[i])
            values = [None if math.isnan(v) else v for v in cells.values.tolist()]
            for i, v in enumerate(values):
                if v is not None and (why := purity_problem(v)) is not None:
                    values[i] = None
                    rows.refuse(i, why, c.header, table[c.header].iloc[i])
        elif c.kind == "raw_field" and c.name == RAW_USED:
            values = _texts(table[c.header].tolist())
            for i, text in enumerate(values):
                if text is not None and text.lower() != "yes":
                    values[i] = None
                    rows.refuse(i, f"write 'yes' (the row gives {c.step} without an amount above 0 or a detail) "
                                "or leave it blank", c.header, table[c.header].iloc[i])
        elif c.kind == "step" and c.name == "order":
            cells = parse_cells(table[c.header], decimal)
            for i, why in cells.bad.items():
                rows.refuse(i, why, c.header, table[c.header].iloc[i])
            values: list[Any] = [None if math.isnan(v) else int(v) if v == int(v) else None
                                 for v in cells.values.tolist()]
            for i in np.flatnonzero(~np.isnan(cells.values)).tolist():
                if values[i] is None:
                    rows.refuse(i, "a step's order is a whole number (its place in the route: 0, 1, 2, ...)",
                                c.header, table[c.header].iloc[i])
        elif c.kind in ("step", "raw_field", "conditions"):
            dated = c.kind == "raw_field" and c.name == "purchase_date"
            cells = table[c.header].tolist()
            values = _texts(_calendar_dates(cells) if dated else cells)
            for i, text in enumerate(values):
                why = None if text is None else why_merged(text) if merged_into(text) else None
                if text is not None and why is None and (c.kind == "conditions" or c.name == "settings"):
                    values[i], why = _json_object(text, texts_only=c.kind == "step")
                elif text is not None and why is None and dated:
                    why = purchase_date_problem(text)
                if why is not None:
                    values[i] = None
                    rows.refuse(i, why, c.header, table[c.header].iloc[i])
        else:
            continue
        out[c.header] = values
    return out


@dataclass(frozen=True)
class CompositionTable:
    """Each row's composition as canonical atomic fractions: ``elements`` (k, alphabetical),
    ``fractions`` and ``present`` (``n x k``; a row with no present entry has no composition)."""

    elements: list[str]
    fractions: np.ndarray
    present: np.ndarray

    def of_row(self, i: int) -> Composition | None:
        """Row ``i``'s composition (fractions already canonical: no validation needed)."""
        at = np.flatnonzero(self.present[i])
        if not at.size:
            return None
        return Composition.model_construct(fractions={self.elements[j]: float(self.fractions[i, j]) for j in at})


def _compositions(table: pd.DataFrame, columns: Sequence[ColumnLike], parsed: dict[str, Cells], basis: Basis,
                  rows: RowChecks, keep: np.ndarray) -> CompositionTable:
    """Every row's composition, sums checked for all rows at once, refusals added to ``rows``."""
    comp = [c for c in columns if c.kind == "composition"]
    n = len(table)
    if not comp:
        return CompositionTable([], np.zeros((n, 0)), np.zeros((n, 0), dtype=bool))
    amounts = np.column_stack([parsed[c.header].values for c in comp])
    balance = np.column_stack([parsed[c.header].marked for c in comp])
    given = ~np.isnan(amounts) | balance
    total = np.nansum(amounts, axis=1)
    n_bal = balance.sum(axis=1)
    negative = np.nan_to_num(amounts, nan=0.0) < 0
    for i, j in zip(*np.nonzero(negative)):
        rows.refuse(int(i), f"negative amount of {comp[j].name}", comp[j].header, table[comp[j].header].iloc[i])
    complete = sums_to_total(total, basis)
    candidates = keep & given.any(axis=1) & (n_bal <= 1)
    candidates[list(rows.bad_rows)] = False
    names = [c.name for c in comp]
    fractions, present, problems = atomic_fractions_table(
        np.where(candidates[:, None], amounts, np.nan), balance & candidates[:, None], names, basis)
    for i in np.flatnonzero(keep & given.any(axis=1)).tolist():
        if i in rows.bad_rows:
            continue
        if n_bal[i] > 1:
            rows.refuse(i, "more than one balance element: " + ", ".join(c.name for c, b in zip(comp, balance[i]) if b))
        elif n_bal[i] == 0 and not complete[i]:
            rows.refuse(i, f"composition sums to {total[i]:.6g} {BASIS_LABEL[basis]}, not {basis.scale:g} "
                           f"(tolerance {COMPOSITION_TOLERANCE * basis.scale:g}); correct the amounts or "
                           "write 'bal' for the balance element")
        elif i in problems:
            rows.refuse(i, problems[i])
    order = sorted(range(len(names)), key=names.__getitem__)
    return CompositionTable([names[j] for j in order], fractions[:, order], present[:, order])


#: The meta columns a record's provenance is made of (one ``Provenance`` per distinct tuple).
PROVENANCE_COLUMNS = ("source", "method", "contributor", "institution", "notes", "input_hash")
#: Meta columns whose cell merged over several rows is each row's: a lab sees the merged text in
#: every row it covers, and a note, a method or an institution typed once over two samples is
#: said of both (refusing would ask the lab to retype what it plainly meant); so is a "yes" typed
#: once over the confirm cells of two held samples (``sheets.records_from_table``): the lab reads
#: yes in both rows, and each confirmation is journalled by sample. A cell that names or measures
#: one sample (sample_id, formula, record_id, input_hash, a value) is refused when covered.
SHARED_WHEN_MERGED = ("source", "method", "contributor", "institution", "notes", "material_class", "confirm")


def provenance_of(checked: CheckedColumns, i: int, cache: dict[tuple, Provenance]) -> Provenance:
    """Row ``i``'s provenance: one object per distinct (source, method, contributor,
    institution, notes), so rows of one sheet share their timestamp."""
    meta, defaults = checked.meta, checked.defaults
    key = tuple(meta[k][i] for k in PROVENANCE_COLUMNS)
    prov = cache.get(key)
    if prov is None:
        try:
            prov = cache[key] = Provenance.model_validate({
                "source": key[0] or defaults.source.value, "method": key[1] or defaults.method,
                "campaign": defaults.campaign, "contributor": key[2] or defaults.contributor,
                "institution": key[3] or defaults.institution,
                "extra": {**defaults.extra, **({"notes": key[4]} if key[4] is not None else {})},
                **({"input_hash": key[5]} if key[5] is not None else {})})
        except ValueError as exc:
            raise SheetError(checked.origin, [refused(checked.lines[i], describe_error(exc),
                                                      sample_id=meta["sample_id"][i])]) from None
    return prov


def formula_composition(checked: CheckedColumns, i: int) -> Composition:
    """Row ``i``'s composition from its ``formula`` cell (refused with the row's line)."""
    formula = checked.meta["formula"][i]
    try:
        return Composition(formula)
    except (ValueError, CompositionError) as exc:
        raise SheetError(checked.origin, [refused(checked.lines[i], describe_error(exc), sample_id=checked.meta["sample_id"][i],
                                                  column="formula", value=formula)]) from None


#: How many rows ``record_id_warnings`` names one by one before it counts the rest.
SHOWN_ROWS = 10


def record_id_warnings(checked: CheckedColumns, lines: Sequence[int], ids: Sequence[str]) -> list[str]:
    """Rows that state a ``record_id`` (an exported sheet sent back) whose values are not that
    record's: a record id is the hash of a record's content, so an edited row is another record,
    stored under its own id (``ids``, the records' at their sheet ``lines``). Said, not refused:
    the edit may be the point (a correction under ``--replace``); who reads the reply must not
    take the row for the record it names."""
    claimed = dict(zip(checked.lines, checked.meta["record_id"]))
    off = [(line, claimed[line], rid) for line, rid in zip(lines, ids) if claimed.get(line) not in (None, rid)]
    out = [f"line {line}: the row's values are not those of record {was} (edited since it was exported?); "
           f"stored as record {now}" for line, was, now in off[:SHOWN_ROWS]]
    if len(off) > SHOWN_ROWS:
        out.append(f"... and {len(off) - SHOWN_ROWS} more rows whose record_id is not their values' record")
    return out


def not_made_and_pending(checked: CheckedColumns) -> tuple[list[tuple[int, str | None]], list[tuple[int, str | None]]]:
    """(line, sample id) of the rows marked ``not made`` and of the rows left pending."""
    rows = np.flatnonzero(checked.keep & ~checked.has_value).tolist()
    pairs = [(checked.lines[i], checked.meta["sample_id"][i], bool(checked.has_marker[i])) for i in rows]
    return [(line, sid) for line, sid, marked in pairs if marked], [(line, sid) for line, sid, marked in pairs if not marked]


#: A step of a row: its name and its occurrence among the row's steps of that name (1, 2, ...).
StepKey = tuple[str | None, int]


def _route(parameters: dict[StepKey, dict[str, float]], fields: dict[StepKey, dict[str, Any]],
           steps: dict[StepKey, int]) -> list[ProcessStep]:
    """A row's process steps, from each step's ``parameters`` (canonical, rounded) and ``fields``
    (``columns.STEP_FIELDS``), in route order: a step's ``order`` where the row gives it, else its
    place among the steps the row gives, in the order of the steps' first columns (``steps``);
    steps at one order keep that order (as the validated path sorts them)."""
    given = [s for s in steps if s in parameters or s in fields]
    route = [ProcessStep.model_construct(
        name=step[0], order=fields.get(step, {}).get("order", place), equipment=fields.get(step, {}).get("equipment"),
        parameters=dict(sorted(parameters.get(step, {}).items())), settings=fields.get(step, {}).get("settings", {}))
        for place, step in enumerate(given)]
    return sorted(route, key=lambda s: s.order)


def build_records(checked: CheckedColumns) -> CheckedRows:
    """Records of the rows that passed, built from canonical values (see the module docstring)."""
    table, lines, meta, parsed = checked.table, checked.lines, checked.meta, checked.parsed
    props, procs = checked.of_kind("property"), checked.of_kind("process")
    rounded = {h: np.array(round_as_records(np.nan_to_num(v, nan=0.0))) for h, v in checked.canonical.items()}
    unc_rounded = {name: np.array(round_as_records(np.nan_to_num(u, nan=0.0))) for name, u in checked.uncertainty.items()}
    converted = {c.header: not same_unit(c.name, c.unit) for c in props}  # once per column
    unc_headers = {c.name: c.header for c in checked.of_kind("uncertainty")}
    units = {c.header: term(c.name).unit for c in props}
    conditions = {c.name: checked.details[c.header] for c in checked.of_kind("conditions")}
    raw_materials = _raw_materials_by_row(checked.columns, parsed, checked.details, len(checked.keep))
    step_fields = [((c.step, c.occurrence), c.name, checked.details[c.header]) for c in checked.of_kind("step")]
    steps: dict[StepKey, int] = {}
    for c in checked.columns:
        if c.kind in ("process", "step"):
            steps.setdefault((c.step, c.occurrence), len(steps))
    provenance: dict[tuple, Provenance] = {}
    records: list[MaterialRecord] = []
    record_lines: list[int] = []
    verdicts: list[Verdict] = []
    for i in np.flatnonzero(checked.keep & checked.has_value).tolist():
        sid = meta["sample_id"][i]
        prov = provenance_of(checked, i, provenance)
        properties = []
        for c in props:
            if np.isnan(checked.canonical[c.header][i]):
                continue
            unc = checked.uncertainty.get(c.name)
            properties.append(PropertyValue.model_construct(
                name=c.name, value=float(rounded[c.header][i]), unit=units[c.header],
                uncertainty=None if unc is None or np.isnan(unc[i]) else float(unc_rounded[c.name][i]),
                # every field given: a default factory costs model_construct a signature look-up
                conditions=(conditions[c.name][i] or {}) if c.name in conditions else {}))
            if converted[c.header]:
                cell = None if table is None else table[c.header].iloc[i]
                verdicts.append(converted_cell(lines[i], sid, c.header, cell, c.unit,
                                               float(checked.canonical[c.header][i])))
                if unc is not None and not np.isnan(unc[i]):  # its uncertainty, in the same unit (checked)
                    head = unc_headers[c.name]
                    cell = None if table is None else table[head].iloc[i]
                    verdicts.append(converted_cell(lines[i], sid, head, cell, c.unit, float(unc[i])))
        process: dict[StepKey, dict[str, float]] = {}
        for c in procs:
            if not np.isnan(checked.canonical[c.header][i]):
                process.setdefault((c.step, c.occurrence), {})[c.name] = float(rounded[c.header][i])
        fields: dict[StepKey, dict[str, Any]] = {}
        for step, name, values in step_fields:
            if values[i] is not None:
                fields.setdefault(step, {})[name] = values[i]
        composition = checked.composition.of_row(i)
        if composition is None and meta["formula"][i] is not None:
            composition = formula_composition(checked, i)
        records.append(MaterialRecord.model_construct(
            material_class=MaterialClass(checked.classes[i]),
            composition=composition,
            raw_materials=raw_materials[i],
            process=_route(process, fields, steps),
            properties=sorted(properties, key=lambda p: p.name),
            sample_id=sid,
            structure=None,
            provenance=prov,
        ))
        record_lines.append(lines[i])
        verdicts.append(Verdict(Decision.accepted, lines[i], "stored", sid))
    not_made, pending = not_made_and_pending(checked)
    return CheckedRows(records, record_lines, not_made, pending, verdicts)
