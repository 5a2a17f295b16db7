"""Child process for the crash and concurrency tests: ingest numbered batches forever.

``crash_writer.py PATH START [BATCH] [RETIRE_GRACE_S]``. Prints ``ACK <k>`` (flushed) after
batch k is durable; the parent kills it (SIGKILL in the crash test, SIGTERM otherwise).
Small batches make the writer merge shards often; a short grace makes it delete merged-away
shards soon after, which is when readers used to fail.
"""
from __future__ import annotations

import sys

from dm_hpc.data import MaterialRecord, Store
from dm_hpc.data import store as store_module

BATCH = 50


def batch(k: int, size: int = BATCH) -> list[MaterialRecord]:
    return [
        MaterialRecord.model_validate({
            "composition": {"Cu": 0.5, "Ni": 0.5},
            "properties": [{"name": "energy_per_atom", "value": -(k * size + i) / 7.0}],
            "provenance": {"source": "computed", "method": "emt", "task_id": f"b{k}-{i}"},
        })
        for i in range(size)
    ]


def main(path: str, start: int, size: int = BATCH) -> None:
    with Store.open(path, "a") as store:
        k = start
        while True:
            store.ingest(batch(k, size))
            print(f"ACK {k}", flush=True)
            k += 1


if __name__ == "__main__":
    if len(sys.argv) > 4:
        store_module.RETIRE_GRACE_S = float(sys.argv[4])
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else BATCH)
