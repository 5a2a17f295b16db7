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

import fcntl
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.dataset import training_set
from dm_hpc.campaign.spec import Campaign, Goal
from dm_hpc.campaign.strategy import Suggestion, fit_model, model_suggestions, random_suggestions
from dm_hpc.data import Store, StoreLockedError

POLL_S = 0.1
STOP_FILE = "STOP"


class CampaignBusyError(RuntimeError):
    """Another manager runs this campaign."""


@dataclass
class Summary:
    """How a ``run`` ended."""

    reason: str
    submitted: int
    ingested: int
    failed: int
    lab_suggested: int
    core_hours: float
    best: dict[str, float]
    utilisation: float | None


@dataclass
class _Snapshot:
    """What the planner thread needs, copied so it never touches the store or the runner."""

    data: pd.DataFrame | None  # records to refit on (None: keep the current model)
    n_tasks: int
    pending: list[tuple[dict[str, float], dict[str, float]]]
    allowed: list[str]
    seed_lab: bool


def make_runner(campaign: Campaign, run_dir: Path):
    """The runner the campaign names (heavy backends imported only when used)."""
    from dm_hpc.runners import LocalRunner, RetryPolicy, SiteProfile

    rc = campaign.runner
    retry = RetryPolicy(max_failed=rc.retries)
    if rc.kind.value == "local":
        return LocalRunner(cores=rc.cores, retry=retry)
    site = SiteProfile.load(rc.site or "local")
    retry = RetryPolicy(max_failed=rc.retries, max_walltime_s=site.max_walltime_s)
    if rc.kind.value == "slurm":
        from dm_hpc.runners import SlurmRunner

        return SlurmRunner(site, run_dir / "slurm", retry=retry)
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


def _key(composition: dict[str, float], process: dict[str, float]) -> tuple:
    """Identity of a point up to 1e-6 (what makes two calculations the same calculation)."""
    return (tuple(sorted((el, round(x, 6)) for el, x in composition.items() if round(x, 6) > 0)),
            tuple(sorted((k, round(v, 6)) for k, v in process.items())))


