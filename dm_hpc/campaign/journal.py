"""The campaign journal: every transition, appended durably, replayed on resume.

One JSON object per line in ``RUN_DIR/journal.jsonl``, written and fsynced before the step it
records is acted on (write-ahead). Each line carries ``"crc"``, the CRC-32 of the line without
it, so a torn or garbled tail is recognised even when it happens to parse; replay stops at the
first line that is incomplete or fails its checksum, and the next writer truncates the file
there (the events after it were never acknowledged: each write returns only once fsynced).
Lines without ``crc`` (journals of older versions) are accepted as they are. Replay rebuilds
the campaign state, so a restarted manager knows which tasks were planned, submitted,
finished, ingested, and which experiments the lab was sent.
"""
from __future__ import annotations

import json
import os
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Task states as the journal knows them (runner job states live in dm_hpc.runners.states).
PLANNED, SUBMITTED, FINISHED, INGESTED, FAILED = "planned", "submitted", "finished", "ingested", "failed"


@dataclass
class TaskEntry:
    """What the journal knows of one calculation task."""

    task_id: str
    fidelity: str
    composition: dict[str, float]
    process: dict[str, float]
    status: str = PLANNED
    submissions: int = 0
    predicted: dict[str, Any] = field(default_factory=dict)
    record_id: str | None = None
    error: str | None = None
    failure_kind: str | None = None
    core_hours: float = 0.0
    planned_at: float = 0.0
    ended_at: float | None = None


@dataclass
class LabEntry:
    """One suggested experiment (its id is the lab sheet's sample_id)."""

    sample_id: str
    composition: dict[str, float]
    process: dict[str, float]
    predicted: dict[str, Any] = field(default_factory=dict)
    batch: int = 0
    record_id: str | None = None
    not_made: bool = False  # the lab returned the row without a measurement

    @property
    def awaited(self) -> bool:
        """Still out at the lab: neither measured nor returned as not made."""
        return self.record_id is None and not self.not_made


@dataclass
class State:
    """The campaign as replayed from its journal."""

    tasks: dict[str, TaskEntry] = field(default_factory=dict)
    lab: dict[str, LabEntry] = field(default_factory=dict)
    lab_batches: int = 0
    refits: int = 0
    started_at: float | None = None
    elapsed_before: float = 0.0
    stopped: str | None = None
    best: list[dict[str, Any]] = field(default_factory=list)

    @property
    def in_flight(self) -> list[TaskEntry]:
        return [t for t in self.tasks.values() if t.status in (PLANNED, SUBMITTED)]

    @property
    def finished(self) -> list[TaskEntry]:
        return [t for t in self.tasks.values() if t.status in (INGESTED, FAILED)]

    @property
    def core_hours(self) -> float:
        return sum(t.core_hours for t in self.tasks.values())

    @property
    def phase(self) -> str:
        """Where the campaign stands, in the words ``status``, the report and the portal share."""
        if self.stopped:
            return self.stopped
        if self.started_at is not None:
            return "running or interrupted"
        if self.lab or self.tasks:  # a lab-only campaign driven by `suggest` and `ingest`
            return "driven by suggest/ingest (no run started)"
        return "not started"

    @property
    def predicted_batches(self) -> int:
        """Lab batches suggested with model predictions (a surrogate was fitted for each; a
        run's own fits are ``refits``)."""
        return len({e.batch for e in self.lab.values() if e.predicted.get("mean")})


class JournalError(RuntimeError):
    """A journal that contradicts itself (e.g. one task id planned twice)."""


def _encode(ev: dict[str, Any]) -> str:
    body = json.dumps(ev, separators=(",", ":"))
    crc = zlib.crc32(body.encode())
    return f'{body[:-1]},"crc":"{crc:08x}"}}' if body != "{}" else body


