"""A rich progress bar over a runner's outcomes (long work shows progress)."""
from __future__ import annotations

import time
from typing import Protocol

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dm_hpc.runners.spec import Outcome


class Polled(Protocol):
    """What is tracked: anything that hands back the outcomes that came in since the last call
    (a ``Runner``; named by its behaviour so this module needs nothing of the runner's)."""

    def poll(self) -> list[Outcome]: ...


def track_outcomes(runner: Polled, total: int, poll_s: float, timeout_s: float | None,
                   show: bool, label: str) -> list[Outcome]:
    """Poll ``runner`` every ``poll_s`` seconds until ``total`` outcomes came back."""
    outcomes: list[Outcome] = []
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), disable=not show, transient=True) as bar:
        job = bar.add_task(label, total=total)
        while len(outcomes) < total:
            new = runner.poll()
            outcomes.extend(new)
            bar.update(job, completed=len(outcomes))
            if len(outcomes) >= total:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{total - len(outcomes)} of {total} {label} still in flight")
            if not new:
                time.sleep(poll_s)
    return outcomes
