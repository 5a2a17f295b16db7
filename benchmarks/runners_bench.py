"""Runner throughput on the local Slurm: 1,000 tiny tasks by each route.

Prints, per route, the wall time from first submission to the last outcome and the overhead per
task (wall time / tasks, as each task itself takes ~1 ms). Target: <= 60 s for the best route.
Needs the local cluster (``bash slurm/start-local.sh``). Usage:
    python benchmarks/runners_bench.py [--tasks 1000] [--routes jobs,arrays,dask,mpi]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dm_hpc.runners import JobState, Runner, SiteProfile, TaskSpec, Throttle
from dm_hpc.runners.dask_pilot import DaskPilotRunner
from dm_hpc.runners.mpi_farm import MpiFarmRunner
from dm_hpc.runners.slurm import SlurmRunner


def tiny_tasks(root: Path, route: str, n: int) -> list[TaskSpec]:
    return [TaskSpec(task_id=f"{route}-{i}", name=f"tiny {i}", argv=["true"],
                     workdir=root / route / f"{i:05d}", walltime_s=60, campaign=f"bench-{route}")
            for i in range(n)]


def make_runner(route: str, site: SiteProfile, state: Path, n: int) -> Runner:
    if route == "jobs":  # one sbatch per task, as fast as the site allows
        return SlurmRunner(site, state, use_arrays=False,
                           throttle=Throttle(max_in_queue=n, submit_rate=0, max_batch=1))
    if route == "arrays":
        return SlurmRunner(site, state, throttle=Throttle(max_in_queue=n, submit_rate=0, max_batch=n))
    if route == "dask":
        return DaskPilotRunner(site, state, campaign="bench-dask", jobs=4, workers_per_job=2)
    if route == "mpi":
        return MpiFarmRunner(site, state, ranks=9)
    raise ValueError(route)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--routes", default="jobs,arrays,dask,mpi")
    args = parser.parse_args()
    site = SiteProfile.load("local")
    # raise the array element throttle to the node's 16 advertised CPUs for every route
    site = site.model_copy(update={"array_throttle": 16})
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="dm-runners-bench-"))
    table = Table(title=f"{args.tasks} tiny tasks (argv: true) on the local Slurm")
    for col in ("route", "Slurm jobs", "wall time (s)", "overhead per task (ms)", "completed"):
        table.add_column(col, justify="right")
    try:
        for route in args.routes.split(","):
            tasks = tiny_tasks(root, route, args.tasks)
            setup = time.perf_counter()
            runner = make_runner(route, site, root / "state", args.tasks)
            setup = time.perf_counter() - setup
            t0 = time.perf_counter()
            outs = runner.run(tasks, poll_s=0.25, timeout_s=900, label=route)
            wall = time.perf_counter() - t0
            runner.close()
            ok = sum(o.state is JobState.COMPLETED for o in outs)
            jobs = len({(o.job_id or "").split("_")[0] for o in outs})
            jobs_text = "4 pilots" if route == "dask" else str(jobs)
            console.print(f"{route}: {wall:.1f} s (setup {setup:.1f} s), {ok}/{len(outs)} completed")
            table.add_row(route, jobs_text, f"{wall:.1f}", f"{1000 * wall / args.tasks:.1f}",
                          f"{ok}/{len(outs)}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    console.print(table)


if __name__ == "__main__":
    main()
