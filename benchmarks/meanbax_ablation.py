"""Ablation (issue 22 item 6): the default GP, and MeanBAX for the top set instead of the confidence bound.

Usage: OMP_NUM_THREADS=1 python benchmarks/meanbax_ablation.py [--only oer,ackley3] [--seeds 10]
       then python benchmarks/pool_bench.py --compare --variant meanbax (the folder it names)

The dev suite counts members of each pool's top set found (the best ceil(5 % N)). Bayesian
algorithm execution (Chitturi et al., npj Comput. Mater. 10, 156 (2024): "Targeted materials
discovery using Bayesian algorithm execution") turns such a goal, written as an algorithm ("the
best k of the pool"), into an acquisition; its MeanBAX runs the algorithm on the posterior mean over
the whole pool and measures the unmeasured point of that predicted set whose value is least certain
(largest posterior standard deviation). When every point of the predicted set has been measured it
has nothing to ask; the default's confidence bound then picks. The GP is the default's
(``fit_surrogate``, warm-started); k is the metrics' own 5 % (one global setting, no per-set switch).
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

TOP_SHARE = 0.05  # the metrics' top set


class MeanBAX(Strategy):
    """The default strategy's model; the pick is the least certain unmeasured point of the top set of its mean."""

    switched = 0
    steps = 0

    def select(self, observed: list[int], y: torch.Tensor) -> int:
        from dm_hpc.learn.moments import moments

        remaining = self.refit_default(observed, y)[0]
        mean, var = moments(self.model, self.X, 256)
        k = math.ceil(TOP_SHARE * len(self.X))
        predicted = np.argsort(-mean[:, 0].numpy(), kind="stable")[:k]
        open_ = np.intersect1d(predicted, remaining)
        MeanBAX.steps += 1
        if len(open_):
            return int(open_[int(torch.argmax(var[torch.as_tensor(open_), 0]))])
        MeanBAX.switched += 1
        r = torch.as_tensor(remaining)
        return int(remaining[int(torch.argmax(mean[r, 0] + 2.0 * var[r, 0].sqrt()))])


def main() -> None:
    a = pb.ablation_args(__doc__.split("\n\n")[0]).parse_args()
    pb.run_ablation(a, "meanbax", lambda X, s: MeanBAX("default", X, s),
                    note=lambda: f"(confidence bound at {MeanBAX.switched} of {MeanBAX.steps} steps so far)")


if __name__ == "__main__":
    main()
