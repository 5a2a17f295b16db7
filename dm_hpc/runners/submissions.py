"""The Slurm runner's own journal of submissions: the job ids ``sbatch --parsable`` returned.

Re-attach after a manager restart reads this file first, so it never depends on a field the
site can override (a site's ``--comment`` or job-name rules). One JSON line per ``sbatch``
call, appended and fsynced before the job ids are used; a torn last line (power cut mid-write)
is skipped. Job names (``<name>--<batch id>``, set only by dm-hpc) are the fallback for a batch
whose line never made it (the manager died between ``sbatch`` and the write); job comments never
are (a site's ``--comment`` can say anything).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path


def append_line(path: Path, text: str) -> None:
    """Append one line and make it durable (fsync) before returning."""
    with open(path, "a") as fh:
        fh.write(text.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())


@dataclass(frozen=True)
class Submission:
    """One sbatch call: ``job`` is the job (or array) id; ``tasks`` lists (array index,
    task id, attempt); array elements are ``<job>_<index>``."""

    job: str
    batch: str
    array: bool
    tasks: tuple[tuple[int, str, int], ...]

    def job_ids(self) -> dict[str, tuple[str, int]]:
        """Slurm id of each task's job -> (task id, attempt)."""
        return {(f"{self.job}_{i}" if self.array else self.job): (t, a) for i, t, a in self.tasks}


class SubmissionLog:
    """``<campaign run folder>/submissions.jsonl`` (append-only; never rewritten)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, sub: Submission) -> None:
        append_line(self.path, json.dumps({"job": sub.job, "batch": sub.batch, "array": sub.array,
                                           "tasks": [list(t) for t in sub.tasks],
                                           "time": round(time.time(), 3)}))

    def read(self) -> list[Submission]:
        """Every complete line, oldest first (a torn or foreign line is skipped)."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        got = []
        for line in lines:
            try:
                entry = json.loads(line)
                got.append(Submission(str(entry["job"]), str(entry["batch"]), bool(entry["array"]),
                                      tuple((int(i), str(t), int(a)) for i, t, a in entry["tasks"])))
            except (ValueError, KeyError, TypeError):
                continue
        return got
