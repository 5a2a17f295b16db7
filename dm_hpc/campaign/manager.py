"""The asynchronous campaign loop.

Keep up to ``runner.max_in_flight`` calculations running; whenever one finishes, ingest its
result and fill the slot at once from a queue of suggestions. A planner thread keeps that queue
topped up: it refits the surrogate every ``learning.refit_every`` results (a fit costs seconds;
refitting on every result, in the loop, would leave slots empty meanwhile) and proposes with
every in-flight and queued point as pending, so the cluster never waits for the model.
Suggestions for the lab are gathered into lab batches (sheets) instead of being run.

Every transition is journalled (write-ahead, fsynced) before it is acted on, so ``run`` on an
interrupted campaign resumes: results that finished meanwhile are ingested, live jobs are
followed (Slurm: re-attach by job comment; local: the orphaned process is adopted), and no
task is submitted twice.
"""
from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dm_hpc.acquire.points import PointKey, ProposedPoint, point_key
from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.journal_repair import reserve_ids
from dm_hpc.campaign.labsheet import sample_id
from dm_hpc.campaign.lock import LOCK_NAME, CampaignBusyError, check_run_folder, take_manager_lock
from dm_hpc.campaign import stopping
from dm_hpc.campaign.dataset import best_records, best_values, own_records, target_best_values
from dm_hpc.campaign.planning import CampaignPlanner, Plan, Snapshot, seen_points
from dm_hpc.campaign.realise import stored_keys
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.data import Store, StoreLockedError

POLL_S = 0.1
#: The local runner's poll is a waitpid, not a scheduler query: poll it this much more often (a
#: slot freed by a sub-second EMT task would otherwise idle for half a poll interval on average).
LOCAL_POLL_FACTOR = 0.2
STOP_FILE = "STOP"
#: The reason a run ends with when `dm-hpc stop` asked it to (`dm-hpc resume` continues it).
STOPPED_BY_REQUEST = "stopped by request"
#: Plain progress lines (output not a terminal: a log file, cron): at most one per this many
#: seconds while something changes, and one at least this often while nothing does.
LOG_EVERY_S = 5.0
LOG_HEARTBEAT_S = 60.0


@dataclass
class Summary:
    """How a ``run`` ended."""

    reason: str
    submitted: int
    ingested: int
    failed: int
    lab_suggested: int
    core_hours: float
    #: the best value per objective among the records that meet every constraint, in ``best_unit``
    best: dict[str, float]
    #: the share (>= 0) of the worker slots' time (``runner.max_in_flight`` x this run's duration)
    #: spent running calculations; None when this run gave the workers no time: it stopped as it
    #: started (a budget already used up) and nothing was running
    utilisation: float | None
    notes: list[str] = field(default_factory=list)  # what the run chose not to do, and why
    best_fidelity: dict[str, str | None] = field(default_factory=dict)  # the fidelity of each best record
    #: the unit of each ``best`` value: the one the campaign file writes for the objective
    #: (``ObjectiveSpec.shown_unit``), as the lab sheet, records() and the report give it; the store,
    #: the journal and the stopping rules keep canonical units
    best_unit: dict[str, str] = field(default_factory=dict)


