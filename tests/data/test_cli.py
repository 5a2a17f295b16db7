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
