"""Sheet import benchmark (issue 21): `dm-hpc store import` of a standard-template sheet,
every check included, beside the store-only figure for the same records.

The sheet: N rows (default 100,000), five elements each (of ten), two measured properties
(hardness, density) with an uncertainty, a sample id and a method: the plan's standard
template as a lab or a public data set fills it.

Figures, side by side in one run (wall and CPU seconds; records/s on both):
- store only: the records built beforehand (by the record path below), then ``Store.ingest``;
- record path in process: ``read_sheet_contents`` (every check, a ``MaterialRecord`` per row)
  + resends + ``Store.ingest`` (what ``dm-hpc ingest`` and the Python API run);
- columnar path in process: ``read_sheet_columns`` (the same checks, records written as store
  columns) + resends + ``Store.ingest_columns`` (what ``store import`` runs); both stores are
  compared by record id;
- ``python -m dm_hpc store import`` as a user runs it: a new process, imports included, with
  its CPU time and peak resident memory (``getrusage`` of the child).

Targets (issue 21, on a quiet machine): >= 25,000 records/s and <= 500 MB peak memory for the
import. The shared 2-core build machine is loaded by other users (the load average is printed
before and after): read wall-clock figures as a lower bound, CPU figures as what the work costs.

Usage: ``python benchmarks/import_bench.py [-n 100000]``
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ELEMENTS = ["Al", "Co", "Cr", "Cu", "Fe", "Mn", "Ni", "Ti", "V", "Mo"]
HEADER = (["sample_id", "method"] + [f"composition:{el} [at_frac]" for el in ELEMENTS]
          + ["property:hardness [GPa]", "uncertainty:hardness [GPa]", "property:density [g/cm^3]"])


def write_sheet(path: Path, n: int, seed: int = 0) -> Path:
    """A template CSV of ``n`` rows (five of the ten elements per row, the others blank)."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(n):
            picks = set(rng.choice(len(ELEMENTS), size=5, replace=False).tolist())
            x = iter(np.round(rng.dirichlet(np.ones(5)), 6).tolist())
            comp = [next(x) if j in picks else "" for j in range(len(ELEMENTS))]
            fix = max(j for j in picks)  # rounding: the last element takes the remainder
            comp[fix] = round(1 - sum(v for j, v in enumerate(comp) if v != "" and j != fix), 6)
            h = round(float(rng.uniform(1, 8)), 3)
            w.writerow([f"B{i:06d}", "lab-a", *comp, h, round(h * 0.03, 4), round(float(rng.uniform(5, 9)), 3)])
    return path


#: Runs argv[1:] and prints its CPU seconds and peak resident memory (kB) on stderr's last line.
_LAUNCHER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
             "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
             "print(u.ru_utime + u.ru_stime, u.ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _line(label: str, n: int, start: tuple[float, float]) -> str:
    wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    return f"{label}: {n / wall:,.0f} records/s wall ({wall:.2f} s), {n / cpu:,.0f} records/s CPU ({cpu:.2f} s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000)
    args = ap.parse_args()
    from dm_hpc.data import Store
    from dm_hpc.data.resend import resolve_resends, resolve_resent_columns
    from dm_hpc.data.sheets import SheetDefaults, read_sheet_columns, read_sheet_contents

    tmp = Path(tempfile.mkdtemp(prefix="dm-import-bench-"))
    try:
        sheet = write_sheet(tmp / "sheet.csv", args.n)
        print(f"sheet: {args.n:,} rows, {sheet.stat().st_size / 2**20:.1f} MiB CSV (five elements, two properties)")
        print("timings on the shared 2-core build machine, loaded by other users; load average (1, 5, 15 min) "
              f"before: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")

        start = _clock()
        contents = read_sheet_contents(sheet, SheetDefaults())
        assert len(contents.records) == args.n, (len(contents.records), contents.warnings[:3])
        with Store.open(tmp / "records.store", "a") as s:
            records = resolve_resends(s, contents.records, contents.lines, str(sheet))
            only = _clock()
            s.ingest(records)
            store_only = _line("store only (records built beforehand, Store.ingest)", args.n, only)
        record_path = _line("record path in process (read_sheet_contents + resends + Store.ingest)", args.n, start)
        del contents, records

        start = _clock()
        columns = read_sheet_columns(sheet, SheetDefaults())
        with Store.open(tmp / "columns.store", "a") as s:
            s.ingest_columns(resolve_resent_columns(s, columns.columns, columns.lines, str(sheet)))
        print(store_only)
        print(record_path)
        print(_line("columnar path in process (read_sheet_columns + resends + Store.ingest_columns)", args.n, start))
        with Store.open(tmp / "records.store") as a, Store.open(tmp / "columns.store") as b:
            same = set(a.to_dataframe()["record_id"]) == set(b.to_dataframe()["record_id"])
        print(f"  the two stores hold the same record ids: {same}")
        del columns

        start = _clock()
        # started from a small launcher: a child forked from this (large) process would count this
        # process's pages in its own peak until it execs
        res = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "dm_hpc", "store", "import",
                              str(sheet), "--store", str(tmp / "cli.store")], capture_output=True, text=True)
        wall = time.perf_counter() - start[0]
        assert res.returncode == 0, res.stderr
        cpu, peak = (float(x) for x in res.stderr.strip().splitlines()[-1].split())
        print(f"`python -m dm_hpc store import` (new process, imports included): {args.n / wall:,.0f} records/s wall "
              f"({wall:.2f} s), {args.n / cpu:,.0f} records/s CPU ({cpu:.2f} s), peak memory "
              f"{peak / 1024:,.0f} MB; it said: {res.stdout.strip()}")
        print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
