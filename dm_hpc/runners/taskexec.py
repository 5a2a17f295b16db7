"""Run one task in its run folder (used inside pilot workers: dask workers, MPI farm ranks)."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from dm_hpc.runners.spec import STDERR_FILE, STDOUT_FILE, TaskSpec, write_ended, write_started
from dm_hpc.runners.states import JobState


def start_process(spec: TaskSpec) -> subprocess.Popen:
    """Start ``spec.argv`` (no shell) in its run folder, output to the run folder's files."""
    workdir = Path(spec.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_started(workdir)
    with open(workdir / STDOUT_FILE, "wb") as out, open(workdir / STDERR_FILE, "wb") as err:
        try:
            return subprocess.Popen(spec.argv, cwd=workdir, env={**task_environment(), **spec.env},
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)  # own group: a timeout kills it all
        except OSError as exc:  # command not found, not executable: a FAILED task, not a crash
            err.write(f"cannot start {spec.argv[0]!r}: {exc}\n".encode())
            raise


#: Variables that make a process believe it is a rank of the launcher's MPI job.
_KEEP_OMPI = {"OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"}


def task_environment() -> dict[str, str]:
    """This process's environment without the MPI launch variables of a farm rank.

    A task started by an MPI farm rank must not inherit ``OMPI_COMM_WORLD_RANK`` and friends:
    codes such as ASE would then think they are rank N of a parallel run and leave writing
    their output to "rank 0". A task that wants MPI starts its own ``mpirun``/``srun``.
    """
    return {k: v for k, v in os.environ.items()
            if not (k.startswith(("PMIX_", "PMI_")) or (k.startswith("OMPI_") and k not in _KEEP_OMPI))}


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def exit_code(proc: subprocess.Popen) -> int:
    """Shell convention: a process killed by signal N exits 128 + N."""
    rc = proc.returncode
    return 128 - rc if rc is not None and rc < 0 else int(rc or 0)


def execute_task(spec_json: dict[str, Any]) -> dict[str, Any]:
    """Run a task to its end with its walltime; returns ``{"state": name, "exit_code": int}``."""
    spec = TaskSpec.model_validate(spec_json)
    try:
        proc = start_process(spec)
    except OSError:
        write_ended(spec.workdir, 127)
        return {"state": JobState.FAILED.value, "exit_code": 127}
    try:
        proc.wait(timeout=spec.walltime_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait()
        write_ended(spec.workdir, exit_code(proc))
        return {"state": JobState.TIMEOUT.value, "exit_code": exit_code(proc)}
    rc = exit_code(proc)
    write_ended(spec.workdir, rc)
    return {"state": (JobState.COMPLETED if rc == 0 else JobState.FAILED).value, "exit_code": rc}
