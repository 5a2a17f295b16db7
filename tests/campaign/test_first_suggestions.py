"""Campaigns that validated and then failed at their first suggestions (found by
``test_validate_then_suggest_fuzz.py``): each now is refused at validate, or is suggested
points inside its space."""
from __future__ import annotations

import numpy as np
import pytest

from dm_hpc.acquire.points import ProposedPoint
from dm_hpc.campaign import CampaignError, load_campaign
from dm_hpc.campaign.preflight import problems
from dm_hpc.campaign.realise import realiser
from dm_hpc.campaign.strategy import design_space

from .helpers import write_campaign

LAB = {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2}


def test_a_lab_step_is_taken_inside_the_bounds(tmp_path):
    """At a precision of 0.5, Au at most 0.35 was sent to the lab as Au0.5Cu0.5. Refusing every
    such point instead threw away most proposals on a bound (at 0.05 with Au at most 0.33 and Ni
    at most 0.48, 172 of 200): each is now made at the nearest steps inside its bounds."""
    space = {"elements": {"Au": [0, 0.35], "Cu": [0, 0.5], "Ni": [0, 0.5]}}
    c = load_campaign(write_campaign(tmp_path, fidelities=[{**LAB, "precision": 0.5}], space=space,
                                     budget={"lab_experiments": 4}))
    realise = realiser(c)
    assert realise(ProposedPoint("lab", {"Au": 0.3, "Cu": 0.3, "Ni": 0.4})).composition == {"Cu": 0.5, "Ni": 0.5}
    assert realise(ProposedPoint("lab", {"Au": 0.1, "Cu": 0.45, "Ni": 0.45})).composition == {"Cu": 0.5, "Ni": 0.5}
    space = {"elements": {"Au": [0, 0.33], "Cu": [0, 1], "Ni": [0, 0.48]}}
    c = load_campaign(write_campaign(tmp_path, fidelities=[{**LAB, "precision": 0.05}], space=space,
                                     budget={"lab_experiments": 4}))
    realise, ds = realiser(c), design_space(c)
    frac, _ = ds.sample(200, np.random.default_rng(0))
    made = [realise(ProposedPoint("lab", dict(zip(ds.element_names, row)))) for row in frac]
    assert all(m is not None for m in made)
    got = np.array([[m.composition.get(el, 0.0) for el in ds.element_names] for m in made])
    assert not ds.violations(got) and np.allclose(got * 20, np.round(got * 20))  # steps of 0.05, inside
    assert np.abs(got - frac).max() <= 0.1


def test_a_lab_precision_no_composition_of_the_space_meets_is_refused_at_validate(tmp_path):
    space = {"elements": {"Au": [0.05, 0.2], "Cu": [0, 1], "Ni": [0, 1]}}
    c = load_campaign(write_campaign(tmp_path, fidelities=[{**LAB, "precision": 0.5}], space=space,
                                     budget={"lab_experiments": 4}))
    assert any("precision 0.5" in p and "Au [0.05, 0.2]" in p for p in problems(c)), problems(c)


def test_an_element_the_space_requires_is_kept_by_the_cell_or_the_point_is_not_made(tmp_path):
    """Al at [0.01, 0.3]: a 4-atom cell of Cu0.495Ni0.495Al0.01 is Cu2Ni2, an "Al alloy" without Al."""
    space = {"elements": {"Al": [0.01, 0.3], "Cu": [0, 1], "Ni": [0, 1]}}
    cell4 = {"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m", "settings": {"n_atoms": 4}}
    c = load_campaign(write_campaign(tmp_path, fidelities=[cell4], space=space, lab=False))
    assert realiser(c)(ProposedPoint("emt", {"Al": 0.01, "Cu": 0.495, "Ni": 0.495})) is None
    assert realiser(c)(ProposedPoint("emt", {"Al": 0.25, "Cu": 0.5, "Ni": 0.25})) is not None


