"""Ablation (issue 22 item 6, "fully Bayesian hyper-parameters on small data within the time budget"):
the default GP's hyper-parameters integrated out instead of fixed at their MAP value.

Usage: OMP_NUM_THREADS=1 python benchmarks/hyper_bma_ablation.py [--only ackley3,p3ht] [--samples 128] [--seeds 10]
       then python benchmarks/pool_bench.py --compare --variant bma-128 (the folder it names)

Each step fits the default GP as the default strategy does (``fit_surrogate``, warm-started MAP:
ARD Matern-5/2 length-scales, output scale, noise). Then ``S`` hyper-parameter vectors are drawn around
the MAP in log space (independent normals, standard deviation ``--spread``, the MAP itself kept as
one draw; the constant mean stays at its MAP value), each weighted by self-normalised importance sampling: marginal likelihood times the
model's own priors (the same log-normal length-scale, Gamma output-scale and log-normal noise priors),
over the proposal density in log space (``log_weights``). One batched GP holds all draws; the
predictive distribution at each candidate is their weighted mixture, and the next point maximises
its mean + 2 standard deviations (the default's confidence bound, beta = 4, on the mixture's moments).
With few points the posterior over length-scales is wide and the mixture hedges between smooth and
rough fits; as data accumulate the weights concentrate on the MAP and the step is the default's.
Results go where ``pool_bench.py`` keeps a variant (``results/suite/bma-<S>/<set>-default.json``),
beside the same reference rows; each file records the mean effective sample size.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_bench as pb  # noqa: E402

from dm_hpc.bench.strategies import Strategy  # noqa: E402


def _log_prior(model) -> torch.Tensor:
    """Sum of the model's prior log-densities per batch element (``S``): gpytorch's marginal likelihood
    adds them summed over the whole batch, which would give every draw the same prior."""
    total = 0.0
    for _, module, prior, closure, _ in model.named_priors():
        v = prior.log_prob(closure(module))
        total = total + v.reshape(v.shape[0], -1).sum(-1) if v.dim() else total + v
    return total


def log_weights(model, X: torch.Tensor, y: torch.Tensor, log_theta: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Self-normalised log importance weights (``S``) of the batched GP ``model``'s hyper-parameter draws:
    log marginal likelihood + log prior + log Jacobian of the log map - log proposal. X: ``n x d``
    inputs; y: ``n`` outcomes as the model's outcome transform gives them; log_theta: ``S x p`` the
    draws in log space; log_q: ``S`` their proposal log-density."""
    model.train()
    with torch.no_grad():  # in training mode the model transforms its inputs itself
        lml = model.likelihood(model(X.expand(log_theta.shape[0], *X.shape))).log_prob(y.expand(log_theta.shape[0], -1))
        lw = lml + _log_prior(model) + log_theta.sum(-1) - log_q
    model.eval()
    return lw - torch.logsumexp(lw, 0)


class HyperBMA(Strategy):
    """The default strategy's GP with its hyper-parameters integrated out by importance sampling."""

    def __init__(self, X: torch.Tensor, seed: int, samples: int, spread: float):
        super().__init__("default", X, seed)
        self.samples, self.spread = samples, spread
        self.ess: list[float] = []
        self.gen = torch.Generator().manual_seed(seed)

    def select(self, observed: list[int], y: torch.Tensor) -> int:
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Normalize, Standardize

        from dm_hpc.learn.gp import _matern_ard

        remaining, Xo, Yo = self.refit_default(observed, y)
        m = self.model
        d, S = Xo.shape[-1], self.samples
        # the MAP in log space: length-scales (d), output scale, noise
        mp = torch.cat([m.covar_module.base_kernel.lengthscale.detach().reshape(-1).log(),
                        m.covar_module.outputscale.detach().reshape(1).log(),
                        m.likelihood.noise.detach().reshape(1).log()])
        eps = torch.randn(S, mp.numel(), generator=self.gen, dtype=torch.double)
        eps[0] = 0.0  # the MAP itself is one draw
        log_theta = mp + self.spread * eps
        log_q = -0.5 * (eps ** 2).sum(-1) - mp.numel() * np.log(self.spread * np.sqrt(2 * np.pi))
        batch = torch.Size([S])
        gp = SingleTaskGP(Xo.expand(S, *Xo.shape), Yo.expand(S, *Yo.shape), covar_module=_matern_ard(d, batch),
                          input_transform=Normalize(d, bounds=self.bounds), outcome_transform=Standardize(1, batch_shape=batch))
        gp.likelihood.noise_covar.initialize(noise=log_theta[:, -1:].exp().clamp_min(1.1e-4))
        gp.covar_module.base_kernel.initialize(lengthscale=log_theta[:, :d].exp().unsqueeze(-2))
        gp.covar_module.initialize(outputscale=log_theta[:, d].exp())
        gp.mean_module.initialize(constant=m.mean_module.constant.detach())  # the mean stays at its MAP value
        yt = gp.train_targets  # the standardised outcomes, S x n
        lw = log_weights(gp, Xo, yt[0], log_theta, log_q)
        w = lw.exp()
        self.ess.append(float(1.0 / (w ** 2).sum()))
        with torch.no_grad():
            post = gp.posterior(self.X[torch.as_tensor(remaining)].expand(S, -1, -1))
            mu, var = post.mean[..., 0], post.variance[..., 0]  # S x m
        mean = (w[:, None] * mu).sum(0)
        sd = ((w[:, None] * (var + mu ** 2)).sum(0) - mean ** 2).clamp_min(1e-12).sqrt()
        return int(remaining[int(torch.argmax(mean + 2.0 * sd))])


def main() -> None:
    ap = pb.ablation_args(__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=128, help="hyper-parameter draws per step")
    ap.add_argument("--spread", type=float, default=0.7, help="proposal standard deviation around the MAP, log units")
    a = ap.parse_args()
    made: list[HyperBMA] = []

    def make(X, s):
        made.append(HyperBMA(X, s, a.samples, a.spread))
        return made[-1]

    def note():
        ess = float(np.mean([e for st in made for e in st.ess]))
        made.clear()
        return f"mean ESS {ess:.1f} of {a.samples}"

    pb.run_ablation(a, f"bma-{a.samples}", make, note)


if __name__ == "__main__":
    main()
