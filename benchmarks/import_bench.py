"""Sheet import benchmark (issue 21): `dm-hpc store import` of a standard-template sheet,
every check included, beside the store-only figure for the same records.

The sheet: N rows (default 100,000), five elements each (of ten), two measured properties
(hardness, density) with an uncertainty, a sample id and a method: the plan's standard
template as a lab or a public data set fills it.

Three figures, side by side in one run:
- store only: the same records built beforehand (pydantic-validated), then ``Store.ingest``;
- import in process: reading, column checks (numbers, units, finite, physical and per-class
  ranges, composition sums), records built in bulk, resends, the store's write and fsync;
- ``python -m dm_hpc store import`` as a user runs it: a new process, imports included, with
  its peak resident memory (``getrusage`` of the child).

Targets (issue 21, on a quiet machine): >= 25,000 records/s and <= 500 MB peak memory for the
import. Timings from the shared build machine are loaded by other users: read them as a lower
bound; the CPU time is printed beside the wall time.

Usage: ``python benchmarks/import_bench.py [-n 100000]``
"""
from __future__ import annotations

import argparse
import csv
import resource
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000)
    args = ap.parse_args()
    from dm_hpc.data import Store
    from dm_hpc.data.resend import resolve_resends
    from dm_hpc.data.sheets import SheetDefaults, read_sheet_contents

    tmp = Path(tempfile.mkdtemp(prefix="dm-import-bench-"))
    try:
        sheet = write_sheet(tmp / "sheet.csv", args.n)
        print(f"sheet: {args.n:,} rows, {sheet.stat().st_size / 2**20:.1f} MiB CSV (five elements, two properties)")
        print("timings on the shared 2-core build machine, loaded by other users: a lower bound")

        t0, c0 = time.perf_counter(), time.process_time()
        contents = read_sheet_contents(sheet, SheetDefaults())
        read_s, read_c = time.perf_counter() - t0, time.process_time() - c0
        records = contents.records
        assert len(records) == args.n, (len(records), contents.warnings[:3])

        store = Store.open(tmp / "only.store", "a")
        t0, c0 = time.perf_counter(), time.process_time()
        store.ingest(records)
        store.close()
        store_s, store_c = time.perf_counter() - t0, time.process_time() - c0
        print(f"store only (records built beforehand): {args.n / store_s:,.0f} records/s "
              f"({store_s:.2f} s wall, {store_c:.2f} s CPU)")

        t0, c0 = time.perf_counter(), time.process_time()
        contents = read_sheet_contents(sheet, SheetDefaults())
        with Store.open(tmp / "import.store", "a") as s:
            s.ingest(resolve_resends(s, contents.records, contents.lines, str(sheet)))
        imp_s, imp_c = time.perf_counter() - t0, time.process_time() - c0
        print(f"import in process (read + every check + build + store): {args.n / imp_s:,.0f} records/s "
              f"({imp_s:.2f} s wall, {imp_c:.2f} s CPU; of which reading and checking {read_s:.2f} s wall, "
              f"{read_c:.2f} s CPU on the first pass)")

        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "dm_hpc", "store", "import", str(sheet),
                              "--store", str(tmp / "cli.store")], capture_output=True, text=True)
        cli_s = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB -> MB (Linux)
        assert res.returncode == 0, res.stderr
        print(f"`python -m dm_hpc store import` (new process, imports included): {args.n / cli_s:,.0f} records/s "
              f"({cli_s:.2f} s wall), peak memory {peak:,.0f} MB; it said: {res.stdout.strip()}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
