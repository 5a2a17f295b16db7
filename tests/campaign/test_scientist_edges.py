"""What a user-edge pass as a computational scientist found (stop 34: the notebook API, `suggest`,
`design`, `plan`, `calc`, `models`); each test fails on the code before its fix. Real campaign
files, real store, real BoTorch."""
from __future__ import annotations

import pandas as pd
import pytest

from dm_hpc import Campaign
from tests.campaign.helpers import write_campaign

PROP = "property:mixing_energy [eV/atom]"


def _two_measured(path):
    """The campaign at ``path`` with two suggested samples measured (mixing energy only); its store's frame."""
    from dm_hpc.data import Store

    api = Campaign.load(path)
    sheet = api.suggest(2)
    sheet[PROP] = [-0.05, -0.02]
    api.add_measurements(sheet)
    return api, Store.open(api.spec.store).to_dataframe()


def test_lab_records_enter_the_model_of_a_campaign_whose_objective_is_a_price(tmp_path):
    """The demo campaign minimises the raw-material cost beside the mixing energy; a lab measures
    the energy, never a price, so its records were all left out ("2 lack raw_material_cost")."""
    from dm_hpc.campaign.dataset import training_set
    from dm_hpc.compute.descriptors import analytic_properties
    from dm_hpc.data import Composition

    path = write_campaign(tmp_path, objectives=[{"property": "mixing_energy", "goal": "min"},
                                                {"property": "raw_material_cost", "goal": "min"}])
    api, df = _two_measured(path)
    assert "raw_material_cost" not in df.columns or df["raw_material_cost"].isna().all()  # the store is unchanged
    data = training_set(api.spec, df)
    assert len(data) == 2 and not data.skipped, data.skipped
    for comp, y in zip(data.compositions, data.Y):
        assert y[1] == pytest.approx(analytic_properties(Composition(comp), ["raw_material_cost"])["raw_material_cost"])
    assert api.summary()["model"] == "can be fitted"


def test_two_suggests_at_once_run_one_after_the_other(tmp_path):
    """A second `suggest -n` while another was writing took the first for a running manager: it
    handed its request to an inbox nobody read, waited 300 s and wrote an empty sheet, exit 0."""
    import time

    from dm_hpc.campaign.ownership import exclusive
    from dm_hpc.campaign.suggest import request_lab_batch
    from tests.campaign.helpers import held_elsewhere

    api = Campaign.load(write_campaign(tmp_path))
    with held_elsewhere(lambda: exclusive(api.spec), release_after=1.5):
        t0 = time.monotonic()
        batch = request_lab_batch(api.spec, 2, timeout_s=60)  # waits for the first, then suggests itself
    assert len(batch.samples) == 2 and not batch.why_empty
    assert time.monotonic() - t0 < 55  # it was not answered by the inbox's deadline


def test_a_sheet_that_cannot_be_written_spends_nothing_of_the_lab_budget(tmp_path):
    """`suggest -n 2 --out /nonexistent/x.xlsx` journalled the batch (budget spent), then failed
    with a traceback; run twice, 4 experiments were owed and no sheet existed."""
    from tests.campaign.helpers import dm

    path = write_campaign(tmp_path)
    for _ in range(2):
        res = dm("suggest", str(path), "-n", "2", "--out", str(tmp_path / "nope" / "x.xlsx"))
        assert res.returncode != 0 and "does not exist" in res.stdout + res.stderr
        assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr
    assert Campaign.load(path).pending().empty
    res = dm("suggest", str(path), "-n", "2", "--out", str(tmp_path / "x.txt"))
    assert res.returncode != 0 and "use .csv or .xlsx" in res.stdout + res.stderr
    assert Campaign.load(path).pending().empty


