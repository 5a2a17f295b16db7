"""Campaign files and commands a review found accepted by ``validate`` and failing later, or
refused with a misleading message: each is now refused (or accepted) with the field named."""
from __future__ import annotations

import pytest

from dm_hpc.campaign import CampaignError, load_campaign

from .helpers import dm, write_campaign

LAB = {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2}
HARDNESS = [{"property": "hardness", "goal": "max"}]


def test_a_negative_seed_is_refused_at_validate(tmp_path):
    """It validated, then run / suggest failed in numpy: 'expected non-negative integer'."""
    res = dm("validate", str(write_campaign(tmp_path, seed=-1)))
    assert res.returncode != 0, res.stdout
    out = res.stdout + res.stderr
    assert "seed" in out and "greater than or equal to 0" in out and "Traceback" not in out, out
    assert load_campaign(write_campaign(tmp_path, name="zero", seed=0)).seed == 0


def test_design_refuses_a_negative_seed_in_one_line(tmp_path):
    res = dm("design", "--store", str(tmp_path / "none"), "--target", "bulk_modulus>=150 GPa", "--seed", "-1")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert "--seed -1" in res.stderr and "0 or more" in res.stderr, res.stderr


def test_an_excluded_element_needs_no_method_able_to_calculate_it(tmp_path):
    """emt has no potential for Fe; Fe left out of the space must not refuse the campaign."""
    space = {"elements": {"Cu": [0, 1], "Ni": [0, 1], "Fe": [0, 1]}, "excluded": ["Fe"], "max_elements": 2}
    res = dm("validate", str(write_campaign(tmp_path, space=space)))
    assert res.returncode == 0 and "cannot calculate" not in res.stdout + res.stderr, res.stdout + res.stderr
    del space["excluded"]  # still refused where Fe is in the space
    res = dm("validate", str(write_campaign(tmp_path, name="fe", space=space)))
    assert res.returncode != 0 and "method emt cannot calculate Fe" in res.stdout + res.stderr, res.stdout + res.stderr


def test_a_leading_tilde_is_the_home_folder(tmp_path, monkeypatch):
    """'~/x' became a folder named '~' beside the campaign file."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    files = tmp_path / "files"
    files.mkdir()
    c = load_campaign(write_campaign(files, store="~/stores/s", workdir="~/runs/t"))
    assert c.store == home / "stores" / "s" and c.workdir == home / "runs" / "t"
    c = load_campaign(write_campaign(files, name="default", store=None, workdir="~/runs/d"))
    assert c.store == home / "runs" / "d" / "store"
    assert not (files / "~").exists()


def test_a_lab_only_campaign_with_no_lab_experiments_says_so(tmp_path):
    """It was refused with 'budget needs core_hours, calculations or wall_time', which a lab-only
    campaign has no use for."""
    path = write_campaign(tmp_path, fidelities=[LAB], objectives=HARDNESS, budget={"lab_experiments": 0})
    with pytest.raises(CampaignError) as exc:
        load_campaign(path)
    assert "lab-only campaign needs lab_experiments >= 1" in str(exc.value), str(exc.value)
    assert "core_hours" not in str(exc.value)
    path = write_campaign(tmp_path, name="one", fidelities=[LAB], objectives=HARDNESS, budget={"lab_experiments": 1})
    assert load_campaign(path).budget.lab_experiments == 1


def test_models_export_with_no_registered_model_ends_its_line(tmp_path):
    res = dm("models", str(write_campaign(tmp_path)), "--export", str(tmp_path / "m.json"))
    assert res.returncode == 2 and "no model version is registered yet" in res.stderr, res.stderr
    assert res.stderr.endswith("\n") and "Traceback" not in res.stderr, repr(res.stderr)
    assert not (tmp_path / "m.json").exists()


def test_suggest_out_writes_no_empty_sheet_when_the_lab_budget_is_used_up(tmp_path):
    """With -o it wrote a header-only sheet ('wrote 0 new suggested experiments'); without, it
    said why nothing was suggested. Now both say why, and a file at --out is left as it was."""
    from dm_hpc.api import Campaign

    path = write_campaign(tmp_path, fidelities=[LAB], objectives=HARDNESS, budget={"lab_experiments": 2})
    Campaign.load(path).suggest(2)
    said = "no new suggested experiment: the lab budget is used up"
    res = dm("suggest", str(path), "-n", "1")
    assert res.returncode == 0 and said in res.stdout, res.stdout + res.stderr
    out = tmp_path / "out.csv"
    res = dm("suggest", str(path), "-n", "1", "-o", str(out))
    assert res.returncode == 0 and said in res.stdout and "wrote" not in res.stdout, res.stdout + res.stderr
    assert not out.exists()
    out.write_text("an older sheet\n")
    res = dm("suggest", str(path), "-n", "1", "-o", str(out))
    assert res.returncode == 0 and said in res.stdout, res.stdout + res.stderr
    assert out.read_text() == "an older sheet\n"
