"""Checks that see everything (issue 18 §7): ``store check`` reads the ``store.h5`` view as a
reader would and rebuilds it from the shards (``--repair``, ``recover``); a manifest that lost
its ``sha256`` while its shard carries checksums is damage, not an old version."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from dm_hpc.data import Store

from .test_store_integrity import dm, fill


def _damage_view(view, how):
    data = bytearray(view.read_bytes())
    if how == "missing":
        view.unlink()
    elif how == "truncated":
        view.write_bytes(bytes(data[: len(data) // 3]))
    elif how == "stale":  # a view of an older generation (e.g. a restored copy)
        with h5py.File(view, "r+") as f:
            f.attrs["generation"] = int(f.attrs["generation"]) - 1
    elif how == "wrong values":  # readable, but a column no longer maps the shards' values
        with h5py.File(view, "r+") as f:
            del f["records/record_id"]
            f["records/record_id"] = np.array([b"x" * 8] * int(f.attrs["records"]))
    else:  # garbled bytes in the HDF5 metadata
        for pos in range(len(data) // 4, len(data), 997):
            data[pos] ^= 0xFF
        view.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["missing", "truncated", "stale", "wrong values", "garbled"])
def test_store_check_sees_a_damaged_view_and_repair_rebuilds_it(tmp_path, how):
    store = tmp_path / "store"
    fill(store, batches=3, size=4)
    assert dm("store", "check", "--store", str(store)).returncode == 0
    _damage_view(store / "store.h5", how)
    proc = dm("store", "check", "--store", str(store))
    assert "Traceback" not in proc.stderr and "--repair" in proc.stderr, proc.stderr
    if how in ("missing", "stale"):  # behind the store (a writer died before its close): a note
        assert proc.returncode == 0 and "note: store.h5 is" in proc.stderr, proc.stderr
    else:
        assert proc.returncode == 1 and "store.h5:" in proc.stderr, proc.stderr
    fixed = dm("store", "check", "--repair", "--store", str(store))
    assert fixed.returncode == 0 and "rebuilt" in fixed.stdout and "store.h5" not in fixed.stderr, fixed.stderr
    with Store.open(store) as s, h5py.File(store / "store.h5", "r") as f:
        assert sorted(f["records/record_id"][()]) == sorted(s.to_dataframe()["record_id"].str.encode("utf-8"))


def test_store_recover_rebuilds_a_damaged_view_too(tmp_path):
    store = tmp_path / "store"
    fill(store, batches=2, size=3)
    _damage_view(store / "store.h5", "truncated")
    assert dm("store", "recover", "--store", str(store)).returncode == 0
    assert dm("store", "check", "--store", str(store)).returncode == 0


def test_a_manifest_that_lost_its_sha256_field_is_damage(tmp_path):
    store = tmp_path / "store"
    fill(store, batches=2, size=3)
    manifest = store / "manifest.json"
    data = json.loads(manifest.read_text())
    data["shards"][0]["sha_256"] = data["shards"][0].pop("sha256")
    manifest.write_text(json.dumps(data))
    proc = dm("store", "check", "--store", str(store))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "has no sha256 although the shard carries checksums" in proc.stderr and data["shards"][0]["name"] in proc.stderr
    assert dm("store", "recover", "--store", str(store)).returncode == 0
    assert dm("store", "check", "--store", str(store)).returncode == 0
