"""Requested vs used over a campaign: how the learned cost model tightens walltime and memory.

Runs waves of real EMT calculations (Cu-Ni-Pd-Au-Ag-Pt-Al alloys of 1-8 atoms) through the
SlurmRunner on the local Slurm (with accounting: sacct's MaxRSS is the used memory). Wave 1 asks
for what the campaign says (walltime 30 min, the site's 2000 MB); every later wave is sized by
the cost model learned from the waves before it (upper end of the 90 % range x 1.3; Slurm counts
walltime in whole minutes, so 60 s is the floor). Prints, per wave, the median requested/used
ratio of walltime and of memory, and writes a PNG of both over the campaign.

Timings are taken on a shared, loaded machine (2 cores, other jobs running): the ratios, not the
seconds, are the result. Needs ``bash slurm/start-local.sh``. Usage:
    python benchmarks/cost_bench.py [--waves 4] [--per-wave 6] [--png benchmarks/results/cost_requests.png]
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
from pathlib import Path

from dm_hpc.compute import worker_argv, write_task
from dm_hpc.runners import SiteProfile, TaskSpec
from dm_hpc.runners.slurm import SlurmRunner

REPO = Path(__file__).resolve().parents[1]
ALLOYS = ["Cu", "Ni", "Cu0.5Ni0.5", "Pd0.5Au0.5", "Ag0.25Cu0.75", "Pt0.5Ni0.5", "Al0.25Ni0.75",
          "Cu0.25Pd0.25Ni0.5", "Au0.5Ag0.5", "Pt0.25Cu0.75"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--waves", type=int, default=4)
    ap.add_argument("--per-wave", type=int, default=6)
    ap.add_argument("--png", type=Path, default=REPO / "benchmarks" / "results" / "cost_requests.png")
    args = ap.parse_args()
    site = SiteProfile.load("local").model_copy(update={"default_memory_mb": 2000, "max_memory_mb": 8000})
    root = Path(tempfile.mkdtemp(prefix="dm-cost-bench-"))
    runner = SlurmRunner(site, root / "slurm", own_folder=True)
    alloys = itertools.cycle(ALLOYS)
    rows = []
    for wave in range(1, args.waves + 1):
        specs = []
        for i in range(args.per_wave):
            task_id = f"w{wave}-{i}"
            path = write_task(root / "tasks" / task_id, next(alloys), "emt",
                              properties=["energy_per_atom", "lattice_parameter"], task_id=task_id,
                              campaign="cost-bench")
            specs.append(TaskSpec(task_id=task_id, argv=worker_argv(path), workdir=path.parent,
                                  walltime_s=1800, campaign="cost-bench", method="emt", group="emt"))
        outcomes = runner.run(specs, poll_s=1, timeout_s=1200, progress=False)
        bad = [o for o in outcomes if o.state.name != "COMPLETED"]
        if bad:
            print(f"wave {wave}: {len(bad)} task(s) did not complete: {bad[0]}", file=sys.stderr)
            return 1
        seen = [o for o in runner.costs("cost-bench").read() if o.job_id and o.state == "COMPLETED"]
        mine = seen[-len(specs):]
        wall = statistics.median(o.walltime_s / o.seconds for o in mine)
        mem = [o.requested_mb / o.memory_mb for o in mine if o.memory_mb and o.requested_mb]
        rows.append((wave, statistics.median(o.walltime_s for o in mine),
                     statistics.median(o.seconds for o in mine), wall,
                     statistics.median(o.requested_mb or 0 for o in mine),
                     statistics.median(o.memory_mb or 0 for o in mine),
                     statistics.median(mem) if mem else float("nan")))
    print("requested vs used per wave (medians; shared, loaded 2-core machine; local Slurm)")
    print(f"{'wave':>4} {'asked s':>8} {'used s':>7} {'wall ratio':>10} {'asked MB':>9} {'used MB':>8} {'mem ratio':>9}")
    for w, ask_s, used_s, wr, ask_mb, used_mb, mr in rows:
        print(f"{w:>4} {ask_s:>8.0f} {used_s:>7.1f} {wr:>10.1f} {ask_mb:>9.0f} {used_mb:>8.0f} {mr:>9.2f}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    waves = [r[0] for r in rows]
    ax.plot(waves, [r[3] for r in rows], "o-", label="walltime requested / used")
    ax.plot(waves, [r[6] for r in rows], "s-", label="memory requested / used (sacct MaxRSS)")
    ax.axhline(1, color="grey", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("wave (EMT calculations on the local Slurm)")
    ax.set_ylabel("median ratio")
    ax.set_xticks(waves)
    ax.set_title("Requests follow the learned cost model", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=120)
    print(f"plot: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
