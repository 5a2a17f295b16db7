"""The HDF5 record store: one writer, many readers, crash-safe, idempotent by record id.

Why immutable shards plus an atomically replaced manifest rather than one appendable HDF5
file: HDF5 itself is not crash-safe (a ``kill -9`` while its metadata cache is dirty can leave
the whole file unreadable, SWMR included until ``h5clear``), whereas a rename is atomic on
POSIX file systems. A batch is therefore either wholly visible or not at all, and data that
was acknowledged is never rewritten in place. See ``layout`` for the files and columns.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import pandas as pd
from pydantic import ValidationError

from dm_hpc.data import layout
from dm_hpc.data.records import MaterialRecord, Source, record_id_of
from dm_hpc.data.shards import Rows, Shard, concat_rows, element_mask, rows_from_records, write_shard

#: Shards of one size tier merged into one once this many exist (size-tiered compaction).
MERGE_FANOUT = 16
#: The writer keeps the rows of shards smaller than this in memory until they are merged, so a
#: merge does not read back what it just wrote (at most ~MERGE_FANOUT x this many rows).
CACHE_ROWS_BELOW = 10_000


class StoreError(RuntimeError):
    """Base class of store errors; the message names the store and the problem."""


class StoreLockedError(StoreError):
    """A second writer tried to open a store that is being written."""


class StoreCorruptError(StoreError):
    """A store file cannot be read or fails its integrity check."""


@dataclass(frozen=True)
class IngestResult:
    """What one ``ingest`` did: ``n`` records given, ``new`` of them stored (rest known)."""

    n: int
    new: int
    ids: list[str]


@dataclass
class CheckReport:
    """Outcome of ``Store.check``: counts and every problem found."""

    records: int = 0
    shards: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tier(count: int) -> int:
    return int(math.log(max(count, 1), MERGE_FANOUT))


class _WriterLock:
    """An exclusive ``flock`` on ``STORE/LOCK``; the kernel drops it if the writer dies."""

    def __init__(self, root: Path) -> None:
        self.path = root / layout.LOCK
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.path.read_text().strip() or "another process"
            os.close(self._fd)
            raise StoreLockedError(
                f"store {root} is already open for writing by {holder}; "
                "a store has one writer at a time (readers may open it with mode='r')"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}".encode())

    def release(self) -> None:
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


class Store:
    """A folder of HDF5 shards holding ``MaterialRecord`` s.

    Open with ``Store.open(path, mode="r")`` to read (any number of readers, also while a writer
    appends) or ``mode="a"`` to write (one writer; creates the store when missing).
    """

    def __init__(self, root: Path, mode: Literal["r", "a"]) -> None:
        self.root = Path(root)
        self.mode = mode
        self._lock: _WriterLock | None = None
        self._shards: dict[str, Shard] = {}
        self._manifest: dict[str, Any] = {}
        self._ids: set[bytes] | None = None
        self._rows_cache: dict[str, Rows] = {}
        self._superseded_at: tuple[int, set[str]] | None = None
        if mode == "a":
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / layout.SHARD_DIR).mkdir(exist_ok=True)
            self._lock = _WriterLock(self.root)
            try:
                self._load_manifest(create=True)
                self._remove_orphans()
            except BaseException:
                self._lock.release()
                raise
        elif mode == "r":
            if not (self.root / layout.MANIFEST).exists():
                raise StoreError(f"no store at {self.root} (missing {layout.MANIFEST})")
            self._load_manifest(create=False)
        else:
            raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str], mode: Literal["r", "a"] = "r") -> Store:
        return cls(Path(path), mode)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close shard files; a writer also refreshes the ``store.h5`` table view and unlocks."""
        if self._lock is not None:
            try:
                self.refresh_view()
            finally:
                for shard in self._shards.values():
                    shard.close()
                self._shards.clear()
                self._lock.release()
                self._lock = None
        else:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()

    def _load_manifest(self, create: bool) -> None:
        path = self.root / layout.MANIFEST
        if not path.exists() and create:
            self._manifest = {"format": layout.FORMAT, "generation": 0, "next_shard": 1, "shards": []}
            self._write_manifest()
            return
        try:
            manifest = json.loads(path.read_text())
            assert manifest["format"] == layout.FORMAT
            assert all({"name", "count"} <= set(s) for s in manifest["shards"])
        except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
            raise StoreCorruptError(f"store {self.root}: cannot read {path.name}: {exc!r}") from None
        self._manifest = manifest

    def _write_manifest(self) -> None:
        """Commit point: temp file, fsync, atomic rename, fsync of the folder."""
        path = self.root / layout.MANIFEST
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as fh:
            json.dump(self._manifest, fh, indent=1)
            fh.flush()
            os.fdatasync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.root)

    def _remove_orphans(self) -> None:
        """Delete shard files a crashed writer left that the manifest never named."""
        named = {s["name"] for s in self._manifest["shards"]}
        for path in (self.root / layout.SHARD_DIR).iterdir():
            if path.name not in named:
                path.unlink()

    def _shard(self, name: str) -> Shard:
        shard = self._shards.get(name)
        if shard is None:
            path = self.root / layout.SHARD_DIR / name
            try:
                shard = Shard.open(path)
            except FileNotFoundError:
                raise StoreError(f"store {self.root}: shard {name} was merged away; reopen the store") from None
            except (OSError, KeyError) as exc:
                raise StoreCorruptError(f"store {self.root}: cannot read shard {name}: {exc}") from None
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
        known = self._known_ids()
        ids: list[str] = []
        fresh: list[MaterialRecord] = []
        fresh_ids: list[str] = []
        fresh_json: list[str] = []
        seen: set[bytes] = set()
        for rec in batch:
            rid = rec.record_id
            ids.append(rid)
            key = rid.encode()
            if key in known or key in seen:
                continue
            seen.add(key)
            fresh.append(rec)
            fresh_ids.append(rid)
            fresh_json.append(rec.to_json())
        if fresh:
            self._commit(rows_from_records(fresh, fresh_ids, fresh_json))
            known.update(seen)
        return IngestResult(n=len(batch), new=len(fresh), ids=ids)

    def _commit(self, rows: Rows) -> None:
        name = layout.shard_name(self._manifest["next_shard"])
        write_shard(self.root / layout.SHARD_DIR / name, rows)
        if rows.n < CACHE_ROWS_BELOW:  # small shards are merged soon: keep their rows at hand
            self._rows_cache[name] = rows
        self._manifest["next_shard"] += 1
        self._manifest["shards"].append({"name": name, "count": rows.n})
        self._manifest["generation"] += 1
        self._write_manifest()
        self._maybe_merge()

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
        names = [e["name"] for e in entries]
        rows = concat_rows([self._rows_cache.pop(n, None) or self._shard(n).rows() for n in names])
        merged = layout.shard_name(self._manifest["next_shard"])
        write_shard(self.root / layout.SHARD_DIR / merged, rows)
        if rows.n < CACHE_ROWS_BELOW:
            self._rows_cache[merged] = rows
        kept = [e for e in self._manifest["shards"] if e["name"] not in names]
        # the merged shard takes the place of the first one it replaces, keeping row order
        first = self._manifest["shards"].index(entries[0])
        position = sum(1 for e in self._manifest["shards"][:first] if e["name"] not in names)
        kept.insert(position, {"name": merged, "count": rows.n})
        self._manifest["shards"] = kept
        self._manifest["next_shard"] += 1
        self._manifest["generation"] += 1
        self._write_manifest()
        for n in names:  # only after the manifest no longer names them
            shard = self._shards.pop(n, None)
            if shard is not None:
                shard.close()
            (self.root / layout.SHARD_DIR / n).unlink()

    def compact(self) -> None:
        """Merge every shard into one (e.g. before archiving a store)."""
        if self._lock is None:
            raise StoreError(f"store {self.root} is open read-only")
        if len(self._manifest["shards"]) > 1:
            self._merge(list(self._manifest["shards"]))

    def refresh_view(self) -> None:
        """Rebuild ``store.h5``: one logical table of virtual datasets over the shards."""
        if self._lock is None:
            raise StoreError(f"store {self.root} is open read-only")
        from dm_hpc.data.view import write_view

        write_view(self.root, self._manifest, [self._shard(s["name"]) for s in self._manifest["shards"]])

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
        """Ids of records that a later record corrects (its ``provenance.supersedes``).

        A correction has the sample id of what it corrects, so only records whose sample id
        occurs more than once are read; cached per manifest generation.
        """
        generation = self._manifest["generation"]
        if self._superseded_at is None or self._superseded_at[0] != generation:
            shards = list(self._iter_shards())
            ids = np.concatenate([s.fixed["sample_id"] for s in shards]) if shards else np.array([], "S1")
            values, counts = np.unique(ids, return_counts=True)
            twice = values[(counts > 1) & (values != b"")]
            found: set[str] = set()
            for shard in shards if twice.size else []:
                index = np.flatnonzero(np.isin(shard.fixed["sample_id"], twice))
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
        """Verify every shard opens, counts match the manifest, every record's JSON hashes to
        its id, the columns agree with the JSON, and no id appears twice."""
        report = CheckReport()
        seen: set[bytes] = set()
        for entry in self._manifest["shards"]:
            report.shards += 1
            try:
                shard = self._shard(entry["name"])
                texts = shard.json()
            except (StoreError, OSError, KeyError) as exc:
                report.problems.append(f"shard {entry['name']}: unreadable ({exc})")
                continue
            if shard.n != entry["count"] or len(texts) != shard.n:
                report.problems.append(f"shard {entry['name']}: {shard.n} rows, manifest says {entry['count']}")
            for i, text in enumerate(texts):
                rid = shard.fixed["record_id"][i]
                report.records += 1
                try:
                    content = _content_text(text)
                    rec = MaterialRecord.from_json(text)
                except (ValueError, KeyError, TypeError) as exc:
                    report.problems.append(f"record {rid.decode()}: unreadable record JSON ({exc})")
                    continue
                # the stored content must hash to the id, and must be what the record is
                if record_id_of(content).encode() != rid or rec.record_id.encode() != rid:
                    report.problems.append(f"record {rid.decode()}: content does not hash to its id")
                if layout.SOURCE_CODES[rec.source.value] != shard.fixed["source"][i]:
                    report.problems.append(f"record {rid.decode()}: source column disagrees with the record")
                if rid in seen:
                    report.problems.append(f"record {rid.decode()}: stored twice")
                seen.add(rid)
        return report


_CONTENT_START = '{"content":'


def _content_text(text: str) -> str:
    """The exact content JSON inside a stored record text (what the id was computed from)."""
    if not text.startswith(_CONTENT_START):
        raise ValueError("record JSON does not start with its content")
    _, end = json.JSONDecoder().raw_decode(text, len(_CONTENT_START))
    return text[len(_CONTENT_START):end]


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
