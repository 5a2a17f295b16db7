"""Child process for the crash test: ingest numbered batches forever, acknowledging each.

Prints ``ACK <k>`` (flushed) after batch k is durable; the parent kills it with SIGKILL.
"""
from __future__ import annotations

import sys

from dm_hpc.data import MaterialRecord, Store

BATCH = 50


def batch(k: int) -> list[MaterialRecord]:
    return [
        MaterialRecord.model_validate({
            "composition": {"Cu": 0.5, "Ni": 0.5},
            "properties": [{"name": "energy_per_atom", "value": -(k * BATCH + i) / 7.0}],
            "provenance": {"source": "computed", "method": "emt", "task_id": f"b{k}-{i}"},
        })
        for i in range(BATCH)
    ]


def main(path: str, start: int) -> None:
    with Store.open(path, "a") as store:
        k = start
        while True:
            store.ingest(batch(k))
            print(f"ACK {k}", flush=True)
            k += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
