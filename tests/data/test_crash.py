"""Crash safety: a writer killed with SIGKILL at random moments never loses or half-writes."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from dm_hpc.data import Store

from .crash_writer import BATCH

KILLS = 24


def test_sigkill_at_random_moments_keeps_acknowledged_batches_exactly_once(tmp_path):
    path = tmp_path / "store"
    rng = random.Random(7)
    acked: set[int] = set()
    next_batch = 0
    script = Path(__file__).with_name("crash_writer.py")
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, str(script), str(path), str(next_batch)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        # wait until it has acknowledged at least one batch, then kill at a random moment
        line = child.stdout.readline()
        if not line.startswith("ACK"):  # the writer died before its first batch: say why
            child.kill()
            raise AssertionError(f"writer gave {line!r} before any ACK:\n{child.communicate()[1]}")
        acked.add(int(line.split()[1]))
        time.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
        assert "Traceback" not in err, err  # killed, not failed
        acked.update(int(x.split()[1]) for x in out.splitlines() if x.startswith("ACK"))
        next_batch = max(acked) + 1

        store = Store.open(path, "r")
        report = store.check()
        assert report.ok, report.problems
        tasks = Counter(store.to_dataframe()["task_id"])
        batches = Counter(t.split("-")[0][1:] for t in tasks)
        assert all(n == 1 for n in tasks.values())  # nothing twice
        for k in acked:  # every acknowledged batch is there, whole
            assert batches[str(k)] == BATCH, (k, batches[str(k)])
        assert all(n == BATCH for n in batches.values())  # no half batch visible
    assert len(acked) >= KILLS
