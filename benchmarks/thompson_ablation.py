"""Ablation (issue 22 item 6): the default GP, and Thompson sampling over the pool instead of the confidence bound.

Usage: OMP_NUM_THREADS=1 python benchmarks/thompson_ablation.py [--only oer,ackley3] [--seeds 10]
       then python benchmarks/pool_bench.py --compare --variant thompson (the folder it names)

The default picks the unmeasured pool point with the largest ``mean + 2 sd``. Thompson sampling
draws one function from the GP's joint posterior over every unmeasured pool point and picks its
argmax: it explores in proportion to the probability that a point is the best, not by a fixed
width, and needs no setting at all. The GP is the default's (``fit_surrogate``, warm-started); the
draw is exact (the joint covariance at the candidates, Cholesky with jitter), from a generator seeded
by the campaign's seed and step, so that a run is reproduced seed by seed. One global rule, no
per-set switch; results go where ``pool_bench.py`` keeps a variant, beside the same reference rows.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_bench as pb  # noqa: E402

from dm_hpc.bench.strategies import Strategy  # noqa: E402


def joint_draw(model, X: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One draw of the posterior mean of outcome 0 at ``X`` (``n x d``) jointly: ``n``."""
    with torch.no_grad():
        post = model.posterior(X)
        mean = post.mean[..., 0]
        cov = post.mvn.covariance_matrix  # one outcome: n x n
        cov = 0.5 * (cov + cov.T)
        jitter = 1e-8 * cov.diagonal().mean().clamp_min(1e-12)
        for _ in range(6):
            L, info = torch.linalg.cholesky_ex(cov + jitter * torch.eye(len(cov), dtype=cov.dtype))
            if int(info) == 0:
                break
            jitter *= 10
        else:
            raise RuntimeError(f"posterior covariance not positive definite even with jitter {jitter:g}")
        z = torch.randn(len(cov), generator=gen, dtype=cov.dtype)
        return mean + L @ z


class Thompson(Strategy):
    """The default strategy's model; the pick is the argmax of one joint posterior draw."""

    def select(self, observed: list[int], y: torch.Tensor) -> int:
        remaining = self.refit_default(observed, y)[0]
        gen = torch.Generator().manual_seed(1_000_003 * self.seed + len(observed))
        draw = joint_draw(self.model, self.X[torch.as_tensor(remaining)], gen)
        return int(remaining[int(torch.argmax(draw))])


def main() -> None:
    a = pb.ablation_args(__doc__.split("\n\n")[0]).parse_args()
    pb.run_ablation(a, "thompson", lambda X, s: Thompson("default", X, s))


if __name__ == "__main__":
    main()
