"""`dm-hpc store export` names every record by its id (s36, traceability: the plan's record ids),
and the exported file still imports: unchanged rows are the same records, an edited row is
stored under its own id and the reply says which. Real store, real files, the CLI."""
from __future__ import annotations

import csv

import openpyxl
import pytest
from typer.testing import CliRunner

from dm_hpc.cli import app
from dm_hpc.data import Store

SHEET = """sample_id,composition:Cu [at_frac],composition:Ni [at_frac],process:anneal:annealing_temperature [degC],property:hardness [GPa],uncertainty:hardness [GPa],property:density [g/cm^3]
S1,0.5,0.5,500,1.5,0.1,8.9
S2,0.7,0.3,550,1.7,,8.8
S3,0.9,0.1,600,1.9,,8.95
"""


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def store(tmp_path):
    sheet = tmp_path / "lab.csv"
    sheet.write_text(SHEET)
    res = _cli("store", "import", str(sheet), "--store", str(tmp_path / "s"), "--method", "=cmd|' /C calc'!A0")
    assert res.exit_code == 0, res.output
    with Store.open(tmp_path / "s") as s:
        ids = {r.sample_id: r.record_id for r in s.records()}
    return tmp_path / "s", ids


def _rows(path) -> list[list[str]]:
    if path.suffix == ".csv":
        return list(csv.reader(path.open(newline="", encoding="utf-8")))
    return [["" if v is None else str(v) for v in row] for row in openpyxl.load_workbook(path).active.iter_rows(values_only=True)]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_an_export_begins_with_the_record_id_and_imports_back_as_the_same_records(tmp_path, store, suffix):
    """On main: no record_id column; a sheet passed on lost which record each row was."""
    path, ids = store
    out = tmp_path / f"export{suffix}"
    res = _cli("store", "export", str(out), "--store", str(path))
    assert res.exit_code == 0, res.output
    header, *body = _rows(out)
    assert header[0] == "record_id" and header[1] == "sample_id"
    assert {row[1]: row[0] for row in body} == ids
    assert all(row[header.index("method")] == "'=cmd|' /C calc'!A0" for row in body)  # still no formula
    # into another store: the same records, and no word about the record_id column
    res = _cli("store", "import", str(out), "--store", str(tmp_path / "copy"))
    assert res.exit_code == 0 and res.stdout.strip() == "ingested 3 records (3 new)", (res.stdout, res.stderr)
    assert "record_id" not in res.stderr, res.stderr
    with Store.open(tmp_path / "copy") as s:
        assert {r.sample_id: r.record_id for r in s.records()} == ids
    # into the store it came from: nothing new
    res = _cli("store", "import", str(out), "--store", str(path))
    assert res.exit_code == 0 and res.stdout.strip() == "ingested 3 records (0 new)", (res.stdout, res.stderr)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_an_edited_exported_row_is_stored_under_its_own_id_and_the_reply_says_so(tmp_path, store, suffix):
    path, ids = store
    out = tmp_path / f"export{suffix}"
    assert _cli("store", "export", str(out), "--store", str(path)).exit_code == 0
    header, *body = _rows(out)
    edited = next(row for row in body if row[1] == "S2")
    edited[header.index("property:hardness [GPa]")] = "1.75"
    if suffix == ".csv":
        with out.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([header, *body])
    else:
        wb = openpyxl.load_workbook(out)
        ws = wb.active
        for i, row in enumerate(body, start=2):
            if row[1] == "S2":
                ws.cell(i, header.index("property:hardness [GPa]") + 1).value = 1.75
        wb.save(out)
    line = 2 + body.index(edited)
    res = _cli("store", "import", str(out), "--store", str(tmp_path / "copy"))
    assert res.exit_code == 0 and "ingested 3 records (3 new)" in res.stdout, (res.stdout, res.stderr)
    with Store.open(tmp_path / "copy") as s:
        now = {r.sample_id: r.record_id for r in s.records()}
    assert now["S1"] == ids["S1"] and now["S2"] != ids["S2"]
    assert (f"line {line}: the row's values are not those of record {ids['S2']} (edited since it was exported?); "
            f"stored as record {now['S2']}") in res.stderr, res.stderr
    # into the store it came from: a changed value needs --replace, as for any sheet
    res = _cli("store", "import", str(out), "--store", str(path))
    assert res.exit_code == 2 and "--replace" in res.stderr, res.stderr
