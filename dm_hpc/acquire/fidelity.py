"""Cost-aware choice of fidelity (which calculation method, or the lab) for a proposal.

Criterion: expected information gain about the experimental target at the proposed point per
unit cost. With a multi-task GP the target ``f_T(x)`` and an observation ``y_m(x) = f_m(x) + e_m``
at fidelity m are jointly Gaussian, so the gain is closed form:

    IG_m(x) = -1/2 log(1 - rho_m(x)^2),   rho_m^2 = Cov(f_T, y_m)^2 / (Var f_T * Var y_m)

For the target itself this is ``1/2 log(Var y_T / noise_T)``. A cheap method wins while it still
says something about the target at x; once it has been computed there (or nearby), its
correlation with the remaining target uncertainty drops and the lab wins. This is the
discrete-fidelity, point-wise form of max-value/entropy-search criteria, in closed form (~ms);
multi-fidelity knowledge gradient was tried and rejected (90 s a step, always the cheapest).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Fidelity:
    """One way to get the target property.

    Attributes:
        name: calculation method name (e.g. "emt", "qe-pbe") or "lab".
        task: the task id of this fidelity in the multi-task model.
        cost: cost of one evaluation in a common unit (e.g. core-hours, a lab-day converted
            to core-hours by the site); only ratios matter.
        target: True for the fidelity the campaign optimises (normally the lab).
    """

    name: str
    task: int
    cost: float
    target: bool = False


def target_fidelity(fidelities: Sequence[Fidelity]) -> Fidelity:
    """The fidelity flagged ``target`` (else the most expensive one)."""
    flagged = [f for f in fidelities if f.target]
    return flagged[0] if flagged else max(fidelities, key=lambda f: f.cost)


def information_gain(model, X: Tensor, fidelities: Sequence[Fidelity], outputs: Sequence[int] | None = None) -> Tensor:
    """Information (nats) about the target task at each of ``n x d`` points ``X`` from one
    evaluation at each fidelity: returns ``n x F``. ``model`` is a multi-task GP whose inputs
    are ``d`` features plus a trailing task column, or a ``ModelListGP`` of them (one per
    property: their information adds up, over ``outputs`` when given: a property the
    composition decides, computed and not learned, is not worth a measurement)."""
    from botorch.models import ModelListGP

    if isinstance(model, ModelListGP):  # independent properties: their information adds up
        models = model.models if outputs is None else [model.models[i] for i in outputs]
        return sum((information_gain(m, X, fidelities) for m in models),
                   torch.zeros(X.shape[0], len(fidelities), dtype=torch.double))
    tgt = target_fidelity(fidelities)
    n = X.shape[0]
    out = torch.zeros(n, len(fidelities), dtype=torch.double)
    if outputs is not None and not len(outputs):  # one model of one output, and that output computed
        return out
    with torch.no_grad():
        for j, fid in enumerate(fidelities):
            t_col = torch.full((n, 1), float(tgt.task), dtype=X.dtype)
            m_col = torch.full((n, 1), float(fid.task), dtype=X.dtype)
            pair = torch.stack([torch.cat([X, t_col], -1), torch.cat([X, m_col], -1)], dim=-2)  # n x 2 x (d+1)
            cov_f = model.posterior(pair).distribution.covariance_matrix  # n x 2 x 2
            var_y = model.posterior(pair, observation_noise=True).variance.squeeze(-1)[..., 1]  # n
            var_t = cov_f[..., 0, 0].clamp_min(1e-18)
            rho2 = (cov_f[..., 0, 1] ** 2 / (var_t * var_y.clamp_min(1e-18))).clamp(0.0, 1.0 - 1e-9)
            out[:, j] = -0.5 * torch.log1p(-rho2)
    return out


def choose_fidelity(model, X: Tensor, fidelities: Sequence[Fidelity],
                    outputs: Sequence[int] | None = None) -> tuple[list[Fidelity], Tensor]:
    """Best fidelity per point by information gain per unit cost (about ``outputs`` of a
    ``ModelListGP``, default all: ``information_gain``); where no fidelity gives any, the cheapest.

    Returns (one ``Fidelity`` per row of ``n x d`` X, ``n x F`` gain-per-cost scores).
    """
    ig = information_gain(model, X, fidelities, outputs)
    cost = torch.tensor([f.cost for f in fidelities], dtype=torch.double)
    score = ig / cost
    # nothing to learn at a point (every output computed): the cheapest, not the first listed
    best = torch.where((ig > 0).any(-1), score.argmax(-1), cost.argmin()).tolist()
    return [fidelities[i] for i in best], score