class CampaignManager:
    """Runs one campaign to its end (or until interrupted; ``run`` again resumes)."""

    def __init__(self, campaign: Campaign, console: Console | None = None, quiet: bool = False,
                 runner: Any = None) -> None:
        self.c = campaign
        self.run_dir = campaign.run_dir
        self.console = console or Console()
        self.quiet = quiet
        self.runner = runner
        self.queue: deque[Suggestion] = deque()
        self.lab_pending: list[Suggestion] = []
        self.model: tuple | None = None
        self.busy_s = 0.0
        self.state = jn.State()
        self._adopted: set[str] = set()
        self._busy_since: dict[str, float] = {}
        self._planner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="planner")
        self._plan: Future | None = None
        self._refit_due = True
        self._best_cache: dict[str, float] = {}
        self._data_version = 0  # results ingested so far in this run
        self._plan_version = 0  # ... when the plan in progress was snapshotted

    # ------------------------------------------------------------------ bookkeeping
    def task_dir(self, task_id: str) -> Path:
        return (self.run_dir / "tasks" / task_id).absolute()

    def _log(self, event: str, **data: Any) -> None:
        """Journal an event (durably) and apply it to the in-memory state."""
        jn.apply(self.state, self.journal.write(event, **data))

    def _lock(self) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / "manager.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CampaignBusyError(f"campaign {self.c.name!r} is already running ({self.run_dir}/manager.lock)") from None
        return fd

    def _budget_reason(self) -> str | None:
        b, state = self.c.budget, self.state
        if b.calculations is not None and len(state.tasks) >= b.calculations:
            return f"calculation budget reached ({len(state.tasks)})"
        if b.core_hours is not None and state.core_hours >= b.core_hours:
            return f"core-hour budget reached ({state.core_hours:.3f})"
        if b.wall_time is not None and state.started_at is not None and time.time() - state.started_at >= b.wall_time:
            return f"wall-time budget reached ({time.time() - state.started_at:.0f} s)"
        if not self.c.calculations and b.lab_experiments is not None and (
                len(self.state.lab) + len(self.lab_pending) >= b.lab_experiments):
            return f"lab budget reached ({len(self.state.lab)} experiments)"
        if (self.run_dir / STOP_FILE).exists():
            return "stopped by request (dm-hpc stop)"
        return None

    def _best(self, df: pd.DataFrame) -> dict[str, float]:
        """Best value so far per objective over campaign records (any fidelity)."""
        out = {}
        for o in self.c.objectives:
            if o.property in df.columns and df[o.property].notna().any():
                col = df[o.property]
                out[o.property] = float(col.max() if o.goal == Goal.max else col.min())
        return out

    def _targets_met(self, best: dict[str, float]) -> bool:
        objs = [o for o in self.c.objectives if o.target is not None]
        if not objs or not self.c.stopping.targets_met:
            return False
        for o in objs:
            v, t = best.get(o.property), o.canonical_target
            if v is None or (o.goal == Goal.max and v < t) or (o.goal == Goal.min and v > t):
                return False
        return True

    def _stale(self) -> bool:
        k = self.c.stopping.no_improvement_rounds
        o = self.c.objectives[0]
        values = [b[o.property] for b in self.state.best if b.get(o.property) is not None]
        if k is None or len(values) <= k:
            return False
        better = max if o.goal == Goal.max else min
        return better(values[-k:] + [better(values[:-k])]) == better(values[:-k])

    # ------------------------------------------------------------------ main loop
    def run(self, max_seconds: float | None = None) -> Summary:
        """Run (or resume) the campaign; returns when it is done, stopped or ``max_seconds`` pass."""
        lock_fd = self._lock()
        try:
            self.store = Store.open(self.c.store, "a")
        except StoreLockedError as exc:
            os.close(lock_fd)
            raise CampaignBusyError(str(exc)) from None
        self.journal = jn.Journal(self.run_dir / "journal.jsonl")
        try:
            return self._run(max_seconds)
        finally:
            self._planner.shutdown(wait=True, cancel_futures=True)
            self.journal.close()
            self.store.close()
            if self.runner is not None:
                self.runner.close()
            os.close(lock_fd)

    def _run(self, max_seconds: float | None) -> Summary:
        self.state = jn.replay(self.journal.path)
        self._log("start" if self.state.started_at is None else "resume", campaign=self.c.name)
        t0 = time.time()
        self.runner = self.runner or make_runner(self.c, self.run_dir)
        self._resume()
        self._best_cache = self._best(self.store.to_dataframe(campaign=self.c.name))
        reason: str | None = None
        since_fit = 0
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                            TimeElapsedColumn(), console=self.console, disable=self.quiet)
        with progress:
            bar = progress.add_task(self.c.name, total=self.c.budget.calculations, info="")
            while True:
                reason = reason or self._budget_reason()
                if max_seconds is not None and time.time() - t0 > max_seconds:
                    reason = reason or "paused (time given to this run used up)"
                    break
                # 1. fill free slots from the queue (never waits for the model)
                while reason is None and len(self.state.in_flight) < self.c.runner.max_in_flight:
                    if self._budget_reason():
                        break
                    sugg = self._next_suggestion()
                    if sugg is None:
                        break
                    self._submit(f"{self.c.name}-c{len(self.state.tasks) + 1:05d}", sugg)
                if reason is None and not self.c.calculations:
                    self._next_suggestion()  # a lab-only campaign: suggestions go to lab batches
                # 2. collect what finished
                finished = 0
                for outcome in self.runner.poll():
                    task = self.state.tasks.get(outcome.task_id)
                    if task is not None:
                        self._collect(task, outcome)
                        finished += 1
                for task_id in list(self._adopted):  # orphans of a killed manager, followed by folder
                    if not _orphan_alive(self.task_dir(task_id)):
                        self._adopted.discard(task_id)
                        self._collect(self.state.tasks[task_id], None)
                        finished += 1
                finished += self._ingest_inbox()
                # 3. the planner: refit at the cadence, keep the queue topped up
                since_fit += finished
                if since_fit >= self.c.learning.refit_every:
                    since_fit, self._refit_due = 0, True
                if reason is None:
                    self._plan_ahead()
                if finished:
                    self._best_cache = self._best(self.store.to_dataframe(campaign=self.c.name))
                best = self._best_cache
                if reason is None and self._targets_met(best):
                    reason = "objective targets met"
                if reason is None and self._stale():
                    reason = f"no improvement in {self.c.stopping.no_improvement_rounds} refits"
                failed = sum(t.status == jn.FAILED for t in self.state.tasks.values())
                done = len(self.state.finished)
                best_txt = ", ".join(f"{k}={v:.4g}" for k, v in best.items())
                progress.update(bar, completed=done, info=(
                    f"in flight {len(self.state.in_flight)} | done {done - failed} | failed {failed} | "
                    f"{self.state.core_hours:.3f} core-h | best {best_txt or '-'}"))
                if reason is not None and not self.state.in_flight and not self._adopted:
                    break
                if reason is not None and self.runner.in_flight() == 0 and not self._adopted:
                    break
                time.sleep(POLL_S)
        self._flush_lab(force=True)
        self._log("stop", reason=reason)
        elapsed = time.time() - t0
        slots = self.c.runner.max_in_flight * elapsed
        tasks = self.state.tasks.values()
        return Summary(
            reason=reason or "done",
            submitted=sum(t.submissions for t in tasks),
            ingested=sum(t.status == jn.INGESTED for t in tasks),
            failed=sum(t.status == jn.FAILED for t in tasks),
            lab_suggested=len(self.state.lab),
            core_hours=self.state.core_hours,
            best=self._best(self.store.to_dataframe(campaign=self.c.name)),
            utilisation=self.busy_s / slots if slots > 0 else None,
        )

    # ------------------------------------------------------------------ tasks
    def _task_spec(self, task_id: str, fidelity: str, composition: dict[str, float]):
        from dm_hpc.compute import worker_argv, write_task
        from dm_hpc.runners import TaskSpec

        fid = next(f for f in self.c.fidelities if f.name == fidelity)
        workdir = self.task_dir(task_id)
        path = write_task(workdir, composition, method=fid.method, settings=fid.settings,
                          properties=self.c.properties, seed=self.c.seed, cores=fid.cores,
                          task_id=task_id, campaign=self.c.name)
        return TaskSpec(task_id=task_id, name=f"{self.c.name} {fid.name} {task_id}", argv=worker_argv(path),
                        workdir=workdir, cores=fid.cores, walltime_s=int(fid.walltime), campaign=self.c.name,
                        env={"OMP_NUM_THREADS": "1"})

    def _submit(self, task_id: str, sugg: Suggestion) -> None:
        # write-ahead: the plan is durable before anything runs
        self._log("planned", task_id=task_id, fidelity=sugg.fidelity, composition=sugg.composition,
                  process=sugg.process, predicted=sugg.predicted)
        self.runner.submit([self._task_spec(task_id, sugg.fidelity, sugg.composition)])
        self._log("submitted", task_id=task_id)
        self._busy_since[task_id] = time.time()

    def _collect(self, task: jn.TaskEntry, outcome) -> None:
        """Ingest a finished task's result (or journal its typed failure)."""
        from dm_hpc.compute import read_result, result_to_record

        self.busy_s += time.time() - self._busy_since.pop(task.task_id, time.time())
        result = read_result(self.task_dir(task.task_id))
        state_name = outcome.state.name if outcome is not None else "COMPLETED"
        cores = next((f.cores for f in self.c.fidelities if f.name == task.fidelity), 1)
        if outcome is not None and outcome.started and outcome.ended:
            core_hours = (outcome.ended - outcome.started) * cores / 3600
        else:
            core_hours = (getattr(result, "wall_time_s", 0.0) or 0.0) * cores / 3600
        if getattr(result, "ok", False) and state_name == "COMPLETED":
            record = result_to_record(result, campaign=self.c.name, task_id=task.task_id,
                                      job_id=getattr(outcome, "job_id", None))
            self.store.ingest([record])  # idempotent: a re-collected result is stored once
            self._data_version += 1
            self._log("ingested", task_id=task.task_id, record_id=record.record_id, core_hours=core_hours)
            return
        if outcome is not None and state_name != "COMPLETED":
            tail = (outcome.stderr_tail or outcome.stdout_tail or "")[-800:]
            error = f"{state_name} (exit {outcome.exit_code}): {tail.strip()}"
        elif getattr(result, "ok", False):
            error = f"{state_name}: job ended {state_name} after writing a result"
        else:
            error = f"{result.kind.value}: {result.reason}"
        self._log("failed", task_id=task.task_id, error=error, core_hours=core_hours)

    def _resume(self) -> None:
        """Settle tasks a previous manager left in flight; never submit one twice."""
        open_tasks = self.state.in_flight
        if not open_tasks:
            return
        followed = set(self.runner.reattach(self.c.name) or [])
        for task in open_tasks:
            workdir = self.task_dir(task.task_id)
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
                self.runner.submit([self._task_spec(task.task_id, task.fidelity, task.composition)])
                self._log("submitted", task_id=task.task_id, resumed=True)
                self._busy_since[task.task_id] = time.time()

    # ------------------------------------------------------------------ planning
    def _allowed_fidelities(self) -> list[str]:
        allowed = [f.name for f in self.c.calculations]
        lab = self.c.lab
        if lab is not None:
            cap = self.c.budget.lab_experiments
            if cap is None or len(self.state.lab) + len(self.lab_pending) < cap:
                allowed.append(lab.name)
        return allowed

    def _next_suggestion(self) -> Suggestion | None:
        """The next calculation to run (lab suggestions are set aside into the lab batch)."""
        done = {_key(t.composition, t.process) for t in self.state.tasks.values()}
        lab = self.c.lab
        while self.queue:
            sugg = self.queue.popleft()
            if lab is not None and sugg.fidelity == lab.name:
                if lab.name in self._allowed_fidelities():
                    self.lab_pending.append(sugg)
                    self._flush_lab()
                continue
            if _key(sugg.composition, sugg.process) in done:
                continue  # an identical calculation was run: it would give the same record
            return sugg
        return None

    def _plan_ahead(self) -> None:
        """Collect the planner's suggestions; start it again when the queue runs low."""
        if self._plan is not None:
            if not self._plan.done():
                return
            suggestions, refitted = self._plan.result()  # a planner error surfaces here
            stale = self._plan_version < self._data_version
            self._plan = None
            if refitted:
                self.queue.clear()  # suggestions of the older model
            if stale and not self.c.calculations:
                # nothing idles while a lab-only campaign waits for the model, so a plan made
                # before the latest measurements is dropped rather than sent to the lab
                self._refit_due = True
            else:
                self.queue.extend(suggestions)
        if len(self.queue) >= self.c.runner.max_in_flight:
            return
        n_tasks = len(self.state.tasks) + len(self.state.lab)  # evaluations asked for so far
        refit = self._refit_due and n_tasks >= self.c.learning.initial_points
        pending = [(t.composition, t.process) for t in self.state.in_flight]
        pending += [(s.composition, s.process) for s in list(self.queue) + self.lab_pending]
        pending += [(e.composition, e.process) for e in self.state.lab.values() if e.record_id is None]
        lab = self.c.lab
        snapshot = _Snapshot(
            data=self.store.to_dataframe() if refit else None,
            n_tasks=n_tasks + len(self.queue) + len(self.lab_pending),
            pending=pending,
            allowed=self._allowed_fidelities(),
            seed_lab=(lab is not None and lab.name in self._allowed_fidelities() and not self.lab_pending
                      and not any(e.record_id is None for e in self.state.lab.values())),
        )
        if refit:
            self._refit_due = False
        self._plan_version = self._data_version
        self._plan = self._planner.submit(self._make_plan, snapshot)

    def _make_plan(self, snap: _Snapshot) -> tuple[list[Suggestion], bool]:
        """Planner thread: refit when asked, then propose a batch. Touches no shared state
        but ``self.model`` (only this thread writes it) and the thread-safe journal."""
        refitted = False
        if snap.data is not None:
            data = training_set(self.c, snap.data)
            if len(data) >= max(2, self.c.learning.initial_points):
                t = time.perf_counter()
                self.model = fit_model(self.c, data)
                refitted = True
                self.journal.write("refit", n=len(data), seconds=round(time.perf_counter() - t, 3),
                                   best=self._best(snap.data[snap.data["campaign"] == self.c.name]))
        # seeded by the campaign seed and the number of tasks so far: a resumed campaign draws
        # new points instead of repeating the ones its first life drew
        rng = np.random.default_rng([self.c.seed, snap.n_tasks])
        q = self.c.learning.batch_size
        first_calc = (self.c.calculations or [self.c.lab])[0].name
        if self.model is None:
            return random_suggestions(self.c, q, rng, first_calc), refitted
        model, space, multi = self.model
        seed = int(rng.integers(2**31))
        if self.c.mode == "gaps":
            from dm_hpc.campaign.gaps import gap_suggestions

            return gap_suggestions(self.c, model, space, q, snap.pending, seed=seed), refitted
        allowed = snap.allowed if multi else [first_calc]
        suggestions = model_suggestions(self.c, model, space, multi, q, snap.pending, allowed, seed=seed)
        lab = self.c.lab
        if not multi and snap.seed_lab and lab is not None and self.c.calculations:
            # no measurement yet, so no multi-fidelity model can weigh the lab: send the lab a
            # first batch of the best-predicted candidates; its answers seed the multi-task model
            pending = snap.pending + [(s.composition, s.process) for s in suggestions]
            seeds = model_suggestions(self.c, model, space, False, lab.batch_size, pending, [first_calc], seed=seed + 1)
            for s in seeds:
                s.fidelity = lab.name
            suggestions = seeds + suggestions
        return suggestions, refitted

    # ------------------------------------------------------------------ the lab
    def _flush_lab(self, force: bool = False) -> None:
        lab = self.c.lab
        if lab is None or not self.lab_pending:
            return
        if len(self.lab_pending) < lab.batch_size and not force:
            return
        known = {_key(e.composition, e.process) for e in self.state.lab.values()}
        new = [s for s in self.lab_pending if _key(s.composition, s.process) not in known]
        self.lab_pending = []
        if not new:
            return
        batch = self.state.lab_batches + 1
        samples = [{"sample_id": f"{self.c.name}-L{batch:03d}-{k + 1:02d}", "composition": s.composition,
                    "process": s.process, "predicted": s.predicted} for k, s in enumerate(new)]
        self._log("lab_suggested", batch=batch, samples=samples)
        if lab.emulate_from is not None:
            self._emulate_lab(samples)

    def _emulate_lab(self, samples: list[dict[str, Any]]) -> None:
        """Answer a lab batch from the emulation table, as a lab would (offline benchmarks)."""
        from dm_hpc.data import MaterialRecord
        from dm_hpc.data.sheets import read_sheet

        lab = self.c.lab
        if not hasattr(self, "_emulation"):
            self._emulation: dict[tuple, list] = {}
            for rec in read_sheet(lab.emulate_from, column_map=lab.emulate_map):
                if rec.composition is None:
                    continue
                self._emulation.setdefault(_key(rec.composition.fractions, {}), []).append(rec)
        records = []
        for sample in samples:
            hits = self._emulation.get(_key(sample["composition"], {}), [])
            if not hits:
                continue  # the table never measured it: the lab "could not make" this sample
            props: dict[str, list[float]] = {}
            for rec in hits:  # replicates are averaged, as the benchmark protocol does
                for p in rec.properties:
                    props.setdefault(p.name, []).append(p.value)
            records.append(MaterialRecord.model_validate({
                "composition": sample["composition"], "sample_id": sample["sample_id"],
                "properties": [{"name": k, "value": float(np.mean(v))} for k, v in props.items()],
                "provenance": {"source": "experimental", "method": lab.name, "campaign": self.c.name,
                               "extra": {"emulated_from": str(lab.emulate_from)}},
            }))
        if records:
            from dm_hpc.campaign.lab import store_lab_results

            jn.apply(self.state, store_lab_results(records, self.store, self.journal,
                                                   f"emulated from {lab.emulate_from}"))
            self._refit_due = True
            self._data_version += 1
            self._best_cache = self._best(self.store.to_dataframe(campaign=self.c.name))

    def _ingest_inbox(self) -> int:
        """Lab sheets that `dm-hpc ingest` validated while this manager held the store."""
        inbox = self.run_dir / "inbox"
        if not inbox.is_dir():
            return 0
        from dm_hpc.campaign.lab import ingest_sheet_records

        n = 0
        for path in sorted(inbox.glob("*.json")):
            ev = ingest_sheet_records(path, self.store, self.journal)
            jn.apply(self.state, ev)
            path.unlink()
            n += 1
        return n
