"""Pool-based benchmark runs behind benchmarks/README.md (Liang et al. protocol).

Usage: python benchmarks/pool_bench.py [--seeds 10] [--only p3ht,branin2] [--strategies a,b] [--variant k=v,...]
       python benchmarks/pool_bench.py --compare          # engine vs reference table of DIR/suite/<variant>/,
                                                          # then the ratios' 90 % intervals over resampled seeds,
                                                          # then how often issue 10's target would pass (target_power)
       python benchmarks/pool_bench.py --compare --variant warp=1 --against DIR/suite/default
                                                          # ... and the variant over the runs in that folder, seed by seed
       python benchmarks/pool_bench.py --seeds 10 --first-seed 10 ...   # seeds 10-19 into DIR/suite/<variant>-seeds10-19/
       python benchmarks/pool_bench.py --compare --variant warp=1 --also-seeds 10-19 --against DIR/suite/default
                                                          # ... pooling seeds 0-9 and 10-19 (every folder and its -seeds10-19)
       python benchmarks/pool_bench.py --mode multiobjective|multifidelity
       python benchmarks/pool_bench.py --table            # legacy per-strategy table of DIR/*/summary.json

Default mode: the dev suite (``dm_hpc.bench.suite.DEV_SUITE``), each set run by the engine's
strategies and by the stock-BoTorch yardstick ``../shared/tools/reference_bo.py`` (imported by path;
strategies ``reference-gp-ei`` and ``reference-gp-lcb``), same seeds (seed s draws the two initial
points from default_rng(s) in both), same pool file. Per-seed curves go to
``DIR/suite/<variant>/<set>-<strategy>.json``.

``--variant`` switches the engine's GP settings for ablations (fields of
``dm_hpc.learn.gp.GPSettings``: prior=botorch|matern,
full_fit_points=N, warp=0|1, iso_points_per_dim=N), ``acq=ucb|nei`` (``dm_hpc.acquire.acquisition.DEFAULT_ACQUISITION``) and
``beta=B`` (its ``UCB_BETA``).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DM_HPC_DATASETS", ROOT.parent / "shared" / "datasets"))
REFERENCE = Path(os.environ.get("DM_HPC_REFERENCE_BO", ROOT.parent / "shared" / "tools" / "reference_bo.py"))
SETS = {
    "p3ht": dict(file="p3ht_conductivity.csv", inputs=["P3HT content (%)", "D1 content (%)", "D2 content (%)", "D6 content (%)", "D8 content (%)"],
                 objective="Conductivity (measured) (S/cm)", goal="max", budget=60),
    "oer": dict(file="oer_plate_3496.csv", inputs=["ni_load", "fe_load", "co_load", "mn_load", "ce_load", "la_load"],
                objective="overpotential", goal="min", budget=200),
}
DEVSETS = ROOT / "out" / "devsets"
STEEL_INPUTS = ["c", "mn", "si", "cr", "ni", "mo", "v", "n", "nb", "co", "w", "al", "ti"]


def reference_module():
    """``reference_bo.py`` imported by path (kept outside the project, never copied into it)."""
    if not REFERENCE.is_file():
        raise SystemExit(f"reference {REFERENCE} not found (set DM_HPC_REFERENCE_BO)")
    spec = importlib.util.spec_from_file_location("reference_bo", REFERENCE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def variant_tag(text: str) -> str:
    """Folder name of a ``--variant`` (``default`` for none)."""
    return text.replace("=", "-").replace(",", "_") if text else "default"


def seeds_suffix(first_seed: int, seeds: int) -> str:
    """``-seedsA-B`` for a run of seeds A .. B other than the first chunk (``""`` when A is 0): the
    folder of such a run is ``DIR/suite/<variant>-seedsA-B/``, its references ``default-seedsA-B/``."""
    return f"-seeds{first_seed}-{first_seed + seeds - 1}" if first_seed else ""


def apply_variant(text: str) -> str:
    """Set the engine's GP settings / acquisition for an ablation; returns the variant's tag.

    The GP settings are ``dm_hpc.learn.gp.GP_DEFAULTS``, the module ``fit_gp`` reads them from
    (``surrogates`` re-exports the name; rebinding it there would change nothing), and the decision
    model's ``dm_hpc.learn.decision.DECISION_SETTINGS``.
    """
    from dm_hpc.acquire import acquisition
    from dm_hpc.learn import gp

    if not text:
        return "default"
    pairs = [p.split("=", 1) for p in text.split(",")]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--variant {text!r}: give key=value pairs separated by commas")
    kv = dict(pairs)
    acq = kv.pop("acq", None)
    if acq:
        acquisition.DEFAULT_ACQUISITION = acq
    if "beta" in kv:
        acquisition.UCB_BETA = float(kv.pop("beta"))
    if "outcome_warp" in kv:  # decisions on raw values (0) or Yeo-Johnson-warped ones (1, the default)
        from dm_hpc.learn import decision

        decision.OUTCOME_WARP = kv.pop("outcome_warp") not in ("0", "false")
    fields = {f.name: f.type for f in dataclasses.fields(gp.GPSettings)}
    unknown = sorted(set(kv) - set(fields))
    if unknown:
        raise SystemExit(f"--variant: unknown setting {', '.join(unknown)}; known: acq, beta, outcome_warp, {', '.join(fields)}")

    def value(key: str, raw: str):
        if fields[key] == "int":
            return int(raw)
        if fields[key] == "bool":
            if raw.lower() not in ("0", "1", "true", "false"):
                raise SystemExit(f"--variant {key}={raw!r}: give 0 or 1")
            return raw.lower() in ("1", "true")
        if fields[key] == "float":
            try:
                return float(raw)
            except ValueError:
                raise SystemExit(f"--variant {key}={raw!r}: give a number") from None
        return raw

    from dm_hpc.learn import decision

    change = {k: value(k, v) for k, v in kv.items()}
    # the default strategy picks with the decision model's settings; ablation scripts that refit
    # the raw-values model (``Strategy.refit_default``) read GP_DEFAULTS: a variant changes both
    gp.GP_DEFAULTS = dataclasses.replace(gp.GP_DEFAULTS, **change)
    decision.DECISION_SETTINGS = dataclasses.replace(decision.DECISION_SETTINGS or gp.GP_DEFAULTS, **change)
    return variant_tag(text)


def curve_metrics(found: np.ndarray, n_pool: int) -> dict:
    """AF(0.5/0.8/0.9), EF peak (i >= EF_FROM) and Top% at budget from ``seeds x budget`` found shares."""
    from dm_hpc.bench.pool import EF_FROM

    top = np.concatenate([[0.0], found.mean(0)])
    i = np.arange(len(top))
    ef = top[1:] / (i[1:] / n_pool)
    af = {}
    for t in ("0.5", "0.8", "0.9"):
        hit = np.nonzero(top >= float(t) - 1e-12)[0]
        af[t] = float(float(t) * n_pool / hit[0]) if len(hit) else None
    return {"af": af, "ef_peak": float(ef[EF_FROM - 1:].max()), "top_at_budget": float(top[-1])}


def run_set(name: str, strategy: str, seeds: int, budget: int, devdir: Path, make=None, first_seed: int = 0):
    """``seeds x budget`` found shares and seconds per step of ``strategy`` on dev set ``name``
    (``make``: a factory ``(X, seed) -> Strategy`` that replaces the engine's strategy, for ablations;
    ``first_seed``: the seeds run are ``first_seed .. first_seed + seeds - 1``)."""
    from dm_hpc.bench.pool import load_pool, run_pool, top_set
    from dm_hpc.bench.suite import materialise

    s = materialise(name, DATA, devdir)
    budget = budget or s.budget
    if strategy.startswith("reference-"):
        ref = reference_module()
        X, y, top = ref.pool(str(s.path), list(s.inputs), s.objective, s.goal)
        runs = [ref.campaign(X, y, top, strategy.removeprefix("reference-"), k, budget) for k in range(first_seed, first_seed + seeds)]
        found = np.array([r[0] for r in runs])
        sps = float(np.mean([np.mean(r[1]) for r in runs]))
        return found, sps, len(y)
    pool = load_pool(s.path, list(s.inputs), [s.objective])
    X = pool[list(s.inputs)].to_numpy(float)
    y = pool[s.objective].to_numpy(float) * (1.0 if s.goal == "max" else -1.0)
    top = top_set(y)
    orders, sps = run_pool(X, y, make or strategy, budget, seeds, first_seed=first_seed)
    found = np.cumsum(np.isin(orders, top), axis=1) / len(top)
    return found, sps, len(y)


def save_run(dest: Path, name: str, strategy: str, tag: str, found: np.ndarray, sps: float, n: int) -> dict:
    """Write ``DIR/suite/<tag>/<set>-<strategy>.json`` (metrics and per-seed curves) and return it."""
    from dm_hpc.bench.environment import environment

    r = {"set": name, "strategy": strategy, "variant": tag, "seeds": len(found), "budget": found.shape[1], "n_pool": n,
         **curve_metrics(found, n), "seconds_per_step": sps, "found": found.tolist(), "environment": environment()}
    dest.mkdir(parents=True, exist_ok=True)
    (dest / f"{name}-{strategy}.json").write_text(json.dumps(r))
    return r


def ablation_args(description: str) -> argparse.ArgumentParser:
    """The command line every strategy ablation shares (its own options are added to it)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--only", default="", help="dev sets (default: all of DEV_SUITE)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="run seeds FIRST .. FIRST + seeds - 1; other than 0, the folder's name says so (TAG-seedsA-B)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    return ap


