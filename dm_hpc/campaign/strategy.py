"""What the campaign asks for next: random starts, then surrogate + BoTorch acquisition.

The choice of fidelity per proposal (which calculation, or the lab) is the acquisition's
(information gain about the target per unit cost); the campaign only offers the fidelities
its budget still allows.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dm_hpc.campaign.dataset import TrainingSet
from dm_hpc.campaign.spec import Campaign, FidelityKind, Goal

#: Atoms assumed when a method's cost model needs a cell size before the structure exists.
TYPICAL_ATOMS = 16


@dataclass
class Suggestion:
    """One thing to do next."""

    fidelity: str
    composition: dict[str, float]
    process: dict[str, float]
    predicted: dict[str, Any]


@lru_cache(maxsize=4)
def _pool(path: Path, column_map: Path | None) -> tuple[tuple[tuple[tuple[str, float], ...], ...], tuple[str, ...]]:
    from dm_hpc.data.sheets import read_sheet

    records = read_sheet(path, column_map=column_map)
    comps = list(dict.fromkeys(tuple(r.composition.fractions.items()) for r in records
                               if r.composition is not None))  # unique, in order
    elements = tuple(sorted({el for c in comps for el, _ in c}))
    return tuple(comps), elements


def pool_compositions(campaign: Campaign) -> list[dict[str, float]]:
    """The unique candidate compositions of a pool campaign (replicates collapse to one)."""
    comps, _ = _pool(campaign.space.pool, campaign.space.pool_map)
    return [dict(c) for c in comps]


def design_space(campaign: Campaign):
    """The acquisition's ``DesignSpace`` for a campaign (continuous, or a candidate pool)."""
    from dm_hpc.acquire import DesignSpace

    sp = campaign.space
    if sp.pool is not None:
        comps, elements = _pool(sp.pool, sp.pool_map)
        return DesignSpace.from_pool([dict(c) for c in comps], elements=list(elements))
    return DesignSpace(
        elements={el: tuple(b) for el, b in sp.elements.items()},
        max_elements=sp.max_elements,
        excluded=frozenset(sp.excluded),
        process={k: (b.low, b.high) for k, b in sp.process.items()},
    )


def fidelity_costs(campaign: Campaign) -> dict[str, float]:
    """Cost of one evaluation per fidelity, in core-hours (lab-days converted by the budget)."""
    from dm_hpc.compute import get_method

    costs = {}
    for fid in campaign.fidelities:
        if fid.kind == FidelityKind.experiment:
            costs[fid.name] = float(fid.cost) * campaign.budget.core_hours_per_lab_day
        elif fid.cost == "auto":
            costs[fid.name] = get_method(fid.method).cost_core_seconds(TYPICAL_ATOMS) / 3600.0
        else:
            costs[fid.name] = float(fid.cost)
    return costs


def target_index(campaign: Campaign) -> int:
    """The fidelity the campaign optimises: flagged ``target``, else the lab, else the last."""
    for i, fid in enumerate(campaign.fidelities):
        if fid.target:
            return i
    for i, fid in enumerate(campaign.fidelities):
        if fid.kind == FidelityKind.experiment:
            return i
    return len(campaign.fidelities) - 1


def random_suggestions(campaign: Campaign, n: int, rng: np.random.Generator, fidelity: str) -> list[Suggestion]:
    """``n`` random feasible points (the campaign's start, before a model is worth fitting)."""
    if campaign.space.pool is not None:
        comps = pool_compositions(campaign)
        picks = rng.choice(len(comps), size=min(n, len(comps)), replace=False)
        return [Suggestion(fidelity, comps[i], {}, {}) for i in picks]
    space = design_space(campaign)
    frac, proc = space.sample(n, rng)
    return [Suggestion(fidelity, comp, pr, {}) for comp, pr in space.to_dicts(frac, proc)]


def fit_model(campaign: Campaign, data: TrainingSet):
    """Fit the campaign's surrogate on ``data``; returns ``(model, space, multi_fidelity)``."""
    import torch

    from dm_hpc.learn import fit_surrogate

    space = design_space(campaign)
    from dm_hpc.learn.features import composition_matrix

    X = space.featurize(composition_matrix(data.compositions, space.element_names), data.process)
    Y = torch.tensor(np.array(data.Y), dtype=torch.double)
    fids = np.unique(data.fidelity)
    kind = campaign.learning.surrogate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(fids) > 1 and kind in ("auto", "multitask"):
            tgt = target_index(campaign)
            model = fit_surrogate(X, Y, kind="multitask", task_index=torch.as_tensor(data.fidelity),
                                  target_task=tgt if tgt in fids else int(fids.max()))
            return model, space, True
        model = fit_surrogate(X, Y, kind="gp" if kind == "multitask" else kind)
    return model, space, False


def model_suggestions(
    campaign: Campaign,
    model,
    space,
    multi_fidelity: bool,
    q: int,
    pending: list[tuple[dict[str, float], dict[str, float]]],
    allowed: list[str],
    seed: int,
) -> list[Suggestion]:
    """``q`` proposals from the acquisition, with a fidelity each among ``allowed``."""
    from dm_hpc.acquire import Fidelity, Objective, OutcomeConstraint, propose

    props = campaign.properties
    objectives = [Objective(props.index(o.property), o.goal == Goal.max, o.property) for o in campaign.objectives]
    constraints = [OutcomeConstraint(props.index(c.property), c.op, c.value, c.property) for c in campaign.constraints]
    fidelities = None
    if multi_fidelity:
        costs = fidelity_costs(campaign)
        tgt = target_index(campaign)
        fidelities = [Fidelity(f.name, i, costs[f.name], target=(i == tgt))
                      for i, f in enumerate(campaign.fidelities) if f.name in allowed]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proposals = propose(model, space, objectives, constraints, q=q, pending=pending or None,
                            fidelities=fidelities or None, outputs=props, seed=seed)
    default = allowed[0]
    return [
        Suggestion(p.fidelity or default, p.composition, p.process,
                   {"mean": p.mean, "std": p.std, "acquisition": p.acquisition_value,
                    "gain_per_cost": p.gain_per_cost})
        for p in proposals
    ]