def _process_campaign(tmp_path, unit="GPa", hardness=(1.0, 0.5)):
    """The guide's lab-only process campaign (docs/guide/lab-and-process.md), 6 samples measured
    (``hardness``: the first value and the step, in ``unit``, the objective's unit)."""
    import yaml

    data = {"name": "cu-ni-anneal", "store": str(tmp_path / "store"), "workdir": str(tmp_path / "run"),
            "space": {"elements": {"Cu": [0.5, 1.0], "Ni": [0.0, 0.5]},
                      "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"},
                                  "annealing_time": {"low": 30, "high": 480, "unit": "min"}}},
            "objectives": [{"property": "hardness", "goal": "max", "unit": unit}],
            "fidelities": [{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 6, "precision": 0.01}],
            "budget": {"lab_experiments": 16}, "learning": {"initial_points": 4}}
    path = tmp_path / "cu-ni-anneal.yaml"
    path.write_text(yaml.safe_dump(data))
    api = Campaign.load(path)
    sheet = api.suggest(6)
    sheet[f"property:hardness [{unit}]"] = [hardness[0] + hardness[1] * i for i in range(len(sheet))]
    api.add_measurements(sheet)
    return path


def test_design_with_a_process_campaign_proposes_process_values_in_their_units(tmp_path):
    """`design --campaign` on the guide's process campaign ended in BotorchTensorDimensionError
    ("Received 12, expected 10"): its models were fitted without the process inputs the candidates carry."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app

    path = _process_campaign(tmp_path)
    out = tmp_path / "d.csv"
    res = CliRunner().invoke(app, ["design", "--campaign", str(path), "--target", "hardness>=2 GPa", "-n", "3",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    new = table[table["status"] == "new"]
    assert len(new) == 3
    # as the lab sheet heads them: in the units the campaign file writes (degC, min), not K and h
    temp = new["process:treatment:annealing_temperature [degC]"]
    time = new["process:treatment:annealing_time [min]"]
    assert temp.between(400 - 1e-6, 900 + 1e-6).all() and time.between(30 - 1e-9, 480 + 1e-9).all()


def test_design_names_every_column_with_its_unit_as_the_campaign_shows_it(tmp_path):
    """A user trial: `design` headed its columns `hardness_pred`, `_std`, `_measured`, with no unit
    in the table or the --out CSV (the README: every sheet names columns `property:x [unit]`).
    With --campaign the units are the campaign's shown units (an objective written in HV: HV)."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app

    path = _process_campaign(tmp_path, unit="HV", hardness=(100.0, 50.0))  # 100 ... 350 HV
    out = tmp_path / "d.csv"
    res = CliRunner().invoke(app, ["design", "--campaign", str(path), "--target", "hardness>=200 HV", "-n", "3",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert not [c for c in table.columns if c.endswith(("_pred", "_std", "_measured"))], list(table.columns)
    new, known = table[table["status"] == "new"], table[table["status"] == "known"]
    assert new["predicted:hardness [HV]"].notna().all() and new["predicted_std:hardness [HV]"].gt(0).all()
    assert new["predicted:hardness [HV]"].between(20, 2000).all()  # HV values, not GPa ones
    assert len(known) >= 1 and known["property:hardness [HV]"].ge(200 - 1e-6).all()
    for header in ("predicted:hardness [HV]", "process:treatment:annealing_temperature [degC]"):
        assert header in " ".join(res.output.split()), res.output  # the terminal table too
    assert "_pred" not in res.output and "[K]" not in res.output


def test_a_target_window_on_one_property_is_designed_for_and_a_contradiction_is_named(tmp_path):
    """`--target density>=7 --target density<=9` failed with pandas' "Invalid call for scalar access";
    contradictory ones too, instead of naming them."""
    import torch

    from dm_hpc.acquire.design import design
    from dm_hpc.acquire.inverse import TargetError, meet_probability, parse_target
    from dm_hpc.data import Store

    path = _process_campaign(tmp_path)
    df = Store.open(Campaign.load(path).spec.store).to_dataframe()
    res = design(df, ["hardness>=1.5 GPa", "hardness<=2.5 GPa"], n=2, n_candidates=500)
    assert len(res.new) == 2 and all(0 <= c.probability <= 1 for c in res.new)
    assert res.known and all(1.5 <= k.measured["hardness"] <= 2.5 for k in res.known)  # the measured ones inside
    with pytest.raises(TargetError, match="cannot all be met"):
        design(df, ["hardness>=3 GPa", "hardness<=2 GPa"], n=2)
    # a window's probability is the mass inside it, not the product of its two sides
    window = [parse_target("density>=7 g/cm3"), parse_target("density<=9 g/cm3")]
    p = meet_probability(window, torch.tensor([8.0]), torch.tensor([5.0]))
    assert float(p) == pytest.approx(0.1585, abs=1e-3)


def test_a_second_campaign_naming_the_first_ones_run_folder_is_refused(tmp_path):
    """A copy of the demo file with another name but the same workdir appended "resume hea-u" to
    hea-demo's journal, took its budget as spent and wrote its report over hea-demo's."""
    import yaml

    from dm_hpc.campaign.lock import RunFolderTakenError
    from tests.campaign.helpers import dm

    first = write_campaign(tmp_path, name="first")
    api = Campaign.load(first)
    api.suggest(2)  # the first campaign has used its run folder
    data = yaml.safe_load(first.read_text())
    data["name"] = "second"
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump(data))
    journal = (api.spec.run_dir / "journal.jsonl").read_bytes()
    for args in (("validate", second), ("run", second), ("report", second), ("suggest", second, "-n", "2", "--out",
                                                                                tmp_path / "s.xlsx")):
        res = dm(*map(str, args))
        assert res.returncode != 0 and "holds campaign 'first'" in res.stdout + res.stderr, (args, res.stdout, res.stderr)
    with pytest.raises(RunFolderTakenError):
        Campaign.load(second).suggest(2)
    # ... also while a manager holds the folder: the request must not reach the first one's inbox
    from dm_hpc.campaign.lock import take_manager_lock

    fd = take_manager_lock(api.spec.run_dir, "busy")
    try:
        with pytest.raises(RunFolderTakenError):
            Campaign.load(second).suggest(2)
    finally:
        import os

        os.close(fd)
    assert not list((api.spec.run_dir / "inbox").glob("*")) if (api.spec.run_dir / "inbox").exists() else True
    assert (api.spec.run_dir / "journal.jsonl").read_bytes() == journal
    assert len(Campaign.load(first).suggest(2)) == 2  # the owner goes on


def test_transfer_advice_agrees_with_what_validate_accepts(tmp_path):
    """`transfer suggest` proposed sources for a two-objective campaign, which validate then refused
    with "remove the transfer block, or the constraint" though it had no constraint."""
    import yaml
    from typer.testing import CliRunner

    from dm_hpc.campaign import CampaignError, load_campaign
    from dm_hpc.cli import app

    path = write_campaign(tmp_path, objectives=[{"property": "mixing_energy", "goal": "min"},
                                                {"property": "raw_material_cost", "goal": "min"}])
    res = CliRunner().invoke(app, ["transfer", "suggest", str(path)])
    assert res.exit_code != 0 and "none is proposed" in " ".join(res.output.split()), res.output
    data = yaml.safe_load(path.read_text())
    data["transfer"] = {"from": [{"campaign": "other"}]}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CampaignError) as err:
        load_campaign(path)
    assert "or the other objectives" in str(err.value) and "constraint" not in str(err.value).split("remove")[1]


