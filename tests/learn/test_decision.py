"""The decision model (``learn.decision``): the surrogate refitted on Yeo-Johnson-warped objective
values picks the next points; predictions and intervals stay the reporting model's. Real GP fits,
real BoTorch, a real campaign (instant calculator, HDF5 store)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from dm_hpc.learn import decision
from dm_hpc.learn.decision import fit_decision_model, warped, warps, yeo_johnson


def test_the_warp_keeps_the_order_and_makes_a_skewed_sample_symmetric():
    rng = np.random.default_rng(0)
    y = rng.lognormal(0.0, 1.0, 60)  # a strength or an activity: a few values far above the rest
    z = yeo_johnson(y)
    assert np.array_equal(np.argsort(z), np.argsort(y))  # monotone increasing: the best stays the best
    assert z.mean() == pytest.approx(0.0, abs=1e-9) and z.std() == pytest.approx(1.0, rel=1e-9)
    assert stats.skew(y) > 1.5 and abs(stats.skew(z)) < 0.2 * stats.skew(y)


def test_unmeasured_values_stay_unmeasured_and_few_values_are_only_standardised():
    z = yeo_johnson(np.array([1.0, np.nan, 3.0]))
    assert np.isnan(z[1]) and z[[0, 2]] == pytest.approx([-1.0, 1.0])
    assert yeo_johnson(np.array([2.0, 2.0, 2.0, 2.0])) == pytest.approx([0.0] * 4)  # nothing to fit
    Y = torch.tensor([[1.0, 10.0], [2.0, 20.0], [50.0, 30.0], [3.0, 40.0]], dtype=torch.double)
    W = warped(Y, [0])
    assert torch.equal(W[:, 1], Y[:, 1])  # a constraint's column keeps its units
    assert torch.argmax(W[:, 0]) == 2


def test_the_warp_applies_where_it_was_measured_only():
    assert warps("auto", 40, [0]) and warps("gp", 40, [0])
    assert not warps("auto", 40, [0, 1])  # several objectives: the reporting model decides
    assert not warps("multitask", 40, [0]) and not warps("ensemble", 40, [0])
    assert not warps("auto", 10**6, [0])  # a subset GP on large data: not measured
    X = torch.rand(8, 2, dtype=torch.double)
    Y = torch.rand(8, 1, dtype=torch.double)
    assert fit_decision_model(X, Y, [], kind="auto") is None


def test_the_decision_model_learns_the_warped_values():
    rng = np.random.default_rng(1)
    X = torch.tensor(rng.random((20, 2)), dtype=torch.double)
    y = torch.exp(4 * X[:, :1]) + 0.1 * X[:, 1:]  # skewed: one corner far above the rest
    model = fit_decision_model(X, y, [0], kind="auto", seed=0)
    with torch.no_grad():
        mean = model.posterior(X).mean[:, 0]
    target = warped(y, [0])[:, 0]
    assert float((mean - target).abs().max()) < 0.2  # the warped scale (standardised), not e^4
    decision.OUTCOME_WARP = False
    try:
        assert fit_decision_model(X, y, [0], kind="auto", seed=0) is None
    finally:
        decision.OUTCOME_WARP = True


def test_a_campaign_picks_on_the_decision_model_and_reports_the_reporting_models_predictions(tmp_path):
    """One objective: the suggestion is chosen by the bound of the warped model; the predictions the
    lab sheet and the journal carry are in the property's units (the reporting model's), not the
    warped scale's (standardised, about -2..2)."""
    from dm_hpc import Campaign
    from dm_hpc.acquire.planner import PlanRequest
    from dm_hpc.campaign.dataset import training_set
    from dm_hpc.campaign.strategy import decision_outputs, fit_model, optimiser
    from dm_hpc.data.store import Store
    from tests.campaign.helpers import write_campaign

    path = write_campaign(tmp_path, name="one", calculations=12, seed=3,
                          objectives=[{"property": "mixing_energy", "goal": "min"}], constraints=[],
                          budget={"calculations": 12})
    camp = Campaign.load(path)
    camp.run()
    spec = camp.spec
    with Store.open(spec.store, "r") as store:
        data = training_set(spec, store.to_dataframe())
    fitted = fit_model(spec, data, for_decisions=True)
    assert decision_outputs(spec) == (spec.properties.index("mixing_energy"),)
    assert fitted.decision_model is not None and fitted.decider is fitted.decision_model
    assert fit_model(spec, data).decision_model is None  # a model that only reports fits one GP
    points = optimiser(spec).propose(PlanRequest(3, fitted, [], [fitted.target], 0))
    assert len(points) == 3
    out = spec.properties.index("mixing_energy")
    X = fitted.space.featurize(*fitted.space.from_dicts([(p.composition, p.process) for p in points]))
    with torch.no_grad():
        report = fitted.model.posterior(X).mean[:, out]
        warped_mean = fitted.decision_model.posterior(X).mean[:, out]
    said = torch.tensor([p.predicted["mean"]["mixing_energy"] for p in points], dtype=torch.double)
    assert torch.allclose(said, report, rtol=1e-6, atol=1e-9)
    assert not torch.allclose(said, warped_mean, rtol=1e-3, atol=1e-6)


def test_rows_of_several_fidelities_in_one_single_task_model_get_no_decision_model():
    """``kind='gp'`` asked with rows of two fidelities fits one single-task GP over both: the warp
    was measured on one fidelity's values, so the reporting model decides (a review finding)."""
    from dm_hpc.learn.fitted import fit_fidelity_surrogate

    rng = np.random.default_rng(2)
    X = torch.tensor(rng.random((12, 2)), dtype=torch.double)
    Y = torch.exp(3 * X[:, :1])
    fid = ["emt"] * 6 + ["lab"] * 6
    mixed = fit_fidelity_surrogate(X, Y, fid, outputs=["y"], target="lab", space=None, kind="gp", decision_outputs=(0,))
    assert mixed.decision_model is None and mixed.decider is mixed.model
    one = fit_fidelity_surrogate(X, Y, ["lab"] * 12, outputs=["y"], target="lab", space=None, kind="gp", decision_outputs=(0,))
    assert one.decision_model is not None


def test_no_decision_model_for_an_objective_the_composition_decides(tmp_path):
    """A raw-material cost objective is ranked by its computed value (``strategy.exact_outputs``):
    no warped model of it is fitted; an objective with no formula keeps its decision model."""
    from dm_hpc.campaign import load_campaign
    from dm_hpc.campaign.strategy import decision_outputs
    from tests.campaign.helpers import write_campaign

    cost = load_campaign(write_campaign(tmp_path, name="cost", objectives=[
        {"property": "raw_material_cost", "goal": "min", "unit": "USD/kg"}]))
    assert decision_outputs(cost) == ()
    energy = load_campaign(write_campaign(tmp_path, name="energy"))
    assert decision_outputs(energy) == (energy.properties.index("mixing_energy"),)
