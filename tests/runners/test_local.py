"""LocalRunner and the shared machinery (retry policy, cancel, pool size), no Slurm needed."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from dm_hpc.runners import NO_RETRY, JobState, LocalRunner, RetryPolicy, TaskSpec
from dm_hpc.runners.spec import read_times


def test_success_and_failure_with_exit_code_and_tails(make_task):
    runner = LocalRunner(cores=2, retry=RetryPolicy(max_failed=2))
    ok = make_task(0, ["sh", "-c", "echo result > out.txt; echo hello"])
    bad = make_task(1, ["sh", "-c", "echo oops >&2; exit 3"])
    out = {o.task_id: o for o in runner.run([ok, bad], poll_s=0.05, progress=False)}
    assert out["t0"].state is JobState.COMPLETED and out["t0"].exit_code == 0
    assert out["t0"].stdout_tail == "hello\n" and (ok.workdir / "out.txt").exists()
    assert out["t0"].started and out["t0"].ended and out["t0"].ended >= out["t0"].started
    assert out["t1"].state is JobState.FAILED and out["t1"].exit_code == 3
    assert out["t1"].attempts == 3 and out["t1"].stderr_tail == "oops\n"
    assert runner.in_flight() == 0


def test_missing_command_is_failed_not_a_crash(make_task):
    out = LocalRunner(cores=1, retry=NO_RETRY).run([make_task(0, ["/no/such/program"])],
                                                   poll_s=0.05, progress=False)
    assert out[0].state is JobState.FAILED and out[0].exit_code == 127


def test_timeout_raises_walltime_up_to_the_cap(make_task):
    retry = RetryPolicy(max_timeout=3, timeout_factor=2.0, max_walltime_s=2)
    task = make_task(0, ["sleep", "30"], walltime_s=1)
    t0 = time.monotonic()
    out = LocalRunner(cores=1, retry=retry).run([task], poll_s=0.05, progress=False)[0]
    # 1 s, then 2 s (the cap): the cap stops further retries. Only the lower bound is asserted
    # (both walltimes were honoured); an upper bound would be a wall-time assertion that a busy
    # machine breaks.
    assert out.state is JobState.TIMEOUT and out.attempts == 2
    assert time.monotonic() - t0 >= 3


def test_cancel_is_never_retried(make_task):
    runner = LocalRunner(cores=1, retry=RetryPolicy(max_failed=5))
    runner.submit([make_task(0, ["sleep", "30"]), make_task(1, ["sleep", "30"])])
    runner.cancel(["t0", "t1"])  # t0 running, t1 still in the backlog (1 core)
    out: dict = {}
    deadline = time.monotonic() + 10
    while len(out) < 2 and time.monotonic() < deadline:
        out.update({o.task_id: o for o in runner.poll()})
        time.sleep(0.05)
    assert {o.state for o in out.values()} == {JobState.CANCELLED}
    assert out["t0"].attempts == 1 and out["t1"].attempts == 0


def test_pool_never_runs_more_than_its_cores(make_task):
    tasks = [make_task(i, ["sleep", "0.3"]) for i in range(6)]
    LocalRunner(cores=2).run(tasks, poll_s=0.02, progress=False)
    spans = [read_times(t.workdir)[:2] for t in tasks]
    for start, _ in spans:
        running = sum(1 for s, e in spans if s <= start < e)
        assert running <= 2


def test_name_and_argv_stay_literal(make_task, tmp_path: Path):
    evil = "$(touch /tmp/pwned-local); \"' `touch /tmp/pwned-local`"
    task = TaskSpec(task_id="evil", name=evil, argv=[sys.executable, "-c",
                    "import os, sys; print(sys.argv[1]); print(os.environ['EVIL'])", evil],
                    workdir=tmp_path / "evil", env={"EVIL": evil}, walltime_s=60)
    out = LocalRunner(cores=1).run([task], poll_s=0.05, progress=False)[0]
    assert out.stdout_tail == f"{evil}\n{evil}\n"
    assert not Path("/tmp/pwned-local").exists()


def test_tasks_do_not_inherit_a_farm_rank_identity(monkeypatch):
    """A task started from an MPI rank must not look like a rank itself (ASE would then leave
    writing to rank 0), but keeps the site's permission to run mpirun as root."""
    from dm_hpc.runners.taskexec import task_environment

    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    monkeypatch.setenv("PMIX_RANK", "3")
    monkeypatch.setenv("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env = task_environment()
    assert "OMPI_COMM_WORLD_RANK" not in env and "PMIX_RANK" not in env
    assert env["OMPI_ALLOW_RUN_AS_ROOT"] == "1"
