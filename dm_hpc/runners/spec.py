"""What a runner is given (TaskSpec), what it reports (Outcome), and the policies it follows."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dm_hpc.runners.states import JobState

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")

# Files a task's wrapper writes in its run folder (same names for every backend).
STDOUT_FILE = "dm-task.out"
STDERR_FILE = "dm-task.err"
TIMES_FILE = "dm-task.times"  # "started <epoch s>" then "ended <epoch s> <exit code>"
TAIL_BYTES = 4096


def safe_text(text: str, limit: int = 64) -> str:
    """Reduce free text to ``[A-Za-z0-9._-]`` (for job names and comments); never empty."""
    return (_SAFE.sub("_", text).strip("_") or "task")[:limit]


class TaskSpec(BaseModel):
    """One task: a command (argv, no shell) run in its own run folder.

    ``name`` is free text and may hold any characters: runners use it only as literal data
    (a manifest file) or reduced by :func:`safe_text` (job names). Memory in MB, walltime in s.
    """

    model_config = ConfigDict(frozen=True)

    task_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@+=-]+$")
    name: str = ""
    argv: list[str] = Field(min_length=1)
    workdir: Path
    cores: int = Field(default=1, ge=1)
    memory_mb: int | None = Field(default=None, ge=1)
    walltime_s: int = Field(ge=1)  # no default: a site profile's default_walltime_s is a choice
    gpus: int = Field(default=0, ge=0)
    env: dict[str, str] = Field(default_factory=dict)
    campaign: str = Field(default="default", min_length=1)
    #: calculation method (``emt``, ``gpaw``...): picks the site's per-method resources,
    #: modules and container. Empty: read from the run folder's ``task.json`` if there is one.
    method: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$")
    #: expected run time in s (the method's cost model); short tasks are packed into arrays.
    expected_s: float | None = Field(default=None, ge=0)
    #: what the task's job array is named after (``dm-<campaign>-<group>``): the campaign's
    #: fidelity; free text, reduced by :func:`safe_text` in job names. Tasks of different
    #: groups never share an array.
    group: str = Field(default="", max_length=64)

    @field_validator("env")
    @classmethod
    def _env_keys(cls, env: dict[str, str]) -> dict[str, str]:
        bad = [k for k in env if not ENV_KEY.fullmatch(k)]
        if bad:
            raise ValueError(f"environment variable names must be identifiers: {bad}")
        return env

    @field_validator("workdir")
    @classmethod
    def _absolute(cls, workdir: Path) -> Path:
        return workdir.expanduser().absolute()


@dataclass
class Outcome:
    """How a task ended. The runner does not parse scientific results: they lie in ``workdir``.

    Times are seconds since the epoch (None where unknown); ``attempts`` counts submissions.
    ``started``/``ended`` are the last attempt's; ``earlier_s`` sums the run time of the attempts
    the runner retried before it (what they held the task's cores for).
    """

    task_id: str
    state: JobState
    exit_code: int | None
    job_id: str | None
    attempts: int
    workdir: Path
    stdout_tail: str = ""
    stderr_tail: str = ""
    started: float | None = None
    ended: float | None = None
    earlier_s: float = 0.0

    @staticmethod
    def collect(spec: TaskSpec, state: JobState, exit_code: int | None, job_id: str | None,
                attempts: int, earlier_s: float = 0.0) -> "Outcome":
        """Build an outcome, reading output tails and times from the run folder."""
        started, ended, file_rc = read_times(spec.workdir)
        if exit_code is None:
            exit_code = file_rc
        return Outcome(spec.task_id, state, exit_code, job_id, attempts, spec.workdir,
                       tail(spec.workdir / STDOUT_FILE), tail(spec.workdir / STDERR_FILE),
                       started, ended, earlier_s)


def tail(path: Path, nbytes: int = TAIL_BYTES) -> str:
    """Last ``nbytes`` of a file as text ('' when missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - nbytes))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def write_started(workdir: Path) -> None:
    (workdir / TIMES_FILE).write_text(f"started {time.time():.6f}\n")


def write_ended(workdir: Path, exit_code: int) -> None:
    with open(workdir / TIMES_FILE, "a") as fh:
        fh.write(f"ended {time.time():.6f} {exit_code}\n")


