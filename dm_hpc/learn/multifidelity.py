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
shapes the hyper-parameters that predict it). Only the chosen kind is then fitted on every item.
The rule (one for every table): among the candidates whose CV RMSE exceeds the best's by at most
one standard error (of the paired per-item difference of squared errors), take one of the
simplest tier (``TIERS``: identity, line, GP on the inputs, GP with the computed value as an input
or a task), the lowest in CV there. A GP must therefore beat "measured = computed" and the line by
more than noise to be used; ``MultiFidelityFit.cv_rmse`` and ``cv_se`` keep the evidence. With fewer than ``2 * CV_FOLDS`` measured items there is too little
evidence and the fit is ``residual`` (computed value as the prior mean, corrected where
measurements say so).

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

from dm_hpc.learn.surrogates import MULTITASK_SETTINGS, GPSettings, fit_gp, fit_multitask

#: Candidates, simplest first.
KINDS = ("computed", "linear", "residual", "measured", "feature", "multitask")
#: Complexity tiers of the one-standard-error rule: no parameter; two; a GP on the d inputs; a GP with
#: one more input or a task covariance. Within a tier the lowest CV RMSE wins.
TIERS = (("computed",), ("linear",), ("residual", "measured"), ("feature", "multitask"))
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

    kind: one of ``KINDS``. model: a ``Calibration`` or a BoTorch GP. cv_rmse: kind -> repeated
    K-fold CV RMSE on the measured items (measured units) when chosen by ``auto``; cv_se: kind ->
    standard error of its CV RMSE minus the best one's (paired over items); ``best`` is the kind
    with the lowest CV RMSE, which ``kind`` may differ from by the one-standard-error rule.
    """

    kind: str
    model: object
    bounds: Tensor
    cv_rmse: dict[str, float] = field(default_factory=dict)
    cv_se: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> str | None:
        return min(self.cv_rmse, key=self.cv_rmse.get) if self.cv_rmse else None

    def predict(self, X: Tensor, cheap: Tensor) -> MeasuredPrediction:
        """Mean, measured-value sd and latent sd (``n`` each) at ``n x d`` inputs X whose
        computed values are ``cheap`` (``n``)."""
        X = torch.as_tensor(X, dtype=torch.double)
        cheap = torch.as_tensor(cheap, dtype=torch.double).reshape(-1)
        if self.kind in CALIBRATIONS:
            return self.model.predict(cheap)
        Xin = torch.cat([X, cheap.unsqueeze(-1)], -1) if self.kind == "feature" else X
        with torch.no_grad():
            latent = self.model.posterior(Xin)
            noisy = self.model.posterior(Xin, observation_noise=True)
        mu = latent.mean.reshape(-1)
        mean = cheap + mu if self.kind == "residual" else mu
        return MeasuredPrediction(mean, noisy.variance.reshape(-1).clamp_min(0).sqrt(),
                                  latent.variance.reshape(-1).clamp_min(0).sqrt())


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
    """The one-standard-error rule on per-item squared CV errors (kind -> ``m`` tensor).

    Returns the chosen kind, CV RMSE per kind, and per kind the standard error of (its CV RMSE
    minus the best's), from the paired per-item differences of squared errors. The chosen kind is
    from the simplest tier of ``TIERS`` with a member whose CV RMSE exceeds the best's by at most
    that standard error: that tier's member with the lowest CV RMSE.
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
    for tier in TIERS:
        close = [k for k in tier if k in rmse and rmse[k] - rmse[best] <= se[k]]
        if close:
            return min(close, key=rmse.get), rmse, se
    return best, rmse, se


def fit_multifidelity(X: Tensor, cheap: Tensor, y: Tensor, kind: str = "auto", seed: int = 0) -> MultiFidelityFit:
    """Fit a predictor of the measured value that uses the computed one.

    Args:
        X: ``n x d`` inputs of every item with a computed value. cheap: ``n`` computed values.
        y: ``n`` measured values, NaN where not measured (at least 2 measured).
        kind: ``"auto"`` (the module's rule: repeated K-fold CV, one-standard-error, simplest) or one
            of ``KINDS``.
        seed: fold assignment.
    """
    X = torch.as_tensor(X, dtype=torch.double)
    cheap = torch.as_tensor(cheap, dtype=torch.double).reshape(-1)
    y = torch.as_tensor(y, dtype=torch.double).reshape(-1)
    if not (X.shape[0] == cheap.shape[0] == y.shape[0]):
        raise ValueError(f"X, cheap and y must have the same length, got {X.shape[0]}, {cheap.shape[0]}, {y.shape[0]}")
    if kind != "auto" and kind not in KINDS:
        raise ValueError(f"unknown multi-fidelity kind {kind!r}; use auto or one of {', '.join(KINDS)}")
    if bool(torch.isnan(cheap).any()):
        raise ValueError(f"computed values must be known for every item; {int(torch.isnan(cheap).sum())} are NaN")
    measured = ~torch.isnan(y)
    if int(measured.sum()) < 2:
        raise ValueError("at least 2 measured values are needed")
    bounds = _bounds(X)
    if kind != "auto":
        return MultiFidelityFit(kind, _fit_kind(kind, X, cheap, measured, y, bounds), bounds)
    idx = torch.nonzero(measured).flatten()
    if len(idx) < 2 * CV_FOLDS:
        return MultiFidelityFit("residual", _fit_kind("residual", X, cheap, measured, y, bounds), bounds)
    gen = torch.Generator().manual_seed(seed)
    halves = tuple(idx[torch.randperm(len(idx), generator=gen)].chunk(2))
    folds = [list(idx[torch.randperm(len(idx), generator=gen)].chunk(CV_FOLDS)) for _ in range(CV_REPEATS)]
    sq = {k: _cv_squared_errors(k, X, cheap, measured, y, bounds, folds, halves) for k in KINDS}
    chosen, rmse, se = choose_kind(sq)
    return MultiFidelityFit(chosen, _fit_kind(chosen, X, cheap, measured, y, bounds), bounds, rmse, se)


__all__ = ["CALIBRATIONS", "CV_FOLDS", "CV_REPEATS", "KINDS", "TIERS", "Calibration", "MeasuredPrediction",
           "MultiFidelityFit", "choose_kind", "fit_multifidelity"]