def make_runner(campaign: CampaignSpec, run_dir: Path):
    """The runner the campaign names (heavy backends imported only when used)."""
    from dm_hpc.runners import LocalRunner, RetryPolicy, SiteProfile

    rc = campaign.runner
    retry = RetryPolicy(max_failed=rc.retries)
    if rc.kind.value == "local":
        from dm_hpc.runners.preloaded import PreloadedLauncher

        return LocalRunner(cores=rc.cores, retry=retry, launcher=PreloadedLauncher())
    site = SiteProfile.load(rc.site or "local")
    retry = RetryPolicy(max_failed=rc.retries, max_walltime_s=site.max_walltime_s)
    if rc.kind.value == "slurm":
        from dm_hpc.runners import SlurmRunner

        return SlurmRunner(site, run_dir / "slurm", retry=retry, own_folder=True)
    if rc.kind.value == "dask":
        from dm_hpc.runners import DaskPilotRunner

        return DaskPilotRunner(site, run_dir / "slurm", campaign=campaign.name,
                               jobs=max(1, rc.max_in_flight // 2), retry=retry)
    from dm_hpc.runners import MpiFarmRunner

    return MpiFarmRunner(site, run_dir / "slurm", ranks=rc.max_in_flight + 1, retry=retry)


def _orphan_alive(workdir: Path) -> bool:
    """Is a process (a local task that outlived its manager) still running in ``workdir``?"""
    target = str(workdir.resolve())
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{pid}/cwd") == target:
                return True
        except OSError:
            continue
    return False


class CampaignManager:
    """Runs one campaign to its end (or until interrupted; ``run`` again resumes)."""

    def __init__(self, campaign: CampaignSpec, console: Console | None = None, quiet: bool = False,
                 runner: Any = None) -> None:
        self.c = campaign
        self.run_dir = campaign.run_dir
        self.console = console or Console()
        self.quiet = quiet
        self.runner = runner
        self.queue: deque[ProposedPoint] = deque()
        self.lab_pending: list[ProposedPoint] = []
        self.busy_s = 0.0
        self.state = jn.State()
        self._adopted: set[str] = set()
        self._busy_since: dict[str, float] = {}
        self._planner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="planner")
        self._plan: Future | None = None
        self._refit_due = True
        self._best_cache: dict[str, float] = {}
        self._target_best: dict[str, float] = {}
        self._stored: dict[str, set[PointKey]] = {}
        self._exhausted: str | None = None
        self._data_version = 0  # results ingested so far in this run
        self._plan_version = 0  # ... when the plan in progress was snapshotted
        self._lab = None
        self._site = None  # the runner's site profile (read when a task's cores are charged)
        self.planning: CampaignPlanner | None = None  # made in run(): it journals refits
        self.notes: list[str] = []
        self._logged = (0.0, "")  # (time, text) of the last plain progress line

    # ------------------------------------------------------------------ bookkeeping
    def task_dir(self, task_id: str) -> Path:
        return (self.run_dir / "tasks" / task_id).absolute()

    def _log(self, event: str, **data: Any) -> None:
        """Journal an event (durably) and apply it to the in-memory state."""
        jn.apply(self.state, self.journal.write(event, **data))

    def _lock(self) -> int:
        return take_manager_lock(self.run_dir, f"campaign {self.c.name!r} is already running "
                                               f"({self.run_dir}/{LOCK_NAME})")

    def _stop_reason(self) -> str | None:
        """The stopping rules (pure functions of the journal state), a stop request, exhaustion."""
        reason = stopping.stop_reason(self.c, self.state, time.time(), self._target_best, len(self.lab_pending))
        if reason is None and (self.run_dir / STOP_FILE).exists():
            reason = f"{STOPPED_BY_REQUEST} (dm-hpc stop)"
        if reason is None and self._exhausted and not self.queue:
            reason = self._exhausted
        return reason

    def _reload(self) -> pd.DataFrame:
        """Read the store: best values and the realised points stored per fidelity."""
        df = self.store.to_dataframe()
        self._stored = stored_keys(self.c, df)
        own = own_records(self.c, df)
        self._best_cache = best_values(self.c, own)  # shown in the progress line, every fidelity's
        self._target_best = target_best_values(self.c, own)  # what a target is met by
        return df

    # ------------------------------------------------------------------ main loop
    def run(self, max_seconds: float | None = None) -> Summary:
        """Run (or resume) the campaign; returns when it is done, stopped or ``max_seconds`` pass."""
        lock_fd = self._lock()
        try:
            # on any failure here the lock, and a runner already made, are released before raising
            check_run_folder(self.run_dir, self.c.name)
            self.runner = self.runner or make_runner(self.c, self.run_dir)
            self.store = Store.open(self.c.store, "a")
        except BaseException as exc:
            if self.runner is not None:
                self.runner.close()
            os.close(lock_fd)
            if isinstance(exc, StoreLockedError):
                raise CampaignBusyError(str(exc)) from None
            raise
        self.journal = jn.Journal(self.run_dir / "journal.jsonl")
        self.planning = CampaignPlanner(self.c, self.journal)
        try:
            return self._run(max_seconds)
        finally:
            self._planner.shutdown(wait=True, cancel_futures=True)
            self.journal.close()
            self.store.close()
            if self.runner is not None:
                self.runner.close()
            # a stop request is for the run that was going: served (or the run ended anyway),
            # it must not end every later run at once
            (self.run_dir / STOP_FILE).unlink(missing_ok=True)
            os.close(lock_fd)

    def _run(self, max_seconds: float | None) -> Summary:
        self.state = jn.replay(self.journal.path)
        self._log("start" if self.state.started_at is None else "resume", campaign=self.c.name)
        t0 = time.time()
        self._resume()
        reserve_ids(self.c, self.state, self._reload(), self.journal)  # never reuse an id issued before
        reason: str | None = None
        paused = False
        info = ""
        since_fit = 0
        slots_open = False  # whether a free slot could take a calculation at some point of this run
        plain = not self.console.is_terminal  # a log file or cron: timestamped lines, not a bar
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                            TimeElapsedColumn(), console=self.console, disable=self.quiet or plain)
        with progress:
            bar = progress.add_task(self.c.name, total=self.c.budget.calculations, info="")
            while True:
                reason = reason or self._stop_reason()
                if max_seconds is not None and time.time() - t0 > max_seconds:
                    reason, paused = reason or "paused (time given to this run used up)", reason is None
                    break
                slots_open = slots_open or reason is None
                # 1. fill free slots from the queue (never waits for the model)
                self._fill_slots(reason)
                if reason is None and not self.c.calculations:
                    self._next_point()  # a lab-only campaign: suggestions go to lab batches
                # 2. collect what finished, and refill the freed slots at once (before the store
                # is re-read and the planner asked: a slot waits for nothing but the queue)
                finished = 0
                for outcome in self.runner.poll():
                    task = self.state.tasks.get(outcome.task_id)
                    if task is not None:
                        self._collect(task, outcome)
                        finished += 1
                for note in self.runner.take_notices() if hasattr(self.runner, "take_notices") else []:
                    self._notice(note)  # what the runner put up with (a scheduler outage)
                finished += self._follow_orphans()
                finished += self._ingest_inbox()
                if finished:
                    reason = reason or self._stop_reason()
                    self._fill_slots(reason)
                # 3. the planner: refit at the cadence, keep the queue topped up
                since_fit += finished
                if since_fit >= self.c.learning.refit_every:
                    since_fit, self._refit_due = 0, True
                if reason is None:
                    self._plan_ahead()
                if finished:
                    self._reload()
                best = self._best_cache
                failed = sum(t.status == jn.FAILED for t in self.state.tasks.values())
                done = len(self.state.finished)
                # in the unit the author wrote (a target of -50 meV/atom beside -0.018 read as met)
                best_txt = ", ".join(f"{o.property}={o.shown(best[o.property]):.4g} {o.shown_unit}"
                                     for o in self.c.objectives if o.property in best)
                info = (f"in flight {len(self.state.in_flight)} | done {done - failed} | failed {failed} | "
                        f"{self.state.core_hours:.3f} core-h | best {best_txt or '-'}")
                progress.update(bar, completed=done, info=info)
                if plain and not self.quiet:
                    self._log_line(f"{info} | lab suggested {len(self.state.lab)}")
                if reason is not None and not self._adopted and (
                        not self.state.in_flight or self.runner.in_flight() == 0):
                    break
                time.sleep(POLL_S * (LOCAL_POLL_FACTOR if self.c.runner.kind.value == "local" else 1.0))
        if not paused:
            self._final_lab_batch()
        self._log("stop", reason=reason)
        if plain and not self.quiet:
            self._log_line(f"stopped: {reason or 'done'} | {info}", force=True)
        elapsed = time.time() - t0
        slots = self.c.runner.max_in_flight * elapsed
        tasks = self.state.tasks.values()
        best = best_records(self.c, self.store.to_dataframe(campaign=self.c.name))
        shown = [o for o in self.c.objectives if o.property in best]
        return Summary(
            reason=reason or "done",
            submitted=sum(t.submissions for t in tasks),
            ingested=sum(t.status == jn.INGESTED for t in tasks),
            failed=sum(t.status == jn.FAILED for t in tasks),
            lab_suggested=len(self.state.lab),
            core_hours=self.state.core_hours,
            best={o.property: float(o.shown(best[o.property][0])) for o in shown},
            utilisation=self.busy_s / slots if slots > 0 and (slots_open or self.busy_s > 0) else None,
            notes=list(self.notes),
            best_fidelity={k: f for k, (_, f) in best.items()},
            best_unit={o.property: o.shown_unit for o in shown},
        )

    def _log_line(self, text: str, force: bool = False) -> None:
        """One plain, timestamped progress line (never wrapped or cut), when it says something new."""
        now = time.time()
        last_t, last_text = self._logged
        if not force and (now - last_t < LOG_EVERY_S or text == last_text) and now - last_t < LOG_HEARTBEAT_S:
            return
        self._logged = (now, text)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        self.console.print(f"{stamp} {self.c.name}: {text}", soft_wrap=True, markup=False, highlight=False)

    def _notice(self, text: str) -> None:
        """One line the runner asked to be shown (not journalled: it changes no task)."""
        if self.quiet:
            return
        if not self.console.is_terminal:
            self._log_line(text, force=True)
        else:
            self.console.print(text, soft_wrap=True, markup=False, highlight=False,
                               style="yellow" if text.startswith("warning") else None)

    def _fill_slots(self, reason: str | None) -> None:
        """Submit queued points while a slot is free and no budget or stop reason forbids it."""
        while reason is None and len(self.state.in_flight) < self.c.runner.max_in_flight:
            if stopping.budget_reason(self.c, self.state, time.time(), len(self.lab_pending)):
                break
            point = self._next_point()
            if point is None:
                break
            self._submit(self._new_task_id(), point)

    def _new_task_id(self) -> str:
        """A task id never issued before: above the journal's tasks and reserved ids, and with
        no task folder (a journal repaired after damage may have lost the line that planned it)."""
        n = max(len(self.state.tasks), self.state.task_floor) + 1
        while f"{self.c.name}-c{n:05d}" in self.state.tasks or self.task_dir(f"{self.c.name}-c{n:05d}").exists():
            n += 1
        return f"{self.c.name}-c{n:05d}"

    # ------------------------------------------------------------------ tasks
    def _task_spec(self, task_id: str, fidelity: str, composition: dict[str, float]):
        from dm_hpc.compute import worker_argv, write_task

        fid = next(f for f in self.c.fidelities if f.name == fidelity)
        path = write_task(self.task_dir(task_id), composition, method=fid.method, settings=fid.settings,
                          properties=self.c.properties, seed=self.c.seed, cores=fid.cores,
                          task_id=task_id, campaign=self.c.name,
                          maker=fid.maker.model_dump(mode="json") if fid.maker is not None else None)
        return self._runner_spec(task_id, fid, worker_argv(path))

    def _runner_spec(self, task_id: str, fid, argv: list[str]):
        """The task the runner is given for ``fid`` (its run folder is not written here)."""
        from dm_hpc.runners import TaskSpec

        return TaskSpec(task_id=task_id, name=f"{self.c.name} {fid.name} {task_id}", argv=argv,
                        workdir=self.task_dir(task_id), cores=fid.cores, walltime_s=int(fid.walltime),
                        campaign=self.c.name, method=fid.method, env={"OMP_NUM_THREADS": "1"}, group=fid.name)

    def _cores_held(self, task: jn.TaskEntry) -> int:
        """The cores ``task``'s job holds while it runs, which its run time is charged at: on a
        site, the job shape the runner submits (``resolve``: a layout's ranks x threads, what
        ``dm-hpc plan`` charges); on this machine (runner: local), the fidelity's cores."""
        from dm_hpc.runners import SiteProfile
        from dm_hpc.runners.sbatch import resolve

        fid = next((f for f in self.c.fidelities if f.name == task.fidelity), None)
        if fid is None:
            return 1
        if self.c.runner.kind.value == "local":
            return fid.cores
        if self._site is None:  # the runner's own profile, else the file make_runner reads
            site = getattr(self.runner, "site", None)
            self._site = site if isinstance(site, SiteProfile) else SiteProfile.load(self.c.runner.site or "local")
        return resolve(self._site, self._runner_spec(task.task_id, fid, ["true"])).total_cores

    def _submit(self, task_id: str, point: ProposedPoint) -> None:
        # write-ahead: the plan is durable before anything runs
        self._log("planned", task_id=task_id, fidelity=point.fidelity, composition=point.composition,
                  process=point.process, predicted=point.predicted)
        self.runner.submit([self._task_spec(task_id, point.fidelity, point.composition)])
        self._log("submitted", task_id=task_id)
        self._busy_since[task_id] = time.time()

    def _collect(self, task: jn.TaskEntry, outcome) -> None:
        """Ingest a finished task's result (or journal its typed failure)."""
        from dm_hpc.compute import read_result, result_to_record

        # one clock reading: the default read after it made a task whose start was not seen (one
        # collected on resume) count a few microseconds below zero, shown as "-0%"; a clock set
        # back counts nothing
        now = time.time()
        self.busy_s += max(0.0, now - self._busy_since.pop(task.task_id, now))
        result = read_result(self.task_dir(task.task_id))
        state_name = outcome.state.name if outcome is not None else "COMPLETED"
        if state_name == "LOST" and self._ended_with_result(task.task_id, outcome):
            # the job left the queue before anyone saw how it ended (no accounting, sacct
            # lagging): its run folder says, as on resume, and its result is not thrown away
            state_name = "COMPLETED"
        if outcome is not None and outcome.started and outcome.ended:
            seconds = outcome.ended - outcome.started
        else:
            seconds = getattr(result, "wall_time_s", 0.0) or 0.0
        # every attempt held the job's cores: those the runner retried count too
        seconds += getattr(outcome, "earlier_s", 0.0) or 0.0
        core_hours = seconds * self._cores_held(task) / 3600
        if getattr(result, "ok", False) and state_name == "COMPLETED":
            record = result_to_record(result, campaign=self.c.name, task_id=task.task_id,
                                      job_id=getattr(outcome, "job_id", None), material_class=self.c.material_class)
            self.store.ingest([record])  # idempotent: a re-collected result is stored once
            self._data_version += 1
            self._log("ingested", task_id=task.task_id, record_id=record.record_id, core_hours=core_hours)
            return
        if outcome is not None and state_name != "COMPLETED":
            tail = (outcome.stderr_tail or outcome.stdout_tail or "")[-800:]
            if state_name == "CANCELLED" and not tail.strip():  # cancelled while pending: no output to read
                tail = ("cancelled from outside (scancel, dm-hpc runners cancel) before it wrote anything; not "
                        "retried, and not counted by the circuit breaker")
            error, kind = f"{state_name} (exit {outcome.exit_code}): {tail.strip()}", state_name
        elif getattr(result, "ok", False):
            error, kind = f"{state_name}: job ended {state_name} after writing a result", state_name
        else:
            error, kind = f"{result.kind.value}: {result.reason}", result.kind.value
        self._log("failed", task_id=task.task_id, error=error, kind=kind, core_hours=core_hours)

    def _ended_with_result(self, task_id: str, outcome) -> bool:
        """Did the task's run end well although its job was LOST: a result file there, and no
        failing exit code in its times file (``dm-task.times``, rewritten for each attempt)?"""
        from dm_hpc.runners.spec import read_times

        workdir = self.task_dir(task_id)
        if not (workdir / "result.json").exists():
            return False
        rc = outcome.exit_code if outcome.exit_code is not None else read_times(workdir)[2]
        return rc in (None, 0)

    def _resubmit(self, task: jn.TaskEntry, why: str) -> None:
        """Run a task again under the same id (its folder is rewritten)."""
        self.runner.submit([self._task_spec(task.task_id, task.fidelity, task.composition)])
        self._log("submitted", task_id=task.task_id, resumed=True, why=why)
        self._busy_since[task.task_id] = time.time()

    def _follow_orphans(self) -> int:
        """Orphans of a killed manager, followed by their folder. One that dies without a result
        is retried as the runner's retry policy would retry a FAILED job (``runner.retries``)."""
        n = 0
        for task_id in sorted(self._adopted):
            if _orphan_alive(self.task_dir(task_id)):
                continue
            self._adopted.discard(task_id)
            task = self.state.tasks[task_id]
            if not (self.task_dir(task_id) / "result.json").exists() and task.submissions <= self.c.runner.retries:
                self._resubmit(task, "adopted process died without a result")
                continue
            self._collect(task, None)
            n += 1
        return n

    def _resume(self) -> None:
        """Settle tasks a previous manager left in flight; never submit one twice."""
        open_tasks = self.state.in_flight
        if not open_tasks:
            return
        followed = set(self.runner.reattach(self.c.name) or [])
        for task in open_tasks:
            workdir = self.task_dir(task.task_id)
            reached = task.task_id in followed or _orphan_alive(workdir) or (workdir / "result.json").exists()
            if reached and task.submissions == 0:
                # killed between handing the task to the runner and journalling it: it did reach
                # the runner, so the journal says so now (one submission, not a second one)
                self._log("submitted", task_id=task.task_id, recovered=True)
            if task.task_id in followed:
                self._busy_since[task.task_id] = time.time()
            elif _orphan_alive(workdir):
                self._adopted.add(task.task_id)
                self._busy_since[task.task_id] = time.time()
            elif (workdir / "result.json").exists():
                self._collect(task, None)
            else:
                # never reached the queue, or died with the manager before writing a result:
                # it runs now, under the same task id
                self._resubmit(task, "not running after a restart")

    # ------------------------------------------------------------------ planning
    def _allowed_fidelities(self) -> list[str]:
        """Calculations the circuit breaker has not stopped, then the lab while its budget lasts."""
        broken = stopping.stopped_fidelities(self.c, self.state)
        allowed = [f.name for f in self.c.calculations if f.name not in broken]
        lab = self.c.lab
        if lab is not None and stopping.lab_budget_left(self.c, self.state, len(self.lab_pending)) != 0:
            allowed.append(lab.name)
        return allowed

    def _next_point(self) -> ProposedPoint | None:
        """The next calculation to run (lab points are set aside into the lab batch)."""
        lab = self.c.lab
        while self.queue:
            point = self.queue.popleft()
            if lab is not None and point.fidelity == lab.name:
                if lab.name in self._allowed_fidelities():
                    self.lab_pending.append(point)
                    self._flush_lab()
                continue
            planned = {point_key(t.composition, t.process) for t in self.state.tasks.values()
                       if t.fidelity == point.fidelity}
            if point.key in planned or point.key in self._stored.get(point.fidelity, set()):
                continue  # cannot happen (the planner saw these); a guard, not the mechanism
            if point.fidelity not in self._allowed_fidelities():
                continue  # its fidelity was stopped since it was planned
            return point
        return None

    def _plan_ahead(self) -> None:
        """Collect the planner's points; start it again when the queue runs low."""
        if self._plan is not None:
            if not self._plan.done():
                return
            plan: Plan = self._plan.result()  # a planner error surfaces here
            stale = self._plan_version < self._data_version
            self._plan = None
            if plan.refit_skipped:
                self._refit_due = True  # fit as soon as enough records are in, not a cadence later
            if plan.refit is not None:
                jn.apply(self.state, plan.refit)  # live, as on replay: the stopping rules see it
                # points of the older model stay queued: they are new points all the same, and
                # dropping them would leave slots idle while the new model plans (fast tasks)
            if stale and not self.c.calculations:
                # nothing idles while a lab-only campaign waits for the model, so a plan made
                # before the latest measurements is dropped rather than sent to the lab
                self._refit_due = True
            else:
                self.queue.extend(plan.points)
                if not plan.points and plan.shortfall:
                    self._exhausted = plan.shortfall
        if len(self.queue) >= 2 * self.c.runner.max_in_flight or self._exhausted:
            return
        allowed = self._allowed_fidelities()
        if not allowed:
            return
        n_asked = len(self.state.tasks) + len(self.state.lab)  # evaluations asked for so far
        refit = self._refit_due and n_asked >= self.c.learning.initial_points
        pending = [ProposedPoint(t.fidelity, t.composition, t.process) for t in self.state.in_flight]
        pending += list(self.queue) + self.lab_pending
        lab = self.c.lab
        pending += [ProposedPoint(lab.name, e.composition, e.process)
                    for e in self.state.lab.values() if e.awaited]
        snapshot = Snapshot(
            data=self._reload() if refit else None,
            # the same journal state plans the same points (a resumed run, the lab's batch)
            seed=int(np.random.default_rng([self.c.seed, len(self.state.tasks), len(self.state.lab),
                                            self.state.refits, len(self.queue)]).integers(2**31)),
            pending=pending,
            seen=seen_points(self.c, self._stored, self.state, list(self.queue) + self.lab_pending),
            allowed=allowed,
            seed_lab=(lab is not None and lab.name in allowed and not self.lab_pending
                      and not any(e.awaited for e in self.state.lab.values())),
        )
        if refit:
            self._refit_due = False
        self._plan_version = self._data_version
        self._plan = self._planner.submit(self.planning.plan, snapshot)

    # ------------------------------------------------------------------ the lab
    def _flush_lab(self, force: bool = False) -> None:
        lab = self.c.lab
        if lab is None or not self.lab_pending:
            return
        if len(self.lab_pending) < lab.batch_size and not force:
            return
        known = {point_key(e.composition, e.process) for e in self.state.lab.values()}
        new = [p for p in self.lab_pending if p.key not in known]
        self.lab_pending = []
        if not new:
            return
        batch = self.state.lab_batches + 1
        samples = [{"sample_id": sample_id(self.c.name, batch, k + 1), "composition": p.composition,
                    "process": p.process, "predicted": p.predicted} for k, p in enumerate(new)]
        self._log("lab_suggested", batch=batch, samples=samples)
        if lab.emulate_from is not None:
            self._emulate_lab(samples)

    def _final_lab_batch(self) -> None:
        """At a real stop, a lab with budget left and no batch outstanding gets one batch, planned
        from the store and the journal alone (``suggest.lab_batch``): what the lab receives does
        not depend on when the run was interrupted. Partial batches of the loop are dropped."""
        from dm_hpc.campaign.suggest import journal_batch

        self.lab_pending = []
        lab = self.c.lab
        if lab is None or any(e.awaited for e in self.state.lab.values()):
            return
        left = stopping.wall_time_left(self.c, self.state, time.time())
        need = self._lab_batch_estimate()
        if left is not None and need > left:
            # the wall-time budget holds for the last step too: a batch that cannot finish in
            # time is not started (the lab asks for it later, outside the budget's clock)
            self.notes.append(
                f"final lab batch not planned: it takes about {need:.0f} s and {max(left, 0):.0f} s of the "
                f"wall-time budget are left (budget.wall_time = {self.c.budget.wall_time:.0f} s); "
                f"`dm-hpc suggest CAMPAIGN -n {lab.batch_size}` plans it now")
            return
        # planned, timed, journalled and cross-validated for the report as ``dm-hpc suggest`` does
        batch = journal_batch(self.c, self.store, self.journal, self.state, lab.batch_size)
        if batch.samples and lab.emulate_from is not None:
            self._emulate_lab(batch.samples)

    def _lab_batch_estimate(self) -> float:
        """Seconds a lab batch takes to plan: the longest journalled lab batch or refit (a lab
        batch refits the model on the store), 0 when nothing was timed yet."""
        times = [float(ev["seconds"]) for ev in jn.Journal.events(self.journal.path)
                 if ev["event"] in ("refit", "lab_suggested") and "seconds" in ev]
        return max(times, default=0.0)

    def _emulate_lab(self, samples: list[dict[str, Any]]) -> None:
        """Answer a lab batch from the emulation table, as a lab would (offline benchmarks)."""
        from dm_hpc.campaign.emulated_lab import EmulatedLab
        from dm_hpc.campaign.lab import store_lab_results

        lab = self.c.lab
        if self._lab is None:
            self._lab = EmulatedLab(lab.name, self.c.name, lab.emulate_from, lab.emulate_map, self.c.material_class)
        records = self._lab.answer(samples)
        for line in self._lab.refused:
            self._notice(line)
        self._lab.refused.clear()
        if records:
            jn.apply(self.state, store_lab_results(records, self.store, self.journal,
                                                   f"emulated from {lab.emulate_from}"))
            self._refit_due = True
            self._data_version += 1
            self._reload()

    def _ingest_inbox(self) -> int:
        """Lab sheets that `dm-hpc ingest` validated while this manager held the store. A file
        that cannot be ingested is moved to ``inbox/quarantine/`` with a message; the run goes on."""
        inbox = self.run_dir / "inbox"
        if not inbox.is_dir():
            return 0
        from dm_hpc.campaign.lab import ingest_sheet_records

        from dm_hpc.campaign.suggest import REQUEST_SUFFIX, answer_request

        for path in sorted(inbox.glob(f"*{REQUEST_SUFFIX}")):  # `dm-hpc suggest -n N` meanwhile
            try:
                batch = answer_request(self.c, path, self.store, self.journal, self.state)
            except Exception as exc:  # noqa: BLE001 -- a bad request must not stop the loop
                self._quarantine(path, exc)
                continue
            if batch.samples and self.c.lab.emulate_from is not None:
                self._emulate_lab(batch.samples)
        n = 0
        for path in sorted(p for p in inbox.glob("*.json") if not p.name.endswith((REQUEST_SUFFIX, ".reply.json"))):
            try:
                ev = ingest_sheet_records(path, self.store, self.journal)
            except Exception as exc:  # noqa: BLE001 -- any bad file: set aside, never stop the loop
                self._quarantine(path, exc)
                continue
            jn.apply(self.state, ev)
            path.unlink()
            n += 1
        return n

    def _quarantine(self, path: Path, exc: BaseException) -> None:
        folder = path.parent / "quarantine"
        folder.mkdir(exist_ok=True)
        os.replace(path, folder / path.name)
        message = f"{type(exc).__name__}: {exc}"[:500]
        (folder / f"{path.name}.why.txt").write_text(message + "\n")
        self._log("inbox_quarantined", file=str(folder / path.name), error=message)
        if not self.quiet:
            self.console.print(f"[yellow]inbox: {path.name} quarantined ({message})[/]")
