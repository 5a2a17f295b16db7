"""``Store.check`` (find damage, change nothing) and ``recover`` (rebuild a lost manifest).

Below the store: ``check_store`` is given the store's root, manifest and shard opener, and
``recover`` takes the writer lock from ``integrity``, so this module never imports ``store``.

``recover`` trusts only what each shard says about itself: its store id, its number, the
shards a merge made it from (``replaces``) and its checksums. A shard some other live shard
replaces is merged away; the rest, in the order of ``first``, are the store. Nothing is
deleted: a damaged or foreign file is left where it is and named in the report, the old
manifest (if any) is kept beside the new one.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dm_hpc.data import layout
from dm_hpc.data.integrity import (
    StoreCorruptError,
    StoreError,
    WriterLock,
    create_marker,
    fsync_dir,
    os_failure,
    read_marker,
    sha256_file,
)
from dm_hpc.data.records import MaterialRecord, record_id_of
from dm_hpc.data.shards import Shard, text_attr

_RECORD_ERRORS = (ValueError, KeyError, TypeError, UnicodeDecodeError, IndexError)


@dataclass
class CheckReport:
    """Outcome of ``Store.check``: counts, every problem found, and notes that are not damage."""

    records: int = 0
    shards: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    view_problems: list[str] = field(default_factory=list)  # of store.h5 (also in problems)
    view_behind: bool = False  # store.h5 missing or of an older generation: a note, not damage

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def only_view(self) -> bool:
        """Damage (or staleness) only in ``store.h5``, which a writer rebuilds from the shards."""
        return (bool(self.view_problems) or self.view_behind) and len(self.problems) == len(self.view_problems)


def check_store(root: Path, manifest: dict[str, Any], open_shard: Callable[[str], Shard]) -> CheckReport:
    """See ``Store.check``: the store at ``root`` as its open ``manifest`` describes it;
    ``open_shard(name)`` gives the store's own handle of a shard (the reader's snapshot), used to
    compare the ``store.h5`` view with the shards. Every problem is a line in the report, nothing
    raises."""
    report = CheckReport()
    try:
        if read_marker(root) is None:
            report.notes.append(f"no {layout.MARKER} (a store from before identity files); the next writer adds it")
    except StoreCorruptError as exc:
        report.problems.append(str(exc))
    seen: set[bytes] = set()
    for entry in manifest["shards"]:
        report.shards += 1
        _check_shard(root, entry, report, seen)
    named = {e["name"] for e in manifest["shards"]} | {r["name"] for r in manifest.get("retired", [])}
    folder = root / layout.SHARD_DIR
    strays = sorted(p.name for p in folder.iterdir() if p.name not in named) if folder.is_dir() else []
    if strays:
        report.notes.append(f"shards/ also holds {', '.join(strays[:5])}{' ...' if len(strays) > 5 else ''}: "
                            "not part of the store, left alone")
    if not any("cannot be read" in p or "missing" in p or "unreadable (" in p for p in report.problems):
        from dm_hpc.data.view import check_view

        try:
            shards = [open_shard(e["name"]) for e in manifest["shards"]]
        except (StoreError, OSError):
            return report  # a shard that cannot be opened is already a problem; the view waits
        report.view_problems, behind = check_view(root, manifest, shards)
        report.problems.extend(report.view_problems)
        if behind:
            report.notes.append(behind)
            report.view_behind = True
    return report


def _check_shard(root: Path, entry: dict, report: CheckReport, seen: set[bytes]) -> None:
    name = entry["name"]
    path = root / layout.SHARD_DIR / name
    if not path.is_file():
        report.problems.append(f"shard {name}: the file is missing")
        return
    try:
        digest = sha256_file(path)
    except OSError as exc:
        report.problems.append(f"shard {name}: cannot be read ({exc.strerror})")
        return
    if "sha256" in entry and digest != entry["sha256"]:
        report.problems.append(f"shard {name}: the file does not match the SHA-256 the manifest holds (damaged on disk)")
    try:
        shard = Shard.open(path)
    except StoreCorruptError as exc:
        report.problems.append(f"shard {name}: unreadable ({exc.detail})")
        return
    try:
        if "sha256" not in entry and shard.meta.legacy:
            report.notes.append(f"shard {name}: written by an older dm-hpc without checksums; "
                                "`dm-hpc store compact` rewrites it with them")
        elif "sha256" not in entry:  # format /2 always writes it: the manifest lost it
            report.problems.append(f"shard {name}: its manifest entry has no sha256 although the shard carries "
                                   f"checksums ({layout.FORMAT}): the manifest lost its checksum field (damaged "
                                   "or edited); `dm-hpc store recover` rebuilds the manifest from the shards")
        report.problems.extend(f"shard {name}: {p}" for p in shard.verify())
        if shard.n != entry["count"]:
            report.problems.append(f"shard {name}: {shard.n} rows, manifest says {entry['count']}")
        try:
            texts = shard.json()
        except StoreCorruptError as exc:
            report.problems.append(f"shard {name}: record JSON unreadable ({exc.detail})")
            return
        ids, sources = shard.fixed["record_id"], shard.fixed["source"]
        for i, text in enumerate(texts):
            rid = ids[i]
            label = rid.decode(errors="replace")
            report.records += 1
            try:
                rec = MaterialRecord.from_json(text)
                hashes = record_id_of(_content_text(text)).encode() == rid and rec.record_id.encode() == rid
                source_ok = layout.SOURCE_CODES[rec.source.value] == sources[i]
            except _RECORD_ERRORS as exc:
                report.problems.append(f"shard {name} record {label}: unreadable record JSON ({str(exc)[:120]})")
                continue
            if not hashes:
                report.problems.append(f"shard {name} record {label}: content does not hash to its id")
            if not source_ok:
                report.problems.append(f"shard {name} record {label}: source column disagrees with the record")
            if rid in seen:
                report.problems.append(f"record {label}: stored twice")
            seen.add(rid)
    finally:
        shard.close()


_CONTENT_START = '{"content":'


def _content_text(text: str) -> str:
    """The exact content JSON inside a stored record text (what the id was computed from)."""
    if not text.startswith(_CONTENT_START):
        raise ValueError("record JSON does not start with its content")
    _, end = json.JSONDecoder().raw_decode(text, len(_CONTENT_START))
    return text[len(_CONTENT_START):end]


@dataclass
class RecoverReport:
    """What ``recover`` rebuilt: the live shards, records, files left out (and why)."""

    shards: list[str] = field(default_factory=list)
    records: int = 0
    merged_away: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    old_manifest: str | None = None


@dataclass
class _Found:
    path: Path
    number: int
    first: int
    replaces: tuple[int, ...]
    generation: int
    n: int
    ids: set[bytes]
    sha256: str


def recover(root: str | os.PathLike[str]) -> RecoverReport:
    """Rebuild ``manifest.json`` from the shards' own metadata (takes the writer lock)."""
    root = Path(root)
    if not (root / layout.SHARD_DIR).is_dir():
        raise StoreError(f"{root} has no shards/ folder: nothing to recover from")
    marker = read_marker(root)
    if marker is None and not any(layout.shard_number(p.name) for p in (root / layout.SHARD_DIR).iterdir()):
        raise StoreError(f"{root} is not a dm-hpc store (no {layout.MARKER}, no shard files in shards/); "
                         "nothing was written")
    try:
        lock = WriterLock(root)
    except OSError as exc:
        raise os_failure(root, "take the writer lock", exc) from None
    try:
        report = RecoverReport()
        found = _scan(root, marker["store_id"] if marker else None, report)
        ids = {f.path.name: f for f in found}
        store_ids = {_store_id_of(f.path) for f in found} - {""}
        if marker is None:
            if len(store_ids) > 1:
                raise StoreError(f"{root}: shards of {len(store_ids)} different stores and no {layout.MARKER}; "
                                 "move each store's shards into its own folder first")
            marker = create_marker(root, store_ids.pop() if store_ids else None)
        dead = {n for f in found for n in f.replaces}
        live = sorted((f for f in found if f.number not in dead), key=lambda f: (f.first, f.number))
        taken: set[bytes] = set()
        entries = []
        for f in live:
            if f.ids <= taken and f.ids:  # an older (format /1) shard that was merged away
                report.merged_away.append(f.path.name)
                continue
            if f.ids & taken:
                report.left_out.append(f"{f.path.name}: {len(f.ids & taken)} of its records are in other shards too; "
                                       "inspect it by hand")
                continue
            taken |= f.ids
            entries.append({"name": f.path.name, "count": f.n, "sha256": f.sha256, "first": f.first})
        report.merged_away += sorted(ids[n].path.name for n in ids if ids[n].number in dead)
        report.shards = [e["name"] for e in entries]
        report.records = sum(e["count"] for e in entries)
        manifest = {
            "format": layout.FORMAT,
            "generation": max((f.generation for f in found), default=0) + 1,
            "next_shard": max((f.number for f in found), default=0) + 1,
            "shards": entries,
            # merged-away shards of this store: the next writer deletes them once it closes
            "retired": [{"name": n, "since": 0.0} for n in report.merged_away
                        if _store_id_of(root / layout.SHARD_DIR / n) == marker["store_id"]],
        }
        _write_recovered(root, manifest, report)
        return report
    finally:
        lock.release()


