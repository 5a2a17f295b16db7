"""Sheet files in and out: CSV (sniffed) and XLSX read as cells, written without formulas.

Writing. A cell whose text begins with ``=``, ``+``, ``-``, ``@``, tab or CR is a formula to
Excel and LibreOffice (CSV injection, OWASP): a lab name ``=cmd|' /C calc'!A0`` would run on the
lab's PC. Every text cell the engine writes goes through ``neutralise`` (OWASP's rule: a leading
single quote, which spreadsheet programs show as text), and XLSX text cells are written with an
explicit string type, so no cell of a workbook the engine writes is ever a formula. A text that
already begins with a quote gets one more, so ``unneutralise`` (applied on reading) is its exact
inverse and an exported sheet re-imports unchanged.

Reading. Labs send what Excel saves: semicolon-separated CSV with decimal commas, in cp1252,
or a workbook with several sheets. ``load_table`` sniffs the separator (the one that splits the
header into most columns), the encoding (UTF-8 with or without BOM, UTF-16 with BOM, else
cp1252) and the decimal mark, and keeps each row's line number for error messages. A row with
fewer cells than the header is a truncated file, an error; so is an unterminated quote.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import sys
import zipfile
from collections.abc import Sequence
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where a table is read: writing a sheet needs none
    import pandas as pd

from dm_hpc.data.verdicts import Verdict, refused

#: First characters that make a spreadsheet program read a cell as a formula (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_COMMA_NUMBER = re.compile(r"^\s*[+-]?(\d{1,3}(\.\d{3})+|\d*),\d+([eE][+-]?\d+)?\s*$")

#: A number of dot-separated groups of three and no comma: in a sheet whose decimal mark is ','
#: it may be a thousands group (1.234 = 1234) or a decimal point (1.234); refused, never guessed.
#: A first group of 0 is never a thousands group (0.125 is a decimal).
DOT_GROUPS = re.compile(r"[+-]?[1-9][0-9]{0,2}(?:\.[0-9]{3})+")


def why_dot_groups(text: str) -> str:
    """What to ask of a ``DOT_GROUPS`` cell in a decimal-comma sheet."""
    whole = text.replace(".", "")
    if text.count(".") > 1:  # 1.234.567: only a thousands reading makes a number
        return f"{text!r} in a sheet that writes ',' as its decimal mark: write {whole} (no thousands mark)"
    comma = text.replace(".", ",")
    return (f"{text!r} in a sheet that writes ',' as its decimal mark: is it {whole} (a thousands mark) or "
            f"{comma}? write {whole}, or {comma} with the decimal comma")
#: What a lab's software writes for the minus of a number: U+2212 MINUS SIGN (Word's and Excel's
#: autocorrect, and text pasted from a paper), U+2012 FIGURE DASH, U+2013 EN DASH (autocorrect of a
#: spaced hyphen), the small and fullwidth hyphen-minus (CJK input) and the two Unicode hyphens.
#: The em dash is not among them: alone in a cell it says "no value" (``sheet_checks``).
MINUS_SIGNS = "\u2212\u2012\u2013\ufe63\uff0d\u2010\u2011"
_TO_HYPHEN_MINUS = str.maketrans(dict.fromkeys(MINUS_SIGNS, "-"))
#: XLSX (XML 1.0) cannot hold these control characters at all.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
CSV_SUFFIXES = (".csv", ".tsv")
XLSX_SUFFIXES = (".xlsx",)
#: Largest sheet file read by any door (bytes): 100,000 template rows are ~15 MB as CSV.
MAX_SHEET_BYTES = 64 * 2**20
#: An XLSX is a zip; more than this unpacked is a zip bomb, not a lab sheet (bytes).
MAX_XLSX_UNPACKED = 256 * 2**20
#: Why a file type is refused, said the same by every door.
_REFUSED_TYPES = {
    ".xlsm": "a macro-enabled workbook (.xlsm) is refused; save it as a plain .xlsx workbook",
    ".xls": "an old-style .xls workbook is refused; save it as .xlsx",
    ".txt": "a .txt file is refused (its columns and encoding are guesses); save the sheet as .csv or .xlsx",
}
_SEPARATORS = (",", ";", "\t", "|")


class SheetError(ValueError):
    """A sheet that cannot be imported; ``problems`` lists (line, message) for every bad row,
    ``verdicts`` the same as ``Verdict`` objects (row, sample id, column, value, reason).

    Line 0 means the whole file (or the column map); the header is line 1.
    """

    def __init__(self, path: str, problems: Sequence[tuple[int, str] | Verdict]) -> None:
        self.path = path
        self.verdicts = [p if isinstance(p, Verdict) else refused(p[0], p[1]) for p in problems]
        self.problems = [v.problem() for v in self.verdicts]
        lines = "\n".join(f"  line {line}: {msg}" if line else f"  {msg}" for line, msg in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{path}: {len(self.problems)} problem(s), nothing imported:\n{lines}{more}")

    def __reduce__(self):  # picklable (a worker process may raise it)
        return type(self), (self.path, self.verdicts)


def describe_error(exc: Exception) -> str:
    """One line for a row's or a map's problem (pydantic errors as ``field: message``)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors())
    if isinstance(exc, KeyError):
        return str(exc.args[0]) if exc.args else str(exc)
    return str(exc)


