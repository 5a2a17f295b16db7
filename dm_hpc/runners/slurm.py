"""SlurmRunner: one job per task or job arrays, through the Slurm commands.

Every batch gets a folder ``<campaign folder>/batches/<batch id>/`` holding the rendered
``job.sbatch``, ``manifest.json`` (array index -> task spec, written before sbatch) and Slurm's
own output. The job ids ``sbatch --parsable`` returns are appended (fsynced) to
``<campaign folder>/submissions.jsonl``; a restarted manager re-attaches from that file and
uses the job name ``<name>--<batch id>`` (set only by dm-hpc; never the comment, which a site
can write) only for a batch whose line is missing: in squeue, then (a job that finished while
the manager was away) in sacct or the job-completion log. A batch no source knows is LOST, as
a journalled job no source knows: the manager takes its result file or submits it again.
Tasks are journalled in ``accepted.jsonl`` when submitted to the runner (they may wait for
batch-mates before sbatch); outcomes already handed out in ``delivered.txt``, so a restart
neither loses a waiting task nor reports an outcome twice.

Scheduler etiquette: one ``squeue`` per poll interval for all of the runner's jobs (``sacct`` or
the job-completion log only for jobs that left the queue), the interval backing off while
nothing changes; between queries ``poll()`` answers from the states it has. Tasks expected to
run shorter than ``site.pack_below_s`` (the method's cost model) wait up to
``site.pack_window_s`` for batch-mates and go as one job array throttled by ``%N``.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import time
from pathlib import Path

from dm_hpc.runners import costs, sbatch, slurmcli, stream
from dm_hpc.runners.core import Runner, UnrecordedLaunch
from dm_hpc.runners.polling import PollClock
from dm_hpc.runners.site import SiteProfile
from dm_hpc.runners.spec import (Outcome, RetryPolicy, TaskRecord, TaskSpec, Throttle, clear_run_files,
                                 read_times, safe_text, tail)
from dm_hpc.runners.states import JobState, refine_oom
from dm_hpc.runners.submissions import Submission, SubmissionLog, append_line

_counter = itertools.count()
from dm_hpc.compute.methods import TYPICAL_ATOMS  # noqa: E402 -- the cost model's cell size


def campaign_folder(state_dir: Path, campaign: str, own: bool = True) -> Path:
    """Where a runner keeps a campaign's batches and journals: ``state_dir`` itself when the
    folder is the campaign's own (``runs/<campaign>/slurm``, the manager's), one sub-folder per
    campaign in a shared folder (``own=False``). A campaign folder made by earlier versions
    (``runs/<c>/slurm/<c>``) keeps being used, so re-attach finds its journal."""
    nested = Path(state_dir) / safe_text(campaign, 80)
    if not own or (nested / "submissions.jsonl").exists():
        return nested
    return Path(state_dir)


def expected_seconds(spec: TaskSpec) -> float | None:
    """Expected run time in s: the task's own estimate, else its method's cost model
    (core-seconds at TYPICAL_ATOMS over its cores); None when unknown."""
    if spec.expected_s is not None:
        return spec.expected_s
    method = sbatch.method_of(spec)
    if not method:
        return None
    from dm_hpc.compute.methods import UnknownMethodError, get_method

    try:
        return get_method(method).cost_core_seconds(TYPICAL_ATOMS) / spec.cores
    except UnknownMethodError:
        return None


class SlurmRunner(Runner):
    """Tasks as Slurm jobs: arrays (``%N`` throttle) when ``use_arrays``, else one job each."""

    def __init__(self, site: SiteProfile, state_dir: Path, *, use_arrays: bool = True,
                 retry: RetryPolicy | None = None, throttle: Throttle | None = None,
                 own_folder: bool = False) -> None:
        """``own_folder``: ``state_dir`` belongs to one campaign (its batches go directly in
        it); otherwise one sub-folder per campaign."""
        retry = retry or RetryPolicy(max_walltime_s=site.max_walltime_s)
        if retry.max_memory_mb is None and site.max_memory_mb:  # OOM retries up to the site cap
            retry = dataclasses.replace(retry, max_memory_mb=site.max_memory_mb)
        super().__init__(retry, throttle or site.throttle())
        self.site = site
        self.state_dir = Path(state_dir).absolute()
        self.use_arrays = use_arrays
        self.own_folder = own_folder
        self._streamed: set[str] = set()  # job ids running several tasks in one process
        self.clock = PollClock(site.poll_interval_s, site.poll_backoff, site.poll_max_interval_s)
        self._keys: dict[tuple, tuple] = {}

    # -- backend hooks ---------------------------------------------------------------------
    def _batch_limit(self, spec: TaskSpec) -> int:
        """One job array, or one streamed job (its tasks per job): a launch is one sbatch, so a
        lost reply concerns the whole batch and nothing else."""
        if not self.use_arrays:
            return 1
        return min(self.throttle.max_batch, self._stream_size(spec) or self.throttle.max_batch)

    def _batch_key(self, spec: TaskSpec) -> tuple:
        """Tasks of one job array share campaign and job shape (resources, modules, image)."""
        memo = (spec.task_id, spec.cores, spec.memory_mb, spec.walltime_s, spec.gpus, spec.group)
        if memo not in self._keys:
            self._keys[memo] = (spec.campaign, spec.group, repr(sbatch.resolve(self.site, spec)))
        return self._keys[memo]

    def packs(self, spec: TaskSpec) -> bool:
        """Is ``spec`` short enough to wait for batch-mates and go in a job array?"""
        if not self.use_arrays or self.site.packing == "none":
            return False
        expected = expected_seconds(spec)
        return expected is not None and expected < self.site.pack_below_s

    def _gathering(self) -> set[tuple]:
        """Keys of packable tasks still waiting: fewer than a full array, and the oldest has
        waited less than the site's pack window."""
        groups: dict[tuple, list[TaskRecord]] = {}
        for rec in self._backlog:
            if self.packs(rec.spec):
                groups.setdefault(self._batch_key(rec.spec), []).append(rec)
        now = time.monotonic()
        return {key for key, recs in groups.items() if len(recs) < self._batch_limit(recs[0].spec)
                and now - min(r.queued_at for r in recs) < self.site.pack_window_s}

    def _launch(self, batch: list[TaskRecord]) -> None:
        streamed = self._stream_size(batch[0].spec) is not None
        shape = sbatch.resolve(self.site, batch[0].spec)
        for rec in batch:  # the memory asked for is the base of an OUT_OF_MEMORY retry
            if rec.spec.memory_mb is None and shape.memory_mb:
                rec.spec = rec.spec.model_copy(update={"memory_mb": shape.memory_mb})
        specs = [r.spec for r in batch]
        campaign = specs[0].campaign
        batch_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{next(_counter)}"
        folder = self._campaign_dir(campaign) / "batches" / batch_id
        folder.mkdir(parents=True, exist_ok=True)
        # earlier_s and retried too: a re-attached task is still charged for the attempts retried
        # before it, and its retry policy goes on from the retries it has used, not from none
        manifest = [{"index": i, "attempt": r.attempts, "earlier_s": r.earlier_s,
                     "retried": {state.name: n for state, n in r.retried.items()},
                     "spec": r.spec.model_dump(mode="json")} for i, r in enumerate(batch)]
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if streamed:
            text, array = self._stream_script(specs, batch_id, str(folder / "manifest.json")), None
        else:
            text, array = self.script(specs, batch_id)
        script = folder / "job.sbatch"
        script.write_text(text)
        for rec in batch:
            clear_run_files(rec.spec.workdir)
            rec.handle = folder  # before sbatch: a job found after a lost reply is adopted from it
        out = folder / ("slurm-%A_%a.out" if array else "slurm-%j.out")
        # the job name carries the batch id: after a lost sbatch reply, sbatch finds the job by it
        self._adopt(batch, slurmcli.sbatch(script, [f"--output={out}", f"--chdir={folder}"]))

    def _adopt(self, batch: list[TaskRecord], job_id: str) -> None:
        """Follow ``job_id``, submitted for ``batch`` from its folder (the records' handle), and
        journal it (``submissions.jsonl``) before the caller hears of it. The job is queued
        whatever happens to the journal: when its line cannot be written it is followed all the
        same (UnrecordedLaunch names the file), and a restart finds it by its job name."""
        folder: Path = batch[0].handle  # type: ignore[assignment]
        campaign = batch[0].spec.campaign
        streamed = self._is_streamed(campaign, folder.name)
        array = len(batch) > 1 and not streamed  # as ``script`` made it
        if streamed:
            self._streamed.add(job_id)
        for i, rec in enumerate(batch):
            rec.job_id = f"{job_id}_{i}" if array else job_id
        log = self._log(campaign)
        try:
            log.append(Submission(job_id, folder.name, array, tuple(
                (i, r.spec.task_id, r.attempts) for i, r in enumerate(batch))))
        except OSError as exc:
            name = slurmcli.unique_job_name(folder / "job.sbatch") or folder.name
            raise UnrecordedLaunch(
                f"Slurm queued job {job_id} (tasks {', '.join(r.spec.task_id for r in batch)}), but its line "
                f"could not be written to the submissions journal {log.path} ({exc}); the job is followed "
                f"by its id and not submitted again. Make {log.path.parent} writable (disk space, "
                f"permissions): until then a restarted manager can find the job only by its name "
                f"{name} (squeue, sacct or the job-completion log)") from exc

    def script(self, specs: list[TaskSpec], batch_id: str) -> tuple[str, str | None]:
        """The job script for one batch (an array when it holds several tasks) and its
        ``--array`` value (None for a single job)."""
        array = None
        if self.use_arrays and len(specs) > 1:
            at_once = min(self.site.array_throttle, len(specs))
            if self.site.array_max_cores:  # wide (MPI) elements: fewer at once
                cores = sbatch.resolve(self.site, specs[0]).total_cores
                at_once = min(at_once, max(1, self.site.array_max_cores // cores))
            array = f"0-{len(specs) - 1}%{at_once}"
        campaign = specs[0].campaign
        # arrays are named after their group (the campaign's fidelity): one name per fidelity
        name = f"dm-{campaign}-" + ((specs[0].group or "array") if array
                                    else specs[0].name or specs[0].task_id)
        return sbatch.render_tasks(self.site, specs, job_name=sbatch.job_name(name, batch_id), array=array,
                                   job_comment=sbatch.comment(
            campaign, batch_id, self.site.site_comment())), array

    def preview(self, specs: list[TaskSpec]) -> list[str]:
        """The job scripts ``specs`` would be submitted as, all at once (dry run: nothing is
        written or submitted): grouped by job shape, in arrays of at most the batch limit."""
        groups: dict[tuple, list[TaskSpec]] = {}
        for spec in map(self.sized, specs):
            groups.setdefault(self._batch_key(spec), []).append(spec)
        out = []
        for n, group in enumerate(groups.values()):
            chunk = self._batch_limit(group[0])
            for i in range(0, len(group), chunk):
                part, batch_id = group[i:i + chunk], f"dry-run-{n}-{i // chunk}"
                manifest = campaign_folder(self.state_dir, part[0].campaign, self.own_folder) \
                    / "batches" / batch_id / "manifest.json"  # where it would be written
                out.append(self._stream_script(part, batch_id, str(manifest))
                           if self._stream_size(group[0]) else self.script(part, batch_id)[0])
        return out

    def _stream_size(self, spec: TaskSpec) -> int | None:
        """Tasks per streamed job for ``spec``'s method (None: the method is not streamed)."""
        method = self.site.methods.get(sbatch.method_of(spec))
        if method is None or method.stream is None or not self.use_arrays:
            return None
        return stream.tasks_per_job(expected_seconds(spec), method.stream.job_s, method.stream.max_tasks)

    def _stream_script(self, specs: list[TaskSpec], batch_id: str, manifest: str) -> str:
        """A streamed job's script. Its walltime: the tasks' walltimes together, but no more
        than the stream's ``job_s`` (which the tasks were sized to fill) plus one task's
        walltime of slack for the slowest."""
        campaign = specs[0].campaign
        job_s = self.site.methods[sbatch.method_of(specs[0])].stream.job_s
        walltime = min(sum(s.walltime_s for s in specs), job_s + max(s.walltime_s for s in specs))
        return sbatch.render_stream(
            self.site, specs, job_name=sbatch.job_name(f"dm-{campaign}-{specs[0].group or 'stream'}", batch_id),
            job_comment=sbatch.comment(campaign, batch_id, self.site.site_comment()),
            manifest=manifest, walltime_s=walltime)

    def _check(self, active: list[TaskRecord]) -> dict[str, tuple[JobState, int | None]]:
        """States from one squeue call per poll interval; {} (nothing new) in between."""
        if not self.clock.due():
            return {}
        by_job: dict[str, list[TaskRecord]] = {}
        for rec in active:
            if rec.job_id:
                by_job.setdefault(rec.job_id, []).append(rec)
        try:
            found = {j: st for j, st in slurmcli.states(by_job).items() if j in by_job}
        except (slurmcli.SlurmError, subprocess.TimeoutExpired) as exc:
            # a controller outage (restart, overload) is no news about the jobs: they go on
            # without us; asked again later, less often while it lasts
            self._unanswered(exc)
            return {}
        self._answered()
        got = []  # (record, state, exit code)
        for job, (state, rc) in found.items():
            for rec in by_job[job]:
                if job in self._streamed:  # several tasks, one job: each task's own times file
                    got.append((rec, *stream.task_state(rec.spec, state)))
                elif state.is_final:
                    got.append((rec, refine_oom(state, self._slurm_output(rec)), rc))
                else:
                    got.append((rec, state, rc))
        self.clock.queried(any(rec.state != state for rec, state, _ in got))
        self._observe([(rec, state) for rec, state, _ in got if state.is_final])
        return {rec.spec.task_id: (state, rc) for rec, state, rc in got}

    @staticmethod
    def _slurm_output(rec: TaskRecord) -> str:
        """The tail of Slurm's own output file of the task's job (slurmstepd's messages)."""
        folder = rec.handle if isinstance(rec.handle, Path) else None
        return tail(folder / f"slurm-{rec.job_id}.out") if folder and rec.job_id else ""

    def _kill(self, records: list[TaskRecord]) -> None:
        slurmcli.cancel(r.job_id for r in records if r.job_id)

    # -- the cost model ----------------------------------------------------------------------
    def costs(self, campaign: str) -> costs.CostBook:
        """The campaign's observed run times and peak memory (``costs.jsonl``)."""
        return costs.CostBook(campaign_folder(self.state_dir, campaign, self.own_folder) / costs.COSTS_FILE)

    def sized(self, spec: TaskSpec) -> TaskSpec:
        """``spec`` with walltime and memory requests from the learned cost model (unchanged
        while no run of its method finished)."""
        method = sbatch.method_of(spec)
        if not method:
            return spec
        shape = sbatch.resolve(self.site, spec)
        return costs.sized(spec, self.costs(spec.campaign), method, TYPICAL_ATOMS,
                           cores=shape.total_cores, default_memory_mb=shape.memory_mb, max_walltime_s=self.site.max_walltime_s,
                           max_memory_mb=self.site.max_memory_mb)

    def _observe(self, finished: list[tuple[TaskRecord, JobState]]) -> None:
        """Record what finished attempts used (times file, sacct's peak memory); TIMEOUT and
        OUT_OF_MEMORY count as at least their request, so the retry's estimate moves up."""
        wanted = [(rec, st) for rec, st in finished if sbatch.method_of(rec.spec) and st in (
            JobState.COMPLETED, JobState.TIMEOUT, JobState.OUT_OF_MEMORY)]
        if not wanted:
            return
        peaks = slurmcli.peak_memory_mb(r.job_id for r, _ in wanted if r.job_id)
        for rec, state in wanted:
            spec = rec.spec
            started, ended, _ = read_times(spec.workdir)
            seconds = (ended - started) if started and ended else 0.0
            censored = {JobState.TIMEOUT: "time", JobState.OUT_OF_MEMORY: "memory"}.get(state, "")
            if censored == "time":
                seconds = max(seconds, float(spec.walltime_s))
            peak = peaks.get(rec.job_id or "")
            if censored == "memory" and spec.memory_mb:
                peak = max(peak or 0.0, float(spec.memory_mb))
            if seconds <= 0 and not peak:
                continue
            self.costs(spec.campaign).add(costs.Observation(
                method=sbatch.method_of(spec), atoms=_atoms(spec.workdir), cores=sbatch.resolve(
                    self.site, spec).total_cores, seconds=round(seconds, 3), memory_mb=peak,
                state=state.name, censored=censored, job_id=rec.job_id or "",
                walltime_s=spec.walltime_s, requested_mb=spec.memory_mb))

    def submit(self, tasks) -> list[str]:
        """Queue tasks, sized by the cost model; each is journalled (``accepted.jsonl``) before
        it may wait in the backlog (packing, throttle), so a restarted runner still knows it
        accepted it."""
        tasks = [self.sized(spec) for spec in tasks]
        for spec in tasks:
            append_line(self._campaign_dir(spec.campaign) / "accepted.jsonl",
                        spec.model_dump_json())
        return super().submit(tasks)

    def _delivered(self, outcome: Outcome, spec: TaskSpec) -> None:
        append_line(self._campaign_dir(spec.campaign) / "delivered.txt",
                    f"{outcome.job_id or '-'} {outcome.task_id}")  # '-': never reached sbatch

    # -- re-attach -------------------------------------------------------------------------
    def reattach(self, campaign: str) -> list[str]:
        """Follow this campaign's jobs that some source still knows (pending, running, or
        finished while the manager was away); returns their task ids. Job ids come from the
        submissions journal; job names only for batches missing from it."""
        latest: dict[str, tuple[int, str, str]] = {}  # task id -> (attempt, job id, batch id)

        def consider(task_id: str, attempt: int, job: str, batch_id: str) -> None:
            if task_id not in latest or latest[task_id][0] <= attempt:  # later lines win ties
                latest[task_id] = (attempt, job, batch_id)

        subs = self._log(campaign).read()
        for sub in subs:
            if self._is_streamed(campaign, sub.batch):  # one job, several tasks
                self._streamed.add(sub.job)
                for _, task_id, attempt in sub.tasks:
                    consider(task_id, attempt, sub.job, sub.batch)
                continue
            for job, (task_id, attempt) in sub.job_ids().items():
                consider(task_id, attempt, job, sub.batch)
        manifests = {p.parent.name: p for p in
                     (self._campaign_dir(campaign) / "batches").glob("*/manifest.json")}
        unjournalled = {b: manifests[b] for b in set(manifests) - {s.batch for s in subs}}
        unfound: dict[str, int] = {}  # task id -> latest attempt in a batch whose job no source knows
        found = self._find_unjournalled(unjournalled)
        for batch_id, manifest in unjournalled.items():
            entries = json.loads(manifest.read_text())
            job = found.get(batch_id)
            if job is None:
                for e in entries:
                    unfound[e["spec"]["task_id"]] = max(unfound.get(e["spec"]["task_id"], 0), e["attempt"])
                continue
            streamed = self._is_streamed(campaign, batch_id)
            if streamed:  # one job, every task of the manifest
                self._streamed.add(job)
            array = len(entries) > 1 and not streamed  # as ``_adopt`` journals it
            for e in entries:
                consider(e["spec"]["task_id"], e["attempt"], f"{job}_{e['index']}" if array else job,
                         batch_id)
        # a task whose last attempt is in an unjournalled batch that no source knows may have
        # reached sbatch (its reply lost, or the manager killed before the journal line) and run
        # (an earlier attempt's job, if any, is over): as a journalled job no source knows, it is
        # LOST, and the manager decides (result file or resubmit). It never goes back to the
        # backlog here, where its relaunch would clear a finished result.
        lost = {t for t, attempt in unfound.items() if t not in latest or latest[t][0] < attempt}
        for task_id in lost:
            latest.pop(task_id, None)
        done = set(self._delivered_pairs(campaign))  # (job, task): a streamed job has several
        queued = {r.spec.task_id for r in self._backlog} | set(self._active)
        wanted = {t: v for t, v in latest.items() if (v[1], t) not in done and t not in queued}
        known = slurmcli.states(v[1] for v in wanted.values()) if wanted else {}
        followed = self._requeue_accepted(campaign, set(latest) | queued | lost)
        for task_id, (attempt, job, batch_id) in sorted(wanted.items()):
            state, _ = known.get(job, (JobState.LOST, None))
            if state is JobState.LOST:
                continue  # no source knows it: the manager decides (result file or resubmit)
            entries = json.loads(manifests[batch_id].read_text()) if batch_id in manifests else []
            entry = next((e for e in entries if e["spec"]["task_id"] == task_id), None)
            if entry is None:
                continue
            retried = {JobState[k]: int(n) for k, n in entry.get("retried", {}).items()}  # {} before they were kept
            self._active[task_id] = TaskRecord(TaskSpec.model_validate(entry["spec"]), attempts=attempt,
                                               job_id=job, state=state, handle=manifests[batch_id].parent,
                                               earlier_s=float(entry.get("earlier_s", 0.0)), retried=retried)
            followed.append(task_id)
        return followed

    @staticmethod
    def _find_unjournalled(manifests: dict[str, Path]) -> dict[str, str]:
        """Batch id -> job id of batches missing from the submissions journal (the sbatch reply was
        lost, or the manager died between sbatch and the line), found by their job names (never a
        comment: a site sets those) in squeue or, for a job that left it while the manager was
        away, in sacct or the job-completion log (``slurmcli.jobs_named``, the look-up after a
        lost reply too). A batch without a job script never reached sbatch."""
        names = {}
        for batch_id, manifest in manifests.items():
            name = slurmcli.unique_job_name(manifest.parent / "job.sbatch")
            if name and sbatch.batch_of_name(name) == safe_text(batch_id, 80):
                names[name] = batch_id
        if not names:
            return {}
        since = min(manifests[b].stat().st_mtime for b in names.values())  # written just before sbatch
        return {names[name]: job for name, job in slurmcli.jobs_named(names, since).items()}

    def _is_streamed(self, campaign: str, batch_id: str) -> bool:
        """Was this batch submitted as one streamed job (its script says so)?"""
        script = self._campaign_dir(campaign) / "batches" / batch_id / "job.sbatch"
        try:
            return "-m dm_hpc.runners.stream " in script.read_text()
        except OSError:
            return False

    def _requeue_accepted(self, campaign: str, known: set[str]) -> list[str]:
        """Tasks accepted by an earlier runner that never reached sbatch (they waited in its
        backlog when it died) go back into the backlog; returns their ids."""
        path = self._campaign_dir(campaign) / "accepted.jsonl"
        delivered = self._delivered_tasks(campaign)
        again: dict[str, TaskSpec] = {}
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                spec = TaskSpec.model_validate_json(line)
            except ValueError:  # a torn last line
                continue
            if spec.task_id not in known and spec.task_id not in delivered:
                again[spec.task_id] = spec
        self._backlog.extend(TaskRecord(spec) for spec in again.values())
        return sorted(again)

    # -- helpers ---------------------------------------------------------------------------
    def _campaign_dir(self, campaign: str) -> Path:
        path = campaign_folder(self.state_dir, campaign, self.own_folder)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _log(self, campaign: str) -> SubmissionLog:
        return SubmissionLog(self._campaign_dir(campaign) / "submissions.jsonl")

    def _delivered_pairs(self, campaign: str) -> list[tuple[str, str]]:
        """(job id or '-', task id) of every outcome handed on."""
        path = self._campaign_dir(campaign) / "delivered.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [(p[0], p[1]) for p in (line.split() for line in lines) if len(p) == 2]

    def _delivered_tasks(self, campaign: str) -> set[str]:
        return {task for _, task in self._delivered_pairs(campaign)}


def _atoms(workdir: Path) -> int:
    """Atoms of the calculation in ``workdir`` (its result file), else the typical cell."""
    try:
        data = json.loads((workdir / "result.json").read_text())
        return int((data.get("result") or data.get("failure") or {}).get("n_atoms") or TYPICAL_ATOMS)
    except (OSError, ValueError, TypeError, AttributeError):
        return TYPICAL_ATOMS
