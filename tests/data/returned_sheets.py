"""A corpus of returned lab sheets, generated from a seed (``corpus(seed, n)``): what labs and
attackers send back.

Each case starts from the campaign's good sheet (``sheet_doors.SAMPLES``: composition,
hardness with its uncertainty, density, notes) and applies one to three mutations: units
(right and wrong conversions, unknown units), magnitudes, locales (decimal commas, ``;``),
digits (Arabic-Indic, full-width, digit groups), blanks and the ``not made`` marker, renamed,
dropped and extra columns, inf/NaN (as text and as XLSX number cells), spreadsheet errors,
formula injections, ids (unknown, duplicate), and workbook attacks (macros, a zip bomb, .xlsm,
.txt, wrong extensions, truncated and binary files). Nothing here knows what the reader should
decide; the tests assert invariants that hold whatever it decides.

Run as a script to write the corpus to a folder: ``python -m tests.data.returned_sheets OUT``.
"""
from __future__ import annotations

import csv
import datetime
import io
import random
import re
import sys
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import openpyxl

from tests.data.sheet_doors import GOOD, SAMPLES

SEED = 21
HEADER = ["sample_id", "composition:Al [at_frac]", "composition:Cu [at_frac]", "composition:Mg [at_frac]",
          "property:hardness [GPa]", "uncertainty:hardness [GPa]", "property:density [g/cm^3]", "notes"]
HARDNESS, UNC, DENSITY = 4, 5, 6
FIXED_TIME = datetime.datetime(2026, 1, 1)


@dataclass
class Sheet:
    """A sheet being mutated: header and rows of cells (str, float, None), how it is saved."""

    header: list[str]
    rows: list[list]
    kind: str = "csv"  # csv | xlsx
    sep: str = ","
    suffix: str | None = None  # the file name's extension when it differs from kind
    encoding: str = "utf-8"
    attack: str | None = None  # a workbook attack applied to the saved bytes
    mutations: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    data: bytes
    mutations: tuple[str, ...]
    #: (sample id, property, cell) for every property cell the sheet holds, for the "nothing
    #: dropped without a message" check (None for byte-level attacks)
    cells: tuple[tuple[str, str, object], ...] | None


_GOOD_ROWS = [[sid, comp["Al"], comp["Cu"], comp["Mg"], 1.0, 0.05, 2.8, ""] for sid, comp in SAMPLES.items()]


def base(rng: random.Random) -> Sheet:
    rows = []
    for sid, comp in SAMPLES.items():
        h, d = round(rng.uniform(*GOOD["hardness"]), 3), round(rng.uniform(*GOOD["density"]), 3)
        rows.append([sid, comp["Al"], comp["Cu"], comp["Mg"], h, round(h * 0.05, 4), d,
                     rng.choice(["", "ok", "re-polished", "Öl µm"])])
    return Sheet(list(HEADER), rows)


def _cell(rng: random.Random, s: Sheet, cols=(HARDNESS, DENSITY)) -> tuple[int, int]:
    return rng.randrange(len(s.rows)), rng.choice(cols)


def m_unit(rng, s):
    choice = rng.choice(["HV", "MPa", "kg/m**3", "kg/m**3 wrong", "furlong", "g/cc", "lb/in**3"])
    if choice == "HV":
        s.header[HARDNESS], s.header[UNC] = "property:hardness [HV]", "uncertainty:hardness [HV]"
        for r in s.rows:
            r[HARDNESS] = round(r[HARDNESS] / 0.00980665, 1) if isinstance(r[HARDNESS], float) else r[HARDNESS]
            r[UNC] = None
    elif choice == "MPa":
        s.header[HARDNESS], s.header[UNC] = "property:hardness [MPa]", "uncertainty:hardness [MPa]"
        for r in s.rows:
            for c in (HARDNESS, UNC):
                r[c] = r[c] * 1000 if isinstance(r[c], float) else r[c]
    elif choice.startswith("kg/m**3"):
        s.header[DENSITY] = "property:density [kg/m**3]"
        if choice == "kg/m**3":
            for r in s.rows:
                r[DENSITY] = r[DENSITY] * 1000 if isinstance(r[DENSITY], float) else r[DENSITY]
    else:
        s.header[DENSITY] = f"property:density [{choice}]"
    return f"unit:{choice}"


def m_magnitude(rng, s):
    i, c = _cell(rng, s, (HARDNESS, DENSITY, UNC, 1, 2))
    factor = rng.choice([1e3, 1e-3, 1e308, -1.0, 0.0, 100.0, 1e-300])
    if isinstance(s.rows[i][c], float):
        s.rows[i][c] = s.rows[i][c] * factor
    return f"magnitude:{factor:g}"


def m_locale(rng, s):
    s.sep = ";"
    s.kind = "csv"
    for r in s.rows:
        for c, v in enumerate(r):
            if isinstance(v, float):
                r[c] = repr(v).replace(".", ",")
    return "locale:decimal-comma"


