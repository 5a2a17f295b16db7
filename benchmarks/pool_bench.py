"""Pool-based benchmark runs behind benchmarks/README.md (Liang et al. protocol).

Usage: python benchmarks/pool_bench.py [--seeds 10] [--only p3ht,oer] [--strategies a,b] [--out DIR]
       python benchmarks/pool_bench.py --mode multiobjective|multifidelity
       python benchmarks/pool_bench.py --table          # print the markdown table of DIR/*/summary.json

Same seeds for every strategy (seed s draws the initial points from default_rng(s)).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

DATA = Path(os.environ.get("DM_HPC_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
SETS = {
    "p3ht": dict(file="p3ht_conductivity.csv", inputs=["P3HT content (%)", "D1 content (%)", "D2 content (%)", "D6 content (%)", "D8 content (%)"],
                 objective="Conductivity (measured) (S/cm)", goal="max", budget=60),
    "oer": dict(file="oer_plate_3496.csv", inputs=["ni_load", "fe_load", "co_load", "mn_load", "ce_load", "la_load"],
                objective="overpotential", goal="min", budget=200),
}
STEEL_INPUTS = ["c", "mn", "si", "cr", "ni", "mo", "v", "n", "nb", "co", "w", "al", "ti"]


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
    ap.add_argument("--only", default="p3ht,oer")
    ap.add_argument("--strategies", default="random,gp-ei,gp-lcb,default,ensemble")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--mode", default="single")
    ap.add_argument("--budget", type=int, default=0)
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    out = Path(a.out)
    if a.table:
        print(table(out))
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

    for name in a.only.split(","):
        cfg = SETS[name]
        for strat in a.strategies.split(","):
            t = time.time()
            s = bench_pool(DATA / cfg["file"], cfg["inputs"], cfg["objective"], cfg["goal"], a.budget or cfg["budget"], a.seeds, strat,
                           out / f"{name}-{strat}")
            print(f"{name} {strat}: AF={s['af']} EF_peak={s['ef_peak']:.2f} s/step={s['seconds_per_step']:.3f} ({time.time() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
