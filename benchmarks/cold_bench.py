"""Cold decision of two code trees side by side: fit + propose q = 16, each size in a fresh process.

Usage: OMP_NUM_THREADS=1 python benchmarks/cold_bench.py --trees BEFORE,AFTER [--sizes 1000,10000,100000] [--repeats 3]

``BEFORE`` and ``AFTER`` are checkouts of the project (e.g. ``git worktree add``). For every
repeat and size, each tree's own ``benchmarks/latency_bench.py`` runs once in a new process
(``--reference 0 --no-baseline``, the tree on ``PYTHONPATH``), the trees alternately, so that both
see the same load. Printed per run: the cold row's CPU seconds of fit + propose (the process's
``time.process_time``, first-call costs of torch, GPyTorch and BoTorch included, as in a new
campaign process), its wall seconds, the quality columns and the load average; then the median
per tree and size. Compare rows of one run: on a shared machine the seconds of two runs differ.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys


def cold_row(tree: str, size: int) -> dict[str, str]:
    """Run ``tree``'s latency bench for ``size`` records in a new process; its cold row's columns."""
    env = {**os.environ, "PYTHONPATH": tree, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, os.path.join(tree, "benchmarks", "latency_bench.py"), "--sizes", str(size),
           "--reference", "0", "--no-baseline"]
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith(f"| {size:,} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # records | surrogate | target | fit cold | propose | total cold | CPU s cold | fit warm | total warm | RMSE | latent | predictive | load
    return {"wall": cells[5], "cpu": cells[6], "rmse": cells[9], "latent": cells[10], "predictive": cells[11], "load": cells[12]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", required=True, help="BEFORE,AFTER: two checkouts of the project")
    ap.add_argument("--labels", default="before,after")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    trees = [os.path.abspath(t) for t in a.trees.split(",")]
    labels = a.labels.split(",")
    sizes = [int(s) for s in a.sizes.split(",")]
    print("| repeat | records | code | CPU s cold: fit + propose | wall cold (s) | RMSE vs truth | latent 90 % coverage | "
          "predictive 90 % coverage | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    totals: dict[tuple[int, str], list[float]] = {}
    for rep in range(a.repeats):
        for size in sizes:
            order = list(zip(labels, trees))
            for label, tree in (order if rep % 2 == 0 else order[::-1]):  # alternate who goes first
                r = cold_row(tree, size)
                totals.setdefault((size, label), []).append(float(r["cpu"].split("=")[-1]))
                print(f"| {rep + 1} | {size:,} | {label} | {r['cpu']} | {r['wall']} | {r['rmse']} | {r['latent']} | "
                      f"{r['predictive']} | {r['load']} |", flush=True)
    print("\n| records | code | median CPU s cold (fit + propose) | runs |")
    print("|---|---|---|---|")
    for (size, label), v in totals.items():
        print(f"| {size:,} | {label} | {statistics.median(v):.2f} | {', '.join(f'{x:.2f}' for x in v)} |")


if __name__ == "__main__":
    main()