def blank(value: Any) -> bool:
    """An empty cell: None, NaN or only whitespace."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


# ---------------------------------------------------------------------------------- writing
def neutralise(text: str) -> str:
    """``text`` safe for a spreadsheet cell: a leading quote when it could start a formula.

    Numbers written as text (``-0.05``, ``+3e5``) are left alone: they are not formulas.
    """
    if text.startswith(QUOTE) or (text.startswith(FORMULA_START) and not _NUMBER.match(text)):
        return QUOTE + text
    return text


def unneutralise(text: str) -> str:
    """Inverse of ``neutralise`` (also strips the quote Excel users type before ``=``)."""
    if text.startswith(QUOTE) and text[1:].startswith((*FORMULA_START, QUOTE)):
        return text[1:]
    return text


def _cell(value: Any) -> str | float | int | None:
    """A value as one safe cell: text neutralised, numbers as numbers, missing as empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or _is_na(value):
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return value
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return _cell(value.item())
    return neutralise(str(value))


def _is_na(value: Any) -> bool:
    """Is ``value`` pandas' NA (only a loaded pandas can have made one)?"""
    pandas = sys.modules.get("pandas")
    return pandas is not None and value is pandas.NA


def check_writable(path: str | Path) -> Path:
    """Raise ``ValueError`` naming the problem when a sheet cannot be written at ``path`` (a type
    other than .csv/.xlsx, a folder that does not exist or cannot be written, a folder named as
    the file): a command checks before it does anything it would journal."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".xlsx"):
        raise ValueError(f"{path}: unsupported sheet type {path.suffix!r} (use .csv or .xlsx)")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give the sheet's file name (e.g. {path / 'sheet.xlsx'})")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{path}: the folder {folder} cannot be written to")
    return path


def write_rows(header: Sequence[str], rows: Sequence[Sequence[Any]], path: str | Path) -> Path:
    """Write a table as CSV or XLSX (by suffix), atomically, with no cell a formula."""
    path = check_writable(path)
    suffix = path.suffix.lower()
    cells = [[_cell(h) for h in header]] + [[_cell(v) for v in row] for row in rows]
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    if suffix == ".csv":
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            for row in cells:  # repr: the shortest text that reads back as the same float
                writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in row])
    else:
        _write_xlsx(cells, tmp)
    tmp.replace(path)
    return path


def _write_xlsx(cells: list[list[Any]], path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("sheet")
    for row in cells:
        out = []
        for value in row:
            cell = WriteOnlyCell(ws, value=None)
            if isinstance(value, str):
                # explicit string type: openpyxl would otherwise take a text starting with "=" for
                # a formula; control characters XML cannot hold become U+FFFD
                cell.value = _XML_ILLEGAL.sub("\ufffd", value)
                cell.data_type = "s"
            else:
                cell.value = value
            out.append(cell)
        ws.append(out)
    wb.save(path)


def write_frame(table: pd.DataFrame, path: str | Path) -> Path:
    """``write_rows`` for a DataFrame (its columns are the header; the index is not written)."""
    return write_rows([str(c) for c in table.columns], table.itertuples(index=False, name=None), path)


# ---------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class LoadedTable:
    """Cells of a sheet (text, numbers or None), indexed by their line in the file (header: 1).

    ``decimal`` is the sheet's decimal mark: ``","`` for a CSV from a decimal-comma locale.
    ``refused``: cells refused as they were read (a formula without a saved result, which
    ``frame`` holds as ``formula_cell``): said together with the problems the checks find
    (``sheets.records_from_table``), not before them, so a lab learns every problem at once.
    ``shown``: (line, column) -> what the sender's spreadsheet shows in a cell that ``frame``
    holds a stand-in text for (``formula_cell``, ``VALUELESS_CELL``, ``MERGED_CELL``): the checks
    read the stand-in, which no check takes for a blank cell, and the annotated copy shows this.
    """

    frame: pd.DataFrame
    decimal: str = "."
    refused: tuple[Verdict, ...] = ()
    shown: Mapping[tuple[int, str], Any] = field(default_factory=dict)


def check_file(path: str | Path, shown: str | None = None) -> str:
    """The guards every door applies before a sheet is parsed; returns its kind (``csv`` or
    ``xlsx``) or raises ``SheetError`` naming ``shown`` (the name the user gave the file).

    Refused: an unsupported or macro-enabled type, a file over ``MAX_SHEET_BYTES``, a name
    whose extension disagrees with the content (a zip called .csv, text called .xlsx), and for
    a workbook: macros (``vbaProject.bin``, a macro-enabled content type), external links, and
    members that unpack to more than ``MAX_XLSX_UNPACKED`` (a zip bomb).
    """
    path = Path(path)
    shown = shown or str(path)
    suffix = path.suffix.lower()
    if suffix in _REFUSED_TYPES:
        raise SheetError(shown, [(0, _REFUSED_TYPES[suffix])])
    if path.is_dir():
        raise SheetError(shown, [(0, "is a folder, not a sheet: give the .xlsx or .csv file in it")])
    if suffix not in CSV_SUFFIXES + XLSX_SUFFIXES:
        raise SheetError(shown, [(0, f"unsupported sheet type {path.suffix or '(none)'!r} (use .csv or .xlsx)")])
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise SheetError(shown, [(0, f"cannot read the file: {exc.strerror or exc}")]) from None
    if size > MAX_SHEET_BYTES:
        raise SheetError(shown, [(0, f"file too large: {size} bytes (limit {MAX_SHEET_BYTES})")])
    if suffix in CSV_SUFFIXES:
        if head == b"PK\x03\x04":
            raise SheetError(shown, [(0, "this is a zip file (an XLSX workbook?), not a CSV; name it .xlsx")])
        return "csv"
    if head != b"PK\x03\x04":
        raise SheetError(shown, [(0, "not an XLSX workbook (not a zip file); a CSV must be named .csv")])
    _check_workbook(path, shown)
    return "xlsx"


def _check_workbook(path: Path, shown: str) -> None:
    """Refuse what is not a plain workbook before openpyxl unzips it (openpyxl reads the saved
    results of formulas, never evaluates them, and ignores macros; this guards the unzip)."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SheetError(shown, [(0, f"not a readable XLSX workbook ({exc})")]) from None
    unpacked = sum(m.file_size for m in members)
    if unpacked > MAX_XLSX_UNPACKED:
        raise SheetError(shown, [(0, f"workbook unpacks to {unpacked} bytes (limit {MAX_XLSX_UNPACKED}): a zip bomb?")])
    names = [m.filename.lower() for m in members]
    if any(n.endswith("vbaproject.bin") for n in names):
        raise SheetError(shown, [(0, "workbook contains macros; save it as a plain .xlsx")])
    try:
        with zipfile.ZipFile(path) as zf:
            types = zf.read("[Content_Types].xml") if "[content_types].xml" in names else b""
    except Exception:  # noqa: BLE001 -- a damaged member: openpyxl reports it below
        types = b""
    if b"macroEnabled" in types:
        raise SheetError(shown, [(0, "workbook is macro-enabled; save it as a plain .xlsx")])


