"""Latency with quality columns: fit + propose a batch of 16 at 1,000 / 10,000 / 100,000 records.

Usage: OMP_NUM_THREADS=1 python benchmarks/latency_bench.py [--sizes 1000,10000,100000] [--test 2000]

Synthetic data: 8-element compositions on the simplex (the design space is the same simplex,
max 5 elements), outcome = a smooth function of the composition + Gaussian noise (sd 0.05). For each
size: the path campaigns take (``fit_surrogate(kind="auto")``: exact GP up to ``GP_MAX_POINTS``
records, an exact GP on a random subset beyond), timed cold (first fit of that size in the process)
and warm-started, and ``propose`` (q = 16; candidates 2,048 + local refinement). Quality on
``--test`` fresh points (``dm_hpc.learn.quality.against_truth``): RMSE of the latent mean against the
noise-free truth, coverage of the truth by the latent 90 % intervals (what the acquisition ranks
by) and of the noisy outcomes by the predictive ones. Side by side in the same run, so that the
machine's load is the same: the baseline (what "auto" was before issue 23: ``fit_gp`` with one
hyper-parameter start up to 2,000 records, the calibrated ensemble above) and a reference, an exact GP conditioned on a random 2,000-point subset (all
points when fewer), its hyper-parameters fitted without iteration cap on 500 of them. The load
average is printed with every row, and the process's CPU seconds of the cold fit and propose
(``time.process_time``; the first row of a process also pays torch's and BoTorch's first-call costs):
on a shared machine, compare rows of one run, not runs.
Targets (issue 10): fit + propose <= 2 / 10 / 60 s on a quiet machine.
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
PREVIOUS_GP_MAX_POINTS = 2000  # before issue 23, "auto" took the calibrated ensemble above this


def truth(f: np.ndarray) -> np.ndarray:
    w = np.linspace(-1, 1, f.shape[1])
    return np.sin(3 * f @ w) + 2 * f[:, 0] * f[:, 1] - (f[:, 5] - 0.2) ** 2


def timed_columns(fit, space, q: int, X_test, truth_test, y_test, warm: bool = True) -> str:
    """The measured columns of one row: ``fit(previous_model_or_None)`` cold (and warm-started
    when ``warm``), propose ``q``, quality against the truth, load average."""
    from dm_hpc.acquire import Objective, propose
    from dm_hpc.learn.quality import against_truth

    cpu = time.process_time()
    t = time.perf_counter()
    model = fit(None)
    t_fit = time.perf_counter() - t
    cpu_fit = time.process_time() - cpu
    t_warm = None
    if warm:
        t = time.perf_counter()
        model = fit(model)
        t_warm = time.perf_counter() - t
    cpu = time.process_time()
    t = time.perf_counter()
    props = propose(model, space, [Objective(0, True)], q=q, n_candidates=2048)
    t_prop = time.perf_counter() - t
    cpu_prop = time.process_time() - cpu
    assert len(props) == q
    quality = against_truth(model, X_test, truth_test, y_test)
    warm_cols = f"{t_warm:.2f} | {t_warm + t_prop:.2f}" if warm else "- | -"
    return (f"{t_fit:.2f} | {t_prop:.2f} | {t_fit + t_prop:.2f} | {cpu_fit:.2f} + {cpu_prop:.2f} = {cpu_fit + cpu_prop:.2f} | {warm_cols} | {quality['rmse_truth']:.4f} | "
            f"{100 * quality['latent_coverage']:.1f} % | {100 * quality['predictive_coverage']:.1f} % | "
            f"{os.getloadavg()[0]:.1f} |")


def main() -> None:
    from dm_hpc.acquire import DesignSpace
    from dm_hpc.learn import GP_MAX_POINTS, fit_gp, fit_surrogate

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--q", type=int, default=16)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--reference", type=int, default=2000, help="subset size of the exact-GP reference row (0: none)")
    ap.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                    help="what auto was before issue 23 (one-start exact GP; the calibrated ensemble above 2,000)")
    a = ap.parse_args()
    space = DesignSpace(elements={e: (0.0, 1.0) for e in ELEMENTS}, max_elements=5, descriptors=False)
    rng = np.random.default_rng(0)
    print(f"Shared 2-core machine, load average at start {os.getloadavg()[0]:.1f}: seconds are those of a loaded machine.")
    print(f"| records | surrogate | target (s) | fit cold (s) | propose q={a.q} (s) | total cold (s) | CPU s cold: fit + propose | fit warm (s) | "
          "total warm (s) | RMSE vs truth | latent 90 % coverage of truth | predictive 90 % coverage | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    targets = {1000: 2, 10000: 10, 100000: 60}
    f_test, _ = space.sample(a.test, rng)
    X_test = space.featurize(f_test)
    truth_test = torch.tensor(truth(f_test))
    y_test = truth_test + NOISE * torch.tensor(rng.standard_normal(a.test))
    for n in [int(s) for s in a.sizes.split(",")]:
        f, _ = space.sample(n, rng)
        X = space.featurize(f)  # n x 8
        Y = torch.tensor(truth(f) + NOISE * rng.standard_normal(n)).unsqueeze(-1)

        def row(label: str, fit, warm: bool = True, target="-") -> None:
            cols = timed_columns(fit, space, a.q, X_test, truth_test, y_test, warm)
            print(f"| {n:,} | {label} | {target} | {cols}", flush=True)

        kind = "gp" if n <= GP_MAX_POINTS else "subset-gp"
        row(f"{kind} (auto)", lambda warm: fit_surrogate(X, Y, kind="auto", warm_start=warm), target=targets.get(n, "-"))
        if a.baseline:  # what "auto" was before issue 23
            if n <= PREVIOUS_GP_MAX_POINTS:
                row("baseline: exact GP, one start (fit_gp)", lambda warm: fit_surrogate(X, Y, kind="gp", warm_start=warm))
            else:
                row("baseline: calibrated ensemble", lambda warm: fit_surrogate(X, Y, kind="ensemble"), warm=False)
        if a.reference:
            m = min(n, a.reference)
            idx = torch.as_tensor(rng.choice(n, m, replace=False))
            row(f"reference: exact GP on {m:,} random points (hyper-parameters on {min(m, REF_FIT_POINTS)}, uncapped)",
                lambda warm: fit_gp(X[idx], Y[idx], max_fit_points=REF_FIT_POINTS, maxiter=1000), warm=False)


if __name__ == "__main__":
    main()
