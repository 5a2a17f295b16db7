"""DaskPilotRunner: a few pilot jobs (dask-jobqueue ``SLURMCluster``) run many short tasks.

The queue sees ``jobs`` pilot jobs (named ``dm-<campaign>-pilot``, commented like every dm-hpc
job); each task's argv runs as a subprocess inside a dask worker, with its walltime. A worker
lost with its pilot (node failure) reports NODE_FAIL, which the retry policy requeues.
Cancelling a task that already runs lets it finish (dask cannot stop a running subprocess).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dm_hpc.runners import sbatch
from dm_hpc.runners.core import Runner
from dm_hpc.runners.site import SiteProfile
from dm_hpc.runners.spec import RetryPolicy, TaskRecord, Throttle
from dm_hpc.runners.states import JobState
from dm_hpc.runners.taskexec import execute_task


class DaskPilotRunner(Runner):
    """``jobs`` Slurm jobs with ``workers_per_job`` single-threaded dask workers each."""

    def __init__(self, site: SiteProfile, state_dir: Path, *, campaign: str = "default",
                 jobs: int = 2, workers_per_job: int = 2, memory: str = "2GB",
                 walltime_s: int = 3600, retry: RetryPolicy | None = None) -> None:
        from dask_jobqueue import SLURMCluster
        from distributed import Client

        super().__init__(retry, Throttle(max_in_queue=100_000, submit_rate=0, max_batch=100_000))
        log_dir = Path(state_dir).absolute() / "dask"
        log_dir.mkdir(parents=True, exist_ok=True)
        extra = [f"--comment={sbatch.comment(campaign, 'dask-pilot', site.site_comment())}",
                 "--no-requeue"]
        extra += [f"--qos={site.qos}"] if site.qos else []
        self.cluster = SLURMCluster(
            cores=workers_per_job, processes=workers_per_job, memory=memory,
            queue=site.partition or None, account=site.account or None,
            walltime=sbatch.slurm_time(walltime_s), interface=site.dask_interface,
            job_name=f"dm-{campaign}-pilot", job_extra_directives=extra + [x for x in site.extra_sbatch
                                                              if not x.startswith("--comment=")],
            job_script_prologue=sbatch.site_setup(site).splitlines(),
            log_directory=str(log_dir), python=site.python)
        self.cluster.scale(jobs=jobs)
        self.client = Client(self.cluster)

    def _launch(self, batch: list[TaskRecord]) -> None:
        for rec in batch:
            key = f"{rec.spec.task_id}-a{rec.attempts}"
            rec.handle = self.client.submit(execute_task, rec.spec.model_dump(mode="json"),
                                            key=key, pure=False)
            rec.job_id = f"dask:{key}"

    def _check(self, active: list[TaskRecord]) -> dict[str, tuple[JobState, int | None]]:
        got: dict[str, tuple[JobState, int | None]] = {}
        for rec in active:
            fut: Any = rec.handle
            if fut.status == "finished":
                res = fut.result()
                got[rec.spec.task_id] = (JobState(res["state"]), res["exit_code"])
            elif fut.status == "error":
                from distributed.scheduler import KilledWorker

                lost = isinstance(fut.exception(), KilledWorker)
                got[rec.spec.task_id] = (JobState.NODE_FAIL if lost else JobState.FAILED, None)
            elif fut.status == "cancelled":
                got[rec.spec.task_id] = (JobState.CANCELLED, None)
            elif fut.status == "lost":
                got[rec.spec.task_id] = (JobState.LOST, None)
        return got

    def _kill(self, records: list[TaskRecord]) -> None:
        self.client.cancel([r.handle for r in records])

    def close(self) -> None:
        self.client.close()
        self.cluster.close()