def load_table(path: str | Path, sheet: str | None = None, shown: str | None = None) -> LoadedTable:
    """Read a CSV or XLSX file after ``check_file``'s guards; raises ``SheetError`` naming the
    file (``shown``: the name to use, e.g. an upload's name rather than a temporary path)."""
    path = Path(path)
    shown = shown or str(path)
    try:
        if check_file(path, shown) == "xlsx":
            return _xlsx_table(path, sheet)
        if sheet is not None:
            raise SheetError(shown, [(0, f"--sheet {sheet!r}: a CSV file has no sheets")])
        return _csv_table(path)
    except SheetError as exc:
        if exc.path == shown:
            raise
        raise SheetError(shown, exc.verdicts) from None


def _frame(rows: list[tuple[int, list[Any]]], header: list[Any], origin: Path) -> pd.DataFrame:
    """Rows (line, cells) under a header; checks widths and duplicate or blank headers."""
    names = ["" if h is None else unneutralise(str(h)).strip() for h in header]
    problems: list[tuple[int, str]] = []
    width = len(names)
    while width and not names[width - 1] and not any(len(c) >= width and c[width - 1] not in (None, "") for _, c in rows):
        width -= 1  # trailing empty columns (Excel's ";;" at line ends)
    names = names[:width]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name and name in seen:
            problems.append((1, f"column {name!r} appears twice (columns {seen[name] + 1} and {i + 1})"))
        seen.setdefault(name, i)
    names = [name or f"Unnamed: {i}" for i, name in enumerate(names)]  # pandas' name: maps use it
    body, lines = [], []
    for line, cells in rows:
        if len(cells) < width:
            problems.append((line, f"{len(cells)} of {width} cells: the row is cut short (a truncated file?)"))
            continue
        if any(c not in (None, "") for c in cells[width:]):
            problems.append((line, f"{len(cells)} cells but the header has {width} columns"))
            continue
        body.append(cells[:width])
        lines.append(line)
    if problems:
        raise SheetError(str(origin), problems)
    import pandas as pd

    return pd.DataFrame(body, columns=names, index=pd.Index(lines, name="line"), dtype=object)


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text"
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")  # what Excel on Western-European Windows saves
    except UnicodeDecodeError:
        return data.decode("latin-1")  # cp1252 leaves five bytes undefined


