"""Latency with quality columns: fit + propose a batch of 16 at 1,000 / 10,000 / 100,000 records.

Usage: OMP_NUM_THREADS=1 python benchmarks/latency_bench.py [--sizes 1000,10000,100000] [--test 2000]

Synthetic data: 8-element compositions on the simplex (the design space is the same simplex,
max 5 elements), outcome = a smooth function of the composition + Gaussian noise (sd 0.05). For each
size: the path campaigns take (``fit_surrogate(kind="auto")``: exact GP up to ``GP_MAX_POINTS``
records, whatever large-data surrogate "auto" dispatches to beyond), timed cold (first fit in the
process) and warm-started, and ``propose`` (q = 16; candidates 2,048 + local refinement); beside it
the test RMSE and the coverage of central 90 % predictive intervals (observation noise included
where the model has a likelihood) on ``--test`` fresh points. Reference row per size: an exact GP
conditioned on a random 2,000-point subset (all points when fewer), its hyper-parameters fitted
without iteration cap on 500 of them (a stock fit on all 1,000-2,000 points takes minutes on the
shared 2-core machine: 348 s at 1,000 under load). Targets (issue 10): fit + propose <= 2 / 10 / 60 s.
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
NOISE = 0.05  # outcome noise sd
REF_FIT_POINTS = 500  # hyper-parameter subset of the reference row
Z90 = 1.6448536269514722  # standard normal quantile 0.95: central 90 % interval


def truth(f: np.ndarray) -> np.ndarray:
    w = np.linspace(-1, 1, f.shape[1])
    return np.sin(3 * f @ w) + 2 * f[:, 0] * f[:, 1] - (f[:, 5] - 0.2) ** 2


def quality(model, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Test RMSE and share of ``y`` inside the central 90 % predictive interval of ``model`` at ``X``."""
    means, sds = [], []
    with torch.no_grad():
        for c in torch.split(X, 1024):
            try:
                post = model.posterior(c, observation_noise=True)
            except (TypeError, NotImplementedError):  # models without a likelihood
                post = model.posterior(c)
            means.append(post.mean[..., 0])
            sds.append(post.variance[..., 0].clamp_min(0).sqrt())
    mu, sd = torch.cat(means), torch.cat(sds)
    rmse = float(((mu - y) ** 2).mean().sqrt())
    cover = float(((y - mu).abs() <= Z90 * sd).double().mean())
    return rmse, cover


def main() -> None:
    from dm_hpc.acquire import DesignSpace, Objective, propose
    from dm_hpc.learn import fit_gp, fit_surrogate

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--q", type=int, default=16)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--reference", type=int, default=2000, help="subset size of the exact-GP reference row (0: none)")
    a = ap.parse_args()
    space = DesignSpace(elements={e: (0.0, 1.0) for e in ELEMENTS}, max_elements=5, descriptors=False)
    rng = np.random.default_rng(0)
    print(f"| records | surrogate | fit cold (s) | fit warm (s) | propose q={a.q} (s) | total cold (s) | total warm (s) | target (s) | test RMSE | 90 % coverage |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    targets = {1000: 2, 10000: 10, 100000: 60}
    f_test, _ = space.sample(a.test, rng)
    X_test = space.featurize(f_test)
    y_test = torch.tensor(truth(f_test) + NOISE * rng.standard_normal(a.test))
    for n in [int(s) for s in a.sizes.split(",")]:
        f, _ = space.sample(n, rng)
        X = space.featurize(f)  # n x 8
        Y = torch.tensor(truth(f) + NOISE * rng.standard_normal(n)).unsqueeze(-1)
        t = time.perf_counter()
        model = fit_surrogate(X, Y, kind="auto")
        t_fit = time.perf_counter() - t
        t = time.perf_counter()
        model2 = fit_surrogate(X, Y, kind="auto", warm_start=model)
        t_warm = time.perf_counter() - t
        t = time.perf_counter()
        props = propose(model2, space, [Objective(0, True)], q=a.q, n_candidates=2048)
        t_prop = time.perf_counter() - t
        assert len(props) == a.q
        rmse, cover = quality(model, X_test, y_test)
        print(f"| {n:,} | {type(model).__name__} (auto) | {t_fit:.2f} | {t_warm:.2f} | {t_prop:.2f} | {t_fit + t_prop:.2f} | "
              f"{t_warm + t_prop:.2f} | {targets.get(n, '-')} | {rmse:.4f} | {100 * cover:.1f} % |", flush=True)
        if a.reference:
            m = min(n, a.reference)
            idx = torch.as_tensor(rng.choice(n, m, replace=False))
            t = time.perf_counter()
            ref = fit_gp(X[idx], Y[idx], max_fit_points=REF_FIT_POINTS, maxiter=1000)
            t_ref = time.perf_counter() - t
            t = time.perf_counter()
            propose(ref, space, [Objective(0, True)], q=a.q, n_candidates=2048)
            t_rp = time.perf_counter() - t
            rmse, cover = quality(ref, X_test, y_test)
            print(f"| {n:,} | reference: exact GP on {m:,} points (hyper-parameters on {min(m, REF_FIT_POINTS)}, uncapped) | {t_ref:.2f} | - | {t_rp:.2f} | {t_ref + t_rp:.2f} | - | - | "
                  f"{rmse:.4f} | {100 * cover:.1f} % |", flush=True)


if __name__ == "__main__":
    main()