def m_comma_in_point_sheet(rng, s):
    i, c = _cell(rng, s)
    s.rows[i][c] = str(s.rows[i][c]).replace(".", ",")
    return "locale:stray-comma"


def m_digits(rng, s):
    i, c = _cell(rng, s)
    v = str(s.rows[i][c])
    kind = rng.choice(["arabic", "fullwidth", "devanagari", "group", "superscript", "spaces", "plus", "exp", "lead"])
    table = {"arabic": 0x0660, "fullwidth": 0xFF10, "devanagari": 0x0966}
    if kind in table:
        v = "".join(chr(table[kind] + int(ch)) if ch.isdigit() else ch for ch in v)
    elif kind == "group":
        v = "1_000"
    elif kind == "superscript":
        v = v + "\u00b2"
    elif kind == "spaces":
        v = f"  {v} "
    elif kind == "plus":
        v = "+" + v
    elif kind == "exp":
        v = f"{float(v):e}" if v.replace(".", "", 1).isdigit() else v
    else:
        v = "0" + v
    s.rows[i][c] = v
    return f"digits:{kind}"


def m_blank(rng, s):
    kind = rng.choice(["cell", "row", "composition", "sample_id", "all"])
    i = rng.randrange(len(s.rows))
    if kind == "cell":
        s.rows[i][rng.choice([HARDNESS, DENSITY])] = None
    elif kind == "row":
        s.rows[i][HARDNESS] = s.rows[i][UNC] = s.rows[i][DENSITY] = None
    elif kind == "composition":
        s.rows[i][rng.choice([1, 2, 3])] = None
    elif kind == "sample_id":
        s.rows[i][0] = None
    else:
        for r in s.rows:
            r[HARDNESS] = r[UNC] = r[DENSITY] = None
    return f"blank:{kind}"


def m_not_made(rng, s):
    i = rng.randrange(len(s.rows))
    s.rows[i][UNC] = s.rows[i][DENSITY] = None
    s.rows[i][HARDNESS] = rng.choice(["not made", "Not made", "NOT_MADE", "not made "])
    if rng.random() < 0.3:
        s.rows[i][DENSITY] = 2.7  # says not made and holds a value
        return "not-made:conflict"
    return "not-made"


def m_rename(rng, s):
    col = rng.choice([HARDNESS, DENSITY])
    name = "hardness" if col == HARDNESS else "density"
    s.header[col] = rng.choice([f"{name} [GPa]" if col == HARDNESS else f"{name} [g/cm^3]", name.title(), name.upper(),
                                f"property:{name[:-1]} [GPa]", f"property:{name.title()} [GPa]", f"{name} (GPa)",
                                f"measured {name}"])
    return f"rename:{s.header[col]}"


def m_extra(rng, s):
    name = rng.choice(["Operator", "", "remarks", "Unnamed: 9", "x", "property_note", "method", "institution"])
    s.header.append(name)
    for r in s.rows:
        r.append(rng.choice(["Ann", "", "=1+1", "lab-b", None]))
    return f"extra:{name or '(blank)'}"


def m_drop(rng, s):
    col = rng.choice([HARDNESS, UNC, DENSITY, 3])
    for r in [s.header] + s.rows:
        r[col] = None
    s.header[col] = f"dropped{col}"  # an empty, unknown column stands in for the dropped one
    return f"drop:{HEADER[col]}"


def m_nonfinite(rng, s):
    i, c = _cell(rng, s, (HARDNESS, DENSITY, UNC, 2))
    s.rows[i][c] = rng.choice(["inf", "NaN", "-inf", "Infinity", "#DIV/0!", "#NUM!", "nan", float("inf"), float("nan")])
    if isinstance(s.rows[i][c], float):
        s.kind = "xlsx"  # a number cell holding inf or NaN exists only in a workbook
    return f"nonfinite:{s.rows[i][c]!r}"


def m_injection(rng, s):
    i = rng.randrange(len(s.rows))
    s.rows[i][7] = rng.choice(["=cmd|' /C calc'!A0", "@SUM(A1:A2)", "+1+1", "-2+3", "'=1"])
    return "injection"


def m_ids(rng, s):
    kind = rng.choice(["unknown", "duplicate", "swap", "space", "case"])
    i = rng.randrange(len(s.rows))
    if kind == "unknown":
        s.rows[i][0] = "Z9"
    elif kind == "duplicate":
        s.rows[i][0] = s.rows[(i + 1) % len(s.rows)][0]
    elif kind == "swap":
        j = (i + 1) % len(s.rows)
        s.rows[i][0], s.rows[j][0] = s.rows[j][0], s.rows[i][0]
    elif kind == "space":
        s.rows[i][0] = f" {s.rows[i][0]} "
    else:
        s.rows[i][0] = s.rows[i][0].lower()
    return f"ids:{kind}"


def m_uncertainty(rng, s):
    i = rng.randrange(len(s.rows))
    if rng.random() < 0.5:
        s.rows[i][UNC] = -0.1
        return "uncertainty:negative"
    s.rows[i][HARDNESS] = None
    return "uncertainty:without-value"


