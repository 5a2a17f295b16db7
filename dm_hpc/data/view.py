"""``store.h5``: the whole store as one table of HDF5 virtual datasets, for readers without dm-hpc.

Rebuilt by the writer on close (and by ``dm-hpc store check --repair`` or ``store recover``);
written to a temp file and renamed, so a reader sees the old or the new view, never half of one.
``check_view`` reads it as a reader would and compares every column with the shards.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dm_hpc.data import layout
from dm_hpc.data.integrity import active_writer, write_new_file
from dm_hpc.data.shards import SOURCE_ENUM, Shard, in_memory_file, text_attr


_ATTRS = {"format": layout.FORMAT, "about": "one table over shards/*.h5; see dm_hpc/data/layout.py"}


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
        f.attrs.update(_ATTRS)
        f.attrs["generation"] = manifest["generation"]
        f.attrs["records"] = total
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


def check_view(root: Path, manifest: dict[str, Any], shards: Sequence[Shard]) -> tuple[list[str], str | None]:
    """(what is wrong with ``root/store.h5``, a note when it is only behind the store). Empty and
    None: it reads exactly what ``shards`` hold. Its bytes are not reproducible (HDF5 stamps
    them), so it is read column by column. A view that is missing or of an older generation is
    behind, not damaged: a writer that died before its close never rebuilt it."""
    fix = "`dm-hpc store check --repair` rebuilds it from the shards"
    path = root / layout.VIEW
    if not path.is_file():
        writer = active_writer(root)
        if writer is not None:  # not a dead writer: a live one writes the view when it closes
            return [], f"{layout.VIEW} is written when the store's writer closes it (open for writing by {writer})"
        return [], f"{layout.VIEW} is missing (a writer died before its close?); {fix}"
    try:
        with h5py.File(path, "r") as f:
            total = sum(s.n for s in shards)
            made = (f.attrs.get("generation"), f.attrs.get("records"))
            if made[0] is not None and made[0] < manifest["generation"]:
                return [], (f"{layout.VIEW} is behind the store (generation {made[0]} with {made[1]} records, the "
                            f"store is at {manifest['generation']} with {total}); {fix}")
            return [f"{layout.VIEW}: {p}; {fix}" for p in _view_differences(f, manifest, shards)], None
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        return [f"{layout.VIEW}: unreadable ({type(exc).__name__}: {str(exc)[:160]}); {fix}"], None


def _view_differences(f: h5py.File, manifest: dict[str, Any], shards: Sequence[Shard]) -> list[str]:
    total = sum(s.n for s in shards)
    if f.attrs.get("generation") != manifest["generation"] or f.attrs.get("records") != total:
        return [f"made for generation {f.attrs.get('generation')} with {f.attrs.get('records')} records, the "
                f"store is at generation {manifest['generation']} with {total}"]
    out = [f"attribute {k} is {text_attr(f.attrs.get(k, ''))!r}, not {v!r}" for k, v in _ATTRS.items()
           if text_attr(f.attrs.get(k, "")) != v]
    g = f["records"]
    for name in [*layout.FIXED_COLUMNS, "element_mask"]:
        parts = [s.element_mask if name == "element_mask" else s.fixed[name] for s in shards]
        if parts and not np.array_equal(g[name][()], np.concatenate(parts)):
            out.append(f"column {name} differs from the shards")
    for group in layout.SPARSE_GROUPS:
        names = sorted({c for s in shards for c in s.columns(group)})
        if sorted(g[group]) != names:
            out.append(f"{group} columns {sorted(g[group])} differ from the shards' {names}")
            continue
        for col in names:
            want = np.concatenate([s.column(group, col) for s in shards])
            if not np.array_equal(g[group][col][()], want, equal_nan=True):
                out.append(f"column {group}/{col} differs from the shards")
    linked = sorted(f["shards"]) if "shards" in f else []
    if linked != sorted(s.path.stem for s in shards):
        out.append(f"links shards {linked}, the manifest {sorted(s.path.stem for s in shards)}")
    return out
