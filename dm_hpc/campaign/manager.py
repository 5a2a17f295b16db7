"""The asynchronous campaign loop.

Keep up to ``runner.max_in_flight`` calculations running; whenever one finishes, ingest its
result, refit the surrogate every ``learning.refit_every`` results (a fit costs seconds, a
slot left empty costs a worker: refitting on every result would idle the cluster), and fill
the slot from a queue of suggestions computed ahead with every in-flight point as pending.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.dataset import training_set
from dm_hpc.campaign.spec import Campaign, FidelityKind, Goal
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


def make_runner(campaign: Campaign, run_dir: Path):
    """The runner the campaign names (heavy backends imported only when used)."""
    from dm_hpc.runners import LocalRunner, RetryPolicy, SiteProfile

    rc = campaign.runner
    retry = RetryPolicy(max_failed=rc.retries)
    if rc.kind.value == "local":
        return LocalRunner(cores=rc.cores, retry=retry)
    site = SiteProfile.load(rc.site or "local")
    if rc.kind.value == "slurm":
        from dm_hpc.runners import SlurmRunner

        return SlurmRunner(site, run_dir / "slurm", retry=RetryPolicy(max_failed=rc.retries, max_walltime_s=site.max_walltime_s))
    if rc.kind.value == "dask":
        from dm_hpc.runners import DaskPilotRunner

        return DaskPilotRunner(site, run_dir / "slurm", campaign=campaign.name, jobs=max(1, rc.max_in_flight // 2), retry=retry)
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

    def __init__(self, campaign: Campaign, console: Console | None = None, quiet: bool = False,
                 runner: Any = None) -> None:
        self.c = campaign
        self.run_dir = campaign.run_dir
        self.console = console or Console()
        self.quiet = quiet
        self._runner = runner
        self.rng = np.random.default_rng(campaign.seed)
        self.queue: deque[Suggestion] = deque()
        self.lab_pending: list[Suggestion] = []
        self.model = None
        self.fitted_on = -1
        self.busy_s = 0.0
        self._adopted: set[str] = set()

    # ------------------------------------------------------------------ helpers
    def task_dir(self, task_id: str) -> Path:
        return (self.run_dir / "tasks" / task_id).absolute()

    def _lock(self) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / "manager.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CampaignBusyError(f"campaign {self.c.name!r} is already running ({self.run_dir}/manager.lock)") from None
        return fd

    def _budget_reason(self, state: jn.State, now: float) -> str | None:
        b = self.c.budget
        calcs = len(state.tasks)
        if b.calculations is not None and calcs >= b.calculations:
            return f"calculation budget reached ({calcs})"
        if b.core_hours is not None and state.core_hours >= b.core_hours:
            return f"core-hour budget reached ({state.core_hours:.3f})"
        if b.wall_time is not None and state.started_at is not None and now - state.started_at >= b.wall_time:
            return f"wall-time budget reached ({now - state.started_at:.0f} s)"
        if (self.run_dir / STOP_FILE).exists():
            return "stopped by request (dm-hpc stop)"
        return None

    def _best(self, df) -> dict[str, float]:
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
            v = best.get(o.property)
            t = o.canonical_target
            if v is None or (o.goal == Goal.max and v < t) or (o.goal == Goal.min and v > t):
                return False
        return True

    # ------------------------------------------------------------------ main loop
    def run(self, max_seconds: float | None = None) -> Summary:
        """Run (or resume) the campaign; returns when it is done, stopped or ``max_seconds`` pass."""
        lock_fd = self._lock()
        try:
            store = Store.open(self.c.store, "a")
        except StoreLockedError as exc:
            os.close(lock_fd)
            raise CampaignBusyError(str(exc)) from None
        journal = jn.Journal(self.run_dir / "journal.jsonl")
        self.journal = journal
        try:
            return self._run(store, journal, max_seconds)
        finally:
            journal.close()
            store.close()
            if self._runner is not None:
                self._runner.close()
            os.close(lock_fd)

    def _run(self, store: Store, journal: jn.Journal, max_seconds: float | None) -> Summary:
        from dm_hpc.compute import read_result, result_to_record

        state = jn.replay(journal.path)
        if state.started_at is None:
            journal.write("start", campaign=self.c.name, seed=self.c.seed)
        else:
            journal.write("resume", campaign=self.c.name)
        state = jn.replay(journal.path)
        t0 = time.time()
        self._runner = self._runner or make_runner(self.c, self.run_dir)
        runner = self._runner
        self._resume(state, journal, store, runner)
        state = jn.replay(journal.path)
        for sid, entry in state.lab.items():
            if entry.record_id is None:
                self.lab_pending.append(Suggestion("lab", entry.composition, entry.process, entry.predicted))
        n_calc_fids = len(self.c.calculations)
        reason: str | None = None
        since_fit = 0
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                            TimeElapsedColumn(), console=self.console, disable=self.quiet, transient=False)
        total = self.c.budget.calculations or 0
        with progress:
            bar = progress.add_task(self.c.name, total=total or None, info="")
            busy_since: dict[str, float] = {}
            while True:
                now = time.time()
                reason = reason or self._budget_reason(state, now)
                if max_seconds is not None and now - t0 > max_seconds:
                    reason = reason or "paused (time given to this run used up)"
                    break
                # 1. fill free slots
                while reason is None and len(state.in_flight) < self.c.runner.max_in_flight:
                    if self._budget_reason(state, time.time()):
                        break
                    sugg = self._next_suggestion(state, store, journal)
                    if sugg is None:
                        break
                    task_id = f"{self.c.name}-c{len(state.tasks) + 1:05d}"
                    self._submit(task_id, sugg, journal, runner)
                    state = jn.replay(journal.path)
                    busy_since[task_id] = time.time()
                # 2. collect what finished
                for outcome in runner.poll():
                    task = state.tasks.get(outcome.task_id)
                    if task is None:
                        continue
                    self.busy_s += time.time() - busy_since.pop(outcome.task_id, time.time())
                    self._collect(task, outcome, store, journal, read_result, result_to_record)
                    since_fit += 1
                for task_id in list(self._adopted):  # orphans of a killed manager, followed by folder
                    if not _orphan_alive(self.task_dir(task_id)):
                        self._adopted.discard(task_id)
                        self._collect(state.tasks[task_id], None, store, journal, read_result, result_to_record)
                        since_fit += 1
                self._ingest_inbox(store, journal, state)
                state = jn.replay(journal.path)
                # 3. refit at the cadence, when results came in
                if since_fit >= self.c.learning.refit_every:
                    since_fit = 0
                    self.queue.clear()  # suggestions of the old model go stale
                    self._refit(store, journal)
                df = store.to_dataframe(campaign=self.c.name)
                best = self._best(df)
                if reason is None and self._targets_met(best):
                    reason = "objective targets met"
                if reason is None and self._stale(state):
                    reason = f"no improvement in {self.c.stopping.no_improvement_rounds} refits"
                done = len(state.finished)
                failed = sum(t.status == jn.FAILED for t in state.tasks.values())
                best_txt = ", ".join(f"{k}={v:.4g}" for k, v in best.items())
                progress.update(bar, completed=done, info=(
                    f"in flight {len(state.in_flight)} | done {done - failed} | failed {failed} | "
                    f"{state.core_hours:.3f} core-h | best {best_txt or '-'}"))
                if reason is not None and not state.in_flight and not self._adopted:
                    break
                if reason is not None and runner.in_flight() == 0 and not self._adopted:
                    break
                time.sleep(POLL_S)
        self._flush_lab(journal, force=True)
        journal.write("stop", reason=reason)
        state = jn.replay(journal.path)
        elapsed = time.time() - t0
        slots = self.c.runner.max_in_flight * elapsed
        return Summary(
            reason=reason or "done",
            submitted=sum(t.submissions for t in state.tasks.values()),
            ingested=sum(t.status == jn.INGESTED for t in state.tasks.values()),
            failed=sum(t.status == jn.FAILED for t in state.tasks.values()),
            lab_suggested=len(state.lab),
            core_hours=state.core_hours,
            best=self._best(store.to_dataframe(campaign=self.c.name)),
            utilisation=self.busy_s / slots if slots > 0 else None,
        )

    def _stale(self, state: jn.State) -> bool:
        k = self.c.stopping.no_improvement_rounds
        if k is None or len(state.best) <= k or not self.c.objectives:
            return False
        o = self.c.objectives[0]
        values = [b.get(o.property) for b in state.best if b.get(o.property) is not None]
        if len(values) <= k:
            return False
        before, recent = values[:-k], values[-k:]
        better = max if o.goal == Goal.max else min
        return better(recent + [better(before)]) == better(before)

    # ------------------------------------------------------------------ steps
    def _submit(self, task_id: str, sugg: Suggestion, journal: jn.Journal, runner) -> None:
        from dm_hpc.compute import worker_argv, write_task
        from dm_hpc.runners import TaskSpec

        fid = next(f for f in self.c.fidelities if f.name == sugg.fidelity)
        workdir = self.task_dir(task_id)
        # write-ahead: the plan is durable before anything runs
        journal.write("planned", task_id=task_id, fidelity=fid.name, composition=sugg.composition,
                      process=sugg.process, predicted=sugg.predicted)
        path = write_task(workdir, sugg.composition, method=fid.method, settings=fid.settings,
                          properties=self.c.properties, seed=self.c.seed, cores=fid.cores,
                          task_id=task_id, campaign=self.c.name)
        spec = TaskSpec(task_id=task_id, name=f"{self.c.name} {fid.name} {task_id}", argv=worker_argv(path),
                        workdir=workdir, cores=fid.cores, walltime_s=int(fid.walltime), campaign=self.c.name,
                        env={"OMP_NUM_THREADS": "1"})
        runner.submit([spec])
        journal.write("submitted", task_id=task_id)

    def _collect(self, task: jn.TaskEntry, outcome, store: Store, journal: jn.Journal, read_result, result_to_record) -> None:
        """Ingest a finished task's result (or journal its typed failure)."""
        workdir = self.task_dir(task.task_id)
        result = read_result(workdir)
        state_name = outcome.state.name if outcome is not None else "COMPLETED"
        cores = next((f.cores for f in self.c.fidelities if f.name == task.fidelity), 1)
        if outcome is not None and outcome.started and outcome.ended:
            core_hours = (outcome.ended - outcome.started) * cores / 3600
        else:
            core_hours = getattr(result, "wall_time_s", 0.0) * cores / 3600
        if getattr(result, "ok", False) and state_name == "COMPLETED":
            record = result_to_record(result, campaign=self.c.name, task_id=task.task_id,
                                      job_id=getattr(outcome, "job_id", None))
            store.ingest([record])  # idempotent: a re-collected result is stored once
            journal.write("ingested", task_id=task.task_id, record_id=record.record_id, core_hours=core_hours)
            return
        if getattr(result, "ok", False):
            error = f"{state_name}: job ended {state_name} after writing a result"
        elif outcome is not None and state_name != "COMPLETED":
            tail = (outcome.stderr_tail or outcome.stdout_tail or "")[-800:]
            error = f"{state_name} (exit {outcome.exit_code}): {tail.strip()}"
        else:
            error = f"{result.kind.value}: {result.reason}"
        journal.write("failed", task_id=task.task_id, error=error, core_hours=core_hours)

    def _resume(self, state: jn.State, journal: jn.Journal, store: Store, runner) -> None:
        """Settle tasks a previous manager left in flight; never submit one twice."""
        from dm_hpc.compute import read_result, result_to_record

        open_tasks = state.in_flight
        if not open_tasks:
            return
        followed = set(runner.reattach(self.c.name) or [])
        for task in open_tasks:
            workdir = self.task_dir(task.task_id)
            if task.task_id in followed:
                continue
            if _orphan_alive(workdir):
                self._adopted.add(task.task_id)
                continue
            if (workdir / "result.json").exists():
                self._collect(task, None, store, journal, read_result, result_to_record)
                continue
            if task.status == jn.PLANNED or not (workdir / "result.json").exists():
                # never reached the queue, or died with the manager before writing a result:
                # run it (again) under the same task id
                from dm_hpc.compute import worker_argv
                from dm_hpc.runners import TaskSpec

                fid = next(f for f in self.c.fidelities if f.name == task.fidelity)
                if not (workdir / "task.json").exists():
                    from dm_hpc.compute import write_task

                    write_task(workdir, task.composition, method=fid.method, settings=fid.settings,
                               properties=self.c.properties, seed=self.c.seed, cores=fid.cores,
                               task_id=task.task_id, campaign=self.c.name)
                spec = TaskSpec(task_id=task.task_id, name=f"{self.c.name} {fid.name} {task.task_id}",
                                argv=worker_argv(workdir / "task.json"), workdir=workdir, cores=fid.cores,
                                walltime_s=int(fid.walltime), campaign=self.c.name, env={"OMP_NUM_THREADS": "1"})
                runner.submit([spec])
                journal.write("submitted", task_id=task.task_id, resumed=True)

    def _refit(self, store: Store, journal: jn.Journal) -> None:
        data = training_set(self.c, store.to_dataframe())
        if len(data) < max(2, self.c.learning.initial_points):
            return
        t = time.perf_counter()
        self.model = fit_model(self.c, data)
        self.fitted_on = len(data)
        best = self._best(store.to_dataframe(campaign=self.c.name))
        journal.write("refit", n=len(data), seconds=round(time.perf_counter() - t, 3), best=best)

    def _allowed_fidelities(self, state: jn.State) -> list[str]:
        allowed = [f.name for f in self.c.calculations]
        lab = self.c.lab
        if lab is not None:
            used = len(state.lab) + len(self.lab_pending)
            cap = self.c.budget.lab_experiments
            if cap is None or used < cap:
                allowed.append(lab.name)
        return allowed

    def _next_suggestion(self, state: jn.State, store: Store, journal: jn.Journal) -> Suggestion | None:
        """The next calculation to run (lab suggestions are set aside into the lab batch)."""
        done = {_key(t.composition, t.process) for t in state.tasks.values()}
        for _ in range(4):
            if self.queue:
                sugg = self.queue.popleft()
                if _key(sugg.composition, sugg.process) in done:
                    continue  # an identical calculation was run: it would give the same record
                if self.c.lab is not None and sugg.fidelity == self.c.lab.name:
                    if self.c.lab.name in self._allowed_fidelities(state):
                        self.lab_pending.append(sugg)
                        self._flush_lab(journal)
                    continue
                return sugg
            self._refill(state, store)
        return None

    def _refill(self, state: jn.State, store: Store) -> None:
        first_calc = self.c.calculations[0].name
        n_have = len(state.tasks)
        q = max(1, self.c.learning.batch_size)
        if self.model is None and n_have >= self.c.learning.initial_points:
            self._refit(store, self.journal)
        # seeded by the campaign seed and the number of tasks so far, so a resumed campaign
        # draws new points instead of repeating the ones its first life drew
        self.rng = np.random.default_rng([self.c.seed, n_have, len(self.queue) + len(self.lab_pending)])
        if self.model is None:
            self.queue.extend(random_suggestions(self.c, q, self.rng, first_calc))
            return
        model, space, multi = self.model
        pending = [(t.composition, t.process) for t in state.in_flight]
        pending += [(s.composition, s.process) for s in list(self.queue) + self.lab_pending]
        pending += [(e.composition, e.process) for e in state.lab.values() if e.record_id is None]
        allowed = self._allowed_fidelities(state) if multi else [first_calc]
        if self.c.mode == "gaps":
            from dm_hpc.campaign.gaps import gap_suggestions

            self.queue.extend(gap_suggestions(self.c, model, space, q, pending, seed=int(self.rng.integers(2**31))))
            return
        suggestions = model_suggestions(self.c, model, space, multi, q, pending, allowed,
                                        seed=int(self.rng.integers(2**31)))
        lab = self.c.lab
        if (not multi and lab is not None and lab.name in self._allowed_fidelities(state)
                and not self.lab_pending and not any(e.record_id is None for e in state.lab.values())):
            # no measurement yet, so no multi-fidelity model can weigh the lab: send the lab
            # a first batch of the best-predicted candidates; its answers seed the multi-task model
            pending += [(s.composition, s.process) for s in suggestions]
            seeds = model_suggestions(self.c, model, space, False, lab.batch_size, pending, [lab.name],
                                      seed=int(self.rng.integers(2**31)))
            for s in seeds:
                s.fidelity = lab.name
            suggestions = seeds + suggestions
        self.queue.extend(suggestions)

    def _flush_lab(self, journal: jn.Journal, force: bool = False) -> None:
        lab = self.c.lab
        if lab is None or not self.lab_pending:
            return
        if len(self.lab_pending) < lab.batch_size and not force:
            return
        state = jn.replay(journal.path)
        new = [s for s in self.lab_pending if not any(
            e.composition == s.composition and e.process == s.process for e in state.lab.values())]
        self.lab_pending = []
        if not new:
            return
        batch = state.lab_batches + 1
        samples = [{"sample_id": f"{self.c.name}-L{batch:03d}-{k + 1:02d}", "composition": s.composition,
                    "process": s.process, "predicted": s.predicted} for k, s in enumerate(new)]
        journal.write("lab_suggested", batch=batch, samples=samples)

    def _ingest_inbox(self, store: Store, journal: jn.Journal, state: jn.State) -> None:
        """Lab sheets that `dm-hpc ingest` validated while this manager held the store."""
        inbox = self.run_dir / "inbox"
        if not inbox.is_dir():
            return
        from dm_hpc.campaign.lab import ingest_sheet_records

        for path in sorted(inbox.glob("*.json")):
            ingest_sheet_records(path, store, journal)
            path.unlink()


def _key(composition: dict[str, float], process: dict[str, float]) -> tuple:
    """Identity of a point up to 1e-6 (what makes two calculations the same calculation)."""
    return (tuple(sorted((el, round(x, 6)) for el, x in composition.items() if round(x, 6) > 0)),
            tuple(sorted((k, round(v, 6)) for k, v in process.items())))


def fidelity_kinds(campaign: Campaign) -> dict[str, FidelityKind]:
    return {f.name: f.kind for f in campaign.fidelities}
