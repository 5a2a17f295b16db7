"""Store benchmark: ingest 100,000 records in batches of 1,000, then reopen and query.

Prints records/s for ingest of validated records (as a campaign or a sheet import hands them
over: validation, unit conversion and the content-hash id happen when a record is built), the
end-to-end rate including that validation, and the time to reopen the store and run a
filtered query (wall and CPU time: on a shared machine the CPU time is the fairer comparison).
Targets on the 2-core build machine: >= 50,000 records/s, <= 1 s reopen + query.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from dm_hpc.data import MaterialRecord, Store

ELEMENTS = ["Al", "Co", "Cr", "Cu", "Fe", "Mn", "Ni", "Ti", "V", "Mo"]


def make_records(n: int, seed: int = 0) -> list[MaterialRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        picks = rng.choice(len(ELEMENTS), size=5, replace=False)
        x = rng.dirichlet(np.ones(5))
        comp = {ELEMENTS[j]: float(v) for j, v in zip(picks, x)}
        props = [
            {"name": "mixing_energy", "value": float(rng.normal(-0.1, 0.05))},
            {"name": "density", "value": float(rng.uniform(5, 9)), "uncertainty": 0.01},
            {"name": "bulk_modulus", "value": float(rng.uniform(100, 250))},
            {"name": "raw_material_cost", "value": float(rng.uniform(1, 30))},
            {"name": "yield_strength", "value": float(rng.uniform(200, 900))},
        ]
        source = "computed" if i % 4 else "experimental"
        out.append(MaterialRecord.model_validate({
            "composition": comp, "properties": props,
            "provenance": {"source": source, "method": "emt" if source == "computed" else "lab-a",
                           "campaign": "bench"},
        }))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dm-store-bench-"))
    try:
        t0 = time.perf_counter()
        records = make_records(args.n)
        build_s = time.perf_counter() - t0
        store = Store.open(tmp / "bench.store", mode="a")
        t0, cpu0 = time.perf_counter(), time.process_time()
        with Progress() as progress:
            task = progress.add_task("ingest", total=args.n)
            for i in range(0, args.n, args.batch):
                store.ingest(records[i:i + args.batch])
                progress.advance(task, args.batch)
        ingest_s, ingest_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        t0 = time.perf_counter()
        store.close()
        close_s = time.perf_counter() - t0
        t0, cpu0 = time.perf_counter(), time.process_time()
        reader = Store.open(tmp / "bench.store", mode="r")
        df = reader.to_dataframe(source="computed", elements=["Fe", "Ni"], property="density")
        hits = df[df["density"] < 7.0]
        query_s, query_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        t0 = time.perf_counter()
        again = store_again = Store.open(tmp / "bench.store", mode="a")
        dup = again.ingest(records[:args.batch])
        dup_s = time.perf_counter() - t0
        again.close()
        print(f"ingest: {args.n} records in {ingest_s:.2f} s = {args.n / ingest_s:,.0f} records/s "
              f"(batches of {args.batch}; {reader.info()['shards']} shards after merging); "
              f"CPU time {ingest_cpu:.2f} s (the wall time waits on fsync and on other users of the machine)")
        print(f"validation (units, composition, content-hash id) of the same records: {build_s:.2f} s; "
              f"end to end {args.n / (build_s + ingest_s):,.0f} records/s")
        print(f"writer close (table view store.h5 rebuilt): {close_s:.2f} s")
        print(f"reopen + filtered query (computed, contains Fe and Ni, has density): {query_s:.3f} s, "
              f"{len(df)} rows, {len(hits)} with density < 7 g/cm3; CPU time {query_cpu:.3f} s")
        print(f"re-ingest of a known batch of {args.batch}: {dup.new} new, {dup_s:.2f} s incl. reopen")
        del store_again
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
