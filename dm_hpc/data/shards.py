"""Reading and writing one immutable shard file (see ``layout`` for the format, ``integrity``
for the checksums and why a shard is never replaced)."""
from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from dm_hpc.data import layout
from dm_hpc.data.elements import atomic_number
from dm_hpc.data.integrity import (
    StoreCorruptError,
    damaged,
    layout_digest,
    publish,
    sha256_bytes,
    write_new_file,
)
from dm_hpc.data.records import MaterialRecord
from dm_hpc.data.vocabulary import canonical_unit

SOURCE_ENUM = h5py.enum_dtype(layout.SOURCE_CODES, basetype="u1")


@dataclass
class Rows:
    """Columns of a batch of records, ready to write (n = number of records).

    ``sparse[group]`` is ``(names, matrix)``: an ``n x k`` float64 matrix whose columns are named.
    """

    fixed: dict[str, np.ndarray]
    element_mask: np.ndarray  # n x 2 uint64
    sparse: dict[str, tuple[list[str], np.ndarray]]
    json: list[bytes]  # UTF-8 record JSON, kept as bytes so merges copy without decoding

    @property
    def n(self) -> int:
        return len(self.json)


def element_mask(elements: Iterable[str]) -> tuple[int, int]:
    """Two 64-bit words with bit Z-1 set for each element."""
    bits = 0
    for el in elements:
        bits |= 1 << (atomic_number(el) - 1)
    return bits & 0xFFFFFFFFFFFFFFFF, bits >> 64


def _fixed_text(values: list[str], dtype: np.dtype, column: str) -> np.ndarray:
    """Fixed-width UTF-8 column; a value that does not fit is an error, never truncated."""
    width = dtype.itemsize
    try:  # ASCII (the usual case) converts in C
        encoded = np.array(values, dtype=f"S{width + 1}")
    except UnicodeEncodeError:
        encoded = np.array([v.encode() for v in values], dtype=f"S{width + 1}")
    if len(values) and encoded.view(np.uint8).reshape(len(values), width + 1)[:, width].any():
        raise ValueError(f"{column} longer than {width} bytes (UTF-8)")
    return encoded.astype(dtype)


#: (row, column name, value) triples of one sparse group: the form both ingest paths share.
Triples = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class RecordColumns:
    """A batch of records as columns, before the store drops the ids it already holds.

    Built from records (``columns_from_records``) or straight from a checked sheet's columns
    (``dm_hpc.data.sheet_columns``, no record objects); either way ``rows`` gives the shard's
    columns, so the two paths store the same bytes. ``fixed``: ``layout.FIXED_COLUMNS`` but
    ``record_id``, one entry per record; ``cells[group]``: (row, column name, value) triples,
    shapes ``(m,)``; ``json``: each record's UTF-8 JSON (``MaterialRecord.to_json``).
    """

    ids: list[str]
    fixed: dict[str, np.ndarray]
    cells: dict[str, Triples]
    json: list[bytes]

    @property
    def n(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> RecordColumns:
        """The records at positions ``index`` (ascending), in that order."""
        index = np.asarray(index, dtype=np.int64)
        renumber = np.full(self.n, -1, dtype=np.int64)
        renumber[index] = np.arange(len(index))
        cells = {}
        for group, (rows, names, values) in self.cells.items():
            kept = renumber[rows] >= 0
            cells[group] = (renumber[rows[kept]], names[kept], values[kept])
        return RecordColumns([self.ids[i] for i in index.tolist()], {k: v[index] for k, v in self.fixed.items()},
                             cells, [self.json[i] for i in index.tolist()])

    def with_records(self, at: Sequence[int], records: Sequence[MaterialRecord]) -> RecordColumns:
        """These records with those at positions ``at`` replaced by ``records`` (validated: their
        ids and JSON are their content's), each in its place."""
        if not len(at):
            return self
        at = np.asarray(at, dtype=np.int64)
        new = columns_from_records(records, [r.record_id for r in records], [r.to_json() for r in records])
        cells = {}
        for group, (rows, names, values) in self.cells.items():
            kept = ~np.isin(rows, at)
            add_rows, add_names, add_values = new.cells[group]
            cells[group] = (np.concatenate([rows[kept], at[add_rows]]), np.concatenate([names[kept], add_names]),
                            np.concatenate([values[kept], add_values]))
        fixed = {k: v.copy() for k, v in self.fixed.items()}
        for k in fixed:
            fixed[k][at] = new.fixed[k]
        ids, json = list(self.ids), list(self.json)
        for k, i in enumerate(at.tolist()):
            ids[i], json[i] = new.ids[k], new.json[k]
        return RecordColumns(ids, fixed, cells, json)

    def rows(self) -> Rows:
        """The shard columns of these records (sparse columns: only names some record has)."""
        fixed = {"record_id": np.array(self.ids, dtype=layout.ID_DTYPE), **self.fixed}
        sparse = {g: _sparse(self.n, *self.cells[g], layout.SPARSE_GROUPS[g]) for g in layout.SPARSE_GROUPS}
        return Rows({k: fixed[k] for k in layout.FIXED_COLUMNS}, mask_from_fractions(*sparse["composition"]),
                    sparse, self.json)


def _sparse(n: int, rows: np.ndarray, names: np.ndarray, values: np.ndarray, fill: float) -> tuple[list[str], np.ndarray]:
    """``(sorted column names, n x k matrix)`` from (row, name, value) triples."""
    if not len(values):
        return [], np.full((n, 0), fill)
    codes, uniques = pd.factorize(names, sort=True)
    mat = np.full((n, len(uniques)), fill)
    mat[rows, codes] = values
    return [str(u) for u in uniques], mat


def triples(items: Sequence[tuple[int, str, float]]) -> Triples:
    """(row, name, value) items as the three arrays of ``Triples``."""
    if not items:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object), np.zeros(0)
    rows, names, values = zip(*items)
    return np.array(rows, dtype=np.int64), np.array(names, dtype=object), np.array(values, dtype=float)