def plain_csv_frame(*args: Any) -> pd.DataFrame | None:
    """``csv_columns.plain_csv_frame``, imported on the first read: it imports pandas, which
    writing a sheet does not need."""
    from dm_hpc.data.csv_columns import plain_csv_frame as read

    return read(*args)


def _csv_table(path: Path) -> LoadedTable:
    data = path.read_bytes()
    text = _decode(data)
    if "\x00" in text:
        raise SheetError(str(path), [(0, "binary data, not a CSV text file")])
    first = next((line for line in text.splitlines() if line.strip()), "")
    sep = max(_SEPARATORS, key=lambda s: (len(next(csv.reader([first], delimiter=s), [])), s == ","))
    frame = plain_csv_frame(text, sep, unneutralise, _plain_header)  # None unless the file is plain
    if frame is not None:
        return LoadedTable(frame, _decimal_mark(frame, sep))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    header: list[str] | None = None
    rows: list[tuple[int, list[Any]]] = []
    try:
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if not any(c.strip() for c in cells):
                continue  # blank line
            if header is None:
                header = cells
            else:
                rows.append((line, [unneutralise(c) if c.strip() else None for c in cells]))
    except csv.Error as exc:
        raise SheetError(str(path), [(reader.line_num, f"malformed CSV ({exc}; an unterminated quote or a truncated file?)")]) from None
    if header is None:
        raise SheetError(str(path), [(0, "the file is empty (no header row)")])
    frame = _frame(rows, header, path)
    return LoadedTable(frame, _decimal_mark(frame, sep))


def _decimal_mark(frame: pd.DataFrame, sep: str) -> str:
    """"," when a sheet separated by something else than commas writes decimal commas."""
    if sep != ",":
        cells = (c for col in frame.columns for c in frame[col] if isinstance(c, str))
        if any(_COMMA_NUMBER.match(ascii_minus(c)) for c in cells):
            return ","
    return "."