def _decode(line: str) -> dict[str, Any] | None:
    """The event of one complete line, or None when it is garbled or fails its checksum."""
    try:
        ev = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(ev, dict) or "event" not in ev:
        return None
    crc = ev.pop("crc", None)
    if crc is not None and f"{zlib.crc32(json.dumps(ev, separators=(',', ':')).encode()):08x}" != crc:
        return None
    return ev


def _valid_prefix(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The events of the journal's valid prefix and its length in bytes."""
    events, good = [], 0
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # torn by a crash: never acknowledged
            try:
                ev = _decode(raw.decode("utf-8"))
            except UnicodeDecodeError:
                ev = None
            if ev is None:
                break
            events.append(ev)
            good += len(raw)
    return events, good


class Journal:
    """Append-only, fsynced, checksummed JSONL log of campaign events."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired = 0  # bytes of a torn tail cut off when opened
        if self.path.exists():
            _, good = _valid_prefix(self.path)
            size = self.path.stat().st_size
            if good < size:
                with open(self.path, "r+b") as fh:
                    fh.truncate(good)
                    fh.flush()
                    os.fsync(fh.fileno())
                self.repaired = size - good
        self._fh = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, event: str, **data: Any) -> dict[str, Any]:
        """Append one event and make it durable before returning it (thread-safe)."""
        ev = {"t": time.time(), "event": event, **data}
        line = _encode(ev)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        return ev

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    @staticmethod
    def events(path: Path) -> Iterator[dict[str, Any]]:
        """Events in order, up to the first torn or garbled line."""
        if not Path(path).exists():
            return
        yield from _valid_prefix(Path(path))[0]


def apply(state: State, ev: dict[str, Any]) -> None:
    """Apply one journal event to ``state`` (replay, and the live manager, both use this)."""
    kind = ev["event"]
    if kind == "start":
        state.started_at = ev["t"]
        state.stopped = None
    elif kind == "planned":
        if ev["task_id"] in state.tasks:
            raise JournalError(f"task {ev['task_id']} planned twice")
        state.tasks[ev["task_id"]] = TaskEntry(
            task_id=ev["task_id"], fidelity=ev["fidelity"], composition=ev["composition"],
            process=ev.get("process", {}), predicted=ev.get("predicted", {}), planned_at=ev["t"],
        )
    elif kind == "submitted":
        task = state.tasks[ev["task_id"]]
        task.status = SUBMITTED
        task.submissions += 1
    elif kind == "ingested":
        task = state.tasks[ev["task_id"]]
        task.status, task.record_id = INGESTED, ev.get("record_id")
        task.core_hours, task.ended_at = ev.get("core_hours", 0.0), ev["t"]
    elif kind == "failed":
        task = state.tasks[ev["task_id"]]
        task.status, task.error, task.failure_kind = FAILED, ev.get("error"), ev.get("kind", "unknown")
        task.core_hours, task.ended_at = ev.get("core_hours", 0.0), ev["t"]
    elif kind == "lab_suggested":
        state.lab_batches = max(state.lab_batches, ev["batch"])
        for s in ev["samples"]:
            state.lab[s["sample_id"]] = LabEntry(
                sample_id=s["sample_id"], composition=s["composition"], process=s.get("process", {}),
                predicted=s.get("predicted", {}), batch=ev["batch"],
            )
    elif kind == "lab_ingested":
        for sid, rid in ev["records"].items():
            if sid in state.lab:
                state.lab[sid].record_id, state.lab[sid].not_made = rid, False
        for sid in ev.get("not_made", []):
            if sid in state.lab and state.lab[sid].record_id is None:
                state.lab[sid].not_made = True
    elif kind == "refit":
        state.refits += 1
        if "best" in ev:
            state.best.append({"n": ev.get("n"), **ev["best"]})
    elif kind == "stop":
        state.stopped = ev.get("reason")


def replay(path: Path) -> State:
    """Rebuild the campaign state from its journal."""
    state = State()
    for ev in Journal.events(path):
        apply(state, ev)
    return state
