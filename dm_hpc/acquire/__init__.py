"""Acquisition: what to compute or measure next, and inverse design (stage 2 of the plan).

Public interface (stable; other concerns call these):

- ``DesignSpace(elements={El: (lo, hi)}, max_elements=None, excluded=(), process={name: (lo, hi)},
  pool=None, descriptors=True)``; ``DesignSpace.from_pool(compositions, process=None, ...)`` for a
  discrete candidate set. Random feasible sampling plus local refinement; never a Cartesian grid.
- ``propose(model, space, objectives, constraints=(), q=1, pending=None, fidelities=None,
  outputs=None, ...) -> list[ProposedPoint]``: qUCB or qLogNEI (one objective; qLogNEI whenever there are
  outcome constraints) / qLogNEHVI (several), outcome
  constraints, pending points as ``X_pending``, and per proposal a fidelity chosen by information
  gain about the target per unit cost (``Fidelity(name, task, cost, target)``); on a continuous
  space no two proposals, nor a proposal and a pending point, closer than ``min_separation``
  (default ``points.MIN_SEPARATION``, on ``DesignSpace.coordinates``) while the space has room.
- ``Objective(output, maximize, name, exact)``, ``OutcomeConstraint(output, op, value, name, exact)``;
  ``exact`` (``features -> values``, e.g. an ``inverse.ExactProperty`` of a raw-material cost):
  the output is computed, not taken from the model (a rule then filters the candidates).
- ``parse_target("bulk_modulus>=150 GPa") -> Target`` (canonical units via
  ``dm_hpc.data.vocabulary``); ``inverse_design(model_or_{property: model}, space, targets, n)
  -> list[Candidate]`` ranked by the probability of meeting all targets.
- ``select_from_pool(model, X_baseline, X_cand, objectives, q)``: indices into a feature pool.
- Planners (``planner.py``, protocol ``propose(PlanRequest) -> list[ProposedPoint]``), among them
  ``RandomStart(space, separation)`` (before any model, and the fallback: random points as far apart
  as a model's batch, ``points.may_take``) and ``GapFilling(space, outputs, costs)``: calculations
  where the data is thinnest.

Depends on ``dm_hpc.learn`` (features) and ``dm_hpc.data`` (units).
"""
from __future__ import annotations

from dm_hpc._lazy import lazy_exports

#: Public name -> the module that defines it. Imported on first use (PEP 562): importing
#: the package must stay cheap, because small commands (``dm-hpc status``) touch it.
_WHERE = {
    "Objective": "dm_hpc.acquire.acquisition",
    "OutcomeConstraint": "dm_hpc.acquire.acquisition",
    "build_acquisition": "dm_hpc.acquire.acquisition",
    "greedy_select": "dm_hpc.acquire.acquisition",
    "Fidelity": "dm_hpc.acquire.fidelity",
    "choose_fidelity": "dm_hpc.acquire.fidelity",
    "information_gain": "dm_hpc.acquire.fidelity",
    "GapFilling": "dm_hpc.acquire.gaps",
    "Candidate": "dm_hpc.acquire.inverse",
    "Target": "dm_hpc.acquire.inverse",
    "TargetError": "dm_hpc.acquire.inverse",
    "inverse_design": "dm_hpc.acquire.inverse",
    "parse_target": "dm_hpc.acquire.inverse",
    "ProposedPoint": "dm_hpc.acquire.points",
    "select_from_pool": "dm_hpc.acquire.pool",
    "propose": "dm_hpc.acquire.proposal",
    "training_inputs": "dm_hpc.acquire.proposal",
    "DesignSpace": "dm_hpc.acquire.space",
    "DesignSpaceError": "dm_hpc.acquire.space",
}

__all__ = [
    "Candidate",
    "DesignSpace",
    "DesignSpaceError",
    "Fidelity",
    "GapFilling",
    "Objective",
    "OutcomeConstraint",
    "ProposedPoint",
    "Target",
    "TargetError",
    "build_acquisition",
    "choose_fidelity",
    "greedy_select",
    "information_gain",
    "inverse_design",
    "parse_target",
    "propose",
    "select_from_pool",
    "training_inputs",
]


__getattr__, __dir__ = lazy_exports(globals(), _WHERE, __all__)
