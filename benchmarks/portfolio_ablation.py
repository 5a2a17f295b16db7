"""Ablation (issue 10, "model or acquisition portfolios"): GP-Hedge over three acquisitions.

Usage: OMP_NUM_THREADS=1 python benchmarks/portfolio_ablation.py [--only ackley3,p3ht] [--eta 1] [--seeds 10]
           [--arms ucb2,ucb1,ei]
       then python benchmarks/pool_bench.py --compare --variant hedge-eta1 (the folder it names)

Hoffman, Brochu and de Freitas (2011): every step the engine's default GP (``fit_surrogate``,
warm-started) nominates one pool point per arm - by default mean + 2 std (the default acquisition,
``ucb2``), mean + 1 std (``ucb1``) and analytic LogEI over the best posterior mean of the measured
points (``ei``); ``ucbK`` is mean + K std - and one nominee is chosen
with probability proportional to ``exp(eta * gain)``. After the next refit, each arm's gain grows
by the new posterior mean at its last nominee (standardised by the measured outcomes' spread).
The draw uses the seed's generator, so runs repeat. Results go where ``pool_bench.py`` keeps a
variant (``results/suite/hedge-eta<eta>/<set>-default.json``), beside the same reference rows.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_bench as pb  # noqa: E402

from dm_hpc.bench.strategies import Strategy  # noqa: E402


class Hedge(Strategy):
    """The default strategy's model, with the next point chosen by GP-Hedge over three arms."""

    def __init__(self, X: torch.Tensor, seed: int, eta: float, arms: list[str]):
        super().__init__("default", X, seed)
        self.eta, self.arms = eta, arms
        self.gains = np.zeros(len(arms))
        self.nominees: list[int] | None = None

    def select(self, observed: list[int], y: torch.Tensor) -> int:
        from botorch.acquisition.analytic import LogExpectedImprovement

        remaining, Xo, Yo = self.refit_default(observed, y)
        spread = float(Yo.std()) if len(Yo) > 1 and float(Yo.std()) > 0 else 1.0
        with torch.no_grad():
            if self.nominees is not None:  # reward each arm's last nominee under the refitted model
                mu = self.model.posterior(self.X[self.nominees]).mean.reshape(-1)
                self.gains += ((mu - Yo.mean()) / spread).numpy()
            Xr = self.X[torch.as_tensor(remaining)].unsqueeze(-2)  # n x 1 x d
            post = self.model.posterior(Xr)
            mean, std = post.mean.reshape(-1), post.variance.clamp_min(0).sqrt().reshape(-1)
            best = self.model.posterior(Xo).mean.max()
            arms = [LogExpectedImprovement(self.model, best_f=best)(Xr) if arm == "ei"
                    else mean + float(arm.removeprefix("ucb")) * std for arm in self.arms]
        self.nominees = [int(remaining[int(torch.argmax(a))]) for a in arms]
        p = np.exp(self.eta * (self.gains - self.gains.max()))
        return self.nominees[int(self.rng.choice(len(arms), p=p / p.sum()))]


def main() -> None:
    from dm_hpc.bench.suite import DEV_SUITE

    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="dev sets (default: all of DEV_SUITE)")
    ap.add_argument("--eta", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--arms", default="ucb2,ucb1,ei")
    a = ap.parse_args()
    arms = a.arms.split(",")
    tag = f"hedge-eta{a.eta:g}" + ("" if a.arms == "ucb2,ucb1,ei" else "-" + "-".join(arms))
    dest = Path(__file__).resolve().parent / "results" / "suite" / tag
    for name in a.only.split(",") if a.only else list(DEV_SUITE):
        t = time.time()
        run = pb.run_set(name, "default", a.seeds, a.budget, pb.DEVSETS, make=lambda X, s: Hedge(X, s, a.eta, arms))
        r = pb.save_run(dest, name, "default", tag, *run)
        print(f"{name} [{tag}]: AF={r['af']} EF_peak={r['ef_peak']:.2f} ({time.time() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