def _plain_header(header: list[str]) -> list[str] | None:
    """Column names of a header whose every name is given once (else None: ``_frame`` says why)."""
    names = [unneutralise(h).strip() for h in header]
    return names if all(names) and len(set(names)) == len(names) else None


def _sheet_values(path: Path, sheet: str | None, data_only: bool
                  ) -> tuple[list[tuple[Any, ...]], dict[tuple[int, int], Any]]:
    """Cell values of one sheet, row by row (formulas' saved results with ``data_only``), text
    ``unneutralise``d; with ``data_only``, the stand-ins of ``_mark_unread_cells`` too, else none."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=data_only)
    except Exception as exc:  # noqa: BLE001 -- a damaged workbook makes zipfile, zlib, the XML
        # parser or openpyxl raise any of a dozen types; all mean "not a readable workbook"
        raise SheetError(str(path), [(0, f"not a readable XLSX workbook ({type(exc).__name__}: {exc})")]) from None
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise SheetError(str(path), [(0, f"no sheet {sheet!r}; the workbook has {', '.join(map(repr, wb.sheetnames))}")])
        if not wb.worksheets:
            raise SheetError(str(path), [(0, "the workbook has no sheets")])
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        # text as the engine wrote it: ``unneutralise`` here, where every read of a workbook passes,
        # so no reader compares the quoted cell with the text (a lab named "=..." read as retyped)
        rows = [tuple(unneutralise(v) if isinstance(v, str) else v for v in r) for r in ws.iter_rows(values_only=True)]
        part = getattr(ws, "_worksheet_path", None)
        return _mark_unread_cells(path, part, rows) if data_only and part is not None else (rows, {})
    except SheetError:
        raise
    except Exception as exc:  # noqa: BLE001 -- as above: parts of the zip are read lazily
        raise SheetError(str(path), [(0, f"not a readable XLSX workbook ({type(exc).__name__}: {exc})")]) from None
    finally:
        wb.close()


def workbook_cells(path: str | Path) -> list[tuple[Any, ...]]:
    """The first worksheet's cells as typed, row by row (a formula as its text, not its result,
    text ``unneutralise``d as on ingest): what a person put in a workbook, for telling whether it
    differs from what was written (before ``neutralise``).
    Raises ``SheetError`` for a file that is not a readable workbook."""
    return _sheet_values(Path(path), None, data_only=False)[0]


#: A number cell whose value element is present but empty: what openpyxl and pandas write for
#: inf and NaN. openpyxl reads it as an empty cell; it is a value the sheet holds.
_VALUELESS = re.compile(rb'<c r="([A-Z]+)([0-9]+)"(?:(?!/>)[^>])*>\s*<v\s*(?:/>|>\s*</v>)')
VALUELESS_CELL = "(number cell without a value)"


def _mark_unread_cells(path: Path, part: str, rows: list[tuple[Any, ...]]
                       ) -> tuple[list[tuple[Any, ...]], dict[tuple[int, int], Any]]:
    """``rows`` with the cells openpyxl reads as empty though the sheet shows something there
    given a stand-in text (``_mark_valueless_numbers``, ``_mark_merged``), and (row, column) ->
    what the sheet shows in each (0-based); the worksheet's XML, where both are found (openpyxl's
    read-only mode gives neither), is read once."""
    with zipfile.ZipFile(path) as zf:
        xml = zf.read(part)
    shown: dict[tuple[int, int], Any] = {}
    rows = _mark_valueless_numbers(xml, rows, shown)
    return _mark_merged(xml, rows, shown), shown


def _mark_valueless_numbers(xml: bytes, rows: list[tuple[Any, ...]], shown: dict[tuple[int, int], Any]
                            ) -> list[tuple[Any, ...]]:
    """``rows`` with every value-less number cell of the worksheet ``xml`` set to ``VALUELESS_CELL``
    (refused, named); each is added to ``shown`` as a blank (what a spreadsheet shows there)."""
    hits = _VALUELESS.findall(xml)
    if not hits:
        return rows
    from openpyxl.utils import column_index_from_string

    out = [list(r) for r in rows]
    for col, row in hits:
        r, c = int(row) - 1, column_index_from_string(col.decode()) - 1
        if r < len(out):
            out[r] += [None] * (c + 1 - len(out[r]))
            if out[r][c] is None:
                out[r][c] = VALUELESS_CELL
                shown[r, c] = None
    return [tuple(r) for r in out]


#: A cell covered by a merge below the header (not the merge's first cell): openpyxl reads it as
#: empty, while the lab sees the merged value in its row. Never read as blank: a free-text column
#: takes the merged text, any other refuses it, named (``sheet_checks.SHARED_WHEN_MERGED``).
MERGED_CELL = "(merged into the cell {})"
_MERGE = re.compile(rb'<mergeCell\s+ref="([A-Z]+[0-9]+):([A-Z]+[0-9]+)"')


def _mark_merged(xml: bytes, rows: list[tuple[Any, ...]], shown: dict[tuple[int, int], Any]
                 ) -> list[tuple[Any, ...]]:
    """``rows`` with each cell that a merge of the worksheet ``xml`` covers (all but its top-left
    cell) set to ``MERGED_CELL`` naming the merge's first cell; only in rows after the first
    non-empty one (the header's merges stay as they are) and in rows holding some other value (a
    merge spilling into an empty row below the table adds no row). Each is added to ``shown``
    with the merge's first cell's value: what the sheet shows across the merge."""
    merges = _MERGE.findall(xml)
    if not merges:
        return rows
    from openpyxl.utils.cell import coordinate_from_string, column_index_from_string

    first = next((i for i, r in enumerate(rows) if any(v is not None for v in r)), len(rows))
    out = [list(r) for r in rows]
    for a, b in merges:
        (ca, ra), (cb, rb) = coordinate_from_string(a.decode()), coordinate_from_string(b.decode())
        c0, c1 = column_index_from_string(ca) - 1, column_index_from_string(cb) - 1
        first_row = out[ra - 1] if ra - 1 < len(out) else []
        anchor = shown.get((ra - 1, c0), first_row[c0] if c0 < len(first_row) else None)
        for r in range(max(ra - 1, first + 1), min(rb, len(out))):
            for c in range(c0, c1 + 1):
                if (r, c) == (ra - 1, c0) or not any(v is not None for v in out[r]):
                    continue
                out[r] += [None] * (c + 1 - len(out[r]))
                if out[r][c] is None:
                    out[r][c] = MERGED_CELL.format(a.decode())
                    shown[r, c] = anchor
    return [tuple(r) for r in out]


def _xlsx_table(path: Path, sheet: str | None) -> LoadedTable:
    header: list[Any] | None = None
    rows: list[tuple[int, list[Any]]] = []
    width = 0
    values_by_row, stand_ins = _sheet_values(path, sheet, data_only=True)
    for line, values in enumerate(values_by_row, start=1):
        # a number cell holding inf or NaN is a value the lab wrote, not an empty cell: keep it
        # as text, which the checks refuse with a message instead of reading it as blank
        cells = [repr(v) if isinstance(v, float) and not math.isfinite(v) else v for v in values]
        cells = [None if isinstance(v, str) and not v.strip() else v for v in cells]
        if all(v is None for v in cells):
            continue
        if header is None:
            header = cells
        else:
            rows.append((line, cells))
            width = max(width, len(cells))
    if header is None:
        raise SheetError(str(path), [(0, "the sheet is empty (no header row)")])
    shown = {(r + 1, c): v for (r, c), v in stand_ins.items()}  # by line, as the rows below
    unsaved = _formulas_without_results(path, sheet, header, rows, shown)
    # cells are on a grid: a note right of the table is an unnamed column, not a shifted row
    width = max(width, len(header))
    try:
        frame = _frame([(line, cells + [None] * (width - len(cells))) for line, cells in rows],
                       header + [None] * (width - len(header)), path)
    except SheetError as exc:
        raise SheetError(str(path), sorted([*exc.verdicts, *unsaved], key=lambda v: v.line)) from None
    names = list(frame.columns)
    return LoadedTable(frame, refused=tuple(unsaved),
                       shown={(line, names[c]): v for (line, c), v in shown.items() if c < len(names)})


#: A formula element (``<f>``, ``<f t="shared" .../>``, ``<x:f>``) in a workbook part; ``<font>``
#: and ``<fill>`` do not match. Text cannot hold it (XML escapes ``<``).
_FORMULA_ELEMENT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s>/]")


def _may_hold_formulas(path: Path) -> bool:
    """Whether any part of the workbook has a formula element: without one no cell can be a
    formula, and the second pass that reads formulas (a whole second parse) is skipped. Every
    part is scanned, not only ``xl/worksheets/``: a workbook may place its sheets anywhere."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(_FORMULA_ELEMENT.search(zf.read(info)) for info in zf.infolist() if not info.is_dir())
    except Exception:  # noqa: BLE001 -- unreadable here means "cannot tell": take the full pass
        return True