def run_ablation(a: argparse.Namespace, tag: str, make, note=None) -> None:
    """Run the strategy factory ``make`` ``(X, seed) -> Strategy`` on the dev sets of ``a.only`` (all
    of ``DEV_SUITE`` when empty) and save each as variant ``tag`` beside the reference rows
    (``results/suite/<tag>/<set>-default.json``); ``note()``: extra words for the set's progress line."""
    from dm_hpc.bench.suite import DEV_SUITE

    if a.first_seed:
        tag = f"{tag}-seeds{a.first_seed}-{a.first_seed + a.seeds - 1}"
    dest = Path(a.out) / "suite" / tag
    for name in a.only.split(",") if a.only else list(DEV_SUITE):
        t = time.time()
        r = save_run(dest, name, "default", tag, *run_set(name, "default", a.seeds, a.budget, DEVSETS, make=make,
                                                          first_seed=a.first_seed))
        extra = f" {note()}" if note is not None else ""
        print(f"{name} [{tag}]: AF={r['af']} EF_peak={r['ef_peak']:.2f}{extra} ({time.time() - t:.0f} s)", flush=True)


def _folder_runs(out: Path) -> dict[str, dict[str, dict]]:
    """One folder's runs as set -> strategy -> run, references from the default folder of the same
    seeds (``default/`` or ``default-seedsA-B/``) unless the folder has its own."""
    seeds = re.search(r"-seeds\d+-\d+$", out.name)
    refs = out.parent / ("default" + (seeds.group(0) if seeds else ""))
    by_set: dict[str, dict] = {}
    for p in sorted(refs.glob("*-reference-*.json")) + sorted(out.glob("*.json")):
        r = json.loads(p.read_text())
        by_set.setdefault(r["set"], {})[r["strategy"]] = r
    return by_set


