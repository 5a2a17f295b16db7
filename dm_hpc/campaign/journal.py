"""The campaign journal: every transition, appended durably, replayed on resume; a hash chain.

One JSON object per line in ``RUN_DIR/journal.jsonl``, written and fsynced before the step it
records is acted on (write-ahead). The first line is a header (``"event": "journal"``,
``"format": 2``). Every line carries ``"prev"``, the hash of the line before it, and ends with
``"sha"``, the SHA-256 (first 128 bits, hex) of the line up to that field, so each line's hash
covers its predecessor's: a line altered, removed, inserted, reordered or written by anything
but dm-hpc breaks the chain where it happened. A head file beside it (``journal.head``: the
number of lines and the last hash, rewritten in place after each append) makes lines removed at
the end visible too.

Only a torn last line (no newline: a crash during the append, never acknowledged) is cut when the
journal is opened. Any other damage stops whoever opens it with ``JournalDamage``, which names
each line and what is wrong; ``dm-hpc journal verify`` lists it, ``dm-hpc journal repair`` keeps
every intact event, re-chains them and keeps the damaged file beside it
(``dm_hpc.campaign.journal_repair``).

Journals of format 1 (no header; a CRC-32 per line, or none in the oldest) are read as legacy,
with a ``LegacyJournalWarning``: a line without a checksum among lines with one is damage. They
are not appended to: ``dm-hpc journal repair`` upgrades them explicitly after checking them.
Replay rebuilds the campaign state, so a restarted manager knows which tasks were planned,
submitted, finished, ingested, and which experiments the lab was sent.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import warnings
import zlib
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dm_hpc.data.integrity import fsync_dir

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
    held: str | None = None  # its value was held (why), until confirmed or corrected
    held_units: dict[str, str] = field(default_factory=dict)  # held property -> the unit the sheet typed it in

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
    task_floor: int = 0  # task numbers up to this one were issued (``ids_reserved``)
    refits: int = 0
    started_at: float | None = None
    elapsed_before: float = 0.0
    stopped: str | None = None
    best: list[dict[str, Any]] = field(default_factory=list)
    #: Why no model can be fitted, as checked on the store right after the last lab ingest ("":
    #: one can); None when not known (records came in since without a check: read the store).
    unfit: str | None = None

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

    def tasks_seen(self, readable: Container[str] | None = None) -> list[TaskEntry]:
        """Every task, or for a reader of the records ``readable`` only (a view scoped to a
        clearance) all but those ingested as a record outside it: counted, such a task would tell
        the reader of a record withheld from them (failed and in-flight tasks made no record)."""
        return [t for t in self.tasks.values()
                if readable is None or t.status != INGESTED or t.record_id in readable]

    def measured(self, readable: Container[str] | None = None) -> int:
        """Lab experiments measured: all, or for a reader of the records ``readable`` only those
        whose record they read (as ``tasks_seen``)."""
        return sum(e.record_id is not None and (readable is None or e.record_id in readable)
                   for e in self.lab.values())

    @property
    def predicted_batches(self) -> int:
        """Lab batches suggested with model predictions (a surrogate was fitted for each; a
        run's own fits are ``refits``)."""
        return len({e.batch for e in self.lab.values() if e.predicted.get("mean")})


class JournalError(RuntimeError):
    """A journal that contradicts itself (e.g. one task id planned twice)."""


class LegacyJournalWarning(UserWarning):
    """A journal of format 1 (no hash chain) was read; ``dm-hpc journal repair`` upgrades it."""


@dataclass(frozen=True)
class Problem:
    """One damaged line (1-based number in the file) and what is wrong with it."""

    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


class JournalDamage(JournalError):
    """The journal is damaged somewhere other than a torn last line; nothing was cut."""

    def __init__(self, path: Path, problems: list[Problem], legacy: bool = False) -> None:
        self.path, self.problems, self.legacy = Path(path), problems, legacy
        shown = "; ".join(map(str, problems[:5])) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        what = "is in the old format (no hash chain)" if legacy and not problems else f"is damaged: {shown}"
        super().__init__(f"journal {self.path} {what}. Nothing was changed; `dm-hpc journal verify CAMPAIGN` "
                         "lists it, `dm-hpc journal repair CAMPAIGN` keeps every intact event and re-chains them")


FORMAT = 2
GENESIS = "0" * 32
HEAD_NAME = "journal.head"
_SHA_TAIL = re.compile(r',"sha":"([0-9a-f]{32})"\}\Z')


def line_hash(body: str) -> str:
    """The chain hash of a line's text up to its ``sha`` field (128 bits, hex)."""
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def _encode(ev: dict[str, Any], prev: str) -> tuple[str, str]:
    """The line of ``ev`` chained after the line whose hash is ``prev``, and its own hash."""
    body = json.dumps({**ev, "prev": prev}, separators=(",", ":"))
    sha = line_hash(body[:-1] + "}")
    return f'{body[:-1]},"sha":"{sha}"}}', sha


@dataclass
class Verdict:
    """What reading a journal found: intact events (line number, event), problems, the tail."""

    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    legacy: bool = False
    lines: int = 0  # complete lines in the file
    good_bytes: int = 0  # bytes up to the end of the last complete line
    torn_bytes: int = 0  # bytes of a torn last line
    last_sha: str = GENESIS
    state: State | None = None


def _check_line(raw: bytes, number: int, prev: str, legacy: bool) -> tuple[dict[str, Any] | None, str | None, str]:
    """(event, what is wrong, this line's hash) of one complete line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text (damaged bytes)", prev
    if legacy:
        return _check_legacy(text)
    m = _SHA_TAIL.search(text)
    if m is None:
        return None, "no checksum (not a line dm-hpc wrote: forged, or damaged at its end)", prev
    body = text[: m.start()] + "}"
    sha = m.group(1)
    if line_hash(body) != sha:
        # its claimed hash still links the next line: only this line is reported
        return None, "checksum does not match (the line was altered or damaged)", sha
    try:
        ev = json.loads(body)
    except json.JSONDecodeError:
        return None, "not a JSON object although its checksum matches (forged)", sha
    if not isinstance(ev, dict) or not isinstance(ev.get("event"), str):
        return None, "not a journal event although its checksum matches (forged)", sha
    if ev.pop("prev", None) != prev:
        if number == 1:
            return ev, "does not start a journal (its header line was removed, or lines reordered)", sha
        return ev, f"does not follow line {number - 1} (a line before it was removed, inserted or reordered)", sha
    return ev, None, sha


def _check_legacy(text: str) -> tuple[dict[str, Any] | None, str | None, str]:
    try:
        ev = json.loads(text)
    except json.JSONDecodeError:
        return None, "not JSON (damaged)", GENESIS
    if not isinstance(ev, dict) or not isinstance(ev.get("event"), str):
        return None, "not a journal event", GENESIS
    crc = ev.pop("crc", None)
    if crc is not None and f"{zlib.crc32(json.dumps(ev, separators=(',', ':')).encode()):08x}" != crc:
        return None, "CRC-32 does not match (the line was altered or damaged)", GENESIS
    return ev, None if crc is not None else "no checksum", GENESIS


def read_head(path: Path) -> tuple[int, str] | None:
    """(lines, last hash) recorded beside the journal at ``path``, or None when there is none."""
    head = Path(path).with_name(HEAD_NAME)
    try:
        n, sha = head.read_text().split()
        return int(n), sha
    except (OSError, ValueError):
        return None


def verify(path: Path) -> Verdict:
    """Read and check every line of the journal at ``path`` (never changes it). The intact
    events are replayed, so what a replay would refuse (a task planned twice, an unknown task)
    is a problem of its line too; ``events`` keeps only the lines that are whole and apply."""
    v = Verdict()
    path = Path(path)
    head_before = read_head(path)
    data = path.read_bytes() if path.exists() else b""
    head_after = read_head(path)
    raws = data.split(b"\n")
    tail = raws.pop()  # after the last newline: empty, or a line torn by a crash
    v.lines, v.torn_bytes, v.good_bytes = len(raws), len(tail), len(data) - len(tail)
    # format 2 from its header, or from any chained line (a damaged header is not "legacy")
    v.legacy = bool(raws) and b'"format":2' not in raws[0] and not any(_raw_sha(r) for r in raws)
    unchecked, shas, found = [], [], []
    prev = GENESIS
    for number, raw in enumerate(raws, start=1):
        ev, what, sha = _check_line(raw, number, prev, v.legacy)
        shas.append(_raw_sha(raw))
        if v.legacy and what == "no checksum":
            unchecked.append(number)
            what = None
        if what is not None:
            v.problems.append(Problem(number, what))
        if ev is not None:
            found.append((number, ev))
        prev = sha
        if number == 1 and not v.legacy and what is None and (ev.get("event"), ev.get("format")) != ("journal", FORMAT):
            v.problems.append(Problem(1, "not the journal's header line (format 2)"))
    if v.legacy and unchecked and len(unchecked) < len(raws):
        # format 1 wrote a CRC on every line, the oldest version on none: a mix is a line from elsewhere
        v.problems += [Problem(n, "no checksum among lines that have one (not a line dm-hpc wrote)") for n in unchecked]
        found = [(n, ev) for n, ev in found if n not in unchecked]
    v.last_sha = prev
    if not v.legacy:
        _check_head(v, shas, head_before, head_after)
    v.state = State()
    for number, ev in found:
        try:
            apply(v.state, ev)
        except (JournalError, KeyError, TypeError, ValueError, AttributeError) as exc:
            v.problems.append(Problem(number, f"{ev.get('event')!s:.40} event cannot apply: {_why(exc)}"))
            continue
        v.events.append((number, ev))
    v.problems.sort(key=lambda p: p.line)
    return v


def _why(exc: Exception) -> str:
    return str(exc) if isinstance(exc, JournalError) else f"malformed ({type(exc).__name__}: {exc})"


def _check_head(v: Verdict, shas: list[str | None], before: tuple[int, str] | None,
                after: tuple[int, str] | None) -> None:
    """Lines removed at the end leave a chain that is whole: the head file tells. ``before`` and
    ``after`` are the head read before and after the journal (a writer may append meanwhile)."""
    if before is None or after is None:
        if v.lines > 1:  # one line: the header, written just before its head (new, or a crash then)
            v.problems.append(Problem(v.lines, f"the head file {HEAD_NAME} is missing or unreadable, so lines "
                                               "removed at the end cannot be ruled out"))
        return
    n, sha = before
    at = shas.index(sha) + 1 if sha in shas else None
    if at is None and n > v.lines:
        v.problems.append(Problem(v.lines + 1, f"missing: the head records {n} lines, the journal has {v.lines} "
                                               "(acknowledged lines removed or cut at the end)"))
    elif at is None:
        v.problems.append(Problem(max(min(n, v.lines), 1), "the head's hash of the last acknowledged line is on no "
                                                           "line (lines replaced at the end, or a head from elsewhere)"))
    elif at != n:
        v.problems.append(Problem(at, f"the head records this as line {n}: {abs(at - n)} line(s) "
                                      f"{'inserted' if at > n else 'removed'} before it"))
    elif v.lines > after[0] + 1:  # a crash between an append and the head update leaves one line more
        v.problems.append(Problem(after[0] + 2, f"after the last acknowledged line {after[0] + 1} (appended by "
                                                "something other than dm-hpc)"))


def _raw_sha(raw: bytes) -> str | None:
    m = _SHA_TAIL.search(raw.decode("utf-8", "replace"))
    return m.group(1) if m else None


def _write_head(fd: int, lines: int, sha: str) -> None:
    """Rewrite the head in place: fixed width, one sector, so it is whole or the old one."""
    os.pwrite(fd, f"{lines:012d} {sha}\n".encode(), 0)
    os.fdatasync(fd)


class Journal:
    """Append-only, fsynced, hash-chained JSONL log of campaign events (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        v = verify(self.path)
        if v.problems or v.legacy:
            raise JournalDamage(self.path, v.problems, legacy=v.legacy)
        self.repaired = v.torn_bytes  # bytes of a torn tail cut off when opened
        if v.torn_bytes:
            with open(self.path, "r+b") as fh:
                fh.truncate(v.good_bytes)
                fh.flush()
                os.fsync(fh.fileno())
        self._lines, self._prev = v.lines, v.last_sha
        self._fh = open(self.path, "a", encoding="utf-8")
        self._head = os.open(self.path.with_name(HEAD_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        if self._lines == 0:
            self._append({"t": time.time(), "event": "journal", "format": FORMAT})
            fsync_dir(self.path.parent)
        elif read_head(self.path) != (self._lines, self._prev):
            _write_head(self._head, self._lines, self._prev)  # a crash left it one line behind

    def _append(self, *events: dict[str, Any]) -> None:
        """Chain, write and fsync ``events``, then move the head past them."""
        lines = []
        for ev in events:
            line, self._prev = _encode(ev, self._prev)
            lines.append(line + "\n")
        self._fh.write("".join(lines))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._lines += len(lines)
        _write_head(self._head, self._lines, self._prev)

    def write_many(self, events: list[dict[str, Any]]) -> None:
        """Append whole events (their own ``t``) with one fsync: ``repair`` re-chaining a journal."""
        with self._lock:
            self._append(*events)

    def write(self, event: str, **data: Any) -> dict[str, Any]:
        """Append one event and make it durable before returning it (thread-safe)."""
        ev = {"t": time.time(), "event": event, **data}
        with self._lock:
            self._append(ev)
        return ev

    def close(self) -> None:
        with self._lock:
            self._fh.close()
            os.close(self._head)

    @staticmethod
    def events(path: Path) -> Iterator[dict[str, Any]]:
        """The events in order (a torn last line is left out); ``JournalDamage`` on any damage."""
        yield from (ev for _, ev in _checked(Path(path)).events)


def _checked(path: Path) -> Verdict:
    v = verify(path)
    if v.problems:
        raise JournalDamage(path, v.problems, legacy=v.legacy)
    if v.legacy:
        warnings.warn(f"journal {path} is in the old format (no hash chain): read as it is; "
                      "`dm-hpc journal repair CAMPAIGN` checks and upgrades it", LegacyJournalWarning, stacklevel=3)
    return v


def apply(state: State, ev: dict[str, Any]) -> None:
    """Apply one journal event to ``state`` (replay, and the live manager, both use this)."""
    kind = ev["event"]
    if kind == "start":
        state.started_at = ev["t"]
        state.stopped = None
    elif kind == "resume":  # running again: `status` said "stopped by request" through a whole resumed run
        state.stopped = None
    elif kind == "planned":
        if ev["task_id"] in state.tasks:
            raise JournalError(f"task {str(ev['task_id'])[:80]!r} planned twice")
        state.tasks[ev["task_id"]] = TaskEntry(
            task_id=ev["task_id"], fidelity=ev["fidelity"], composition=ev["composition"],
            process=ev.get("process", {}), predicted=ev.get("predicted", {}), planned_at=ev["t"],
        )
    elif kind == "submitted":
        task = _task(state, ev)
        task.status = SUBMITTED
        task.submissions += 1
    elif kind == "ingested":
        state.unfit = None
        task = _task(state, ev)
        task.status, task.record_id = INGESTED, ev.get("record_id")
        task.core_hours, task.ended_at = ev.get("core_hours", 0.0), ev["t"]
    elif kind == "failed":
        task = _task(state, ev)
        task.status, task.error, task.failure_kind = FAILED, ev.get("error"), ev.get("kind", "unknown")
        task.core_hours, task.ended_at = ev.get("core_hours", 0.0), ev["t"]
    elif kind == "lab_suggested":
        state.lab_batches = max(state.lab_batches, ev["batch"])
        for s in ev["samples"]:
            if s["sample_id"] in state.lab:
                raise JournalError(f"sample {str(s['sample_id'])[:80]!r} suggested twice")
            state.lab[s["sample_id"]] = LabEntry(
                sample_id=s["sample_id"], composition=s["composition"], process=s.get("process", {}),
                predicted=s.get("predicted", {}), batch=ev["batch"],
            )
    elif kind == "lab_ingested":
        state.unfit = ev.get("unfit")
        for sid, rid in ev["records"].items():
            if sid in state.lab:
                state.lab[sid].record_id, state.lab[sid].not_made, state.lab[sid].held = rid, False, None
        for sid in ev.get("not_made", []):
            if sid in state.lab and state.lab[sid].record_id is None:
                state.lab[sid].not_made, state.lab[sid].held = True, None
        why, units = ev.get("held_why") or {}, ev.get("held_units") or {}
        for sid in ev.get("held", []):  # seen once in the ingest's reply, and nowhere after: kept here
            if sid in state.lab and state.lab[sid].awaited:
                state.lab[sid].held = why.get(sid) or "held: outside the model's 99 % interval"
                state.lab[sid].held_units = dict(units.get(sid) or {})
    elif kind == "retracted":  # the sample's value was withdrawn: it is awaited again
        state.unfit = None
        for entry in state.lab.values():
            if entry.record_id == ev["record_id"]:
                entry.record_id = None
    elif kind == "refit":
        state.refits += 1
        if "best" in ev:
            state.best.append({"n": ev.get("n"), "constrained": bool(ev.get("constrained")), **ev["best"]})
    elif kind == "stop":
        state.stopped = ev.get("reason")
    elif kind == "ids_reserved":  # ids issued before (task folders, the store), beyond the journal's
        state.task_floor = max(state.task_floor, int(ev["tasks"]))
        state.lab_batches = max(state.lab_batches, int(ev["lab_batches"]))


def _task(state: State, ev: dict[str, Any]) -> TaskEntry:
    task = state.tasks.get(ev["task_id"])
    if task is None:
        raise JournalError(f"task {str(ev['task_id'])[:80]!r} was never planned")
    return task


def replay(path: Path) -> State:
    """Rebuild the campaign state from its journal (``JournalDamage`` when it is damaged)."""
    if not Path(path).exists():
        return State()
    state = _checked(Path(path)).state
    assert state is not None
    return state