def m_encoding(rng, s):
    s.kind = "csv"
    s.encoding = rng.choice(["utf-16", "cp1252", "utf-8-sig"])
    return f"encoding:{s.encoding}"


def m_attack(rng, s):
    s.attack = rng.choice(["macro", "bomb", "xlsm", "txt", "xlsx-named-csv", "csv-named-xlsx", "truncated",
                           "binary", "empty", "xls", "no-suffix", "formula-unsaved"])
    if s.attack in ("macro", "bomb", "xlsm", "xlsx-named-csv", "formula-unsaved"):
        s.kind = "xlsx"
    return f"attack:{s.attack}"


MUTATIONS = [m_unit, m_magnitude, m_locale, m_comma_in_point_sheet, m_digits, m_blank, m_not_made, m_rename,
             m_extra, m_drop, m_nonfinite, m_injection, m_ids, m_uncertainty, m_encoding, m_attack]


@lru_cache(maxsize=1)
def _bomb(workbook: bytes) -> bytes:
    """A workbook with 300 MB of zeros added (~300 kB deflated), built once and reused by every
    zip-bomb case (deflating 300 MB per case would take the corpus minutes)."""
    out = io.BytesIO(workbook)
    with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("xl/media/zeros.bin", date_time=(2026, 1, 1, 0, 0, 0)),
                   b"\x00" * (300 * 2**20), compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _xlsx(s: Sheet) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(s.header)
    for r in s.rows:
        ws.append(r)
    if s.attack == "formula-unsaved":
        ws.cell(2, HARDNESS + 1).value = "=1+1"
    wb.properties.created = wb.properties.modified = FIXED_TIME
    out = io.BytesIO()
    wb.save(out)
    src = zipfile.ZipFile(io.BytesIO(out.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:  # fixed dates: same seed, same bytes
        for item in src.infolist():
            data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2026-01-01T00:00:00Z", src.read(item.filename))
            z.writestr(zipfile.ZipInfo(item.filename, date_time=(2026, 1, 1, 0, 0, 0)), data,
                       compress_type=zipfile.ZIP_DEFLATED)
        if s.attack == "macro":
            z.writestr(zipfile.ZipInfo("xl/vbaProject.bin", date_time=(2026, 1, 1, 0, 0, 0)),
                       b"\xd0\xcf\x11\xe0" + b"\x00" * 508)
    if s.attack == "bomb":  # one bomb for every case (its other mutations are never read)
        return _bomb(_xlsx(Sheet(list(HEADER), [list(r) for r in _GOOD_ROWS])))
    return out.getvalue()


def _csv(s: Sheet) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, delimiter=s.sep)
    w.writerow(s.header)
    w.writerows([["" if v is None else v for v in r] for r in s.rows])
    return out.getvalue().encode(s.encoding, errors="replace")


def save(s: Sheet) -> tuple[str, bytes]:
    """The file name's extension and bytes of a mutated sheet."""
    data = _xlsx(s) if s.kind == "xlsx" else _csv(s)
    suffix = "." + s.kind
    attack = s.attack
    if attack == "xlsm":
        suffix = ".xlsm"
    elif attack == "txt":
        suffix = ".txt"
    elif attack == "xlsx-named-csv":
        suffix = ".csv"
    elif attack == "csv-named-xlsx":
        data, suffix = _csv(s), ".xlsx"
    elif attack == "truncated":
        data = data[: len(data) // 2]
    elif attack == "binary":
        data = bytes(random.Random(len(data)).randrange(256) for _ in range(400))
    elif attack == "empty":
        data = b""
    elif attack == "xls":
        suffix = ".xls"
    elif attack == "no-suffix":
        suffix = ""
    return suffix, data


def _cells(s: Sheet) -> tuple[tuple[str, str, object], ...] | None:
    if s.attack is not None:
        return None
    out = []
    for c, h in enumerate(s.header):
        if isinstance(h, str) and h.startswith("property:"):
            name = h.split(":", 1)[1].split("[")[0].strip()
            out += [(str(r[0]).strip() if r[0] is not None else "", name, r[c]) for r in s.rows]
    return tuple(out)


def corpus(seed: int = SEED, n: int = 1000) -> list[Case]:
    """``n`` returned sheets, the same for the same ``seed``."""
    rng = random.Random(seed)
    cases = []
    for k in range(n):
        s = base(rng)
        s.kind = "xlsx" if rng.random() < 0.4 else "csv"
        for m in rng.sample(MUTATIONS, rng.choice([1, 1, 2, 3])):
            s.mutations.append(m(rng, s))
        suffix, data = save(s)
        cases.append(Case(f"{k:04d}-{'+'.join(s.mutations)}", f"sheet{k:04d}{suffix}", data, tuple(s.mutations),
                          _cells(s)))
    return cases


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for case in corpus(int(sys.argv[2]) if len(sys.argv) > 2 else SEED):
        (folder / case.filename).write_bytes(case.data)
    print(f"wrote {len(list(folder.iterdir()))} sheets to {folder}")
