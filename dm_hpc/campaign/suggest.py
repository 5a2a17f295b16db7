"""Lab on demand: N new experiments from the current model, journalled as one lab batch.

``lab_batch`` is what ``dm-hpc suggest -n N``, ``Campaign.suggest(n)`` and the end of a run use.
It depends only on the store and the journal (the model is refitted on the store, the random
stream is seeded by the journal's counts), so the same journal gives the same lab batch whether
or not the run was interrupted. Points are realised at the lab's precision and never repeat what
is stored, in flight or already sent to the lab.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dm_hpc.acquire.planner import PlanRequest, RandomStart, fresh_points
from dm_hpc.acquire.points import PointKey, ProposedPoint, point_key
from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.dataset import training_set
from dm_hpc.campaign.realise import realiser, stored_keys
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.campaign.strategy import LabSeeding, design_space, fit_model, optimiser


@dataclass
class LabBatch:
    """A planned lab batch: journal-ready samples, or why there are none."""

    samples: list[dict[str, Any]] = field(default_factory=list)
    why_empty: str | None = None


def seen_points(c: CampaignSpec, state: jn.State, df: pd.DataFrame) -> dict[str, set[PointKey]]:
    """Realised points per fidelity that are stored, planned or sent to the lab."""
    seen = stored_keys(c, df)
    for t in state.tasks.values():
        seen.setdefault(t.fidelity, set()).add(point_key(t.composition, t.process))
    if c.lab is not None:
        seen[c.lab.name] |= {point_key(e.composition, e.process) for e in state.lab.values()}
    return seen


def lab_batch(c: CampaignSpec, state: jn.State, df: pd.DataFrame, n: int, fitted=None) -> LabBatch:
    """Plan ``n`` new lab experiments (``fitted``: a model to reuse, else fitted on ``df``)."""
    lab = c.lab
    if lab is None:
        return LabBatch(why_empty=f"campaign {c.name!r} has no experiment fidelity")
    left = None if c.budget.lab_experiments is None else c.budget.lab_experiments - len(state.lab)
    if left is not None and left <= 0:
        return LabBatch(why_empty=f"the lab budget is used up ({len(state.lab)} of "
                                  f"{c.budget.lab_experiments} experiments suggested); raise budget.lab_experiments")
    n = n if left is None else min(n, left)
    if fitted is None:
        data = training_set(c, df)
        fitted = fit_model(c, data) if len(data) >= 2 else None
    seed = int(np.random.default_rng([c.seed, len(state.tasks), len(state.lab), state.refits, 7]).integers(2**31))
    pending = [ProposedPoint(t.fidelity, t.composition, t.process) for t in state.in_flight]
    pending += [ProposedPoint(lab.name, e.composition, e.process) for e in state.lab.values() if e.record_id is None]
    if fitted is None:
        planner = RandomStart(design_space(c))
    elif fitted.multi_fidelity or not c.calculations:
        planner = optimiser(c)
    else:
        planner = LabSeeding(optimiser(c), lab.name, c.calculations[0].name)
    got = fresh_points(planner, PlanRequest(n, fitted, pending, [lab.name], seed), realiser(c),
                       seen_points(c, state, df), fallback=RandomStart(design_space(c)))
    batch = state.lab_batches + 1
    samples = [{"sample_id": f"{c.name}-L{batch:03d}-{k + 1:02d}", "composition": p.composition,
                "process": p.process, "predicted": p.predicted} for k, p in enumerate(got.points)]
    return LabBatch(samples, None if samples else got.shortfall)
