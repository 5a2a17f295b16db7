"""Reading and writing one immutable shard file (see ``layout`` for the format)."""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

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


def _sparse(n: int, rows: list[int], names: list[str], values: list[float], fill: float) -> tuple[list[str], np.ndarray]:
    """``(sorted column names, n x k matrix)`` from (row, name, value) triples."""
    if not values:
        return [], np.full((n, 0), fill)
    codes, uniques = pd.factorize(np.array(names, dtype=object), sort=True)
    mat = np.full((n, len(uniques)), fill)
    mat[np.array(rows), codes] = values
    return [str(u) for u in uniques], mat


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
    # (row, column, value) triples, gathered in comprehensions (the hot loop of an ingest)
    fracs = [r.composition.fractions if r.composition is not None else {} for r in records]
    comp_rows = [i for i, f in enumerate(fracs) for _ in f]
    comp = (comp_rows, [el for f in fracs for el in f], [x for f in fracs for x in f.values()])
    props = [r.properties for r in records]
    prop_rows = [i for i, ps in enumerate(props) for _ in ps]
    prop = (prop_rows, [p.name for ps in props for p in ps], [p.value for ps in props for p in ps])
    unc_items = [(i, p.name, p.uncertainty) for i, ps in enumerate(props) for p in ps if p.uncertainty is not None]
    proc_items = [(i, f"{st.name}:{k}", v) for i, r in enumerate(records) for st in r.process for k, v in st.parameters.items()]
    raw_items = [(i, f"{rm.name} [{rm.amount.unit}]", rm.amount.value)
                 for i, r in enumerate(records) for rm in r.raw_materials if rm.amount is not None]
    unc, proc, raw = (tuple(map(list, zip(*items))) if items else ([], [], [])
                      for items in (unc_items, proc_items, raw_items))
    triples = {"composition": comp, "properties": prop, "uncertainty": unc, "process": proc,
               "raw_materials": raw}
    sparse = {g: _sparse(n, *triples[g], layout.SPARSE_GROUPS[g]) for g in layout.SPARSE_GROUPS}
    return Rows(fixed, mask_from_fractions(*sparse["composition"]), sparse, [j.encode() for j in jsons])


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
        blobs = rows.json
        g.create_dataset("json_offsets", data=np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype("i8"))
        g.create_dataset("json_bytes", data=np.frombuffer(b"".join(blobs), dtype=np.uint8))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fdatasync(fd)  # the data, before the name that publishes it
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)  # the new name itself survives a power cut
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


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
        if hit is None and group not in self._file["records"]:  # a group newer than this shard
            hit = self._cache[group] = ([], np.full((self.n, 0), layout.SPARSE_GROUPS[group]))
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

    def _blob(self) -> tuple[bytes, np.ndarray]:
        g = self._file["records"]
        return g["json_bytes"][()].tobytes(), g["json_offsets"][()]

    def json(self, index: np.ndarray | None = None) -> list[str]:
        """Record JSON texts (all, or of the rows in ``index``)."""
        blob, offsets = self._blob()
        rows = range(self.n) if index is None else np.sort(index)
        return [blob[offsets[i]:offsets[i + 1]].decode() for i in rows]

    def rows(self) -> Rows:
        sparse = {g: self.matrix(g) for g in layout.SPARSE_GROUPS}
        blob, offsets = self._blob()
        return Rows(dict(self.fixed), self.element_mask, sparse,
                    [blob[offsets[i]:offsets[i + 1]] for i in range(self.n)])

    def close(self) -> None:
        self._file.close()
