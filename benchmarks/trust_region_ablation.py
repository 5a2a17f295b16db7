"""Ablation (issue 22 item 6): the default's confidence bound inside a trust region around the best point.

Usage: OMP_NUM_THREADS=1 python benchmarks/trust_region_ablation.py [--only oer,ackley3] [--seeds 10]
           [--fail-tol 3 --min-length 0.1] [--sparse global]
       then python benchmarks/pool_bench.py --compare --variant trust-region[...] (the folder it names)

The issue's "trust regions on large pools", after TuRBO-1 (Eriksson et al., NeurIPS 2019) on a pool:
a box centred on the best point measured so far, side ``L`` in the pool's unit cube, stretched per
input by the GP's length-scales (``ls_i / geometric mean``, as TuRBO does, so the box is longer along
inputs the objective varies slowly in); the default GP and its confidence bound (``select_from_pool``)
choose among the unmeasured pool points inside it. ``L`` starts at 0.8, doubles (up to 1.6) after 3
improvements of the best in a row and halves after ``max(4, d)`` steps without one; below 0.5^7 it
starts again at 0.8 (the data are kept: a pool campaign never throws a measurement away). When the
box holds fewer than ``--min-points`` unmeasured points, the nearest ones to its centre (in the box's
own stretched max-norm) are taken instead, so that a small pool never runs dry (``--sparse global``:
the whole pool instead). Unlike TuRBO, the second initial point already counts as a success or a
failure of the box (its first measurement sets the best). One global setting, no per-set switch;
results go where ``pool_bench.py`` keeps a variant
(``results/suite/trust-region/<set>-default.json``), beside the same reference rows.
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

L_INIT, L_MAX, L_MIN, SUCCESSES = 0.8, 1.6, 0.5**7, 3


def lengthscales(model, d: int) -> torch.Tensor:
    """The GP's ARD length-scales (``d``), ones when the model has none to give."""
    for module in model.modules():
        ls = getattr(module, "lengthscale", None)
        if isinstance(ls, torch.Tensor) and ls.numel() == d:
            return ls.detach().reshape(d).to(torch.double)
    return torch.ones(d, dtype=torch.double)


def in_region(U: torch.Tensor, centre: torch.Tensor, half: torch.Tensor, at_least: int, sparse: str = "nearest") -> torch.Tensor:
    """Indices of the rows of ``U`` (``m x d``, unit cube) inside the box ``centre +- half`` (``d``
    each). When fewer than ``at_least`` are: the ``at_least`` nearest to the centre in the box's
    stretched max-norm (``sparse="nearest"``), or every row (``"global"``: a pool too sparse around
    the best point to search it locally is searched as the default does)."""
    dist = ((U - centre).abs() / half).amax(-1)
    inside = torch.nonzero(dist <= 1.0).reshape(-1)
    if len(inside) >= min(at_least, len(U)):
        return inside
    if sparse == "global":
        return torch.arange(len(U))
    return torch.argsort(dist)[: min(at_least, len(U))]


class TrustRegion(Strategy):
    """The default strategy's model and acquisition, restricted to a TuRBO-1 box around the best point."""

    def __init__(self, X: torch.Tensor, seed: int, min_points: int, fail_tol: int = 0, min_length: float = L_MIN,
                 sparse: str = "nearest"):
        super().__init__("default", X, seed)
        self.min_points, self.sparse = min_points, sparse
        self.fail_tol = fail_tol or max(4, X.shape[1])  # TuRBO's max(4, d) unless given
        self.min_length = min_length
        self.length = L_INIT
        self.best: float | None = None
        self.successes = self.failures = 0
        self.seen = 0

    def _update(self, y: torch.Tensor) -> None:
        """Count the outcomes measured since the last call as successes or failures of the box."""
        for v in y[self.seen:].tolist():
            if self.best is None:
                self.best = v
                continue
            if v > self.best + 1e-3 * abs(self.best):
                self.successes, self.failures = self.successes + 1, 0
            else:
                self.successes, self.failures = 0, self.failures + 1
            self.best = max(self.best, v)
            if self.successes >= SUCCESSES:
                self.length, self.successes = min(2.0 * self.length, L_MAX), 0
            elif self.failures >= self.fail_tol:
                self.length, self.failures = self.length / 2.0, 0
            if self.length < self.min_length:
                self.length = L_INIT
        self.seen = len(y)

    def select(self, observed: list[int], y: torch.Tensor) -> int:
        from dm_hpc.acquire import Objective, select_from_pool

        self._update(y.reshape(-1))
        remaining, Xo, Yo = self.refit_default(observed, y)
        lo, span = self.bounds[0], self.bounds[1] - self.bounds[0]
        U = (self.X[torch.as_tensor(remaining)] - lo) / span
        ls = lengthscales(self.model, self.X.shape[1])
        weights = ls / ls.log().mean().exp()
        centre = (Xo[int(torch.argmax(Yo))] - lo) / span
        near = in_region(U, centre, weights * self.length / 2.0, self.min_points, self.sparse)
        cand = self.X[torch.as_tensor(remaining[near.numpy()])]
        idx = select_from_pool(self.model, Xo, cand, [Objective(0, True)], q=1, kind=self.kind)
        return int(remaining[near.numpy()][idx[0]])


def main() -> None:
    ap = pb.ablation_args(__doc__.split("\n\n")[0])
    ap.add_argument("--min-points", type=int, default=10, help="fewest unmeasured points the box offers")
    ap.add_argument("--fail-tol", type=int, default=0, help="steps without improvement before the box halves (0: TuRBO's max(4, d))")
    ap.add_argument("--min-length", type=float, default=L_MIN, help="below this side the box starts again at 0.8 (TuRBO: 0.5^7)")
    ap.add_argument("--sparse", choices=("nearest", "global"), default="nearest",
                    help="a box with fewer than --min-points: its nearest points, or the whole pool")
    a = ap.parse_args()
    tag = "trust-region" if not a.fail_tol and a.min_length == L_MIN else f"trust-region-fail{a.fail_tol}-min{a.min_length:g}"
    tag += "-sparse-global" if a.sparse == "global" else ""
    pb.run_ablation(a, tag, lambda X, s: TrustRegion(X, s, a.min_points, a.fail_tol, a.min_length, a.sparse))


if __name__ == "__main__":
    main()
