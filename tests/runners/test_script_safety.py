"""Attacks on job scripts through the site profile and the task spec, on the real local Slurm:
nothing a site or a user types is ever executed, and every value arrives as literal text."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from dm_hpc.runners import NO_RETRY, JobState, SiteProfile, TaskSpec
from dm_hpc.runners.slurm import SlurmRunner


def _planted(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name == "pwned"]


@pytest.mark.slurm
def test_placeholder_in_a_site_value_is_not_expanded(slurm_site, tmp_path):
    """Issue 11: an env value ``{{TASKS}}`` plus a run folder holding ``$(touch pwned)`` ran the
    command (templates were filled by successive str.replace)."""
    site = slurm_site.model_copy(update={"env": {**slurm_site.env, "DM_EVIL": "{{TASKS}}",
                                                 "DM_EVIL2": "{{ TASKS }}{% raw %}"}})
    task = TaskSpec(task_id="inj", argv=["sh", "-c", 'printf "%s|%s" "$DM_EVIL" "$DM_EVIL2"'],
                    workdir=tmp_path / "runs" / "w $(touch pwned) `touch pwned`",
                    walltime_s=60, campaign=f"inj-{uuid.uuid4().hex[:8]}")
    runner = SlurmRunner(site, tmp_path / "state", retry=NO_RETRY)
    out = runner.run([task], poll_s=0.2, timeout_s=90, progress=False)[0]
    assert out.state is JobState.COMPLETED, out.stderr_tail
    assert out.stdout_tail == "{{TASKS}}|{{ TASKS }}{% raw %}"
    assert _planted(tmp_path) == [] and not Path("pwned").exists()


def test_extra_sbatch_is_validated_option_by_option():
    ok = SiteProfile(extra_sbatch=["--mail-type=FAIL", "--constraint=skylake", "--exclusive",
                                   "--comment=acct-42", "--reservation=maint_1"])
    assert ok.extra_sbatch[0] == "--mail-type=FAIL"
    for bad in ["--mail-type=FAIL\n#SBATCH --wrap=id", "--wrap=touch x", "--output=/etc/passwd",
                "--constraint=a;touch x", "--comment=$(id)", "-A acct", "--chdir=/", "--uid=0",
                "--export=ALL,LD_PRELOAD=/x.so", "--mail-user=a b"]:
        with pytest.raises(ValidationError):
            SiteProfile(extra_sbatch=[bad])


KILLED_MANAGER = """
import json, sys, time
from pathlib import Path
from dm_hpc.runners import SiteProfile, TaskSpec
from dm_hpc.runners.slurm import SlurmRunner
site, state, runs, campaign = sys.argv[1:]
runner = SlurmRunner(SiteProfile.load(site), Path(state), use_arrays=False)
tasks = [TaskSpec(task_id=f"k{i}", argv=["sh", "-c", f"sleep 3; echo {i}"],
                  workdir=Path(runs) / f"k{i}", walltime_s=120, campaign=campaign) for i in range(4)]
runner.submit(tasks)
while runner.in_flight() > len(runner.job_ids()):  # the throttle may hold some back
    runner.poll(); time.sleep(0.05)
print(json.dumps(runner.job_ids()), flush=True)
time.sleep(600)
"""


@pytest.mark.slurm
def test_site_comment_is_merged_and_reattach_submits_each_task_once(slurm_site, tmp_path):
    """Issue 11: a site profile with its own ``--comment=`` broke re-attach (6 jobs for 4 tasks
    after a kill). Here the manager is killed (SIGKILL) after submitting; a new one re-attaches
    and resubmits only what it could not find, as the campaign manager does."""
    import json
    import os
    import signal
    import subprocess
    import sys

    import yaml

    from dm_hpc.runners import slurmcli

    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump({**yaml.safe_load((Path(__file__).parents[2] / "configs"
                                         / "sites" / "local.yaml").read_text()),
                                         "extra_sbatch": ["--comment=acct-42"]}))
    campaign = f"cm-{uuid.uuid4().hex[:8]}"
    manager = subprocess.Popen([sys.executable, "-c", KILLED_MANAGER, str(site_file),
                                str(tmp_path / "state"), str(tmp_path / "runs"), campaign],
                               stdout=subprocess.PIPE, text=True)
    jobs = json.loads(manager.stdout.readline())
    os.kill(manager.pid, signal.SIGKILL)
    manager.wait()
    assert len(jobs) == 4

    runner = SlurmRunner(SiteProfile.load(site_file), tmp_path / "state", use_arrays=False)
    followed = runner.reattach(campaign)
    tasks = [TaskSpec(task_id=f"k{i}", argv=["sh", "-c", f"sleep 3; echo {i}"],
                      workdir=tmp_path / "runs" / f"k{i}", walltime_s=120, campaign=campaign)
             for i in range(4)]
    runner.submit([t for t in tasks if t.task_id not in followed])  # what the manager does
    outs: list = []
    deadline = time.monotonic() + 120
    while len(outs) < 4 and time.monotonic() < deadline:
        outs += runner.poll()
        time.sleep(0.2)
    assert sorted(followed) == ["k0", "k1", "k2", "k3"]
    assert {o.state for o in outs} == {JobState.COMPLETED} and len(outs) == 4
    held = {j: c for j, (_, _, c) in slurmcli.squeue(jobs.values()).items()}
    assert sorted(held) == sorted(jobs.values())  # each task submitted once
    assert all(c.startswith("acct-42;dm-hpc:campaign=") for c in held.values())  # merged, kept


WAITING_MANAGER = """
import sys, time
from pathlib import Path
from dm_hpc.runners import SiteProfile, TaskSpec
from dm_hpc.runners.slurm import SlurmRunner
state, runs, campaign = sys.argv[1:]
site = SiteProfile.load("local").model_copy(update={"pack_window_s": 600})
runner = SlurmRunner(site, Path(state))
runner.submit([TaskSpec(task_id=f"w{i}", argv=["true"], method="emt", workdir=Path(runs) / f"w{i}",
                        walltime_s=120, campaign=campaign) for i in range(3)])
