"""How a cheap fidelity (a computed value per material) informs the expensive one (the measured
value), chosen by measurement rather than assumed (issue 10 §4).

Applies where the cheap value is known wherever a prediction is wanted (a DFT screen of every
candidate, say). Three ways of using it, each a GP on the same inputs:

- ``residual``: a GP on ``measured - computed``; prediction = computed + GP mean (the computed
  value is the prior mean);
- ``feature``: the computed value as one more input column;
- ``multitask``: ``fit_multitask`` over both fidelities (cheap values of every item, measured values
  where known).

``fit_multifidelity(..., kind="auto")`` picks the kind with the lowest K-fold cross-validated RMSE
on the measured items (one general rule, no per-dataset setting); ``MultiFidelityFit.cv_rmse`` keeps
the evidence. Without enough measured items for the folds it falls back to ``residual``. All three
are fitted with ``MULTITASK_SETTINGS`` (BoTorch's own model and uncapped fits below 500 points), the
setting of the multi-fidelity table in benchmarks/README.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from dm_hpc.learn.surrogates import MULTITASK_SETTINGS, fit_gp, fit_multitask, predict

KINDS = ("residual", "feature", "multitask")
#: folds of the internal cross-validation behind ``kind="auto"``
CV_FOLDS = 5


@dataclass
class MultiFidelityFit:
    """A fitted multi-fidelity predictor of the measured value.

    kind: one of ``KINDS``. cv_rmse: kind -> cross-validated RMSE (measured units) when chosen by
    ``auto``. ``predict(X, cheap)`` gives mean and standard deviation (``n`` each) of the measured
    value at ``n x d`` inputs whose computed values are ``cheap`` (``n``).
    """

    kind: str
    model: object
    bounds: Tensor
    cv_rmse: dict[str, float] = field(default_factory=dict)

    def predict(self, X: Tensor, cheap: Tensor) -> tuple[Tensor, Tensor]:
        X = torch.as_tensor(X, dtype=torch.double)
        cheap = torch.as_tensor(cheap, dtype=torch.double).reshape(-1)
        if self.kind == "feature":
            mu, sd = predict(self.model, torch.cat([X, cheap.unsqueeze(-1)], -1))
            return mu[:, 0], sd[:, 0]
        mu, sd = predict(self.model, X)
        if self.kind == "residual":
            return cheap + mu[:, 0], sd[:, 0]
        return mu[:, 0], sd[:, 0]


def _bounds(X: Tensor) -> Tensor:
    lo, hi = X.min(0).values, X.max(0).values
    return torch.stack([lo, torch.where(hi > lo, hi, lo + 1.0)])


def _fit_kind(kind: str, X: Tensor, cheap: Tensor, measured: Tensor, y: Tensor, bounds: Tensor):
    """Fit one kind. X: ``n x d`` all items; cheap: ``n``; measured: ``n`` bool; y: ``n`` (NaN where unmeasured)."""
    Xm, ym, cm = X[measured], y[measured], cheap[measured]
    if kind == "residual":
        return fit_gp(Xm, (ym - cm).unsqueeze(-1), bounds=bounds, settings=MULTITASK_SETTINGS)
    if kind == "feature":
        c_lo, c_hi = cheap.min(), cheap.max()
        fb = torch.cat([bounds, torch.stack([c_lo, torch.where(c_hi > c_lo, c_hi, c_lo + 1)]).unsqueeze(-1)], -1)
        return fit_gp(torch.cat([Xm, cm.unsqueeze(-1)], -1), ym.unsqueeze(-1), bounds=fb, settings=MULTITASK_SETTINGS)
    if kind == "multitask":
        Xa = torch.cat([X, Xm])
        ya = torch.cat([cheap, ym]).unsqueeze(-1)
        tasks = torch.tensor([0] * X.shape[0] + [1] * Xm.shape[0])
        return fit_multitask(Xa, ya, tasks, target_task=1, bounds=bounds, all_tasks=[0, 1])
    raise ValueError(f"unknown multi-fidelity kind {kind!r}; use auto or one of {', '.join(KINDS)}")


def fit_multifidelity(X: Tensor, cheap: Tensor, y: Tensor, kind: str = "auto", seed: int = 0) -> MultiFidelityFit:
    """Fit a predictor of the measured value that uses the computed one.

    Args:
        X: ``n x d`` inputs of every item with a computed value. cheap: ``n`` computed values.
        y: ``n`` measured values, NaN where not measured (at least 2 measured).
        kind: ``"auto"`` (lowest ``CV_FOLDS``-fold CV RMSE on the measured items) or one of ``KINDS``.
        seed: fold assignment.
    """
    X = torch.as_tensor(X, dtype=torch.double)
    cheap = torch.as_tensor(cheap, dtype=torch.double).reshape(-1)
    y = torch.as_tensor(y, dtype=torch.double).reshape(-1)
    if not (X.shape[0] == cheap.shape[0] == y.shape[0]):
        raise ValueError(f"X, cheap and y must have the same length, got {X.shape[0]}, {cheap.shape[0]}, {y.shape[0]}")
    measured = ~torch.isnan(y)
    if int(measured.sum()) < 2:
        raise ValueError("at least 2 measured values are needed")
    bounds = _bounds(X)
    cv: dict[str, float] = {}
    if kind == "auto":
        idx = torch.nonzero(measured).flatten()
        if len(idx) < 2 * CV_FOLDS:
            kind = "residual"
        else:
            perm = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))]
            folds = perm.chunk(CV_FOLDS)
            for k in KINDS:
                err = []
                for f in folds:
                    train = measured.clone()
                    train[f] = False
                    fit = MultiFidelityFit(k, _fit_kind(k, X, cheap, train, y, bounds), bounds)
                    mu, _ = fit.predict(X[f], cheap[f])
                    err.append((mu - y[f]) ** 2)
                cv[k] = float(torch.cat(err).mean().sqrt())
            kind = min(cv, key=cv.get)
    return MultiFidelityFit(kind, _fit_kind(kind, X, cheap, measured, y, bounds), bounds, cv)


__all__ = ["CV_FOLDS", "KINDS", "MultiFidelityFit", "fit_multifidelity"]
