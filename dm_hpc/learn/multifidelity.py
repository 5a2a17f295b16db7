"""How a cheap fidelity (a computed value per material) informs the expensive one (the measured
value), chosen by measurement rather than assumed (issue 10 §4, issue 23 §2).

Applies where the cheap value is known wherever a prediction is wanted (a DFT screen of every
candidate, say). The candidates, simplest first (``KINDS``):

- ``computed``: measured = computed (the free baseline; no parameter, error = the residual spread);
- ``linear``: measured = a + b * computed, least squares (a calibration of the computed value);
- ``residual``: a GP on ``measured - computed``; prediction = computed + GP mean;
- ``measured``: a GP on the measured values alone (what is left when the computed value says nothing);
- ``feature``: a GP with the computed value as one more input column;
- ``multitask``: ``fit_multitask`` over both fidelities (cheap values of every item, measured values
  where known).

``kind="auto"`` scores each candidate by ``CV_REPEATS`` repetitions of ``CV_FOLDS``-fold
cross-validation on the measured items; per item, the squared error is averaged over the
repetitions, so no single fold assignment decides. The calibrations are refitted per fold exactly. A
GP's hyper-parameters are fitted twice, once on each half of the measured items; a held-out item is
predicted with the other half's hyper-parameters, conditioned on its fold's training items (no
refit per fold: seconds in all, where 5-fold CV of uncapped GPs took minutes; and no held-out item
shapes the hyper-parameters that predict it).

The rule (one for every table): the candidates whose CV RMSE exceeds the best's by at most one
standard error (of the paired per-item difference of squared errors) are the ones the evidence
cannot tell apart (an "Occam's window"); the fit is their equal-weight average (one candidate when
the window holds one). Picking one of them instead - the simplest, as an earlier rule did, or the
lowest in CV - bets on a difference the evidence does not show: on 150 band gaps with 50 measured,
the earlier rule took the line in 4 of 5 splits where the multi-task GP was within one standard
error of it, and was 9 % behind always taking the multi-task GP; the average of the two is ahead of
both (0.839 eV against 0.873 and 0.994, held out; benchmarks/README.md). A GP enters
only when it is within noise of the best, so "measured = computed" is left only for something that
is not worse by more than noise. ``MultiFidelityFit.cv_rmse`` and ``cv_se`` keep the evidence.
With fewer than ``2 * CV_FOLDS`` measured items there is too little evidence and the fit is
``residual`` (computed value as the prior mean, corrected where measurements say so).

``MultiFidelityFit.predict`` gives the mean, the sd of a measured value (predictive: the model's
observation noise included; what a 90 % interval for a new measurement needs) and the sd of the
latent (noise-free) value, named apart.

GPs use BoTorch's own model (``MULTITASK_SETTINGS.prior``) with hyper-parameter fits capped at
``FIT_MAXITER`` L-BFGS iterations (on 150 computed and 50 measured band gaps an uncapped multi-task
fit took 35 s on the loaded 2-core machine, a capped one 3-7 s; benchmarks/README.md, multi-fidelity
table).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from dm_hpc.learn.moments import moments
from dm_hpc.learn.surrogates import MULTITASK_SETTINGS, GPSettings, fit_gp, fit_multitask

#: Candidates, simplest first.
KINDS = ("computed", "linear", "residual", "measured", "feature", "multitask")
#: joins the members of an average in ``MultiFidelityFit.kind`` ("linear+multitask")
JOIN = "+"
#: Candidates without a GP: fitted in closed form, refitted exactly in every fold.
CALIBRATIONS = ("computed", "linear")
#: folds and repetitions of the cross-validation behind ``kind="auto"``
CV_FOLDS = 5
CV_REPEATS = 3
#: L-BFGS iterations of each GP's hyper-parameter fit
FIT_MAXITER = 100
#: capped fits at every size (``full_fit_points=0``), with BoTorch's own model
_CAPPED = GPSettings(prior=MULTITASK_SETTINGS.prior, full_fit_points=0)


class MeasuredPrediction(NamedTuple):
    """Predictions at ``n`` items, each a tensor of shape ``n`` in the measured value's units.

    mean: predicted measured value. sd: standard deviation of a measurement there (latent
    uncertainty and observation noise together). latent_sd: standard deviation of the noise-free
    value (for the calibrations ``computed``/``linear``, only their parameters' uncertainty: zero
    for ``computed``, whose whole error is in ``sd``).
    """

    mean: Tensor
    sd: Tensor
    latent_sd: Tensor


@dataclass(frozen=True)
class Calibration:
    """measured = a + b * computed + noise; ``cov`` is the ``2 x 2`` covariance of (a, b)
    (zero for the fixed ``computed`` identity), ``noise_sd`` the residual standard deviation."""

    a: float
    b: float
    cov: Tensor
    noise_sd: float

    @classmethod
    def fit(cls, kind: str, cheap: Tensor, y: Tensor) -> "Calibration":
        """Least squares on ``n`` computed and measured values (``computed``: a = 0, b = 1 fixed)."""
        n = len(y)
        if kind == "computed" or n < 3:  # a line through 2 points has no residual to size its noise
            r = y - cheap
            return cls(0.0, 1.0, torch.zeros(2, 2, dtype=y.dtype), float(r.pow(2).mean().sqrt()))
        A = torch.stack([torch.ones_like(cheap), cheap], -1)
        coef = torch.linalg.lstsq(A, y.unsqueeze(-1)).solution[:, 0]
        s2 = float((y - A @ coef).pow(2).sum()) / (n - 2)
        cov = s2 * torch.linalg.pinv(A.T @ A)
        return cls(float(coef[0]), float(coef[1]), cov, math.sqrt(s2))

    def predict(self, cheap: Tensor) -> MeasuredPrediction:
        A = torch.stack([torch.ones_like(cheap), cheap], -1)
        latent_var = ((A @ self.cov) * A).sum(-1).clamp_min(0)
        return MeasuredPrediction(self.a + self.b * cheap, (latent_var + self.noise_sd**2).sqrt(), latent_var.sqrt())


@dataclass
class MultiFidelityFit:
    """A fitted multi-fidelity predictor of the measured value.

    kind: one of ``KINDS``, or several joined by ``JOIN`` (their equal-weight average; ``members``).
    model: a ``Calibration`` or a BoTorch GP; for an average, the tuple of the members' models.
    cv_rmse: kind -> repeated K-fold CV RMSE on the measured items (measured units) when chosen by
    ``auto``; cv_se: kind -> standard error of its CV RMSE minus the best one's (paired over items);
    ``best`` is the kind with the lowest CV RMSE.
    """

    kind: str
    model: object
    bounds: Tensor
    cv_rmse: dict[str, float] = field(default_factory=dict)
    cv_se: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> str | None:
        return min(self.cv_rmse, key=self.cv_rmse.get) if self.cv_rmse else None

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(self.kind.split(JOIN))

    def predict(self, X: Tensor, cheap: Tensor) -> MeasuredPrediction:
        """Mean, measured-value sd and latent sd (``n`` each) at ``n x d`` inputs X whose
        computed values are ``cheap`` (``n``). An average's sds are those of the equal-weight
        mixture of its members' predictive distributions (spread between the members included)."""
        X = torch.as_tensor(X, dtype=torch.double)
        cheap = torch.as_tensor(cheap, dtype=torch.double).reshape(-1)
        if len(self.members) > 1:
            parts = [MultiFidelityFit(k, m, self.bounds).predict(X, cheap) for k, m in zip(self.members, self.model)]
            mean = torch.stack([p.mean for p in parts]).mean(0)

            def mixture_sd(sds: list[Tensor]) -> Tensor:
                second = torch.stack([s**2 + p.mean**2 for s, p in zip(sds, parts)]).mean(0)
                return (second - mean**2).clamp_min(0).sqrt()

            return MeasuredPrediction(mean, mixture_sd([p.sd for p in parts]), mixture_sd([p.latent_sd for p in parts]))
        if self.kind in CALIBRATIONS:
            return self.model.predict(cheap)
        Xin = torch.cat([X, cheap.unsqueeze(-1)], -1) if self.kind == "feature" else X
        mu, latent_var = moments(self.model, Xin)
        noisy_var = moments(self.model, Xin, observation_noise=True)[1]
        mu = mu.reshape(-1)
        mean = cheap + mu if self.kind == "residual" else mu
        return MeasuredPrediction(mean, noisy_var.reshape(-1).sqrt(), latent_var.reshape(-1).sqrt())