def formula_cell(formula: str) -> str:
    """What a sheet's cell reads as when it holds ``formula`` without a saved result: text, so that
    no check takes the cell for a blank one (a blank value would pass for "not measured yet")."""
    return f"(the formula {formula} without a saved result)"


def _formulas_without_results(path: Path, sheet: str | None, header: list[Any],
                              rows: list[tuple[int, list[Any]]], shown: dict[tuple[int, int], Any]) -> list[Verdict]:
    """A refusal for each formula whose result was never saved (a workbook written by a program,
    not a spreadsheet), in any column; each such cell of ``rows`` is set to ``formula_cell`` and
    added to ``shown`` (line, column) as the formula, what was typed there."""
    empty = {(line, col) for line, cells in rows for col, v in enumerate(cells) if v is None}
    if not empty or not _may_hold_formulas(path):
        return []
    formulas = _sheet_values(path, sheet, data_only=False)[0]
    at = {line: cells for line, cells in rows}
    out = []
    for line, col in sorted(empty):
        v = formulas[line - 1][col] if col < len(formulas[line - 1]) else None
        if not (isinstance(v, str) and v.startswith("=")):
            continue
        at[line][col] = formula_cell(v)
        shown[line, col] = v
        name = "" if col >= len(header) or header[col] is None else str(header[col]).strip()
        out.append(refused(line, "a formula without a saved result: open and save the file in a spreadsheet "
                                 "program, or type the value", column=name or f"Unnamed: {col}", value=v))
    return out


