"""`dm-hpc store ...` from a real subprocess, as a user runs it."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def dm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dm_hpc", *args], capture_output=True, text=True, cwd=REPO)


def test_import_query_export_check_through_cli(tmp_path, datasets):
    store = str(tmp_path / "s")
    res = dm("store", "import", str(datasets / "steel_strength.csv"), "--map",
             "configs/sheets/steel_strength.yaml", "--store", store)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ingested 312 records (312 new)"
    res = dm("store", "import", str(datasets / "steel_strength.csv"), "--map",
             "configs/sheets/steel_strength.yaml", "--store", store)
    assert res.stdout.strip() == "ingested 312 records (0 new)"
    res = dm("store", "check", "--store", store)
    assert res.returncode == 0 and "312 records" in res.stdout
    res = dm("store", "query", "--store", store, "--elements", "Co", "--out", str(tmp_path / "q.csv"))
    assert res.returncode == 0 and (tmp_path / "q.csv").exists()
    res = dm("store", "export", str(tmp_path / "x.xlsx"), "--store", store)
    assert res.returncode == 0 and "exported 312 records" in res.stdout


def test_bad_sheet_is_reported_without_traceback(tmp_path):
    sheet = tmp_path / "bad.csv"
    sheet.write_text("sample_id,composition:Cu [at_frac],property:density [g/cm^3]\nA,0.5,abc\n")
    res = dm("store", "import", str(sheet), "--store", str(tmp_path / "s"))
    assert res.returncode == 2
    assert "line 2" in res.stderr and "not a number" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "s" / "shards").exists() or not any((tmp_path / "s" / "shards").iterdir())
    res = dm("store", "info", "--store", str(tmp_path / "nowhere"))
    assert res.returncode == 2 and "no store at" in res.stderr


def test_store_import_takes_a_value_sent_again_in_another_unit_at_the_digits_typed(tmp_path):
    """A sample imported from 5.0 +- 0.1 GPa, imported again from a sheet in HV (510 +- 10 HV; the
    stored values are 509.858 and 10.197 HV): refused as a change ('already stored as 509.858 HV,
    this sheet says 510 HV'), where a lab sheet through `dm-hpc ingest` is unchanged at the digits
    typed. `store import` now reads it by the same rule: nothing new, and it says why. A value more
    than half its last digit off is still a change; in the store's own unit, compared as stored."""
    store, sheet = str(tmp_path / "s"), tmp_path / "sheet.csv"
    head = "sample_id,composition:Cu [at_frac],composition:Ni [at_frac]"

    def send(unit: str, hardness: str, uncertainty: str) -> subprocess.CompletedProcess:
        sheet.write_text(f"{head},property:hardness [{unit}],uncertainty:hardness [{unit}]\n"
                         f"S1,0.5,0.5,{hardness},{uncertainty}\n")
        return dm("store", "import", str(sheet), "--store", store, "--campaign", "c")

    first = send("GPa", "5.0", "0.1")
    assert first.returncode == 0 and first.stdout.strip() == "ingested 1 records (1 new)", first.stderr
    again = send("HV", "510", "10")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "ingested 1 records (0 new)", again.stdout
    said = "hardness 510 HV is the stored 509.9 HV (5 GPa) at the digits typed (510 +- 0.5 HV): unchanged"
    assert said in again.stderr, again.stderr
    assert "uncertainty of hardness 10 HV is the stored 10.2 HV (0.1 GPa)" in again.stderr, again.stderr
    changed = send("HV", "512", "10")
    assert changed.returncode == 2 and "already stored as 509.858 HV" in changed.stderr, changed.stderr
    assert "says 512 HV" in changed.stderr and "Traceback" not in changed.stderr
    assert send("HV", "510", "12").returncode == 2  # the uncertainty more than half a digit off
    assert send("GPa", "5.001", "0.1").returncode == 2  # the store's unit: as stored
    from dm_hpc.data import Store

    with Store.open(store) as s:  # one record, as first stored: no copy, no correction
        [rec] = [s.get(rid) for rid in s.to_dataframe(superseded=True)["record_id"]]
    assert (rec.get_property("hardness").value, rec.get_property("hardness").uncertainty) == (5.0, 0.1)
    # the sample completed from the HV sheet (density measured since): its stored hardness stays
    sheet.write_text(f"{head},property:hardness [HV],uncertainty:hardness [HV],property:density [g/cm3]\n"
                     "S1,0.5,0.5,510,10,8.9\n")
    done = dm("store", "import", str(sheet), "--store", store, "--campaign", "c")
    assert done.returncode == 0 and done.stdout.strip() == "ingested 1 records (1 new)", done.stderr
    with Store.open(store) as s:
        assert s.check().ok  # the numbers stored beside each record's JSON agree with it
        current = s.to_dataframe()
        [new] = [s.get(rid) for rid in current["record_id"]]
    assert current[["hardness", "density"]].values.tolist() == [[5.0, 8.9]]  # the columns a query reads
    assert (new.get_property("hardness").uncertainty, new.provenance.supersedes) == (0.1, [rec.record_id])


def test_store_import_of_a_sheet_typed_in_another_unit_reads_the_store_table_once(tmp_path, monkeypatch):
    """`dm-hpc store import` of a sheet with a column typed in another unit than the store's read
    the whole store table three times (once to judge the retyped cells, once to find the samples
    sent again, once more to resolve them): on a store of millions of records, minutes each. Now
    it reads it once and hands it to each step; the sample is still unchanged at the digits typed."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app
    from dm_hpc.data import Store

    store, sheet = str(tmp_path / "s"), tmp_path / "sheet.csv"
    head = "sample_id,composition:Cu [at_frac],composition:Ni [at_frac]"

    def send(unit: str, hardness: str) -> str:
        sheet.write_text(f"{head},property:hardness [{unit}]\nS1,0.5,0.5,{hardness}\nS2,0.4,0.6,{hardness}\n")
        res = CliRunner().invoke(app, ["store", "import", str(sheet), "--store", store, "--campaign", "c"],
                                 env={"COLUMNS": "300"})
        assert res.exit_code == 0, res.output
        return res.output

    send("GPa", "5.0")
    reads = []
    table = Store.to_dataframe

    def counted(self, **filters):
        reads.append(filters)
        return table(self, **filters)

    monkeypatch.setattr(Store, "to_dataframe", counted)
    out = send("HV", "510")
    assert "ingested 2 records (0 new)" in out and "at the digits typed" in out, out
    assert len(reads) == 1, reads


def test_a_store_path_that_is_a_file_is_named_so(tmp_path):
    """``store info --store runs/x/store/store.h5`` said 'no store at ... (missing manifest.json)',
    and README says a missing manifest is `store recover`'s to rebuild: the user was sent to
    repair a store that is fine. A file is now called a file, and store.h5 names its folder."""
    store = tmp_path / "s"
    sheet = tmp_path / "one.csv"
    sheet.write_text("sample_id,composition:Cu [at_frac],property:density [g/cm^3]\nA,1,8.9\n")
    assert dm("store", "import", str(sheet), "--store", str(store)).returncode == 0
    for command in ("info", "check", "compact"):
        res = dm("store", command, "--store", str(store / "store.h5"))
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert f"name the store's folder, {store}" in res.stderr and "missing manifest" not in res.stderr, res.stderr
    res = dm("store", "import", str(sheet), "--store", str(sheet))
    assert res.returncode == 2 and "is a file, not a store folder" in res.stderr, res.stderr
    res = dm("store", "info", "--store", str(tmp_path / "nowhere"))
    assert res.returncode == 2 and "no store at" in res.stderr and "no such folder" in res.stderr, res.stderr
