"""SlurmRunner: one job per task or job arrays, through the Slurm commands.

Every batch gets a folder ``<state_dir>/<campaign>/batches/<batch id>/`` holding the rendered
``job.sbatch``, ``manifest.json`` (array index -> task spec, written before sbatch) and Slurm's
own output. Jobs carry the comment ``dm-hpc:campaign=<c>:batch=<b>``; a restarted manager finds
them with ``squeue`` and re-reads the manifests (``reattach``). Outcomes already handed out are
journalled in ``<state_dir>/<campaign>/delivered.txt`` so a restart does not report them twice.
"""
from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

from dm_hpc.runners import sbatch, slurmcli
from dm_hpc.runners.core import Runner
from dm_hpc.runners.site import SiteProfile
from dm_hpc.runners.spec import Outcome, RetryPolicy, TaskRecord, TaskSpec, Throttle, safe_text
from dm_hpc.runners.states import JobState

_counter = itertools.count()


class SlurmRunner(Runner):
    """Tasks as Slurm jobs: arrays (``%N`` throttle) when ``use_arrays``, else one job each."""

    def __init__(self, site: SiteProfile, state_dir: Path, *, use_arrays: bool = True,
                 retry: RetryPolicy | None = None, throttle: Throttle | None = None) -> None:
        super().__init__(retry or RetryPolicy(max_walltime_s=site.max_walltime_s),
                         throttle or site.throttle())
        self.site = site
        self.state_dir = Path(state_dir).absolute()
        self.use_arrays = use_arrays

    # -- backend hooks ---------------------------------------------------------------------
    def _batch_limit(self) -> int:
        return self.throttle.max_batch if self.use_arrays else 1

    def _launch(self, batch: list[TaskRecord]) -> None:
        specs = [r.spec for r in batch]
        campaign = specs[0].campaign
        batch_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{next(_counter)}"
        folder = self._campaign_dir(campaign) / "batches" / batch_id
        folder.mkdir(parents=True, exist_ok=True)
        manifest = [{"index": i, "attempt": r.attempts, "spec": r.spec.model_dump(mode="json")}
                    for i, r in enumerate(batch)]
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
        array = None
        if self.use_arrays and len(batch) > 1:
            array = f"0-{len(batch) - 1}%{min(self.site.array_throttle, len(batch))}"
        name = f"dm-{campaign}-" + ("array" if array else specs[0].name or specs[0].task_id)
        script = folder / "job.sbatch"
        script.write_text(sbatch.render_tasks(self.site, specs, job_name=name, array=array,
                                              job_comment=sbatch.comment(campaign, batch_id)))
        out = folder / ("slurm-%A_%a.out" if array else "slurm-%j.out")
        job = slurmcli.sbatch(script, [f"--output={out}", f"--chdir={folder}"])
        for i, rec in enumerate(batch):
            rec.job_id = f"{job}_{i}" if array else job

    def _check(self, active: list[TaskRecord]) -> dict[str, tuple[JobState, int | None]]:
        by_job = {r.job_id: r.spec.task_id for r in active if r.job_id}
        return {by_job[j]: st for j, st in slurmcli.states(by_job).items() if j in by_job}

    def _kill(self, records: list[TaskRecord]) -> None:
        slurmcli.cancel(r.job_id for r in records if r.job_id)

    def _delivered(self, outcome: Outcome, spec: TaskSpec) -> None:
        if outcome.job_id:
            with open(self._campaign_dir(spec.campaign) / "delivered.txt", "a") as fh:
                fh.write(f"{outcome.job_id} {outcome.task_id}\n")

    # -- re-attach -------------------------------------------------------------------------
    def reattach(self, campaign: str) -> list[str]:
        """Follow this campaign's jobs found in the queue by their comment (still pending,
        running, or finished while the manager was away); returns their task ids."""
        prefix = sbatch.comment_prefix(campaign)
        done = self._delivered_jobs(campaign)
        latest: dict[str, tuple[int, str, dict]] = {}  # task id -> (attempt, job id, entry)
        manifests: dict[str, list[dict]] = {}
        for job, (_state, _rc, text) in slurmcli.squeue_all().items():
            if not text.startswith(prefix):
                continue
            batch_id = text.removeprefix(prefix)
            if batch_id not in manifests:
                path = self._campaign_dir(campaign) / "batches" / batch_id / "manifest.json"
                manifests[batch_id] = json.loads(path.read_text()) if path.exists() else []
            entries = manifests[batch_id]
            index = int(job.split("_")[1]) if "_" in job else 0
            if index < len(entries):
                entry = entries[index]
                task_id = entry["spec"]["task_id"]
                if task_id not in latest or latest[task_id][0] < entry["attempt"]:
                    latest[task_id] = (entry["attempt"], job, entry)
        followed = []
        for task_id, (attempt, job, entry) in sorted(latest.items()):
            if job in done or task_id in self._active or any(
                    r.spec.task_id == task_id for r in self._backlog):
                continue
            rec = TaskRecord(TaskSpec.model_validate(entry["spec"]), attempts=attempt, job_id=job)
            self._active[task_id] = rec
            followed.append(task_id)
        return followed

    # -- helpers ---------------------------------------------------------------------------
    def _campaign_dir(self, campaign: str) -> Path:
        path = self.state_dir / safe_text(campaign, 80)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _delivered_jobs(self, campaign: str) -> set[str]:
        path = self._campaign_dir(campaign) / "delivered.txt"
        if not path.exists():
            return set()
        return {line.split()[0] for line in path.read_text().splitlines() if line.strip()}
