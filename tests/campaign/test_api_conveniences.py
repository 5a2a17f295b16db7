"""Notebook conveniences and an open vocabulary (issue 19 items 3, 6, 7): budget exhaustion is
said, a model that cannot be fitted says why, a campaign declares its own terms. Real store,
real BoTorch, real CLI."""
from __future__ import annotations

import subprocess
import sys
import warnings

import h5py
import pytest

from dm_hpc import BudgetExhausted, Campaign
from dm_hpc.campaign import CampaignError, load_campaign
from dm_hpc.data.sheets import SheetError

from .helpers import dm, write_campaign

LAB = {"name": "lab", "kind": "experiment", "batch_size": 2}  # no cost: one lab-day


def test_an_exhausted_budget_raises_and_a_short_batch_warns(tmp_path):
    """Issue 19: an exhausted budget returned an empty frame with the reason in ``df.attrs``."""
    camp = Campaign.load(write_campaign(tmp_path, name="b", fidelities=[LAB], budget={"lab_experiments": 3}))
    assert len(camp.suggest(2)) == 2
    with pytest.warns(UserWarning, match=r"1 of 2 experiments: the lab budget allows 1 more"):
        assert len(camp.suggest(2)) == 1
    with pytest.raises(BudgetExhausted, match=r"the lab budget is used up \(3 of 3 experiments suggested\)"):
        camp.suggest(1)
    assert len(camp.pending()) == 3 and camp.summary()["lab budget left"] == 0


def test_a_model_that_cannot_be_fitted_says_why(tmp_path):
    """Issue 19: a constraint on a property nobody measured left "0 usable records"; the CLI said
    nothing while suggestions lost their predictions."""
    path = write_campaign(tmp_path, name="unfit", fidelities=[LAB], budget={"lab_experiments": 8},
                          objectives=[{"property": "hardness", "goal": "max"}], constraints=["density <= 9"])
    camp = Campaign.load(path)
    sheet = camp.suggest(2)
    sheet["property:hardness [GPa]"] = [2.0, 2.5]  # density left empty: nobody measured it
    camp.add_measurements(sheet)
    why = camp.summary()["model"]
    assert why.startswith("the model cannot be fitted: 0 usable records of 2 (needs 2); 2 lack density")
    assert "measure density, or drop it from the campaign" in why
    for args in (("status", str(path)), ("suggest", str(path), "-n", "1", "--out", str(tmp_path / "s.csv"))):
        res = dm(*args)
        assert res.returncode == 0, res.stderr
        assert "warning: the model cannot be fitted: 0 usable records of 2" in res.stdout, (args, res.stdout)
    assert "predicted:hardness [GPa]" not in camp.pending().columns  # what the warning explains
    # the portal's `predict` refused with a count only; it now says why, as status does
    from dm_hpc.data.access import AccessLevel
    from dm_hpc.service.campaigns import CampaignDesk, NotReady

    with pytest.raises(NotReady, match=r"0 usable records .*2 lack density.*measure density"):
        CampaignDesk(path.parent).predict("unfit", [{"Cu": 1.0}], None, AccessLevel.embargoed)


def test_a_first_batch_before_any_record_says_it_is_a_random_start(tmp_path):
    """User trial: `suggest -n 2` on a fresh campaign wrote random points without predictions and
    said only "wrote 2 new suggested experiments", as if they were the model's picks."""
    from openpyxl import load_workbook

    path = write_campaign(tmp_path, name="fresh", fidelities=[LAB], budget={"lab_experiments": 8},
                          objectives=[{"property": "hardness", "goal": "max"}])
    res = dm("suggest", str(path), "-n", "2")
    assert res.returncode == 0, res.stderr
    said = [ln.strip() for ln in res.stdout.splitlines()]
    assert said[1] == ("no measured or computed record yet, so these are a spread-out random start, not model "
                       "predictions; the model takes over once results come in"), res.stdout
    # the sheet says why it has no predicted:* column
    book = load_workbook(tmp_path / "run" / "lab-batch-001.xlsx")
    assert not [c.value for c in book["samples"][1] if str(c.value).startswith("predicted:")]
    notes = dict(book["Instructions"].iter_rows(values_only=True))
    assert notes["Predictions"].startswith("A sample without predicted:* values (no such column, or an empty cell) "
                                           "was drawn at random"), notes
    camp = Campaign.load(path)  # the notebook: warned, not raised (a lab-only campaign starts this way)
    with pytest.warns(UserWarning, match=r"'fresh': no measured or computed record yet, so these are a spread-out "
                                         r"random start, not model predictions"):
        sheet = camp.suggest(2)
    assert len(sheet) == 2 and not sheet.filter(like="predicted:").columns.size
    sheet["property:hardness [GPa]"] = [2.0, 2.5]
    camp.add_measurements(sheet)
    with warnings.catch_warnings():  # with records, the model picks: nothing to say
        warnings.simplefilter("error")
        assert camp.suggest(1).filter(like="predicted:").notna().all(axis=None)
    res = dm("suggest", str(path), "-n", "1")
    assert res.returncode == 0 and "random start" not in res.stdout, res.stdout
    book = load_workbook(tmp_path / "run" / "lab-batch-004.xlsx")
    assert "Predictions" not in dict(book["Instructions"].iter_rows(values_only=True))


