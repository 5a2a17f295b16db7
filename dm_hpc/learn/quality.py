"""Held-out quality of any surrogate: RMSE and the coverage of its 90 % predictive intervals.

One definition used by the registry, ``dm-hpc train``, the calibration benchmark and the
latency table, so that "coverage" means the same everywhere: the share of held-out outcomes
inside ``mean +- 1.645 * std`` of the posterior *with observation noise* (a new measurement,
not the latent function), pooled over outputs. Where the truth is known (synthetic benchmarks),
``latent`` gives the intervals of the noise-free property that the acquisitions use.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from dm_hpc.learn.intervals import Z90, interval_coverage  # re-exported: the one definition


@dataclass(frozen=True)
class HeldOutQuality:
    """RMSE per output (outcome units) and 90 %-interval coverage (0-1) on ``n`` held-out points."""

    rmse: list[float]
    coverage90: float
    n: int

    def as_dict(self) -> dict:
        return {"rmse": [round(r, 6) for r in self.rmse], "coverage90": round(self.coverage90, 4), "n": self.n}


def _moments(model, X: Tensor, chunk: int, observation_noise: bool) -> tuple[Tensor, Tensor]:
    from dm_hpc.learn.moments import moments

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mean, var = moments(model, X, chunk, observation_noise=observation_noise)
    n = len(X)
    return mean.reshape(n, -1), var.sqrt().reshape(n, -1)


def predictive(model, X: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of a new observation, ``n x m`` each, at ``n x d`` X."""
    return _moments(model, X, chunk, observation_noise=True)


