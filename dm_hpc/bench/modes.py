"""Multi-objective and multi-fidelity pool benchmarks.

Multi-objective: hypervolume of the measured points (objectives scaled to [0, 1] by the pool's
range, reference point = the pool's worst value of each objective) as a fraction of the pool's
hypervolume, against evaluations; strategies ``default`` (qLogNEHVI on independent GPs) and
``random``.

Multi-fidelity: each pool item (a formula) has a cheap computed value and an expensive
experimental one. ``single`` measures only experimentally (qLogNEI on a GP of the lab data);
``multi`` fits a multi-task GP on both and picks, per step, the item by qLogNEI on the
experimental task and the fidelity by information gain about the experimental value per unit
cost. Reported: experimental evaluations needed to find 50/80/90 % of the experimental top 5 %.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dm_hpc.bench.pool import AF_LEVELS, cap_budget, check_columns, check_out, load_pool, numeric_columns, read_table, top_set


def _hv(Y: torch.Tensor, ref: torch.Tensor) -> float:
    from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning

    if Y.shape[0] == 0:
        return 0.0
    return float(DominatedPartitioning(ref_point=ref, Y=Y).compute_hypervolume())


def bench_pool_multiobjective(
    data, inputs: Sequence[str], objectives: Sequence[str], goals: Sequence[str], budget: int, seeds: int,
    strategy: str, out, n_init: int = 2, progress=None,
) -> dict:
    """Hypervolume vs evaluations; writes ``out/summary.json`` (``hv_fraction`` list) and a PNG."""
    from dm_hpc.acquire import Objective, select_from_pool
    from dm_hpc.learn import fit_surrogate

    out = check_out(out)
    if strategy not in ("default", "random"):
        raise ValueError("multiobjective mode has strategies default and random")
    if len(objectives) < 2:  # one has no Pareto front, and botorch's hypervolume fails on it deep inside
        raise ValueError(f"multiobjective mode needs at least two objectives, got {list(objectives)}: "
                         "name them comma-separated (--objective y1,y2)")
    if len(goals) not in (1, len(objectives)):
        raise ValueError(f"give one goal for all objectives or one per objective ({len(objectives)}), got {list(goals)}")
    if len(goals) == 1:
        goals = list(goals) * len(objectives)
    pool = load_pool(data, inputs, objectives)
    X = torch.tensor(pool[list(inputs)].to_numpy(float))
    sign = torch.tensor([1.0 if g == "max" else -1.0 for g in goals], dtype=torch.double)
    Yraw = torch.tensor(pool[list(objectives)].to_numpy(float)) * sign
    lo, hi = Yraw.min(0).values, Yraw.max(0).values
    flat = [o for o, d in zip(objectives, (hi - lo).tolist()) if d == 0]
    if flat:  # its [0, 1] scale would divide by 0, and it adds no volume to find
        raise ValueError(f"objective {flat[0]!r} has fewer than 2 distinct values over the pool: it cannot be benchmarked")
    Y = (Yraw - lo) / (hi - lo)  # pool range -> [0, 1]; ref point 0
    ref = torch.zeros(Y.shape[1], dtype=torch.double)
    hv_pool = _hv(Y, ref)
    if hv_pool <= 0:  # every point is the worst in some objective (two rows, each best in one): nothing to find
        raise ValueError(f"{data}: the pool's Pareto front has no volume above the worst value of each objective "
                         f"({', '.join(objectives)}): too few points to benchmark the multi-objective search on")
    n = X.shape[0]
    budget = cap_budget(budget, n)
    bounds = torch.stack([X.min(0).values, torch.where(X.max(0).values > X.min(0).values, X.max(0).values, X.min(0).values + 1)])
    curves, spent, steps = [], 0.0, 0
    for s in range(seeds):
        rng = np.random.default_rng(s)
        obs = list(rng.choice(n, size=n_init, replace=False))
        model = None
        while len(obs) < budget:
            t0 = time.perf_counter()
            rem = np.setdiff1d(np.arange(n), obs)
            if strategy == "random":
                nxt = int(rng.choice(rem))
            else:
                model = fit_surrogate(X[obs], Y[obs], kind="gp", bounds=bounds, warm_start=model)
                objs = [Objective(i, True) for i in range(Y.shape[1])]
                nxt = int(rem[select_from_pool(model, X[obs], X[torch.as_tensor(rem)], objs, q=1)[0]])
            spent += time.perf_counter() - t0
            steps += 1
            obs.append(nxt)
            if progress:
                progress()
        curves.append([_hv(Y[obs[:i]], ref) / hv_pool for i in range(len(obs) + 1)])
    hv = np.mean(np.array(curves), axis=0)
    summary = {
        "data": str(data), "mode": "multiobjective", "strategy": strategy, "objectives": list(objectives),
        "goals": list(goals), "budget": budget, "seeds": seeds, "n_pool": n,
        "hv_fraction": [float(v) for v in hv], "hv_fraction_final": float(hv[-1]),
        "seconds_per_step": spent / max(steps, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    _plot(out / "hypervolume.png", {strategy: hv}, "evaluations", "hypervolume / pool hypervolume", Path(data).name)
    return summary


def _plot(path: Path, curves: dict, xlabel: str, ylabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, c in curves.items():
        ax.plot(np.arange(len(c)), c, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _composition_features(formulas: Sequence[str]) -> np.ndarray:
    from dm_hpc.data.composition import parse_formula
    from dm_hpc.data.descriptors import composition_descriptors
    from dm_hpc.learn.features import composition_matrix

    comps = [parse_formula(f) for f in formulas]
    els = sorted({e for c in comps for e in c})
    return composition_descriptors(composition_matrix(comps, els), els)


def bench_pool_multifidelity(
    data, inputs: Sequence[str], objective: str, goal: str, fidelity_column: str, budget: int, seeds: int,
    out, cost_ratio: float = 10.0, composition_column: str | None = None, n_init: int = 2, progress=None,
) -> dict:
    """Experimental evaluations needed, multi-fidelity vs single-fidelity.

    ``budget`` caps the experimental evaluations per campaign. Rows with ``fidelity_column == 1``
    are experimental; the others are the cheap computed values of the same item (same inputs).
    """
    from dm_hpc.acquire import Fidelity, Objective, choose_fidelity, select_from_pool
    from dm_hpc.learn import fit_gp, fit_multitask

    out = check_out(out)
    if not (math.isfinite(cost_ratio) and cost_ratio > 0):
        raise ValueError(f"cost ratio (a target evaluation's cost over a cheap one's) must be a finite positive number, "
                         f"got {cost_ratio}")
    key_cols = [composition_column] if composition_column else list(inputs)
    check_columns(key_cols, [objective])
    if fidelity_column in (*key_cols, objective):
        raise ValueError(f"{fidelity_column!r} is the fidelity column and cannot also be an input or the objective")
    df = read_table(data)
    for c in [*key_cols, objective, fidelity_column]:
        if c not in df.columns:
            raise ValueError(f"column {c!r} not in {data}")
    df = numeric_columns(df, [*([] if composition_column else key_cols), objective, fidelity_column], str(data))
    df = df.dropna(subset=[*key_cols, objective, fidelity_column])  # a row without its fidelity is neither kind
    sign = 1.0 if goal == "max" else -1.0
    lab = df[df[fidelity_column] == 1].groupby(key_cols, as_index=False)[objective].mean()
    cheap = df[df[fidelity_column] != 1].groupby(key_cols, as_index=False)[objective].mean()
    items = lab.merge(cheap, on=key_cols, suffixes=("_lab", "_cheap"))
    if len(items) < 3:
        raise ValueError(f"{data}: {len(items)} item(s) have both a {fidelity_column} = 1 (target) row and a cheap row; "
                         "the multi-fidelity benchmark needs at least 3")
    if composition_column:
        Xn = _composition_features(items[composition_column].astype(str).tolist())
    else:
        Xn = items[list(inputs)].to_numpy(float)
    X = torch.tensor(Xn, dtype=torch.double)
    y_lab = torch.tensor(items[f"{objective}_lab"].to_numpy(float)) * sign
    y_cheap = torch.tensor(items[f"{objective}_cheap"].to_numpy(float)) * sign
    n = X.shape[0]
    top = top_set(y_lab.numpy())
    bounds = torch.stack([X.min(0).values, torch.where(X.max(0).values > X.min(0).values, X.max(0).values, X.min(0).values + 1)])
    fids = [Fidelity("computed", 0, 1.0), Fidelity("lab", 1, float(cost_ratio), target=True)]
    budget = cap_budget(budget, n)
    result = {}
    for variant in ("single", "multi"):
        found_at, lab_share, costs, spent, steps = [], [], [], 0.0, 0
        for s in range(seeds):
            rng = np.random.default_rng(s)
            lab_obs = list(rng.choice(n, size=n_init, replace=False))
            cheap_obs = list(lab_obs) if variant == "multi" else []
            model, n_choices, n_lab_choices = None, 0, 0
            while len(lab_obs) < budget and len(cheap_obs) + len(lab_obs) < 4 * n:
                t0 = time.perf_counter()
                rem = np.setdiff1d(np.arange(n), lab_obs)
                if variant == "single":
                    model = fit_gp(X[lab_obs], y_lab[lab_obs].unsqueeze(-1), bounds=bounds, warm_start=model)
                    i = int(rem[select_from_pool(model, X[lab_obs], X[torch.as_tensor(rem)], [Objective()], q=1)[0]])
                    lab_obs.append(i)
                else:
                    Xa = torch.cat([X[cheap_obs], X[lab_obs]])
                    ya = torch.cat([y_cheap[cheap_obs], y_lab[lab_obs]]).unsqueeze(-1)
                    ta = torch.tensor([0] * len(cheap_obs) + [1] * len(lab_obs))
                    model = fit_multitask(Xa, ya, ta, target_task=1, bounds=bounds, warm_start=model, all_tasks=[0, 1])
                    i = int(rem[select_from_pool(model, X[lab_obs], X[torch.as_tensor(rem)], [Objective()], q=1)[0]])
                    fid, _ = choose_fidelity(model, X[i : i + 1], fids)
                    n_choices += 1
                    if fid[0].name == "lab" or i in cheap_obs:
                        lab_obs.append(i)
                        n_lab_choices += 1
                    else:
                        cheap_obs.append(i)
                spent += time.perf_counter() - t0
                steps += 1
                if progress:
                    progress()
            hits = np.isin(lab_obs, top)
            cum = np.cumsum(hits) / len(top)
            found_at.append([int(np.argmax(cum >= float(t) - 1e-12)) + 1 if (cum >= float(t) - 1e-12).any() else None for t in AF_LEVELS])
            costs.append(len(lab_obs) * cost_ratio + len(cheap_obs))
            lab_share.append(n_lab_choices / n_choices if n_choices else 1.0)
        evals = {}
        for j, t in enumerate(AF_LEVELS):
            vals = [f[j] for f in found_at]
            evals[t] = float(np.mean(vals)) if all(v is not None for v in vals) else None
            evals[t + "_reached"] = sum(v is not None for v in vals)
        result[variant] = {
            "expt_evals_to": evals, "mean_total_cost": float(np.mean(costs)),
            "lab_choice_share": float(np.mean(lab_share)), "seconds_per_step": spent / max(steps, 1),
        }
    summary = {
        "data": str(data), "mode": "multifidelity", "objective": objective, "goal": goal, "seeds": seeds,
        "budget_expt": budget, "cost_ratio": cost_ratio, "n_pool": n, "n_top": int(len(top)),
        **result, "expt_evals_to": {"single": result["single"]["expt_evals_to"], "multi": result["multi"]["expt_evals_to"]},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


__all__ = ["bench_pool_multifidelity", "bench_pool_multiobjective", "math"]
