"""Stopping rules: pure functions of the journal state (Ax's global stopping, kept apart from
the loop). The manager asks ``stop_reason`` every tick; ``dm-hpc status`` and the report ask
``stopped_fidelities`` for the circuit breaker; tests call them on hand-made states.
"""
from __future__ import annotations

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.spec import CampaignSpec, Goal


#: the failure kind of a task cancelled from outside (``runners.states.JobState.CANCELLED``)
CANCELLED = "CANCELLED"
#: the stop reasons judged on the records' values (every record the campaign learns from)
TARGETS_MET = "objective targets met"
NO_IMPROVEMENT = "no improvement in {rounds} refits"
#: what a reader who does not read every record is told of such a stop it cannot see for itself
WITHHELD_STOP = ("stopped by a stopping rule on objective values (which one is not said at your clearance: "
                 "it was judged on records you may not read)")

def budget_reason(c: CampaignSpec, state: jn.State, now: float, lab_waiting: int = 0) -> str | None:
    """Which budget is used up (None: none). ``lab_waiting``: lab suggestions not yet journalled."""
    b = c.budget
    if b.calculations is not None and len(state.tasks) >= b.calculations:
        return f"calculation budget reached ({len(state.tasks)})"
    if b.core_hours is not None and state.core_hours >= b.core_hours:
        return f"core-hour budget reached ({state.core_hours:.3f})"
    if b.wall_time is not None and state.started_at is not None and now - state.started_at >= b.wall_time:
        return (f"wall-time budget reached: {now - state.started_at:.0f} s since the first start, limit "
                f"{b.wall_time:.0f} s (raise budget.wall_time to go on)")
    if not c.calculations and b.lab_experiments is not None and len(state.lab) + lab_waiting >= b.lab_experiments:
        return f"lab budget reached ({len(state.lab) + lab_waiting} experiments)"
    return None


def wall_time_left(c: CampaignSpec, state: jn.State, now: float) -> float | None:
    """Seconds of ``budget.wall_time`` left (None: no wall-time budget, or not started)."""
    if c.budget.wall_time is None or state.started_at is None:
        return None
    return c.budget.wall_time - (now - state.started_at)


def lab_budget_left(c: CampaignSpec, state: jn.State, lab_waiting: int = 0) -> int | None:
    """Lab experiments that may still be suggested (None: no lab cap)."""
    cap = c.budget.lab_experiments
    return None if cap is None else max(0, cap - len(state.lab) - lab_waiting)


def targets_met(c: CampaignSpec, best: dict[str, float]) -> bool:
    """Every objective with a target has reached it (and the rule is on)."""
    objs = [o for o in c.objectives if o.target is not None]
    if not objs or not c.stopping.targets_met:
        return False
    for o in objs:
        v, t = best.get(o.property), o.canonical_target
        if v is None or (o.goal == Goal.max and v < t) or (o.goal == Goal.min and v > t):
            return False
    return True


def no_improvement(c: CampaignSpec, state: jn.State) -> bool:
    """The first objective's best value did not improve over the last ``no_improvement_rounds``
    refits (``state.best`` holds the best value at each journalled refit)."""
    k = c.stopping.no_improvement_rounds
    o = c.objectives[0]
    best = state.best
    if c.constraints and any(b.get("constrained") for b in best):
        # a best over every record (journalled before the constraints applied) may be out of
        # limits: one such value would be unbeatable and stop a resumed campaign for nothing
        best = [b for b in best if b.get("constrained")]
    values = [b[o.property] for b in best if b.get(o.property) is not None]
    if k is None or len(values) <= k:
        return False
    better = max if o.goal == Goal.max else min
    return better(values[-k:] + [better(values[:-k])]) == better(values[:-k])


def stopped_fidelities(c: CampaignSpec, state: jn.State) -> dict[str, str]:
    """Circuit breaker: fidelities whose last ``max_consecutive_failures`` finished tasks all
    failed with the same kind of failure -> why (the budget would only burn on the same error).
    A task cancelled (an admin's ``scancel``, ``dm-hpc runners cancel``) says nothing about the
    method and is not counted: one cancel of a job array stopped a campaign for good."""
    limit = c.stopping.max_consecutive_failures
    out = {}
    for fid in c.calculations:
        ended = sorted((t for t in state.tasks.values() if t.fidelity == fid.name and t.ended_at is not None
                        and not (t.status == jn.FAILED and t.failure_kind == CANCELLED)), key=lambda t: t.ended_at)
        tail = ended[-limit:]
        if len(tail) == limit and all(t.status == jn.FAILED for t in tail):
            kinds = {t.failure_kind for t in tail}
            if len(kinds) == 1:
                out[fid.name] = (f"circuit breaker: fidelity {fid.name!r} stopped after {limit} consecutive "
                                 f"failures of kind {kinds.pop()} (last: {tail[-1].error})")
    return out


def stop_reason(c: CampaignSpec, state: jn.State, now: float, best: dict[str, float],
                lab_waiting: int = 0) -> str | None:
    """The first rule that says stop, in order: budgets, every calculation stopped by the circuit
    breaker, targets met, no improvement (None: go on)."""
    reason = budget_reason(c, state, now, lab_waiting)
    if reason:
        return reason
    broken = stopped_fidelities(c, state)
    if c.calculations and len(broken) == len(c.calculations):
        return "; ".join(broken.values())
    if targets_met(c, best):
        return TARGETS_MET
    if no_improvement(c, state):
        return NO_IMPROVEMENT.format(rounds=c.stopping.no_improvement_rounds)
    return None


def phase_for_reader(c: CampaignSpec, state: jn.State, best: dict[str, float] | None) -> str:
    """``state.phase`` as a reader may read it. ``best``: the best value per objective over the
    records the reader reads (``dataset.best_rows``, canonical units), None for a reader of every
    record (the phase as it is). A stop judged on values over every record (targets met, no
    improvement) would tell a reader of a scoped view about a record withheld from them (that
    the embargoed measurement met the target): it is said only when their own records show it
    (targets met by what they read), else ``WITHHELD_STOP``. Other reasons (budgets, the circuit
    breaker, a request) count work, not records, and are said as they are."""
    phase = state.phase
    judged = phase == TARGETS_MET or phase.startswith(NO_IMPROVEMENT.split("{")[0])
    if best is None or not judged or (phase == TARGETS_MET and targets_met(c, best)):
        return phase
    return WITHHELD_STOP
