"""On-disk layout of a dm-hpc store (format ``dm-hpc-store/2``), readable without dm-hpc.

A store is a folder::

    STORE/
      dm-hpc-store.json     the store's identity (format, a random ``store_id``), written once
                            at creation; a folder without it is never written into unless empty
      manifest.json         the commit point: committed shards (name, record count, ``first``,
                            SHA-256 of the file), ``retired`` shards (merged away, deleted once
                            no reader can still need them), generation, next shard number
      shards/s000001.h5     immutable batches, each written whole (and fsynced) before the
                            manifest names it
      store.h5              one logical table over all shards (HDF5 virtual datasets), for
                            h5py / h5dump users; rebuilt when the writer closes or compacts
      LOCK                  held (flock) by the one writer; says who holds it

A batch is acknowledged once ``manifest.json`` naming its shard has been renamed into place
(write temp, fsync, rename, fsync folder). A crash before that leaves an orphan shard (carrying
this store's id, numbered at or after the manifest's next number) that the next writer deletes;
a crash after it loses nothing. Shards are merged (size-tiered, 16 of a
size into one) so a campaign that ingests one record at a time does not leave thousands.

``store.h5``::

    /records/<column>       virtual datasets concatenating the shards' columns (one table)
    /records/composition/<El>, /records/properties/<name>, /records/uncertainty/<name>,
    /records/process/<step>:<parameter>, /records/raw_materials/<name> [<unit>]
                            virtual, filled with 0 / NaN where a shard has none
    /shards/<name>          external links to each shard's root

Each shard's root attributes: ``format``, ``store_id`` (the marker's), ``number`` (of its
name), ``first`` (the lowest shard number whose rows it holds: the manifest's order),
``replaces`` (numbers of the shards a merge made it from), ``generation`` (manifest generation
that committed it), ``layout_sha256`` (digest of every dataset's name, shape, dtype, attributes
and data digest; checked on every open). Every dataset is chunked with HDF5's Fletcher32 filter
(a damaged chunk fails to read) and has a ``sha256`` attribute over its data bytes.

Each shard ``/records`` group holds, per record (row):

    record_id  S23   content hash (``dm-`` + 20 hex)
    source     enum  computed=0 | experimental=1
    method     S40   calculation method or lab
    campaign   S64   campaign name ('' if none)
    task_id    S64   campaign task id ('' if none)
    sample_id  S64   lab sample / suggestion id ('' if none)
    time       f8    record timestamp, seconds since the Unix epoch (UTC)
    element_mask u8[2]  bit Z-1 set when element Z is present (fast "contains" queries)
    composition  f8[n,k]  atomic fractions; attribute ``columns`` names the k elements
    properties   f8[n,k]  values in the vocabulary's canonical units (attributes ``columns``,
                          ``units``), NaN where a record has no such property
    uncertainty  f8[n,k]  standard uncertainties in the same units, NaN if none
    process      f8[n,k]  process parameters ``<step>:<parameter>`` in canonical units, NaN if absent
    raw_materials f8[n,k] raw-material amounts, columns ``<name> [<unit>]``, NaN if not used
    json_bytes u1[]  the records' JSON, UTF-8, concatenated (the authority; columns derive from it):
    json_offsets i8[n+1]  record i is json_bytes[offsets[i]:offsets[i+1]], as
                     {"content": <what the id hashes>, "circumstances": <provenance details>}
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

FORMAT = "dm-hpc-store/2"
#: Formats this code reads (``/1``: shards without checksums, stores without a marker).
READABLE_FORMATS = ("dm-hpc-store/1", FORMAT)
MARKER = "dm-hpc-store.json"
MANIFEST = "manifest.json"
VIEW = "store.h5"
SHARD_DIR = "shards"
LOCK = "LOCK"

ID_DTYPE = np.dtype("S23")
METHOD_DTYPE = np.dtype("S40")
LABEL_DTYPE = np.dtype("S64")
SOURCE_CODES = {"computed": 0, "experimental": 1}

#: Fixed per-record columns: name -> numpy dtype (source is an HDF5 enum over uint8).
FIXED_COLUMNS: dict[str, np.dtype] = {
    "record_id": ID_DTYPE,
    "source": np.dtype("u1"),
    "method": METHOD_DTYPE,
    "campaign": LABEL_DTYPE,
    "task_id": LABEL_DTYPE,
    "sample_id": LABEL_DTYPE,
    "time": np.dtype("f8"),
}
#: Sparse column groups and the fill value used where a shard has no such column.
SPARSE_GROUPS: dict[str, float] = {
    "composition": 0.0,
    "properties": float("nan"),
    "uncertainty": float("nan"),
    "process": float("nan"),
    "raw_materials": float("nan"),
}


def shard_name(number: int) -> str:
    """File name of shard ``number`` (``s000001.h5``)."""
    return f"s{number:06d}.h5"


def shard_number(name: str) -> int | None:
    """Inverse of ``shard_name``; None for any other file name."""
    match = SHARD_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


SHARD_NAME = re.compile(r"s(\d{6,})\.h5")


def store_folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a store, judged from what is there without opening anything, or None
    (a store, or a missing or empty folder, where a writer creates one). One wording for the doors
    a store path comes through: ``Store.open`` given a file (``--store``, ``gaps STORE``), the
    campaign commands' preflight of its ``store:`` (``validate``, ``run``, ``report``, ``suggest``),
    and ``calc run``, which checks before it calculates."""
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    if not path.is_dir():
        if path.name == VIEW and ((path.parent / MANIFEST).exists() or (path.parent / MARKER).exists()):
            # README points readers at store.h5, so it is the file people paste as the store
            return (f"{path} is the table view inside a store (one file, for h5py readers), not the store: "
                    f"name the store's folder, {path.parent}")
        return (f"{path} is a file, not a store folder: a store is a folder (it holds {MANIFEST}, "
                f"{SHARD_DIR}/ and {VIEW}); name a new or empty folder, or the folder of an existing store")
    if not (path / MANIFEST).exists() and not (path / MARKER).exists():
        lost = (f"; if it is a store whose {MANIFEST} and {MARKER} were lost, run `dm-hpc store recover "
                f"--store {path}`") if (path / SHARD_DIR).is_dir() else ""
        return (f"{path} holds other files and no store (no {MANIFEST}): "
                f"name a new or empty folder, or the folder of an existing store{lost}")
    return None
