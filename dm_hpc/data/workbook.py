"""Workbooks for people: safe cells, a frozen header, column widths, number validation, notes.

``sheetfiles`` writes tables for machines; a lab's sheet and the annotated copy of a returned
sheet are read by people in Excel or LibreOffice, so they get what such a reader expects (the
header stays in view, columns wide enough to read, a number cell refuses text, a worksheet of
instructions) while keeping ``sheetfiles``' rule that no cell the engine writes is a formula:
every text goes through ``neutralise`` and is written with the string type.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import Cell
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from dm_hpc.data.sheetfiles import _XML_ILLEGAL, _cell

#: Fill colours (ARGB) of the verdicts, shared by the annotated copy and its legend.
FILLS = {"accepted": "FFC6EFCE", "converted": "FFDDEBF7", "held": "FFFFEB9C", "refused": "FFFFC7CE",
         "pending": "FFEDEDED", "input": "FFFFF2CC"}


def put(ws: Worksheet, row: int, col: int, value: Any, note: str | None = None, fill: str | None = None) -> Cell:
    """Write one cell (1-based) safely: text neutralised and typed as a string, never a formula;
    ``note`` becomes a cell comment, ``fill`` one of ``FILLS``."""
    cell = ws.cell(row, col)
    safe = _cell(value)
    if isinstance(safe, str):
        cell.value = _XML_ILLEGAL.sub("\ufffd", safe)
        cell.data_type = "s"
    else:
        cell.value = safe
    if note:
        cell.comment = Comment(_XML_ILLEGAL.sub("\ufffd", note), "dm-hpc", width=320, height=120)
    if fill:
        cell.fill = PatternFill("solid", start_color=FILLS[fill], end_color=FILLS[fill])
    return cell


def header_row(ws: Worksheet, header: Sequence[str], notes: Mapping[str, str] | None = None) -> None:
    """Bold header on row 1, frozen (with the first column), widths fitted to the header."""
    for j, name in enumerate(header, start=1):
        put(ws, 1, j, name, (notes or {}).get(name)).font = Font(bold=True)
        ws.column_dimensions[get_column_letter(j)].width = min(48, max(10, len(str(name)) + 2))
    ws.freeze_panes = "B2"


def number_validation(ws: Worksheet, col: int, rows: int, low: float | None = None, high: float | None = None,
                      what: str = "a number") -> None:
    """Cells ``(2..rows+1, col)`` accept only a decimal number (within ``[low, high]`` if given);
    the lab still may type a text marker elsewhere (e.g. the ``not_made`` column)."""
    if low is not None and high is not None:
        dv = DataValidation(type="decimal", operator="between", formula1=repr(float(low)), formula2=repr(float(high)))
    else:
        dv = DataValidation(type="decimal", operator="between", formula1="-1E+307", formula2="1E+307")
    dv.error, dv.errorTitle, dv.showErrorMessage = f"Type {what} here (no units, no text).", "Not a number", True
    dv.allow_blank = True
    ws.add_data_validation(dv)
    letter = get_column_letter(col)
    dv.add(f"{letter}2:{letter}{max(2, rows + 1)}")


def number_or_word_validation(ws: Worksheet, col: int, rows: int, word: str) -> None:
    """Cells ``(2..rows+1, col)`` accept a number or the marker ``word`` (e.g. "not made");
    ``word`` is the engine's own constant, never user text (it enters a validation formula)."""
    letter = get_column_letter(col)
    dv = DataValidation(type="custom", formula1=f'OR(ISNUMBER({letter}2),LOWER(TRIM({letter}2))="{word}")')
    dv.error, dv.errorTitle, dv.showErrorMessage = f"Type a number (no unit), or '{word}'.", "Not a number", True
    dv.allow_blank = True
    ws.add_data_validation(dv)
    dv.add(f"{letter}2:{letter}{max(2, rows + 1)}")


def instructions_sheet(wb: Workbook, lines: Sequence[tuple[str, str]], title: str = "Instructions") -> Worksheet:
    """A worksheet of (heading, text) lines, the first thing a lab reads: the workbook opens on
    it, while the data stays the first worksheet (the one a returned sheet is read from)."""
    ws = wb.create_sheet(title, 1)
    wb.active = ws
    ws.column_dimensions["A"].width, ws.column_dimensions["B"].width = 28, 110
    for i, (head, text) in enumerate(lines, start=1):
        put(ws, i, 1, head).font = Font(bold=True)
        put(ws, i, 2, text)
    return ws


def save_atomically(wb: Workbook, path: str | Path) -> Path:
    """Save ``wb`` to ``path`` through a temporary file (a reader never sees half a workbook)."""
    path = Path(path)
    if not path.parent.is_dir():  # else the error names the temporary file, which the user never asked for
        raise FileNotFoundError(f"cannot write {path}: there is no folder {path.parent}")
    tmp = path.with_name(f".{path.name}.tmp.xlsx")
    wb.save(tmp)
    tmp.replace(path)
    return path
