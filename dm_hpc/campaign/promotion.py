"""Guarded promotion: a retrained model becomes current only when it is no worse than the current one.

A retraining (the nightly job, ``dm-hpc train``) always registers its version; it becomes
``CURRENT`` only when, on the held-out records of the new snapshot, its RMSE (every output)
and its 90 %-interval miscalibration ``|coverage - 0.90|`` are no worse than the current
version's beyond noise. Otherwise it stays registered as a *candidate* that a person may
``dm-hpc models --promote`` after looking at it.

Why the comparison is fair: held-out records are chosen by the hash of their id
(``registry.TEST_PERCENT``), a split that does not move as data arrives, so the current version
never trained on any record of the new snapshot's held-out set; both models are measured on the
same points. "Noise" is a paired bootstrap of the differences over those points
(``dm_hpc.learn.quality.compare_held_out``): worse beyond noise means the whole 90 % interval of
candidate minus current lies above zero.

When there is too little to compare (fewer than ``MIN_PAIRED`` held-out points, or a current
version that cannot be rebuilt): the same kind of model on more data is promoted (nothing says
it is worse, and it has seen more); a different kind is not — a change of kind needs evidence.

Outputs are lined up by property name (the current version's ``meta["properties"]``), not by
position: a campaign whose properties changed since compares each property with the same one.
A current version that lacks a property the campaign now needs is a change of outputs: it cannot
answer for the campaign, so the new version is promoted, and the reason says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Fewest held-out points on which a paired comparison is made at all.
MIN_PAIRED = 5


@dataclass(frozen=True)
class Decision:
    """Whether a new version becomes current, and the sentence that says why."""

    promote: bool
    reason: str
    compared_with: str | None = None
    comparison: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"promoted": self.promote, "reason": self.reason, "compared_with": self.compared_with,
                "comparison": self.comparison}


def _kinds(kind: str, current_kind: str | None) -> str:
    if current_kind is None:  # its meta.json gone or damaged
        return f"{kind} (the current version's kind is unknown)"
    return kind if kind == current_kind else f"{kind} (a change of kind from the current {current_kind})"


def decide(candidate, kind: str, current, X, Y, properties: list[str], seed: int = 0,
           current_properties: list[str] | None = None, X_current=None) -> Decision:
    """The promotion of a ``kind`` ``candidate`` model over ``current`` on held-out ``n x d`` X, ``n x m`` Y.

    Args:
        current: ``(version, kind, model)`` of the current version; None when there is none,
            ``model`` None when it cannot be rebuilt.
        properties: the candidate's outputs (Y's columns), in order.
        current_properties: the current version's outputs, in order (default: ``properties``).
        X_current: the held-out points as the current version's features (its process ranges;
            default X).
    """
    from dm_hpc.learn.quality import compare_held_out

    if current is None:
        return Decision(True, "the first version: nothing to compare with")
    version, current_kind, model = current
    what = _kinds(kind, current_kind)
    outputs = list(properties) if current_properties is None else list(current_properties)
    lacking = [p for p in properties if p not in outputs]
    if lacking:
        return Decision(True, f"a change of outputs: current {version} predicts {', '.join(outputs) or 'nothing'}, "
                              f"not {', '.join(lacking)}, which the campaign now needs; the new {what}, which does, "
                              "is promoted without a comparison", version)
    if model is None or len(Y) < MIN_PAIRED:
        why = (f"current {version} cannot be rebuilt" if model is None
               else f"only {len(Y)} held-out records (a comparison needs {MIN_PAIRED})")
        if kind == current_kind:
            return Decision(True, f"{why}; the same kind ({kind}), retrained on the store as it is now, is promoted", version)
        return Decision(False, f"{why}: the new {what} is not promoted without evidence that it is no worse", version)
    c = compare_held_out(candidate, model, X, Y, seed=seed, X_current=X_current,
                         current_columns=[outputs.index(p) for p in properties])
    if c.n < MIN_PAIRED:
        return Decision(kind == current_kind, f"only {c.n} usable held-out records against {version}", version,
                        c.as_dict())
    from dm_hpc.data import with_unit

    figures = "; ".join(
        f"RMSE {p} {with_unit(p, a)} vs {with_unit(p, b)} (difference 90 % interval "
        f"[{with_unit(p, lo, '+.3g')}, {with_unit(p, hi, '+.3g')}])"
        for p, a, b, (lo, hi) in zip(properties, c.rmse_candidate, c.rmse_current, c.rmse_interval))
    coverage = (f"90 %-interval coverage {c.coverage_candidate:.0%} vs {c.coverage_current:.0%} "
                f"(|coverage - 90 %| difference interval [{c.miscalibration_interval[0]:+.3g}, "
                f"{c.miscalibration_interval[1]:+.3g}])")
    worse = [f"RMSE of {properties[j]}" for j in c.worse_rmse()]
    if c.worse_coverage():
        worse.append("interval coverage")
    on = f"on the same {c.n} held-out records (paired bootstrap): {figures}; {coverage}"
    if worse:
        return Decision(False, f"{what} is worse than current {version} beyond noise in {' and '.join(worse)} "
                               f"{on}", version, c.as_dict())
    return Decision(True, f"{what} is no worse than current {version} beyond noise {on}", version, c.as_dict())