def clear_run_files(workdir: Path) -> None:
    """Remove what an earlier attempt's wrapper left in the run folder (times file, output).
    A runner reads a task's state from ``dm-task.times`` (a streamed job's tasks, a job that
    left the queue): left from the attempt before, it would report the new attempt ended
    while its job still waits, and an outcome's tails would show the old attempt's output."""
    for name in (TIMES_FILE, STDOUT_FILE, STDERR_FILE):
        (workdir / name).unlink(missing_ok=True)


def read_times(workdir: Path) -> tuple[float | None, float | None, int | None]:
    """(started, ended, exit code) from the run folder's times file; None where absent."""
    started = ended = None
    rc = None
    try:
        for line in (workdir / TIMES_FILE).read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["started"] and len(parts) >= 2:
                started = float(parts[1])
            elif parts[:1] == ["ended"] and len(parts) >= 3:
                ended, rc = float(parts[1]), int(parts[2])
    except (OSError, ValueError):
        pass
    return started, ended, rc


def ran_seconds(spec: TaskSpec, state: JobState) -> float:
    """How long the attempt of ``spec`` that ended ``state`` ran, from its run folder's times
    file: a TIMEOUT killed before its wrapper wrote the end ran its walltime; 0 if it never started."""
    started, ended, _ = read_times(spec.workdir)
    if started and ended:
        return max(0.0, ended - started)
    return float(spec.walltime_s) if started and state is JobState.TIMEOUT else 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """What to do with a final state: FAILED is resubmitted up to ``max_failed`` times; TIMEOUT
    with the walltime times ``timeout_factor`` while below ``max_walltime_s``, up to
    ``max_timeout`` times; states in ``requeue`` (node failure, preemption) up to
    ``max_requeue`` times; OUT_OF_MEMORY with the memory times ``memory_factor`` while below
    ``max_memory_mb`` (a site cap; no cap, no OOM retry), up to ``max_oom`` times; CANCELLED
    never. Memory in MB, walltime in s."""

    max_failed: int = 1
    max_timeout: int = 2
    timeout_factor: float = 2.0
    max_walltime_s: int = 48 * 3600
    requeue: frozenset[JobState] = frozenset({JobState.NODE_FAIL, JobState.PREEMPTED})
    max_requeue: int = 5
    max_oom: int = 2
    memory_factor: float = 2.0
    max_memory_mb: int | None = None

    def next_spec(self, spec: TaskSpec, state: JobState, counts: dict[JobState, int]) -> TaskSpec | None:
        """The spec to resubmit after ``state`` (None: report the outcome). ``counts`` holds
        how many times each state was already retried for this task."""
        done = counts.get(state, 0)
        if state is JobState.FAILED and done < self.max_failed:
            return spec
        if state is JobState.TIMEOUT and done < self.max_timeout and spec.walltime_s < self.max_walltime_s:
            longer = min(self.max_walltime_s, int(spec.walltime_s * self.timeout_factor + 0.999))
            return spec.model_copy(update={"walltime_s": longer})
        if state in self.requeue and done < self.max_requeue:
            return spec
        if (state is JobState.OUT_OF_MEMORY and done < self.max_oom and spec.memory_mb
                and self.max_memory_mb and spec.memory_mb < self.max_memory_mb):
            more = min(self.max_memory_mb, int(spec.memory_mb * self.memory_factor + 0.999))
            return spec.model_copy(update={"memory_mb": more})
        return None


NO_RETRY = RetryPolicy(max_failed=0, max_timeout=0, max_requeue=0, max_oom=0)


@dataclass(frozen=True)
class Throttle:
    """How hard a runner may push its queue: at most ``max_in_queue`` tasks of one campaign
    submitted and not finished; at most ``submit_rate`` submissions (sbatch calls) per second;
    at most ``max_batch`` tasks per submission (one job array)."""

    max_in_queue: int = 1000
    submit_rate: float = 10.0
    max_batch: int = 1000


@dataclass
class TaskRecord:
    """The runner's book-keeping for one task (shared machinery, backends fill ``job_id``)."""

    spec: TaskSpec
    attempts: int = 0
    job_id: str | None = None
    state: JobState = JobState.PENDING
    retried: dict[JobState, int] = field(default_factory=dict)
    cancel_requested: bool = False
    handle: object = None  # backend-private (a Popen, a future, a farm id)
    queued_at: float = field(default_factory=time.monotonic)  # entered the backlog (packing)
    earlier_s: float = 0.0  # run seconds of the attempts retried so far (Outcome.earlier_s)
