"""A plain CSV sheet read column-wise by pandas' C parser, giving exactly the table that
``sheetfiles``' row-by-row reader gives, or None when the file is not plain.

Why: the row-by-row reader (``csv`` module, a Python test per cell for blanks and the export's
leading quote) took a second per 100,000 template rows, a quarter of ``store import``
(issue 21). Most sheets are plain: no quoted cell, no blank line, every row as wide as the
header. For those, cutting rows at newlines and cells at the separator is all either reader
does, so pandas' parser gives the same cells; the per-cell rules run on the few columns that
need them (a cell with white space, a text beginning with the export's quote). Anything else
(quotes, a lone CR, blank lines, ragged rows, an odd header) returns None, and the row-by-row
reader reads the file, with its messages.
"""
from __future__ import annotations

import csv
import io
import re

import numpy as np
import pandas as pd

#: White space other than the newline that ends a row: a cell holding it may be blank.
_SPACE = re.compile(r"[^\S\n]")
_ASCII_SPACE = (" ", "\t", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


def _has_space(text: str) -> bool:
    """Whether ``text`` holds white space other than newlines (substring searches when ASCII)."""
    if text.isascii():
        return any(ch in text for ch in _ASCII_SPACE)
    return _SPACE.search(text) is not None


def plain_csv_frame(text: str, sep: str, unneutralise, header_names) -> pd.DataFrame | None:
    """The sheet's table (cells text or None, index ``line``), or None if ``text`` is not plain.

    ``unneutralise``: the reader's inverse of the export's formula guard (applied to non-blank
    cells); ``header_names``: the reader's function from header cells to column names, which
    returns None when the header has a problem (then the row-by-row reader reports it).
    """
    if '"' in text or "\n\n" in text or text.startswith("\n"):
        return None
    if len(text) > csv.field_size_limit() and max(map(len, text.split("\n"))) > csv.field_size_limit():
        return None  # a cell the csv module refuses as too long
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text or "\n\n" in text:
            return None
    end = text.find("\n")
    first = text if end < 0 else text[:end]
    header = next(csv.reader([first], delimiter=sep))
    if not any(c.strip() for c in header):
        return None
    names = header_names(header)
    if names is None or len(names) != len(header):
        return None
    try:
        raw = pd.read_csv(io.StringIO(text), sep=sep, header=None, skiprows=1, dtype=str, na_filter=False,
                          quoting=csv.QUOTE_NONE, skip_blank_lines=False, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None
    rows = text.count("\n") + (not text.endswith("\n"))  # with the header; no blank line, no quote
    if raw.shape[1] != len(names) or text.count(sep) != rows * (len(names) - 1):
        return None  # a row too long (pandas refuses those) or one cut short
    lines = np.arange(2, 2 + len(raw))
    quoted = "'" in text
    spaced = _has_space(text)
    blank = np.zeros(raw.shape, dtype=bool)
    columns = {}
    for j, name in enumerate(names):
        cells = raw.iloc[:, j].to_numpy(dtype=object)
        if spaced and _has_space("\n".join(cells.tolist())):  # some cell may be white space only
            empty = np.array([not c.strip() for c in cells.tolist()], dtype=bool)
        else:
            empty = cells == ""
        if quoted:
            cells = np.array([c if c[:1] != "'" else unneutralise(c) for c in cells.tolist()], dtype=object)
        cells[empty] = None
        blank[:, j] = empty
        columns[name] = cells
    frame = pd.DataFrame(columns, index=pd.Index(lines, name="line"), dtype=object)
    return frame[~blank.all(axis=1)]  # a row of empty cells is a blank line to either reader
