"""Start the ranks of one `dm-hpc` job as torchrun would (its variables, a free port), and print as
JSON what each did: ``[[exit status, stdout, stderr], ...]``. A rank that ends by Python's
finalisation rather than ``exit_rank`` says ``FINALISED`` last on its stdout. A script as well, so
that a test can start a job in a mount namespace of its own (``test_retraining_admin._in_read_only``).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FINALISED = "interpreter finalised"
_MARKED = (f"import atexit, runpy, sys; atexit.register(print, {FINALISED!r}, flush=True); "
           "sys.argv = ['dm-hpc', *sys.argv[1:]]; runpy.run_module('dm_hpc', run_name='__main__')")


def run(args: list[str], ranks: int = 2) -> list[tuple[int, str, str]]:
    """``dm-hpc ARGS`` on ``ranks`` ranks: each one's exit status, stdout and stderr."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-c", _MARKED, *args], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RANK": str(r),
                                   "WORLD_SIZE": str(ranks), "LOCAL_RANK": str(r), "MASTER_ADDR": "127.0.0.1",
                                   "MASTER_PORT": str(port), "COLUMNS": "300"})
             for r in range(ranks)]
    outs = [p.communicate(timeout=600) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:])))