def latent(model, X: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of the noise-free property, ``n x m`` each, at ``n x d`` X: the
    posterior the acquisitions rank by. Its intervals are judged against a known truth (synthetic
    data), never against noisy outcomes."""
    return _moments(model, X, chunk, observation_noise=False)


def against_truth(model, X: Tensor, truth: Tensor, Y: Tensor) -> dict[str, float]:
    """Quality on synthetic test points whose noise-free values are known (pooled over outputs).

    Args:
        X: ``n x d`` inputs; truth: ``n x m`` noise-free values; Y: ``n x m`` noisy outcomes there.

    Returns:
        ``rmse_truth`` (latent mean against the truth, outcome units), ``latent_coverage`` (share of
        the truth inside the latent 90 % intervals, what the acquisitions rank by) and
        ``predictive_coverage`` (share of ``Y`` inside the predictive 90 % intervals), 0-1.
    """
    truth = torch.as_tensor(truth, dtype=torch.double).reshape(len(X), -1)
    Y = torch.as_tensor(Y, dtype=torch.double).reshape(len(X), -1)
    mu, sd = latent(model, X)
    mu_y, sd_y = predictive(model, X)
    return {"rmse_truth": ((mu - truth) ** 2).mean().sqrt().item(),
            "latent_coverage": interval_coverage(truth, mu, sd).mean().item(),
            "predictive_coverage": interval_coverage(Y, mu_y, sd_y).mean().item()}


def held_out_quality(model, X: Tensor, Y: Tensor) -> HeldOutQuality:
    """RMSE and 90 %-interval coverage of ``model`` on held-out ``n x d`` X, ``n x m`` Y."""
    Y = torch.as_tensor(Y, dtype=torch.double)
    Y = Y.unsqueeze(-1) if Y.dim() == 1 else Y
    if len(Y) == 0:
        return HeldOutQuality([float("nan")] * Y.shape[-1], float("nan"), 0)
    mu, sd = predictive(model, X)
    # a missing outcome (NaN: not measured) is left out of its output's figures alone
    rmse = ((mu - Y) ** 2).nanmean(0).sqrt().tolist()
    have = ~torch.isnan(Y)
    inside = interval_coverage(Y, mu, sd)
    inside = float((torch.as_tensor(inside) * have.sum(0)).nansum() / have.sum()) if bool(have.any()) else float("nan")
    return HeldOutQuality(rmse, inside, len(Y))


#: Nominal level of the predictive intervals whose coverage is compared.
NOMINAL = 0.90


#: Relative RMSE difference below which two models are the same model (floating-point rounding
#: of one fit, far below any difference a person would act on).
RMSE_RESOLUTION = 1e-9


@dataclass(frozen=True)
class PairedComparison:
    """Candidate against current model on the same ``n`` held-out points.

    ``rmse_*`` per output (outcome units), ``coverage_*`` pooled (0-1). ``*_interval`` are
    ``(low, high)`` 90 % paired-bootstrap intervals of candidate minus current: of the RMSE per
    output, and of the miscalibration ``|coverage - 0.90|`` (positive: the candidate is worse).
    """

    n: int
    rmse_candidate: list[float]
    rmse_current: list[float]
    coverage_candidate: float
    coverage_current: float
    rmse_interval: list[tuple[float, float]]
    miscalibration_interval: tuple[float, float]

    def worse_rmse(self) -> list[int]:
        """Outputs whose RMSE is worse beyond noise: the whole interval above zero by more than
        ``RMSE_RESOLUTION`` of the current RMSE. A model refitted on the same records differs from
        the current one by rounding alone, and a bootstrap of differences that are all rounding
        (1e-15 g/cm^3) lies wholly on one side of zero: that was read as worse."""
        return [j for j, (low, _) in enumerate(self.rmse_interval)
                if low > RMSE_RESOLUTION * abs(self.rmse_current[j])]

    def worse_coverage(self) -> bool:
        """Whether the candidate's coverage is further from 90 % beyond noise."""
        return self.miscalibration_interval[0] > 0

    def as_dict(self) -> dict:
        r = lambda v: round(float(v), 6)  # noqa: E731
        return {"n": self.n, "rmse_candidate": [r(v) for v in self.rmse_candidate],
                "rmse_current": [r(v) for v in self.rmse_current],
                "coverage_candidate": r(self.coverage_candidate), "coverage_current": r(self.coverage_current),
                "rmse_interval": [[r(a), r(b)] for a, b in self.rmse_interval],
                "miscalibration_interval": [r(v) for v in self.miscalibration_interval]}


def compare_held_out(candidate, current, X: Tensor, Y: Tensor, draws: int = 2000, seed: int = 0,
                     X_current: Tensor | None = None, current_columns: list[int] | None = None) -> PairedComparison:
    """Paired comparison of two models on the same held-out ``n x d`` X, ``n x m`` Y.

    ``X_current``: the same points as the current model's features (``n x d'``), where it scales
    them otherwise (a version trained on other process ranges; default X). ``current_columns``: which
    of the current model's outputs are Y's ``m`` columns, in order (a version whose outputs are in
    another order, or more; default: the first ``m``, in order).

    "Beyond noise" is decided by a paired bootstrap over the held-out points: ``draws``
    resamples of the ``n`` points (the same resample for both models, so what the two share —
    which points are hard — cancels), each giving candidate-minus-current differences of RMSE
    per output and of ``|coverage - 0.90|``; the 5th and 95th percentiles are the 90 % interval.
    A difference is beyond noise when its whole interval lies above zero (a one-sided test at
    about 5 %). Points where either model is NaN are left out; a missing outcome (NaN: a record
    that lacks the property) is left out of its output's figures alone, as ``held_out_quality``
    does (``n``: the points holding any).
    """
    import numpy as np

    Y = torch.as_tensor(Y, dtype=torch.double)
    Y = Y.unsqueeze(-1) if Y.dim() == 1 else Y
    (mu_a, sd_a), (mu_b, sd_b) = predictive(candidate, X), predictive(current, X if X_current is None else X_current)
    if current_columns is not None:
        mu_b, sd_b = mu_b[:, current_columns], sd_b[:, current_columns]
    ok = ~(mu_a.isnan() | mu_b.isnan() | sd_a.isnan() | sd_b.isnan()).any(-1) & ~Y.isnan().all(-1)
    Y, mu_a, sd_a, mu_b, sd_b = (t[ok].numpy() for t in (Y, mu_a, sd_a, mu_b, sd_b))
    have = ~np.isnan(Y)
    sq_a, sq_b = (mu_a - Y) ** 2, (mu_b - Y) ** 2  # n x m, NaN where the outcome is missing
    with np.errstate(invalid="ignore"):
        in_a = np.where(have, np.abs(Y - mu_a) <= Z90 * sd_a, np.nan)
        in_b = np.where(have, np.abs(Y - mu_b) <= Z90 * sd_b, np.nan)
    n, m = Y.shape
    if n == 0:
        nan = float("nan")
        return PairedComparison(0, [nan] * m, [nan] * m, nan, nan, [(nan, nan)] * m, (nan, nan))
    in_a, in_b = np.nanmean(in_a, -1), np.nanmean(in_b, -1)  # n: share of a point's outputs inside
    idx = np.random.default_rng(seed).integers(0, n, size=(draws, n))
    with warnings.catch_warnings():  # a resample without any value of an output: NaN, left out
        warnings.simplefilter("ignore", RuntimeWarning)
        d_rmse = np.sqrt(np.nanmean(sq_a[idx], 1)) - np.sqrt(np.nanmean(sq_b[idx], 1))  # draws x m
        d_cal = np.abs(in_a[idx].mean(1) - NOMINAL) - np.abs(in_b[idx].mean(1) - NOMINAL)
        lo, hi = np.nanpercentile(d_rmse, [5, 95], axis=0)
        rmse_a, rmse_b = np.sqrt(np.nanmean(sq_a, 0)), np.sqrt(np.nanmean(sq_b, 0))
    return PairedComparison(n, rmse_a.tolist(), rmse_b.tolist(),
                            float(in_a.mean()), float(in_b.mean()), list(zip(lo.tolist(), hi.tolist())),
                            tuple(np.percentile(d_cal, [5, 95]).tolist()))
