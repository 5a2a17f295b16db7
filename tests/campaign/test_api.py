"""Lab on demand and the Python API (issue 9 §4, §5): real EMT, real store, real BoTorch."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from dm_hpc import Campaign
from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.suggest import lab_batch
from dm_hpc.data import Store
from dm_hpc.data.sheets import SheetError

from .helpers import dm, write_campaign

PROP = "property:mixing_energy [eV/atom]"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    path = write_campaign(tmp, name="api", calculations=6,
                          budget={"calculations": 6, "lab_experiments": 20, "core_hours_per_lab_day": 0.5})
    camp = Campaign.load(path)
    summary = camp.run()
    assert summary.ingested >= 5
    return tmp, path, camp


def test_suggest_n_journals_new_experiments_and_never_repeats(finished):
    tmp, path, camp = finished
    before = jn.replay(camp.spec.run_dir / "journal.jsonl")
    res = dm("suggest", str(path), "-n", "3", "--out", str(tmp / "s1.csv"))
    assert res.returncode == 0 and "wrote 3 new suggested experiments" in res.stdout, res.stdout + res.stderr
    sheet = pd.read_csv(tmp / "s1.csv")
    assert len(sheet) == 3 and sheet[PROP].isna().all()
    after = jn.replay(camp.spec.run_dir / "journal.jsonl")
    assert set(after.lab) - set(before.lab) == set(sheet["sample_id"])
    keys = [(tuple(sorted(e.composition.items()))) for e in after.lab.values()]
    assert len(keys) == len(set(keys))  # a lab batch never repeats an earlier suggestion


def test_an_empty_sheet_is_explained(finished, tmp_path):
    _, path, camp = finished
    data = yaml.safe_load(path.read_text())
    data["budget"]["lab_experiments"] = len(jn.replay(camp.spec.run_dir / "journal.jsonl").lab)
    capped = tmp_path / "capped.yaml"
    capped.write_text(yaml.safe_dump(data))
    res = dm("suggest", str(capped), "-n", "2", "--out", str(tmp_path / "none.csv"))
    # no header-only sheet: as without --out (review)
    assert res.returncode == 0 and "no new suggested experiment: the lab budget is used up" in res.stdout, res.stdout
    assert not (tmp_path / "none.csv").exists()


def test_the_same_journal_gives_the_same_lab_batch(finished, tmp_path):
    """Issue 9: what the lab received depended on when the run was interrupted."""
    _, _, camp = finished
    c = camp.spec
    state = jn.replay(c.run_dir / "journal.jsonl")
    df = Store.open(c.store).to_dataframe()
    a = lab_batch(c, state, df, 3)
    b = lab_batch(c, jn.replay(c.run_dir / "journal.jsonl"), df.copy(), 3)
    assert [s["composition"] for s in a.samples] == [s["composition"] for s in b.samples] and a.samples


def test_a_paused_run_sends_the_lab_nothing_the_uninterrupted_one_would_not(tmp_path):
    c = load_campaign(write_campaign(tmp_path, name="pause", calculations=4))
    from dm_hpc.campaign.manager import CampaignManager

    CampaignManager(c, quiet=True).run(max_seconds=3)  # paused mid-run
    lab_after_pause = set(jn.replay(c.run_dir / "journal.jsonl").lab)
    summary = CampaignManager(c, quiet=True).run()
    assert summary.reason.startswith("calculation budget reached")
    final = jn.replay(c.run_dir / "journal.jsonl")
    assert lab_after_pause <= set(final.lab) and final.lab  # a lab batch at the real stop


def test_python_api_suggest_measure_records(finished, tmp_path):
    _, _, camp = finished
    sheet = camp.suggest(2)
    assert list(sheet["sample_id"]) and sheet[PROP].isna().all()
    assert any(col.startswith("composition:") for col in sheet.columns)
    filled = sheet.copy()
    # the model's own predictions: plausible (a value far outside its 99 % interval is held)
    filled[PROP] = sheet.get("predicted:mixing_energy [eV/atom]", pd.Series([-0.01, -0.02]))
    stored = camp.add_measurements(filled)
    assert sorted(stored["sample_id"]) == sorted(sheet["sample_id"]) and stored["record_id"].notna().all()
    recs = camp.records()
    assert set(sheet["sample_id"]) <= set(recs["sample_id"].dropna())
    assert set(recs["source"]) == {"computed", "experimental"}
    bad = filled.copy()
    bad.loc[0, "sample_id"] = "nobody"
    with pytest.raises(SheetError, match="unknown sample_id 'nobody'"):
        camp.add_measurements(bad)


def test_from_dict_resolves_paths_against_base_dir(tmp_path):
    data = yaml.safe_load(write_campaign(tmp_path, name="d", lab=False).read_text())
    data["store"], data.pop("workdir")
    data["store"] = "store-here"
    camp = Campaign.from_dict(data, base_dir=tmp_path / "base")
    assert camp.spec.store == tmp_path / "base" / "store-here"
    assert camp.spec.run_dir == tmp_path / "base" / "runs" / "d"


def test_a_lab_only_campaign_is_valid_and_suggests(tmp_path):
    """Issue 9: a lab-only campaign was rejected."""
    path = write_campaign(tmp_path, name="labonly", lab=True,
                          fidelities=[{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2}],
                          budget={"lab_experiments": 6})
    res = dm("validate", str(path))
    assert res.returncode == 0, res.stderr
    sheet = Campaign.load(path).suggest(3)
    assert len(sheet) == 3 and sheet[PROP].isna().all()
    shutil.rmtree(tmp_path / "run")


def test_suggest_n_while_the_campaign_runs_is_answered_by_its_manager(tmp_path):
    import subprocess
    import sys
    import time

    from dm_hpc.campaign.suggest import request_lab_batch
    from tests.conftest import REPO

    path = write_campaign(tmp_path, name="live", calculations=40,
                          budget={"calculations": 40, "lab_experiments": 20, "core_hours_per_lab_day": 0.5})
    c = load_campaign(path)
    proc = subprocess.Popen([sys.executable, "-m", "dm_hpc", "run", str(path), "--quiet"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any(
                e["event"] == "ingested" for e in jn.Journal.events(c.run_dir / "journal.jsonl")):
            time.sleep(0.2)
        batch = request_lab_batch(c, 2, timeout_s=120)
        assert len(batch.samples) == 2, batch.why_empty
        assert proc.poll() is None  # answered by the running manager, through its inbox
        state = jn.replay(c.run_dir / "journal.jsonl")
        assert {s["sample_id"] for s in batch.samples} <= set(state.lab)
    finally:
        dm("stop", str(path))
        proc.wait(timeout=300)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