def fixed_columns(sources: Sequence[str], methods: Sequence[str], campaigns: Sequence[str],
                  task_ids: Sequence[str], sample_ids: Sequence[str], times: Sequence[float]) -> dict[str, np.ndarray]:
    """The fixed per-record columns but ``record_id`` (texts: '' where none; fixed width checked)."""
    return {
        "source": np.array([layout.SOURCE_CODES[s] for s in sources], dtype="u1"),
        "method": _fixed_text(list(methods), layout.METHOD_DTYPE, "method"),
        "campaign": _fixed_text(list(campaigns), layout.LABEL_DTYPE, "campaign"),
        "task_id": _fixed_text(list(task_ids), layout.LABEL_DTYPE, "task_id"),
        "sample_id": _fixed_text(list(sample_ids), layout.LABEL_DTYPE, "sample_id"),
        "time": np.array(times, dtype="f8"),
    }


def columns_from_records(records: Sequence[MaterialRecord], ids: Sequence[str], jsons: Sequence[str]) -> RecordColumns:
    """Validated records (with their ids and JSON) as columns."""
    provs = [r.provenance for r in records]
    fixed = fixed_columns([p.source.value for p in provs], [p.method for p in provs],
                          [p.campaign or "" for p in provs], [p.task_id or "" for p in provs],
                          [r.sample_id or "" for r in records], [p.timestamp.timestamp() for p in provs])
    # (row, column, value) triples, gathered in comprehensions (the hot loop of an ingest)
    fracs = [r.composition.fractions if r.composition is not None else {} for r in records]
    comp = [(i, el, x) for i, f in enumerate(fracs) for el, x in f.items()]
    props = [(i, p.name, p.value) for i, r in enumerate(records) for p in r.properties]
    unc = [(i, p.name, p.uncertainty) for i, r in enumerate(records) for p in r.properties if p.uncertainty is not None]
    proc = [(i, f"{st.name}:{k}", v) for i, r in enumerate(records) for st in r.process for k, v in st.parameters.items()]
    raw = [(i, f"{rm.name} [{rm.amount.unit}]", rm.amount.value)
           for i, r in enumerate(records) for rm in r.raw_materials if rm.amount is not None]
    cells = {"composition": triples(comp), "properties": triples(props), "uncertainty": triples(unc),
             "process": triples(proc), "raw_materials": triples(raw)}
    return RecordColumns(list(ids), fixed, cells, [j.encode() for j in jsons])


