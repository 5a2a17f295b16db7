"""Asynchronous campaign benchmark: worker utilisation with 4 workers and uneven calculations.

Runs a real campaign (EMT on the local runner, real store, real BoTorch) whose compositions
have 1 to 4 elements, so cells and run times differ several-fold. Utilisation = time slots
were busy with a calculation / (slots x wall time). Target: >= 90%.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from dm_hpc.campaign import parse_campaign
from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.manager import CampaignManager


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--calculations", type=int, default=40)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dm-util-"))
    try:
        campaign = parse_campaign({
            "name": "utilisation", "store": str(tmp / "store"), "workdir": str(tmp / "run"), "seed": 2,
            "space": {"elements": {"Al": [0, 0.6], "Cu": [0, 1], "Ni": [0, 1], "Pd": [0, 0.6], "Ag": [0, 0.6]},
                      "max_elements": 4},
            "objectives": [{"property": "mixing_energy", "goal": "min"}],
            "fidelities": [{"name": "emt", "kind": "calculation", "method": "emt", "walltime": "10m"}],
            "budget": {"calculations": args.calculations},
            "runner": {"kind": "local", "cores": args.workers, "max_in_flight": args.workers},
            "learning": {"initial_points": 8, "refit_every": 4, "batch_size": 8},
        })
        t0 = time.perf_counter()
        summary = CampaignManager(campaign).run()
        wall = time.perf_counter() - t0
        state = jn.replay(campaign.run_dir / "journal.jsonl")
        times = []
        for task in state.tasks.values():
            from dm_hpc.runners.spec import read_times

            started, ended, _ = read_times(campaign.run_dir.absolute() / "tasks" / task.task_id)
            if started and ended:
                times.append(ended - started)
        print(f"{summary.ingested} calculations ({summary.failed} failed) on {args.workers} workers in {wall:.1f} s")
        print(f"calculation time: min {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s, "
              f"max {max(times):.2f} s (uneven: max/min = {max(times) / min(times):.1f})")
        print(f"surrogate refits: {state.refits}")
        print(f"worker utilisation (busy slot time / available slot time): {summary.utilisation:.1%}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
