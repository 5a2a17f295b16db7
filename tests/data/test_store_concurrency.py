"""Readers while a writer ingests and merges (issue 11): every read sees one consistent snapshot.

The writer (a child process) ingests batches of 3 records, so it merges shards every few
batches and, with no grace at all, deletes merged-away shards all the time. Readers in this
process and ``dm-hpc store query`` subprocesses read throughout. ``DM_HPC_RW_SECONDS`` sets the
duration (default 10 s; the figure in docs/measurements/store.md is from a 60 s run).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from dm_hpc.data import Store
from tests.conftest import REPO

SECONDS = float(os.environ.get("DM_HPC_RW_SECONDS", "10"))
SIZE = 3


def test_readers_never_fail_while_a_writer_merges(tmp_path):
    path = tmp_path / "s"
    script = Path(__file__).with_name("crash_writer.py")
    writer = subprocess.Popen([sys.executable, str(script), str(path), "0", str(SIZE), "0"],
                              stdout=subprocess.PIPE, text=True)
    errors: list[str] = []
    cli = {"reads": 0, "failures": 0}
    stop = threading.Event()

    def cli_reader() -> None:  # `dm-hpc store query` as a user runs it, back to back
        while not stop.is_set():
            res = subprocess.run([sys.executable, "-m", "dm_hpc", "store", "query", "--store", str(path),
                                  "--out", str(tmp_path / "q.csv")], capture_output=True, text=True, cwd=REPO)
            cli["reads"] += 1
            if res.returncode != 0:
                cli["failures"] += 1
                errors.append(res.stderr[-300:])

    thread = threading.Thread(target=cli_reader)
    try:
        assert writer.stdout.readline().startswith("ACK")
        thread.start()
        reads = failures = last = 0
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            reads += 1
            try:
                with Store.open(path) as store:
                    df = store.to_dataframe()
                    n = len(store)
                ids = Counter(df["task_id"])
                batches = Counter(t.split("-")[0] for t in ids)
                # one snapshot: as many rows as its manifest says, whole batches, nothing twice, never fewer
                assert len(df) == n >= last, (len(df), n, last)
                assert all(c == 1 for c in ids.values()) and all(c == SIZE for c in batches.values())
                last = n
            except Exception as exc:  # noqa: BLE001 - every failed read is counted and shown
                failures += 1
                errors.append(repr(exc))
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        writer.send_signal(signal.SIGTERM)
        writer.communicate()
    cli_reads, failures = cli["reads"], failures + cli["failures"]
    with Store.open(path) as store:
        info, report = store.info(), store.check()
    print(f"\nconcurrent reads for {SECONDS:.0f} s: {reads} API reads + {cli_reads} CLI queries, {failures} failed; "
          f"writer stored {info['records']} records in {info['records'] // SIZE} batches, generation {info['generation']}")
    assert failures == 0, errors[:5]
    assert report.ok, report.problems
    assert reads > 10 and info["generation"] > 20