def test_suggestions_drawn_at_random_for_too_few_records_warn_why_as_the_cli_says_it(tmp_path):
    """The notebook warned only before the first record; with one record (a model needs two) its
    suggestions were random draws too, while `dm-hpc suggest` said why in a warning line."""
    from dm_hpc.api import RandomSuggestions

    path = write_campaign(tmp_path, name="one", fidelities=[LAB], budget={"lab_experiments": 8},
                          objectives=[{"property": "hardness", "goal": "max"}])
    camp = Campaign.load(path)
    with pytest.warns(RandomSuggestions, match="random start"):
        sheet = camp.suggest(2)
    sheet["property:hardness [GPa]"] = [2.0, None]
    camp.add_measurements(sheet.iloc[:1])
    with pytest.warns(RandomSuggestions) as said:
        sheet = camp.suggest(1)
    assert not sheet.filter(like="predicted:").columns.size  # what the warning explains
    why = "the model cannot be fitted: 1 usable record of 1 (needs 2). Suggestions are random and carry no predictions"
    assert [str(w.message) for w in said] == [f"campaign 'one': {why}"]
    res = dm("suggest", str(path), "-n", "1", "--out", str(tmp_path / "s.csv"))
    assert res.returncode == 0 and f"warning: {why}" in " ".join(res.stdout.split()), res.stdout
    sheet = camp.pending().iloc[:1]
    sheet["property:hardness [GPa]"] = [2.5]
    camp.add_measurements(sheet)
    with warnings.catch_warnings():  # two records: the model picks, nothing to say
        warnings.simplefilter("error")
        assert camp.suggest(1).filter(like="predicted:").notna().all(axis=None)