def _bounds(X: Tensor) -> Tensor:
    lo, hi = X.min(0).values, X.max(0).values
    return torch.stack([lo, torch.where(hi > lo, hi, lo + 1.0)])


def _fit_kind(kind: str, X: Tensor, cheap: Tensor, measured: Tensor, y: Tensor, bounds: Tensor, warm=None):
    """Fit one kind. X: ``n x d`` all items; cheap: ``n``; measured: ``n`` bool; y: ``n`` (NaN where
    unmeasured). ``warm``: a fit of the same kind whose hyper-parameters are kept (``fit_gp`` keeps
    them exactly; ``fit_multitask`` runs a zero-iteration fit, within one line-search step): the
    model conditions on the given measured items."""
    Xm, ym, cm = X[measured], y[measured], cheap[measured]
    if kind in CALIBRATIONS:
        return Calibration.fit(kind, cm, ym)
    caps = {"settings": _CAPPED, "maxiter": FIT_MAXITER, "warm_start": warm, "warm_maxiter": 0}
    if kind in ("residual", "measured"):
        target = ym - cm if kind == "residual" else ym
        return fit_gp(Xm, target.unsqueeze(-1), bounds=bounds, max_fit_points=len(ym), **caps)
    if kind == "feature":
        fb = torch.cat([bounds, _bounds(cheap.unsqueeze(-1))], -1)
        return fit_gp(torch.cat([Xm, cm.unsqueeze(-1)], -1), ym.unsqueeze(-1), bounds=fb, max_fit_points=len(ym), **caps)
    if kind == "multitask":
        Xa = torch.cat([X, Xm])
        ya = torch.cat([cheap, ym]).unsqueeze(-1)
        tasks = torch.tensor([0] * X.shape[0] + [1] * Xm.shape[0])
        return fit_multitask(Xa, ya, tasks, target_task=1, bounds=bounds, all_tasks=[0, 1], **caps)
    raise ValueError(f"unknown multi-fidelity kind {kind!r}; use auto or one of {', '.join(KINDS)}")


