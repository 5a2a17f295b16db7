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


def test_a_lab_step_that_rounds_past_a_bound_is_not_suggested(tmp_path):
    """At a precision of 0.5, Au at most 0.35 was sent to the lab as Au0.5Cu0.5."""
    space = {"elements": {"Au": [0, 0.35], "Cu": [0, 0.5], "Ni": [0, 0.5]}}
    c = load_campaign(write_campaign(tmp_path, fidelities=[{**LAB, "precision": 0.5}], space=space,
                                     budget={"lab_experiments": 4}))
    assert realiser(c)(ProposedPoint("lab", {"Au": 0.3, "Cu": 0.3, "Ni": 0.4})) is None
    assert realiser(c)(ProposedPoint("lab", {"Au": 0.1, "Cu": 0.45, "Ni": 0.45})).composition == {"Cu": 0.5, "Ni": 0.5}


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
    assert sorted(str(p.composition) for p in plan.points) == ["{'Cu': 1.0}", "{'Ni': 1.0}"] and plan.shortfall
    assert design_space(c).coordinates(np.zeros((0, 3)), np.zeros((0, 1))).shape == (0, 4)
