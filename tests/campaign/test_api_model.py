"""The model from a notebook, as the CLI and the portal give it: ``Campaign.predict`` at chosen
compositions, ``Campaign.train`` (the periodic retraining, `dm-hpc train`) and ``Campaign.report``
(`dm-hpc report`). Lab-only campaigns (no calculations); real store, real BoTorch fits, real
registry."""
from __future__ import annotations

import pandas as pd
import pytest

from dm_hpc import Campaign
from dm_hpc.api import InputError, NoModel, RandomSuggestions
from dm_hpc.campaign import CampaignError

from .helpers import write_campaign

LAB = {"name": "lab", "kind": "experiment", "batch_size": 2, "measures": ["hardness", "density"]}
HV, GCM3 = "predicted:hardness [HV]", "predicted:density [g/cm^3]"


def _lab_campaign(folder, name: str, **overrides) -> Campaign:
    """A lab-only campaign on Cu-Ni-Pd: hardness (max, in HV) under ``density <= 9 g/cm3``."""
    fields = {"fidelities": [LAB], "budget": {"lab_experiments": 40}, "constraints": ["density <= 9 g/cm3"],
              "objectives": [{"property": "hardness", "goal": "max", "unit": "HV"}], **overrides}
    return Campaign.load(write_campaign(folder, name=name, **fields))