def _cv_squared_errors(kind: str, X: Tensor, cheap: Tensor, measured: Tensor, y: Tensor, bounds: Tensor,
                       folds: list[list[Tensor]], halves: tuple[Tensor, Tensor]) -> Tensor:
    """Squared CV errors of one kind at the measured items (``m``), averaged over the repetitions.

    A GP's hyper-parameters are fitted on one half of the measured items (``halves``) and predict
    the other half's held-out items, conditioned on the fold's training items: no held-out item
    ever shaped the hyper-parameters that predict it. (Hyper-parameters fitted on every item made
    over-fitted GPs look good: a computed-as-input GP with CV RMSE 0.75 eV had 2.0 eV on new items.)
    """
    idx = torch.nonzero(measured).flatten()
    err = torch.zeros(len(y), dtype=torch.double)
    hypers = None
    if kind not in CALIBRATIONS:
        hypers = []
        for h in halves:
            mask = torch.zeros_like(measured)
            mask[h] = True
            hypers.append(_fit_kind(kind, X, cheap, mask, y, bounds))
    for repeat in folds:
        for f in repeat:
            train = measured.clone()
            train[f] = False
            if hypers is None:
                parts = [(f, None)]
            else:
                first = torch.isin(f, halves[0])
                parts = [(f[first], hypers[1]), (f[~first], hypers[0])]  # the other half's hyper-parameters
            for items, warm in parts:
                if len(items):
                    model = _fit_kind(kind, X, cheap, train, y, bounds, warm=warm)
                    err[items] += (MultiFidelityFit(kind, model, bounds).predict(X[items], cheap[items]).mean - y[items]) ** 2
    return err[idx] / len(folds)


