"""Is the surrogate's uncertainty to be trusted? 90 %-interval coverage of cross-validated predictions.

The acquisition functions weigh a point's predicted mean against its predicted standard
deviation, so a surrogate whose intervals are too narrow or too wide steers the campaign
wrongly even when its mean is good (a fine parity plot). The report therefore states, per
property, the share of cross-validated outcomes inside ``mean +- 1.645 std`` (the same
definition as ``dm-hpc train``'s held-out figure, ``learn.intervals.interval_coverage``) and flags
a coverage outside ``COVERAGE_RANGE`` as "coverage far off". The report's cross-validation has
tens to a few hundred points, and with 10 points well-calibrated intervals cover all of them one
time in three; so a coverage outside the range is flagged only where a two-sided binomial test
also rejects the nominal 90 % (p < ``SIGNIFICANCE``); otherwise the table says the points are too
few to tell.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Coverage of nominal 90 % intervals accepted as calibrated (outside: "coverage far off").
COVERAGE_RANGE = (0.80, 0.97)
#: Outside the range, the binomial test's p-value below which the miss is not put down to chance.
SIGNIFICANCE = 0.05

_TOO_NARROW = ("intervals too narrow: the surrogate is over-confident, so the acquisition "
               "under-explores (it trusts predictions where it should still measure) and a "
               "stopping rule on the chance of improvement may stop too early")
_TOO_WIDE = ("intervals too wide: the surrogate is under-confident, so the acquisition "
             "over-explores (it spends evaluations on uncertainty that is not there) and "
             "stopping comes late")


@dataclass(frozen=True)
class PropertyCalibration:
    """Cross-validated 90 %-interval coverage (0-1) of one property on ``n`` points, and the
    two-sided binomial test's p-value of that coverage under the nominal 90 % (NaN: no points)."""

    property: str
    coverage90: float
    n: int
    p_value: float = float("nan")

    @property
    def outside(self) -> bool:
        lo, hi = COVERAGE_RANGE
        return not math.isnan(self.coverage90) and not lo <= self.coverage90 <= hi

    @property
    def far_off(self) -> bool:
        return self.outside and self.p_value < SIGNIFICANCE

    @property
    def verdict(self) -> str:
        if math.isnan(self.coverage90):
            return "-"
        if self.far_off:
            return "coverage far off"
        return f"outside the range, but {self.n} points are too few to tell" if self.outside else "ok"

    @property
    def meaning(self) -> str:
        """Empty when calibrated; else what the miss means for the acquisition."""
        if not self.far_off:
            return ""
        return _TOO_NARROW if self.coverage90 < COVERAGE_RANGE[0] else _TOO_WIDE


def binomial_p_value(k: int, n: int, p: float) -> float:
    """Two-sided exact binomial test of ``k`` successes in ``n`` trials of probability ``p``:
    the probability of every outcome no likelier than ``k`` (``scipy.stats.binomtest``'s
    p-value, whose import costs a report most of a second of CPU: 0.8 s measured)."""
    def log_pmf(i: int) -> float:
        return (math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                + (i * math.log(p) if i else 0.0) + ((n - i) * math.log1p(-p) if n - i else 0.0))

    threshold = log_pmf(k) + math.log1p(1e-7)  # scipy's relative tolerance for ties
    return min(1.0, sum(math.exp(lp) for lp in map(log_pmf, range(n + 1)) if lp <= threshold))


def calibration(properties: list[str], y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> list[PropertyCalibration]:
    """Coverage per property of predictions ``mean``, ``std`` (``n x m``) of outcomes ``y`` (``n x m``).

    ``std`` must be the predictive standard deviation of a new observation (noise included),
    as the outcomes are observations.
    """
    from dm_hpc.learn.intervals import interval_coverage  # no torch: the predictions may be kept ones

    cov = interval_coverage(y, mean, std)
    counts = (~(np.isnan(y) | np.isnan(mean) | np.isnan(std))).sum(0)
    out = []
    for p, c, n in zip(properties, cov, counts):
        pv = binomial_p_value(int(round(c * n)), int(n), 0.9) if n else float("nan")
        out.append(PropertyCalibration(p, float(c), int(n), float(pv)))
    return out


#: Cross-validated R² below this: the model predicts worse than the mean of the data would.
POOR_R2 = 0.0
_POOR = ("poor: R² < 0, the model predicts worse than the mean of the data; its suggestions are "
         "little better than random until more (or more varied) records arrive")


def quality_verdict(cal: PropertyCalibration, r2: float = float("nan")) -> str:
    """One verdict on a property's model from both its cross-validated R² (the mean) and its
    interval coverage (the uncertainty): a good coverage never hides a poor mean."""
    if math.isnan(cal.coverage90) and math.isnan(r2):
        return "-"
    poor = not math.isnan(r2) and r2 < POOR_R2
    if poor and cal.far_off:
        return "poor (R² < 0) and coverage far off"
    if poor:
        return "poor (R² < 0)"
    return cal.verdict


def calibration_lines(cals: list[PropertyCalibration], r2: dict[str, float] | None = None) -> list[str]:
    """The report's markdown section: model quality per property (cross-validated R² of the
    objectives, 90 %-interval coverage) and, for each flagged property, a sentence."""
    lo, hi = COVERAGE_RANGE
    r2 = r2 or {}
    md = ["## Surrogate quality", "",
          f"Cross-validated R² (objectives; below 0: poor) and the share of cross-validated outcomes "
          f"inside the predicted 90 % interval (calibrated: {lo:.0%}-{hi:.0%}; flagged outside it when "
          f"a binomial test rejects 90 % at p < {SIGNIFICANCE}).", "",
          "| property | R² (CV) | 90 % interval coverage (CV) | points | verdict |", "|---|---:|---:|---:|---|"]
    for c in cals:
        share = "-" if math.isnan(c.coverage90) else f"{c.coverage90:.0%}"
        score = r2.get(c.property, float("nan"))
        md.append(f"| {c.property} | {'-' if math.isnan(score) else f'{score:.2f}'} | {share} | {c.n} | "
                  f"{quality_verdict(c, score)} |")
    md.append("")
    flagged = [f"- **{c.property}: {_POOR}.**" for c in cals if r2.get(c.property, 0.0) < POOR_R2]
    flagged += [f"- **{c.property}: coverage far off** ({c.coverage90:.0%}): {c.meaning}." for c in cals if c.far_off]
    return md + flagged + ([""] if flagged else [])


__all__ = ["COVERAGE_RANGE", "POOR_R2", "SIGNIFICANCE", "PropertyCalibration", "calibration", "calibration_lines",
           "quality_verdict"]
