"""Reading and writing one immutable shard file (see ``layout`` for the format)."""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from dm_hpc.data import layout
from dm_hpc.data.elements import atomic_number
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
    json: list[str]

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
    encoded = np.char.encode(np.array(values, dtype=str), "utf-8")
    if encoded.dtype.itemsize > dtype.itemsize:
        raise ValueError(f"{column} longer than {dtype.itemsize} bytes (UTF-8)")
    return encoded.astype(dtype)


class _SparseBuilder:
    """Collects (row, column name, value) triples and turns them into a named matrix."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.names: list[str] = []
        self.values: list[float] = []

    def add(self, row: int, items: dict[str, float]) -> None:
        self.rows.extend([row] * len(items))
        self.names.extend(items)
        self.values.extend(items.values())

    def build(self, n: int, fill: float) -> tuple[list[str], np.ndarray]:
        if not self.values:
            return [], np.full((n, 0), fill)
        index: dict[str, int] = {}
        cols = np.array([index.setdefault(name, len(index)) for name in self.names])
        names = sorted(index)
        rank = np.empty(len(names), dtype=int)
        rank[[index[name] for name in names]] = np.arange(len(names))
        mat = np.full((n, len(names)), fill)
        mat[np.array(self.rows), rank[cols]] = self.values
        return names, mat


def rows_from_records(records: Sequence[MaterialRecord], ids: Sequence[str], jsons: Sequence[str]) -> Rows:
    """Turn validated records (with their ids and JSON) into shard columns."""
    n = len(records)
    provs = [r.provenance for r in records]
    fixed = {
        "record_id": np.array(ids, dtype=layout.ID_DTYPE),
        "source": np.array([layout.SOURCE_CODES[p.source.value] for p in provs], dtype="u1"),
        "method": _fixed_text([p.method for p in provs], layout.METHOD_DTYPE, "method"),
        "campaign": _fixed_text([p.campaign or "" for p in provs], layout.LABEL_DTYPE, "campaign"),
        "task_id": _fixed_text([p.task_id or "" for p in provs], layout.LABEL_DTYPE, "task_id"),
        "sample_id": _fixed_text([r.sample_id or "" for r in records], layout.LABEL_DTYPE, "sample_id"),
        "time": np.array([p.timestamp.timestamp() for p in provs], dtype="f8"),
    }
    builders = {g: _SparseBuilder() for g in layout.SPARSE_GROUPS}
    comp, props, unc, proc = (builders[g] for g in ("composition", "properties", "uncertainty", "process"))
    for i, rec in enumerate(records):
        comp.add(i, rec.composition.fractions)
        props.add(i, {p.name: p.value for p in rec.properties})
        unc.add(i, {p.name: p.uncertainty for p in rec.properties if p.uncertainty is not None})
        for step in rec.process:
            proc.add(i, {f"{step.name}:{key}": val for key, val in step.parameters.items()})
    sparse = {g: b.build(n, layout.SPARSE_GROUPS[g]) for g, b in builders.items()}
    return Rows(fixed, mask_from_fractions(*sparse["composition"]), sparse, list(jsons))


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


def write_shard(path: Path, rows: Rows) -> None:
    """Write ``rows`` to ``path`` atomically: a temp file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w", libver="latest") as f:
        f.attrs["format"] = layout.FORMAT
        g = f.create_group("records")
        g.attrs["n"] = rows.n
        for name, values in rows.fixed.items():
            g.create_dataset(name, data=values, dtype=SOURCE_ENUM if name == "source" else values.dtype)
        g.create_dataset("element_mask", data=rows.element_mask)
        for group, (names, mat) in rows.sparse.items():
            ds = g.create_dataset(group, data=mat)
            ds.attrs["columns"] = names
            if group in ("properties", "uncertainty"):
                ds.attrs["units"] = [canonical_unit(name) for name in names]
        # JSON as one UTF-8 byte blob plus offsets: merging and reading are then plain copies
        blobs = [text.encode() for text in rows.json]
        g.create_dataset("json_offsets", data=np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype("i8"))
        g.create_dataset("json_bytes", data=np.frombuffer(b"".join(blobs), dtype=np.uint8))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass
class Shard:
    """An open, immutable shard: fixed columns loaded eagerly, the rest on demand."""

    path: Path
    n: int
    fixed: dict[str, np.ndarray]
    element_mask: np.ndarray
    _file: h5py.File = field(repr=False)
    _cache: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: Path) -> Shard:
        f = h5py.File(path, "r")
        g = f["records"]
        fixed = {name: g[name][()] for name in layout.FIXED_COLUMNS}
        return cls(path, int(g.attrs["n"]), fixed, g["element_mask"][()], f)

    def columns(self, group: str) -> list[str]:
        """Names of the columns of a sparse group (``composition``, ``properties``, ...)."""
        return self.matrix(group)[0]

    def matrix(self, group: str) -> tuple[list[str], np.ndarray]:
        """``(names, n x k matrix)`` of a sparse group, cached (shards are immutable)."""
        hit = self._cache.get(group)
        if hit is None:
            ds = self._file["records"][group]
            names = [str(x) for x in ds.attrs["columns"]]
            hit = self._cache[group] = (names, ds[()].reshape(self.n, len(names)))
        return hit

    def column(self, group: str, name: str) -> np.ndarray:
        """Values of one sparse column, filled where this shard has none."""
        names, mat = self.matrix(group)
        if name in names:
            return mat[:, names.index(name)]
        return np.full(self.n, layout.SPARSE_GROUPS[group])

    def json(self, index: np.ndarray | None = None) -> list[str]:
        """Record JSON texts (all, or of the rows in ``index``)."""
        g = self._file["records"]
        offsets = g["json_offsets"][()]
        blob = g["json_bytes"][()].tobytes()
        rows = range(self.n) if index is None else np.sort(index)
        return [blob[offsets[i]:offsets[i + 1]].decode() for i in rows]

    def rows(self) -> Rows:
        sparse = {g: self.matrix(g) for g in layout.SPARSE_GROUPS}
        return Rows(dict(self.fixed), self.element_mask, sparse, self.json())

    def close(self) -> None:
        self._file.close()
