"""Transfer benchmark (issue 22): does related data in the store shorten a new campaign, and does an
unrelated source leave it no worse than cold?

Usage: python benchmarks/transfer_bench.py [--seeds 10] [--budget 20] [--tasks a,b] [--rows cold,reference,transfer,baybe]
       python benchmarks/transfer_bench.py --compare      # the tables, with paired intervals over seeds, and best_so_far.png
       python benchmarks/transfer_bench.py --list         # each task's definition
       python benchmarks/transfer_bench.py --rows transfer --source-covariance off --out benchmarks/results/transfer/mean-only
                                                          # the prior model without its sources' covariance (the default before 2026-12-03)

Tasks (``TASKS``: one builder per task, whose docstring defines it; each writes a target pool and
source tables as CSVs under ``out/transfer/<task>/`` (not kept in git) so that ``dm-hpc bench pool
--data target.csv --source source.csv`` runs the same pair; objective ``y`` is to be maximised;
columns matched by name): ``hartmann3-shifted`` (shifted and scaled optimum), ``hartmann3-extra-dim``
(different active dimensions: the target has an input the source never varied), ``simplex-overlap``
(composition simplices sharing four of six components), ``oer-la`` and ``oer-ce`` (``oer_plate_3496.csv``
split into sub-tasks sharing four of six elements), ``bandgap`` (computed band gaps as the source for
measured ones), ``steel`` (yield strength of some alloys as the source for tensile strength of
others), ``unrelated`` (a Levy-3 source for the Hartmann-3 target: the guard must hold),
``shuffled`` (``hartmann3-shifted``'s source with its outcomes permuted: same inputs and values, no
relation).

Rows: ``cold`` (the engine's default strategy, target data only), ``reference`` (stock BoTorch, GP +
LogEI, ``../shared/tools/reference_bo.py``), ``transfer`` (the default strategy with the sources,
``dm_hpc.learn.transfer``), ``baybe`` (BayBE's transfer learning: a ``TaskParameter`` whose only active
value is the target, the sources added as measurements of their tasks; run by
``benchmarks/baybe_transfer.py`` in the separate environment of ``benchmarks/baybe_env.sh``). Seed s
draws the same two initial target points for every row (``numpy.random.default_rng(s)``).

Metrics: share of the target's top 5 % found at the budget, and experiments to reach 50 % of it
(first i where the seed-mean curve reaches 0.5; "-" when not within the budget). Ratios of transfer
to cold and to BayBE, with 90 % intervals over paired seed resamples as ``pool_bench --compare``
prints them (``paired_ratios``). The plot: seed-mean best-so-far against experiments per task.

Timings depend on the machine's load while the rows ran (the measurement notes give it per run).
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

from dm_hpc.bench.environment import environment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROWS = ("cold", "reference", "transfer", "baybe")
TABLES = ROOT / "out" / "transfer"  # the materialised target and source CSVs (rebuilt on every run)
BAYBE_PYTHON = Path(__file__).resolve().parent / "baybe-env" / "bin" / "python"
NOISE = 0.05


def _hartmann(X: np.ndarray) -> np.ndarray:
    """Hartmann-3 or -6 (by the columns of ``X``, ``n x 3`` or ``n x 6`` in the unit cube), maximised."""
    import torch
    from botorch.test_functions.synthetic import Hartmann

    return Hartmann(dim=X.shape[1], negate=True)(torch.tensor(X)).numpy()


def _levy3(X: np.ndarray) -> np.ndarray:
    import torch
    from botorch.test_functions.synthetic import Levy

    f = Levy(dim=3, negate=True)
    lo, hi = f.bounds[0].numpy(), f.bounds[1].numpy()
    return f(torch.tensor(lo + X * (hi - lo))).numpy()


def _noisy(y: np.ndarray, rng) -> np.ndarray:
    return y + NOISE * y.std() * rng.standard_normal(len(y))


def _frame(X: np.ndarray, y: np.ndarray, names: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(X, columns=names or [f"x{i}" for i in range(X.shape[1])]).assign(y=y)


def _hartmann3_target() -> pd.DataFrame:
    X = np.random.default_rng(7).random((300, 3))  # one target pool for hartmann3-shifted and unrelated
    return _frame(X, _noisy(_hartmann(X), np.random.default_rng(8)))


def _hartmann3_shifted(rng) -> tuple[pd.DataFrame, dict]:
    """Target Hartmann-3 on 300 uniform points; source 400 points of the same function with its
    optimum shifted by 0.08 per input, scaled by 1.5 and offset by 2 (another lab, another
    calibration); 5 % noise each."""
    S = rng.random((400, 3))
    return _hartmann3_target(), {"source": _frame(S, _noisy(1.5 * _hartmann(np.clip(S - 0.08, 0, 1)) + 2.0, rng))}


def _unrelated(rng) -> tuple[pd.DataFrame, dict]:
    """The ``hartmann3-shifted`` target with a Levy-3 source (other optimum, other shape): the guard
    must keep transfer within noise of cold."""
    S = rng.random((400, 3))
    return _hartmann3_target(), {"source": _frame(S, _noisy(_levy3(S), rng))}


def _shuffled(rng) -> tuple[pd.DataFrame, dict]:
    """The ``hartmann3-shifted`` target with that task's source, its outcomes permuted over its
    inputs: the same inputs and the same distribution of values as a related source, no relation at
    all (a harder test of the guard than ``unrelated``, whose values differ in distribution too)."""
    _, sources = _hartmann3_shifted(rng)
    src = sources["source"]
    return _hartmann3_target(), {"source": src.assign(y=rng.permutation(src["y"].to_numpy()))}


def _hartmann3_extra_dim(rng) -> tuple[pd.DataFrame, dict]:
    """Different active dimensions: the target has four inputs, Hartmann-3 of x0-x2 minus
    ``3 (x3 - 0.6)^2`` (a process variable the source never varied); the source table has only
    x0-x2 (so x3 is 0 there by the union rule), 400 points of Hartmann-3 with its optimum shifted by
    0.05 per input; 300 target points; 5 % noise each."""
    X = rng.random((300, 4))
    target = _frame(X, _noisy(_hartmann(X[:, :3]) - 3.0 * (X[:, 3] - 0.6) ** 2, rng))
    S = rng.random((400, 3))
    return target, {"source": _frame(S, _noisy(_hartmann(np.clip(S - 0.05, 0, 1)), rng))}


def _sparse_simplex(rng, n: int, active: list[int], dim: int) -> np.ndarray:
    """``n x dim`` compositions of 2-4 of the ``active`` components, fractions on a 0.05 grid summing
    to 1 (the dev suite's simplex sets), other components 0."""
    U = np.zeros((n, dim))
    for row in U:
        k = rng.integers(2, 5)
        idx = rng.choice(active, k, replace=False)
        row[idx] = np.round(rng.dirichlet(np.ones(k)) / 0.05) * 0.05
        row /= max(row.sum(), 1e-12)
    return U


def _simplex_overlap(rng) -> tuple[pd.DataFrame, dict]:
    """Composition simplices with overlapping element sets: Hartmann-6 of a six-component composition
    (as the dev suite's ``hartmann6-simplex``); target 400 draws of compositions of e0-e4 (346 unique:
    replicates are averaged), source 400 of e1-e5
    (sharing four of six components; e5 only in the source, e0 only in the target), the source scaled
    by 1.3 and offset by 0.5; 5 % noise each."""
    names = [f"e{i}" for i in range(6)]
    T = _sparse_simplex(rng, 400, [0, 1, 2, 3, 4], 6)
    S = _sparse_simplex(rng, 400, [1, 2, 3, 4, 5], 6)
    target = _frame(T[:, :5], _noisy(_hartmann(T), rng), names[:5])
    return target, {"e1-e5": _frame(S[:, 1:], _noisy(1.3 * _hartmann(S) + 0.5, rng), names[1:])}


def _oer() -> pd.DataFrame:
    df = pd.read_csv(DATA / "oer_plate_3496.csv")
    df = df.groupby([c for c in df.columns if c != "overpotential"], as_index=False)["overpotential"].mean()
    df["y"] = -df.pop("overpotential")  # overpotential minimised
    return df


def _oer_la(rng) -> tuple[pd.DataFrame, dict]:
    """``oer_plate_3496.csv`` split by the elements present: target = plates with La and without Ce
    (589); source = plates without La (875; they share Ni, Fe, Co, Mn; Ce only in the source, La
    only in the target: an input a table lacks is 0 there); overpotential minimised."""
    df = _oer()
    return df[(df.la_load > 0) & (df.ce_load == 0)].drop(columns="ce_load"), {"no-la": df[df.la_load == 0].drop(columns="la_load")}


def _oer_ce(rng) -> tuple[pd.DataFrame, dict]:
    """The other sub-task sharing four of six elements: target = plates with Ce and without La (589);
    source = plates with La and without Ce (589, ``oer-la``'s target)."""
    df = _oer()
    return (df[(df.ce_load > 0) & (df.la_load == 0)].drop(columns="la_load"),
            {"la-no-ce": df[(df.la_load > 0) & (df.ce_load == 0)].drop(columns="ce_load")})


def _bandgap(rng) -> tuple[pd.DataFrame, dict]:
    """Computed band gaps (``theory_data`` rows of ``bandgap_dft_vs_expt.csv``) as the source for the
    measured ones (150 each); inputs the eight composition descriptors of ``dm_hpc.learn.features``."""
    from dm_hpc.bench.modes import _composition_features
    from dm_hpc.learn.features import DESCRIPTOR_NAMES

    df = pd.read_csv(DATA / "bandgap_dft_vs_expt.csv")

    def table(rows):
        g = rows.groupby("composition", as_index=False)["bandgap"].mean()
        t = pd.DataFrame(_composition_features(g["composition"].astype(str).tolist()), columns=list(DESCRIPTOR_NAMES))
        return t.assign(y=g["bandgap"].to_numpy())

    return table(df[df.expt_data == 1]), {"computed": table(df[df.theory_data == 1])}


def _steel(rng) -> tuple[pd.DataFrame, dict]:
    """One steel property for another: ``steel_strength.csv``'s 312 alloys split in two halves at
    random (fixed seed); target = tensile strength of one half, source = yield strength of the
    other (different alloys, a related property: correlation 0.82 over all alloys); inputs the 13
    alloying elements (wt %)."""
    df = pd.read_csv(DATA / "steel_strength.csv")
    elements = ["c", "mn", "si", "cr", "ni", "mo", "v", "n", "nb", "co", "w", "al", "ti"]
    half = rng.permutation(len(df)) < len(df) // 2
    return (df.loc[half, elements].assign(y=df.loc[half, "tensile strength"]),
            {"yield": df.loc[~half, elements].assign(y=df.loc[~half, "yield strength"])})


#: task -> builder ``(rng) -> (target table, {source name: table})``; the builder's docstring is the
#: task's definition (``--list`` prints them). Objective ``y``, maximised; columns matched by name.
TASKS = {"hartmann3-shifted": _hartmann3_shifted, "hartmann3-extra-dim": _hartmann3_extra_dim,
         "simplex-overlap": _simplex_overlap, "oer-la": _oer_la, "oer-ce": _oer_ce, "bandgap": _bandgap,
         "steel": _steel, "unrelated": _unrelated, "shuffled": _shuffled}
UNRELATED = ("unrelated", "shuffled")  # the guard's tasks: transfer must stay within noise of cold
RELATED = tuple(t for t in TASKS if t not in UNRELATED)  # the targets the 1.5x target applies to


def materialise(task: str, out: Path) -> tuple[Path, list[Path]]:
    """Write ``out/<task>/target.csv`` and its sources; returns their paths."""
    if task not in TASKS:
        raise SystemExit(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    d = out / task
    d.mkdir(parents=True, exist_ok=True)
    target, sources = TASKS[task](np.random.default_rng(sum(map(ord, task))))
    tpath = d / "target.csv"
    target.to_csv(tpath, index=False)
    spaths = []
    for name, s in sources.items():
        spaths.append(d / f"{name}.csv")
        s.to_csv(spaths[-1], index=False)
    return tpath, spaths


def run_row(task: str, row: str, seeds: int, budget: int, out: Path, first_seed: int = 0) -> dict:
    """``seeds x budget`` found shares of one row on one task, seeds ``first_seed ..``; saved to
    ``out/<task>-<row>-s<first_seed>.json`` (``_runs`` joins the chunks of a row)."""
    from dm_hpc.bench.pool import load_pool, load_sources, run_pool, top_set
    from dm_hpc.bench.strategies import Strategy
    from dm_hpc.learn.transfer import on_columns

    tpath, spaths = materialise(task, TABLES)
    inputs = [c for c in pd.read_csv(tpath, nrows=0).columns if c != "y"]
    t0, c0 = time.time(), time.process_time()
    extra: dict = {}
    dest = out / f"{task}-{row}-s{first_seed:02d}.json"
    seed_ids = range(first_seed, first_seed + seeds)
    if row == "reference":
        ref = reference_module()
        X, y, top = ref.pool(str(tpath), inputs, "y", "max")
        runs = [ref.campaign(X, y, top, "gp-ei", k, budget) for k in seed_ids]
        found = np.array([r[0] for r in runs])
        n = len(y)
        extra = {"cpu_seconds": time.process_time() - c0}  # the reference returns no order: no best-so-far
    elif row == "baybe":
        if not BAYBE_PYTHON.is_file():
            raise SystemExit(f"{BAYBE_PYTHON} not found: run bash benchmarks/baybe_env.sh first")
        job, rawpath = dest.with_suffix(".job"), dest.with_suffix(".raw")
        job.write_text(json.dumps({"target": str(tpath), "sources": [str(p) for p in spaths], "seeds": list(seed_ids),
                                   "budget": budget, "out": str(rawpath)}))
        done = subprocess.run([str(BAYBE_PYTHON), str(Path(__file__).with_name("baybe_transfer.py")), str(job)])
        if done.returncode and not rawpath.is_file():
            raise SystemExit(f"BayBE run failed ({done.returncode}) before its first seed")
        raw = json.loads(rawpath.read_text())
        found, n = np.array(raw["found"]), raw["n_pool"]
        extra = {"baybe_version": raw["baybe_version"], "best": raw["best"], "cpu_seconds": raw["cpu_seconds"]}
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
            r = {"task": task, "row": row, "first_seed": first_seed, "seeds": len(done), "budget": budget, "n_pool": int(len(y)),
                 "found": found.tolist(), "best": np.maximum.accumulate(y[done], axis=1).tolist(),
                 "pool_max": float(y.max()), "pool_median": float(np.median(y)),
                 "seconds": time.time() - t0, "cpu_seconds": time.process_time() - c0, "environment": environment(),
                 **extra}
            dest.write_text(json.dumps(r))
            return r

        run_pool(X, y, make, budget, seeds, on_seed=save, first_seed=first_seed)
        return json.loads(dest.read_text())
    r = {"task": task, "row": row, "first_seed": first_seed, "seeds": len(found), "budget": budget, "n_pool": int(n),
         "found": found.tolist(), "seconds": time.time() - t0, "environment": environment(), **extra}
    dest.write_text(json.dumps(r))
    return r


def experiments_to(found: np.ndarray, level: float = 0.5) -> int | None:
    """First evaluation count (1-based) at which the seed-mean curve reaches ``level``; None if never."""
    hit = np.nonzero(found.mean(0) >= level - 1e-12)[0]
    return int(hit[0]) + 1 if len(hit) else None


def _share_speed(a: np.ndarray, b: np.ndarray) -> tuple[float | None, float | None]:
    """``paired_ratios``' two point ratios of rows ``a`` and ``b`` (``seeds x budget`` found shares):
    top share at the budget a / b, and experiments to 50 % b / a (b's count ``budget + 1`` when it
    never gets there); None where undefined."""
    fa, fb = a[:, -1].mean(), b[:, -1].mean()
    ea, eb = experiments_to(a), experiments_to(b)
    share = float(fa / fb) if fb > 0 else None
    speed = float((eb or a.shape[1] + 1) / ea) if ea is not None else None
    return share, speed


def mean_share_ratio(pairs: list[tuple[np.ndarray, np.ndarray]], resamples: int = 2000, seed: int = 0) -> dict:
    """The top-share ratio a / b averaged over tasks (the arithmetic mean, as ``pool_bench --compare``
    averages its sets), with a 90 % interval: ``pairs`` holds one ``(a, b)`` per task, ``seeds x
    budget`` found shares on that task's common seeds; one resample draws every task's seeds anew
    (paired within a task, independently across tasks) and averages the tasks' ratios.

    Returns ``mean``, ``tasks`` (how many had a defined ratio), ``interval`` and ``above_1`` (the
    share of resamples >= 1); a task whose ratio is undefined (b found nothing) is left out, and the
    interval is None when a task is undefined in more than half of the resamples."""
    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a, b in pairs if _share_speed(a, b)[0] is not None]
    out = {"mean": None, "tasks": len(pairs), "interval": None, "above_1": None}
    if not pairs:
        return out
    out["mean"] = float(np.mean([_share_speed(a, b)[0] for a, b in pairs]))
    draws = []
    for _ in range(resamples):
        got = [_share_speed(a[idx], b[idx])[0] for a, b in pairs for idx in [rng.integers(0, len(a), len(a))]]
        if None not in got:
            draws.append(np.mean(got))
    if len(draws) >= resamples // 2:
        out["interval"] = tuple(np.quantile(draws, [0.05, 0.95]).tolist())
        out["above_1"] = float(np.mean(np.array(draws) >= 1.0))
    return out


def paired_ratios(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0) -> dict:
    """Row ``a`` against row ``b`` (``seeds x budget`` found shares, the same seeds), as
    ``pool_bench --compare`` does it: point ratios and their 90 % intervals over paired seed resamples
    (one resample of seed indices applies to both rows), with the share of resamples >= 1.

    ``share``: top share at the budget, a / b. ``speed``: experiments to 50 % of the top set, b / a
    (how many times fewer ``a`` needs); when ``b`` does not reach 50 % within the budget its count is
    taken as ``budget + 1``, so the ratio is a lower bound (``speed_bound`` True). Each value None
    where undefined (b found nothing; a never reached 50 %); an interval None where undefined in
    more than half of the resamples."""
    rng = np.random.default_rng(seed)
    point = _share_speed(a, b)
    draws = [_share_speed(a[idx], b[idx]) for idx in (rng.integers(0, len(a), len(a)) for _ in range(resamples))]
    out = {"speed_bound": experiments_to(b) is None}
    for j, key in enumerate(("share", "speed")):
        got = np.array([d[j] for d in draws if d[j] is not None])
        out[key] = point[j]
        out[key + "_interval"] = tuple(np.quantile(got, [0.05, 0.95]).tolist()) if len(got) >= resamples // 2 else None
        out[key + "_above_1"] = float(np.mean(got >= 1.0)) if len(got) >= resamples // 2 else None
    return out


def _join(chunks: list[dict]) -> dict:
    """One row from its seed chunks (``run_row``'s files): seeds 0..k-1, each taken from the first
    chunk that holds it (chunks may overlap; a seed missing ends the row). Seconds are those of the
    chunks used, scaled to the seeds taken; the model-kind shares and final source weights are
    averaged, weighted by the seeds each chunk gave."""
    chunks = sorted(chunks, key=lambda r: r.get("first_seed", 0))
    per_seed: dict[int, tuple[dict, int]] = {}
    for r in chunks:
        for j in range(len(r["found"])):
            per_seed.setdefault(r.get("first_seed", 0) + j, (r, j))
    nxt = 0
    while nxt in per_seed:
        nxt += 1
    if nxt == 0:
        raise SystemExit(f"{chunks[0]['task']} {chunks[0]['row']}: no chunk starts at seed 0")
    taken = [per_seed[k] for k in range(nxt)]
    kept = list({id(r): r for r, _ in taken}.values())
    gave = {id(r): sum(1 for q, _ in taken if q is r) for r in kept}
    out = dict(kept[0])
    w = np.array([gave[id(r)] for r in kept], float) / nxt
    out["found"] = [r["found"][j] for r, j in taken]
    if all("best" in r for r in kept):
        out["best"] = [r["best"][j] for r, j in taken]
    out["seeds"] = nxt
    for key in ("seconds", "cpu_seconds"):
        out[key] = float(sum(r.get(key, r["seconds"]) * gave[id(r)] / len(r["found"]) for r in kept))
    for key in ("kind_share", "final_weight"):
        if all(key in r for r in kept):
            names = sorted({n for r in kept for n in r[key]})
            out[key] = {n: float(sum(wk * r[key].get(n, 0.0) for wk, r in zip(w, kept))) for n in names}
    return out


def _runs(out: Path) -> dict[str, dict[str, dict]]:
    """task -> row -> saved run (its seed chunks joined); the ``unrelated`` and ``shuffled`` tasks'
    target is ``hartmann3-shifted``'s pool, so its cold and reference rows are that task's when it has none of
    its own. A BayBE chunk cut short is read from the raw file its subprocess writes after every seed."""
    chunks: dict[tuple[str, str], list[dict]] = {}
    for p in sorted(out.glob("*-s[0-9][0-9].json")):
        r = json.loads(p.read_text())
        chunks.setdefault((r["task"], r["row"]), []).append(r)
    for p in sorted(out.glob("*-baybe-s[0-9][0-9].raw")):
        task, first = p.name[: -len("-baybe-s00.raw")], int(p.stem[-2:])
        if p.with_suffix(".json").is_file():
            continue
        raw = json.loads(p.read_text())
        chunks.setdefault((task, "baybe"), []).append(
            {"task": task, "row": "baybe", "first_seed": first, "seeds": len(raw["found"]), "n_pool": raw["n_pool"],
             "found": raw["found"], "best": raw["best"], "baybe_version": raw["baybe_version"],
             "seconds": raw["cpu_seconds"], "cpu_seconds": raw["cpu_seconds"]})
    runs: dict[str, dict[str, dict]] = {}
    for (task, row), cs in sorted(chunks.items()):
        runs.setdefault(task, {})[row] = _join(cs)
    for row in ("cold", "reference"):
        for task in UNRELATED:
            if row in runs.get("hartmann3-shifted", {}) and task in runs:
                runs[task].setdefault(row, runs["hartmann3-shifted"][row])
    return runs


def compare(out: Path) -> str:
    """Markdown tables; every row of a task is cut to the budget that all its rows ran, and each
    ratio to the seeds both of its rows ran (seed s of a longer run is the same campaign as seed s of
    a shorter one, up to the shorter budget)."""
    f = lambda v: "-" if v is None else str(v)  # noqa: E731
    lines = ["| task | N | seeds | budget | row | top share at budget | experiments to 50 % | CPU s/step |", "|---|---|---|---|---|---|---|---|"]
    ratios = ["| task | vs (seeds) | top share, transfer / other | 90 % interval | resamples >= 1 | experiments to 50 %, other / transfer | 90 % interval | resamples >= 1 |",
              "|---|---|---|---|---|---|---|---|"]
    weights = ["| task | final source weight | model kind (share of steps) |", "|---|---|---|"]

    def cell(v, bound=False):
        return "-" if v is None else (">= " if bound else "") + f"{v:.2f}"

    vs_baybe: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # related task -> (transfer, BayBE) on their common seeds

    for task, rows in _runs(out).items():
        b = min(len(r["found"][0]) for r in rows.values())
        for row in ROWS:
            if row not in rows:
                continue
            r = rows[row]
            fd = np.array(r["found"])[:, :b]
            steps = len(r["found"]) * (len(r["found"][0]) - 2)
            cpu = r.get("cpu_seconds", r["seconds"])
            lines.append(f"| {task} | {r['n_pool']} | {len(fd)} | {b} | {row}{' ' + r['baybe_version'] if 'baybe_version' in r else ''} | "
                         f"{fd[:, -1].mean():.2f} | {f(experiments_to(fd))} | {cpu / max(steps, 1):.2f} |")
        if "transfer" in rows:
            for other in ("cold", "baybe"):
                if other not in rows:
                    continue
                k = min(len(rows["transfer"]["found"]), len(rows[other]["found"]))  # the pair's common seeds
                pair = np.array(rows["transfer"]["found"])[:k, :b], np.array(rows[other]["found"])[:k, :b]
                q = paired_ratios(*pair)
                if other == "baybe" and task in RELATED:  # the "level with BayBE" is on related targets
                    vs_baybe[task] = pair
                iv = lambda t: "-" if t is None else f"{t[0]:.2f}-{t[1]:.2f}"  # noqa: E731
                ratios.append(f"| {task} | {other} ({k}) | {cell(q['share'])} | {iv(q['share_interval'])} | {cell(q['share_above_1'])} | "
                              f"{cell(q['speed'], q['speed_bound'])} | {iv(q['speed_interval'])} | {cell(q['speed_above_1'])} |")
            w = ", ".join(f"{n}: {v:.2f}" for n, v in rows["transfer"].get("final_weight", {}).items())
            ks = ", ".join(f"{n} {v:.0%}" for n, v in rows["transfer"].get("kind_share", {}).items())
            weights.append(f"| {task} | {w} | {ks} |")
    average = []
    if vs_baybe:
        m = mean_share_ratio(list(vs_baybe.values()))
        iv = "-" if m["interval"] is None else f"{m['interval'][0]:.2f}-{m['interval'][1]:.2f}"
        seeds = ", ".join(f"{t} {len(p[0])}" for t, p in vs_baybe.items())
        average = [f"Transfer / BayBE, top share at the budget, mean over {m['tasks']} related tasks (seeds: {seeds}): "
                   f"{cell(m['mean'])}, 90 % interval {iv} (each task's seeds resampled), resamples >= 1: {cell(m['above_1'])}.", ""]
    return "\n".join(lines + ["", *ratios, "", *average, *weights, "",
                              "CPU s/step: the row's process CPU seconds (BayBE's: its own process, imports included) per "
                              "recommendation; the load while each row ran is in the measurement notes."])


def plot(out: Path, path: Path) -> None:
    """One panel per task: seed-mean best-so-far (target units, maximised; minimised objectives shown
    negated) against experiments, for the rows that record their order (cold, transfer, BayBE; the
    stock reference returns found shares only), with the pool's best as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {t: rows for t, rows in _runs(out).items() if any("best" in r for r in rows.values())}
    cols = 4
    fig, axes = plt.subplots((len(runs) + cols - 1) // cols, cols, figsize=(4 * cols, 3.2 * ((len(runs) + cols - 1) // cols)), squeeze=False)
    for ax, (task, rows) in zip(axes.flat, runs.items()):
        for row, style in (("cold", "C0-"), ("transfer", "C3-"), ("baybe", "C2--")):
            r = rows.get(row)
            if r is None or "best" not in r:
                continue
            best = np.array(r["best"])
            x = np.arange(1, best.shape[1] + 1)
            ax.plot(x, best.mean(0), style, label=f"{row} ({len(best)} seeds)")
        pool_max = next((r["pool_max"] for r in rows.values() if "pool_max" in r), None)
        if pool_max is not None:
            ax.axhline(pool_max, color="k", ls=":", lw=1, label="pool best")
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("experiments")
        ax.set_ylabel("best so far (y)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(runs):]:
        ax.set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="run seeds FIRST.. (a chunk; --compare joins the chunks)")
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "transfer"))
    ap.add_argument("--compare", action="store_true", help="print the tables and write best_so_far.png beside the runs")
    ap.add_argument("--list", action="store_true", help="print each task's definition")
    ap.add_argument("--source-covariance", choices=("on", "off"),
                    help="transfer row: the prior model with or without its sources' posterior covariance "
                         "(default learn.transfer.PRIOR_SOURCE_COVARIANCE, on); give 'off' its own --out")
    a = ap.parse_args()
    if a.source_covariance:
        from dm_hpc.learn import transfer

        transfer.PRIOR_SOURCE_COVARIANCE = a.source_covariance == "on"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.compare:
        if not any(out.glob("*-s[0-9][0-9].json")) and not any(out.glob("*-baybe-s[0-9][0-9].raw")):
            raise SystemExit(f"no transfer runs under {out}: run some rows first (see --help)")
        print(compare(out))
        plot(out, out / "best_so_far.png")
        return
    if a.list:
        for name, build in TASKS.items():
            print(f"{name}: {' '.join(build.__doc__.split())}")
        return
    for task in a.tasks.split(","):
        for row in a.rows.split(","):
            r = run_row(task, row, a.seeds, a.budget, out, a.first_seed)
            fd = np.array(r["found"])
            print(f"{task} {row}: top share at budget {fd[:, -1].mean():.2f}, experiments to 50 % {experiments_to(fd)}, "
                  f"{r['seconds']:.0f} s (shared, loaded 2-core machine)", flush=True)


if __name__ == "__main__":
    main()