def test_plan_after_the_calculation_budget_is_spent_submits_nothing(tmp_path):
    """After the demo run `plan` still showed a "next wave 2" although `run` would submit nothing."""
    from typer.testing import CliRunner

    from dm_hpc.campaign import journal as jn
    from dm_hpc.cli import app

    path = write_campaign(tmp_path, calculations=3)
    api = Campaign.load(path)
    api.spec.run_dir.mkdir(parents=True, exist_ok=True)
    journal = jn.Journal(api.spec.run_dir / "journal.jsonl")
    journal.write("start", campaign=api.name)
    for i in range(2):
        journal.write("planned", task_id=f"t-{i}", fidelity="emt", composition={"Cu": 0.5, "Ni": 0.5})
    journal.close()
    res = CliRunner().invoke(app, ["plan", str(path), "--dry-run", "--no-scripts"])
    assert res.exit_code == 0 and "calculations so far 2 of 3" in res.output, res.output
    header = next(line for line in res.output.splitlines() if line.startswith("fidelity"))
    row = next(line for line in res.output.splitlines() if line.startswith("emt "))
    end = header.index("next wave") + len("next wave")
    assert row[:end].split()[-1] == "1", (header, row)  # the one calculation left
    journal = jn.Journal(api.spec.run_dir / "journal.jsonl")
    journal.write("planned", task_id="t-2", fidelity="emt", composition={"Cu": 0.5, "Ni": 0.5})
    journal.close()
    res = CliRunner().invoke(app, ["plan", str(path), "--dry-run", "--no-scripts"])
    assert res.exit_code == 0 and "calculation budget reached (3): nothing would be submitted" in res.output