def _measure(camp: Campaign, n: int) -> pd.DataFrame:
    """``n`` suggested experiments, measured (hardness 150-250 HV, density 8.5-9 g/cm3) and stored."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a random start says so (tested elsewhere)
        sheet = camp.suggest(n)
    cu = sheet["composition:Cu [at_frac]"].astype(float)
    sheet["property:hardness [HV]"] = 150 + 100 * cu
    sheet["property:density [g/cm^3]"] = 8.5 + 0.5 * cu
    return camp.add_measurements(sheet)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict")
    camp = _lab_campaign(folder, "pred")
    _measure(camp, 4)
    return folder, camp


def test_predict_gives_each_property_with_its_interval_in_the_campaigns_units_and_names_the_model(measured):
    folder, camp = measured
    got = camp.predict([{"Cu": 0.5, "Ni": 0.5}, "Cu0.3Ni0.6Pd0.1", "CuNi"])
    assert list(got.columns[:3]) == ["composition:Cu [at_frac]", "composition:Ni [at_frac]", "composition:Pd [at_frac]"]
    assert got["composition:Pd [at_frac]"].tolist() == pytest.approx([0, 0.1, 0])
    for prop, unit in (("hardness", "HV"), ("density", "g/cm^3")):
        mean, std = got[f"predicted:{prop} [{unit}]"], got[f"predicted_std:{prop} [{unit}]"]
        low, high = got[f"90 % low:{prop} [{unit}]"], got[f"90 % high:{prop} [{unit}]"]
        assert (std > 0).all() and (low < mean).all() and (mean < high).all()
        assert (high - low).tolist() == pytest.approx((2 * 1.6448536269514722 * std).tolist())
    assert got[HV].between(100, 300).all()  # HV, as the file writes it (the store keeps GPa: about 2)
    assert got.loc[0, HV] == pytest.approx(got.loc[2, HV])  # the formula "CuNi" is Cu0.5Ni0.5
    assert set(got["model"]) == {"fitted now on 4 records"} and got.attrs["model"]["registered"] is False
    # the portal's /predict answers the same at the same composition (one fit, one prediction)
    from dm_hpc.data.access import AccessLevel
    from dm_hpc.service.campaigns import CampaignDesk

    [portal] = CampaignDesk(folder).shown_predictions("pred", [{"Cu": 0.5, "Ni": 0.5}], None, AccessLevel.embargoed)
    assert portal["units"] == {"hardness": "HV", "density": "g/cm^3"}
    assert got.loc[0, HV] == pytest.approx(portal["mean"]["hardness"], rel=1e-6)
    assert got.loc[0, GCM3] == pytest.approx(portal["mean"]["density"], rel=1e-6)


def test_predict_takes_the_frames_of_records_and_pending_and_says_where_it_extrapolates(measured):
    _, camp = measured
    records = camp.records()
    got = camp.predict(records)
    comp = [c for c in records.columns if c.startswith("composition:")]
    assert len(got) == len(records) and got[comp].to_numpy() == pytest.approx(records[comp].to_numpy())
    bare = camp.predict(pd.DataFrame({"Cu": [0.2], "Pd": [0.8]}))  # element columns; Pd stops at 0.5
    assert bare.loc[0, "outside"] == "Pd 0.8 outside 0-0.5" and bare[HV].notna().all()
    assert camp.predict([{"Cu": 0.5, "Ni": 0.5}])["outside"].tolist() == [""]


def test_predict_refuses_what_it_cannot_read_naming_each_and_changes_nothing(measured):
    _, camp = measured
    journal = camp.spec.run_dir / "journal.jsonl"
    before = journal.read_bytes()
    for bad, said in (
        ([{"Cu": 0.5, "pd": 0.5}], r"compositions\[0\]: pd is not an element symbol \(did you mean Pd\?\)"),
        ([{"Cu": 0.5, "Ni": 0.5}, {"Fe": 0.5, "Ni": 0.5}],
         r"compositions\[1\]: element Fe is outside the design space of campaign 'pred' \(Cu, Ni, Pd\)"),
        ([{"Cu": 0.25, "Ni": 0.25}], r"compositions\[0\]: fractions sum to 0.5, not 1 \(tolerance 0.01\)"),
        ([{"Cu": 50, "Ni": 50}], r"these look like atomic percent: divide each by 100"),
        ([{"Cu": -0.5, "Ni": 1.5}], r"Cu: fractions must be >= 0"),
        ([{"Cu": "half", "Ni": 0.5}], r"compositions\[0\]: Cu = 'half' is not a finite number"),
        (["CuNi", "Cu0.5Xx0.5"], r"compositions\[1\]: unknown element 'Xx'"),
        (["Cu0.5Ni)"], r"compositions\[0\]: cannot parse formula 'Cu0.5Ni\)'"),
        # a symbol in lower case: pymatgen's "ni0.5 is an invalid formula!" alone named no fix
        (["Cu0.5ni0.5"], r"compositions\[0\]: cannot parse formula 'Cu0.5ni0.5'.*\(did you mean 'Cu0.5Ni0.5'\? "
                         r"element symbols start with a capital letter\)"),
        (pd.DataFrame({"sample_id": ["a"], "Cu": [1.0]}), r"sample_id is not an element symbol"),
        ([{"Cu": 1.0}], None),  # sound: the process below is what is wrong
        ([], r"no composition to predict at"),
    ):
        if said is None:
            with pytest.raises(InputError, match=r"process\[0\]: foo is not a process parameter of campaign 'pred' "
                                                 r"\(it has none\)"):
                camp.predict(bad, process={"foo": 3})
            continue
        with pytest.raises(InputError, match=said) as caught:
            camp.predict(bad)
        assert isinstance(caught.value, CampaignError) and "\n" not in str(caught.value)
    for bad in (3, [3], None):
        with pytest.raises(TypeError, match="compositions"):
            camp.predict(bad)
    with pytest.raises(TypeError, match="model"):
        camp.predict(["CuNi"], model=2)
    assert journal.read_bytes() == before


def test_predict_takes_a_process_in_the_unit_the_campaign_file_writes(tmp_path):
    space = {"elements": {"Cu": [0, 1], "Ni": [0, 1]},
             "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"}}}
    camp = _lab_campaign(tmp_path, "proc", space=space, constraints=[],
                         fidelities=[{**LAB, "measures": ["hardness"]}])
    with pytest.warns(RandomSuggestions, match="random start"):
        sheet = camp.suggest(3)
    sheet["property:hardness [HV]"] = [150.0, 210.0, 180.0]
    camp.add_measurements(sheet)
    column = "process:treatment:annealing_temperature [degC]"
    got = camp.predict(["CuNi", "CuNi"], process=[{"annealing_temperature": 450}, {}])
    assert got[column].tolist() == pytest.approx([450, 650])  # the second: the middle of the box
    again = camp.predict(got[["composition:Cu [at_frac]", "composition:Ni [at_frac]", column]])
    assert again[column].tolist() == pytest.approx([450, 650])  # a frame's process column, read in its unit
    assert again[HV].tolist() == pytest.approx(got[HV].tolist())
    far = camp.predict(["CuNi"], process={"annealing_temperature": 1000})
    assert far.loc[0, "outside"] == "annealing_temperature 1000 outside 400-900 degC"  # as the file writes it
    with pytest.raises(InputError, match="the frame has process columns and process= is given too"):
        camp.predict(got[["composition:Cu [at_frac]", column]], process={"annealing_temperature": 450})


def test_predict_without_enough_records_says_why(tmp_path):
    camp = _lab_campaign(tmp_path, "few")
    with pytest.raises(NoModel, match=r"'few': no model to predict with: 0 usable records .*no record yet"):
        camp.predict(["CuNi"])
    with pytest.warns(RandomSuggestions, match="random start"):
        sheet = camp.suggest(2)
    sheet["property:hardness [HV]"] = [200.0, 220.0]  # density left empty: nobody measured it
    camp.add_measurements(sheet)
    with pytest.raises(NoModel) as caught:
        camp.predict(["CuNi"])
    assert str(caught.value) == f"campaign 'few': no model to predict with: {camp.summary()['model']}"
    assert "2 lack density" in str(caught.value)
    with pytest.raises(NoModel, match=r"no current model version \(registered: none yet; Campaign.train\(\)"):
        camp.predict(["CuNi"], model="current")


def test_train_registers_a_version_then_says_nothing_changed_and_predict_names_it(tmp_path):
    from dm_hpc.campaign import registry

    camp = _lab_campaign(tmp_path, "tr")
    with pytest.raises(NoModel, match=r"nothing trained: tr: no store at"):
        camp.train()
    _measure(camp, 4)
    first = camp.train()
    assert (first.status, first.version, first.current, first.records) == ("promoted", "v0001", "v0001", 4)
    assert first.path == registry.registry_dir(camp.spec) / "v0001" and (first.path / "model.pt").exists()
    assert set(first.held_out) == {"n", "rmse", "coverage90"} and "hardness [HV]" in first.held_out["rmse"]
    assert str(first).startswith("registered v0001, now the current model")
    same = camp.train()
    assert (same.status, same.version) == ("unchanged", "v0001") and "nothing registered" in str(same)
    assert [v.version for v in registry.versions(camp.spec)] == ["v0001"]
    forced = camp.train(force=True)
    assert forced.status in ("promoted", "candidate") and forced.version == "v0002"
    assert forced.current == registry.current(camp.spec)
    got = camp.predict(["CuNi"], model="v0001")
    assert got.loc[0, "model"] == "v0001" + (" (current)" if forced.current == "v0001" else "")
    assert got.attrs["model"] == {"name": got.loc[0, "model"], "registered": True, "records": 4}
    fitted_now = camp.predict(["CuNi"])
    assert got.loc[0, HV] == pytest.approx(fitted_now.loc[0, HV], rel=1e-3)  # the same records, the same model
    with pytest.raises(NoModel, match=r"no model version 'v0009' \(registered: v0001, v0002;"):
        camp.predict(["CuNi"], model="v0009")
    with pytest.raises(TypeError, match="force"):
        camp.train(force="yes")
    # the kind, as `dm-hpc train --surrogate` takes it (the notebook could not ask for one)
    with pytest.raises(InputError, match=r"surrogate must be one of auto, gp, multitask, ensemble \(or None: the "
                                         r"campaign's 'auto'\), got 'forest'"):
        camp.train(surrogate="forest")
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*degrees of freedom")  # torch's, with no calibration rows
        ensemble = camp.train(surrogate="ensemble")
    assert ensemble.version == "v0003" and registry.versions(camp.spec)[-1].meta["surrogate"] == "ensemble"


def test_report_writes_the_summary_and_plots_and_shows_as_markdown(measured):
    _, camp = measured
    report = camp.report()
    assert report.summary == camp.spec.run_dir / "report" / "summary.md"
    assert report.markdown == report.summary.read_text() == report._repr_markdown_()
    assert report.markdown.startswith("# Campaign report: pred")
    assert report.plots and all(p.exists() and p.suffix == ".png" for p in report.plots)
    assert all(f"`{p.name}`" in report.markdown for p in report.plots)  # each plot it returns, the summary lists


def test_the_portal_predicts_from_as_few_records_as_the_notebook_does(tmp_path):
    """Two records fit the notebook's model (``MIN_TRAINING_RECORDS``, as ``suggest`` fits), while
    the portal answered the same campaign "a model needs at least 3": one campaign, two answers."""
    from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS
    from dm_hpc.data.access import AccessLevel
    from dm_hpc.service.campaigns import CampaignDesk

    camp = _lab_campaign(tmp_path, "two")
    _measure(camp, MIN_TRAINING_RECORDS)
    mine = camp.predict([{"Cu": 0.5, "Ni": 0.5}])
    [portal] = CampaignDesk(tmp_path).shown_predictions("two", [{"Cu": 0.5, "Ni": 0.5}], None, AccessLevel.embargoed)
    assert mine.loc[0, HV] == pytest.approx(portal["mean"]["hardness"], rel=1e-6)


def test_an_element_excluded_after_records_holding_it_were_stored_leaves_them_out(tmp_path):
    """A campaign that excluded Al after Al-bearing samples were stored failed at every fit (a
    ValueError from the features: 'Al is not in [Cu, Ni]'), and the portal answered /predict of an
    Al composition with a 500. Such records are now not the campaign's data, as any element outside
    its space; and a version trained with Al is refused by name, not fed Cu-Ni inputs."""
    from dm_hpc.data.access import AccessLevel
    from dm_hpc.service.campaigns import BadInput, CampaignDesk

    space = {"elements": {"Cu": [0.5, 1.0], "Ni": [0, 0.5], "Al": [0, 0.1]}}
    camp = _lab_campaign(tmp_path, "noal", space=space, constraints=[], fidelities=[{**LAB, "measures": ["hardness"]}])
    with pytest.warns(RandomSuggestions):
        sheet = camp.suggest(6)
    sheet["property:hardness [HV]"] = 150 + 100 * sheet["composition:Cu [at_frac]"].astype(float)
    camp.add_measurements(sheet)
    assert camp.train().status == "promoted"
    with_al = int((sheet["composition:Al [at_frac]"].astype(float) > 0).sum())
    assert 0 < with_al <= 4, sheet  # two Cu-Ni records at least, some with Al
    path = write_campaign(tmp_path, name="noal", constraints=[], fidelities=[{**LAB, "measures": ["hardness"]}],
                          objectives=[{"property": "hardness", "goal": "max", "unit": "HV"}],
                          budget={"lab_experiments": 40}, space={**space, "excluded": ["Al"]})
    camp = Campaign.load(path)
    got = camp.predict(["Cu0.7Ni0.3"])
    assert got.loc[0, "model"] == f"fitted now on {len(sheet) - with_al} records", got.loc[0, "model"]
    assert "composition:Al [at_frac]" not in got.columns
    assert camp.suggest(2)[HV].notna().all()  # from the model, no ValueError
    with pytest.raises(NoModel, match=r"model version v0001 was trained on inputs Al, Cu, Ni; the campaign's "
                                      r"design space is now Cu, Ni: train a version on it"):
        camp.predict(["Cu0.7Ni0.3"], model="v0001")
    desk = CampaignDesk(tmp_path)
    with pytest.raises(BadInput, match="element Al is outside the design space of campaign 'noal' \\(Cu, Ni\\)"):
        desk.predict("noal", [{"Al": 0.1, "Cu": 0.9}], None, AccessLevel.embargoed)


def test_a_pool_campaign_whose_pool_cannot_be_read_predicts_and_trains_nothing_and_says_why(tmp_path):
    """``Campaign.predict`` built the whole design space for its element names, as /predict once
    did, and ``train`` and `dm-hpc train` read the pool for the features: a pool file gone or
    damaged since the campaign was loaded was a SheetError traceback from deep in the pool reader.
    Each now names the file first, as ``report`` and `dm-hpc suggest` do, and predict takes the
    elements as the portal does (``dataset.design_elements``)."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app

    pool = tmp_path / "pool.csv"
    pool.write_text("composition:Cu [at_frac],composition:Ni [at_frac],composition:Pd [at_frac],"
                    "property:mixing_energy [eV/atom]\n0.5,0.5,0,0\n0.2,0.3,0.5,0\n0.7,0.1,0.2,0\n0.4,0.4,0.2,0\n")
    camp = _lab_campaign(tmp_path, "pooled", space={"pool": str(pool)}, constraints=[],
                         fidelities=[{**LAB, "measures": ["hardness"]}])
    with pytest.raises(InputError, match=r"element Fe is outside the design space of campaign 'pooled' \(Cu, Ni, Pd\)"):
        camp.predict([{"Fe": 1.0}])
    with pytest.warns(RandomSuggestions):
        sheet = camp.suggest(4)
    sheet["property:hardness [HV]"] = 150 + 100 * sheet["composition:Cu [at_frac]"].astype(float)
    camp.add_measurements(sheet)
    assert camp.predict(["CuNi"])[HV].notna().all()
    for damage, said in ((lambda: pool.write_bytes(b"\xff\xfe\x00garbage"), "space.pool"),
                         (pool.unlink, "space.pool: no such file")):
        damage()
        for call in (lambda: camp.predict(["CuNi"]), camp.train):
            with pytest.raises(CampaignError, match=f"campaign cannot be read:\n  {said}"):
                call()
        res = CliRunner().invoke(app, ["train", camp.origin])
        assert res.exit_code == 2 and f"campaign cannot be read:\n  {said}" in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception


def test_suggestions_keep_to_min_elements_from_the_random_start_and_from_the_model(tmp_path):
    """A campaign asking for at least three of five elements (``space.min_elements``) was sent
    binaries and pure metals: the field was checked and documented, never used."""
    space = {"elements": {el: [0, 1] for el in ("Co", "Cr", "Fe", "Mn", "Ni")}, "min_elements": 3, "max_elements": 4}
    camp = _lab_campaign(tmp_path, "hea", space=space, constraints=[], fidelities=[{**LAB, "measures": ["hardness"]}])
    with pytest.warns(RandomSuggestions):
        first = camp.suggest(6)
    columns = [c for c in first.columns if c.startswith("composition:")]
    first["property:hardness [HV]"] = 150 + 100 * first["composition:Co [at_frac]"].astype(float)
    camp.add_measurements(first)
    second = camp.suggest(6)  # from the model
    assert second[HV].notna().all()
    for sheet in (first, second):
        present = (sheet[columns].astype(float) > 1e-6).sum(axis=1)
        assert present.between(3, 4).all(), sheet[columns]


def test_dm_hpc_predict_answers_as_campaign_predict_does(measured, tmp_path):
    """The CLI had no predict: a computational scientist at a terminal had to open a notebook or
    the portal for the model's value at one composition. `dm-hpc predict` answers from the same
    function, as a table, as JSON, or into a sheet, and refuses what it cannot read in one line."""
    import json

    from typer.testing import CliRunner

    from dm_hpc.cli import app

    folder, camp = measured
    run = CliRunner().invoke
    expected = camp.predict(["Cu0.5Ni0.5", "Cu0.8Ni0.1Pd0.1"])
    res = run(app, ["predict", camp.origin, "Cu0.5Ni0.5", "Cu0.8Ni0.1Pd0.1"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "hardness [HV]" in res.output and "density [g/cm^3]" in res.output  # the unit is no rich markup
    assert f"{expected.loc[0, HV]:.4g} ± " in res.output and "model: fitted now on 4 records" in res.output
    res = run(app, ["predict", camp.origin, "Cu0.5Ni0.5", "--json"])
    got = json.loads(res.output)
    assert got["model"]["records"] == 4 and got["rows"][0][HV] == pytest.approx(expected.loc[0, HV])
    camp.records().to_csv(tmp_path / "records.csv", index=False)  # sheet rows, as a lab or an export has them
    out = tmp_path / "predicted.xlsx"
    res = run(app, ["predict", camp.origin, "--from", str(tmp_path / "records.csv"), "--out", str(out)])
    assert res.exit_code == 0 and out.exists(), res.output
    written = pd.read_excel(out)
    assert len(written) == len(camp.records()) == 4 and written[HV].notna().all()
    assert written[HV].tolist() == pytest.approx(camp.predict(camp.records())[HV].tolist(), rel=1e-6)
    assert written["sample_id"].tolist() == camp.records()["sample_id"].tolist()  # matched back to the sheet's rows
    # a lab's sheet in atomic percent, as the lab sheet reader takes it
    percent = camp.records().rename(columns=lambda h: h.replace("[at_frac]", "[at%]"))
    percent[[h for h in percent.columns if h.endswith("[at%]")]] *= 100
    percent.to_csv(tmp_path / "percent.csv", index=False)
    res = run(app, ["predict", camp.origin, "--from", str(tmp_path / "percent.csv"), "--json"])
    assert [r[HV] for r in json.loads(res.output)["rows"]] == pytest.approx(written[HV].tolist(), rel=1e-6)
    for args, said in ((["Cu0.5Xx0.5"], "compositions[0]: unknown element 'Xx'"),
                       ([], "give the compositions as formulas or --from a sheet"),
                       (["CuNi", "--process", "900"], "--process '900': give NAME=VALUE"),
                       (["CuNi", "--process", "foo=3"], "foo is not a process parameter of campaign 'pred'"),
                       (["CuNi", "--model", "v0042"], "no model version 'v0042'"),
                       (["CuNi", "--out", str(tmp_path / "p.txt")], "unsupported sheet type '.txt'"),
                       (["CuNi", "--out", str(tmp_path / "no" / "p.csv")], "does not exist"),
                       (["--from", str(tmp_path / "absent.csv")], "--from")):
        res = run(app, ["predict", camp.origin, *args])
        assert res.exit_code == 2 and said in " ".join(res.output.split()), (args, res.output)
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception


def test_an_analytic_property_is_predicted_exactly_not_guessed(tmp_path):
    """A raw-material cost is a function of the composition (the price table), and the records'
    values of it are derived by that function; the model's guess from a few records put AlCuNi at
    633 +- 800 USD/kg in the demo (90 % interval down to -678). ``predict`` (and the portal's and
    the CLI's, through ``prediction.predict_at``) now gives the exact value, standard deviation 0."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app
    from dm_hpc.compute.descriptors import raw_material_cost
    from dm_hpc.data import Composition

    from dm_hpc.data import Store
    from tests.campaign.test_registry import _records

    path = write_campaign(tmp_path, name="cost", objectives=[{"property": "mixing_energy", "goal": "min"},
                                                              {"property": "raw_material_cost", "goal": "min"}])
    camp = Campaign.load(path)
    with Store.open(camp.spec.store, "a") as store:  # computed Cu-Ni-Pd mixing energies
        store.ingest(_records(12, 0))
    got = camp.predict(["CuNi", "Cu0.5Pd0.5"])
    cost = "predicted:raw_material_cost [USD/kg]"
    for i, formula in enumerate(({"Cu": 0.5, "Ni": 0.5}, {"Cu": 0.5, "Pd": 0.5})):
        assert got.loc[i, cost] == pytest.approx(raw_material_cost(Composition(formula)))
        assert got.loc[i, cost.replace("predicted:", "predicted_std:")] == 0.0
        assert got.loc[i, cost.replace("predicted:", "90 % low:")] == got.loc[i, cost]
    assert got.loc[0, "predicted_std:mixing_energy [eV/atom]"] > 0  # a calculated property stays the model's
    res = CliRunner().invoke(app, ["predict", camp.origin, "CuNi"], env={"COLUMNS": "200"})
    assert f"{got.loc[0, cost]:.4g} (exact)" in res.output, res.output
    # what the journal keeps of a suggestion (the portal's pending rows): the cost of what is made
    from dm_hpc.acquire.points import ProposedPoint
    from dm_hpc.campaign.realise import realiser

    guess = {"mean": {"mixing_energy": -0.01, "raw_material_cost": 600.0},
             "std": {"mixing_energy": 0.01, "raw_material_cost": 800.0}}
    made = realiser(camp.spec)(ProposedPoint("emt", {"Cu": 0.5, "Ni": 0.26, "Pd": 0.24}, {}, guess))
    assert made.predicted["mean"]["raw_material_cost"] == pytest.approx(raw_material_cost(Composition(made.composition)))
    assert made.predicted["std"]["raw_material_cost"] == 0.0 and made.predicted["mean"]["mixing_energy"] == -0.01


def test_a_lab_campaign_under_a_cost_cap_runs_without_the_lab_pricing_its_alloys(tmp_path):
    """A lab measuring hardness under ``raw_material_cost <= 20000 USD/kg`` was refused: "no fidelity
    of this campaign delivers it ...; list it in fidelities.lab.measures", which would have put a
    cost column on the lab's sheet. The cost is a function of the composition (derived for every
    record): the campaign validates, the sheet asks for hardness alone, and the model fits."""
    from dm_hpc.campaign.preflight import problems

    camp = _lab_campaign(tmp_path, "capped", constraints=["raw_material_cost <= 20000 USD/kg"],
                         fidelities=[{**LAB, "measures": ["hardness"]}])
    assert problems(camp.spec) == []
    with pytest.warns(RandomSuggestions):
        sheet = camp.suggest(4)
    sheet["property:hardness [HV]"] = 150 + 100 * sheet["composition:Cu [at_frac]"].astype(float)
    camp.add_measurements(sheet)
    assert camp.predict(["CuNi"])["predicted_std:raw_material_cost [USD/kg]"].tolist() == [0.0]
    assert camp.suggest(2)[HV].notna().all()  # from the model, the cap among its outputs
