"""The portal's process values in the campaign's units, as a review found them: ``/predict`` read a
temperature of 450 as 450 K where the campaign file (its sheet, ``Campaign.predict``) writes degC;
``/lab/pending`` gave 1035.6 with no unit while the sheet said 762 degC; ``/design`` ignored the
campaign's process box (``process: {}``) and named no unit. Real campaign, real store, real app."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from dm_hpc import Campaign
from dm_hpc.service import Role, ServiceState, create_app

SPEC = {"name": "proc", "store": "store", "workdir": "run", "seed": 1,
        "space": {"elements": {"Cu": [0, 1], "Ni": [0, 1]},
                  "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC", "precision": 50}}},
        "objectives": [{"property": "hardness", "goal": "max", "unit": "HV"}],
        "fidelities": [{"name": "lab", "kind": "experiment", "batch_size": 4}], "budget": {"lab_experiments": 30}}
TEMP = "process:treatment:annealing_temperature [degC]"


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    base = tmp_path_factory.mktemp("proc")
    (base / "campaigns").mkdir()
    spec = {**SPEC, "store": str(base / "store"), "workdir": str(base / "run")}
    (base / "campaigns" / "proc.yaml").write_text(yaml.safe_dump(spec))
    camp = Campaign.load(base / "campaigns" / "proc.yaml")
    for _ in range(2):
        sheet = camp.suggest(4)
        sheet["property:hardness [HV]"] = [150 + 0.2 * t + 40 * cu for t, cu in
                                           zip(sheet[TEMP], sheet["composition:Cu [at_frac]"])]
        camp.add_measurements(sheet, confirm=list(sheet["sample_id"]))
    camp.suggest(2)  # pending
    state = ServiceState(base / "state")
    token = state.add_user("sci", Role.scientist, ["proc"], None)
    client = TestClient(create_app(base / "campaigns", base / "state"), headers={"Authorization": f"Bearer {token}"})
    return camp, client


def test_predict_reads_process_values_in_the_campaigns_unit(portal):
    camp, client = portal
    comp = {"Cu": 0.5, "Ni": 0.5}
    res = client.post("/api/v1/campaigns/proc/predict", json={"compositions": [comp],
                                                            "process": [{"annealing_temperature": 450}]})
    assert res.status_code == 200, res.text
    [row] = res.json()
    mine = camp.predict([comp], process={"annealing_temperature": 450})
    assert row["mean"]["hardness"] == pytest.approx(float(mine["predicted:hardness [HV]"].iloc[0]), rel=1e-6)
    assert row["units"]["hardness"] == "HV"


def test_pending_names_each_process_value_as_the_sheet_shows_it(portal):
    camp, client = portal
    pending = client.get("/api/v1/campaigns/proc/lab/pending").json()
    sheet = camp.pending().set_index("sample_id")
    assert len(pending) == 2
    for p in pending:
        shown = p["process_shown"]["annealing_temperature"]
        assert shown == f"{sheet.loc[p['sample_id'], TEMP]:g} degC"
        assert p["process"]["annealing_temperature"] == pytest.approx(float(shown.split()[0]) + 273.15, abs=25)


def test_design_searches_the_campaigns_process_box_and_names_units(portal):
    _, client = portal
    res = client.post("/api/v1/campaigns/proc/design", json={"targets": ["hardness>=100 HV"], "n": 2})
    assert res.status_code == 200, res.text
    for cand in res.json():
        t = cand["process"]["annealing_temperature"]
        assert 400 + 273.15 - 1e-6 <= t <= 900 + 273.15 + 1e-6 and np.isfinite(t)
        assert cand["process_units"] == {"annealing_temperature": "K"} and cand["units"] == {"hardness": "GPa"}


def test_an_impossible_process_value_is_refused_not_predicted(portal):
    """-500 degC (below absolute zero) was answered with a number, flagged only "outside"."""
    camp, client = portal
    res = client.post("/api/v1/campaigns/proc/predict", json={"compositions": [{"Cu": 0.5, "Ni": 0.5}],
                                                            "process": [{"annealing_temperature": -500}]})
    assert res.status_code == 422 and "outside the physical range" in res.text, res.text
    from dm_hpc.campaign.prediction import InputError

    with pytest.raises(InputError, match="physical range"):
        camp.predict([{"Cu": 0.5, "Ni": 0.5}], process={"annealing_temperature": -500})


def test_design_learns_only_from_records_on_the_campaigns_elements(portal):
    """A second review: with the campaign's space lent, a Zn-rich record of the same store was read
    renormalised as a Cu-Ni alloy and lifted every Cu-Ni prediction. (Its hardness 27-29 GPa: the
    hardest metals' range, 30 GPa at most for a measured metal, is held at ingest.)"""
    from dm_hpc.data import MaterialRecord, Store

    camp, client = portal
    foreign = [MaterialRecord.model_validate({"composition": {"Zn": 0.8, "Cu": 0.1, "Ni": 0.1},
                                              "properties": [{"name": "hardness", "value": 27.0 + k}],
                                              "provenance": {"source": "experimental", "method": "lab"}})
               for k in range(3)]
    with Store.open(camp.spec.store, "a") as store:
        store.ingest(foreign)
    res = client.post("/api/v1/campaigns/proc/design", json={"targets": ["hardness>=1000 HV"], "n": 2})
    assert res.status_code == 200, res.text
    for cand in res.json():
        assert set(cand["composition"]) <= {"Cu", "Ni"} and cand["mean"]["hardness"] < 5.0  # GPa


def test_a_design_candidate_asked_about_as_given_is_predicted_where_it_was_designed(portal):
    """`/design` answers process values canonical (K) and `/predict` reads the file's unit (degC): a
    candidate sent back as it came would be predicted 273 degrees away; its `process_in_file_units` is not."""
    _, client = portal
    [cand] = client.post("/api/v1/campaigns/proc/design", json={"targets": ["hardness>=100 HV"], "n": 1}).json()
    shown = cand["process_in_file_units"]["annealing_temperature"]
    assert shown == pytest.approx(cand["process"]["annealing_temperature"] - 273.15)
    res = client.post("/api/v1/campaigns/proc/predict", json={"compositions": [cand["composition"]],
                                                            "process": [cand["process_in_file_units"]]})
    assert res.status_code == 200, res.text
    [row] = res.json()
    assert row["outside"] == []  # inside the box it was designed in
