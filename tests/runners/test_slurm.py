"""SlurmRunner against the real local Slurm (slurm/start-local.sh): states, retries, faults,
re-attach, throttling, and task names that must stay literal text."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from dm_hpc.runners import NO_RETRY, JobState, RetryPolicy, TaskSpec, Throttle
from dm_hpc.runners import slurmcli
from dm_hpc.runners.sbatch import batch_of
from dm_hpc.runners.slurm import SlurmRunner

pytestmark = pytest.mark.slurm


def wait_for(predicate, timeout_s: float = 60, step_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(step_s)


def campaign_jobs(campaign: str) -> dict[str, JobState]:
    return {j: s for j, (s, _, c) in slurmcli.squeue_all().items() if batch_of(campaign, c)}


def test_single_job_and_array_complete(slurm_site, make_task, tmp_path):
    single = SlurmRunner(slurm_site, tmp_path / "state", use_arrays=False)
    out = single.run([make_task(0, ["sh", "-c", "echo one > result.txt; echo done"])],
                     poll_s=0.2, timeout_s=60, progress=False)[0]
    assert out.state is JobState.COMPLETED and out.exit_code == 0 and "_" not in out.job_id
    assert out.stdout_tail == "done\n" and (tmp_path / "runs/t0/result.txt").read_text() == "one\n"

    array = SlurmRunner(slurm_site, tmp_path / "state")
    tasks = [make_task(i, ["sh", "-c", f"echo {i}"]) for i in range(1, 9)]
    outs = array.run(tasks, poll_s=0.2, timeout_s=60, progress=False)
    assert {o.state for o in outs} == {JobState.COMPLETED}
    assert len({o.job_id.split("_")[0] for o in outs}) == 1  # one array job
    assert sorted(o.stdout_tail for o in outs) == sorted(f"{i}\n" for i in range(1, 9))


def test_failed_keeps_exit_code_and_is_retried(slurm_site, make_task, tmp_path):
    runner = SlurmRunner(slurm_site, tmp_path / "state", retry=RetryPolicy(max_failed=1))
    out = runner.run([make_task(0, ["sh", "-c", "echo bad >&2; exit 7"])], poll_s=0.2,
                     timeout_s=60, progress=False)[0]
    assert out.state is JobState.FAILED and out.exit_code == 7
    assert out.attempts == 2 and out.stderr_tail == "bad\n"


def test_cancelled_is_not_retried(slurm_site, make_task, tmp_path):
    runner = SlurmRunner(slurm_site, tmp_path / "state", retry=RetryPolicy(max_failed=3))
    runner.submit([make_task(0, ["sleep", "60"])])
    wait_for(lambda: runner.poll() == [] and runner.states()["t0"] is JobState.RUNNING)
    job = runner.job_ids()["t0"]
    runner.cancel(["t0"])
    got = []
    wait_for(lambda: got.extend(runner.poll()) or got)
    assert got[0].state is JobState.CANCELLED and got[0].attempts == 1
    assert slurmcli.states([job])[job][0] is JobState.CANCELLED


def test_node_failure_is_requeued_and_completes(slurm_site, slurm_node, make_task, tmp_path):
    node = slurm_node
    runner = SlurmRunner(slurm_site, tmp_path / "state")
    runner.submit([make_task(0, ["sh", "-c", "sleep 3; echo survived"])])
    try:
        wait_for(lambda: runner.poll() == [] and runner.states()["t0"] is JobState.RUNNING)
        first = runner.job_ids()["t0"]
        slurmcli.set_node_state(node, "down", "dm-hpc test: injected node failure")
        wait_for(lambda: runner.poll() == [] and runner.job_ids().get("t0") != first)
        assert slurmcli.states([first])[first][0] is JobState.NODE_FAIL
        assert runner.states()["t0"] is JobState.PENDING  # resubmitted, waits for the node
    finally:
        slurmcli.set_node_state(node, "resume")
    got = []
    wait_for(lambda: got.extend(runner.poll()) or got, timeout_s=90)
    assert got[0].state is JobState.COMPLETED and got[0].attempts == 2
    assert got[0].stdout_tail == "survived\n" and got[0].job_id != first


REATTACH_SCRIPT = """
import json, sys, time
from pathlib import Path
from dm_hpc.runners import SiteProfile, TaskSpec
from dm_hpc.runners.slurm import SlurmRunner
state, runs, campaign = sys.argv[1:]
runner = SlurmRunner(SiteProfile.load("local"), Path(state))
tasks = [TaskSpec(task_id=f"r{i}", argv=["sh", "-c", f"sleep 4; echo {i}"],
                  workdir=Path(runs) / f"r{i}", walltime_s=120, campaign=campaign) for i in range(3)]
