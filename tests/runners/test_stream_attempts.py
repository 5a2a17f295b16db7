"""A streamed task's state comes from its own ``dm-task.times``: each attempt must be judged by
its own times file, and a task its job never reached is not charged with the job's TIMEOUT.

FAKES: ``slurmcli.sbatch``, ``slurmcli.states`` and ``slurmcli.peak_memory_mb`` are replaced by
in-process fakes (a dict of job states the test sets), because the situations (a streamed job
still pending after a retry, a streamed job killed at its walltime before its last tasks) cannot
be produced on demand, or only in minutes, on the local Slurm. The runner code under test is
the real one."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dm_hpc.runners import JobState, SiteProfile, TaskSpec, slurmcli
from dm_hpc.runners.slurm import SlurmRunner
from dm_hpc.runners.spec import write_ended, write_started


class FakeScheduler:
    """Job ids from 100 up; each job's (state, exit code) is what the test sets."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.jobs: dict[str, tuple[JobState, int | None]] = {}
        self.submitted: list[str] = []
        monkeypatch.setattr(slurmcli, "sbatch", self.sbatch)
        monkeypatch.setattr(slurmcli, "states",
                            lambda ids: {j: self.jobs.get(j, (JobState.LOST, None)) for j in ids})
        monkeypatch.setattr(slurmcli, "peak_memory_mb", lambda ids: {})

    def sbatch(self, script: Path, options: list[str]) -> str:
        job = str(100 + len(self.submitted))
        self.submitted.append(job)
        self.jobs[job] = (JobState.PENDING, None)
        return job


def streamed_site() -> SiteProfile:
    return SiteProfile.model_validate({
        "packing": "none", "poll_interval_s": 0.1, "poll_max_interval_s": 0.1,
        "methods": {"chgnet": {"stream": {"max_tasks": 8, "job_s": 600}}}})


def worker_task(workdir: Path, task_id: str, walltime_s: int = 600) -> TaskSpec:
    return TaskSpec(task_id=task_id, argv=["python", "-m", "dm_hpc.compute.worker", "task.json"],
                    workdir=workdir, walltime_s=walltime_s, method="chgnet", campaign="c")


def poll_after_interval(runner: SlurmRunner):
    time.sleep(0.15)  # the runner asks the (fake) scheduler at most once per poll interval
    return runner.poll()


def test_a_streamed_retry_is_not_judged_by_the_previous_attempts_times_file(monkeypatch, tmp_path: Path):
    slurm = FakeScheduler(monkeypatch)
    runner = SlurmRunner(streamed_site(), tmp_path / "slurm", own_folder=True)
    spec = worker_task(tmp_path / "tasks" / "t1", "t1")
    runner.submit([spec])
    assert slurm.submitted == ["100"]
    # attempt 1: the worker crashes (exit 1) inside the streamed job, which then completes
    write_started(spec.workdir)
    write_ended(spec.workdir, 1)
    slurm.jobs["100"] = (JobState.COMPLETED, 0)
    assert poll_after_interval(runner) == []  # FAILED once: retried (runner.retries = 1)
    assert slurm.submitted == ["100", "101"]
    # attempt 2 waits in the queue: nothing is final, whatever attempt 1 left
    assert poll_after_interval(runner) == []
    assert runner.states() == {"t1": JobState.PENDING}
    # attempt 2 runs and succeeds: that is what is delivered
    write_started(spec.workdir)
    write_ended(spec.workdir, 0)
    slurm.jobs["101"] = (JobState.COMPLETED, 0)
    [out] = poll_after_interval(runner)
    assert (out.state, out.exit_code, out.job_id, out.attempts) == (JobState.COMPLETED, 0, "101", 2)


def test_tasks_a_timed_out_stream_never_started_go_again_unchanged_and_cost_nothing(monkeypatch, tmp_path: Path):
    slurm = FakeScheduler(monkeypatch)
    runner = SlurmRunner(streamed_site(), tmp_path / "slurm", own_folder=True)
    specs = [worker_task(tmp_path / f"t{i}", f"t{i}", walltime_s=300) for i in (1, 2, 3)]
    runner.submit(specs)
    assert slurm.submitted == ["100"]  # one streamed job for the three
    # the job reaches its walltime inside t2; t3 is never started
    write_started(specs[0].workdir)
    write_ended(specs[0].workdir, 0)
    write_started(specs[1].workdir)
    slurm.jobs["100"] = (JobState.TIMEOUT, 143)
    out = {o.task_id: o.state for o in poll_after_interval(runner)}
    assert out == {"t1": JobState.COMPLETED}
    # t2 ran out of time: again with a longer walltime; t3 never ran: again as it was
    waiting = {r.spec.task_id: r for r in [*runner._active.values(), *runner._backlog]}
    assert waiting["t2"].spec.walltime_s == 600 and waiting["t3"].spec.walltime_s == 300
    assert JobState.TIMEOUT not in waiting["t3"].retried
    costs = [json.loads(line) for line in (tmp_path / "slurm" / "costs.jsonl").read_text().splitlines()]
    censored = [c for c in costs if c["state"] == "TIMEOUT"]
    assert len(censored) == 1  # t2's; none for t3, which ran no second
    assert not (specs[2].workdir / "dm-task.times").exists()
