"""Selection from a discrete candidate pool (the pool-benchmark path and ``DesignSpace`` pools)."""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from dm_hpc.acquire.acquisition import Objective, OutcomeConstraint, build_acquisition, greedy_select, rules_met


def select_from_pool(
    model,
    X_baseline: Tensor,
    X_cand: Tensor,
    objectives: Sequence[Objective],
    q: int = 1,
    constraints: Sequence[OutcomeConstraint] = (),
    X_pending: Tensor | None = None,
    kind: str | None = None,
) -> list[int]:
    """Indices (into ``X_cand``, ``n x d``) of a batch of ``q`` candidates chosen greedily by
    qLogNEI / qLogNEHVI, taking ``X_pending`` (``p x d``) as running; a candidate that breaks an
    exact constraint (``OutcomeConstraint.exact``) is never chosen."""
    acq = build_acquisition(model, X_baseline, objectives, constraints, X_pending=X_pending, kind=kind)
    met = rules_met(X_cand, constraints)
    idx, _, _ = greedy_select(acq, X_cand, q, X_pending=X_pending, exclude=None if met is None else ~met)
    return idx
