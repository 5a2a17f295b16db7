"""Scheduler etiquette: one squeue per poll interval for all of a campaign's jobs, backing off
while nothing changes, measured with wrapped Slurm commands on the real local Slurm."""
from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from dm_hpc.runners import JobState, SiteProfile, TaskSpec, Throttle
from dm_hpc.runners.polling import PollClock
from dm_hpc.runners.slurm import SlurmRunner

WRAPPED = ("squeue", "sacct", "scontrol", "sbatch")


def wrap_slurm_commands(folder: Path, log: Path) -> str:
    """A PATH folder of wrappers that log each call and exec the real command; returns PATH."""
    folder.mkdir()
    real_path = os.environ["PATH"]
    for name in WRAPPED:
        script = folder / name
        script.write_text(f'#!/bin/sh\nprintf "%s %s\\n" "$(date +%s.%N)" "{name} $*" >> "{log}"\n'
                          f'PATH="{real_path}" exec {name} "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return f"{folder}:{real_path}"


def test_poll_clock_backs_off_while_nothing_changes():
    now = [0.0]
    clock = PollClock(30, backoff=2, max_interval_s=100, clock=lambda: now[0])
    assert clock.due()
    clock.queried(changed=False)
    assert not clock.due() and clock.interval_s == 60
    now[0] = 60
    clock.queried(changed=False)
    assert clock.interval_s == 100  # capped
    clock.queried(changed=True)
    assert clock.interval_s == 30  # back to the base as soon as a state moves


@pytest.mark.slurm
@pytest.mark.slow
def test_default_interval_asks_squeue_at_most_once_per_5_s(slurm_site, tmp_path, monkeypatch):
    """Six 20-s jobs, three in the queue at a time, the runner polled every 0.1 s (as the
    campaign manager does) at the site default interval of 30 s."""
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", wrap_slurm_commands(tmp_path / "bin", log))
    site = slurm_site.model_copy(update={"poll_interval_s": SiteProfile().poll_interval_s,
                                         "poll_max_interval_s": SiteProfile().poll_max_interval_s})
    runner = SlurmRunner(site, tmp_path / "state",
                         throttle=Throttle(max_in_queue=3, submit_rate=5, max_batch=3))
    tasks = [TaskSpec(task_id=f"e{i}", argv=["sleep", "20"], workdir=tmp_path / "runs" / f"e{i}",
                      walltime_s=120, campaign="etiquette") for i in range(6)]
    t0 = time.monotonic()
    outs = runner.run(tasks, poll_s=0.1, timeout_s=240, progress=False)
    minutes = (time.monotonic() - t0) / 60
    calls = [line.split()[1] for line in log.read_text().splitlines()]
    queries = sum(c in ("squeue", "sacct", "scontrol") for c in calls)
    assert {o.state for o in outs} == {JobState.COMPLETED}
    assert calls.count("squeue") >= 2  # it did ask
    per_minute = queries / minutes
    print(f"\netiquette: {queries} queries ({calls.count('squeue')} squeue, {calls.count('sacct')} "
          f"sacct, {calls.count('scontrol')} scontrol) + {calls.count('sbatch')} sbatch in "
          f"{minutes * 60:.0f} s: {per_minute:.1f} queries/min")
    assert per_minute <= 12  # at most one per 5 s on average


@pytest.mark.slurm
@pytest.mark.parametrize("packing", ["array", "none"])
def test_short_tasks_are_packed_into_one_array(slurm_site, tmp_path, monkeypatch, packing):
    """Tasks submitted one by one (as the manager does) whose method's cost model says they are
    short go as one throttled array; a long task is not held back; a site can forbid packing."""
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", wrap_slurm_commands(tmp_path / "bin", log))
    site = slurm_site.model_copy(update={"packing": packing, "pack_window_s": 1.0})
    runner = SlurmRunner(site, tmp_path / "state")
    short = [TaskSpec(task_id=f"s{i}", argv=["true"], workdir=tmp_path / "runs" / f"s{i}",
                      walltime_s=600, method="emt", campaign="pack") for i in range(5)]
    long = TaskSpec(task_id="l", argv=["true"], workdir=tmp_path / "runs" / "l", walltime_s=600,
                    method="gpaw", cores=2, campaign="pack")  # cost model: ~26 min per task
    assert runner.packs(short[0]) == (packing == "array") and not runner.packs(long)
    outs = []
    for spec in [*short, long]:
        runner.submit([spec])
        outs += runner.poll()
        time.sleep(0.1)
    assert runner.job_ids().get("l")  # the long one went at once
    deadline = time.monotonic() + 60
    while len(outs) < 6 and time.monotonic() < deadline:
        outs += runner.poll()
        time.sleep(0.1)
    assert {o.state for o in outs} == {JobState.COMPLETED}
    sbatches = [line for line in log.read_text().splitlines() if " sbatch " in line]
    assert len(sbatches) == (2 if packing == "array" else 6)
    arrays = {o.job_id.split("_")[0] for o in outs if o.task_id.startswith("s")}
    assert len(arrays) == (1 if packing == "array" else 5)


@pytest.mark.slurm
def test_a_long_job_list_is_one_squeue_for_the_user(slurm_site, make_task, tmp_path, monkeypatch):
    from dm_hpc.runners import slurmcli

    runner = SlurmRunner(slurm_site, tmp_path / "state", use_arrays=False)
    runner.submit([make_task(i, ["true"]) for i in range(3)])
    jobs = list(runner.job_ids().values())
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", wrap_slurm_commands(tmp_path / "bin", log))
    monkeypatch.setattr(slurmcli, "MAX_JOB_LIST", 2)
    held = slurmcli.squeue(jobs)
    assert sorted(held) == sorted(jobs)
    calls = log.read_text().splitlines()
    assert len(calls) == 1 and " squeue --me " in calls[0]
