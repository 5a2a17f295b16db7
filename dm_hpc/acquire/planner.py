"""Planners: what to calculate or measure next, behind one protocol.

Ax keeps the loop that runs trials, the strategy that chooses them and the rule that stops apart;
so does dm-hpc. A planner only *proposes* (``Planner.propose``); ``fresh_points`` turns proposals
into realised points (``points.py``) that no fidelity has seen: stored, in flight, queued or sent
to the lab. When no new point can be found it says so instead of proposing a known one again, so
a loop driven by it makes progress or stops -- a livelock is impossible by construction.

Planners here: ``RandomStart`` (the space-filling start and the fallback), ``BoTorchOptimisation``
(surrogate + acquisition, with a fidelity per point), ``LabSeeding`` (a first lab batch from a
single-fidelity model), and ``GapFilling`` in ``gaps.py`` (variance reduction where the data is
thinnest).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from dm_hpc.acquire.acquisition import Objective, OutcomeConstraint
from dm_hpc.acquire.fidelity import Fidelity
from dm_hpc.acquire.points import DUPLICATE_DISTANCE, MIN_SEPARATION, PointKey, ProposedPoint, may_take
from dm_hpc.acquire.space import DesignSpace

#: Rounds of re-proposal (each with the rejected points pending) before the random fallback.
PLAN_ROUNDS = 3
#: Random candidates drawn by the fallback; none of them new means the space is exhausted.
FALLBACK_CANDIDATES = 4096
#: Random candidates a ``RandomStart`` batch is chosen from, at the least (room to keep its separation).
START_CANDIDATES = 1024


@dataclass
class PlanRequest:
    """What a planner is asked.

    Attributes:
        q: how many points.
        fitted: the current ``learn.fitted.FittedSurrogate`` (None before the first fit).
        pending: realised points in flight, queued or in lab batches (not yet measured).
        allowed: fidelity names that may be proposed (budgets and circuit breakers applied).
        seed: seeds every random draw (same request, same answer).
        admissible: a point -> its realised point if that is new for its fidelity, else None
            (``fresh_points`` sets it): planners that rank candidates use it to rank only
            points that will be new, instead of proposing known ones and being asked again.
    """

    q: int
    fitted: object | None
    pending: list[ProposedPoint]
    allowed: list[str]
    seed: int
    admissible: Callable[[ProposedPoint], ProposedPoint | None] | None = None


Rows = tuple[np.ndarray, np.ndarray]


def admissible_rows(space: DesignSpace, admissible: Callable[[ProposedPoint], ProposedPoint | None],
                    fidelity: str) -> Callable[[np.ndarray, np.ndarray], Rows]:
    """A filter of candidate rows for planners that rank candidates: ``(n x E fractions,
    n x P process)`` -> the distinct realised rows (``m x E``, ``m x P``, m <= n) that are new at
    ``fidelity`` (``PlanRequest.admissible``), in first-seen order."""

    def snap(frac: np.ndarray, proc: np.ndarray) -> Rows:
        kept: dict[PointKey, tuple[dict, dict]] = {}
        for comp, pr in space.to_dicts(frac, proc):
            real = admissible(ProposedPoint(fidelity, comp, pr))
            if real is not None:
                kept.setdefault(real.key, (real.composition, real.process))
        return space.from_dicts(list(kept.values()))

    return snap


class Planner(Protocol):
    """Anything that proposes points (not yet realised; ``fresh_points`` does that)."""

    def propose(self, request: PlanRequest) -> list[ProposedPoint]: ...


@dataclass
class RandomStart:
    """Uniform feasible points of the space (a pool: distinct pool entries), first allowed fidelity.

    On a continuous space the points keep ``separation`` from each other and from the pending
    points, as a model's batch does (``points.may_take``): of ``START_CANDIDATES`` random draws
    (more when more points are asked), realised and new where the request says which are, the
    batch takes in the order drawn those that far from every point taken or pending, then, the
    space being exhausted at that distance, the rest that repeat none. So the first lab batch and
    the fallback are random but not clustered.

    Attributes:
        separation: on ``DesignSpace.coordinates`` (fractions, process scaled to [0, 1]); a
            campaign's ``learning.batch_separation``.
    """

    space: DesignSpace
    separation: float = MIN_SEPARATION

    def propose(self, request: PlanRequest) -> list[ProposedPoint]:
        rng = np.random.default_rng(request.seed)
        fid = request.allowed[0]
        space = self.space
        if space.pool is not None:
            frac, proc = space.pool
            pick = rng.permutation(len(frac))[:request.q]
            return [ProposedPoint(fid, c, p) for c, p in space.to_dicts(frac[pick], proc[pick])]
        frac, proc = space.candidates(max(request.q, START_CANDIDATES), rng)  # its anchors first
        if request.admissible is not None:
            frac, proc = admissible_rows(space, request.admissible, fid)(frac, proc)
        coords = space.coordinates(frac, proc)
        taken = space.coordinates(*space.from_dicts([(p.composition, p.process) for p in request.pending]))
        nearest = (np.linalg.norm(coords[:, None] - taken[None], axis=-1).min(1) if len(taken)
                   else np.full(len(coords), np.inf))
        chosen = np.zeros(len(coords), bool)
        picks: list[int] = []
        while len(picks) < request.q:
            may = may_take(nearest, chosen, self.separation)
            if not may.any():
                break
            if self.separation <= DUPLICATE_DISTANCE or nearest[may].min() < self.separation:
                # none is that far (nor ever will be: distances only shrink): the rest in the order
                # drawn, at once, since they are distinct already (random draws; realised rows are)
                picks += np.flatnonzero(may)[:request.q - len(picks)].tolist()
                break
            j = int(np.argmax(may))  # the first drawn of those it may take
            picks.append(j)
            chosen[j] = True
            nearest = np.minimum(nearest, np.linalg.norm(coords - coords[j], axis=1))
        return [ProposedPoint(fid, c, p) for c, p in space.to_dicts(frac[picks], proc[picks])]


@dataclass
class BoTorchOptimisation:
    """``acquire.propose`` on the fitted surrogate; with several fidelities each point gets the
    one with most information about the target per unit cost.

    Attributes:
        objectives, constraints: on the model's outputs (indices into ``outputs``).
        costs: cost of one evaluation per fidelity name (one common unit, e.g. core-hours).
        separation: smallest distance between two proposals, or a proposal and a pending point
            (``propose``'s ``min_separation``).
    """

    space: DesignSpace
    objectives: Sequence[Objective]
    constraints: Sequence[OutcomeConstraint]
    outputs: Sequence[str]
    costs: dict[str, float]
    separation: float = MIN_SEPARATION

    def propose(self, request: PlanRequest) -> list[ProposedPoint]:
        from dm_hpc.acquire.proposal import propose

        fitted = request.fitted
        fidelities = None
        allowed = [f for f in request.allowed if f in fitted.fidelities] or request.allowed
        if fitted.multi_fidelity:
            fidelities = [Fidelity(name, fitted.task_of(name), self.costs[name], target=(name == fitted.target))
                          for name in allowed]
        # with one fidelity the candidates can be realised before they are ranked; with several,
        # the fidelity is chosen after the point, so ``fresh_points`` checks the proposals instead
        snap = (None if len(allowed) > 1 or request.admissible is None
                else admissible_rows(self.space, request.admissible, allowed[0]))
        pending = [(p.composition, p.process) for p in request.pending]
        # the acquisition's Monte-Carlo samples come from torch's global generator: seed it here,
        # inside a fork, so the same request gives the same points and nobody else's stream moves
        with warnings.catch_warnings(), torch.random.fork_rng():
            warnings.simplefilter("ignore")
            torch.manual_seed(request.seed)
            # the pick on the decision model (warped objective values, ``learn.decision``), the
            # predictions that go with it from the reporting model
            return propose(fitted.decider, self.space, self.objectives, self.constraints, q=request.q,
                           predict_with=fitted.model,
                           pending=pending or None, fidelities=fidelities, outputs=list(self.outputs),
                           X_baseline=fitted.train_X, seed=request.seed, snap=snap, fidelity=allowed[0],
                           min_separation=self.separation)


@dataclass
class LabSeeding:
    """A first batch at a fidelity with no record yet (the lab before any measurement, a second
    calculation method): the best-predicted points of ``inner`` under the ``calculation``
    fidelity's model (a single-fidelity model cannot weigh ``lab`` yet; its answers seed the
    multi-task one)."""

    inner: Planner
    lab: str
    calculation: str

    def propose(self, request: PlanRequest) -> list[ProposedPoint]:
        admissible = request.admissible
        # candidates are judged as what the lab would make (new for the lab), ranked by the model
        # of the calculation fidelity
        as_lab = None if admissible is None else (
            lambda p: None if (real := admissible(p.at(self.lab))) is None else real.at(self.calculation))
        asked = PlanRequest(request.q, request.fitted, request.pending, [self.calculation], request.seed, as_lab)
        return [p.at(self.lab) for p in self.inner.propose(asked)]


@dataclass
class PlanOutcome:
    """New realised points, and why fewer than asked were found (None: all found)."""

    points: list[ProposedPoint]
    shortfall: str | None = None
    rejected: int = 0


Realise = Callable[[ProposedPoint], "ProposedPoint | None"]


def fresh_points(
    planner: Planner,
    request: PlanRequest,
    realise: Realise,
    seen: dict[str, set[PointKey]],
    fallback: Planner | None = None,
    rounds: int = PLAN_ROUNDS,
) -> PlanOutcome:
    """Up to ``request.q`` realised points that are new for their fidelity.

    Each proposal is realised (``realise``: None when it cannot be made at all) and kept only if
    its key is not in ``seen[fidelity]``; kept points join the pending set of the next round, so
    the planner moves on. After ``rounds`` rounds, ``fallback`` (random points, many candidates)
    fills what is missing. ``seen`` is not modified.
    """
    seen = {f: set(keys) for f, keys in seen.items()}
    out: list[ProposedPoint] = []
    pending = list(request.pending)
    rejected = unmade = 0

    def admissible(p: ProposedPoint) -> ProposedPoint | None:
        real = realise(p)
        return None if real is None or real.key in seen.get(real.fidelity, ()) else real

    for r in range(rounds + (fallback is not None)):
        need = request.q - len(out)
        if need <= 0:
            break
        source, q = planner, need
        if r == rounds:
            source, q = fallback, FALLBACK_CANDIDATES  # exhausted if none of these is new
        proposals = source.propose(PlanRequest(q, request.fitted, pending, request.allowed,
                                               int(np.random.default_rng([request.seed, r]).integers(2**31)),
                                               admissible))
        for p in proposals:
            real = realise(p)
            if real is None or real.key in seen.setdefault(real.fidelity, set()):
                rejected += 1
                unmade += real is None
                if real is not None:
                    pending.append(real)
                continue
            seen[real.fidelity].add(real.key)
            pending.append(real)
            out.append(real)
            if len(out) == request.q:
                break
    shortfall = None
    if len(out) < request.q:
        # proposals no fidelity can make are named apart: "the space is exhausted" read as the end
        # of a campaign whose first plan found nothing its cells or the lab's step could make
        unmade_why = (f"; {unmade} could not be made as proposed (a cell or the lab's step would drop an element "
                      f"the space requires, fall below its min_elements or leave its bounds, or what is made would break a "
                      f"constraint its composition decides, such as a cost cap)" if unmade else "")
        found = f"only {len(out)} of {request.q} new points found" if out else "no new point found"
        shortfall = (f"{found}: {rejected - unmade} proposals realised to points already stored, "
                     f"in flight, queued or sent to the lab (the space is exhausted at this precision){unmade_why}")
        if not rejected:  # the planners filtered their candidates (``admissible``): none was left to propose
            shortfall = (f"{found}: no candidate drawn can be made as proposed and is new (a cell or the "
                         "lab's step would drop an element the space requires, fall below its min_elements or leave "
                         "its bounds, what is made would break a constraint its composition decides, such as a cost "
                         "cap, or the point is already stored, in flight, queued or sent to the lab)")
    return PlanOutcome(out, shortfall, rejected)
