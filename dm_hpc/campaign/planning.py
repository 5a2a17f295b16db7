"""The decision side of a running campaign: the fitted surrogate and the next realised points.

The manager (``manager.py``) owns the loop, the journal and the runner; it hands this module a
``Snapshot`` of what the planner may know (records to refit on, points not to propose again, the
fidelities still allowed) and gets a ``Plan`` back. ``CampaignPlanner.plan`` runs in the
manager's planner thread and touches nothing shared but its own ``fitted`` surrogate and the
thread-safe journal (a refit is journalled there and applied to the state by the loop).

Which planner answers (random start, BoTorch, gap filling, lab seeding) is
``strategy.choose_planner``'s choice; ``acquire.planner.fresh_points`` turns its proposals into
realised points that no fidelity has seen, or says why there are none.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dm_hpc.acquire.planner import PlanRequest, fresh_points
from dm_hpc.acquire.points import PointKey, ProposedPoint, point_key
from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS, best_values, own_records, training_set
from dm_hpc.campaign.realise import realiser
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.campaign.strategy import LabSeeding, choose_planner, fit_model, optimiser, random_start


@dataclass
class Snapshot:
    """What the planner thread needs, copied so it never touches the store or the runner.

    Attributes:
        data: records to refit on (``Store.to_dataframe()``); None keeps the current model.
        seed: seeds every random draw of this plan (the same journal state plans the same points).
        pending: realised points in flight, queued or in lab batches (the acquisition's pending set).
        seen: realised points per fidelity that must not be proposed again (``seen_points``).
        allowed: fidelity names budgets and circuit breakers still allow (first: the calculation).
        seed_lab: the lab may get a first batch from a single-fidelity model.
    """

    data: pd.DataFrame | None
    seed: int
    pending: list[ProposedPoint]
    seen: dict[str, set[PointKey]]
    allowed: list[str]
    seed_lab: bool


@dataclass
class Plan:
    """What the planner thread hands back."""

    points: list[ProposedPoint]
    refit: dict[str, Any] | None  # the journalled refit event, applied by the loop
    shortfall: str | None  # why fewer points than asked were found (None: all found)
    refit_skipped: bool = False  # asked to refit, but too few records yet


def seen_points(campaign: CampaignSpec, stored: dict[str, set[PointKey]], state: jn.State,
                queued: Iterable[ProposedPoint]) -> dict[str, set[PointKey]]:
    """Realised points per fidelity that must not be proposed again: ``stored`` in the store,
    planned (in flight or ended), ``queued`` (including points waiting for a lab batch), or sent
    to the lab."""
    seen = {name: set(keys) for name, keys in stored.items()}
    for name in (f.name for f in campaign.fidelities):
        seen.setdefault(name, set())
    for t in state.tasks.values():
        seen.setdefault(t.fidelity, set()).add(point_key(t.composition, t.process))
    if campaign.lab is not None:
        seen[campaign.lab.name] |= {point_key(e.composition, e.process) for e in state.lab.values()}
    for p in queued:
        seen.setdefault(p.fidelity, set()).add(p.key)
    return seen


class CampaignPlanner:
    """Refits the campaign's surrogate when asked and plans realised, new points.

    Args:
        campaign: the campaign file.
        journal: where refits are journalled (thread-safe ``journal.Journal``).
    """

    def __init__(self, campaign: CampaignSpec, journal: jn.Journal) -> None:
        self.c = campaign
        self.journal = journal
        self.fitted = None  # learn.fitted.FittedSurrogate; written only by ``plan``
        self.realise = realiser(campaign)

    def plan(self, snap: Snapshot) -> Plan:
        """Refit if ``snap.data`` is given (and enough records exist), then up to
        ``learning.batch_size`` new points (plus a first lab batch when ``snap.seed_lab``)."""
        refit, skipped = None, False
        if snap.data is not None:
            data = training_set(self.c, snap.data)
            if data.fewest >= max(MIN_TRAINING_RECORDS, self.c.learning.initial_points):
                t = time.perf_counter()
                self.fitted = fit_model(self.c, data, for_decisions=self.c.mode != "gaps")
                mine = own_records(self.c, snap.data)
                info = self.fitted.transfer  # the run's model with sources: which kind, how much each weighed
                extra = {"transfer": {"kind": info["kind"], "weights": info["weights"]}} if info else {}
                # ``constrained``: these best values meet the constraints (refits journalled before
                # took every record; ``stopping.no_improvement`` does not compare the two kinds)
                refit = self.journal.write("refit", n=len(data), seconds=round(time.perf_counter() - t, 3),
                                           best=best_values(self.c, mine), constrained=True, **extra)
            else:
                skipped = True
        fitted, q = self.fitted, self.c.learning.batch_size
        points: list[ProposedPoint] = []
        seen, pending = snap.seen, list(snap.pending)
        lab = self.c.lab
        if fitted is not None and not fitted.multi_fidelity and self.c.mode != "gaps":
            # no record at a fidelity yet, so no multi-fidelity model can weigh it: the lab (no
            # measurement yet) and any further calculation method (CHGNet first, DFT second: review,
            # DFT never ran) get one first batch of the best-predicted candidates, whose answers
            # seed the multi-task model; a calculation fidelity once, while nothing is planned there
            firsts = [(lab.name, lab.batch_size, snap.seed + 1)] if snap.seed_lab and self.c.calculations else []
            others = [f.name for f in self.c.calculations[1:] if f.name in snap.allowed and not snap.seen.get(f.name)]
            firsts += [(name, q, snap.seed + 2 + i) for i, name in enumerate(others)]
            for name, size, seed in firsts:
                # ranked by the fidelity the single-fidelity model was fitted on: the first
                # allowed one may be another once a budget or a circuit breaker took the first
                seeding = LabSeeding(optimiser(self.c), name, fitted.target)
                got = fresh_points(seeding, PlanRequest(size, fitted, pending, [name], seed), self.realise, seen)
                points += got.points
                pending += got.points
        allowed = snap.allowed if fitted is not None and fitted.multi_fidelity else snap.allowed[:1]
        planner = choose_planner(self.c, fitted, seed_lab=False)
        got = fresh_points(planner, PlanRequest(q, fitted, pending, allowed, snap.seed), self.realise, seen,
                           fallback=random_start(self.c))
        return Plan(points + got.points, refit, got.shortfall, skipped)
