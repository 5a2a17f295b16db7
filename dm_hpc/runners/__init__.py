"""Runners: where tasks (commands in run folders) run, and how they ended.

Stable interface, used by the campaign manager and the calculation recipes:

- :class:`JobState` (``states.py``) is the single source of job states: PENDING, RUNNING,
  COMPLETED, FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, CANCELLED, LOST;
  ``state.is_final``.
- :class:`TaskSpec`: ``task_id`` (stable, unique in a campaign), ``name`` (free text, only
  ever used as literal data), ``argv`` (no shell), ``workdir``, ``cores``, ``memory_mb``,
  ``walltime_s``, ``gpus``, ``env``, ``campaign``, ``method`` (the site's per-method resources),
  ``expected_s`` (expected run time: short tasks are packed), ``group`` (what arrays and
  streamed jobs are named after: the fidelity). The task writes its results in ``workdir``;
  runners add ``dm-task.out``, ``dm-task.err`` and ``dm-task.times`` there.
- :class:`Outcome`: ``task_id``, ``state``, ``exit_code``, ``job_id``, ``attempts``,
  ``stdout_tail``/``stderr_tail`` (last 4 KB), ``started``/``ended`` (epoch s, the last attempt),
  ``earlier_s`` (run seconds of the attempts retried before it), ``workdir``.
- :class:`Runner` protocol: ``submit(tasks) -> list[handle]`` (handles are task ids),
  ``poll() -> list[Outcome]`` (final outcomes since the last poll, after retries),
  ``states()``, ``cancel(task_ids)``, ``reattach(campaign) -> list[task_id]``, ``in_flight()``,
  ``close()``, and ``run(tasks)`` (submit + poll to the end, with a progress bar).
- :class:`RetryPolicy`: FAILED resubmitted up to N times; TIMEOUT with the walltime raised by
  a factor up to a cap; OUT_OF_MEMORY with the memory raised up to the site's cap;
  NODE_FAIL/PREEMPTED requeued; CANCELLED never.
  :class:`Throttle`: per-campaign cap on tasks in the queue, submissions per second, batch size.

Backends (thin; the shared machinery is in ``core.py``):
:class:`LocalRunner` (subprocesses sized to given cores), :class:`SlurmRunner` (sbatch; short
tasks packed into arrays with ``%N``; one squeue per poll interval, sacct/job-completion log for
jobs that left the queue; re-attach from its own journal of job ids, job names (never comments)
for batches missing from it; a journal line that cannot be written raises :class:`UnrecordedLaunch`
while the job is followed;
MPI layouts per method rendered as ``--ntasks``/``--cpus-per-task``/``srun``; methods with
``stream`` run many tasks per job in one process (``stream.py``); walltime and memory requests
from the learned cost model, ``costs.py``),
:class:`DaskPilotRunner` (dask-jobqueue ``SLURMCluster``), :class:`MpiFarmRunner` (one
allocation running an mpi4py master/worker farm), :class:`PyslurmRunner` (optional; only where
pyslurm imports and matches the site's Slurm). Site settings: :class:`SiteProfile`
(``configs/sites/*.yaml``); sbatch templates: ``slurm/templates/``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dm_hpc.runners.core import Runner, UnrecordedLaunch
from dm_hpc.runners.local import LocalRunner
from dm_hpc.runners.site import SiteProfile
from dm_hpc.runners.spec import NO_RETRY, Outcome, RetryPolicy, TaskSpec, Throttle
from dm_hpc.runners.states import JobState

if TYPE_CHECKING:
    from dm_hpc.runners.dask_pilot import DaskPilotRunner
    from dm_hpc.runners.mpi_farm import MpiFarmRunner
    from dm_hpc.runners.pyslurm_backend import PyslurmRunner
    from dm_hpc.runners.slurm import SlurmRunner

_LAZY = {
    "SlurmRunner": "dm_hpc.runners.slurm",
    "DaskPilotRunner": "dm_hpc.runners.dask_pilot",  # imports dask only when used
    "MpiFarmRunner": "dm_hpc.runners.mpi_farm",
    "PyslurmRunner": "dm_hpc.runners.pyslurm_backend",
}

__all__ = ["JobState", "TaskSpec", "Outcome", "RetryPolicy", "NO_RETRY", "Throttle", "Runner",
           "UnrecordedLaunch", "LocalRunner", "SiteProfile", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
