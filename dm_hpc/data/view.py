"""``store.h5``: the whole store as one table of HDF5 virtual datasets, for readers without dm-hpc.

Rebuilt by the writer on close (and by ``dm-hpc store check --repair-view``); written to a
temp file and renamed, so a reader sees the old or the new view, never half of one.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dm_hpc.data import layout
from dm_hpc.data.integrity import write_new_file
from dm_hpc.data.shards import SOURCE_ENUM, Shard, in_memory_file


def write_view(root: Path, manifest: dict[str, Any], shards: Sequence[Shard], tag: str) -> None:
    """Write ``root/store.h5`` mapping every shard column into one table (``tag``: the store id,
    in the temp file's name, so a later writer knows the temp file is its own)."""
    tmp = root / f".{layout.VIEW}.{tag}.tmp"
    image = _image(manifest, shards)  # built in memory: see integrity.write_new_file for why
    try:
        write_new_file(tmp, image)
        os.replace(tmp, root / layout.VIEW)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _image(manifest: dict[str, Any], shards: Sequence[Shard]) -> bytes:
    total = sum(s.n for s in shards)
    offsets = np.concatenate([[0], np.cumsum([s.n for s in shards])]).astype(int)
    rel = [f"{layout.SHARD_DIR}/{s.path.name}" for s in shards]
    with in_memory_file() as f:
        f.attrs["format"] = layout.FORMAT
        f.attrs["generation"] = manifest["generation"]
        f.attrs["records"] = total
        f.attrs["about"] = "one table over shards/*.h5; see dm_hpc/data/layout.py"
        g = f.create_group("records")

        def virtual(name: str, dtype: Any, shape_tail: tuple[int, ...], fill: Any,
                    members: list[int], column: str | None = None) -> h5py.Dataset:
            lay = h5py.VirtualLayout(shape=(total, *shape_tail), dtype=dtype)
            for i in members:
                n = shards[i].n
                if column is None:
                    src = h5py.VirtualSource(rel[i], f"records/{name}", shape=(n, *shape_tail), dtype=dtype)
                else:  # one column of a shard's n x k matrix
                    names = shards[i].columns(name.split("/")[0])
                    src = h5py.VirtualSource(rel[i], f"records/{name.split('/')[0]}",
                                             shape=(n, len(names)), dtype=dtype)[:, names.index(column)]
                lay[offsets[i]:offsets[i] + n] = src
            return g.create_virtual_dataset(name, lay, fillvalue=fill)

        everyone = list(range(len(shards)))
        for name, dtype in layout.FIXED_COLUMNS.items():
            virtual(name, SOURCE_ENUM if name == "source" else dtype, (), None, everyone)
        virtual("element_mask", np.uint64, (2,), None, everyone)
        for group, fill in layout.SPARSE_GROUPS.items():
            g.create_group(group)
            names = sorted({c for s in shards for c in s.columns(group)})
            for col in names:
                members = [i for i, s in enumerate(shards) if col in s.columns(group)]
                ds = virtual(f"{group}/{col}", "f8", (), fill, members, column=col)
                if group in ("properties", "uncertainty"):
                    ds.attrs["unit"] = shards[members[0]].unit(group, col)
        links = f.create_group("shards")
        for path, shard in zip(rel, shards):
            links[shard.path.stem] = h5py.ExternalLink(path, "/")
        f.flush()
        return f.id.get_file_image()
