"""Corrections with history through the real CLI and store: a blank cell under --replace, retract.

Reproduces issue 21: ``ingest --replace`` with the wrong cell left empty printed "not made" and
kept the old value live in ``records()``; there was no way to retract a value.
"""
from __future__ import annotations

from dm_hpc.api import Campaign
from dm_hpc.campaign import journal as jn
from dm_hpc.data import Store
from dm_hpc.data.corrections import RETRACTION_METHOD, retract, retraction_of
from tests.campaign.helpers import dm
from tests.data.test_sheets_lab import fill, lab_campaign


def _sheet_with_wrong_value(tmp_path):
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    wrong = fill(sheet, tmp_path / "wrong.xlsx", {"L1-0": -0.05, "L1-1": 1.87})
    res = dm("ingest", str(path), str(wrong), "--confirm", "L1-1")  # the lab insisted, wrongly
    assert res.returncode == 0 and "confirmed despite the model: L1-1" in res.stdout, res.stderr
    return path, campaign, sheet


def test_replace_with_the_wrong_cell_left_blank_says_the_old_value_stays(tmp_path):
    path, campaign, sheet = _sheet_with_wrong_value(tmp_path)
    blanked = fill(sheet, tmp_path / "blanked.xlsx", {"L1-0": -0.05, "L1-1": None})
    res = dm("ingest", str(path), str(blanked), "--replace")
    assert res.returncode == 0, res.stderr
    assert "warning: line 3: sample 'L1-1': this row is blank, so the store keeps mixing_energy = 1.87" in res.stdout
    assert "dm-hpc retract" in res.stdout and "not made (marked so)" not in res.stdout
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    assert not state.lab["L1-1"].not_made and state.lab["L1-1"].record_id  # told, and not called "not made"


def test_retract_withdraws_a_value_and_keeps_who_when_why(tmp_path):
    path, campaign, _ = _sheet_with_wrong_value(tmp_path)
    api = Campaign.load(path)
    bad = api.records().set_index("sample_id").loc["L1-1", "record_id"]
    res = dm("retract", bad, "--campaign", str(path), "--reason", "Vickers number typed as eV/atom")
    assert res.returncode == 0, res.stderr
    assert f"retracted {bad}" in res.stdout
    assert "L1-1" not in set(api.records()["sample_id"])  # out of queries (and so of training, best)
    with Store.open(campaign.store) as store:
        everything = store.to_dataframe(superseded=True)
        assert bad in set(everything["record_id"])  # kept
        (marker,) = [r for r in store.records(superseded=True) if r.provenance.method == RETRACTION_METHOD]
        told = retraction_of(marker)
        assert told.record_id == bad and told.reason == "Vickers number typed as eV/atom" and told.by
    res = dm("retract", bad, "--campaign", str(path), "--reason", "again")
    assert res.returncode == 2 and "already withdrawn" in res.stderr
    # the hint is a command to run, not Python, and that command lists the withdrawn record
    assert "to_dataframe" not in res.stderr and f"dm-hpc store query --store {campaign.store} --superseded" in res.stderr
    res = dm("store", "query", "--store", str(campaign.store), "--superseded", "--out", str(tmp_path / "all.csv"))
    assert res.returncode == 0 and bad in (tmp_path / "all.csv").read_text(), res.stderr
    res = dm("retract", "dm-00000000000000000000", "--campaign", str(path), "--reason", "x")
    assert res.returncode == 2 and "no record" in res.stderr and "Traceback" not in res.stderr


def test_retract_needs_a_reason_and_a_retraction_is_idempotent(tmp_path):
    path, campaign, _ = _sheet_with_wrong_value(tmp_path)
    with Store.open(campaign.store, "a") as store:
        rid = store.to_dataframe(sample_id="L1-0")["record_id"].item()
        try:
            retract(store, rid, "  ")
        except ValueError as exc:
            assert "needs a reason" in str(exc)
        else:
            raise AssertionError("an empty reason was accepted")
        retract(store, rid, "contaminated", by="alice")
        n = len(store)
        assert store.to_dataframe(sample_id="L1-0").empty
        assert len(store.to_dataframe(sample_id="L1-0", superseded=True)) == 2 and len(store) == n


def test_api_retract_and_replace(tmp_path):
    path, campaign, _ = _sheet_with_wrong_value(tmp_path)
    api = Campaign.load(path)
    rows = api.records().set_index("sample_id")
    col = "property:mixing_energy [eV/atom]"
    fixed = api.add_measurements(
        __import__("pandas").DataFrame({"sample_id": ["L1-1"], "composition:Cu [at_frac]": [0.25],
                                        "composition:Ni [at_frac]": [0.75], col: [-0.08]}), replace=True)
    assert fixed[col].tolist() == [-0.08]
    api.retract(rows.loc["L1-0", "record_id"], reason="furnace failed")
    assert set(api.records()["sample_id"]) == {"L1-1"}