def _store_id_of(path: Path) -> str:
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return text_attr(f.attrs.get("store_id", ""))
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError):
        return ""


def _scan(root: Path, store_id: str | None, report: RecoverReport) -> list[_Found]:
    found = []
    for path in sorted((root / layout.SHARD_DIR).iterdir()):
        number = layout.shard_number(path.name)
        if number is None or not path.is_file():
            if not path.name.startswith("."):
                report.left_out.append(f"{path.name}: not a shard file name")
            continue
        try:
            shard = Shard.open(path)
        except StoreCorruptError as exc:
            report.left_out.append(f"{path.name}: damaged ({exc.detail})")
            continue
        try:
            problems = shard.verify()
            meta = shard.meta
            ids = set(shard.fixed["record_id"].tolist())
            n = shard.n
        finally:
            shard.close()
        if problems:
            report.left_out.append(f"{path.name}: damaged ({'; '.join(problems)})")
            continue
        if store_id and not meta.legacy and meta.store_id != store_id:
            report.left_out.append(f"{path.name}: belongs to another store ({meta.store_id})")
            continue
        first = number if meta.legacy else meta.first
        found.append(_Found(path, number, first, meta.replaces, meta.generation, n, ids, sha256_file(path)))
    return found


def _write_recovered(root: Path, manifest: dict, report: RecoverReport) -> None:
    path = root / layout.MANIFEST
    tmp = root / f".{layout.MANIFEST}.recover.tmp"
    try:
        with open(tmp, "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():  # kept, never deleted: it may hold what this rebuild cannot see
            kept = path.with_name(f"{layout.MANIFEST}.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
            os.rename(path, kept)
            report.old_manifest = kept.name
        os.rename(tmp, path)
        fsync_dir(root)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise os_failure(root, f"write a rebuilt {layout.MANIFEST}", exc) from None