print(len(runner.job_ids()), flush=True)
time.sleep(600)
"""


@pytest.mark.slurm
def test_tasks_waiting_for_batch_mates_survive_a_killed_manager(slurm_site, tmp_path):
    """Short tasks wait in the runner's backlog for batch-mates; a manager killed then loses no
    task and the next runner submits each exactly once, as one array."""
    import os
    import signal
    import subprocess
    import sys

    campaign = f"wait-{uuid.uuid4().hex[:8]}"
    manager = subprocess.Popen([sys.executable, "-c", WAITING_MANAGER, str(tmp_path / "state"),
                                str(tmp_path / "runs"), campaign], stdout=subprocess.PIPE, text=True)
    assert manager.stdout.readline().strip() == "0"  # accepted, not yet sbatched
    os.kill(manager.pid, signal.SIGKILL)
    manager.wait()
    runner = SlurmRunner(slurm_site, tmp_path / "state")
    assert runner.reattach(campaign) == ["w0", "w1", "w2"]
    outs: list = []
    deadline = time.monotonic() + 60
    while len(outs) < 3 and time.monotonic() < deadline:
        outs += runner.poll()
        time.sleep(0.2)
    assert {o.state for o in outs} == {JobState.COMPLETED}
    assert len({o.job_id.split("_")[0] for o in outs}) == 1
    assert SlurmRunner(slurm_site, tmp_path / "state").reattach(campaign) == []


CRASHED_BEFORE_LOG = """
import json, os, sys
from pathlib import Path
from dm_hpc.runners import SiteProfile, TaskSpec
from dm_hpc.runners import slurm
site, state, runs, campaign = sys.argv[1:]

def crash(self, sub):  # the manager dies after sbatch, before the submissions line is written
    print(json.dumps(sub.job), flush=True)
    os._exit(9)

slurm.SubmissionLog.append = crash
runner = slurm.SlurmRunner(SiteProfile.load(site), Path(state), use_arrays=True)
tasks = [TaskSpec(task_id=f"k{i}", argv=["sh", "-c", f"sleep 3; echo {i}"],
                  workdir=Path(runs) / f"k{i}", walltime_s=120, campaign=campaign) for i in range(3)]
for t in tasks:
    t.workdir.mkdir(parents=True)
runner._launch([slurm.TaskRecord(t) for t in tasks])  # one array for the three tasks
"""


@pytest.mark.slurm
def test_a_site_comment_that_mimics_dm_hpc_cannot_make_a_restart_submit_twice(slurm_site, tmp_path):
    """Issue 18: a site ``--comment=dm-hpc:campaign=X:batch=FAKE`` plus a crash between sbatch
    and the submissions line made re-attach (which then read comments) miss the real array, and
    the restart submitted a second array for the same tasks. Re-attach reads dm-hpc's own job
    names now, never the comment."""
    import json
    import subprocess
    import sys

    import yaml

    from dm_hpc.runners import slurmcli

    campaign = f"cm-{uuid.uuid4().hex[:8]}"
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump({**yaml.safe_load((Path(__file__).parents[2] / "configs" / "sites"
                                                           / "local.yaml").read_text()),
                                         "extra_sbatch": [f"--comment=dm-hpc:campaign={campaign}:batch=FAKE"]}))
    proc = subprocess.run([sys.executable, "-c", CRASHED_BEFORE_LOG, str(site_file), str(tmp_path / "state"),
                           str(tmp_path / "runs"), campaign], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    array = json.loads(proc.stdout)
    runner = SlurmRunner(SiteProfile.load(site_file), tmp_path / "state", use_arrays=True)
    followed = runner.reattach(campaign)
    assert sorted(followed) == ["k0", "k1", "k2"]  # found by its job name, so nothing is resubmitted
    outs: list = []
    deadline = time.monotonic() + 120
    while len(outs) < 3 and time.monotonic() < deadline:
        outs += runner.poll()
        time.sleep(0.2)
    assert {o.state for o in outs} == {JobState.COMPLETED} and len(outs) == 3
    mine = {j.split("_")[0] for j, (_, _, c) in slurmcli.squeue_all().items() if campaign in c}
    assert mine == {array}  # one array for the three tasks, as before the crash
