"""Streamed packing (issue 20 item 3): many short force-field-like tasks per job, one process,
tasks taken in turn from the job's manifest, sized by the cost model, named per fidelity.

GPUs cannot run here: the tasks are real EMT calculations on the CPU of the local Slurm, and
the GPU request of a streamed CHGNet job is only rendered and read (FAKED: not submitted, the
local node has no GPU)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from dm_hpc.compute import read_result, worker_argv, write_task
from dm_hpc.runners import JobState, SiteProfile, TaskSpec
from dm_hpc.runners.sbatch import render_stream
from dm_hpc.runners.slurm import SlurmRunner
from dm_hpc.runners.stream import tasks_per_job


def emt_task(root: Path, i: int, campaign: str) -> TaskSpec:
    task_id = f"s{i}"
    path = write_task(root / task_id, ["Cu", "Ni", "Cu0.5Ni0.5", "Pd", "Au"][i % 5], "emt",
                      properties=["energy_per_atom"], task_id=task_id, campaign=campaign)
    return TaskSpec(task_id=task_id, argv=worker_argv(path), workdir=path.parent, walltime_s=120,
                    campaign=campaign, method="emt", group="screen")


def test_tasks_per_job_follow_the_expected_run_time():
    assert tasks_per_job(3.0, 1800, 64) == 64     # seconds-long tasks: the cap
    assert tasks_per_job(400.0, 1800, 64) == 4    # what fits the job's time
    assert tasks_per_job(4000.0, 1800, 64) == 1   # never zero
    assert tasks_per_job(None, 1800, 8) == 8


def test_a_streamed_gpu_job_asks_for_one_gpu_for_all_its_tasks(tmp_path: Path):
    """FAKED GPU: the script is rendered and read, not run (no GPU on this machine)."""
    site = SiteProfile.model_validate({"methods": {"chgnet": {
        "gpus": {"count": 1, "type": "a100"}, "cores": 4, "stream": {"max_tasks": 16}}}})
    specs = [TaskSpec(task_id=f"c{i}", argv=["/v/bin/python", "-m", "dm_hpc.compute.worker", "t.json"],
                      workdir=tmp_path / f"c{i}", walltime_s=60, method="chgnet", group="chgnet",
                      campaign="hea") for i in range(5)]
    text = render_stream(site, specs, job_name="dm-hea-chgnet", job_comment="x",
                         manifest="/m b/manifest.json", walltime_s=300)
    assert text.count("#SBATCH --gres=gpu:a100:1") == 1 and "#SBATCH --ntasks=1" in text
    assert "#SBATCH --time=00:05:00" in text
    assert text.rstrip().endswith("exec /v/bin/python -m dm_hpc.runners.stream '/m b/manifest.json'")
    runner = SlurmRunner(site, tmp_path / "state", own_folder=True)
    many = [specs[0].model_copy(update={"task_id": f"m{i}", "walltime_s": 1800}) for i in range(64)]
    scripts = runner.preview(many)  # 4 GPU jobs of 16 (max_tasks), not 64 jobs
    assert len(scripts) == 4 and all("# 16 short tasks in one job" in x for x in scripts)
    # job_s (30 min default) + one task's walltime of slack, not 16 x 30 min
    assert all("#SBATCH --time=01:00:00" in x for x in scripts)


@pytest.mark.slurm
def test_short_tasks_stream_through_one_process_per_job(slurm_site, tmp_path: Path):
    data = slurm_site.model_dump(mode="json")
    data["methods"]["emt"] = {"stream": {"max_tasks": 3}}  # stands in for a GPU force field
    site = SiteProfile.model_validate(data)
    campaign = f"stream-{tmp_path.name[-12:]}"
    runner = SlurmRunner(site, tmp_path / "state", own_folder=True)
    specs = [emt_task(tmp_path / "tasks", i, campaign) for i in range(5)]
    outcomes = runner.run(specs, poll_s=0.5, timeout_s=300, progress=False)
    assert [o.state for o in outcomes] == [JobState.COMPLETED] * 5, outcomes
    assert all(read_result(s.workdir).ok for s in specs)
    jobs = {o.job_id for o in outcomes}
    assert len(jobs) == 2  # 3 + 2 tasks, not 5 jobs
    batches = sorted((tmp_path / "state" / "batches").iterdir())
    counts = []
    for folder in batches:
        script = (folder / "job.sbatch").read_text()
        assert f"#SBATCH --job-name=dm-{campaign}-screen" in script and "--array" not in script
        log = (folder / "stream.log").read_text().splitlines()
        pids = {re.search(r"pid=(\d+)", line).group(1) for line in log}
        assert len(pids) == 1 and all(line.endswith("exit=0") for line in log)  # one process
        counts.append(len(json.loads((folder / "manifest.json").read_text())))
    assert sorted(counts) == [2, 3]
    # each task leaves what a one-task job leaves, and the cost model saw each of them
    assert all((s.workdir / "dm-task.times").read_text().count("ended") == 1 for s in specs)
    assert len(runner.costs(campaign).read("emt")) == 5


@pytest.mark.slurm
def test_a_restarted_runner_follows_every_task_of_a_streamed_job(slurm_site, tmp_path: Path):
    data = slurm_site.model_dump(mode="json")
    data["methods"]["emt"] = {"stream": {"max_tasks": 8}}
    site = SiteProfile.model_validate(data)
    campaign = f"restream-{tmp_path.name[-12:]}"
    first = SlurmRunner(site, tmp_path / "state", own_folder=True)
    specs = [emt_task(tmp_path / "tasks", i, campaign) for i in range(3)]
    first.submit(specs)
    deadline = time.monotonic() + 10
    while len(first.job_ids()) < 3 and time.monotonic() < deadline:  # the pack window
        first.poll()
        time.sleep(0.2)
    assert len(set(first.job_ids().values())) == 1  # one job for the three
    # the manager dies here; a new one re-attaches from the journal
    second = SlurmRunner(site, tmp_path / "state", own_folder=True)
    assert sorted(second.reattach(campaign)) == ["s0", "s1", "s2"]
    outcomes = []
    deadline = time.monotonic() + 300
    while len(outcomes) < 3 and time.monotonic() < deadline:
        outcomes += second.poll()
        time.sleep(0.5)
    assert sorted((o.task_id, o.state) for o in outcomes) == [
        (f"s{i}", JobState.COMPLETED) for i in range(3)]
    # and a third one, after all were delivered, follows none of them again
    assert SlurmRunner(site, tmp_path / "state", own_folder=True).reattach(campaign) == []
