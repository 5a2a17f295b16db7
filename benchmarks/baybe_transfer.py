"""BayBE's transfer learning on one pool task; run by benchmarks/transfer_bench.py with the Python of
the separate reference environment (benchmarks/baybe_env.sh), never the engine's.

Usage: benchmarks/baybe-env/bin/python benchmarks/baybe_transfer.py JOB.json
JOB: {"target": CSV, "sources": [CSV, ...], "seeds": [seed, ...], "budget": B, "out": JSON}; every CSV has input
columns and ``y`` (maximised); columns matched by name, an input a table lacks is 0 there.

BayBE's way (its user guide, "Transfer Learning"): one search space with a ``TaskParameter`` whose
values are the target and the sources and whose only active value is the target; source rows are
added as measurements of their task; the campaign's default recommender (its GP with an index kernel
over tasks) then recommends target rows only. The search space is the target pool (the discrete rows,
task = target). Seed s draws the same two initial pool rows as the engine (numpy default_rng(s)).
Writes {"found": seeds x budget top shares, "best": seeds x budget best-so-far y, "chosen": seeds x budget
pool row indices in the order measured, "n_pool", "baybe_version", "seeded" (BayBE's random seed set to s),
"cpu_seconds" (the process's, imports included), "seconds_per_step" and "cpu_seconds_per_step" (wall and
process CPU seconds of one ``recommend``, the mean)}.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

import numpy as np
import pandas as pd


def parameter_values(pool: pd.DataFrame, sources: list[pd.DataFrame], columns: list[str]) -> dict[str, tuple[float, ...]]:
    """Each column's ``NumericalDiscreteParameter`` values: the pool's values and the sources' minimum
    and maximum (an input a source lacks is 0 there, as in its measurements), so that the source
    measurements lie inside the parameter's range. BayBE scales each input by its parameter's value
    range, so nothing else widens it: a spare value is added only where a column would otherwise hold
    a single value (BayBE wants >= 2 values per parameter), and then at that value + 1.0 (any second
    value sets the range of a constant column; there is no range of real values for it to squeeze)."""
    out = {}
    for c in columns:
        vals = {float(v) for v in pool[c]}
        for s in sources:
            if not len(s):
                continue
            vals |= {float(s[c].min()), float(s[c].max())} if c in s.columns else {0.0}
        if len(vals) < 2:  # a constant column: BayBE needs a second value
            vals.add(max(vals) + 1.0)
        out[c] = tuple(sorted(vals))
    return out


def main(job_path: str) -> None:
    import baybe
    import torch
    from baybe import Campaign, active_settings
    from baybe.objectives import SingleTargetObjective
    from baybe.parameters import NumericalDiscreteParameter, TaskParameter
    from baybe.searchspace import SearchSpace, SubspaceDiscrete
    from baybe.targets import NumericalTarget

    torch.set_num_threads(1)
    job = json.loads(open(job_path).read())
    target = pd.read_csv(job["target"])
    inputs = [c for c in target.columns if c != "y"]
    target = target.groupby(inputs, as_index=False)["y"].mean()  # the pool: unique inputs, as the engine's
    sources = {f"source{k}": pd.read_csv(p) for k, p in enumerate(job["sources"])}
    columns = inputs + [c for s in sources.values() for c in s.columns if c not in inputs and c != "y"]
    columns = list(dict.fromkeys(columns))
    pool = target.reindex(columns=columns + ["y"], fill_value=0.0)
    n = len(pool)
    top = set(np.argsort(-pool["y"].to_numpy(), kind="stable")[: math.ceil(0.05 * n)].tolist())
    source_rows = pd.concat([s.reindex(columns=columns + ["y"], fill_value=0.0).assign(task=name) for name, s in sources.items()])
    values = parameter_values(pool, list(sources.values()), columns)
    params = [NumericalDiscreteParameter(c, values=values[c]) for c in columns]
    task = TaskParameter("task", values=("target", *sources), active_values=("target",))
    exp = pool[columns].assign(task="target")
    # One search space for all seeds: a SearchSpace is immutable and in BayBE 0.15 each Campaign keeps
    # its own record of measured and recommended rows, so sharing it changes no decision; building it
    # validates every pool value against every parameter value (quadratic in the pool size), which
    # cost ~20 CPU s per seed on a 300-row pool when it was rebuilt for each one.
    space = SearchSpace(discrete=SubspaceDiscrete.from_dataframe(exp, parameters=[*params, task]))
    found_all, best_all, chosen_all, times, cpu_times = [], [], [], [], []
    for seed in job["seeds"]:
        # BayBE's qLogEI draws its Monte-Carlo base samples from the global torch generator: seeding it
        # per seed makes seed s one campaign whatever chunk runs it (unseeded, it depended on the seeds
        # run before it in the same process)
        active_settings.random_seed = seed
        objective = SingleTargetObjective(NumericalTarget("y"))
        campaign = Campaign(space, objective, allow_recommending_already_measured=False)
        campaign.add_measurements(source_rows, numerical_measurements_must_be_within_tolerance=False)
        rng = np.random.default_rng(seed)
        chosen = rng.choice(n, size=2, replace=False).tolist()
        campaign.add_measurements(pool.iloc[chosen][columns + ["y"]].assign(task="target"))
        while len(chosen) < min(job["budget"], n):
            t0, c0 = time.perf_counter(), time.process_time()
            rec = campaign.recommend(batch_size=1)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
            idx = int(rec.index[0])  # the search space keeps the pool's row index
            chosen.append(idx)
            campaign.add_measurements(pool.iloc[[idx]][columns + ["y"]].assign(task="target"))
        found_all.append((np.cumsum([c in top for c in chosen]) / len(top)).tolist())
        best_all.append(np.maximum.accumulate(pool["y"].to_numpy()[chosen]).tolist())
        chosen_all.append(chosen)
        print(f"baybe seed {seed}: top share {found_all[-1][-1]:.2f}", flush=True)
        # after every seed: a run cut short keeps its finished seeds
        json.dump({"found": found_all, "best": best_all, "chosen": chosen_all, "n_pool": n, "baybe_version": baybe.__version__,
                   "cpu_seconds": time.process_time(), "seeded": True,
                   "seconds_per_step": float(np.mean(times)) if times else None,
                   "cpu_seconds_per_step": float(np.mean(cpu_times)) if cpu_times else None}, open(job["out"], "w"))


if __name__ == "__main__":
    main(sys.argv[1])
