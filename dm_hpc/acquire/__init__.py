"""Acquisition: what to compute or measure next, and inverse design (stage 2 of the plan).

Public interface (stable; other concerns call these):

- ``DesignSpace(elements={El: (lo, hi)}, max_elements=None, excluded=(), process={name: (lo, hi)},
  pool=None, descriptors=True)``; ``DesignSpace.from_pool(compositions, process=None, ...)`` for a
  discrete candidate set. Random feasible sampling plus local refinement; never a Cartesian grid.
- ``propose(model, space, objectives, constraints=(), q=1, pending=None, fidelities=None,
  outputs=None, ...) -> list[ProposedPoint]``: qUCB or qLogNEI (one objective; qLogNEI whenever there are
  outcome constraints) / qLogNEHVI (several), outcome
  constraints, pending points as ``X_pending``, and per proposal a fidelity chosen by information
  gain about the target per unit cost (``Fidelity(name, task, cost, target)``).
- ``Objective(output, maximize, name)``, ``OutcomeConstraint(output, op, value, name)``.
- ``parse_target("bulk_modulus>=150 GPa") -> Target`` (canonical units via
  ``dm_hpc.data.vocabulary``); ``inverse_design(model_or_{property: model}, space, targets, n)
  -> list[Candidate]`` ranked by the probability of meeting all targets.
- ``select_from_pool(model, X_baseline, X_cand, objectives, q)``: indices into a feature pool.
- Planners (``planner.py``, protocol ``propose(PlanRequest) -> list[ProposedPoint]``), among them
  ``GapFilling(space, outputs, costs)``: calculations where the data is thinnest.

Depends on ``dm_hpc.learn`` (features) and ``dm_hpc.data`` (units).
"""
from dm_hpc.acquire.acquisition import Objective, OutcomeConstraint, build_acquisition, greedy_select
from dm_hpc.acquire.fidelity import Fidelity, choose_fidelity, information_gain
from dm_hpc.acquire.gaps import GapFilling
from dm_hpc.acquire.inverse import Candidate, Target, TargetError, inverse_design, parse_target
from dm_hpc.acquire.pool import select_from_pool
from dm_hpc.acquire.points import ProposedPoint
from dm_hpc.acquire.propose import propose, training_inputs
from dm_hpc.acquire.space import DesignSpace, DesignSpaceError

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