def test_an_element_required_below_one_atom_of_any_cell_is_refused_at_validate(tmp_path):
    """Al at [1e-9, 0.001] is in no EMT cell (at most 256 atoms): validate said ok, and every
    calculation of the first plan was of an alloy without Al."""
    space = {"elements": {"Al": [1e-9, 0.001], "Cu": [0, 1], "Ni": [0, 1]}}
    c = load_campaign(write_campaign(tmp_path, space=space))
    assert any(p.startswith("fidelities.emt: Al [1e-09, 0.001] must be present") for p in problems(c)), problems(c)


def test_a_shortfall_of_points_no_fidelity_can_make_says_so(tmp_path):
    from dm_hpc.acquire.planner import PlanRequest, RandomStart, fresh_points

    space = {"elements": {"Al": [0.01, 0.3], "Cu": [0, 1], "Ni": [0, 1]}}
    cell1 = {"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m", "settings": {"n_atoms": 1}}
    c = load_campaign(write_campaign(tmp_path, fidelities=[cell1], space=space, lab=False))
    got = fresh_points(RandomStart(design_space(c)), PlanRequest(2, None, [], ["emt"], 0), realiser(c), {})
    assert got.points == [] and "can be made as proposed" in got.shortfall, got.shortfall


def test_a_lab_only_campaign_in_gaps_mode_is_refused(tmp_path):
    """Gap filling proposes calculations: a lab-only campaign validated, then its first plan
    raised "min() arg is an empty sequence"."""
    with pytest.raises(CampaignError, match="mode: gaps fills.*only the lab"):
        load_campaign(write_campaign(tmp_path, fidelities=[LAB], budget={"lab_experiments": 4}, mode="gaps"))


def test_a_space_used_up_within_the_first_plan_gives_what_it_has(tmp_path):
    """Pure Cu and Ni only (max_elements 1, Pd at most 0.5), a process box, a batch of 13: once
    both were taken, no candidate was left and RandomStart failed to broadcast 0 x 3 against 2 x 4."""
    from dm_hpc.campaign import journal as jn
    from dm_hpc.campaign.planning import CampaignPlanner, Snapshot

    space = {"elements": {"Cu": [0, 1], "Ni": [0, 1], "Pd": [0, 0.5]}, "max_elements": 1,
             "process": {"pressure": {"low": 0, "high": 100, "unit": "MPa"}}}
    c = load_campaign(write_campaign(tmp_path, space=space, learning={"batch_size": 13}))
    c.run_dir.mkdir(parents=True)
    journal = jn.Journal(c.run_dir / "journal.jsonl")
    try:
        plan = CampaignPlanner(c, journal).plan(Snapshot(None, 0, [], {}, ["emt", "lab"], True))
    finally:
        journal.close()
    assert sorted(str(p.composition) for p in plan.points) == ["{'Cu': 1.0}", "{'Ni': 1.0}"]
    # two points were found: the reason says how many of the batch, not "no new point found"
    assert plan.shortfall.startswith("only 2 of 13 new points found"), plan.shortfall
    assert design_space(c).coordinates(np.zeros((0, 3)), np.zeros((0, 1))).shape == (0, 4)