def runs_by_set(out: Path, chunks: tuple[str, ...] = ()) -> dict[str, dict[str, dict]]:
    """Saved runs of ``DIR/suite/<variant>/`` as set -> strategy -> run. References do not depend
    on the engine's variant: they come from the default run of the same seeds unless the variant
    has its own.

    ``chunks``: seed suffixes (``("-seeds10-19",)``, see ``seeds_suffix``) of further folders
    ``<variant>-seedsA-B/`` whose seeds are appended to ``out``'s, the metrics recomputed over all
    of them (``--compare --also-seeds 10-19``); a run missing from any chunk is left out."""
    parts = [_folder_runs(out)] + [_folder_runs(out.parent / (out.name + c)) for c in chunks]
    if not chunks:
        return parts[0]
    merged: dict[str, dict] = {}
    for name, runs in parts[0].items():
        for strat, r in runs.items():
            rs = [part.get(name, {}).get(strat) for part in parts]
            if any(x is None or x["n_pool"] != r["n_pool"] or len(x["found"][0]) != len(r["found"][0]) for x in rs):
                continue
            found = np.concatenate([np.asarray(x["found"]) for x in rs])
            merged.setdefault(name, {})[strat] = {**r, **curve_metrics(found, r["n_pool"]), "seeds": len(found), "found": found,
                                                  "seconds_per_step": float(np.mean([x["seconds_per_step"] for x in rs]))}
    return merged


