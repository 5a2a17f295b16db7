"""Pilot runners through the real local Slurm: each runs 100 tasks to completion."""
from __future__ import annotations

import time

import pytest

from dm_hpc.runners import JobState, RetryPolicy
from dm_hpc.runners import slurmcli
from dm_hpc.runners.dask_pilot import DaskPilotRunner
from dm_hpc.runners.mpi_farm import MpiFarmRunner
from dm_hpc.runners.sbatch import batch_of

pytestmark = pytest.mark.slurm


def tasks_100(make_task):
    return [make_task(i, ["sh", "-c", f"echo {i} > result.txt; echo {i * i}"]) for i in range(100)]


def check_100(tasks, outs):
    assert len(outs) == 100 and {o.state for o in outs} == {JobState.COMPLETED}
    assert sorted(int(o.stdout_tail) for o in outs) == sorted(i * i for i in range(100))
    assert all((t.workdir / "result.txt").read_text() == f"{t.task_id[1:]}\n" for t in tasks)


def test_mpi_farm_runs_100_tasks_in_one_allocation(slurm_site, make_task, tmp_path):
    tasks = tasks_100(make_task)
    runner = MpiFarmRunner(slurm_site, tmp_path / "state", ranks=6)
    outs = runner.run(tasks, poll_s=0.2, timeout_s=120, progress=False)
    check_100(tasks, outs)
    assert len({o.job_id for o in outs}) == 1  # one Slurm job for all of them
    job = outs[0].job_id
    deadline = time.monotonic() + 30  # the farm ends right after its last result line
    while not slurmcli.states([job])[job][0].is_final and time.monotonic() < deadline:
        time.sleep(0.2)
    assert slurmcli.states([job])[job][0] is JobState.COMPLETED


def test_mpi_farm_reports_failures_per_task(slurm_site, make_task, tmp_path):
    tasks = [make_task(0, ["sh", "-c", "exit 4"]), make_task(1, ["true"])]
    outs = {o.task_id: o for o in MpiFarmRunner(slurm_site, tmp_path / "s", ranks=3,
                                                 retry=RetryPolicy(max_failed=0))
            .run(tasks, poll_s=0.2, timeout_s=60, progress=False)}
    assert outs["t0"].state is JobState.FAILED and outs["t0"].exit_code == 4
    assert outs["t1"].state is JobState.COMPLETED


def test_dask_pilot_runs_100_tasks_in_two_jobs(slurm_site, make_task, tmp_path):
    tasks = tasks_100(make_task)
    with DaskPilotRunner(slurm_site, tmp_path / "state", campaign=tasks[0].campaign,
                         jobs=2, workers_per_job=2) as runner:
        outs = runner.run(tasks, poll_s=0.2, timeout_s=180, progress=False)
        pilots = [j for j, (s, _, c) in slurmcli.squeue_all().items()
                  if batch_of(tasks[0].campaign, c)]
    check_100(tasks, outs)
    assert len(pilots) == 2  # the queue saw two pilot jobs, not 100
