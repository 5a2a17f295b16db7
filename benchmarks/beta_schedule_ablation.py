"""Ablation (issue 22 item 6): the default's confidence bound with a width that shrinks as the budget is spent.

Usage: OMP_NUM_THREADS=1 python benchmarks/beta_schedule_ablation.py [--only oer,ackley3] [--seeds 10] [--floor 0.25]
       then python benchmarks/pool_bench.py --compare --variant beta-schedule-<floor> (the folder it names)

The default picks the candidate with the largest ``mean + sqrt(beta) sd``, beta = 4 throughout. A
campaign knows its budget, and a measurement late in it is worth more as a find than as knowledge
for steps that will not come: here beta falls linearly from 4 at the first pick to ``floor`` at the
last one (``beta_t = floor + (4 - floor) (T - t) / (T - n0)``, t the evaluations so far, T the
budget, n0 the initial points). Early picks explore as the default does (the steels' top family is
found by exploring; a greedy beta = 1 throughout lost it, "Ablations"), late ones exploit the region
found. The GP is the default's decision model (``Strategy.refit_decision``: warped values, one
length-scale below ten points per input, warm-started; the 2026-12-03 run used the raw-values model
of that day's default); the bound is its closed form at every unmeasured pool point
(``learn.moments``), as ``exact_ucb`` computes the default's. One global
setting, no per-set switch; results go where ``pool_bench.py`` keeps a variant, beside the same
reference rows.
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

BETA0 = 4.0  # the default's (acquire.acquisition.UCB_BETA)


def beta_at(t: int, budget: int, n0: int, floor: float) -> float:
    """The width's square at the pick after ``t`` evaluations of a ``budget`` with ``n0`` initial points."""
    span = max(budget - 1 - n0, 1)
    left = min(max(budget - 1 - t, 0), span)
    return floor + (BETA0 - floor) * left / span


class BetaSchedule(Strategy):
    """The default strategy's model; the bound's width shrinks linearly over the budget."""

    def __init__(self, X: torch.Tensor, seed: int, budget: int, floor: float, n0: int = 2):
        super().__init__("default", X, seed)
        self.budget, self.floor, self.n0 = budget, floor, n0

    def select(self, observed: list[int], y: torch.Tensor) -> int:
        from dm_hpc.learn.moments import moments

        remaining = np.setdiff1d(np.arange(self.X.shape[0]), np.asarray(observed))
        self.refit_decision(observed, y)  # the default's decision model (warped values, one length-scale)
        mean, var = moments(self.model, self.X[torch.as_tensor(remaining)], 256)
        beta = beta_at(len(observed), self.budget, self.n0, self.floor)
        return int(remaining[int(torch.argmax(mean[:, 0] + beta ** 0.5 * var[:, 0].sqrt()))])


def main() -> None:
    ap = pb.ablation_args(__doc__.split("\n\n")[0])
    ap.add_argument("--floor", type=float, default=0.25, help="beta at the last pick (the default: 4 throughout)")
    a = ap.parse_args()
    pb.run_ablation(a, f"beta-schedule-{a.floor:g}", lambda X, s: BetaSchedule(X, s, a.budget, a.floor))


if __name__ == "__main__":
    main()