@pytest.mark.parametrize(("setting", "said"), [("n_atoms=abc", "must be one of"), ("n_atoms=.inf", "must be one of"),
                                               ("eos_points=abc", "expected a whole number"),
                                               ("eos_points=2.5", "expected a whole number"),
                                               ("eos_strain=lots", "expected a number")])
def test_calc_settings_of_the_wrong_kind_are_named_not_a_traceback(setting, said):
    """`calc run --set n_atoms=abc` ended in a traceback; `--set eos_points=abc` was accepted and a
    record stored."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app

    res = CliRunner().invoke(app, ["calc", "run", "-c", "CuNi", "--set", setting])
    assert res.exit_code == 2 and said in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    assert said in res.output and "Traceback" not in res.output, res.output


def test_a_fraction_too_small_for_the_largest_cell_is_explained():
    """`calc run -c Cu1000Ni1` advised "use a larger n_atoms" when 256 is already the largest fcc cell."""
    from dm_hpc.compute.structures import StructureError, plan_structure
    from dm_hpc.data import Composition

    with pytest.raises(StructureError, match="largest fcc cell") as err:
        plan_structure(Composition("Cu1000Ni1"), {"lattice": "fcc"})
    assert "larger n_atoms" not in str(err.value)
    from dm_hpc.compute.methods import get_method

    emt = get_method("emt")
    assert emt.merged_settings({"relax_steps": "1e3"})["relax_steps"] == 1000  # YAML reads 1e3 as text
    # a number given as a number is kept (the settings hash of existing campaigns stays the same)
    assert type(emt.merged_settings({"relax_fmax": 1})["relax_fmax"]) is int
    assert get_method("gpaw").merged_settings({"ecut_ev": 420.5})["ecut_ev"] == 420.5  # a cutoff is not a count


def test_models_json_is_json_when_a_metric_is_undefined(tmp_path):
    """`models --json` wrote NaN (an RMSE over no held-out record), which JSON parsers refuse."""
    import json
    import math

    from typer.testing import CliRunner

    from dm_hpc.campaign import registry
    from dm_hpc.cli import app
    from dm_hpc.cli.models import _json_safe

    path = _process_campaign(tmp_path)
    registry.train(Campaign.load(path).spec)
    res = CliRunner().invoke(app, ["models", str(path), "--json"])
    assert res.exit_code == 0, res.output
    json.loads(res.output, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert _json_safe({"rmse": {"hardness": math.nan}, "n": [1.0, math.inf]}) == {"rmse": {"hardness": None}, "n": [1.0, None]}


def test_notebook_calls_with_a_wrong_count_or_an_unknown_record_say_so(tmp_path):
    """`best("3")` failed inside pandas, `best(-1)` returned all rows but the last, `retract` of an
    unknown id raised a bare KeyError."""
    import numpy as np

    from dm_hpc.campaign import CampaignError

    api = Campaign.load(_process_campaign(tmp_path))
    for bad, error in (("3", TypeError), (2.5, TypeError), (-1, ValueError), (0, ValueError), (True, TypeError)):
        with pytest.raises(error, match="n must be"):
            api.best(bad)
        with pytest.raises(error, match="n must be"):
            api.suggest(bad)
    assert len(api.best(np.int64(2))) == 2
    with pytest.raises(CampaignError, match="no record 'dm-nonexistent'"):
        api.retract("dm-nonexistent", "typo")


def test_design_exclusions_that_exclude_nothing_or_everything_are_named(tmp_path):
    """`--exclude Xx` was accepted without a word; excluding every element printed pymatgen's
    "Invalid formula=''"."""
    from dm_hpc.acquire.design import design
    from dm_hpc.acquire.inverse import TargetError
    from dm_hpc.data import Store

    df = Store.open(Campaign.load(_process_campaign(tmp_path)).spec.store).to_dataframe()
    with pytest.raises(TargetError, match="excluded: unknown element 'Xx'"):
        design(df, ["hardness>=2 GPa"], n=2, excluded=["Xx"])
    with pytest.raises(TargetError, match=r"unknown element 'cu' \(did you mean 'Cu'\?\)"):  # `--exclude cu`
        design(df, ["hardness>=2 GPa"], n=2, excluded=["cu"])
    with pytest.raises(TargetError, match="every element of the records is excluded"):
        design(df, ["hardness>=2 GPa"], n=2, excluded=["Cu", "Ni"])


def test_a_constraint_no_material_of_its_class_can_meet_is_refused(tmp_path):
    """`density <= 0.01 g/cm3` on a metal campaign validated and suggestions went ahead, though
    ingest refuses any metal below 0.5 g/cm3."""
    from dm_hpc.campaign import CampaignError, load_campaign

    path = write_campaign(tmp_path, constraints=["density <= 0.01 g/cm3"])
    with pytest.raises(CampaignError, match="cannot be met by a metal: density is 0.5 to 23"):
        load_campaign(path)
    load_campaign(write_campaign(tmp_path, name="fine", constraints=["density <= 9 g/cm3"]))


def test_a_fresh_campaigns_frames_have_the_sheet_columns(tmp_path):
    """On a fresh campaign `records()` and `best()` returned frames of no columns, `pending()` the sheet's."""
    api = Campaign.load(write_campaign(tmp_path))
    for frame in (api.records(), api.best(3)):
        assert frame.empty and {"sample_id", "record_id", PROP, "composition:Cu [at_frac]"} <= set(frame.columns)


