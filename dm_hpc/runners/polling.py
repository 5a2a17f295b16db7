"""Scheduler etiquette: how often a runner may ask Slurm about its jobs.

Slurm's documentation warns against calling ``squeue`` in loops; sites ask tools for one call
every 3-120 s. A :class:`PollClock` says when the next query is due: every ``interval_s``
while job states change, growing by ``backoff`` (up to ``max_interval_s``) while they do not.
Between queries the runner answers from the states it already has, so a caller may poll it
as often as it likes (the campaign manager loops every 0.1 s).
"""
from __future__ import annotations

import time
from collections.abc import Callable


class PollClock:
    """When the next scheduler query is due. Intervals in s."""

    def __init__(self, interval_s: float, backoff: float = 1.5, max_interval_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base = interval_s
        self.backoff = backoff
        self.max_interval_s = max(max_interval_s, interval_s)
        self.clock = clock
        self.interval_s = interval_s
        self._next = clock()  # the first query is due at once
        self._outage_since: float | None = None  # when the scheduler stopped answering
        self._lost_reply_only = False  # the "outage" is a lost sbatch reply: no end notice

    def due(self) -> bool:
        return self.clock() >= self._next

    @property
    def outage(self) -> bool:
        """The scheduler's last answer was none (``unanswered`` since the last ``answered``)."""
        return self._outage_since is not None

    def queried(self, changed: bool) -> None:
        """A query was made; ``changed``: some job's state differed from the last answer."""
        if changed:
            self.interval_s = self.base
        else:
            self.interval_s = min(self.max_interval_s, self.interval_s * self.backoff)
        self._next = self.clock() + self.interval_s

    def unanswered(self, exc: BaseException, lost_reply: bool = False) -> str | None:
        """The scheduler did not answer (a controller restart or overload) about the jobs or a
        submission: that is no news about the jobs, which go on without us. Backs off as if
        nothing changed; returns a warning line at the start of an outage (None while it lasts).
        ``lost_reply``: the reply to a submission was lost, which may have queued its job all the
        same: a warning for each (it names the job looked up), outage or not."""
        self.queried(False)
        untold = self._outage_since is None or self._lost_reply_only  # "does not answer" not said yet
        if self._outage_since is None:
            self._outage_since = self.clock()
            self._lost_reply_only = lost_reply
        lines = str(exc).strip().splitlines()
        why = lines[-1][:400] if lines else type(exc).__name__
        if lost_reply:
            return (f"warning: the reply to a submission was lost ({why}); the job is looked up by its name "
                    f"again in {self.interval_s:.0f} s (less often while nobody can tell, up to every "
                    f"{self.max_interval_s:.0f} s) and followed once found; it is never submitted again on a "
                    f"guess; tasks not yet submitted stay queued")
        self._lost_reply_only = False
        if not untold:
            return None
        return (f"warning: Slurm does not answer ({why}); asked again in {self.interval_s:.0f} s, less "
                f"often while it lasts (up to every {self.max_interval_s:.0f} s); tasks not yet submitted "
                f"stay queued")

    def answered(self) -> str | None:
        """The scheduler answered; a line saying so when it ends an outage (none after a lost
        reply only: the look-up that settles it says what it found)."""
        if self._outage_since is None:
            return None
        since, self._outage_since = self._outage_since, None
        if self._lost_reply_only:
            return None
        return f"Slurm answers again (after {self.clock() - since:.0f} s without an answer)"
