"""Attempts a runner retries itself are part of the task's run time: ``Outcome.earlier_s`` sums
them (``started``/``ended`` are the last attempt's), so the manager charges the task's cores for
every attempt. Before, nothing of an earlier attempt reached the outcome."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from dm_hpc.runners import JobState, LocalRunner, RetryPolicy, SiteProfile, TaskSpec
from dm_hpc.runners.slurm import SlurmRunner
from dm_hpc.runners.spec import ran_seconds, write_ended, write_started

#: fails once after sleeping 1 s (a marker file in the run folder), then succeeds at once
FAIL_ONCE = ["sh", "-c", "if [ -e tried ]; then exit 0; fi; touch tried; sleep 1; exit 3"]


def test_local_runner_outcome_counts_the_retried_attempt(make_task):
    [out] = LocalRunner(cores=1, retry=RetryPolicy(max_failed=1)).run(
        [make_task(0, FAIL_ONCE)], poll_s=0.05, progress=False)
    assert out.state is JobState.COMPLETED and out.attempts == 2
    assert out.earlier_s >= 1.0  # the first attempt slept 1 s before it failed
    assert out.started and out.ended  # the last attempt's own times are kept as they were


def test_an_attempt_that_is_not_retried_has_no_earlier_time(make_task):
    [out] = LocalRunner(cores=1, retry=RetryPolicy(max_failed=0)).run(
        [make_task(0, FAIL_ONCE)], poll_s=0.05, progress=False)
    assert out.state is JobState.FAILED and out.attempts == 1 and out.earlier_s == 0.0


@pytest.mark.slurm
def test_slurm_runner_outcome_counts_the_retried_attempt(slurm_site, make_task, tmp_path):
    runner = SlurmRunner(slurm_site, tmp_path / "state", retry=RetryPolicy(max_failed=1))
    [out] = runner.run([make_task(0, FAIL_ONCE)], poll_s=0.2, timeout_s=120, progress=False)
    assert out.state is JobState.COMPLETED and out.attempts == 2
    assert out.earlier_s >= 1.0


def test_a_timeout_killed_before_its_end_was_written_ran_its_walltime(tmp_path: Path):
    """Slurm kills a job's wrapper at its walltime before it writes the end of the times file."""
    spec = TaskSpec(task_id="t", argv=["true"], workdir=tmp_path, walltime_s=600)
    assert ran_seconds(spec, JobState.TIMEOUT) == 0.0  # never started
    write_started(tmp_path)
    assert ran_seconds(spec, JobState.TIMEOUT) == 600.0
    assert ran_seconds(spec, JobState.NODE_FAIL) == 0.0  # no end, no limit reached: unknown
    (tmp_path / "dm-task.times").write_text("started 100.0\nended 130.5 1\n")
    assert ran_seconds(spec, JobState.FAILED) == 30.5


def _one_task_and_restarts(monkeypatch, tmp_path: Path):
    """The in-process fake scheduler, one task, and a maker of runners on one state folder (each
    call: the manager started again), retrying a failure once."""
    from tests.runners.test_stream_attempts import FakeScheduler

    slurm = FakeScheduler(monkeypatch)
    site = SiteProfile.model_validate({"packing": "none", "poll_interval_s": 0.1, "poll_max_interval_s": 0.1})
    spec = TaskSpec(task_id="t1", argv=["true"], workdir=tmp_path / "t1", walltime_s=60, campaign="c")

    def runner() -> SlurmRunner:
        return SlurmRunner(site, tmp_path / "slurm", own_folder=True, retry=RetryPolicy(max_failed=1))

    return slurm, spec, runner


def test_a_reattached_task_keeps_the_time_of_its_earlier_attempts(monkeypatch, tmp_path: Path):
    """A review: a manager restart re-attached a retried task with ``earlier_s`` 0, so its first
    attempt was charged nothing. FAKE: the in-process scheduler of ``test_stream_attempts``."""
    slurm, spec, runner = _one_task_and_restarts(monkeypatch, tmp_path)
    first = runner()
    first.submit([spec])
    (spec.workdir / "dm-task.times").write_text("started 100.0\nended 130.5 1\n")
    slurm.jobs["100"] = (JobState.FAILED, 1)
    time.sleep(0.15)  # past the poll interval
    assert first.poll() == [] and slurm.submitted == ["100", "101"]  # retried
    again = runner()  # the manager restarts
    assert again.reattach("c") == ["t1"] and again.job_ids() == {"t1": "101"}
    (spec.workdir / "dm-task.times").write_text("started 200.0\nended 210.0 0\n")
    slurm.jobs["101"] = (JobState.COMPLETED, 0)
    time.sleep(0.15)
    [out] = again.poll()
    assert (out.state, out.attempts, out.earlier_s) == (JobState.COMPLETED, 2, 30.5)


def test_a_reattached_task_keeps_the_retries_it_has_used(monkeypatch, tmp_path: Path):
    """A manager restart re-attached a retried task with no retries counted, so its policy
    (one retry of a failure) began again: the task ran a third time. FAKE: the in-process scheduler
    of ``test_stream_attempts``."""
    slurm, spec, runner = _one_task_and_restarts(monkeypatch, tmp_path)
    first = runner()
    first.submit([spec])
    slurm.jobs["100"] = (JobState.FAILED, 1)
    time.sleep(0.15)
    assert first.poll() == [] and slurm.submitted == ["100", "101"]  # its one retry
    again = runner()  # the manager restarts
    assert again.reattach("c") == ["t1"]
    slurm.jobs["101"] = (JobState.FAILED, 1)
    time.sleep(0.15)
    [out] = again.poll()
    assert out.state is JobState.FAILED and slurm.submitted == ["100", "101"]