runner.submit(tasks)
print(json.dumps(runner.job_ids()), flush=True)
time.sleep(600)
"""


def test_reattach_after_manager_is_killed(slurm_site, tmp_path):
    campaign = f"reattach-{uuid.uuid4().hex[:10]}"
    manager = subprocess.Popen([sys.executable, "-c", REATTACH_SCRIPT, str(tmp_path / "state"),
                                str(tmp_path / "runs"), campaign], stdout=subprocess.PIPE, text=True)
    jobs = json.loads(manager.stdout.readline())
    os.kill(manager.pid, signal.SIGKILL)
    manager.wait()
    assert len(jobs) == 3

    runner = SlurmRunner(slurm_site, tmp_path / "state")
    assert sorted(runner.reattach(campaign)) == ["r0", "r1", "r2"]
    assert runner.job_ids() == jobs  # followed, not submitted again
    outs: dict = {}
    wait_for(lambda: outs.update({o.task_id: o for o in runner.poll()}) or len(outs) == 3)
    assert {o.state for o in outs.values()} == {JobState.COMPLETED}
    assert {o.task_id: o.job_id for o in outs.values()} == jobs
    assert len(campaign_jobs(campaign)) == 3
    # a second restart finds nothing left to follow: the outcomes were delivered
    assert SlurmRunner(slurm_site, tmp_path / "state").reattach(campaign) == []


def test_queue_cap_is_never_exceeded(slurm_site, make_task, tmp_path):
    cap = 4
    runner = SlurmRunner(slurm_site, tmp_path / "state",
                         throttle=Throttle(max_in_queue=cap, submit_rate=20, max_batch=3))
    tasks = [make_task(i, ["sleep", "0.5"]) for i in range(20)]
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            jobs = campaign_jobs(tasks[0].campaign)
            seen.append(sum(1 for s in jobs.values() if not s.is_final))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outs = runner.run(tasks, poll_s=0.1, timeout_s=120, progress=False)
    finally:
        stop.set()
        watcher.join()
    assert {o.state for o in outs} == {JobState.COMPLETED}
    assert len(seen) > 20 and max(seen) <= cap
    assert max(seen) >= 2  # the cap was used, not just one at a time


def test_task_name_with_shell_text_stays_literal(slurm_site, tmp_path):
    evil = "$(touch /tmp/pwned); \"' `touch /tmp/pwned` ${HOME}"
    Path("/tmp/pwned").unlink(missing_ok=True)
    task = TaskSpec(task_id="evil", name=evil, argv=["printf", "%s|%s", evil, "$EVIL"],
                    workdir=tmp_path / "runs" / "evil dir $(touch /tmp/pwned)", env={"EVIL": evil},
                    walltime_s=60, campaign=f"evil-{uuid.uuid4().hex[:10]}")
    for arrays in (False, True):
        runner = SlurmRunner(slurm_site, tmp_path / f"state{arrays}", use_arrays=arrays,
                             retry=NO_RETRY)
        twin = task.model_copy(update={"task_id": "evil2"})
        out = runner.run([task, twin], poll_s=0.2, timeout_s=60, progress=False)
        assert {o.state for o in out} == {JobState.COMPLETED}
        assert out[0].stdout_tail == f"{evil}|$EVIL"
        manifest = next((tmp_path / f"state{arrays}").rglob("manifest.json"))
        assert json.loads(manifest.read_text())[0]["spec"]["name"] == evil
    names = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%j"], capture_output=True,
                           text=True, check=True).stdout
    assert "$(" not in names and "`" not in names
    assert not Path("/tmp/pwned").exists()


def test_submit_rate_is_honoured(slurm_site, make_task, tmp_path):
    rate = 5.0  # sbatch calls per second
    runner = SlurmRunner(slurm_site, tmp_path / "state", use_arrays=False,
                         throttle=Throttle(max_in_queue=100, submit_rate=rate, max_batch=1))
    outs = runner.run([make_task(i, ["true"]) for i in range(6)], poll_s=0.1, timeout_s=60,
                      progress=False)
    assert {o.state for o in outs} == {JobState.COMPLETED}
    written = sorted(p.stat().st_mtime for p in (tmp_path / "state").rglob("manifest.json"))
    gaps = [b - a for a, b in zip(written, written[1:])]
    assert len(written) == 6 and min(gaps) >= 1 / rate - 0.02


def test_job_unknown_to_every_source_is_lost(slurm_site):
    assert slurmcli.states(["99999999", "99999998_3"]) == {
        "99999999": (JobState.LOST, None), "99999998_3": (JobState.LOST, None)}


def timed_out(slurm_site, tmp_path, make_task):
    """The run of the test below (started with the other TIMEOUT waits: conftest ``head_start``)."""
    runner = SlurmRunner(slurm_site, tmp_path / "state", retry=NO_RETRY)
    return runner.run([make_task(0, ["sh", "-c", "echo started; sleep 300"], walltime_s=1)],
                      poll_s=1, timeout_s=150, progress=False)[0]


@pytest.mark.slow
@pytest.mark.head_start.with_args(timed_out)
def test_timeout_is_reported(head_start):
    """The one TIMEOUT test: Slurm's shortest limit is a minute, checked every ~30 s."""
    out = head_start
    assert out.state is JobState.TIMEOUT and out.attempts == 1
    assert out.stdout_tail == "started\n"