def test_a_value_in_the_canonical_unit_under_another_units_header_gets_the_right_advice(tmp_path):
    """A density of 12.1 under [kg/m**3] was refused with "a value in kg/m3? write the header as
    [kg/m**3]", which the header already said."""
    from dm_hpc.data.sheetfiles import SheetError

    api = Campaign.load(write_campaign(tmp_path, constraints=["density <= 15 g/cm3"]))
    sheet = api.suggest(2)
    sheet[PROP] = [-0.05, -0.02]
    sheet = sheet.rename(columns={"property:density [g/cm^3]": "property:density [kg/m**3]"})
    sheet["property:density [kg/m**3]"] = [12.1, 8.9]
    with pytest.raises(SheetError) as err:
        api.add_measurements(sheet)
    text = str(err.value)
    assert "the number reads as g/cm^3: write the header as [g/cm^3]" in text and "a value in kg/m3?" not in text


def test_gaps_without_a_model_says_why_its_std_column_is_empty(tmp_path):
    """`gaps` on a store with no records of the campaign's properties printed an empty
    "predicted std" column without a word."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app
    from dm_hpc.data import Store

    path = write_campaign(tmp_path)
    Store.open(tmp_path / "empty-store", "a").close()
    res = CliRunner().invoke(app, ["gaps", str(tmp_path / "empty-store"), "--space", str(path), "-n", "3",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "no model yet" in " ".join(res.output.split()), res.output


def test_gaps_says_each_path_once_and_an_option_error_without_the_campaign_file(tmp_path):
    """`gaps X/store.h5 --space C` printed 'error: X/store.h5: X/store.h5 is the table view ...',
    and `gaps -n 0` prefixed the campaign file to an error about a command-line option."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app
    from dm_hpc.data import Store

    path = write_campaign(tmp_path)
    Store.open(tmp_path / "store", "a").close()
    view = tmp_path / "store" / "store.h5"
    res = CliRunner().invoke(app, ["gaps", str(view), "--space", str(path), "--out", str(tmp_path / "out")])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "is the table view inside a store" in said, res.output
    assert said.count(str(view)) == 1, res.output
    res = CliRunner().invoke(app, ["gaps", str(tmp_path / "store"), "--space", str(path), "-n", "0"])
    assert res.exit_code == 2 and "-n" in res.output and str(path) not in " ".join(res.output.split()), res.output


