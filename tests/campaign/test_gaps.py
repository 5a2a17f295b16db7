"""Gap filling in a campaign: the planner the campaign builds, the coverage map, the command
(the selection itself: ``tests/acquire/test_gaps.py``)."""
from __future__ import annotations

import numpy as np
import pytest

from dm_hpc.acquire import GapFilling
from dm_hpc.acquire.planner import PlanRequest, fresh_points
from dm_hpc.campaign import parse_campaign
from dm_hpc.campaign.coverage import coverage_map, gaps_command
from dm_hpc.campaign.dataset import training_set
from dm_hpc.campaign.strategy import choose_planner, fidelity_costs, fit_model, gap_filling
from dm_hpc.data import Composition, MaterialRecord, PropertyValue, Provenance, Source, Store
from tests.acquire.test_gaps import ELEMENTS, half_covered, measured

SPEC = {
    "name": "gaps-test",
    "mode": "gaps",
    "seed": 5,
    "space": {"elements": {el: [0.0, 1.0] for el in ELEMENTS}},
    "objectives": [{"property": "mixing_energy", "goal": "min"}],
    "constraints": ["density <= 11 g/cm3"],
    "fidelities": [
        {"name": "emt", "kind": "calculation", "method": "emt"},
        {"name": "lab", "kind": "experiment", "cost": 1},
    ],
    "budget": {"calculations": 10},
}


def lab_record(x: np.ndarray, k: int) -> MaterialRecord:
    """A measured sample with the made-up properties of ``tests/acquire/test_gaps.py``."""
    energy, density = measured(x[None])[0]
    return MaterialRecord(
        composition=Composition({el: float(v) for el, v in zip(ELEMENTS, x) if v > 0}),
        properties=[PropertyValue(name="mixing_energy", value=float(energy)),
                    PropertyValue(name="density", value=float(density))],
        sample_id=f"S{k:03d}",
        provenance=Provenance(source=Source.experimental, method="lab", campaign="imported"),
    )


@pytest.fixture(scope="module")
def lab_store(tmp_path_factory):
    """A real store of 27 experimental records covering only the Ni >= Pd half of the space."""
    root = tmp_path_factory.mktemp("gaps")
    with Store.open(root / "store", "a") as store:
        store.ingest([lab_record(x, k) for k, x in enumerate(half_covered(20, np.random.default_rng(0)))])
    campaign = parse_campaign({**SPEC, "store": str(root / "store"), "workdir": str(root / "run")}, "gaps.yaml")
    with Store.open(root / "store") as store:
        df = store.to_dataframe()
    data = training_set(campaign, df)
    assert len(data) == 27 and set(data.sources) == {"experimental"}
    return root, campaign, df, fit_model(campaign, data)


def fractions(suggestions) -> np.ndarray:
    return np.array([[s.composition.get(el, 0.0) for el in ELEMENTS] for s in suggestions])


def test_coverage_map_before_and_after(lab_store, tmp_path):
    _, campaign, df, fitted = lab_store
    props = gap_filling(campaign).propose(PlanRequest(4, fitted, [], ["emt"], 1))
    png = coverage_map(campaign, df, props, tmp_path / "cov.png", model=fitted.model)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000
    # "after" from real new data: the model refitted on more records
    more = df.copy()
    png2 = coverage_map(campaign, more, props, tmp_path / "cov2.png", before_df=df.iloc[:10])
    assert png2.exists() and png2.stat().st_size > 10000


def test_gaps_command(lab_store, tmp_path):
    root, campaign, _, _ = lab_store
    path = tmp_path / "gaps.yaml"
    import yaml

    path.write_text(yaml.safe_dump({**SPEC, "store": str(root / "store"), "workdir": str(tmp_path / "run")}))
    suggestions, png = gaps_command(root / "store", path, 4, tmp_path / "out")
    assert len(suggestions) == 4 and png == tmp_path / "out" / "coverage.png" and png.exists()
    x = fractions(suggestions)
    assert (x[:, 2] > x[:, 1]).all()
    from dm_hpc.campaign import load_campaign
    from dm_hpc.campaign.realise import realiser

    realise = realiser(load_campaign(path))
    assert all(realise(s).key == s.key for s in suggestions)  # cells the calculator would build
    csv = (tmp_path / "out" / "gaps.csv").read_text().splitlines()
    assert len(csv) == 5 and "predicted_std:mixing_energy" in csv[0]
    from dm_hpc.campaign import CampaignError

    with pytest.raises(CampaignError, match="no store"):
        gaps_command(tmp_path / "nowhere", path, 4, tmp_path / "out")


def test_a_gaps_campaign_plans_new_realised_calculations_at_the_cheapest_fidelity(lab_store, tmp_path):
    """``choose_planner`` gives the gap-filling planner at the cheapest calculation (listed second
    here); driven by ``fresh_points``, it ranks only realised cells not yet planned, so a second
    plan with the first one's points known finds new ones without a single rejected proposal."""
    from dm_hpc.campaign.realise import realiser

    root, _, _, fitted = lab_store
    fine = {"name": "emt-fine", "kind": "calculation", "method": "chgnet", "cost": 50}
    campaign = parse_campaign({**SPEC, "fidelities": [fine, *SPEC["fidelities"]], "store": str(root / "store"),
                               "workdir": str(tmp_path / "run")}, "gaps.yaml")
    planner = choose_planner(campaign, fitted, seed_lab=False)
    assert isinstance(planner, GapFilling)
    assert planner.fidelity_for(["emt-fine", "emt"]) == "emt" and planner.costs["emt"] == fidelity_costs(campaign)["emt"] < 50
    assert planner.fidelity_for(["emt-fine"]) == "emt-fine"  # the cheapest one stopped: the next
    assert list(planner.outputs) == ["mixing_energy", "density"]

    realise = realiser(campaign)
    request = PlanRequest(4, fitted, [], ["emt"], 1)
    first = fresh_points(planner, request, realise, {}, rounds=1)
    assert len(first.points) == 4 and first.rejected == 0
    assert all(realise(p).key == p.key for p in first.points)  # proposals are the cells computed
    again = fresh_points(planner, request, realise, {"emt": {p.key for p in first.points}}, rounds=1)
    assert len(again.points) == 4 and again.rejected == 0
    assert not {p.key for p in again.points} & {p.key for p in first.points}
    stopped = fresh_points(planner, PlanRequest(2, fitted, [], ["emt-fine"], 2), realise, {}, rounds=1)
    assert [p.fidelity for p in stopped.points] == ["emt-fine", "emt-fine"]
