"""Ablation (issue 22 item 6): a space-filling start before the default's decision.

Usage: OMP_NUM_THREADS=1 python benchmarks/maximin_start_ablation.py [--start 6] [--only griewank8-simplex] [--seeds 10]
           [--first-seed 10] [--out benchmarks/results/rerun-s39]
       then python benchmarks/pool_bench.py --compare --variant maximin-start6 --out DIR --against DIR/suite/default

Eighteen variants of the adopted decision (the default GP refitted on Yeo-Johnson-warped values, the
pick the largest mean + 2 std over the unmeasured pool) left Ackley-3 and Griewank-8 on the simplex
firmly behind stock BoTorch; all of them changed the model or the bound, none the start. Every
strategy gets the same 2 random initial points; from 2 or 3 points the GP's length scales are barely
informed and the bound's largest values sit at the pool's edges, so the first picks chase corners.
Stock BoTorch's tutorials start from a space-filling (Sobol) design instead. Here, while fewer than
``--start`` points (default 6: the first 4 picks) are measured, the pick is the unmeasured pool point
farthest from every measured one (the largest smallest Euclidean distance, inputs scaled to the unit
cube by the pool's bounds; ties: the lowest index), a greedy maximin design on the pool that needs
no model; from then on the pick is exactly the default's. Folder ``maximin-start<START>``.
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


class MaximinStart(Strategy):
    """Greedy maximin picks over the pool until ``start`` points are measured, then the default."""

    def __init__(self, X: torch.Tensor, seed: int, start: int = 6):
        super().__init__("default", X, seed)
        self.start = start

    def select(self, observed: list[int], y: torch.Tensor) -> int:
        if len(observed) >= self.start:
            return super().select(observed, y)  # the default's refit_decision + select_from_pool
        # unit cube: columns of very different ranges (compositions vs temperatures) count alike
        Z = (self.X - self.bounds[0]) / (self.bounds[1] - self.bounds[0])
        remaining = np.setdiff1d(np.arange(self.X.shape[0]), np.asarray(observed))
        gap = torch.cdist(Z[torch.as_tensor(remaining)], Z[torch.as_tensor(observed)]).min(1).values
        # torch.argmax returns the first maximum and ``remaining`` is sorted: ties go to the lowest index
        return int(remaining[int(torch.argmax(gap))])


def main() -> None:
    ap = pb.ablation_args(__doc__.split("\n\n")[0])
    ap.add_argument("--start", type=int, default=6,
                    help="measured points (the initial ones included) below which the pick is the maximin one")
    a = ap.parse_args()
    pb.run_ablation(a, f"maximin-start{a.start}", lambda X, s: MaximinStart(X, s, a.start))


if __name__ == "__main__":
    main()
