"""Fuzzed lab sheets (CSV and XLSX), column maps and campaign fields that reach a sheet.

Invariant: every input either ingests correctly or raises ``SheetError`` (never another
exception), and a refused sheet stores nothing. Injection strings in any field that reaches a
written sheet never make a formula cell. The saved cases in ``fuzz_cases/`` replay inputs that
once crashed or were read wrongly (``bad_*``: refused; ``ok_*``: read).
"""
from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import openpyxl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dm_hpc.campaign import CampaignError, parse_campaign
from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.lab import write_suggestions
from dm_hpc.data import Store
from dm_hpc.data.resend import resolve_resends
from dm_hpc.data.sheetfiles import neutralise, unneutralise
from dm_hpc.data.sheets import SheetError, read_sheet_columns, read_sheet_contents
from tests.campaign.test_spec_fuzz import DEMO, yamlish

#: Examples per hypothesis test; docs/measurements/sheets.md reports EXAMPLES x the number of fuzz tests.
EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CASES = Path(__file__).parent / "fuzz_cases"
XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
INJECTIONS = ["=cmd|' /C calc'!A0", "+1+1", "-1+cmd|'/C calc'!A0", "@SUM(A1:A2)", "\t=1", "\r=1", "'=1",
              '=HYPERLINK("http://x")', "=1+1", "-", "+", "@", "'"]
HEADER = ["sample_id", "composition:Cu [at_frac]", "composition:Ni [at_frac]", "process:anneal:annealing_time [h]",
          "property:density [g/cm^3]", "uncertainty:density [g/cm^3]", "property:hardness [GPa]", "method", "notes"]
ROWS = [["S1", "0.5", "0.5", "2", "8.9", "0.1", "2.5", "lab", "ok"],
        ["S2", "0.25", "0.75", "1", "8.8", "", "", "lab", ""],
        ["S3", "bal", "0.4", "", "", "", "", "lab", "not made"]]
cells = st.one_of(
    st.sampled_from(INJECTIONS + ["", " ", "bal", "nan", "inf", "-0", "1e308", "1,5", "0.5", "-1", "2", "x", "S1"]),
    st.text(max_size=8), st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def csv_text(header, rows, sep=",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def formula_like(text: str) -> bool:
    """Whether a spreadsheet program would take this cell text for a formula (plain numbers aside)."""
    number = re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text)
    return text.startswith(("=", "+", "-", "@", "\t", "\r")) and not number


class Ingest:
    """The whole import path against one real store: read, resolve re-sends, ingest."""

    #: (test, outcome) -> inputs; written to $DM_FUZZ_TALLY (JSON) for docs/measurements/sheets.md
    tally: Counter[tuple[str, str]] = Counter()

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = Store.open(root / "store", "a")

    def __call__(self, path: Path, **kw) -> bool:
        before = len(self.store)
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split("[")[0].split(" ")[0]
        try:
            contents = read_sheet_contents(path, **kw)
        except SheetError as exc:
            self.refused(test, path, kw, before, exc)
            with pytest.raises(SheetError) as by_columns:  # what `store import` reads: the same refusal
                read_sheet_columns(path, **kw)
            assert by_columns.value.problems == exc.problems
            return False
        read = read_sheet_columns(path, **kw)  # what `store import` reads: the same records
        assert read.columns.ids == [r.record_id for r in contents.records]
        assert (read.not_made, read.pending, read.warnings) == (contents.not_made, contents.pending, contents.warnings)
        try:
            records = resolve_resends(self.store, contents.records, contents.lines, str(path), replace=True)
        except SheetError as exc:
            self.refused(test, path, kw, before, exc)
            return False
        self.tally[test, "ingested"] += 1
        result = self.store.ingest(records)
        assert result.n == len(contents.records)
        for rec in records:  # what was read is what is stored
            stored = self.store.get(rec.record_id)
            assert stored.properties == rec.properties and stored.composition == rec.composition
        return True

    def refused(self, test: str, path: Path, kw: dict, before: int, exc: SheetError) -> None:
        assert str(exc).startswith((str(path), str(kw.get("column_map")))), str(exc)  # names the file
        assert len(self.store) == before  # nothing stored on failure
        self.tally[test, "refused"] += 1


@pytest.fixture(scope="module", autouse=True)
def tally():
    yield
    if os.environ.get("DM_FUZZ_TALLY"):
        Path(os.environ["DM_FUZZ_TALLY"]).write_text(json.dumps({f"{t} {o}": n for (t, o), n in sorted(Ingest.tally.items())}, indent=1))


@pytest.fixture
def ingest(tmp_path):
    sink = Ingest(tmp_path)
    yield sink
    sink.store.close()


# ------------------------------------------------------------------------------ CSV
@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 8), cells), max_size=6),
       sep=st.sampled_from([",", ";", "\t"]), encoding=st.sampled_from(["utf-8", "cp1252", "utf-8-sig"]))