def choose_kind(sq_err: dict[str, Tensor]) -> tuple[str, dict[str, float], dict[str, float]]:
    """The one-standard-error window on per-item squared CV errors (kind -> ``m`` tensor).

    Returns the chosen kind (the members of the window joined by ``JOIN``, in the order of
    ``sq_err``), CV RMSE per kind, and per kind the standard error of (its CV RMSE minus the
    best's), from the paired per-item differences of squared errors. The window: every kind whose
    CV RMSE exceeds the best's by at most that standard error (the best always).
    """
    mse = {k: float(e.mean()) for k, e in sq_err.items()}
    best = min(mse, key=mse.get)
    m = len(sq_err[best])
    rmse = {k: math.sqrt(v) for k, v in mse.items()}
    se = {}
    for k, e in sq_err.items():
        se_mse = float((e - sq_err[best]).std()) / math.sqrt(m) if m > 1 else 0.0
        # RMSE_k - RMSE_best = (MSE_k - MSE_best) / (RMSE_k + RMSE_best): the same test in RMSE units
        se[k] = se_mse / (rmse[k] + rmse[best]) if rmse[k] + rmse[best] > 0 else 0.0
    return JOIN.join(k for k in sq_err if rmse[k] - rmse[best] <= se[k]), rmse, se


def fit_multifidelity(X: Tensor, cheap: Tensor, y: Tensor, kind: str = "auto", seed: int = 0) -> MultiFidelityFit:
    """Fit a predictor of the measured value that uses the computed one.

    Args:
        X: ``n x d`` inputs of every item with a computed value. cheap: ``n`` computed values.
        y: ``n`` measured values, NaN where not measured (at least 2 measured).
        kind: ``"auto"`` (the module's rule: repeated K-fold CV, the average of the candidates within
            one standard error of the best), one of ``KINDS``, or several joined by ``JOIN`` (their average).
        seed: fold assignment.
    """
    X = torch.as_tensor(X, dtype=torch.double)
    cheap = torch.as_tensor(cheap, dtype=torch.double).reshape(-1)
    y = torch.as_tensor(y, dtype=torch.double).reshape(-1)
    if not (X.shape[0] == cheap.shape[0] == y.shape[0]):
        raise ValueError(f"X, cheap and y must have the same length, got {X.shape[0]}, {cheap.shape[0]}, {y.shape[0]}")
    if kind != "auto" and not set(kind.split(JOIN)) <= set(KINDS):
        raise ValueError(f"unknown multi-fidelity kind {kind!r}; use auto or one of {', '.join(KINDS)}")
    if bool(torch.isnan(cheap).any()):
        raise ValueError(f"computed values must be known for every item; {int(torch.isnan(cheap).sum())} are NaN")
    measured = ~torch.isnan(y)
    if int(measured.sum()) < 2:
        raise ValueError("at least 2 measured values are needed")
    bounds = _bounds(X)
    if kind != "auto":
        return _fit(kind, X, cheap, measured, y, bounds)
    idx = torch.nonzero(measured).flatten()
    if len(idx) < 2 * CV_FOLDS:
        return MultiFidelityFit("residual", _fit_kind("residual", X, cheap, measured, y, bounds), bounds)
    gen = torch.Generator().manual_seed(seed)
    halves = tuple(idx[torch.randperm(len(idx), generator=gen)].chunk(2))
    folds = [list(idx[torch.randperm(len(idx), generator=gen)].chunk(CV_FOLDS)) for _ in range(CV_REPEATS)]
    sq = {k: _cv_squared_errors(k, X, cheap, measured, y, bounds, folds, halves) for k in KINDS}
    chosen, rmse, se = choose_kind(sq)
    fit = _fit(chosen, X, cheap, measured, y, bounds)
    fit.cv_rmse, fit.cv_se = rmse, se
    return fit


def _fit(kind: str, X: Tensor, cheap: Tensor, measured: Tensor, y: Tensor, bounds: Tensor) -> MultiFidelityFit:
    """One kind, or an average (``JOIN``-joined kinds), fitted on every measured item."""
    models = [_fit_kind(k, X, cheap, measured, y, bounds) for k in kind.split(JOIN)]
    return MultiFidelityFit(kind, models[0] if len(models) == 1 else tuple(models), bounds)


__all__ = ["CALIBRATIONS", "CV_FOLDS", "CV_REPEATS", "JOIN", "KINDS", "Calibration", "MeasuredPrediction",
           "MultiFidelityFit", "choose_kind", "fit_multifidelity"]