def test_a_lab_records_derived_cost_counts_in_best_values_and_best_as_in_training(tmp_path):
    """The review of the analytic fill: the model trained on a lab record's derived cost while
    best values, reports and `best()` read the raw frame (lab records never among the best)."""
    from dm_hpc.campaign.dataset import best_values

    path = write_campaign(tmp_path, fidelities=[{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2}],
                          budget={"lab_experiments": 4},
                          objectives=[{"property": "raw_material_cost", "goal": "min"},
                                      {"property": "mixing_energy", "goal": "min"}])
    api, df = _two_measured(path)
    best = best_values(api.spec, df)
    assert "raw_material_cost" in best and best["raw_material_cost"] > 0
    top = api.best(2)
    assert len(top) == 2 and top["property:raw_material_cost [USD/kg]"].notna().all()


def test_journal_repair_waits_its_turn_behind_a_command(tmp_path, monkeypatch):
    """The review: `journal repair` took only the manager's lock, so a suggest meanwhile still
    took it for a running manager and wrote to an inbox nobody reads."""
    from dm_hpc.campaign import lock
    from dm_hpc.campaign.journal_repair import repair
    from tests.campaign.helpers import held_elsewhere

    api = Campaign.load(write_campaign(tmp_path))
    api.suggest(2)
    monkeypatch.setattr(lock, "COMMAND_WAIT_S", 0.3)
    with held_elsewhere(lambda: lock.command_turn(api.spec.run_dir, api.name)):
        with pytest.raises(lock.CommandWaitError):
            repair(api.spec)
    assert repair(api.spec) is not None  # its turn come, it runs


def test_every_sheet_handed_to_a_lab_is_the_workbook_the_guide_shows(tmp_path):
    """`suggest -n ... --out x.xlsx` wrote a bare one-sheet workbook ("sheet"), not the lab
    workbook docs/labs.md describes (Instructions first, then `samples`); it still reads back."""
    import openpyxl

    from tests.campaign.helpers import dm

    path = write_campaign(tmp_path)
    res = dm("suggest", str(path), "-n", "2", "--out", str(tmp_path / "b.xlsx"))
    assert res.returncode == 0, res.stderr
    book = openpyxl.load_workbook(tmp_path / "b.xlsx")
    assert {"Instructions", "samples"} <= set(book.sheetnames) and len(book["samples"]["A"]) == 3
    api = Campaign.load(path)
    sheet = pd.read_excel(tmp_path / "b.xlsx", sheet_name="samples")
    sheet[PROP] = [-0.05, -0.02]
    sheet.to_excel(tmp_path / "filled.xlsx", index=False)
    assert dm("ingest", str(path), str(tmp_path / "filled.xlsx")).returncode == 0
    assert len(api.records()) == 2


def test_after_a_retraction_the_awaited_sample_takes_its_new_value(tmp_path):
    """docs/labs.md: a retracted sample "is awaited again"; its new value was refused as "already
    stored" (the retraction record's copy of the withdrawn one), unless --replace."""
    api, df = _two_measured(write_campaign(tmp_path))
    sid, rid = df["sample_id"].iloc[0], df["record_id"].iloc[0]
    api.retract(rid, "specimen contaminated")
    pending = api.pending()
    assert list(pending["sample_id"]) == [sid]
    pending[PROP] = [-0.04]
    api.add_measurements(pending)  # no replace
    values = dict(zip(api.records()["sample_id"], api.records()[PROP]))
    assert values[sid] == -0.04


def test_suggest_with_the_lab_budget_used_up_says_so_instead_of_advising_n(tmp_path):
    """Every experiment answered and the budget spent: `suggest` advised `suggest -n N`, which then
    refused ("the lab budget is used up"). It now names the budget to raise."""
    import yaml

    from dm_hpc.campaign import journal as jn
    from tests.campaign.helpers import dm
    from tests.data.test_sheets_lab import lab_campaign

    path, campaign = lab_campaign(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["budget"]["lab_experiments"] = 3  # the three the journal already suggested
    path.write_text(yaml.safe_dump(data))
    journal = jn.Journal(campaign.run_dir / "journal.jsonl")
    journal.write("lab_ingested", records={}, new=0, sheet="s.xlsx", not_made=["L1-0", "L1-1", "L1-2"])
    journal.close()
    res = dm("suggest", str(path), "--out", str(tmp_path / "s.xlsx"))
    assert res.returncode == 0, res.stderr
    assert "wrote 0 suggested experiments" in res.stdout
    assert "lab budget is used up (3 of 3)" in res.stdout and "raise budget.lab_experiments" in res.stdout
    assert "-n N" not in res.stdout
