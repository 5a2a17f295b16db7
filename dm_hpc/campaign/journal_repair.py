"""``dm-hpc journal verify|repair``, and ids that are never issued twice.

``repair`` keeps every intact event of a damaged journal (a line whose own hash matches, in the
order of the file), re-chains them into a new journal, keeps the damaged file beside it
(``journal.jsonl.damaged-<UTC time>``) and rebuilds what the journal lost but the campaign still
holds: a task folder whose ``planned`` line was lost is planned again (status ``planned``, so the
next ``run`` settles it from its folder: its result is collected, or it runs again), a stored
record of a task or lab sample the journal no longer names is journalled as ingested. Every
event it adds carries ``"rebuilt": true``; a ``repaired`` event says what was kept, dropped and
rebuilt. A legacy journal (format 1) is upgraded the same way.

``issued_ids`` reads the highest task number and lab batch ever issued for a campaign from the
task folders and the store, so ids stay unique even when a journal lost lines that issued them
(``pol-L002-01`` must never name two compositions); the manager and ``suggest`` journal them as
``ids_reserved`` before issuing new ones.
"""
from __future__ import annotations

import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.lock import command_turn, take_manager_lock
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.data.integrity import fsync_dir


def _task_number(c: CampaignSpec, task_id: object) -> int:
    m = re.fullmatch(re.escape(c.name) + r"-c(\d+)", str(task_id))
    return int(m.group(1)) if m else 0


def _lab_batch(c: CampaignSpec, sample_id: object) -> int:
    m = re.fullmatch(re.escape(c.name) + r"-L(\d+)-\d+", str(sample_id))
    return int(m.group(1)) if m else 0


def issued_ids(c: CampaignSpec, df: pd.DataFrame) -> tuple[int, int]:
    """(highest task number, highest lab batch) issued for ``c``: task folders and stored records."""
    tasks_dir = c.run_dir / "tasks"
    folders = [p.name for p in tasks_dir.iterdir()] if tasks_dir.is_dir() else []
    task_ids = folders + (df["task_id"].dropna().tolist() if "task_id" in df.columns else [])
    samples = df["sample_id"].dropna().tolist() if "sample_id" in df.columns else []
    return (max((_task_number(c, t) for t in task_ids), default=0),
            max((_lab_batch(c, s) for s in samples), default=0))


def ids_in_text(c: CampaignSpec, text: str) -> tuple[int, int]:
    """(highest task number, highest lab batch) named anywhere in ``text``: a damaged journal's
    lines still tell which ids were issued, checksum or not."""
    name = re.escape(c.name)
    tasks = [int(n) for n in re.findall(name + r"-c(\d+)", text)]
    batches = [int(n) for n in re.findall(name + r"-L(\d+)-", text) + re.findall(r'"batch":(\d+)', text)]
    return max(tasks, default=0), max(batches, default=0)


def reserve_ids(c: CampaignSpec, state: jn.State, df: pd.DataFrame, journal: jn.Journal) -> None:
    """Journal ``ids_reserved`` when folders or the store hold ids above what the journal issued."""
    tasks, batches = issued_ids(c, df)
    if tasks > max(state.task_floor, len(state.tasks)) or batches > state.lab_batches:
        jn.apply(state, journal.write("ids_reserved", tasks=tasks, lab_batches=batches))


def verify_campaign(c: CampaignSpec) -> jn.Verdict:
    """The verdict on ``c``'s journal (never changes it)."""
    return jn.verify(c.run_dir / "journal.jsonl")


@dataclass
class RepairReport:
    """What ``repair`` did (``backup`` is None when there was nothing to repair)."""

    kept: int = 0
    dropped: list[jn.Problem] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    torn_bytes: int = 0
    upgraded: bool = False
    backup: Path | None = None

    def lines(self) -> list[str]:
        if self.backup is None:
            return ["the journal is intact: nothing to repair"]
        out = [f"kept {self.kept} intact event(s); the file as it was is kept as {self.backup}"]
        out += [f"dropped {p}" for p in self.dropped]
        out += [f"rebuilt {r}" for r in self.rebuilt]
        if self.torn_bytes:
            out.append(f"cut a torn last line ({self.torn_bytes} bytes, never acknowledged)")
        if self.upgraded:
            out.append("upgraded from format 1 to the hash-chained format 2")
        return out


def repair(c: CampaignSpec, records: pd.DataFrame | None = None) -> RepairReport:
    """Repair ``c``'s journal (see the module docstring); refuses while a manager runs it.
    ``records``: the campaign's rows of its store (``Store.to_dataframe(campaign=...)``) when the
    caller has read them already; else they are read here."""
    with command_turn(c.run_dir, c.name):  # a suggest meanwhile waits, instead of writing to an inbox nobody reads
        return _repair(c, records)