def test_mutated_cells_csv(tmp_path, ingest, edits, sep, encoding):
    rows = copy.deepcopy(ROWS)
    header = list(HEADER)
    for r, c, value in edits:
        if r == 3:
            header[c] = value
        else:
            rows[r][c] = value
    path = tmp_path / "m.csv"
    path.write_bytes(csv_text(header, rows, sep).encode(encoding, "replace"))
    ingest(path)


@FUZZ
@given(cut=st.integers(0, 400), ops=st.lists(st.tuples(st.integers(0, 400), st.binary(max_size=3)), max_size=4))
def test_mutated_bytes_csv(tmp_path, ingest, cut, ops):
    data = bytearray(csv_text(HEADER, ROWS).encode())
    for pos, blob in ops:
        pos = min(pos, len(data))
        data[pos:pos + len(blob)] = blob
    path = tmp_path / "b.csv"
    path.write_bytes(bytes(data[: max(cut, 1)]) if cut < len(data) else bytes(data))
    ingest(path)


# ------------------------------------------------------------------------------ XLSX
xlsx_cells = st.one_of(cells, st.none(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                       st.booleans(), st.dates())


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10), xlsx_cells), max_size=6),
       sheet=st.sampled_from([None, "sheet", "Sheet", "=1"]))
def test_mutated_cells_xlsx(tmp_path, ingest, edits, sheet):
    rows = [list(HEADER)] + [[float(v) if v.replace(".", "").isdigit() else v or None for v in row] for row in ROWS]
    for r, c, value in edits:
        r = 0 if r == 3 else r + 1
        rows[r] += [None] * (c + 1 - len(rows[r]))
        rows[r][c] = value
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "sheet"
    for row in rows:  # a workbook cannot hold XML's control characters at all
        ws.append([XML_ILLEGAL.sub("", v) if isinstance(v, str) else v for v in row])
    for row in ws.iter_rows():
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text, as a lab's Excel keeps it (openpyxl guessed "=..." a formula)
    path = tmp_path / "m.xlsx"
    wb.save(path)
    ingest(path, sheet=sheet)


@pytest.fixture(scope="module")
def workbook_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("wb") / "w.xlsx"
    wb = openpyxl.Workbook()
    for row in [HEADER] + ROWS:
        wb.active.append(row)
    wb.save(path)
    return path.read_bytes()


@FUZZ
@given(cut=st.integers(1, 6000), flips=st.lists(st.tuples(st.integers(0, 6000), st.integers(0, 255)), max_size=4))
def test_mutated_bytes_xlsx(tmp_path, ingest, workbook_bytes, cut, flips):
    data = bytearray(workbook_bytes[:cut])
    for pos, byte in flips:
        if pos < len(data):
            data[pos] = byte
    path = tmp_path / "b.xlsx"
    path.write_bytes(bytes(data))
    ingest(path)


# ------------------------------------------------------------------------------ column maps
FOREIGN = "Unnamed: 0,cu,ni,rho,who\n0,0.5,0.5,8.9,=cmd\n1,0.4,0.6,8.7,x\n"
GOOD_MAP = {"columns": {"cu": "composition:Cu [at_frac]", "ni": "composition:Ni [at_frac]",
                        "rho": "property:density [g/cm^3]", "who": "contributor"},
            "constants": {"method": "paper", "source": "experimental"}, "ignore": ["Unnamed: 0"]}
