"""Transfer from large sources (issue 22 item 2: "scales to sources of 100,000 records - measured").

Usage: OMP_NUM_THREADS=1 python benchmarks/transfer_scale.py [--sizes 1000,10000,100000] [--seeds 3]
           [--subsets 500,5000] [--covariance-off] [--out benchmarks/results/transfer-scale]
       python benchmarks/transfer_scale.py --table [--out ...]      # the markdown table of the saved rows

The pair: the target is Hartmann-6 (maximised) on the unit cube; the source is the same function
with its optimum shifted by 0.05 per input, scaled by 1.5 and offset by 2 (another lab, another
calibration: ``transfer_bench``'s ``hartmann3-shifted`` in six inputs), measured at ``N_s`` uniform
points; 5 % noise each. A campaign early on: ``n`` = 20 target points (seeded draws).

Per source size and seed, each in its own process (so that its peak memory is its own), with the
engine's defaults (``learn.transfer``: the prior kind's source GP on a seeded subset of
``PRIOR_SOURCE_POINTS`` records, the multitask kind on ``MULTITASK_SOURCE_POINTS``, the guard):
- ``fit``: the first ``fit_transfer`` (source GPs fitted, every candidate model, the guard's
  leave-one-out scores), then a warm refit after one more target point (what every later step costs);
- ``decide``: a batch of 4 from 2,048 seeded candidates (``select_from_pool``, the pool path);
- quality on 2,000 held-out target points: RMSE of the latent mean against the truth and the share
  of the truth inside the latent 90 % intervals, beside the cold GP on the same 20 points;
- the process's peak resident memory.
``--subsets``: at the largest size, ``PRIOR_SOURCE_POINTS`` set to each value (what more of the
source would buy, and cost). ``--covariance-off``: each size also with the mean-only prior model
(``PRIOR_SOURCE_COVARIANCE`` off), for what the sources' covariance costs. All rows of one invocation run one after the other on one machine.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NOISE = 0.05
N_TARGET = 20
N_TEST = 2000
N_CANDIDATES = 2048


def _hartmann6(X: np.ndarray) -> np.ndarray:
    import torch
    from botorch.test_functions.synthetic import Hartmann

    return Hartmann(dim=6, negate=True)(torch.tensor(X)).numpy()


def data(n_source: int, seed: int) -> dict[str, np.ndarray]:
    """Source, target, held-out and candidate rows of one draw (``seed``); the source of size N is
    the first N rows of one 100,000-row draw, so that sizes differ only in how much of it there is."""
    big = np.random.default_rng(1000 + seed)
    S = big.random((max(n_source, 100_000), 6))[:n_source]
    ys_true = 1.5 * _hartmann6(np.clip(S - 0.05, 0, 1)) + 2.0
    rng = np.random.default_rng(seed)
    T = rng.random((N_TARGET + 1 + N_TEST, 6))
    t_true = _hartmann6(T)
    sd = t_true.std()
    return {"S": S, "ys": ys_true + NOISE * ys_true.std() * big.standard_normal(len(S)),
            "T": T, "t_true": t_true, "yt": t_true + NOISE * sd * rng.standard_normal(len(T)),
            "C": rng.random((N_CANDIDATES, 6))}


def one(n_source: int, seed: int, prior_points: int | None, covariance: bool | None = None) -> dict:
    """One row (run in its own process by ``main``); ``covariance``: ``PRIOR_SOURCE_COVARIANCE``
    for this row (None: the default)."""
    import warnings

    import torch

    from dm_hpc.acquire import Objective, select_from_pool
    from dm_hpc.learn import transfer
    from dm_hpc.learn.quality import against_truth
    from dm_hpc.learn.transfer import Source, fit_transfer

    warnings.simplefilter("ignore")
    if prior_points:
        transfer.PRIOR_SOURCE_POINTS = prior_points
    if covariance is not None:
        transfer.PRIOR_SOURCE_COVARIANCE = covariance
    d = data(n_source, seed)
    t = lambda a: torch.tensor(a, dtype=torch.double)  # noqa: E731
    src = Source("source", t(d["S"]), t(d["ys"]))
    X, y = t(d["T"][: N_TARGET + 1]), t(d["yt"][: N_TARGET + 1])
    test = slice(N_TARGET + 1, None)
    bounds = torch.stack([torch.zeros(6), torch.ones(6)]).double()
    row = {"n_source": n_source, "seed": seed, "prior_points": transfer.PRIOR_SOURCE_POINTS,
           "multitask_points": transfer.MULTITASK_SOURCE_POINTS, "n_target": N_TARGET,
           "source_covariance": transfer.PRIOR_SOURCE_COVARIANCE}
    row["rss_before_fit_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # imports and data
    c0, w0 = time.process_time(), time.perf_counter()
    fit = fit_transfer(X[:N_TARGET], y[:N_TARGET], [src], bounds=bounds, seed=seed)
    row["fit_cpu_s"], row["fit_wall_s"] = time.process_time() - c0, time.perf_counter() - w0
    c0, w0 = time.process_time(), time.perf_counter()
    warm = fit_transfer(X, y, [src], bounds=bounds, seed=seed, warm_start=fit)
    row["refit_cpu_s"], row["refit_wall_s"] = time.process_time() - c0, time.perf_counter() - w0
    c0, w0 = time.process_time(), time.perf_counter()
    select_from_pool(warm.model, X, t(d["C"]), [Objective(0, True)], q=4)
    row["decide_cpu_s"], row["decide_wall_s"] = time.process_time() - c0, time.perf_counter() - w0
    row["kind"], row["weight"] = warm.kind, float(warm.weights.get("source", 0.0))
    for name, model in (("used", warm.model), ("cold", warm.candidates["cold"])):
        q = against_truth(model, t(d["T"][test]), t(d["t_true"][test]), t(d["yt"][test]))
        row[f"{name}_rmse"], row[f"{name}_coverage"] = q["rmse_truth"], q["latent_coverage"]
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def table(out: Path) -> str:
    """Seed means per (source size, prior-model points) of the saved rows."""
    rows = [json.loads(line) for p in sorted(out.glob("*.jsonl")) for line in p.read_text().splitlines() if line.strip()]
    groups: dict[tuple[int, int, bool], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["n_source"], r["prior_points"], r["source_covariance"]), []).append(r)
    lines = ["| source records | prior-model points | source covariance | seeds | kind chosen | first fit CPU s | warm refit CPU s | "
             "decide (4 of 2,048) CPU s | RMSE, transfer / cold | latent 90 % coverage, transfer / cold | "
             "peak memory MB (before the fit) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (n, p, cov), rs in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1], not g[0][2])):
        m = lambda k: float(np.mean([r[k] for r in rs]))  # noqa: E731
        kinds = ", ".join(sorted({r["kind"] for r in rs}))
        lines.append(f"| {n:,} | {p:,} | {'on' if cov else 'off'} | {len(rs)} | {kinds} | {m('fit_cpu_s'):.1f} | {m('refit_cpu_s'):.1f} | "
                     f"{m('decide_cpu_s'):.2f} | {m('used_rmse'):.3f} / {m('cold_rmse'):.3f} | "
                     f"{m('used_coverage'):.0%} / {m('cold_coverage'):.0%} | {m('peak_rss_mb'):.0f} ({m('rss_before_fit_mb'):.0f}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--subsets", default="", help="PRIOR_SOURCE_POINTS values tried at the largest size")
    ap.add_argument("--covariance-off", action="store_true",
                    help="also each size with PRIOR_SOURCE_COVARIANCE off (the mean-only prior model)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "transfer-scale"))
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--one", nargs=4, type=int, metavar=("N_SOURCE", "SEED", "PRIOR_POINTS", "COVARIANCE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    out = Path(a.out)
    if a.one:
        print(json.dumps(one(a.one[0], a.one[1], a.one[2] or None, None if a.one[3] < 0 else bool(a.one[3]))))
        return
    if a.table:
        print(table(out))
        return
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in a.sizes.split(",")]
    runs = [(n, 0, -1) for n in sizes] + [(n, 0, 0) for n in sizes if a.covariance_off] \
        + [(sizes[-1], int(p), -1) for p in a.subsets.split(",") if p]
    dest = out / f"rows-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    for seed in range(a.seeds):
        for n, points, cov in runs:
            done = subprocess.run([sys.executable, __file__, "--one", str(n), str(seed), str(points), str(cov)],
                                  capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                raise SystemExit(f"size {n}, seed {seed}: failed\n{done.stderr[-2000:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            r["load"] = os.getloadavg()[0]
            with dest.open("a") as fh:
                fh.write(json.dumps(r) + "\n")
            print(f"source {n:,} (prior points {r['prior_points']}, covariance {r['source_covariance']}), seed {seed}: {r['kind']}, fit {r['fit_cpu_s']:.1f} + "
                  f"{r['refit_cpu_s']:.1f} CPU s, decide {r['decide_cpu_s']:.2f} s, RMSE {r['used_rmse']:.3f} (cold "
                  f"{r['cold_rmse']:.3f}), {r['peak_rss_mb']:.0f} MB", flush=True)
    print(table(out))


if __name__ == "__main__":
    main()