def test_summary_counts_its_own_records_and_judges_the_model_as_suggest_fits_it(tmp_path):
    """summary() took its records with a copy of ``dataset.own_records`` and judged the model on
    them alone, while suggest fits on every record of the store (another campaign's lab records
    on the same elements count): it said "cannot be fitted" beside suggestions with predictions."""
    objectives = [{"property": "hardness", "goal": "max"}]
    first = Campaign.load(write_campaign(tmp_path, name="first", fidelities=[LAB], objectives=objectives,
                                         budget={"lab_experiments": 8}, workdir=str(tmp_path / "run-first")))
    second = Campaign.load(write_campaign(tmp_path, name="second", fidelities=[LAB], objectives=objectives,
                                          budget={"lab_experiments": 8}, workdir=str(tmp_path / "run-second")))
    assert first.spec.store == second.spec.store  # one store, two campaigns
    assert second.summary()[["records", "model"]].tolist() == [0, "no records yet"]  # no store yet
    with pytest.warns(UserWarning):
        sheet = first.suggest(2)
    sheet["property:hardness [GPa]"] = [2.0, 2.5]
    first.add_measurements(sheet)
    # the first's records, not its own; but its model fits on them, as its suggestions below show
    # (it said "no records yet" beside suggestions with predictions)
    assert second.summary()[["records", "model"]].tolist() == [
        0, "can be fitted on 2 records of the store (none of this campaign's yet)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the first campaign's records on its elements fit its model
        sheet = second.suggest(2)
    assert sheet.filter(like="predicted:").notna().all(axis=None)
    sheet["property:hardness [GPa]"] = [3.0, None]
    second.add_measurements(sheet.iloc[:1])
    summary = second.summary()  # it said "cannot be fitted: 1 usable record of 1" here
    assert (summary["records"], summary["best hardness [GPa]"], summary["model"]) == (1, 3.0, "can be fitted")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert second.suggest(1).filter(like="predicted:").notna().all(axis=None)  # as the summary says


VOCABULARY = {"properties": {"microhardness": {"unit": "HV", "min": 0, "description": "Vickers HV0.1"}},
              "process_parameters": {"peening_intensity": {"unit": "mm", "min": 0}}}


def test_a_campaign_declares_its_own_terms_and_the_store_keeps_their_unit(tmp_path):
    """Issue 19: `ageing_temperature` and the unit `HV` were refused."""
    space = {"elements": {"Cu": [0.8, 1], "Ni": [0, 0.2]},
             "process": {"ageing_temperature": {"low": 400, "high": 500, "unit": "degC"},
                         "peening_intensity": {"low": 0.1, "high": 0.5}}}
    path = write_campaign(tmp_path, name="own", fidelities=[LAB], budget={"lab_experiments": 4}, space=space,
                          vocabulary=VOCABULARY, objectives=[{"property": "microhardness", "goal": "max"}], store=None,
                          constraints=["hardness >= 100 HV"])
    c = load_campaign(path)
    assert c.space.process["ageing_temperature"].low == pytest.approx(673.15)
    assert c.constraints[0].value == pytest.approx(0.980665)  # 100 HV in GPa
    assert c.store == tmp_path / "run" / "store"  # no store named: the run folder's
    assert c.lab.lab_days == 1.0  # no lab cost named (issue 19 asked for one): one lab-day per experiment
    camp = Campaign(c, str(path))
    sheet = camp.suggest(2)
    assert "process:treatment:peening_intensity [mm]" in sheet.columns
    sheet["property:microhardness [HV]"] = [150.0, 180.0]
    sheet["property:hardness [HV]"] = [153.0, 184.0]  # the sheet asks in the unit the constraint was written in
    bad = sheet.copy()
    bad.loc[0, "property:microhardness [HV]"] = -5.0  # below the declared range
    with pytest.raises(SheetError, match="microhardness"):
        camp.add_measurements(bad)
    camp.add_measurements(sheet)
    assert sorted(camp.records()["property:microhardness [HV]"]) == [150.0, 180.0]
    with h5py.File(c.store / "store.h5", "r") as f:  # the unit is stored with the column
        assert f["records/properties/microhardness"].attrs["unit"] == "HV"
    # a process that never saw the campaign file reads the records back
    code = (f"from dm_hpc.data import Store; df = Store.open({str(c.store)!r}).to_dataframe(); "
            f"print(sorted(df['microhardness']), sorted(df.filter(like='peening_intensity').stack()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("[150.0, 180.0]"), out.stderr


@pytest.mark.parametrize("vocabulary, message", [
    ({"properties": {"density": {"unit": "kg/m**3"}}}, "property 'density' is a standard name (unit g/cm^3)"),
    ({"properties": {"sparkle": {"unit": "blorp"}}}, "property 'sparkle': unknown unit 'blorp'"),
    ({"process_parameters": {"dwell": {"unit": "s", "min": 5, "max": 1}}}, "process_parameter 'dwell': min 5 > max 1"),
    ({"properties": {"bad name!": {"unit": "s"}}}, "use 1-48 letters"),
])
def test_a_declaration_that_cannot_hold_is_refused_naming_it(tmp_path, vocabulary, message):
    path = write_campaign(tmp_path, name="v", fidelities=[LAB], budget={"lab_experiments": 4}, vocabulary=vocabulary)
    with pytest.raises(CampaignError) as err:
        load_campaign(path)
    assert message in str(err.value)


def test_a_term_declared_again_otherwise_in_one_session_says_why_and_what_to_do(tmp_path):
    """A notebook loaded a campaign, its author changed the declaration's range in the file and
    loaded it again: "already declared ...; one name, one definition", with no word that the first
    load is what declared it, nor how to load the change."""
    vocabulary = {"properties": {"ageing_ratio_s41": {"unit": "dimensionless", "min": 0}}}
    path = write_campaign(tmp_path, name="v", fidelities=[LAB], budget={"lab_experiments": 4}, vocabulary=vocabulary)
    load_campaign(path)
    load_campaign(path)  # the same declaration again: fine
    vocabulary["properties"]["ageing_ratio_s41"]["max"] = 1
    path = write_campaign(tmp_path, name="v", fidelities=[LAB], budget={"lab_experiments": 4}, vocabulary=vocabulary)
    with pytest.raises(CampaignError, match=r"property 'ageing_ratio_s41' is already declared in this Python process "
                                            r"as dimensionless \[0.0, None\] \(by an earlier campaign file, or an "
                                            r"earlier version of this one\).*load the changed file in a new Python session"):
        load_campaign(path)


def test_records_and_pending_have_the_same_composition_and_process_columns(tmp_path):
    """A user trial: records() listed the elements alphabetically and had no process column (its
    records were calculations, which carry no process), while pending() kept the campaign's element
    order and its process column; a frame from one could not be laid beside the other."""
    from dm_hpc.data import MaterialRecord, Store

    space = {"elements": {"Pd": [0, 0.5], "Ni": [0, 1], "Cu": [0, 1]},
             "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"}}}
    import yaml

    path = write_campaign(tmp_path, name="order")
    data = {**yaml.safe_load(path.read_text()), "space": space}
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # the elements in the order written: Pd, Ni, Cu
    camp = Campaign.load(path)
    with Store.open(camp.spec.store, "a") as store:
        store.ingest([MaterialRecord.model_validate({
            "composition": comp, "properties": [{"name": "mixing_energy", "value": -0.01}],
            "provenance": {"source": "computed", "method": "emt", "campaign": "order"}})
            for comp in ({"Cu": 0.5, "Ni": 0.5}, {"Cu": 0.4, "Pd": 0.6})])

    def sheet_columns(frame):
        return [c for c in frame.columns if c.startswith(("composition:", "process:"))]

    expected = ["composition:Pd [at_frac]", "composition:Ni [at_frac]", "composition:Cu [at_frac]",
                "process:treatment:annealing_temperature [degC]"]
    records = camp.records()
    assert len(records) == 2
    assert sheet_columns(records) == expected == sheet_columns(camp.pending())
    assert records["process:treatment:annealing_temperature [degC]"].isna().all()  # calculations: none
