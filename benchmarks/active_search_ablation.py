"""Ablation (issue 22 item 6): one-step active search for the pool's top set instead of the confidence bound.

Usage: OMP_NUM_THREADS=1 python benchmarks/active_search_ablation.py [--only ackley3,p3ht] [--share 0.05] [--seeds 10]
       then python benchmarks/pool_bench.py --compare --variant topset-0.05 (the folder it names)

The metrics of the dev suite count members of a pool's top set found (AF, EF: the best 5 %), which is
the goal of active search (Garnett et al., ICML 2012): find as many members of a target class as the
budget allows. Its one-step policy picks the candidate most likely to be a member. Here the class is
"above tau", tau the value above which the pool is expected to hold ``ceil(share N)`` points: the
measured points counted by their outcomes, every other candidate by its posterior probability
``Phi((mu - tau) / sigma)`` under the default GP (``fit_surrogate``, warm-started, as the default
strategy fits it); tau solved by bisection. The next point is the candidate with the highest
probability (``log_ndtr`` for the ranking, so that candidates far below tau still rank). Results go
where ``pool_bench.py`` keeps a variant (``results/suite/topset-<share>/<set>-default.json``), beside
the same reference rows.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_bench as pb  # noqa: E402

from dm_hpc.bench.strategies import Strategy  # noqa: E402


def top_threshold(measured: torch.Tensor, mean: torch.Tensor, sd: torch.Tensor, k: int, steps: int = 60) -> float:
    """tau such that the measured outcomes above it plus the candidates' probabilities of lying above
    it add up to ``k``. measured: ``n``; mean, sd: ``m`` candidates' posterior marginals."""
    def count(t: float) -> float:
        return float((measured > t).sum()) + float(torch.special.ndtr((mean - t) / sd).sum())

    lo = float(min(measured.min(), (mean - 6 * sd).min()))
    hi = float(max(measured.max(), (mean + 6 * sd).max()))
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if count(mid) > k else (lo, mid)
    return 0.5 * (lo + hi)


class TopSet(Strategy):
    """The default strategy's model, with the next point the likeliest member of the top set."""

    def __init__(self, X: torch.Tensor, seed: int, share: float):
        super().__init__("default", X, seed)
        self.share = share

    def select(self, observed: list[int], y: torch.Tensor) -> int:
        remaining, _, Yo = self.refit_default(observed, y)
        with torch.no_grad():
            post = self.model.posterior(self.X[torch.as_tensor(remaining)])
            mean, sd = post.mean.reshape(-1), post.variance.reshape(-1).clamp_min(1e-12).sqrt()
        tau = top_threshold(Yo.reshape(-1), mean, sd, math.ceil(self.share * self.X.shape[0]))
        return int(remaining[int(torch.argmax(torch.special.log_ndtr((mean - tau) / sd)))])


def main() -> None:
    ap = pb.ablation_args(__doc__.split("\n\n")[0])
    ap.add_argument("--share", type=float, default=0.05, help="the top share sought (the metrics' 5 %%)")
    a = ap.parse_args()
    pb.run_ablation(a, f"topset-{a.share:g}", lambda X, s: TopSet(X, s, a.share))


if __name__ == "__main__":
    main()
