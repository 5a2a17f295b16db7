"""A lab batch is spread over the space (a user trial: six suggestions 0.01-0.03 atomic fraction
apart, which a lab cannot usefully make: weighing and arc-melting are not that precise, and a
batch of near-replicates wastes a round). Real EMT, real store, real GP fits, real BoTorch.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from dm_hpc import Campaign
from dm_hpc.acquire.planner import PlanRequest, RandomStart, fresh_points
from dm_hpc.acquire.points import MIN_SEPARATION, ProposedPoint
from dm_hpc.campaign import CampaignError, load_campaign
from dm_hpc.campaign.realise import realiser
from dm_hpc.campaign.strategy import design_space

from .helpers import write_campaign

#: The sheet rounds fractions to 3 decimals: distances read from it may fall this much short.
SHEET_ROUNDING = 2e-3


def pairwise(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(len(x), 1)]


def fractions(sheet: pd.DataFrame) -> np.ndarray:
    return sheet[[c for c in sheet.columns if c.startswith("composition:")]].fillna(0.0).astype(float).to_numpy()


@pytest.fixture(scope="module")
def hea(tmp_path_factory):
    """hea-demo in small: 16 EMT calculations on five elements, two objectives and a density
    constraint; its lab batches are seeded by the calculations' model, as the trial's were."""
    tmp = tmp_path_factory.mktemp("hea")
    path = write_campaign(tmp, name="hea", calculations=16, seed=1,
                          space={"elements": {"Al": [0, 0.35], "Cu": [0, 0.5], "Ni": [0, 0.5], "Pd": [0, 0.35],
                                              "Ag": [0, 0.35]}, "max_elements": 4},
                          objectives=[{"property": "mixing_energy", "goal": "min"},
                                      {"property": "raw_material_cost", "goal": "min"}],
                          constraints=["density <= 12 g/cm3"],
                          budget={"calculations": 16, "lab_experiments": 20, "core_hours_per_lab_day": 0.5})
    camp = Campaign.load(path)
    camp.run()
    return camp


def test_a_lab_batch_keeps_the_minimum_separation(hea):
    x = fractions(hea.suggest(6))  # was 0.02-0.03 apart at the closest (0.003-0.014 after 24 calculations)
    assert len(x) == 6
    assert pairwise(x).min() >= MIN_SEPARATION - SHEET_ROUNDING, pairwise(x).round(3)
    # and the next batch keeps its distance from the six the lab has not answered yet
    following = fractions(hea.suggest(4))
    assert pairwise(following).min() >= MIN_SEPARATION - SHEET_ROUNDING
    assert np.linalg.norm(following[:, None] - x[None], axis=-1).min() >= MIN_SEPARATION - SHEET_ROUNDING


T_LOW, T_HIGH = 400.0, 900.0  # degC, as the file writes them and the sheet shows them
HARDNESS = "property:hardness [GPa]"


def anneal_file(**learning) -> dict:
    return {
        "name": "anneal",
        "store": "store",
        "workdir": "run",
        "seed": 4,
        "space": {"elements": {"Cu": [0.0, 1.0], "Ni": [0.0, 0.6], "Co": [0.0, 0.5], "Fe": [0.0, 0.5]},
                  "max_elements": 4,
                  "process": {"annealing_temperature": {"low": T_LOW, "high": T_HIGH, "unit": "degC"}}},
        "objectives": [{"property": "hardness", "goal": "max", "unit": "GPa"}],
        "fidelities": [{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 4}],
        "budget": {"lab_experiments": 30},
        "learning": {"initial_points": 4, **learning},
    }


def coordinates(sheet: pd.DataFrame) -> np.ndarray:
    """``n x 5``: the atomic fractions (Cu, Ni, Co, Fe), and the annealing temperature scaled to
    [0, 1] by its bounds."""
    frac = np.column_stack([sheet[next(c for c in sheet.columns if c.startswith(f"composition:{el} "))]
                            .fillna(0.0).astype(float) for el in ("Cu", "Ni", "Co", "Fe")])
    temp = sheet[next(c for c in sheet.columns if "annealing_temperature" in c)].astype(float)
    return np.column_stack([frac, (temp - T_LOW) / (T_HIGH - T_LOW)])


def measure(sheet: pd.DataFrame) -> pd.DataFrame:
    """A made-up smooth hardness (GPa) with one peak, at Ni 0.3, Co 0.2, annealed at 600 degC."""
    x = coordinates(sheet)
    out = sheet.copy()
    out[HARDNESS] = 4.0 - 8.0 * ((x[:, 1] - 0.3) ** 2 + (x[:, 2] - 0.2) ** 2) - 2.0 * (x[:, 4] - 0.4) ** 2
    return out


def test_the_campaign_file_sets_the_separation_process_included(tmp_path):
    """A lab-only campaign with a process route, driven by suggest and measurements: two rounds of
    four, then a batch of six at the file's wider separation, the temperature scaled by its bounds."""
    path = tmp_path / "anneal.yaml"
    path.write_text(yaml.safe_dump(anneal_file(batch_separation=0.25)))
    camp = Campaign.load(path)
    for _ in range(2):
        camp.add_measurements(measure(camp.suggest(4)))
    assert pairwise(coordinates(camp.suggest(6))).min() >= 0.25 - SHEET_ROUNDING