def ascii_minus(text: str) -> str:
    """``text`` with every ``MINUS_SIGNS`` character as the ASCII hyphen-minus (``−0.05`` ->
    ``-0.05``), the one minus a number is read with."""
    return text.translate(_TO_HYPHEN_MINUS)


def parse_number(value: Any, decimal: str = ".") -> float:
    """A cell as a finite float; ``decimal=","`` also reads ``1,5`` and ``1.234,5``; a minus may
    be any of ``MINUS_SIGNS``.

    Raises ValueError for text that is not a number and for NaN or infinity.
    """
    if isinstance(value, str):
        if decimal == "," and DOT_GROUPS.fullmatch(ascii_minus(value.strip())):
            raise ValueError(why_dot_groups(value.strip()))  # 1.234: a thousands group or a decimal point?
        value = _number_text(value, decimal)
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _number_text(text: str, decimal: str = ".") -> str:
    """A number cell's text as Python reads numbers: ASCII minus, '.' as the decimal mark."""
    text = ascii_minus(text.strip())
    if decimal == "," and _COMMA_NUMBER.match(text):
        text = text.replace(".", "").replace(",", ".")
    return text


def typed_number(value: Any) -> tuple[float, float] | None:
    """A number cell as it was typed: its value and the place value of its last digit ('193.7' ->
    (193.7, 0.1); '510' -> (510.0, 1.0); '1.2e3' -> (1200.0, 100.0); '1,25' -> (1.25, 0.01)). A
    number that a workbook or a DataFrame gives keeps no trailing zeros: its shortest form is taken
    as typed (510.0 -> (510.0, 1.0)). None when ``value`` is no finite number. A comma in a cell
    that was read as a number is its decimal mark (a '.'-sheet refuses commas)."""
    from decimal import Decimal, InvalidOperation
    from numbers import Real

    if isinstance(value, str):
        text = _number_text(value, ",")
    elif isinstance(value, Real) and not isinstance(value, bool):
        text = repr(float(value)).removesuffix(".0")
    else:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return float(number), 10.0 ** number.as_tuple().exponent