def rows_from_records(records: Sequence[MaterialRecord], ids: Sequence[str], jsons: Sequence[str]) -> Rows:
    """Turn validated records (with their ids and JSON) into shard columns."""
    return columns_from_records(records, ids, jsons).rows()


def mask_from_fractions(elements: Sequence[str], fractions: np.ndarray) -> np.ndarray:
    """``n x 2`` uint64 element masks from an ``n x k`` fraction matrix (vectorised)."""
    mask = np.zeros((fractions.shape[0], 2), dtype=np.uint64)
    for j, el in enumerate(elements):
        z = atomic_number(el) - 1
        mask[:, z // 64] |= (fractions[:, j] > 0).astype(np.uint64) << np.uint64(z % 64)
    return mask


def concat_rows(parts: Sequence[Rows]) -> Rows:
    """Concatenate shards' rows (for compaction), filling columns a part lacks."""
    fixed = {k: np.concatenate([p.fixed[k] for p in parts]) for k in layout.FIXED_COLUMNS}
    mask = np.concatenate([p.element_mask for p in parts])
    sparse: dict[str, tuple[list[str], np.ndarray]] = {}
    for group, fill in layout.SPARSE_GROUPS.items():
        names = sorted({name for p in parts for name in p.sparse[group][0]})
        index = {name: j for j, name in enumerate(names)}
        blocks = []
        for p in parts:
            block = np.full((p.n, len(names)), fill)
            own, mat = p.sparse[group]
            if own:
                block[:, [index[name] for name in own]] = mat
            blocks.append(block)
        sparse[group] = (names, np.concatenate(blocks))
    return Rows(fixed, mask, sparse, [j for p in parts for j in p.json])


@dataclass(frozen=True)
class ShardMeta:
    """Root attributes that tie a shard to its store (see ``layout``)."""

    store_id: str
    number: int
    first: int
    replaces: tuple[int, ...] = ()
    generation: int = 0
    legacy: bool = False  # format /1: no store id, no checksums


def _describe(f: h5py.File) -> dict:
    """Everything about a shard except its data bytes (those are covered by each ``sha256``)."""
    g = f["records"]
    datasets = {}
    for name, ds in g.items():
        datasets[name] = {
            "dtype": ds.dtype.str, "shape": list(ds.shape), "fletcher32": bool(ds.fletcher32),
            "sha256": text_attr(ds.attrs["sha256"]),
            **{key: [text_attr(x) for x in ds.attrs[key]] for key in ("columns", "units") if key in ds.attrs},
        }
    root = {key: f.attrs[key] for key in ("format", "store_id", "number", "first", "generation")}
    root = {key: text_attr(value) if isinstance(value, (str, bytes)) else int(value) for key, value in root.items()}
    root["replaces"] = [int(x) for x in f.attrs["replaces"]]
    return {"root": root, "n": int(g.attrs["n"]), "datasets": datasets}


def write_shard(path: Path, rows: Rows, meta: ShardMeta) -> str:
    """Write ``rows`` to the new file ``path`` (never replacing one); returns the file's SHA-256.

    The file is built in memory (see ``integrity.write_new_file`` for why), written to a temp
    file named with the store's id, fsynced, then published with ``integrity.publish``.
    """
    tmp = path.with_name(f".{path.name}.{meta.store_id}.tmp")
    image = _image(rows, meta)
    try:
        write_new_file(tmp, image)
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # ours: its name carries the store's id
        raise
    return sha256_bytes(image)


def fixed_text(value: str | Sequence[str]) -> np.ndarray:
    """A string (or list of strings) as fixed-length UTF-8 bytes for an HDF5 attribute.

    Why not h5py's default variable-length strings: those live in HDF5's global heap, which has
    no checksum; a damaged heap made reading an attribute spin instead of fail. Fixed-length
    values sit in the object header, which ``libver="latest"`` checksums."""
    if isinstance(value, str):
        return np.bytes_(value.encode())
    return np.array([v.encode() for v in value], dtype=f"S{max([len(v.encode()) for v in value] + [1])}")


def text_attr(value: object) -> str:
    """Inverse of ``fixed_text`` (also reads the variable-length strings of format /1 shards)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def in_memory_file(**kwargs: str) -> h5py.File:
    """A new HDF5 file in memory; its image is then written by ``integrity.write_new_file``.

    No metadata aggregation block: HDF5 gives back the aggregator's unused space only when the
    file closes, so the image would end in padding that no read looks at (a damaged tail would
    go unnoticed by every read)."""
    return h5py.File.in_memory(meta_block_size=0, **kwargs)


def _image(rows: Rows, meta: ShardMeta) -> bytes:
    """The shard's HDF5 file, built in memory."""
    # the metadata description is built as the file is written (what ``_describe`` reads back
    # on every open; reading it back here would double the cost of a write)
    root = {"format": layout.FORMAT, "store_id": meta.store_id, "number": meta.number, "first": meta.first,
            "generation": meta.generation}
    datasets: dict[str, dict] = {}
    with in_memory_file(libver="latest") as f:
        for key, value in root.items():
            f.attrs[key] = fixed_text(value) if isinstance(value, str) else value
        f.attrs["replaces"] = np.array(meta.replaces, dtype="i8")
        g = f.create_group("records")
        g.attrs["n"] = rows.n

        def put(name: str, values: np.ndarray, dtype=None, **attrs: list[str]) -> None:
            values = np.ascontiguousarray(values)
            ds = g.create_dataset(name, data=values, dtype=dtype or values.dtype, fletcher32=True)
            digest = sha256_bytes(values.data)
            ds.attrs["sha256"] = fixed_text(digest)
            for key, names in attrs.items():
                ds.attrs[key] = fixed_text(names)
            datasets[name] = {"dtype": values.dtype.str, "shape": list(values.shape), "fletcher32": True,
                              "sha256": digest, **attrs}

        for name, values in rows.fixed.items():
            put(name, values, SOURCE_ENUM if name == "source" else None)
        put("element_mask", rows.element_mask)
        for group, (names, mat) in rows.sparse.items():
            units = {"units": [canonical_unit(name) for name in names]} if group in ("properties", "uncertainty") else {}
            put(group, mat, columns=list(names), **units)
        # JSON as one UTF-8 byte blob plus offsets: merging and reading are then plain copies
        blobs = rows.json
        put("json_offsets", np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype("i8"))
        put("json_bytes", np.frombuffer(b"".join(blobs), dtype=np.uint8))
        root["replaces"] = list(meta.replaces)
        f.attrs["layout_sha256"] = fixed_text(layout_digest({"root": root, "n": rows.n, "datasets": datasets}))
        f.flush()
        return f.id.get_file_image()


_READ_ERRORS = (OSError, KeyError, ValueError, TypeError, IndexError, UnicodeDecodeError, RuntimeError,
                AttributeError)  # h5py gives None for an object whose header is unreadable


@dataclass
class Shard:
    """An open, immutable shard: fixed columns loaded eagerly, the rest on demand.

    Every read that finds damage (a Fletcher32 mismatch, a metadata digest that does not
    match, a missing dataset) raises ``StoreCorruptError`` naming the file.
    """

    path: Path
    n: int
    fixed: dict[str, np.ndarray]
    element_mask: np.ndarray
    meta: ShardMeta
    _file: h5py.File = field(repr=False)
    _cache: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: Path) -> Shard:
        """Open and verify the metadata digest; ``FileNotFoundError`` if the file is gone."""
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "no such shard", str(path))
        f = None
        try:
            f = h5py.File(path, "r")
            meta = _verified_meta(f)
            g = f["records"]
            fixed = {name: g[name][()] for name in layout.FIXED_COLUMNS}
            n = int(g.attrs["n"])
            mask = g["element_mask"][()]
            if any(len(v) != n for v in fixed.values()) or mask.shape != (n, 2):
                raise ValueError(f"columns disagree with the record count {n}")
            return cls(path, n, fixed, mask, meta, f)
        except FileNotFoundError:
            if f is not None:
                f.close()
            raise
        except _READ_ERRORS as exc:
            if f is not None:
                f.close()
            raise _damaged(path, exc) from None

    def columns(self, group: str) -> list[str]:
        """Names of the columns of a sparse group (``composition``, ``properties``, ...)."""
        return self.matrix(group)[0]

    def matrix(self, group: str) -> tuple[list[str], np.ndarray]:
        """``(names, n x k matrix)`` of a sparse group, cached (shards are immutable)."""
        hit = self._cache.get(group)
        if hit is not None:
            return hit
        try:
            if group not in self._file["records"]:  # a group newer than this shard
                hit = ([], np.full((self.n, 0), layout.SPARSE_GROUPS[group]))
            else:
                ds = self._file["records"][group]
                names = [text_attr(x) for x in ds.attrs["columns"]]
                hit = (names, ds[()].reshape(self.n, len(names)))
        except _READ_ERRORS as exc:
            raise _damaged(self.path, exc) from None
        self._cache[group] = hit
        return hit

    def unit(self, group: str, name: str) -> str:
        """The canonical unit column ``name`` of ``group`` was written in: stored with the shard,
        so a campaign's own term reads back without the campaign that declared it."""
        try:
            ds = self._file["records"][group]
            return [text_attr(x) for x in ds.attrs["units"]][self.columns(group).index(name)]
        except _READ_ERRORS as exc:
            raise _damaged(self.path, exc) from None

    def column(self, group: str, name: str) -> np.ndarray:
        """Values of one sparse column, filled where this shard has none."""
        names, mat = self.matrix(group)
        if name in names:
            return mat[:, names.index(name)]
        return np.full(self.n, layout.SPARSE_GROUPS[group])

    def _blob(self) -> tuple[bytes, np.ndarray]:
        try:
            g = self._file["records"]
            blob, offsets = g["json_bytes"][()].tobytes(), g["json_offsets"][()]
        except _READ_ERRORS as exc:
            raise _damaged(self.path, exc) from None
        if len(offsets) != self.n + 1 or offsets[0] != 0 or offsets[-1] != len(blob) or (np.diff(offsets) < 0).any():
            raise _damaged(self.path, "record JSON offsets are inconsistent")
        return blob, offsets

    def json(self, index: np.ndarray | None = None) -> list[str]:
        """Record JSON texts (all, or of the rows in ``index``)."""
        blob, offsets = self._blob()
        rows = range(self.n) if index is None else np.sort(index)
        try:
            return [blob[offsets[i]:offsets[i + 1]].decode() for i in rows]
        except UnicodeDecodeError as exc:
            raise _damaged(self.path, exc) from None

    def rows(self) -> Rows:
        sparse = {g: self.matrix(g) for g in layout.SPARSE_GROUPS}
        blob, offsets = self._blob()
        return Rows(dict(self.fixed), self.element_mask, sparse,
                    [blob[offsets[i]:offsets[i + 1]] for i in range(self.n)])

    def verify(self) -> list[str]:
        """Read every dataset whole and compare it with its ``sha256``; returns the problems."""
        if self.meta.legacy:
            return []
        problems = []
        for name in self._file["records"]:
            try:
                ds = self._file["records"][name]
                data = np.ascontiguousarray(ds[()])
                ok = sha256_bytes(data.data) == text_attr(ds.attrs["sha256"])
            except _READ_ERRORS as exc:
                problems.append(f"column {name}: unreadable ({_reason(exc)})")
                continue
            if not ok:
                problems.append(f"column {name}: data does not match its SHA-256")
        return problems

    def close(self) -> None:
        self._file.close()


def _verified_meta(f: h5py.File) -> ShardMeta:
    fmt = text_attr(f.attrs["format"])
    if fmt == "dm-hpc-store/1":
        return ShardMeta(store_id="", number=0, first=0, legacy=True)
    if fmt != layout.FORMAT:
        raise ValueError(f"unknown shard format {fmt!r}")
    description = _describe(f)
    if layout_digest(description) != text_attr(f.attrs["layout_sha256"]):
        raise ValueError("metadata does not match its SHA-256 (layout_sha256)")
    if any(not ds["fletcher32"] for ds in description["datasets"].values()):
        raise ValueError("a dataset lost its Fletcher32 checksum filter")
    root = description["root"]
    return ShardMeta(root["store_id"], root["number"], root["first"], tuple(root["replaces"]), root["generation"])


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


def _damaged(path: Path, exc: BaseException | str) -> StoreCorruptError:
    return damaged(path.parent.parent, f"shard file {path}", exc if isinstance(exc, str) else _reason(exc))