@pytest.mark.parametrize("value, says", [(-0.1, "greater than or equal to 0"), (0.6, "less than or equal to 0.5"),
                                         ("close", "a valid number")])
def test_a_separation_out_of_range_is_refused_naming_the_field(tmp_path, value, says):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(anneal_file(batch_separation=value)))
    with pytest.raises(CampaignError, match=f"learning.batch_separation: .*{says}"):
        load_campaign(path)


def first_batch(tmp_path, seed: int, n: int, **learning) -> np.ndarray:
    """The coordinates of a lab-only campaign's first batch: no measurement, no model, so the
    random start chooses it."""
    path = tmp_path / f"anneal-{seed}.yaml"
    path.write_text(yaml.safe_dump({**anneal_file(**learning), "seed": seed, "store": str(tmp_path / f"store-{seed}"),
                                    "workdir": str(tmp_path / f"run-{seed}")}))
    return coordinates(Campaign.load(path).suggest(n))


def test_the_first_lab_batch_before_any_model_keeps_the_separation(tmp_path):
    """The first batch of ten was random draws: closest pairs below 0.1 for 6 of 20 seeds, down to
    0.0004 (two near-replicates on one sheet)."""
    closest = [pairwise(first_batch(tmp_path, seed, 10)).min() for seed in range(10)]
    assert min(closest) >= MIN_SEPARATION - SHEET_ROUNDING, np.round(closest, 3)
    wider = [pairwise(first_batch(tmp_path, seed, 6, batch_separation=0.3)).min() for seed in (20, 21, 22)]
    assert min(wider) >= 0.3 - SHEET_ROUNDING, np.round(wider, 3)  # the campaign's own setting, too


def test_a_first_batch_in_a_narrow_space_is_filled_closer(tmp_path):
    """Cu with at most 10 % Ni, no process: two points 0.1 apart at most, yet ten are asked; the batch
    is filled with closer points (as a model's batch is), not cut to the two the separation allows."""
    path = tmp_path / "doped.yaml"
    path.write_text(yaml.safe_dump({**anneal_file(), "space": {"elements": {"Cu": [0.9, 1.0], "Ni": [0.0, 0.1]}}}))
    sheet = Campaign.load(path).suggest(10)
    ni = sheet[next(c for c in sheet.columns if c.startswith("composition:Ni "))].fillna(0.0).astype(float)
    assert len(sheet) == 10 and ni.between(0.0, 0.1).all()


def test_the_random_fallback_keeps_the_separation_from_the_batch_and_the_pending_points(tmp_path):
    """When the planner finds no new point, the fallback's random candidates fill the batch: they
    were taken in the order drawn, as close to each other and to the lab's awaited samples as chance
    put them."""
    path = tmp_path / "anneal.yaml"
    path.write_text(yaml.safe_dump(anneal_file()))
    c = load_campaign(path)
    space = design_space(c)
    awaited = [ProposedPoint("lab", comp, {"annealing_temperature": kelvin})  # canonical: 400, 900, 650 degC
               for comp, kelvin in [({"Cu": 1.0}, 673.15), ({"Cu": 0.5, "Ni": 0.5}, 1173.15),
                                    ({"Co": 0.5, "Fe": 0.5}, 923.15)]]
    taken = space.coordinates(*space.from_dicts([(p.composition, p.process) for p in awaited]))
    closest, to_awaited = [], []
    for seed in range(10):
        # no planning round: the fallback alone answers, as after three rounds without a new point
        got = fresh_points(RandomStart(space), PlanRequest(8, None, awaited, ["lab"], seed), realiser(c), {},
                           fallback=RandomStart(space), rounds=0)
        x = space.coordinates(*space.from_dicts([(p.composition, p.process) for p in got.points]))
        assert len(x) == 8
        closest.append(pairwise(x).min())
        to_awaited.append(np.linalg.norm(x[:, None] - taken[None], axis=-1).min())
    assert min(closest) >= MIN_SEPARATION, np.round(closest, 3)
    assert min(to_awaited) >= MIN_SEPARATION, np.round(to_awaited, 3)
