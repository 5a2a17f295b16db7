"""Held-out quality of any surrogate: RMSE and the coverage of its 90 % predictive intervals.

One definition used by the registry, ``dm-hpc train``, the calibration benchmark and the
latency table, so that "coverage" means the same everywhere: the share of held-out outcomes
inside ``mean +- 1.645 * std`` of the posterior *with observation noise* (a new measurement,
not the latent function), pooled over outputs.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

Z90 = 1.6448536269514722


@dataclass(frozen=True)
class HeldOutQuality:
    """RMSE per output (outcome units) and 90 %-interval coverage (0-1) on ``n`` held-out points."""

    rmse: list[float]
    coverage90: float
    n: int

    def as_dict(self) -> dict:
        return {"rmse": [round(r, 6) for r in self.rmse], "coverage90": round(self.coverage90, 4), "n": self.n}


def predictive(model, X: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of a new observation, ``n x m`` each, at ``n x d`` X."""
    means, stds = [], []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for part in torch.split(torch.as_tensor(X, dtype=torch.double), chunk):
            try:
                post = model.posterior(part, observation_noise=True)
            except (NotImplementedError, TypeError, RuntimeError):  # models without a noise model
                post = model.posterior(part)
            means.append(post.mean.reshape(len(part), -1))
            stds.append(post.variance.clamp_min(0).sqrt().reshape(len(part), -1))
    return torch.cat(means), torch.cat(stds)


def interval_coverage(Y: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Share (0-1) of outcomes inside ``mean +- 1.645 std``, per output: ``n x m`` -> ``m``.

    NaN predictions or outcomes are left out of their column (NaN where a column has none).
    """
    Y, mean, std = (torch.as_tensor(a, dtype=torch.double) for a in (Y, mean, std))
    inside = ((Y - mean).abs() <= Z90 * std).double()
    ok = ~(Y.isnan() | mean.isnan() | std.isnan())
    return (inside * ok).sum(0) / ok.sum(0)  # 0/0 -> NaN: no usable point


def held_out_quality(model, X: Tensor, Y: Tensor) -> HeldOutQuality:
    """RMSE and 90 %-interval coverage of ``model`` on held-out ``n x d`` X, ``n x m`` Y."""
    Y = torch.as_tensor(Y, dtype=torch.double)
    Y = Y.unsqueeze(-1) if Y.dim() == 1 else Y
    if len(Y) == 0:
        return HeldOutQuality([float("nan")] * Y.shape[-1], float("nan"), 0)
    mu, sd = predictive(model, X)
    rmse = ((mu - Y) ** 2).mean(0).sqrt().tolist()
    inside = interval_coverage(Y, mu, sd).mean().item()  # equal n per output: the pooled share
    return HeldOutQuality(rmse, inside, len(Y))
