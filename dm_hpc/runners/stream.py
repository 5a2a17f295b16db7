"""Streamed packing: many short tasks in one job, one process, the model loaded once.

A GPU force field (CHGNet) spends seconds loading its model and a few seconds per structure:
one job per task wastes the GPU on start-up. A method whose site entry has ``stream`` runs its
tasks N at a time in one job (``slurm/templates/stream.sbatch``): one Python process takes the
tasks of the job's ``manifest.json`` in turn and runs each dm-hpc worker in-process (so the
worker's module-level model cache is filled once), each in its own run folder with its own
``dm-task.out``/``dm-task.err``/``dm-task.times`` -- exactly what a one-task job leaves, so the
runner reads each task's state and the cost model each task's time. N follows the cost model:
as many tasks as fit ``stream.job_s`` at their learned run time, at most ``stream.max_tasks``.

Run as ``python -m dm_hpc.runners.stream MANIFEST_JSON`` inside the job.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

from dm_hpc.runners.spec import (STDERR_FILE, STDOUT_FILE, TaskSpec, read_times, write_ended,
                                 write_started)
from dm_hpc.runners.states import JobState
from dm_hpc.runners.taskexec import execute_task

WORKER_MODULE = "dm_hpc.compute.worker"
LOG_FILE = "stream.log"  # in the batch folder: one line per task (pid, task, exit code)


def tasks_per_job(expected_s: float | None, job_s: float, max_tasks: int) -> int:
    """How many tasks of ``expected_s`` seconds one streamed job takes (at least 1)."""
    if not expected_s or expected_s <= 0:
        return max_tasks
    return max(1, min(max_tasks, math.floor(job_s / expected_s)))


def task_state(spec: TaskSpec, job_state: JobState) -> tuple[JobState, int | None]:
    """A streamed task's state from its times file and its job's state."""
    started, ended, rc = read_times(spec.workdir)
    if ended is not None:
        return (JobState.COMPLETED if rc == 0 else JobState.FAILED), rc
    if job_state.is_final:  # the job ended before this task did (TIMEOUT, CANCELLED, ...)
        if started is None and job_state in (JobState.TIMEOUT, JobState.OUT_OF_MEMORY):
            # the job ran out of time or memory on the tasks before this one, which never ran:
            # it goes again as a preempted task does, with its own walltime and memory, and
            # nothing for the cost model (a TIMEOUT would double its walltime and write a
            # censored run time of its full walltime, for a task that ran no second)
            return JobState.PREEMPTED, None
        return (JobState.LOST if job_state is JobState.COMPLETED else job_state), None
    return (JobState.RUNNING if started is not None and job_state is JobState.RUNNING
            else JobState.PENDING), None


@contextlib.contextmanager
def _in_run_folder(spec: TaskSpec):
    """cwd, stdout/stderr (file descriptors too) and environment of the task, restored after."""
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    saved = [os.dup(1), os.dup(2)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(spec.workdir)
    os.environ.update(spec.env)
    for fd, name in ((1, STDOUT_FILE), (2, STDERR_FILE)):
        target = os.open(spec.workdir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)


def run_in_process(spec: TaskSpec) -> int:
    """Run the dm-hpc worker of ``spec`` in this process; its exit code (1: it raised)."""
    from dm_hpc.compute.worker import main

    spec.workdir.mkdir(parents=True, exist_ok=True)
    write_started(spec.workdir)
    rc = 1
    with _in_run_folder(spec):
        try:
            rc = int(main(list(spec.argv[3:])) or 0)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # the worker crashed: a FAILED task, the stream goes on
            import traceback

            traceback.print_exc()
    write_ended(spec.workdir, rc)
    return rc


def is_worker(spec: TaskSpec) -> bool:
    argv = list(spec.argv)
    return len(argv) >= 3 and argv[1:3] == ["-m", WORKER_MODULE]


def main(argv: list[str] | None = None) -> int:
    manifest = Path((argv or sys.argv[1:])[0])
    entries = json.loads(manifest.read_text())
    with open(manifest.parent / LOG_FILE, "a", buffering=1) as log:
        for entry in entries:
            spec = TaskSpec.model_validate(entry["spec"])
            if is_worker(spec):
                rc = run_in_process(spec)
            else:  # any other command: its own process, as in a one-task job
                rc = int(execute_task(entry["spec"])["exit_code"])
            log.write(f"{time.time():.3f} pid={os.getpid()} task={spec.task_id} exit={rc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
