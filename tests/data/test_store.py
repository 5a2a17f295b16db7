"""The HDF5 store: idempotent ingest, one writer, queries, check, readable without dm-hpc."""
from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from dm_hpc.data import MaterialRecord, Store, StoreCorruptError, StoreLockedError
from dm_hpc.data.shards import Shard, write_shard
from dm_hpc.data.store import MERGE_FANOUT


def make(i: int, source: str = "computed", method: str = "emt", elements=("Cu", "Ni")) -> MaterialRecord:
    x = (i % 97 + 1) / 100
    return MaterialRecord.model_validate({
        "composition": {elements[0]: x, elements[1]: 1 - x},
        "properties": [{"name": "mixing_energy", "value": -0.001 * i}, {"name": "density", "value": 8 + x}],
        "provenance": {"source": source, "method": method, "campaign": "c1", "task_id": f"t{i}"},
    })


def test_ingest_is_idempotent_and_survives_reopen(tmp_path):
    recs = [make(i) for i in range(50)]
    with Store.open(tmp_path / "s", "a") as store:
        first = store.ingest(recs)
        again = store.ingest(recs[:10] + recs[:10])
    assert (first.n, first.new) == (50, 50)
    assert (again.n, again.new) == (20, 0)
    with Store.open(tmp_path / "s", "a") as store:
        assert store.ingest(recs[40:] + [make(100)]).new == 1
        assert len(store) == 51
    reader = Store.open(tmp_path / "s")
    assert sorted(r.record_id for r in reader.records()) == sorted({r.record_id for r in recs} | {make(100).record_id})
    assert reader.get(recs[3].record_id) == recs[3]


def test_second_writer_gets_a_clear_error_readers_do_not(tmp_path):
    writer = Store.open(tmp_path / "s", "a")
    writer.ingest([make(1)])
    with pytest.raises(StoreLockedError, match=r"already open for writing by pid \d+"):
        Store.open(tmp_path / "s", "a")
    code = ("from dm_hpc.data import Store\n"
            f"s = Store.open({str(tmp_path / 's')!r}, 'r'); print(len(s))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    writer.ingest([make(2)])
    assert len(Store.open(tmp_path / "s")) == 2  # a new reader sees the new batch
    writer.close()
    Store.open(tmp_path / "s", "a").close()  # the lock is gone with the writer


def test_queries_by_source_method_campaign_elements_property_time(tmp_path):
    recs = [make(i) for i in range(10)] + [make(i, "experimental", "lab-x", ("Al", "Ni")) for i in range(5)]
    with Store.open(tmp_path / "s", "a") as store:
        store.ingest(recs)
    s = Store.open(tmp_path / "s")
    assert len(s.to_dataframe(source="experimental")) == 5
    assert len(s.to_dataframe(method="emt")) == 10
    assert len(s.to_dataframe(elements=["Al"])) == 5
    assert len(s.to_dataframe(elements=["Ni"])) == 15
    assert len(s.to_dataframe(elements=["Al", "Cu"])) == 0
    assert len(s.to_dataframe(property="density")) == 15
    assert len(s.to_dataframe(property="bulk_modulus")) == 0
    assert len(s.to_dataframe(campaign="c1", until=0)) == 0
    df = s.to_dataframe(source="computed")
    assert set(df["source"]) == {"computed"}
    assert {"x_Cu", "x_Ni", "mixing_energy", "density"} <= set(df.columns)
    np.testing.assert_allclose(df["x_Cu"] + df["x_Ni"], 1.0)
    with pytest.raises(TypeError, match="unknown filter"):
        s.to_dataframe(colour="red")


def test_many_small_batches_are_merged_and_order_kept(tmp_path):
    n = MERGE_FANOUT * 3 + 2
    with Store.open(tmp_path / "s", "a") as store:
        for i in range(n):
            store.ingest([make(i)])
        shards = store.info()["shards"]
    assert shards < n
    df = Store.open(tmp_path / "s").to_dataframe()
    assert list(df["task_id"]) == [f"t{i}" for i in range(n)]
    assert Store.open(tmp_path / "s").check().ok


def test_store_h5_is_one_table_for_plain_h5py(tmp_path):
    with Store.open(tmp_path / "s", "a") as store:
        store.ingest([make(i) for i in range(5)])
        store.ingest([make(i, "experimental", "lab-x", ("Al", "Ni")) for i in range(3)])
    with h5py.File(tmp_path / "s" / "store.h5", "r") as f:
        ids = f["records/record_id"][()]
        assert len(ids) == 8 and len(set(ids)) == 8
        al = f["records/composition/Al"][()]
        assert (al[:5] == 0).all() and (al[5:] > 0).all()  # filled where a shard has no Al
        assert f["records/properties/density"].attrs["unit"] == "g/cm^3"
        assert h5py.check_enum_dtype(f["records/source"].dtype) == {"computed": 0, "experimental": 1}
        # every shard is reachable by an external link too
        assert sum(f[f"shards/{name}/records"].attrs["n"] for name in f["shards"]) == 8


def test_check_finds_tampering_and_corrupt_manifest_is_named(tmp_path):
    with Store.open(tmp_path / "s", "a") as store:
        store.ingest([make(i) for i in range(4)])
    shard_path = next((tmp_path / "s" / "shards").glob("*.h5"))
    with h5py.File(shard_path, "r+") as f:  # change one stored value behind the store's back
        blob = f["records/json_bytes"][()].tobytes().replace(b'"value":-0.001', b'"value":-0.002', 1)
        del f["records/json_bytes"]
        f["records/json_bytes"] = np.frombuffer(blob, dtype=np.uint8)
    report = Store.open(tmp_path / "s").check()
    assert not report.ok and "does not match the SHA-256" in report.problems[0]
    assert any("unreadable" in p for p in report.problems)  # its checksums no longer add up either
    (tmp_path / "s" / "manifest.json").write_text("{not json")
    with pytest.raises(StoreCorruptError, match="manifest.json"):
        Store.open(tmp_path / "s")


def test_check_finds_a_record_rewritten_with_fresh_checksums(tmp_path):
    """A forger who rewrites a shard with valid checksums still cannot change a record's content."""
    with Store.open(tmp_path / "s", "a") as store:
        store.ingest([make(i) for i in range(4)])
    root = tmp_path / "s"
    path = next((root / "shards").glob("*.h5"))
    shard = Shard.open(path)
    rows, meta = shard.rows(), shard.meta
    shard.close()
    rows.json[0] = rows.json[0].replace(b'"value":-0.0', b'"value":-0.9', 1)
    path.unlink()
    digest = write_shard(path, rows, meta)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["shards"][0]["sha256"] = digest
    (root / "manifest.json").write_text(json.dumps(manifest))
    report = Store.open(root).check()
    assert [p for p in report.problems if "does not hash to its id" in p], report.problems


def test_invalid_record_in_batch_stores_nothing(tmp_path):
    good = make(1).model_dump(mode="json")
    bad = json.loads(json.dumps(good))
    bad["properties"][0]["name"] = "no_such_property"
    with Store.open(tmp_path / "s", "a") as store:
        with pytest.raises(ValueError, match="record 1"):
            store.ingest([good, bad])
        assert len(store) == 0
