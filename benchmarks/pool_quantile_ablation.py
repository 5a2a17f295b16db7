"""Ablation (issue 22 item 6): the default strategy on inputs read through the pool's own marginal distribution.

Usage: OMP_NUM_THREADS=1 python benchmarks/pool_quantile_ablation.py [--only steel-sub150,oer] [--seeds 10]
       then python benchmarks/pool_bench.py --compare --variant pool-quantile (the folder it names)

A pool-based campaign knows every candidate's inputs before it measures any. The default GP reads
each input scaled to the pool's range, so an input that most candidates hold near one end (titanium
in steels: 0 in most alloys, 1-2 wt % in the maraging grades that make the top set) is one short
stretch of the kernel's axis for almost the whole pool, and a length-scale fitted on 20 points has
to resolve it. Here each input is replaced by its mid-rank in the pool, ``(rank - 0.5) / N`` (ties
share their average rank): the pool is spread evenly along every axis, a uniform pool is left almost
as it was, and nothing is fitted (unlike learned warping, "Input warping", which the few points
had to determine). The GP, the fit and the bound are the default's; only the inputs differ. One
global setting, no per-set switch; results go where ``pool_bench.py`` keeps a variant, beside the
same reference rows.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_bench as pb  # noqa: E402

from dm_hpc.bench.strategies import Strategy  # noqa: E402


def pool_quantiles(X: torch.Tensor) -> torch.Tensor:
    """``N x d`` pool -> ``N x d`` mid-ranks in (0, 1) per column (ties: average rank)."""
    n = X.shape[0]
    ranks = rankdata(X.numpy(), method="average", axis=0)
    return torch.as_tensor((ranks - 0.5) / n, dtype=torch.double)


def main() -> None:
    a = pb.ablation_args(__doc__.split("\n\n")[0]).parse_args()
    pb.run_ablation(a, "pool-quantile", lambda X, s: Strategy("default", pool_quantiles(X), s))


if __name__ == "__main__":
    main()
