"""The shared machinery of every runner: backlog, throttle, retry policy, outcomes.

A backend only says how to launch a batch of tasks, how to check which have ended, and how
to kill them (the dask-jobqueue pattern: the core carries the weight, backends stay thin).
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from dm_hpc.runners.polling import PollClock
from dm_hpc.runners.spec import NO_RETRY, Outcome, RetryPolicy, TaskRecord, TaskSpec, Throttle, ran_seconds
from dm_hpc.runners.states import JobState

Finish = tuple[JobState, int | None]  # (state, exit code) reported by a backend


@runtime_checkable
class LostReply(Protocol):
    """What a launch raises when its reply was lost and the job may be queued all the same
    (``slurmcli.SubmissionUnsure``): ``find`` says which job it became, if any."""

    def find(self) -> str | None: ...


class UnrecordedLaunch(RuntimeError):
    """A launch queued its jobs, and the runner follows them by the ids it set on the records,
    but the backend could not record them (its submissions journal could not be written: disk
    full, permission). Raised on to the caller, who must hear of it; never a reason to launch the
    tasks again (that would run them twice)."""


class Runner:
    """Runner protocol (Ax-style) with the shared machinery; subclass and fill the hooks.

    ``submit`` queues tasks and returns their handles (the task ids, stable across retries);
    ``poll`` returns the outcomes that became final since the last poll, after the retry
    policy had its say; ``cancel`` stops tasks (never retried); ``in_flight`` counts tasks
    not yet reported; ``reattach`` follows a campaign's jobs after a manager restart.
    """

    def __init__(self, retry: RetryPolicy | None = None, throttle: Throttle | None = None) -> None:
        self.retry = retry if retry is not None else RetryPolicy()
        self.throttle = throttle or Throttle()
        self._backlog: deque[TaskRecord] = deque()
        self._active: dict[str, TaskRecord] = {}
        self._ready: list[Outcome] = []
        self._last_launch = 0.0
        #: one-line messages for whoever drives the runner (the campaign manager prints them):
        #: what the runner put up with rather than raise (a scheduler that does not answer)
        self.notices: list[str] = []
        #: when to ask the scheduler next; set by backends that talk to one, which may then raise
        #: ``retry_later`` from a launch and must report unanswered queries (``_unanswered``)
        self.clock: PollClock | None = None
        #: launched batches whose reply was lost: active, job id unknown, until ``_settle``
        self._unsure: list[tuple[list[TaskRecord], LostReply]] = []

    # -- protocol --------------------------------------------------------------------------
    def submit(self, tasks: Sequence[TaskSpec]) -> list[str]:
        """Queue tasks (submitted as the throttle allows); returns their handles (task ids)."""
        known = {r.spec.task_id for r in self._backlog} | set(self._active)
        for spec in tasks:
            if spec.task_id in known:
                raise ValueError(f"task {spec.task_id!r} is already in flight")
            known.add(spec.task_id)
            spec.workdir.mkdir(parents=True, exist_ok=True)
            self._backlog.append(TaskRecord(spec))
        self._fill()
        return [t.task_id for t in tasks]

    def poll(self) -> list[Outcome]:
        """Outcomes that became final since the last call (retries are handled inside)."""
        self._settle()
        unsure = self._unsure_ids()
        active = [r for t, r in self._active.items() if t not in unsure]
        if active:
            for task_id, (state, rc) in self._check(active).items():
                rec = self._active.get(task_id)
                if rec is None:
                    continue
                if not state.is_final:
                    rec.state = state
                    continue
                del self._active[task_id]
                policy = NO_RETRY if rec.cancel_requested else self.retry
                again = policy.next_spec(rec.spec, state, rec.retried)
                if again is None:
                    self._deliver(Outcome.collect(rec.spec, state, rc, rec.job_id, rec.attempts,
                                                  rec.earlier_s), rec.spec)
                else:
                    # read before the next attempt clears the run folder: the outcome charges
                    # the task's cores for every attempt, not the last one only
                    rec.earlier_s += ran_seconds(rec.spec, state)
                    rec.retried[state] = rec.retried.get(state, 0) + 1
                    rec.spec, rec.state = again, JobState.PENDING
                    self._backlog.appendleft(rec)
        self._fill()
        out, self._ready = self._ready, []
        return out

    def states(self) -> dict[str, JobState]:
        """Current state of every task not yet reported."""
        got = {r.spec.task_id: JobState.PENDING for r in self._backlog}
        got.update({t: r.state for t, r in self._active.items()})
        return got

    def job_ids(self) -> dict[str, str | None]:
        """Current backend job id of every task not yet reported."""
        return {t: r.job_id for t, r in self._active.items()}

    def cancel(self, task_ids: Sequence[str]) -> None:
        """Stop tasks; their outcome is CANCELLED and they are never retried."""
        wanted = set(task_ids)
        for rec in [r for r in self._backlog if r.spec.task_id in wanted]:
            self._backlog.remove(rec)
            self._deliver(Outcome.collect(rec.spec, JobState.CANCELLED, None, rec.job_id, rec.attempts,
                                          rec.earlier_s), rec.spec)
        victims = [r for t, r in self._active.items() if t in wanted]
        for rec in victims:
            rec.cancel_requested = True
        unsure = self._unsure_ids()  # no job id to kill yet: settled by the look-up (_settle)
        victims = [r for r in victims if r.spec.task_id not in unsure]
        if victims:
            self._kill(victims)

    def reattach(self, campaign: str) -> list[str]:
        """Follow a campaign's jobs that are still known to the backend; returns their task ids."""
        return []

    def in_flight(self) -> int:
        """Tasks submitted and not yet reported by ``poll``."""
        return len(self._backlog) + len(self._active)

    def take_notices(self) -> list[str]:
        """The notices since the last call (each handed out once)."""
        out, self.notices = self.notices, []
        return out

    def close(self) -> None:
        """Release backend resources (running tasks are left alone unless the backend owns them)."""

    def run(self, tasks: Sequence[TaskSpec], poll_s: float = 0.5, timeout_s: float | None = None,
            progress: bool = True, label: str = "tasks") -> list[Outcome]:
        """Submit ``tasks`` and poll until all are final (convenience for scripts and tests)."""
        from dm_hpc.runners.progress import track_outcomes

        self.submit(tasks)
        return track_outcomes(self, len(tasks), poll_s, timeout_s, progress, label)

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared machinery ------------------------------------------------------------------
    def _deliver(self, outcome: Outcome, spec: TaskSpec) -> None:
        self._ready.append(outcome)
        self._delivered(outcome, spec)

    def _fill(self) -> None:
        """Launch backlog batches while the throttle allows (cap per campaign, rate, size)."""
        if self.clock is not None and self.clock.outage and not self.clock.due():
            return  # the scheduler does not answer: asked again when the poll clock says
        skipped: list[TaskRecord] = []
        held = self._gathering()
        while self._backlog:
            if self.throttle.submit_rate > 0:
                wait = self._last_launch + 1.0 / self.throttle.submit_rate - time.monotonic()
                if wait > 0:
                    if wait > 0.2:  # leave the rest for the next poll rather than block
                        break
                    time.sleep(wait)
            head = self._backlog.popleft()
            if held and self._batch_key(head.spec) in held or not self._fits(head, []):
                skipped.append(head)
                continue
            batch, key = [head], self._batch_key(head.spec)
            for rec in list(self._backlog):  # batch-mates anywhere in the backlog, in order
                if len(batch) >= self._batch_limit(head.spec):
                    break
                if self._batch_key(rec.spec) == key and self._fits(rec, batch):
                    self._backlog.remove(rec)
                    batch.append(rec)
            for rec in batch:
                rec.attempts += 1
                rec.state, rec.job_id = JobState.PENDING, None  # the last attempt's job is no more
                self._active[rec.spec.task_id] = rec
            self._last_launch = time.monotonic()
            try:
                self._launch(batch)
            except UnrecordedLaunch:  # queued: followed by its job ids, never launched again
                self._backlog.extendleft(reversed(skipped))
                self._answered()
                raise
            except Exception as exc:
                if not (getattr(exc, "retry_later", False) and self.clock is not None):
                    self._requeue(batch)
                    self._backlog.extendleft(reversed(skipped))
                    raise
                if isinstance(exc, LostReply):  # may be queued: launched again only once a look-up
                    self._unsure.append((batch, exc))  # says it is not there, never on a guess
                else:  # the scheduler was not reached: nothing went
                    self._requeue(batch)
                self._backlog.extendleft(reversed(skipped))
                self._unanswered(exc)
                return
            self._answered()
        self._backlog.extendleft(reversed(skipped))

    def _requeue(self, batch: list[TaskRecord]) -> None:
        """A launch that queued nothing: its tasks go back to the head of the backlog, in order."""
        for rec in batch:
            del self._active[rec.spec.task_id]
            rec.attempts -= 1
        self._backlog.extendleft(reversed(batch))

    def _settle(self) -> None:
        """Look up the batches whose launch reply was lost, when the poll clock says: a job that
        showed up is adopted (and killed if its tasks were cancelled meanwhile); a batch that no
        source knows goes back to the backlog (cancelled tasks: delivered); while the scheduler
        does not answer, nothing is decided."""
        while self._unsure and self.clock is not None and self.clock.due():
            batch, lost = self._unsure[0]
            try:
                job = lost.find()
            except Exception as exc:
                if not getattr(exc, "retry_later", False):
                    raise
                self._unanswered(exc)
                return
            self._answered()
            del self._unsure[0]
            if job is not None:
                self.notices.append(f"the submission whose reply was lost did queue job {job}: followed, "
                                    f"not submitted again")
                try:
                    self._adopt(batch, job)  # UnrecordedLaunch: followed all the same, raised on
                finally:
                    stopped = [r for r in batch if r.cancel_requested and r.job_id]
                    if stopped:
                        self._kill(stopped)
                continue
            self.notices.append("the submission whose reply was lost queued nothing (no source knows its "
                                "job name): its tasks are submitted again")
            self._requeue(batch)
            self.cancel([r.spec.task_id for r in batch if r.cancel_requested])

    def _unsure_ids(self) -> set[str]:
        return {r.spec.task_id for batch, _ in self._unsure for r in batch}

    def _unanswered(self, exc: BaseException) -> None:
        """The scheduler did not answer (squeue, sbatch, a look-up) or its reply to a submission
        was lost: no news about the jobs; one notice per outage, and one per lost reply (that
        job is looked up by its name, never submitted again on a guess); launches and queries
        wait for the poll clock, which backs off."""
        assert self.clock is not None, "a runner that asks a scheduler has a poll clock"
        self.notices += filter(None, [self.clock.unanswered(exc, lost_reply=isinstance(exc, LostReply))])

    def _answered(self) -> None:
        """The scheduler answered: a notice if that ends an outage."""
        if self.clock is not None:
            self.notices += filter(None, [self.clock.answered()])

    def _fits(self, rec: TaskRecord, batch: list[TaskRecord]) -> bool:
        """Per-campaign cap on tasks submitted and not finished (plus those in ``batch``)."""
        campaign = rec.spec.campaign
        queued = sum(1 for r in self._active.values() if r.spec.campaign == campaign)
        return queued + len(batch) < self.throttle.max_in_queue

    def _batch_limit(self, spec: TaskSpec) -> int:
        """Most tasks like ``spec`` in one launch (one submission)."""
        return self.throttle.max_batch

    def _gathering(self) -> set[tuple]:
        """Batch keys whose tasks wait for batch-mates (packing) for now. Default: none."""
        return set()

    def _batch_key(self, spec: TaskSpec) -> tuple:
        """Tasks batched into one submission must agree on this (resources, campaign)."""
        return (spec.campaign, spec.cores, spec.memory_mb, spec.walltime_s, spec.gpus)

    # -- backend hooks ---------------------------------------------------------------------
    def _launch(self, batch: list[TaskRecord]) -> None:
        """Start the batch (one submission); set each record's ``job_id`` (and ``handle``). An
        error before anything was queued: the batch goes back to the backlog; after: raise
        UnrecordedLaunch, with the job ids set."""
        raise NotImplementedError

    def _adopt(self, batch: list[TaskRecord], job_id: str) -> None:
        """Follow ``job_id``, queued for ``batch`` (a launch's reply, or the look-up after a lost
        one): set the job ids first, then record them; UnrecordedLaunch if that fails."""
        raise NotImplementedError

    def _check(self, active: list[TaskRecord]) -> dict[str, tuple[JobState, int | None]]:
        """Current (state, exit code) by task id for the tasks whose state is known."""
        raise NotImplementedError

    def _kill(self, records: list[TaskRecord]) -> None:
        raise NotImplementedError

    def _delivered(self, outcome: Outcome, spec: TaskSpec) -> None:
        """Hook: an outcome left the runner (backends may journal it)."""
