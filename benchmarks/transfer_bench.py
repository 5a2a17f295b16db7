"""Transfer benchmark (issue 22): does related data in the store shorten a new campaign, and does an
unrelated source leave it no worse than cold?

Usage: python benchmarks/transfer_bench.py [--seeds 10] [--budget 30] [--tasks a,b] [--rows cold,reference,transfer,baybe]
       python benchmarks/transfer_bench.py --compare      # the table, with paired intervals over seeds

Tasks (each a target pool and source tables, written as CSVs under ``out/transfer/<task>/`` (not kept in git) so that
``dm-hpc bench pool --data target.csv --source source.csv`` runs the same pair; objective ``y`` is to
be maximised; columns matched by name):

- ``hartmann3-shifted``: target Hartmann-3 on 300 uniform points; source 400 points of the same
  function with its optimum shifted by 0.08 per input, scaled by 1.5 and offset (another lab, another
  calibration), 5 % noise each;
- ``oer-la``: ``oer_plate_3496.csv`` split by the elements present: target = plates with La and without
  Ce; source = plates without La (they share Ni, Fe, Co, Mn; Ce only in the source, La only in the
  target: an input a table lacks is 0 there); overpotential minimised;
- ``bandgap``: computed band gaps (``theory_data`` rows of ``bandgap_dft_vs_expt.csv``) as the source
  for the measured ones; inputs the eight composition descriptors of ``dm_hpc.learn.features``;
- ``unrelated``: the Hartmann-3 target with a Levy-3 source (other optimum, other shape): the guard
  must keep transfer within noise of cold.

Rows: ``cold`` (the engine's default strategy, target data only), ``reference`` (stock BoTorch, GP +
LogEI, ``../shared/tools/reference_bo.py``), ``transfer`` (the default strategy with the sources,
``dm_hpc.learn.transfer``), ``baybe`` (BayBE's transfer learning: a ``TaskParameter`` whose only active
value is the target, the sources added as measurements of their tasks; run by
``benchmarks/baybe_transfer.py`` in the separate environment of ``benchmarks/baybe_env.sh``). Seed s
draws the same two initial target points for every row (``numpy.random.default_rng(s)``).

Metrics: share of the target's top 5 % found at the budget, and experiments to reach 50 % of it
(first i where the seed-mean curve reaches 0.5; "-" when not within the budget). Ratios
transfer/cold and transfer/BayBE of the top share found at the budget, and the 90 % interval of
their difference from resampling seeds, paired (one resample applies to both rows).

Timings printed by these runs were taken on a shared 2-core machine loaded by five other sessions.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pool_bench import DATA, reference_module  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("hartmann3-shifted", "oer-la", "bandgap", "unrelated")
ROWS = ("cold", "reference", "transfer", "baybe")
TABLES = ROOT / "out" / "transfer"  # the materialised target and source CSVs (rebuilt on every run)
BAYBE_PYTHON = Path(__file__).resolve().parent / "baybe-env" / "bin" / "python"
NOISE = 0.05


def _hartmann3(X: np.ndarray) -> np.ndarray:
    import torch
    from botorch.test_functions.synthetic import Hartmann

    return Hartmann(dim=3, negate=True)(torch.tensor(X)).numpy()


def _levy3(X: np.ndarray) -> np.ndarray:
    import torch
    from botorch.test_functions.synthetic import Levy

    f = Levy(dim=3, negate=True)
    lo, hi = f.bounds[0].numpy(), f.bounds[1].numpy()
    return f(torch.tensor(lo + X * (hi - lo))).numpy()


def _noisy(y: np.ndarray, rng) -> np.ndarray:
    return y + NOISE * y.std() * rng.standard_normal(len(y))


def materialise(task: str, out: Path) -> tuple[Path, list[Path]]:
    """Write ``out/<task>/target.csv`` and its sources; returns their paths."""
    d = out / task
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(map(ord, task)))
    cols = ["x0", "x1", "x2"]
    if task in ("hartmann3-shifted", "unrelated"):
        X = np.random.default_rng(7).random((300, 3))  # one target pool for both tasks
        target = pd.DataFrame(X, columns=cols).assign(y=_noisy(_hartmann3(X), np.random.default_rng(8)))
        S = rng.random((400, 3))
        if task == "hartmann3-shifted":
            ys = 1.5 * _hartmann3(np.clip(S - 0.08, 0, 1)) + 2.0
        else:
            ys = _levy3(S)
        sources = {"source": pd.DataFrame(S, columns=cols).assign(y=_noisy(ys, rng))}
    elif task == "oer-la":
        df = pd.read_csv(DATA / "oer_plate_3496.csv")
        df = df.groupby([c for c in df.columns if c != "overpotential"], as_index=False)["overpotential"].mean()
        df["y"] = -df.pop("overpotential")
        target = df[(df.la_load > 0) & (df.ce_load == 0)].drop(columns="ce_load")
        sources = {"no-la": df[df.la_load == 0].drop(columns="la_load")}
    elif task == "bandgap":
        from dm_hpc.bench.modes import _composition_features
        from dm_hpc.learn.features import DESCRIPTOR_NAMES

        df = pd.read_csv(DATA / "bandgap_dft_vs_expt.csv")

        def table(rows):
            g = rows.groupby("composition", as_index=False)["bandgap"].mean()
            t = pd.DataFrame(_composition_features(g["composition"].astype(str).tolist()), columns=list(DESCRIPTOR_NAMES))
            return t.assign(y=g["bandgap"].to_numpy())

        target = table(df[df.expt_data == 1])
        sources = {"computed": table(df[df.theory_data == 1])}
    else:
        raise SystemExit(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    tpath = d / "target.csv"
    target.to_csv(tpath, index=False)
    spaths = []
    for name, s in sources.items():
        spaths.append(d / f"{name}.csv")
        s.to_csv(spaths[-1], index=False)
    return tpath, spaths


def run_row(task: str, row: str, seeds: int, budget: int, out: Path) -> dict:
    """``seeds x budget`` found shares of one row on one task; saved to ``out/<task>-<row>.json``."""
    from dm_hpc.bench.pool import load_pool, load_sources, run_pool, top_set
    from dm_hpc.bench.strategies import Strategy
    from dm_hpc.learn.transfer import on_columns

    tpath, spaths = materialise(task, TABLES)
    inputs = [c for c in pd.read_csv(tpath, nrows=0).columns if c != "y"]
    t0 = time.time()
    extra: dict = {}
    if row == "reference":
        ref = reference_module()
        X, y, top = ref.pool(str(tpath), inputs, "y", "max")
        runs = [ref.campaign(X, y, top, "gp-ei", k, budget) for k in range(seeds)]
        found = np.array([r[0] for r in runs])
        n = len(y)
    elif row == "baybe":
        if not BAYBE_PYTHON.is_file():
            raise SystemExit(f"{BAYBE_PYTHON} not found: run bash benchmarks/baybe_env.sh first")
        job = out / f"{task}-baybe-job.json"
        job.write_text(json.dumps({"target": str(tpath), "sources": [str(p) for p in spaths], "seeds": seeds, "budget": budget,
                                   "out": str(out / f"{task}-baybe-raw.json")}))
        done = subprocess.run([str(BAYBE_PYTHON), str(Path(__file__).with_name("baybe_transfer.py")), str(job)])
        if done.returncode and not (out / f"{task}-baybe-raw.json").is_file():
            raise SystemExit(f"BayBE run failed ({done.returncode}) before its first seed")
        raw = json.loads((out / f"{task}-baybe-raw.json").read_text())
        found, n, extra = np.array(raw["found"]), raw["n_pool"], {"baybe_version": raw["baybe_version"]}
    else:
        pool = load_pool(tpath, inputs, ["y"])
        y = pool["y"].to_numpy(float)
        columns, sources = load_sources(spaths, inputs, "y", "max") if row == "transfer" else (inputs, [])
        X = on_columns(pool, columns)
        top = top_set(y)
        made: list = []

        def make(Xt, seed):
            made.append(Strategy("default", Xt, seed, sources=sources))
            return made[-1]

        def save(done: np.ndarray) -> dict:  # after every seed: a run cut short keeps its finished seeds
            extra = {}
            if row == "transfer":
                from dm_hpc.bench.pool import transfer_summary

                extra = transfer_summary(columns, sources, [m.history for m in made[: len(done)]])
            found = np.cumsum(np.isin(done, top), axis=1) / len(top)
            r = {"task": task, "row": row, "seeds": len(done), "budget": budget, "n_pool": int(len(y)),
                 "found": found.tolist(), "seconds": time.time() - t0, **extra}
            (out / f"{task}-{row}.json").write_text(json.dumps(r))
            return r

        run_pool(X, y, make, budget, seeds, on_seed=save)
        return json.loads((out / f"{task}-{row}.json").read_text())
    r = {"task": task, "row": row, "seeds": seeds, "budget": budget, "n_pool": int(n), "found": found.tolist(),
         "seconds": time.time() - t0, **extra}
    (out / f"{task}-{row}.json").write_text(json.dumps(r))
    return r


def experiments_to(found: np.ndarray, level: float = 0.5) -> int | None:
    """First evaluation count (1-based) at which the seed-mean curve reaches ``level``; None if never."""
    hit = np.nonzero(found.mean(0) >= level - 1e-12)[0]
    return int(hit[0]) + 1 if len(hit) else None


def paired_ratio(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float | None, float, float]:
    """Top share at the budget, a / b and a - b: the ratio (None when b found nothing) and the 90 %
    interval of the difference over paired seed resamples (one resample applies to both rows)."""
    rng = np.random.default_rng(seed)
    fa, fb = a[:, -1], b[:, -1]
    point = float(fa.mean() / fb.mean()) if fb.mean() > 0 else None
    idx = rng.integers(0, len(fa), (resamples, len(fa)))
    lo, hi = np.quantile(fa[idx].mean(1) - fb[idx].mean(1), [0.05, 0.95])
    return point, float(lo), float(hi)


def _runs(out: Path) -> dict[str, dict[str, dict]]:
    """task -> row -> saved run; the ``unrelated`` task's target is ``hartmann3-shifted``'s pool, so
    its cold and reference rows are that task's when it has none of its own."""
    runs: dict[str, dict[str, dict]] = {}
    for p in sorted(out.glob("*.json")):
        r = json.loads(p.read_text())
        if "row" in r:
            runs.setdefault(r["task"], {})[r["row"]] = r
    for row in ("cold", "reference"):
        if row in runs.get("hartmann3-shifted", {}) and "unrelated" in runs:
            runs["unrelated"].setdefault(row, runs["hartmann3-shifted"][row])
    return runs