map_paths = [("columns",), ("columns", "cu"), ("columns", "rho"), ("constants",), ("constants", "method"), ("ignore",), ()]


@FUZZ
@given(where=st.sampled_from(map_paths), value=yamlish | st.sampled_from(INJECTIONS + ["property:density", "bal"]))
def test_mutated_column_maps(tmp_path, ingest, where, value):
    data = copy.deepcopy(GOOD_MAP)
    if where:
        target = data
        for key in where[:-1]:
            target = target[key]
        target[where[-1]] = value
    else:
        data = value
    (tmp_path / "f.csv").write_text(FOREIGN)
    cmap = tmp_path / "map.yaml"
    cmap.write_text(yaml.safe_dump(data))
    ingest(tmp_path / "f.csv", column_map=cmap)


@FUZZ
@given(text=st.text(max_size=200) | st.sampled_from(["- a", "columns: - a", "[", "a: !!binary x", "columns: {a: {to: 1}}"]))
def test_garbage_column_map_files(tmp_path, ingest, text):
    (tmp_path / "f.csv").write_text(FOREIGN)
    cmap = tmp_path / "map.yaml"
    cmap.write_text(text, encoding="utf-8", errors="surrogateescape")
    ingest(tmp_path / "f.csv", column_map=cmap)


# ------------------------------------------------------------------------------ injections
@FUZZ
@given(text=st.text(max_size=30) | st.sampled_from(INJECTIONS))
def test_neutralise_round_trip(text):
    safe = neutralise(text)
    assert unneutralise(safe) == text
    assert not formula_like(safe), safe


@FUZZ
@given(lab=st.sampled_from(INJECTIONS) | st.text(min_size=1, max_size=20), sample=st.sampled_from(INJECTIONS) | st.text(min_size=1, max_size=20),
       suffix=st.sampled_from([".csv", ".xlsx"]))
def test_campaign_fields_reach_the_lab_sheet_as_text(tmp_path, lab, sample, suffix):
    """The lab (fidelity) name and suggestion ids are user text written into the lab's sheet."""
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # one campaign folder per example
    data = copy.deepcopy(DEMO)
    data.update(store=str(tmp_path / "store"), workdir=str(tmp_path / "run"))
    data["fidelities"][1]["name"] = lab
    try:
        campaign = parse_campaign(data, "fuzz.yaml")
    except CampaignError:
        return
    journal = jn.Journal(campaign.run_dir / "journal.jsonl")
    journal.write("lab_suggested", batch=1, samples=[{"sample_id": sample, "composition": {"Al": 0.5, "Cu": 0.5}}])
    journal.close()
    out = tmp_path / f"s{suffix}"
    assert write_suggestions(campaign, out) == 1
    if suffix == ".xlsx":
        with zipfile.ZipFile(out) as z:
            assert b"<f>" not in z.read("xl/worksheets/sheet1.xml")
        got = [c.value for c in next(openpyxl.load_workbook(out).worksheets[0].iter_rows(min_row=2))]
        sample, lab = (XML_ILLEGAL.sub("\ufffd", t) for t in (sample, lab))  # XLSX cannot hold them
    else:
        with open(out, newline="", encoding="utf-8") as fh:
            got = list(csv.reader(fh))[1]
    texts = [v for v in got if isinstance(v, str)]
    assert not any(formula_like(t) for t in texts), texts
    assert (unneutralise(got[0]), unneutralise(got[2])) == (sample, lab)


# ------------------------------------------------------------------------------ saved cases
@pytest.mark.parametrize("path", sorted(p for p in CASES.iterdir() if p.name.startswith(("ok_", "bad_")) and p.suffix != ".yaml"),
                         ids=lambda p: p.name)
def test_saved_cases(ingest, path):
    cmap = path.with_suffix(".yaml") if path.with_suffix(".yaml").exists() else None
    assert ingest(path, column_map=cmap) is path.name.startswith("ok_")