@pytest.mark.parametrize("fidelity, space_extra, said", [
    ({"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m", "settings": {"n_atoms": 4}},
     {"min_elements": 5}, "space.min_elements = 5, but its largest cell has 4 atoms"),
    ({**LAB, "precision": 0.25}, {"min_elements": 5}, "at its precision 0.25 a composition has 4 steps, too few for 5"),
    ({"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m", "settings": {"n_atoms": "big"}},
     {}, "settings.n_atoms must be auto or one of"),
    ({"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m", "settings": {"lattice": "bcc"}},
     {"elements": {"Al": [1e-9, 0.003], "Cu": [0, 1], "Ni": [0, 1], "Pd": [0, 1], "Pt": [0, 1]}},
     "stays below one atom of a 128-atom cell"),
])
def test_a_campaign_no_realised_point_can_satisfy_is_refused_at_validate(tmp_path, fidelity, space_extra, said):
    """Five elements with min_elements 5 in 4-atom cells or at a lab step of 0.25, n_atoms "big",
    or Al below one atom of the largest bcc cell (the check took fcc's 256): each validated, then
    every proposal was refused (or failed to build) and the first plan found nothing."""
    space = {"elements": {el: [0, 1] for el in ("Cu", "Ni", "Pd", "Pt", "Au")}, **space_extra}
    c = load_campaign(write_campaign(tmp_path, fidelities=[fidelity], space=space, lab=False,
                                     budget={"calculations": 4, "lab_experiments": 4}))
    assert any(said in p for p in problems(c)), problems(c)


def test_a_cell_that_loses_a_required_element_to_rounding_is_not_made(tmp_path):
    """Al at [1e-9, 0.3]: a proposal with Al at 1e-7 is a CuNi cell once its key is rounded, and
    was calculated as the Al alloy without Al. It is not made; one with Al 0.25 is."""
    space = {"elements": {"Al": [1e-9, 0.3], "Cu": [0, 1], "Ni": [0, 1]}}
    cell4 = {"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m", "settings": {"n_atoms": 4}}
    c = load_campaign(write_campaign(tmp_path, fidelities=[cell4], space=space, lab=False))
    realise = realiser(c)
    assert realise(ProposedPoint("emt", {"Al": 1e-7, "Cu": 0.5 - 5e-8, "Ni": 0.5 - 5e-8})) is None
    assert realise(ProposedPoint("emt", {"Al": 0.25, "Cu": 0.5, "Ni": 0.25})).composition == {"Al": 0.25, "Cu": 0.5, "Ni": 0.25}


def test_a_cost_campaign_with_an_unpriced_element_is_refused_at_validate(tmp_path):
    """Ga has no price: a lab campaign under a cost cap on Cu-Ni-Ga validated, then no record ever
    had a cost and the model never fitted ("measure raw_material_cost", which no sheet asks)."""
    space = {"elements": {"Cu": [0, 1], "Ni": [0, 1], "Ga": [0.05, 0.3]}}
    lab = {**LAB, "measures": ["hardness"]}
    c = load_campaign(write_campaign(tmp_path, name="ga", fidelities=[lab], space=space,
                                     objectives=[{"property": "hardness", "goal": "max"}],
                                     constraints=["raw_material_cost <= 20 USD/kg"], budget={"lab_experiments": 4}))
    assert any("element_prices.yaml has no price for Ga" in p for p in problems(c)), problems(c)
    space["elements"].pop("Ga")
    c = load_campaign(write_campaign(tmp_path, name="cu", fidelities=[lab], space=space,
                                     objectives=[{"property": "hardness", "goal": "max"}],
                                     constraints=["raw_material_cost <= 20 USD/kg"], budget={"lab_experiments": 4}))
    assert problems(c) == []


@pytest.mark.parametrize("settings, ok", [({"n_atoms": 16}, False), ({"n_atoms": 2}, False),
                                          ({"n_atoms": 4}, True), ({"n_atoms": 16, "lattice": "bcc"}, True)])
def test_a_fixed_cell_size_the_spaces_lattice_lacks_is_refused_at_validate(tmp_path, settings, ok):
    """Cu-Ni-Pd prefers fcc: with lattice auto, 16 atoms (a bcc cell) validated and no point of
    the space could be built."""
    emt = {"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m", "settings": settings}
    c = load_campaign(write_campaign(tmp_path, fidelities=[emt], lab=False))
    said = [p for p in problems(c) if "settings.n_atoms" in p]
    assert (not said) == ok, said
    if ok:
        assert realiser(c)(ProposedPoint("emt", {"Cu": 0.5, "Ni": 0.5})) is not None
