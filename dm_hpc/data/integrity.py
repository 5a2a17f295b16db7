"""How a store proves what it wrote and notices damage: its identity, digests, safe publishing.

- **Identity.** ``STORE/dm-hpc-store.json`` (the marker) holds a random ``store_id`` written
  once, when the store is created. Every shard carries that id in its attributes and every
  temp file carries it in its name, so a writer can tell its own files from anyone else's and
  never deletes or overwrites a file it cannot prove it wrote.
- **Digests.** SHA-256 throughout (about 2 GB/s here): of every dataset's bytes (attribute
  ``sha256``), of a shard's metadata (``layout_sha256``: names, shapes, dtypes, column names,
  units, the data digests; checked on every open, cheap), and of each whole shard file (in the
  manifest; ``check`` re-hashes it). HDF5's Fletcher32 filter on every dataset makes a read of
  a damaged chunk raise instead of returning wrong numbers.
- **One writer.** ``WriterLock`` holds an exclusive ``flock`` on ``STORE/LOCK`` for the store's
  writer and for ``recover``; the kernel drops it when the process dies, so a ``kill -9`` never
  leaves a store locked.
- **Publishing** a finished file is ``link(tmp, final)``, which fails when ``final`` exists,
  instead of ``rename``, which would replace it.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dm_hpc.data import layout


class StoreError(RuntimeError):
    """Base class of store errors; the message names the store and the problem."""


class StoreLockedError(StoreError):
    """A second writer tried to open a store that is being written."""


class StoreCorruptError(StoreError):
    """A store file cannot be read or fails its integrity check; ``detail`` says what is wrong."""

    detail: str = ""


def damaged(root: Path, what: str, detail: str) -> StoreCorruptError:
    """The one-paragraph error for a damaged file: which file, what is wrong, what to run."""
    error = StoreCorruptError(
        f"store {root}: {what} is damaged ({detail}). Nothing was read from it. "
        f"Run `dm-hpc store check --store {root}` to list every damaged file; restore damaged "
        f"shards from a backup, or run `dm-hpc store recover --store {root}` to rebuild the "
        "manifest from the shards that are intact."
    )
    error.detail = detail
    return error


#: OS errors that are the disk's or the permissions' (not the code's): said in one line, not a traceback
DISK_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def disk_problem(exc: BaseException) -> str | None:
    """The one line for a file a command may not write (a read-only folder, no permission, a full
    disk or quota), whichever command met it (the CLI's, ``Campaign.train``); None for another error."""
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror} (check the folder's file system, permissions and free space)"
    return None


def os_failure(root: Path, doing: str, exc: OSError) -> StoreError:
    """A clear error for a write the file system refused (full disk, read-only, permissions)."""
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only (open the store with mode 'r' to read it)",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return StoreError(f"store {root}: could not {doing}: {reason}. Nothing half-written was left behind; "
                      "what was stored before is intact.")


def write_new_file(path: Path, image: bytes | memoryview) -> None:
    """Write ``image`` to ``path`` (created or truncated) and ``fdatasync`` it.

    Why HDF5 files are built in memory and written here: when HDF5 itself meets a full disk it
    cannot close the file's objects, and a dataset stayed registered after its file had been
    freed, so a later ``File.close`` anywhere in the process crashed walking that registry. A
    failed ``os.write`` is a plain ``OSError`` and leaves nothing behind in the library."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        rest = memoryview(image)
        while rest:
            rest = rest[os.write(fd, rest):]
        os.fdatasync(fd)  # the data, before the name that publishes it
    finally:
        os.close(fd)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def layout_digest(description: dict[str, Any]) -> str:
    """Digest of a shard's metadata description (canonical JSON)."""
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """Give the finished (fsynced) ``tmp`` its ``final`` name; never replaces an existing file."""
    try:
        os.link(tmp, final)  # atomic; EEXIST if final exists
    except FileExistsError:
        tmp.unlink()
        raise
    except OSError as exc:  # a file system without hard links: check, then rename
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if final.exists():
            tmp.unlink()
            raise FileExistsError(errno.EEXIST, "file exists", str(final)) from None
        os.rename(tmp, final)
    else:
        tmp.unlink()
    fsync_dir(final.parent)


def write_new(path: Path, text: str, tag: str) -> None:
    """Write a new small file atomically; ``FileExistsError`` if ``path`` exists."""
    tmp = path.with_name(f".{path.name}.{tag}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    publish(tmp, path)


def read_marker(root: Path) -> dict[str, Any] | None:
    """The store's identity, or None when the folder has no marker."""
    path = root / layout.MARKER
    if not path.exists():
        return None
    try:
        marker = json.loads(path.read_text())
        if not isinstance(marker, dict) or marker.get("format") not in layout.READABLE_FORMATS:
            raise ValueError(f"format {marker.get('format') if isinstance(marker, dict) else marker!r}")
        uuid.UUID(hex=marker["store_id"])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise StoreCorruptError(f"store {root}: cannot read its identity file {layout.MARKER} ({exc}); "
                                "it is written once at creation and never changed; restore it from a backup") from None
    return marker


def create_marker(root: Path, store_id: str | None = None) -> dict[str, Any]:
    """Write the marker of a new store (or read the one a concurrent creator just wrote);
    ``store_id`` is given only when recovering a store whose marker was lost."""
    marker = {
        "format": layout.FORMAT,
        "store_id": store_id or uuid.uuid4().hex,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "about": "a dm-hpc record store; see dm_hpc/data/layout.py. Do not edit or copy this file "
                 "into another folder: it is how the store recognises its own files.",
    }
    try:
        write_new(root / layout.MARKER, json.dumps(marker, indent=1), marker["store_id"])
    except FileExistsError:
        existing = read_marker(root)
        assert existing is not None
        return existing
    return marker


def active_writer(root: Path) -> str | None:
    """Who holds the store for writing now ("pid N on HOST since ..."), when that process is alive
    on this machine; None when nobody does or it cannot be told. Read from the lock file's text,
    without touching the lock (a probe could make a starting writer fail)."""
    try:
        text = (root / layout.LOCK).read_text().strip()
    except OSError:
        return None
    parts = text.split()
    if len(parts) < 4 or parts[0] != "pid" or parts[2] != "on" or parts[3] != socket.gethostname():
        return None
    try:
        os.kill(int(parts[1]), 0)
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:  # alive, another user's
        pass
    return text


class WriterLock:
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
        try:
            os.ftruncate(self._fd, 0)
        except OSError:  # a full or read-only disk must not keep the lock
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
