"""Time to propose a batch of 16 on synthetic data with 1,000 / 10,000 / 100,000 records (8 inputs).

Usage: OMP_NUM_THREADS=1 python benchmarks/latency_bench.py [--sizes 1000,10000,100000]

Synthetic data: 8-element compositions on the simplex (the design space is the same simplex,
max 5 elements), outcome = a smooth function of the composition + noise. For each size the
script times fit and proposal separately, for
  - the tuned path (``fit_surrogate(kind="auto")``: GP with hyper-parameters on a 250-point
    subset up to 2,000 records, deep ensemble beyond; candidates 2,048 + local refinement,
    pruned baseline), cold and warm-started (the second fit of a campaign step);
  - at 1,000 records also the stock path (exact GP fitted on all points, BoTorch defaults) for
    comparison.
Targets (issue 5): <= 2 s, <= 10 s, <= 60 s for fit + propose.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

ELEMENTS = ["Fe", "Ni", "Co", "Cr", "Mn", "Al", "Ti", "Cu"]


def truth(f: np.ndarray) -> np.ndarray:
    w = np.linspace(-1, 1, f.shape[1])
    return np.sin(3 * f @ w) + 2 * f[:, 0] * f[:, 1] - (f[:, 5] - 0.2) ** 2


def main() -> None:
    from dm_hpc.acquire import DesignSpace, Objective, propose
    from dm_hpc.learn import fit_gp, fit_surrogate

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--q", type=int, default=16)
    a = ap.parse_args()
    space = DesignSpace(elements={e: (0.0, 1.0) for e in ELEMENTS}, max_elements=5, descriptors=False)
    rng = np.random.default_rng(0)
    print(f"| records | surrogate | fit cold (s) | fit warm (s) | propose q={a.q} (s) | total cold (s) | target (s) |")
    print("|---|---|---|---|---|---|---|")
    targets = {1000: 2, 10000: 10, 100000: 60}
    for n in [int(s) for s in a.sizes.split(",")]:
        f, _ = space.sample(n, rng)
        X = space.featurize(f)  # n x 8
        Y = torch.tensor(truth(f) + 0.05 * rng.standard_normal(n)).unsqueeze(-1)
        t = time.perf_counter()
        model = fit_surrogate(X, Y, kind="auto")
        t_fit = time.perf_counter() - t
        t = time.perf_counter()
        model2 = fit_surrogate(X, Y, kind="auto", warm_start=model)
        t_warm = time.perf_counter() - t
        t = time.perf_counter()
        props = propose(model2, space, [Objective(0, True)], q=a.q, n_candidates=2048)
        t_prop = time.perf_counter() - t
        kind = type(model).__name__
        assert len(props) == a.q
        print(f"| {n:,} | {kind} | {t_fit:.2f} | {t_warm:.2f} | {t_prop:.2f} | {t_fit + t_prop:.2f} | {targets.get(n, '-')} |", flush=True)
        if n == 1000:
            t = time.perf_counter()
            stock = fit_gp(X, Y, max_fit_points=n, maxiter=1000)
            t_stock = time.perf_counter() - t
            t = time.perf_counter()
            propose(stock, space, [Objective(0, True)], q=a.q, n_candidates=2048)
            t_sp = time.perf_counter() - t
            print(f"| {n:,} | SingleTaskGP, hyper-parameters on all points, no iteration cap | {t_stock:.2f} | - | {t_sp:.2f} | {t_stock + t_sp:.2f} | (comparison) |", flush=True)


if __name__ == "__main__":
    main()