def chunk_suffixes(text: str) -> tuple[str, ...]:
    """``--also-seeds 10-19,20-29`` as folder suffixes ``("-seeds10-19", "-seeds20-29")``."""
    return tuple(f"-seeds{c.strip()}" for c in text.split(",") if c.strip())


def paired_curves(out: Path, engine: str, chunks: tuple[str, ...] = ()):
    """``(set, n_pool, {strategy: seeds x budget found shares})`` for every set of ``out`` that has
    the engine and both references (the same seeds: seed s starts every strategy from the same points)."""
    for name, runs in sorted(runs_by_set(out, chunks).items()):
        if engine in runs and {"reference-gp-ei", "reference-gp-lcb"} <= set(runs):
            yield name, runs[engine]["n_pool"], {k: np.asarray(runs[k]["found"])
                                                 for k in (engine, "reference-gp-ei", "reference-gp-lcb")}


def compare(out: Path, engine: str = "default", chunks: tuple[str, ...] = ()) -> str:
    """Markdown: per set, engine strategy vs the better and each reference, and the averages."""
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    rows = ["| set | N | seeds | budget | strategy | AF(0.5) | AF(0.8) | EF peak | Top% at budget | s/step | AF(0.5) / ref-EI | AF(0.5) / ref-LCB | EF peak / best ref |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ratios = {"ei": [], "lcb": [], "ef": []}
    by_set = runs_by_set(out, chunks)
    for name, runs in by_set.items():
        ei, lcb = runs.get("reference-gp-ei"), runs.get("reference-gp-lcb")
        for strat, r in sorted(runs.items()):
            def ratio(ref, key="af"):
                if ref is None:
                    return None
                a = r["af"]["0.5"] if key == "af" else r["ef_peak"]
                b = ref["af"]["0.5"] if key == "af" else ref["ef_peak"]
                if a is None or b is None:
                    return None
                return a / b
            best_ef = max([x["ef_peak"] for x in (ei, lcb) if x] or [0]) or None
            q_ei, q_lcb = ratio(ei), ratio(lcb)
            q_ef = r["ef_peak"] / best_ef if best_ef else None
            if strat == engine:
                for k, v in (("ei", q_ei), ("lcb", q_lcb), ("ef", q_ef)):
                    if v is not None:
                        ratios[k].append(v)
            show = not strat.startswith("reference-")
            rows.append(f"| {name} | {r['n_pool']} | {r['seeds']} | {r['budget']} | {strat} | {f(r['af']['0.5'])} | {f(r['af']['0.8'])} | "
                        f"{r['ef_peak']:.2f} | {100 * r['top_at_budget']:.0f} % | {r['seconds_per_step']:.3f} | "
                        f"{f(q_ei) if show else ''} | {f(q_lcb) if show else ''} | {f(q_ef) if show else ''} |")
    avg = {k: (float(np.mean(v)) if v else None, float(np.min(v)) if v else None, len(v)) for k, v in ratios.items()}
    rows.append("")
    rows += environment_notes(by_set, engine)
    rows.append(f"`{engine}` over {avg['lcb'][2]} sets: AF(0.5)/ref-LCB mean {f(avg['lcb'][0])} (min {f(avg['lcb'][1])}); "
                f"AF(0.5)/ref-EI mean {f(avg['ei'][0])} (min {f(avg['ei'][1])}); EF peak / best reference mean {f(avg['ef'][0])} (min {f(avg['ef'][1])}).")
    return "\n".join(rows)


def environment_notes(by_set: dict[str, dict[str, dict]], engine: str = "default") -> list[str]:
    """Lines naming each set whose engine row and a reference row were run in different recorded
    environments (library versions, CPU, threads, MKL path): their ratio mixes two machines."""
    from dm_hpc.bench.environment import differences

    notes = []
    for name, runs in sorted(by_set.items()):
        mine = runs.get(engine, {}).get("environment")
        for ref in ("reference-gp-ei", "reference-gp-lcb"):
            diff = differences(mine, runs.get(ref, {}).get("environment"))
            if diff:
                notes.append(f"Environment differs, {name}: {engine} vs {ref} ({'; '.join(diff)}): compare rows run in one environment.")
    return notes + ([""] if notes else [])


def interval_cells(point: float | None, draws: list[float | None], resamples: int) -> list[str]:
    """Table cells of a paired ratio: the point estimate, its 90 % interval over the resampled
    ``draws`` and the share of them >= 1; "-" where the ratio is undefined (AF(0.5) not reached)
    in most resamples."""
    got = np.array([d for d in draws if d is not None])
    if point is None or len(got) < resamples // 2:
        return ["-" if point is None else f"{point:.2f}", "-", "-"]
    lo, hi = np.quantile(got, [0.05, 0.95])
    return [f"{point:.2f}", f"{lo:.2f}-{hi:.2f}", f"{np.mean(got >= 1.0):.0%}"]


def mean_over_sets(points: list[float], draws: list[list[float]], what: str) -> str:
    """The sentence for the mean of per-set ratios and its 90 % interval: draw ``k`` of every set
    (``draws[set][k]``, each set's seeds resampled alone) makes mean ``k``."""
    lo, hi = np.quantile(np.mean(np.array(draws), axis=0), [0.05, 0.95])
    return f"{what} over {len(points)} sets: mean {np.mean(points):.3f}, 90 % interval of the mean {lo:.3f}-{hi:.3f}"


def seed_intervals(out: Path, engine: str = "default", resamples: int = 2000, seed: int = 0,
                   chunks: tuple[str, ...] = ()) -> str:
    """Markdown: per set, the engine/reference ratios with 90 % intervals from resampling seeds.

    Seeds are paired (seed s starts every strategy from the same two points), so one resample of
    seed indices is applied to the engine and to both references alike. The share of resamples
    in which the ratio is >= 1 says how firmly 10 seeds place a set above or below the reference.
    The last columns set AF(0.5) against the better of the two references' (censored at the budget).
    """
    rng = np.random.default_rng(seed)
    rows = ["| set | seeds | EF peak / best ref | 90 % interval | resamples >= 1 | AF(0.5) / ref-LCB | 90 % interval | "
            "resamples >= 1 | AF(0.5) / better ref | 90 % interval | resamples >= 1 |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    points: dict[int, list[float]] = {0: [], 2: []}
    # per set, its resampled ratios (draw k of every set makes mean k); AF(0.5) censored at the
    # budget for a side that misses half the top set (``ratios``)
    set_draws: dict[int, list[list[float]]] = {0: [], 2: []}
    behind: list[str] = []
    for name, n_pool, curves in paired_curves(out, engine, chunks):
        n_seeds, budget = curves[engine].shape

        def ratios(idx):
            m = {k: curve_metrics(c[idx], n_pool) for k, c in curves.items()}
            ef = m[engine]["ef_peak"] / max(m["reference-gp-ei"]["ef_peak"], m["reference-gp-lcb"]["ef_peak"])
            raw = [m[k]["af"]["0.5"] for k in (engine, "reference-gp-lcb", "reference-gp-ei")]
            if all(v is None for v in raw):
                return ef, None, None  # none got to half the top set: no AF to compare
            # a curve that has not reached half the top set by the budget gets there at the earliest one
            # step after it: its AF at most 0.5 N / (budget + 1) (censored), so a side that misses counts
            # against it instead of leaving the resample out
            a, lcb_af, ei_af = (0.5 * n_pool / (budget + 1) if v is None else v for v in raw)
            return ef, a / lcb_af, a / max(lcb_af, ei_af)  # AF: higher is faster; the better reference's

        point = ratios(np.arange(n_seeds))
        draws = [ratios(rng.integers(0, n_seeds, n_seeds)) for _ in range(resamples)]
        cells = []
        for j in range(3):
            cells += interval_cells(point[j], [d[j] for d in draws], resamples)
        rows.append(f"| {name} | {n_seeds} | " + " | ".join(cells) + " |")
        for j in (0, 2):
            if point[j] is not None:  # a resample where nobody got to half the top set: level
                points[j].append(point[j])
                set_draws[j].append([1.0 if d[j] is None else d[j] for d in draws])
        if any(point[j] is not None and np.mean([d[j] >= 1.0 for d in draws if d[j] is not None]) <= 0.05 for j in (0, 2)):
            behind.append(name)
    rows.append("")
    for j, what in ((0, "EF peak"), (2, "AF(0.5)")):
        if points[j]:
            rows.append(mean_over_sets(points[j], set_draws[j], f"{what} / better reference") + " (each set's seeds resampled).")
    if points[0]:
        rows.append(f"Firmly behind (EF peak or AF(0.5) / better reference >= 1 in at most 5 % of resamples): "
                    f"{', '.join(behind) or 'none'}.")
    return "\n".join(rows)


def variant_intervals(out: Path, against: Path, engine: str = "default", resamples: int = 2000, seed: int = 0,
                      chunks: tuple[str, ...] = ()) -> str:
    """Markdown: per set in both folders, the engine's run in ``out`` over the one in ``against``
    (an ablation against the default, side by side), EF peak and AF(0.5) ratios with 90 % intervals
    from resampling the seeds both have (paired: seed s starts both from the same two points);
    ``chunks``: both folders' further seed folders, pooled (``runs_by_set``)."""
    rng = np.random.default_rng(seed)
    mine, theirs = runs_by_set(out, chunks), runs_by_set(against, chunks)
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    rows = [f"`{out.name}` over `{against.name}`:", "",
            "| set | seeds | EF peak | vs | ratio | 90 % interval | resamples >= 1 | AF(0.5) | vs | ratio | 90 % interval | resamples >= 1 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ef_points, ef_draws, ahead, behind = [], [], [], []
    for name in sorted(set(mine) & set(theirs)):
        if engine not in mine[name] or engine not in theirs[name]:
            continue
        a, b = (np.asarray(r[name][engine]["found"]) for r in (mine, theirs))
        k, n_pool = min(len(a), len(b)), mine[name][engine]["n_pool"]
        a, b = a[:k], b[:k]

        def ratios(idx):
            ma, mb = curve_metrics(a[idx], n_pool), curve_metrics(b[idx], n_pool)
            af = (ma["af"]["0.5"] / mb["af"]["0.5"]) if ma["af"]["0.5"] and mb["af"]["0.5"] else None
            return ma["ef_peak"] / mb["ef_peak"], af, ma, mb

        point = ratios(np.arange(k))
        draws = [ratios(rng.integers(0, k, k))[:2] for _ in range(resamples)]
        cells = []
        for j, key in ((0, "ef_peak"), (1, "af")):
            va = point[2][key] if key == "ef_peak" else point[2]["af"]["0.5"]
            vb = point[3][key] if key == "ef_peak" else point[3]["af"]["0.5"]
            cells += [f(va), f(vb)] + interval_cells(point[j], [d[j] for d in draws], resamples)
        rows.append(f"| {name} | {k} | " + " | ".join(cells) + " |")
        ef_points.append(point[0])
        ef_draws.append([d[0] for d in draws])
        share = np.mean([d[0] >= 1.0 for d in draws])
        (ahead if share >= 0.95 else behind if share <= 0.05 else []).append(name)
    if ef_points:
        rows += ["", mean_over_sets(ef_points, ef_draws, "EF peak ratio") + "; EF ratio >= 1 in at least 95 % of "
                 f"resamples: {', '.join(ahead) or 'none'}; in at most 5 %: {', '.join(behind) or 'none'}."]
    return "\n".join(rows)


def target_power(out: Path, engine: str = "default", resamples: int = 2000, seed: int = 0,
                 true_ratios: tuple[float, ...] = (1.0, 1.1, 1.2, 1.3), chunks: tuple[str, ...] = ()) -> str:
    """Markdown: how often issue 10's target would be met by a method that is truly ``r`` times the
    best reference's EF peak on every set, given the seed noise these runs show.

    Per set, the spread of the engine/best-reference EF-peak ratio over paired seed resamples
    (``seed_intervals``' resampling, as log deviations from the point ratio) is the noise of one
    10-seed comparison. One simulated suite draws one deviation per set and scales it to ``r``;
    the target holds when the mean ratio is >= 1.1 and no set is below 1.0.
    """
    rng = np.random.default_rng(seed)
    devs = []
    for _, n_pool, curves in paired_curves(out, engine, chunks):
        n_seeds = len(curves[engine])

        def log_ratio(idx):
            m = {k: curve_metrics(c[idx], n_pool)["ef_peak"] for k, c in curves.items()}
            return np.log(m[engine] / max(m["reference-gp-ei"], m["reference-gp-lcb"]))

        point = log_ratio(np.arange(n_seeds))
        devs.append(np.array([log_ratio(rng.integers(0, n_seeds, n_seeds)) for _ in range(resamples)]) - point)
    if not devs:
        return "(no sets with the engine and both references)"
    noise = np.stack(devs)  # sets x resamples
    rows = [f"Seed noise of one 10-seed EF-peak ratio over {len(devs)} sets: standard deviation "
            f"{np.median(noise.std(1)):.2f} (median; {noise.std(1).min():.2f}-{noise.std(1).max():.2f}) in log units.", "",
            "| true ratio on every set | P(mean >= 1.1) | P(no set < 1.0) | P(target met) |", "|---|---|---|---|"]
    for r in true_ratios:
        pick = noise[np.arange(len(devs))[:, None], rng.integers(0, resamples, (len(devs), resamples))]
        ratios = r * np.exp(pick)  # sets x simulated suites
        mean_ok, all_ok = ratios.mean(0) >= 1.1, ratios.min(0) >= 1.0
        rows.append(f"| {r:.2f} | {mean_ok.mean():.0%} | {all_ok.mean():.0%} | {(mean_ok & all_ok).mean():.0%} |")
    return "\n".join(rows)


def hindsight(suite: Path, engine: str = "default") -> str:
    """Markdown: the dev-suite ratios of every variant folder under ``suite`` (``results/suite/<tag>/``)
    that ran all the sets the default did, and of the per-set best of them in hindsight.

    Per set and variant: EF peak / the better reference's, and AF(0.5) / the better reference's
    (where both are defined). "Best in hindsight" takes on each set the variant that did best there,
    an upper bound on what choosing among them could give: no setting can choose by the set, and
    the maximum over variants also picks up each set's luckiest seed draw."""
    default = runs_by_set(suite / "default")
    full = {}
    for folder in sorted(p for p in suite.iterdir() if p.is_dir()):
        runs = runs_by_set(folder)
        if all(engine in runs.get(name, {}) for name in default):
            full[folder.name] = runs

    def ratios(runs, name):
        r, refs = runs[name][engine], [default[name][k] for k in ("reference-gp-ei", "reference-gp-lcb")]
        ef = r["ef_peak"] / max(x["ef_peak"] for x in refs)
        af_refs = [x["af"]["0.5"] for x in refs if x["af"]["0.5"] is not None]
        af = r["af"]["0.5"] / max(af_refs) if r["af"]["0.5"] is not None and af_refs else None
        return ef, af

    rows = ["| variant | sets | EF peak / better ref: mean (min) | AF(0.5) / better ref: mean (min, sets) |", "|---|---|---|---|"]
    table = {v: {name: ratios(runs, name) for name in default} for v, runs in full.items()}
    best = {name: (max(t[name][0] for t in table.values()),
                   max((t[name][1] for t in table.values() if t[name][1] is not None), default=None)) for name in default}
    for v, t in [*table.items(), ("best in hindsight (per set)", best)]:
        ef = [e for e, _ in t.values()]
        af = [a for _, a in t.values() if a is not None]
        rows.append(f"| {v} | {len(t)} | {np.mean(ef):.3f} ({min(ef):.2f}) | {np.mean(af):.3f} ({min(af):.2f}, {len(af)}) |")
    return "\n".join(rows)


def table(out: Path) -> str:
    rows = ["| dataset | strategy | seeds | budget | N | n_top | AF(0.5) | AF(0.8) | AF(0.9) | EF peak | Top% at budget | s/step |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for p in sorted(out.glob("*/summary.json")):
        s = json.loads(p.read_text())
        if s.get("mode") in ("multiobjective", "multifidelity"):
            continue
        rows.append(f"| {Path(s['data']).stem} | {s['strategy']} | {s['seeds']} | {s['budget']} | {s['n_pool']} | {s['n_top']} | "
                    f"{f(s['af']['0.5'])} | {f(s['af']['0.8'])} | {f(s['af']['0.9'])} | {s['ef_peak']:.2f} | "
                    f"{100 * s['top_pct'][-1]:.0f} % | {s['seconds_per_step']:.3f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--only", default="", help="dev sets (default: all of DEV_SUITE)")
    ap.add_argument("--strategies", default="default,reference-gp-ei,reference-gp-lcb")
    ap.add_argument("--variant", default="", help="ablation: prior=..,full_fit_points=..,warp=0|1,iso_points_per_dim=..,iso_by_evidence=0|1,iso_by_loo=0|1,acq=..,beta=..")
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--against", default="", help="with --compare: a folder of engine runs to set the variant against, seed by seed")
    ap.add_argument("--also-seeds", default="", help="with --compare: pool the seeds of the folders <variant>-seedsA-B "
                    "(and their references' default-seedsA-B, --against's AGAINST-seedsA-B) for each A-B given, e.g. 10-19")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--mode", default="suite", help="suite, single (legacy p3ht/oer), multiobjective, multifidelity")
    ap.add_argument("--budget", type=int, default=0)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="run seeds FIRST .. FIRST + seeds - 1; other than 0, the folder's name says so (TAG-seedsA-B)")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--hindsight", action="store_true", help="every complete variant's ratios and the per-set best of them")
    a = ap.parse_args()
    out = Path(a.out)
    if a.table:
        print(table(out))
        return
    if a.hindsight:
        print(hindsight(out / "suite"))
        return
    if a.compare:  # DIR/suite/<variant>[-seedsA-B with --first-seed A], pooled with --also-seeds' folders
        folder, chunks = out / "suite" / (variant_tag(a.variant) + seeds_suffix(a.first_seed, a.seeds)), chunk_suffixes(a.also_seeds)
        print(compare(folder, chunks=chunks))
        print()
        print(seed_intervals(folder, chunks=chunks))
        print()
        print(target_power(folder, chunks=chunks))
        if a.against:
            print()
            print(variant_intervals(folder, Path(a.against), chunks=chunks))
        return
    if a.mode == "suite":
        from dm_hpc.bench.suite import DEV_SUITE

        tag = apply_variant(a.variant) + seeds_suffix(a.first_seed, a.seeds)
        dest = out / "suite" / tag
        dest.mkdir(parents=True, exist_ok=True)
        for name in (a.only.split(",") if a.only else list(DEV_SUITE)):
            for strat in a.strategies.split(","):
                t = time.time()
                r = save_run(dest, name, strat, tag, *run_set(name, strat, a.seeds, a.budget, DEVSETS, first_seed=a.first_seed))
                print(f"{name} {strat} [{tag}]: AF={r['af']} EF_peak={r['ef_peak']:.2f} s/step={r['seconds_per_step']:.3f} "
                      f"({time.time() - t:.0f} s)", flush=True)
        return
    if a.mode == "multiobjective":
        from dm_hpc.bench.modes import bench_pool_multiobjective

        for strat in a.strategies.split(","):
            t = time.time()
            s = bench_pool_multiobjective(DATA / "steel_strength.csv", STEEL_INPUTS, ["tensile strength", "elongation"], ["max", "max"],
                                          a.budget or 60, a.seeds, strat, out / f"steel-mo-{strat}")
            print(f"steel MO {strat}: HV fraction at 10/30/{len(s['hv_fraction']) - 1} evals = "
                  f"{s['hv_fraction'][10]:.3f}/{s['hv_fraction'][30]:.3f}/{s['hv_fraction'][-1]:.3f}, "
                  f"{s['seconds_per_step']:.2f} s/step, {time.time() - t:.0f} s", flush=True)
        return
    if a.mode == "multifidelity":
        from dm_hpc.bench.modes import bench_pool_multifidelity

        t = time.time()
        s = bench_pool_multifidelity(DATA / "bandgap_dft_vs_expt.csv", [], "bandgap", "max", "expt_data", a.budget or 60, a.seeds,
                                     out / "bandgap-mf", cost_ratio=10.0, composition_column="composition")
        print(json.dumps({k: s[k] for k in ("n_pool", "n_top", "single", "multi")}, indent=1), f"{time.time() - t:.0f} s", flush=True)
        return
    from dm_hpc.bench import bench_pool

    a.strategies = a.strategies.replace("reference-gp-ei", "gp-ei").replace("reference-gp-lcb", "gp-lcb")
    for name in (a.only or "p3ht,oer").split(","):
        cfg = SETS[name]
        for strat in a.strategies.split(","):
            t = time.time()
            s = bench_pool(DATA / cfg["file"], cfg["inputs"], cfg["objective"], cfg["goal"], a.budget or cfg["budget"], a.seeds, strat,
                           out / f"{name}-{strat}")
            print(f"{name} {strat}: AF={s['af']} EF_peak={s['ef_peak']:.2f} s/step={s['seconds_per_step']:.3f} ({time.time() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
