"""MpiFarmRunner: many short tasks inside one Slurm allocation, by an mpi4py master/worker farm.

Each submitted batch becomes one job (``slurm/templates/mpi_farm.sbatch``) running ``mpirun``
on ``ranks`` ranks: rank 0 reads ``tasks.json``, hands tasks to free ranks and appends one JSON
line per finished task to ``results.jsonl``, which the runner reads while the job runs. Task
ids written to ``cancel.txt`` are not started (a running task finishes). If the allocation
ends early, its unfinished tasks take the job's final state (TIMEOUT, NODE_FAIL, ...), and the
retry policy decides; a farm that ended normally without a task's line reports it LOST.

Run as ``python -m dm_hpc.runners.mpi_farm TASKS_JSON RESULTS_JSONL`` under mpirun.
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dm_hpc.runners import sbatch, slurmcli
from dm_hpc.runners.core import Runner
from dm_hpc.runners.polling import PollClock
from dm_hpc.runners.site import SiteProfile
from dm_hpc.runners.spec import RetryPolicy, TaskRecord, Throttle, safe_text
from dm_hpc.runners.states import JobState

_counter = itertools.count()
_TASK, _RESULT, _STOP = 1, 2, 3


class MpiFarmRunner(Runner):
    """One Slurm job per submitted batch, ``ranks`` MPI ranks (1 master + ``ranks - 1`` workers)."""

    def __init__(self, site: SiteProfile, state_dir: Path, *, ranks: int = 8,
                 retry: RetryPolicy | None = None, throttle: Throttle | None = None) -> None:
        super().__init__(retry or RetryPolicy(max_walltime_s=site.max_walltime_s),
                         throttle or Throttle(max_in_queue=100_000, submit_rate=site.submit_rate_per_s,
                                              max_batch=100_000))
        self.site, self.ranks = site, max(2, ranks)
        self.state_dir = Path(state_dir).absolute()
        self._offsets: dict[Path, int] = {}
        self.clock = PollClock(site.poll_interval_s, site.poll_backoff, site.poll_max_interval_s)
        self._jobs: dict[str, tuple[JobState, int | None]] = {}
        self._results: dict[Path, dict[str, dict]] = {}

    def _launch(self, batch: list[TaskRecord]) -> None:
        spec = batch[0].spec
        farm_id = f"farm-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{next(_counter)}"
        folder = self.state_dir / safe_text(spec.campaign, 80) / "farms" / farm_id
        folder.mkdir(parents=True, exist_ok=True)
        tasks = folder / "tasks.json"
        tasks.write_text(json.dumps([r.spec.model_dump(mode="json") for r in batch]))
        ranks = min(self.ranks, len(batch) + 1)
        walltime = sum(r.spec.walltime_s for r in batch) // (ranks - 1) + spec.walltime_s
        script = folder / "job.sbatch"
        script.write_text(sbatch.render_farm(
            self.site, spec, ranks=ranks, walltime_s=min(walltime, self.site.max_walltime_s),
            # unique (the farm id): after a lost sbatch reply, sbatch finds the job by its name
            job_name=sbatch.job_name(f"dm-{spec.campaign}-farm", farm_id),
            job_comment=sbatch.comment(spec.campaign, farm_id, self.site.site_comment()),
            manifest=str(tasks), results=str(folder / "results.jsonl")))
        for rec in batch:
            rec.handle = folder  # before sbatch: a job found after a lost reply is adopted from it
        self._adopt(batch, slurmcli.sbatch(script, [f"--output={folder / 'slurm-%j.out'}",
                                                    f"--chdir={folder}"]))

    def _adopt(self, batch: list[TaskRecord], job_id: str) -> None:
        """Follow the farm ``job_id`` (its folder is the records' handle already)."""
        for rec in batch:
            rec.job_id = job_id

    def _check(self, active: list[TaskRecord]) -> dict[str, tuple[JobState, int | None]]:
        ids = {r.job_id for r in active if r.job_id}
        if self.clock.due():  # one squeue per poll interval, backing off while Slurm does not answer
            try:
                jobs = slurmcli.states(ids)  # before reading results: a state never postdates them
            except (slurmcli.SlurmError, subprocess.TimeoutExpired) as exc:
                # a controller outage is no news about the farms: asked again later
                self._unanswered(exc)
                return {}
            self._answered()
            self.clock.queried(any(self._jobs.get(j, (None,))[0] != s for j, (s, _) in jobs.items()))
            self._jobs = jobs
        jobs = self._jobs
        got: dict[str, tuple[JobState, int | None]] = {}
        for rec in active:
            folder: Path = rec.handle  # type: ignore[assignment]
            line = self._read(folder).get(rec.spec.task_id)
            job_state, job_rc = jobs.get(rec.job_id or "", (JobState.LOST, None))
            if line is not None:
                got[rec.spec.task_id] = (JobState(line["state"]), line.get("exit_code"))
            elif rec.job_id not in jobs:
                continue  # launched since Slurm last answered: no news until the next query
            elif job_state.is_final:
                lost = job_state in (JobState.COMPLETED, JobState.FAILED)
                got[rec.spec.task_id] = (JobState.LOST, None) if lost else (job_state, job_rc)
            else:
                got[rec.spec.task_id] = (job_state, None)
        return got

    def _read(self, folder: Path) -> dict[str, dict]:
        """New lines of the farm's results file (read incrementally)."""
        seen = self._results.setdefault(folder, {})
        path = folder / "results.jsonl"
        if path.exists():
            with open(path, "rb") as fh:
                fh.seek(self._offsets.get(folder, 0))
                data = fh.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
            self._offsets[folder] = self._offsets.get(folder, 0) + len(complete)
            for line in complete.splitlines():
                entry = json.loads(line)
                seen[entry["task_id"]] = entry
        return seen

    def _kill(self, records: list[TaskRecord]) -> None:
        by_farm: dict[Path, list[TaskRecord]] = {}
        for rec in records:
            by_farm.setdefault(rec.handle, []).append(rec)  # type: ignore[arg-type]
        for folder, recs in by_farm.items():
            with open(folder / "cancel.txt", "a") as fh:
                fh.writelines(f"{r.spec.task_id}\n" for r in recs)
            everyone = [r for r in self._active.values() if r.handle == folder]
            if all(r.cancel_requested for r in everyone):
                slurmcli.cancel([recs[0].job_id or ""])


def _cancelled(results: Path) -> set[str]:
    path = results.parent / "cancel.txt"
    return set(path.read_text().split()) if path.exists() else set()


def main(argv: list[str]) -> int:
    """The farm itself: rank 0 is the master, every other rank runs tasks."""
    from mpi4py import MPI

    from dm_hpc.runners.taskexec import execute_task

    comm, status = MPI.COMM_WORLD, MPI.Status()
    if comm.Get_rank() != 0:
        while True:
            task = comm.recv(source=0, tag=MPI.ANY_TAG, status=status)
            if status.Get_tag() == _STOP:
                return 0
            comm.send({"task_id": task["task_id"], **execute_task(task)}, dest=0, tag=_RESULT)
    tasks = json.loads(Path(argv[0]).read_text())
    results = Path(argv[1])
    pending = iter(tasks)
    busy = 0
    with open(results, "a") as out:
        def hand_out(worker: int) -> int:
            skip = _cancelled(results)
            for task in pending:
                if task["task_id"] not in skip:
                    comm.send(task, dest=worker, tag=_TASK)
                    return 1
                out.write(json.dumps({"task_id": task["task_id"], "state": "CANCELLED",
                                      "exit_code": None}) + "\n")
            comm.send(None, dest=worker, tag=_STOP)
            return 0

        for worker in range(1, comm.Get_size()):
            busy += hand_out(worker)
        while busy:
            result = comm.recv(source=MPI.ANY_SOURCE, tag=_RESULT, status=status)
            out.write(json.dumps(result) + "\n")
            out.flush()
            busy -= 1
            busy += hand_out(status.Get_source())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