def _repair(c: CampaignSpec, records: pd.DataFrame | None) -> RepairReport:
    path = c.run_dir / "journal.jsonl"
    fd = take_manager_lock(c.run_dir, f"campaign {c.name!r} is running; stop it before repairing its journal")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jn.LegacyJournalWarning)
            v = jn.verify(path)
        report = RepairReport(dropped=v.problems, torn_bytes=v.torn_bytes, upgraded=v.legacy)
        df = _campaign_records(c) if records is None else records
        events = [ev for _, ev in v.events if ev["event"] != "journal"]
        state = v.state or jn.State()
        rebuilt = _rebuild(c, state, df, report)
        if not (v.problems or v.legacy or v.torn_bytes or rebuilt):
            return report
        report.kept = len(events)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        report.backup = path.with_name(f"{path.name}.damaged-{stamp}")
        if path.exists():
            shutil.copy2(path, report.backup)
        tasks, batches = (max(a, b) for a, b in zip(issued_ids(c, df), ids_in_text(
            c, path.read_bytes().decode("utf-8", "replace") if path.exists() else "")))
        summary = {"kept": report.kept, "dropped": [str(p) for p in report.dropped][:200],
                   "rebuilt": report.rebuilt[:200], "backup": str(report.backup)}
        _rewrite(path, events + rebuilt + [
            {"t": time.time(), "event": "ids_reserved", "tasks": max(tasks, state.task_floor, len(state.tasks)),
             "lab_batches": max(batches, state.lab_batches), "rebuilt": True},
            {"t": time.time(), "event": "repaired", **summary}])
        return report
    finally:
        os.close(fd)


def _campaign_records(c: CampaignSpec) -> pd.DataFrame:
    from dm_hpc.data import Store

    if not Path(c.store).exists():
        return pd.DataFrame()
    store = Store.open(c.store, "r")
    try:
        return store.to_dataframe(campaign=c.name)
    finally:
        store.close()


def _rebuild(c: CampaignSpec, state: jn.State, df: pd.DataFrame, report: RepairReport) -> list[dict[str, Any]]:
    """Events for what task folders and the store hold but the journal no longer says."""
    from dm_hpc.compute import read_task

    now = time.time()
    out: list[dict[str, Any]] = []
    tasks_dir = c.run_dir / "tasks"
    for folder in sorted(tasks_dir.iterdir()) if tasks_dir.is_dir() else []:
        if folder.name in state.tasks or not (folder / "task.json").exists():
            continue
        try:
            task = read_task(folder / "task.json")
        except (OSError, ValueError) as exc:
            report.rebuilt.append(f"nothing from {folder} (unreadable task.json: {exc})"[:300])
            continue
        fidelity = next((f.name for f in c.calculations if f.method == task.method), None)
        if fidelity is None or task.task_id != folder.name:
            continue
        out.append({"t": now, "event": "planned", "task_id": folder.name, "fidelity": fidelity,
                    "composition": dict(task.composition), "process": {}, "predicted": {}, "rebuilt": True})
        jn.apply(state, out[-1])
        report.rebuilt.append(f"task {folder.name} from its folder (planned: the next run settles it)")
    for row in df.to_dict("records") if not df.empty else []:
        tid, sid, rid = row.get("task_id"), row.get("sample_id"), row.get("record_id")
        if isinstance(tid, str) and tid in state.tasks and state.tasks[tid].status != jn.INGESTED:
            out.append({"t": now, "event": "ingested", "task_id": tid, "record_id": rid, "rebuilt": True})
            jn.apply(state, out[-1])
            report.rebuilt.append(f"task {tid} ingested: its record {rid} is in the store")
        elif isinstance(sid, str) and sid in state.lab and state.lab[sid].record_id is None:
            out.append({"t": now, "event": "lab_ingested", "records": {sid: rid}, "rebuilt": True})
            jn.apply(state, out[-1])
            report.rebuilt.append(f"lab sample {sid} measured: its record {rid} is in the store")
        elif isinstance(sid, str) and _lab_batch(c, sid) and sid not in state.lab:
            comp = {k[2:]: float(v) for k, v in row.items() if k.startswith("x_") and v == v and v > 0}
            out.append({"t": now, "event": "lab_suggested", "batch": _lab_batch(c, sid), "rebuilt": True,
                        "samples": [{"sample_id": sid, "composition": comp, "process": {}}]})
            out.append({"t": now, "event": "lab_ingested", "records": {sid: rid}, "rebuilt": True})
            jn.apply(state, out[-2])
            jn.apply(state, out[-1])
            report.rebuilt.append(f"lab sample {sid}: its measured record {rid} is in the store")
    return out


def _rewrite(path: Path, events: list[dict[str, Any]]) -> None:
    """Write ``events`` as a new chained journal in place of ``path`` (all or nothing)."""
    tmp = path.with_name(f".{path.name}.repair")
    tmp.unlink(missing_ok=True)
    path.with_name(jn.HEAD_NAME).unlink(missing_ok=True)
    moved = path.with_name(f".{path.name}.old")
    if path.exists():
        os.replace(path, moved)
    try:
        journal = jn.Journal(tmp)
        journal.write_many(events)
        journal.close()
        os.replace(tmp, path)
    except BaseException:
        if moved.exists():
            os.replace(moved, path)
        raise
    moved.unlink(missing_ok=True)
    fsync_dir(path.parent)
