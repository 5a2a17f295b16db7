"""OUT_OF_MEMORY: classified from what Slurm reports, and retried with more memory up to the
site's cap. The local Slurm does not enforce memory (see docs/measurements/cluster.md: cgroups are not
writable here, and jobacct_gather's OverMemoryKill needs memory as a consumable resource, which
would change every other test's scheduling), so the states below are recorded Slurm output."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from dm_hpc.runners import JobState, RetryPolicy, SiteProfile, TaskSpec
from dm_hpc.runners.slurm import SlurmRunner
from dm_hpc.runners.slurmcli import parse_jobcomp, parse_sacct, parse_squeue
from dm_hpc.runners.states import refine_oom

# Recorded from Slurm 22.05/23.02 sites with cgroup memory enforcement.
SACCT = "4242|OUT_OF_MEMORY|0:125\n4243_1|OUT_OF_ME+|0:125\n4244|FAILED|1:0\n"
SQUEUE = "4242|OUT_OF_MEMORY|32000|acct-42;dm-hpc:campaign=hea:batch=b1\n"
JOBCOMP = ("JobId=4250 UserId=u(1) GroupId=g(1) Name=dm-hea-array JobState=OUT_OF_MEMORY "
           "Partition=compute TimeLimit=30 ExitCode=0:125 ArrayJobId=4250 ArrayTaskId=3")
STEPD = ("slurmstepd: error: Detected 1 oom-kill event(s) in StepId=4244.batch. Some of your "
         "processes may have been killed by the cgroup out-of-memory handler.\n")
OVERKILL = "slurmstepd: error: Step 4245.0 exceeded memory limit (1200000 > 1024000), being killed\n" \
           "slurmstepd: error: Exceeded job memory limit\n"


def test_out_of_memory_is_classified_from_every_source():
    assert parse_sacct(SACCT)["4242"][0] is JobState.OUT_OF_MEMORY
    assert parse_sacct(SACCT)["4243_1"][0] is JobState.OUT_OF_MEMORY  # sacct's truncation
    assert parse_sacct(SACCT)["4244"] == (JobState.FAILED, 1)
    assert parse_squeue(SQUEUE)["4242"][0] is JobState.OUT_OF_MEMORY
    assert parse_jobcomp([JOBCOMP], {"4250_3"})["4250_3"][0] is JobState.OUT_OF_MEMORY
    # sites that report a memory kill as FAILED/CANCELLED: slurmstepd's message decides
    assert refine_oom(JobState.FAILED, STEPD) is JobState.OUT_OF_MEMORY
    assert refine_oom(JobState.CANCELLED, OVERKILL) is JobState.OUT_OF_MEMORY
    assert refine_oom(JobState.FAILED, "Traceback ... MemoryError\n") is JobState.FAILED
    assert refine_oom(JobState.COMPLETED, STEPD) is JobState.COMPLETED


def test_memory_grows_up_to_the_cap_then_stops(tmp_path: Path):
    policy = RetryPolicy(max_oom=5, memory_factor=2.0, max_memory_mb=3000)
    spec = TaskSpec(task_id="m", argv=["x"], workdir=tmp_path, walltime_s=60, memory_mb=1000)
    counts: dict[JobState, int] = {}
    asked = []
    while (spec := policy.next_spec(spec, JobState.OUT_OF_MEMORY, counts)) is not None:
        asked.append(spec.memory_mb)
        counts[JobState.OUT_OF_MEMORY] = counts.get(JobState.OUT_OF_MEMORY, 0) + 1
    assert asked == [2000, 3000]
    no_cap = RetryPolicy()
    assert no_cap.next_spec(spec or TaskSpec(task_id="m", argv=["x"], workdir=tmp_path, walltime_s=60,
                                             memory_mb=1000), JobState.OUT_OF_MEMORY, {}) is None


class RecordedOomSlurmRunner(SlurmRunner):
    """Real sbatch submissions; the state of each first attempt is replaced by a recorded
    OUT_OF_MEMORY (this Slurm cannot enforce memory; named so as a fake)."""

    def _check(self, active):
        got = super()._check(active)
        return {t: ((JobState.OUT_OF_MEMORY, 125) if st[0].is_final and self._asked(t) < 4000 else st)
                for t, st in got.items()}

    def _asked(self, task_id: str) -> int:
        return self._active[task_id].spec.memory_mb or 0


@pytest.mark.slurm
def test_oom_is_resubmitted_with_more_memory_up_to_the_site_cap(slurm_site, make_task, tmp_path):
    site = slurm_site.model_copy(update={"default_memory_mb": 1000, "max_memory_mb": 4000})
    runner = RecordedOomSlurmRunner(site, tmp_path / "state", retry=RetryPolicy(max_oom=5))
    out = runner.run([make_task(0, ["true"])], poll_s=0.2, timeout_s=90, progress=False)[0]
    scripts = sorted((tmp_path / "state").rglob("job.sbatch"), key=lambda p: p.parent.name)
    asked = [re.search(r"--mem=(\d+)M", p.read_text()).group(1) for p in scripts]
    assert asked == ["1000", "2000", "4000"]  # x2, then the cap; never above it
    assert out.state is JobState.COMPLETED and out.attempts == 3


def test_site_cap_reaches_the_runner_policy(tmp_path: Path):
    site = SiteProfile(max_memory_mb=64000)
    assert SlurmRunner(site, tmp_path, retry=RetryPolicy(max_failed=2)).retry.max_memory_mb == 64000
