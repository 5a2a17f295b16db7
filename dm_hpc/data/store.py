"""The HDF5 record store: one writer, many readers, crash-safe, idempotent by record id.

Why immutable shards plus an atomically replaced manifest rather than one appendable HDF5
file: HDF5 itself is not crash-safe (a ``kill -9`` while its metadata cache is dirty can leave
the whole file unreadable, SWMR included until ``h5clear``), whereas a rename is atomic on
POSIX file systems. A batch is therefore either wholly visible or not at all, and data that
was acknowledged is never rewritten in place. See ``layout`` for the files and columns.

Why a store proves ownership before it deletes (``integrity``): a lost ``manifest.json`` or a
``store:`` pointed at someone else's folder used to make the writer treat every file in
``shards/`` as debris. Now the folder's marker gives the store an id; a writer only writes into
a folder that has the marker (or is empty, or is a store from before markers, recognised by a
readable manifest); it deletes only temp files carrying its id in their name, uncommitted shards
carrying its id in their attributes, and shards its own manifest retired; a new shard is
published with ``link``, which never replaces a file. A missing or unreadable manifest stops
every writer with an error that says to run ``dm-hpc store recover``, which rebuilds it from
the shards' own attributes (store id, number, the shards a merge replaced).

Why checksums on the columns and not only on the JSON: queries and training read the columns,
so a flipped bit there changed numbers while the JSON still hashed to the record id. Every
dataset carries Fletcher32 (HDF5 verifies it on each read, so a damaged chunk raises instead of
returning wrong numbers) and a SHA-256; a shard's metadata carries a digest checked on every
open; the manifest holds each shard file's SHA-256, which ``check`` recomputes.

Why readers do not fail while a writer merges: a merge retires the shards it replaced instead
of deleting them; they are deleted only after ``RETIRE_GRACE_S`` seconds (or when the writer
closes), after the ``store.h5`` view stops naming them. A reader opens every shard of its
manifest generation at once and keeps the handles (on POSIX an open file stays readable after
it is unlinked), so it reads one consistent snapshot; if a shard vanished between reading the
manifest and opening it, the reader takes the newer generation and tries again.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import pandas as pd
from pydantic import ValidationError

from dm_hpc.data import layout
from dm_hpc.data.integrity import (
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    WriterLock,
    create_marker,
    damaged,
    fsync_dir,
    os_failure,
    read_marker,
)
from dm_hpc.data.records import MaterialRecord, Source
from dm_hpc.data.recovery import CheckReport, check_store
from dm_hpc.data.shards import (
    RecordColumns,
    Rows,
    Shard,
    ShardMeta,
    concat_rows,
    element_mask,
    rows_from_records,
    text_attr,
    write_shard,
)

__all__ = ["IngestResult", "Store", "StoreCorruptError", "StoreError", "StoreLockedError",
           "open_store", "read_view"]

#: Shards of one size tier merged into one once this many exist (size-tiered compaction).
MERGE_FANOUT = 16
#: The writer keeps the rows of shards smaller than this in memory until they are merged, so a
#: merge does not read back what it just wrote (at most ~MERGE_FANOUT x this many rows).
CACHE_ROWS_BELOW = 10_000
#: Records per shard when a large batch arrives as columns (a 100,000-row sheet): its shards
#: are built one at a time and committed together, so the write holds one shard's image.
SHARD_ROWS = 25_000
#: Seconds a merged-away shard stays on disk for readers that read the manifest just before.
RETIRE_GRACE_S = 30.0
#: How often a reader retries when the shards of its manifest vanished while it opened them.
SNAPSHOT_TRIES = 50
#: The method of a retraction record (``dm_hpc.data.corrections``): it withdraws the records
#: it names in ``provenance.supersedes`` and, like them, is shown only with ``superseded=True``.
RETRACTION_METHOD = "retraction"


@dataclass(frozen=True)
class IngestResult:
    """What one ``ingest`` did: ``n`` records given, ``new`` of them stored (rest known)."""

    n: int
    new: int
    ids: list[str]


def _tier(count: int) -> int:
    return int(math.log(max(count, 1), MERGE_FANOUT))


class Store:
    """A folder of HDF5 shards holding ``MaterialRecord`` s.

    Open with ``Store.open(path, mode="r")`` to read (any number of readers, also while a writer
    appends; each reads the snapshot it opened) or ``mode="a"`` to write (one writer; creates
    the store when the folder is missing or empty).
    """

    def __init__(self, root: Path, mode: Literal["r", "a"]) -> None:
        self.root = Path(root)
        self.mode = mode
        self._lock: WriterLock | None = None
        self._shards: dict[str, Shard] = {}
        self._damaged: dict[str, StoreCorruptError] = {}  # reader: shards found damaged at open
        self._manifest: dict[str, Any] = {}
        self._store_id = ""
        self._ids: set[bytes] | None = None
        self._rows_cache: dict[str, Rows] = {}
        self._superseded_at: tuple[int, set[str]] | None = None
        # a file (the store's store.h5, a sheet): the writer's mkdir said only "File exists", the
        # reader "missing manifest.json", which sends the user to `store recover`
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{layout.store_folder_problem(self.root)}. Nothing was read or written.")
        if mode == "a":
            self._open_writer()
        elif mode == "r":
            self._open_snapshot()
        else:
            raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str], mode: Literal["r", "a"] = "r") -> Store:
        return cls(Path(path), mode)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # the error already in flight says what went wrong; a second one would hide it
            self.close()
        except StoreError:
            pass

    def close(self) -> None:
        """Close shard files; a writer also refreshes the ``store.h5`` view, deletes the shards
        it retired and unlocks."""
        try:
            if self._lock is not None:
                self.refresh_view()
                self._drop_retired(older_than=None)
        finally:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _open_writer(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            marker = self._claim()
            self._lock = WriterLock(self.root)
        except OSError as exc:
            raise os_failure(self.root, "open it for writing", exc) from None
        try:
            self._store_id = marker["store_id"]
            (self.root / layout.SHARD_DIR).mkdir(exist_ok=True)
            self._load_manifest(create=True)
            self._remove_orphans()
        except OSError as exc:
            self._lock.release()
            raise os_failure(self.root, "open it for writing", exc) from None
        except BaseException:
            self._lock.release()
            raise

    def _claim(self) -> dict[str, Any]:
        """The store's marker; written when the folder is empty. Any other folder is refused."""
        marker = read_marker(self.root)
        if marker is not None:
            return marker
        entries = sorted(p.name for p in self.root.iterdir())
        if not entries:
            return create_marker(self.root)
        if layout.MANIFEST in entries:  # a store from before markers (format /1): adopt it
            self._load_manifest(create=False)
            if all((self.root / layout.SHARD_DIR / s["name"]).is_file() for s in self._manifest["shards"]):
                return create_marker(self.root)
        raise StoreError(
            f"{self.root} is not a dm-hpc store (it has no {layout.MARKER}) and is not empty "
            f"({len(entries)} entries: {', '.join(entries[:4])}{', ...' if len(entries) > 4 else ''}). "
            "Nothing was written. A new store needs a new or empty folder, so that nothing already "
            "there is overwritten or deleted; if this is a store whose identity file was lost, "
            f"run `dm-hpc store recover --store {self.root}`."
        )

    def _shard_files(self) -> list[Path]:
        folder = self.root / layout.SHARD_DIR
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if layout.shard_number(p.name) is not None and p.is_file())

    def _load_manifest(self, create: bool) -> None:
        path = self.root / layout.MANIFEST
        recover = f"Run `dm-hpc store recover --store {self.root}` to rebuild it from the shards' own metadata."
        if not path.exists():
            found = self._shard_files()
            if create and not found:
                self._manifest = {"format": layout.FORMAT, "generation": 0, "next_shard": 1,
                                  "shards": [], "retired": []}
                self._write_manifest()
                return
            raise StoreCorruptError(
                f"store {self.root}: {layout.MANIFEST} is missing but shards/ holds {len(found)} shard "
                f"file(s); writing now could overwrite or hide them, so nothing was written or read. {recover}"
            )
        try:
            manifest = json.loads(path.read_text())
            if manifest["format"] not in layout.READABLE_FORMATS:
                raise ValueError(f"unknown format {manifest['format']!r}")
            for entry in manifest["shards"]:
                if layout.shard_number(entry["name"]) is None or not isinstance(entry["count"], int):
                    raise ValueError(f"bad shard entry {entry!r}")
            int(manifest["generation"]), int(manifest["next_shard"])
            manifest.setdefault("retired", [])
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise StoreCorruptError(f"store {self.root}: cannot read {layout.MANIFEST} ({exc}); "
                                    f"nothing was written. {recover}") from None
        self._manifest = manifest

    def _write_manifest(self) -> None:
        """Commit point: temp file, fsync, atomic rename, fsync of the folder."""
        path = self.root / layout.MANIFEST
        tmp = path.with_name(f".{path.name}.{self._store_id}.tmp")
        self._manifest["format"] = layout.FORMAT
        try:
            with open(tmp, "w") as fh:
                json.dump(self._manifest, fh, indent=1)
                fh.flush()
                os.fdatasync(fh.fileno())
            os.replace(tmp, path)  # the manifest is always ours: the marker says so
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.root)

    def _owns(self, path: Path) -> bool:
        """True only for a shard file whose attributes carry this store's id."""
        try:
            with h5py.File(path, "r") as f:
                return text_attr(f.attrs.get("store_id", "")) == self._store_id
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError):
            return False

    def _remove_orphans(self) -> None:
        """Delete what a crashed writer of this store left: its temp files and uncommitted shards.

        Anything else (files of another store, shards without this id, unreadable files) stays.
        """
        tmp_suffix = f".{self._store_id}.tmp"
        for folder in (self.root, self.root / layout.SHARD_DIR):
            for path in folder.iterdir():
                if path.name.startswith(".") and path.name.endswith(tmp_suffix) and path.is_file():
                    path.unlink()
        named = {s["name"] for s in self._manifest["shards"]} | {r["name"] for r in self._manifest["retired"]}
        numbers = [0]
        for path in self._shard_files():
            number = layout.shard_number(path.name)
            if path.name not in named and number >= self._manifest["next_shard"] and self._owns(path):
                path.unlink()
            else:
                numbers.append(number)
        # never reuse a number a file already has: publishing would refuse to replace it
        self._manifest["next_shard"] = max(self._manifest["next_shard"], max(numbers) + 1)

    def _open_snapshot(self) -> None:
        """Reader: read the manifest and open every shard it names, keeping the handles."""
        vanished_at = None  # generation at which a shard was found missing
        for _ in range(SNAPSHOT_TRIES):
            if not (self.root / layout.MANIFEST).exists() and read_marker(self.root) is None:
                why = f"the folder has no {layout.MANIFEST}" if self.root.exists() else "no such folder (check the path)"
                raise StoreError(f"no store at {self.root}: {why}")
            self._load_manifest(create=False)
            generation, vanished = self._manifest["generation"], False
            for entry in self._manifest["shards"]:
                path = self.root / layout.SHARD_DIR / entry["name"]
                try:
                    self._shards[entry["name"]] = Shard.open(path)
                except (FileNotFoundError, StoreCorruptError) as exc:
                    # merged away by a writer since we read the manifest: retry on the newer one;
                    # missing although the manifest has not moved on: the file is lost
                    if not path.exists() and generation != vanished_at:
                        vanished, vanished_at = True, generation
                        break
                    self._damaged[entry["name"]] = exc if isinstance(exc, StoreCorruptError) else \
                        damaged(self.root, f"shard file {path}", "the file is missing")
            if not vanished:
                return
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
            self._damaged.clear()
            time.sleep(0.01)
        raise StoreError(f"store {self.root}: shards kept vanishing while opening ({SNAPSHOT_TRIES} tries); "
                         "is a writer deleting files by hand?")

    def _shard(self, name: str) -> Shard:
        if name in self._damaged:
            raise self._damaged[name]
        shard = self._shards.get(name)
        if shard is None:
            path = self.root / layout.SHARD_DIR / name
            try:
                shard = Shard.open(path)
            except FileNotFoundError:
                raise damaged(self.root, f"shard file {path}", "the file is missing") from None
            self._shards[name] = shard
        return shard

    def _iter_shards(self) -> Iterator[Shard]:
        for entry in self._manifest["shards"]:
            yield self._shard(entry["name"])

    def __len__(self) -> int:
        return sum(s["count"] for s in self._manifest["shards"])

    # ------------------------------------------------------------------ writing
    def _known_ids(self) -> set[bytes]:
        if self._ids is None:
            self._ids = set()
            for shard in self._iter_shards():
                self._ids.update(shard.fixed["record_id"].tolist())
        return self._ids

    def ingest(self, records: Iterable[MaterialRecord | dict[str, Any]]) -> IngestResult:
        """Store a batch of records; returns once the new ones are durable.

        Records already in the store (same id) are not stored again. The whole batch is
        validated first: one invalid record raises and nothing is stored.
        """
        if self._lock is None:
            raise StoreError(f"store {self.root} is open read-only; open it with mode='a' to ingest")
        batch: list[MaterialRecord] = []
        for i, rec in enumerate(records):
            if not isinstance(rec, MaterialRecord):
                try:
                    rec = MaterialRecord.model_validate(rec)
                except ValidationError as exc:
                    raise ValueError(f"record {i}: {exc}") from None
            batch.append(rec)
        ids = [rec.record_id for rec in batch]
        fresh = self._fresh(ids)
        if fresh.size:
            chosen = [batch[i] for i in fresh.tolist()]
            # a correction or completion keeps the level of what it supersedes, labelled before any
            # reader can see it at the default level
            successors = {r.record_id: r.provenance.supersedes for r in chosen if r.provenance.supersedes}
            if successors:
                from dm_hpc.data.access import AccessMap

                AccessMap(self.root).inherit(successors)
            self._commit(rows_from_records(chosen, [ids[i] for i in fresh.tolist()], [r.to_json() for r in chosen]))
        return IngestResult(n=len(batch), new=int(fresh.size), ids=ids)

    def ingest_columns(self, columns: RecordColumns) -> IngestResult:
        """``ingest`` for records already in column form (a checked sheet's, see
        ``dm_hpc.data.sheet_columns``): the same ids, the same stored bytes, no record objects."""
        if self._lock is None:
            raise StoreError(f"store {self.root} is open read-only; open it with mode='a' to ingest")
        fresh = self._fresh(columns.ids)
        if fresh.size:
            # a resent row resolved into a correction or completion (``resolve_resent_columns``) keeps
            # the level of what it supersedes, as in ``ingest`` (review: ``store import`` dropped an embargo)
            successors = {}
            for i in fresh.tolist():
                raw = columns.json[i]
                if b'"supersedes"' in raw:  # most rows are new records: no JSON parse for them
                    prov = (json.loads(raw).get("circumstances") or {}).get("provenance") or {}  # ``to_json``'s form
                    if prov.get("supersedes"):
                        successors[columns.ids[i]] = prov["supersedes"]
            if successors:
                from dm_hpc.data.access import AccessMap

                AccessMap(self.root).inherit(successors)
            self._commit(columns.take(part).rows() for part in np.array_split(fresh, -(-fresh.size // SHARD_ROWS)))
        return IngestResult(n=columns.n, new=int(fresh.size), ids=list(columns.ids))

    def _fresh(self, ids: Sequence[str]) -> np.ndarray:
        """Positions of the ids neither stored nor earlier in ``ids`` (ascending)."""
        known = self._known_ids()
        seen: set[bytes] = set()
        fresh = []
        for i, rid in enumerate(ids):
            key = rid.encode()
            if key not in known and key not in seen:
                seen.add(key)
                fresh.append(i)
        return np.array(fresh, dtype=np.int64)

    def _publish(self, rows: Rows, replaces: Sequence[dict[str, Any]] = (), ahead: int = 0) -> dict[str, Any]:
        """Write ``rows`` as the next shard (``ahead``: after that many shards published for the
        same commit); returns its manifest entry (not yet committed)."""
        number = self._manifest["next_shard"] + ahead
        name = layout.shard_name(number)
        parts = [layout.shard_number(e["name"]) or 0 for e in replaces]
        firsts = [e.get("first", layout.shard_number(e["name"])) or 0 for e in replaces]
        meta = ShardMeta(self._store_id, number, first=min(firsts, default=number), replaces=tuple(parts),
                         generation=self._manifest["generation"] + 1)
        digest = write_shard(self.root / layout.SHARD_DIR / name, rows, meta)
        return {"name": name, "count": rows.n, "sha256": digest, "first": meta.first}

    def _commit_manifest(self, change: dict[str, Any], new_shard: str | Sequence[str]) -> None:
        """Apply ``change`` to the manifest and commit it; on failure undo it and delete the new
        shards (this writer made them a moment ago, and no manifest ever named them)."""
        new = [new_shard] if isinstance(new_shard, str) else list(new_shard)
        before = json.loads(json.dumps(self._manifest))
        self._manifest.update(change)
        self._manifest["next_shard"] += len(new)
        self._manifest["generation"] += 1
        try:
            self._write_manifest()
        except BaseException:
            if not self._on_disk_names(new[0]):  # the rename did not happen: undo
                self._manifest = before
                for name in new:
                    (self.root / layout.SHARD_DIR / name).unlink(missing_ok=True)
            raise

    def _on_disk_names(self, name: str) -> bool:
        try:
            committed = json.loads((self.root / layout.MANIFEST).read_text())
            return any(e["name"] == name for e in committed["shards"])
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def _commit(self, rows: Rows | Iterable[Rows]) -> None:
        """Publish ``rows`` (one shard, or one per part of a large batch, built one at a time so
        that only one shard's image is in memory) and commit them in one manifest: all or none."""
        parts = iter([rows] if isinstance(rows, Rows) else rows)
        entries: list[dict[str, Any]] = []
        ids: list[bytes] = []
        small: dict[str, Rows] = {}
        n = 0
        try:
            try:
                for part in parts:
                    n += part.n
                    entries.append(self._publish(part, ahead=len(entries)))
                    ids += part.fixed["record_id"].tolist()
                    if part.n < CACHE_ROWS_BELOW:
                        small[entries[-1]["name"]] = part
            except BaseException:  # no manifest names them: this writer's own new files
                for entry in entries:
                    (self.root / layout.SHARD_DIR / entry["name"]).unlink(missing_ok=True)
                raise
            self._commit_manifest({"shards": [*self._manifest["shards"], *entries]}, [e["name"] for e in entries])
        except OSError as exc:
            raise os_failure(self.root, f"store a batch of {n} records", exc) from None
        if self._ids is not None:  # durable now, whatever the merge below does
            self._ids.update(ids)
        self._rows_cache.update(small)  # small shards are merged soon: keep their rows at hand
        try:
            self._maybe_merge()
            self._drop_retired(older_than=RETIRE_GRACE_S)
        except OSError as exc:
            raise os_failure(self.root, "merge shards (the batch itself was stored)", exc) from None

    def _maybe_merge(self) -> None:
        """Size-tiered compaction: MERGE_FANOUT shards of one tier become one shard."""
        while True:
            tiers: dict[int, list[dict[str, Any]]] = {}
            for entry in self._manifest["shards"]:
                tiers.setdefault(_tier(entry["count"]), []).append(entry)
            full = [group for group in tiers.values() if len(group) >= MERGE_FANOUT]
            if not full:
                return
            self._merge(full[0])

    def _merge(self, entries: Sequence[dict[str, Any]]) -> None:
        """Replace ``entries`` by one shard; they are retired (kept for readers), not deleted."""
        names = [e["name"] for e in entries]
        rows = concat_rows([self._rows_cache.get(n) or self._shard(n).rows() for n in names])
        merged = self._publish(rows, entries)
        kept = [e for e in self._manifest["shards"] if e["name"] not in names]
        # the merged shard takes the place of the first one it replaces, keeping row order
        first = self._manifest["shards"].index(entries[0])
        position = sum(1 for e in self._manifest["shards"][:first] if e["name"] not in names)
        kept.insert(position, merged)
        now = time.time()
        retired = [*self._manifest["retired"], *({"name": n, "since": now} for n in names)]
        self._commit_manifest({"shards": kept, "retired": retired}, merged["name"])
        for n in names:
            self._rows_cache.pop(n, None)
            shard = self._shards.pop(n, None)
            if shard is not None:
                shard.close()
        if rows.n < CACHE_ROWS_BELOW:
            self._rows_cache[merged["name"]] = rows

    def _drop_retired(self, older_than: float | None) -> None:
        """Delete retired shards (all, or those retired more than ``older_than`` s ago), after
        the ``store.h5`` view stops naming them; then drop them from the manifest."""
        now = time.time()
        due = [r for r in self._manifest["retired"] if older_than is None or now - r["since"] > older_than]
        if not due:
            return
        if older_than is not None:
            self.refresh_view()
        for r in due:  # files first: a crash in between leaves names whose files are gone, harmless
            (self.root / layout.SHARD_DIR / r["name"]).unlink(missing_ok=True)
        gone = {r["name"] for r in due}
        self._manifest["retired"] = [r for r in self._manifest["retired"] if r["name"] not in gone]
        self._write_manifest()

    def compact(self) -> None:
        """Merge every shard into one (e.g. before archiving a store, or to give shards
        written by an older dm-hpc their checksums)."""
        if self._lock is None:
            raise StoreError(f"store {self.root} is open read-only")
        shards = self._manifest["shards"]
        legacy = any("sha256" not in e for e in shards)
        if len(shards) > 1 or (shards and legacy):
            try:
                self._merge(list(shards))
            except OSError as exc:
                raise os_failure(self.root, "compact it", exc) from None

    def refresh_view(self) -> None:
        """Rebuild ``store.h5``: one logical table of virtual datasets over the shards."""
        if self._lock is None:
            raise StoreError(f"store {self.root} is open read-only")
        from dm_hpc.data.view import write_view

        shards = [self._shard(s["name"]) for s in self._manifest["shards"]]
        try:
            write_view(self.root, self._manifest, shards, tag=self._store_id)
        except OSError as exc:
            raise os_failure(self.root, f"rebuild {layout.VIEW} (the records are stored)", exc) from None

    # ------------------------------------------------------------------ reading
    def _select(
        self,
        shard: Shard,
        source: Source | str | None,
        method: str | None,
        campaign: str | None,
        elements: Sequence[str] | None,
        property: str | None,
        since: datetime | float | None,
        until: datetime | float | None,
        sample_id: str | None,
        superseded: bool | None,
    ) -> np.ndarray:
        keep = np.ones(shard.n, dtype=bool)
        f = shard.fixed
        old = self.superseded_ids() if not superseded else ()
        if old:
            keep &= ~np.isin(f["record_id"], np.array(sorted(old), dtype=layout.ID_DTYPE))
        if not superseded:
            keep &= f["method"] != RETRACTION_METHOD.encode()
        if source is not None:
            keep &= f["source"] == layout.SOURCE_CODES[Source(source).value]
        if method is not None:
            keep &= f["method"] == method.encode()
        if campaign is not None:
            keep &= f["campaign"] == campaign.encode()
        if sample_id is not None:
            keep &= f["sample_id"] == sample_id.encode()
        if elements:
            lo, hi = element_mask(elements)
            m = shard.element_mask
            keep &= ((m[:, 0] & np.uint64(lo)) == np.uint64(lo)) & ((m[:, 1] & np.uint64(hi)) == np.uint64(hi))
        if property is not None:
            keep &= ~np.isnan(shard.column("properties", property))
        for bound, cmp in ((since, np.greater_equal), (until, np.less_equal)):
            if bound is not None:
                t = bound.timestamp() if isinstance(bound, datetime) else float(bound)
                keep &= cmp(f["time"], t)
        return keep

    def superseded_ids(self) -> set[str]:
        """Ids of records that a later record corrects or retracts (its ``provenance.supersedes``).

        A correction has the sample id of what it corrects, so only records whose sample id
        occurs more than once are read, and retractions (``RETRACTION_METHOD``); cached per
        manifest generation.
        """
        generation = self._manifest["generation"]
        if self._superseded_at is None or self._superseded_at[0] != generation:
            shards = list(self._iter_shards())
            ids = np.concatenate([s.fixed["sample_id"] for s in shards]) if shards else np.array([], "S1")
            values, counts = np.unique(ids, return_counts=True)
            twice = values[(counts > 1) & (values != b"")]
            found: set[str] = set()
            for shard in shards:
                index = np.flatnonzero(np.isin(shard.fixed["sample_id"], twice)
                                       | (shard.fixed["method"] == RETRACTION_METHOD.encode()))
                for text in shard.json(index) if index.size else []:
                    found.update(json.loads(text)["circumstances"].get("provenance", {}).get("supersedes") or [])
            self._superseded_at = (generation, found)
        return self._superseded_at[1]

    def records(self, **filters: Any) -> Iterator[MaterialRecord]:
        """Records matching the filters (see ``to_dataframe``), parsed from their JSON."""
        for shard in list(self._iter_shards()):
            index = np.flatnonzero(self._select(shard, **_filters(filters)))
            if index.size:
                for text in shard.json(index):
                    yield MaterialRecord.from_json(text)

    def get(self, record_id: str) -> MaterialRecord:
        """One record by id (KeyError when absent)."""
        key = record_id.encode()
        for shard in self._iter_shards():
            hit = np.flatnonzero(shard.fixed["record_id"] == key)
            if hit.size:
                return MaterialRecord.from_json(shard.json(hit[:1])[0])
        raise KeyError(f"no record {record_id!r} in store {self.root}")

    def property_names(self) -> list[str]:
        """The properties some record of the store holds (its shards' property columns, sorted)."""
        return sorted({name for shard in self._iter_shards() for name in shard.columns("properties")})

    def to_dataframe(self, **filters: Any) -> pd.DataFrame:
        """One row per matching record, columns: ``record_id, source, method, campaign, task_id,
        sample_id, time`` (UTC), ``x_<El>`` (atomic fraction), ``<property>`` (canonical unit),
        ``<property>_std`` (uncertainty), ``process.<step>:<parameter>`` and ``raw.<name> [<unit>]``.

        Filters: ``source``, ``method``, ``campaign``, ``elements`` (all present),
        ``property`` (present), ``since``/``until`` (datetime or epoch s), ``sample_id``,
        ``superseded=True`` (also records a correction replaced; by default only current ones).
        """
        frames = []
        prefix = {"composition": "x_", "properties": "", "uncertainty": "", "process": "process.",
                  "raw_materials": "raw."}
        suffix = {"uncertainty": "_std"}
        for shard in list(self._iter_shards()):
            keep = self._select(shard, **_filters(filters))
            if not keep.any():
                continue
            data: dict[str, np.ndarray] = {}
            for name, values in shard.fixed.items():
                values = values[keep]
                if values.dtype.kind == "S":
                    values = np.char.decode(values, "utf-8")
                data[name] = values
            for group in layout.SPARSE_GROUPS:
                for name in shard.columns(group):
                    data[prefix[group] + name + suffix.get(group, "")] = shard.column(group, name)[keep]
            frames.append(pd.DataFrame(data))
        if not frames:
            return pd.DataFrame(columns=list(layout.FIXED_COLUMNS))
        df = pd.concat(frames, ignore_index=True)
        df["source"] = df["source"].map({v: k for k, v in layout.SOURCE_CODES.items()})
        df["time"] = pd.to_datetime(df["time"], unit="s", utc=True)
        x_cols = [c for c in df.columns if c.startswith("x_")]
        df[x_cols] = df[x_cols].fillna(0.0)
        return df

    def info(self) -> dict[str, Any]:
        """Counts by source and method, shards, generation."""
        counts: dict[str, int] = {}
        methods: dict[str, int] = {}
        for shard in self._iter_shards():
            for code, n in zip(*np.unique(shard.fixed["source"], return_counts=True)):
                name = next(k for k, v in layout.SOURCE_CODES.items() if v == code)
                counts[name] = counts.get(name, 0) + int(n)
            for m, n in zip(*np.unique(shard.fixed["method"], return_counts=True)):
                methods[m.decode()] = methods.get(m.decode(), 0) + int(n)
        return {
            "path": str(self.root),
            "records": len(self),
            "by_source": counts,
            "by_method": methods,
            "shards": len(self._manifest["shards"]),
            "generation": self._manifest["generation"],
        }

    def check(self) -> CheckReport:
        """Verify every shard file's SHA-256, every column's checksums, that counts match the
        manifest, that every record's JSON hashes to its id and no id appears twice, and that
        the ``store.h5`` view reads what the shards hold."""
        return check_store(self.root, self._manifest, self._shard)


def _filters(filters: dict[str, Any]) -> dict[str, Any]:
    allowed = ("source", "method", "campaign", "elements", "property", "since", "until", "sample_id", "superseded")
    unknown = set(filters) - set(allowed)
    if unknown:
        raise TypeError(f"unknown filter(s) {sorted(unknown)}; use {', '.join(allowed)}")
    return {k: filters.get(k) for k in allowed}


def open_store(path: str | os.PathLike[str], mode: Literal["r", "a"] = "r") -> Store:
    """Open the store at ``path`` (a folder); see ``Store``."""
    return Store.open(path, mode)


def read_view(path: str | os.PathLike[str]) -> h5py.File:
    """Open ``store.h5`` (the table view) with plain h5py."""
    return h5py.File(Path(path) / layout.VIEW, "r")
