"""LocalRunner: a process per task on this machine, as many at once as the given cores allow."""
from __future__ import annotations

import os
import subprocess
import time

from dm_hpc.runners.core import Runner
from dm_hpc.runners.spec import RetryPolicy, TaskRecord, TaskSpec, Throttle, write_ended
from dm_hpc.runners.states import JobState
from dm_hpc.runners.taskexec import exit_code, kill_group, start_process


class LocalRunner(Runner):
    """The embedded default: tasks run as subprocesses (argv, no shell) while the sum of their
    ``cores`` fits in ``cores``; the walltime is enforced (TIMEOUT), memory is not."""

    def __init__(self, cores: int | None = None, retry: RetryPolicy | None = None, launcher=None) -> None:
        self.cores = cores or os.cpu_count() or 1
        self._start = launcher or start_process  # e.g. runners.preloaded.PreloadedLauncher()
        super().__init__(retry, Throttle(max_in_queue=10**9, submit_rate=0, max_batch=1))
        self._started: dict[str, float] = {}

    def _fits(self, rec: TaskRecord, batch: list[TaskRecord]) -> bool:
        used = sum(r.spec.cores for r in self._active.values())
        # a task wider than the machine still runs, alone
        return used == 0 or used + rec.spec.cores <= self.cores

    def _batch_key(self, spec: TaskSpec) -> tuple:
        return (spec.task_id,)

    def _launch(self, batch: list[TaskRecord]) -> None:
        for rec in batch:
            rec.job_id = f"local-{rec.spec.task_id}-{rec.attempts}"
            try:
                rec.handle = self._start(rec.spec)
                rec.state = JobState.RUNNING
            except OSError:
                write_ended(rec.spec.workdir, 127)
                rec.handle = None
            self._started[rec.spec.task_id] = time.monotonic()

    def _check(self, active: list[TaskRecord]) -> dict[str, tuple[JobState, int | None]]:
        got: dict[str, tuple[JobState, int | None]] = {}
        now = time.monotonic()
        for rec in active:
            proc: subprocess.Popen | None = rec.handle  # type: ignore[assignment]
            if proc is None:
                got[rec.spec.task_id] = (JobState.FAILED, 127)
                continue
            if proc.poll() is None:
                if now - self._started[rec.spec.task_id] > rec.spec.walltime_s:
                    kill_group(proc)
                    proc.wait()
                    write_ended(rec.spec.workdir, exit_code(proc))
                    got[rec.spec.task_id] = (JobState.TIMEOUT, exit_code(proc))
                continue
            rc = exit_code(proc)
            write_ended(rec.spec.workdir, rc)
            state = JobState.COMPLETED if rc == 0 else JobState.FAILED
            got[rec.spec.task_id] = (JobState.CANCELLED if rec.cancel_requested else state, rc)
        return got

    def _kill(self, records: list[TaskRecord]) -> None:
        for rec in records:
            if rec.handle is not None:
                kill_group(rec.handle)  # type: ignore[arg-type]

    def close(self) -> None:
        self._kill(list(self._active.values()))