def compare(out: Path) -> str:
    """Markdown tables; every row of a task is cut to the seeds and budget that all its rows ran
    (seed s of a longer run is the same campaign as seed s of a shorter one, up to the shorter budget)."""
    f = lambda v: "-" if v is None else str(v)  # noqa: E731
    lines = ["| task | N | seeds | budget | row | top share at budget | experiments to 50 % | s/step |", "|---|---|---|---|---|---|---|---|"]
    ratios = ["| task | transfer / cold | difference, 90 % interval | transfer / BayBE | difference, 90 % interval | final source weight | model kind (share of steps) |",
              "|---|---|---|---|---|---|---|"]
    for task, rows in _runs(out).items():
        k = min(len(r["found"]) for r in rows.values())
        b = min(len(r["found"][0]) for r in rows.values())
        cut = {row: np.array(r["found"])[:k, :b] for row, r in rows.items()}
        for row in ROWS:
            if row not in rows:
                continue
            r, fd = rows[row], cut[row]
            steps = len(r["found"]) * (len(r["found"][0]) - 2)
            lines.append(f"| {task} | {r['n_pool']} | {k} | {b} | {row}{' ' + r['baybe_version'] if 'baybe_version' in r else ''} | "
                         f"{fd[:, -1].mean():.2f} | {f(experiments_to(fd))} | {r['seconds'] / max(steps, 1):.1f} |")
        if "transfer" in rows:
            cells = []
            for other in ("cold", "baybe"):
                if other in rows:
                    q, lo, hi = paired_ratio(cut["transfer"], cut[other])
                    cells += ["- (0 found)" if q is None else f"{q:.2f}", f"{lo:+.2f} to {hi:+.2f}"]
                else:
                    cells += ["-", "-"]
            w = ", ".join(f"{n}: {v:.2f}" for n, v in rows["transfer"].get("final_weight", {}).items())
            ks = ", ".join(f"{n} {v:.0%}" for n, v in rows["transfer"].get("kind_share", {}).items())
            ratios.append(f"| {task} | " + " | ".join(cells) + f" | {w} | {ks} |")
    return "\n".join(lines + ["", *ratios, "", "Timings (s/step, wall): a shared 2-core machine loaded by five other sessions."])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "transfer"))
    ap.add_argument("--compare", action="store_true")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.compare:
        print(compare(out))
        return
    for task in a.tasks.split(","):
        for row in a.rows.split(","):
            r = run_row(task, row, a.seeds, a.budget, out)
            fd = np.array(r["found"])
            print(f"{task} {row}: top share at budget {fd[:, -1].mean():.2f}, experiments to 50 % {experiments_to(fd)}, "
                  f"{r['seconds']:.0f} s (shared, loaded 2-core machine)", flush=True)


if __name__ == "__main__":
    main()
