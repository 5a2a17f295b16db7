"""Calibration table: coverage of 90 % predictive intervals and RMSE on held-out points.

Usage: OMP_NUM_THREADS=1 python benchmarks/calibration_bench.py [--splits 5] [--large 10000,100000]
[--large-sets heteroscedastic,latency] [--large-kinds auto,auto-homoscedastic,gp-2000]
(``--splits 0 --large 2000,5000,10000,30000,100000``: the large-data table alone.)

For every shared dataset (``../shared/datasets``, single-objective variants) and 80/20 random
splits (seeds 0..splits-1), every surrogate kind is fitted on the 80 % and judged on the 20 %:

- ``gp``: the engine's exact GP (``fit_surrogate(kind="gp")``);
- ``stock``: BoTorch's own ``SingleTaskGP`` + ``fit_gpytorch_mll`` with defaults (the yardstick);
- ``multitask``: the engine's multi-task GP, where the set has two fidelities (band gaps: the
  DFT values of the training formulas as the cheap task, the measured values as the target);
- ``ensemble``: the large-data model (calibrated Gaussian ensemble), forced on the small sets too.

Coverage = share of held-out outcomes inside mean +- 1.645 std of the posterior with observation
noise (``dm_hpc.learn.quality``); target 85-95 %. ``--large`` adds synthetic sets of that many
records (8-element compositions, 2,000 fresh test points, known noise-free truth; the
heteroscedastic set below and, with ``--large-sets``, the latency bench's): the model "auto"
chooses, the same with one noise level, the calibrated ensemble, and an exact GP on a random
2,000-point subset as the reference, with RMSE against the truth, latent coverage of the truth (the intervals the
acquisition ranks by), predictive coverage, and fit and propose seconds, wall and the process's CPU
(``large_data_quality``).

Sets: p3ht_conductivity (5 formulation % -> conductivity, replicates averaged), oer_plate_3496
(6 loadings -> overpotential), steel_strength (13 alloying wt% -> tensile strength),
bandgap_dft_vs_expt (composition features -> measured band gap; DFT band gap as second fidelity).
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import torch

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def load_sets(root: Path) -> dict[str, dict]:
    """name -> {"X", "Y"} (and "X_cheap"/"Y_cheap" for the second fidelity), double tensors."""
    from pymatgen.core import Composition

    from dm_hpc.learn import featurize

    def t(a):
        return torch.as_tensor(np.asarray(a, dtype=float), dtype=torch.double)

    sets = {}
    p3 = pd.read_csv(root / "p3ht_conductivity.csv")
    cols = [c for c in p3.columns if c.endswith("content (%)")]
    p3 = p3.groupby(cols, as_index=False).mean()  # replicates: one point, averaged
    sets["p3ht_conductivity"] = {"X": t(p3[cols]), "Y": t(p3[["Conductivity (measured) (S/cm)"]])}
    oer = pd.read_csv(root / "oer_plate_3496.csv")
    cols = [c for c in oer.columns if c.endswith("_load")]
    sets["oer_plate_3496"] = {"X": t(oer[cols]), "Y": t(oer[["overpotential"]])}
    st = pd.read_csv(root / "steel_strength.csv")
    cols = ["c", "mn", "si", "cr", "ni", "mo", "v", "n", "nb", "co", "w", "al", "ti"]
    sets["steel_strength (tensile)"] = {"X": t(st[cols]), "Y": t(st[["tensile strength"]])}
    bg = pd.read_csv(root / "bandgap_dft_vs_expt.csv")
    comps = [dict(Composition(f).fractional_composition.get_el_amt_dict()) for f in bg["reduced_formula"]]
    elements = sorted({e for c in comps for e in c})
    F = featurize(comps, elements)
    F = F[:, F.std(0) > 0]
    expt, dft = bg["expt_data"].to_numpy() == 1, bg["theory_data"].to_numpy() == 1
    key = bg["reduced_formula"].to_numpy()
    order_e, order_d = np.argsort(key[expt]), np.argsort(key[dft])  # pair the two rows of a formula
    assert (key[expt][order_e] == key[dft][order_d]).all()
    sets["bandgap_dft_vs_expt (measured)"] = {
        "X": F[expt][order_e], "Y": t(bg["bandgap"].to_numpy()[expt][order_e]).reshape(-1, 1),
        "Y_cheap": t(bg["bandgap"].to_numpy()[dft][order_d]).reshape(-1, 1),
    }
    return sets


#: kinds that are ``auto`` with one kernel at every size: "auto-matern" (the smaller tables'
#: Matern, ``GP_DEFAULTS``; auto before the kernel by data size) and "auto-rbf" (the large-data
#: kernel, ``subset_gp.LARGE_DATA_SETTINGS``)
PINNED_KERNELS = ("auto-matern", "auto-rbf")


def pinned_settings(kind: str):
    """The ``GPSettings`` a ``PINNED_KERNELS`` kind fits with (read at the call: ``--variant``-style
    rebinding of ``GP_DEFAULTS`` reaches it)."""
    from dm_hpc.learn import gp
    from dm_hpc.learn.subset_gp import LARGE_DATA_SETTINGS

    return gp.GP_DEFAULTS if kind == "auto-matern" else LARGE_DATA_SETTINGS


def fit(kind: str, X, Y, Y_cheap=None, seed: int = 0, subset_points: int | None = None):
    from dm_hpc.learn import fit_surrogate

    subset = {"subset_points": subset_points} if subset_points and kind.startswith("auto") else {}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "stock":
            from botorch.fit import fit_gpytorch_mll
            from botorch.models import SingleTaskGP
            from botorch.models.transforms import Normalize, Standardize
            from gpytorch.mlls import ExactMarginalLogLikelihood

            model = SingleTaskGP(X, Y, input_transform=Normalize(X.shape[-1]), outcome_transform=Standardize(1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            return model.eval()
        if kind == "multitask":  # cheap task 0 at the same inputs, measured task 1 the target
            Xa = torch.cat([X, X])
            task = torch.cat([torch.zeros(len(X)), torch.ones(len(X))]).long()
            return fit_surrogate(Xa, torch.cat([Y_cheap, Y]), kind="multitask", task_index=task, target_task=1)
        if kind == "ensemble":
            return fit_surrogate(X, Y, kind="ensemble", seed=seed)
        if kind in PINNED_KERNELS:
            return fit_surrogate(X, Y, kind="subset-gp" if subset else "auto", seed=seed, settings=pinned_settings(kind), **subset)
        if subset:
            return fit_surrogate(X, Y, kind="subset-gp", seed=seed, **subset)
        return fit_surrogate(X, Y, kind=kind, seed=seed)


def evaluate(name: str, data: dict, kinds: list[str], splits: int, subset_points: int | None = None) -> list[dict]:
    from dm_hpc.learn.quality import held_out_quality

    X, Y = data["X"], data["Y"]
    rows = []
    for kind in kinds:
        if kind == "multitask" and "Y_cheap" not in data:
            continue
        cov, rmse, secs = [], [], []
        for seed in range(splits):
            perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
            k = int(0.8 * len(X))
            tr, te = perm[:k], perm[k:]
            t0 = time.perf_counter()
            model = fit(kind, X[tr], Y[tr], data["Y_cheap"][tr] if "Y_cheap" in data else None, seed, subset_points)
            secs.append(time.perf_counter() - t0)
            q = held_out_quality(model, X[te], Y[te])
            cov.append(q.coverage90)
            rmse.append(q.rmse[0])
        rows.append({"set": name, "n": len(X), "kind": kind, "coverage": np.mean(cov), "cov_min": np.min(cov),
                     "cov_max": np.max(cov), "rmse": np.mean(rmse), "fit_s": np.mean(secs)})
        print_row(rows[-1])
    return rows


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """8-element compositions on the simplex (``n x 8``); a smooth property (``n x 1`` noise-free
    truth) and its measurements with composition-dependent noise (``n x 1``)."""
    rng = np.random.default_rng(seed)
    f = rng.dirichlet(np.full(8, 0.7), size=n)
    t = np.cos(4 * f[:, 0] - 2 * f[:, 3]) + 3 * f[:, 1] * f[:, 2] - 2 * (f[:, 5] - 0.15) ** 2
    y = t + (0.03 + 0.1 * f[:, 4]) * rng.standard_normal(n)
    return torch.as_tensor(f), torch.as_tensor(t).reshape(-1, 1), torch.as_tensor(y).reshape(-1, 1)


def latency_synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The latency bench's set (``latency_bench.py``: 8-element compositions of at most 5 elements, its
    smooth truth, noise sd 0.05 everywhere), drawn afresh with ``seed``: inputs ``n x 8``, truth and
    measurements ``n x 1``."""
    import latency_bench as lb

    rng = np.random.default_rng(seed)
    f, _ = latency_space().sample(n, rng)
    t = lb.truth(f)
    return (latency_space().featurize(f), torch.as_tensor(t).reshape(-1, 1),
            torch.as_tensor(t + lb.NOISE * rng.standard_normal(n)).reshape(-1, 1))


def latency_space():
    from dm_hpc.acquire import DesignSpace
    import latency_bench as lb

    return DesignSpace(elements={e: (0.0, 1.0) for e in lb.ELEMENTS}, max_elements=5, descriptors=False)


#: Large-data sets: the heteroscedastic one above (noise sd 0.03-0.13 over the compositions) and the
#: latency bench's (one noise level).
LARGE_SETS = {"heteroscedastic": synthetic, "latency": latency_synthetic}

#: Large-data candidates: "auto" (what campaigns use: exact GP up to GP_MAX_POINTS, the subset GP
#: beyond, with a noise level that varies over the inputs where the left-out rows show it),
#: "auto-homoscedastic" (the same with one noise level: auto before the varying noise),
#: "auto-matern" (auto with the Matern kernel of smaller tables above GP_MAX_POINTS too: auto before
#: the kernel by data size),
#: "ensemble" (the calibrated ensemble, auto's choice before issue 23) and "gp-2000" (an
#: exact GP conditioned on a random 2,000-point subset: the reference the chosen model must match).
LARGE_KINDS = ("auto", "auto-homoscedastic", "auto-matern", "ensemble", "gp-2000")


def large_data_quality(n: int, seed: int = 0, n_test: int = 2000, kind: str = "auto", q: int = 16,
                       data: str = "heteroscedastic") -> dict:
    """Fit and propose seconds, RMSE against the truth, latent and predictive 90 %-interval coverage
    at ``n`` synthetic records of ``LARGE_SETS[data]``, judged on ``n_test`` fresh points (``LARGE_KINDS``)."""
    from dm_hpc.acquire import DesignSpace, Objective, propose
    from dm_hpc.learn import GP_MAX_POINTS, fit_surrogate
    from dm_hpc.learn.hetero import is_heteroscedastic
    from dm_hpc.learn.quality import against_truth

    X, T, Y = LARGE_SETS[data](n + n_test, seed)
    Xf, Yf = X[:n], Y[:n]
    if kind == "gp-2000":
        sub = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:2000]
        Xf, Yf = Xf[sub], Yf[sub]
    cpu0, t0 = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "auto-homoscedastic":
            model = fit_surrogate(Xf, Yf, kind="auto", seed=seed, noise="homoscedastic")
        elif kind in PINNED_KERNELS:
            model = fit_surrogate(Xf, Yf, kind="auto", seed=seed, settings=pinned_settings(kind))
        else:
            model = fit_surrogate(Xf, Yf, kind="gp" if kind == "gp-2000" else kind, seed=seed)
    fit_s = time.perf_counter() - t0
    space = (latency_space() if data == "latency"
             else DesignSpace(elements={f"E{i}": (0.0, 1.0) for i in range(X.shape[1])}, descriptors=False))
    t0 = time.perf_counter()
    propose(model, space, [Objective(0, True)], q=q, n_candidates=2048)
    propose_s = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0
    quality = against_truth(model, X[n:], T[n:], Y[n:])
    label = kind
    if kind.startswith("auto"):
        label = ("gp" if n <= GP_MAX_POINTS else "subset-gp") + (", varying noise" if is_heteroscedastic(model) else "")
        label += {"auto": " (auto)", "auto-matern": " (auto, Matern)"}.get(kind, " (auto, one noise level)")
    return {"n": n, "set": data, "kind": label, **quality, "fit_s": fit_s, "propose_s": propose_s, "cpu_s": cpu_s, "load": os.getloadavg()[0]}


def print_large_row(r: dict) -> None:
    print(f"| {r['set']} | {r['n']:,} | {r['kind']} | {r['rmse_truth']:.4f} | {r['latent_coverage']:.1%} | "
          f"{r['predictive_coverage']:.1%} | {r['fit_s']:.2f} | {r['propose_s']:.2f} | {r['fit_s'] + r['propose_s']:.2f} | {r['cpu_s']:.2f} "
          f"| {r['load']:.1f} |", flush=True)


def print_row(r: dict) -> None:
    flag = "" if 0.85 <= r["coverage"] <= 0.95 else " (outside 85-95 %)"
    print(f"| {r['set']} | {r['n']:,} | {r['kind']} | {r['coverage']:.1%}{flag} | {r['cov_min']:.1%}-{r['cov_max']:.1%} "
          f"| {r['rmse']:.4g} | {r['fit_s']:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--kinds", default="gp,stock,multitask,ensemble")
    ap.add_argument("--subset-points", type=int, default=0,
                    help="auto kinds of the real-set table condition on this many rows (the large-data path on a small table)")
    ap.add_argument("--sets", default="", help="comma-separated substrings of set names (default: all)")
    ap.add_argument("--large", default="", help="synthetic sizes for the large-data model, e.g. 10000,100000")
    ap.add_argument("--large-kinds", default=",".join(LARGE_KINDS), help="rows of the large-data table (LARGE_KINDS)")
    ap.add_argument("--large-sets", default="heteroscedastic", help="synthetic sets of the large-data table (LARGE_SETS)")
    ap.add_argument("--large-seeds", default="0", help="draws of each large set (data, subset and fit seeds), e.g. 0,1,2")
    ap.add_argument("--jsonl", default="", help="append every large-data row to this file (JSON lines)")
    a = ap.parse_args()
    print("| set | records | surrogate | coverage of 90 % intervals (mean) | per split | RMSE | fit (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, data in (load_sets(DATASETS) if a.splits else {}).items():  # --splits 0: synthetic sets only
        if a.sets and not any(s in name for s in a.sets.split(",")):
            continue
        evaluate(name, data, a.kinds.split(","), a.splits, a.subset_points or None)
    sizes = [int(s) for s in a.large.split(",") if s]
    if sizes:
        print(f"\nLarge data, synthetic (shared 2-core machine, load average {os.getloadavg()[0]:.1f} at start; "
              "seeds " + a.large_seeds + "; seconds are those of a loaded machine, compare rows):\n")
        print("| set | records | surrogate | RMSE vs truth | latent 90 % coverage of truth | predictive 90 % coverage "
              "| fit (s) | propose q=16 (s) | fit + propose (s) | fit + propose (CPU s) | load |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
    from dm_hpc.learn import GP_MAX_POINTS

    for data in a.large_sets.split(",") if sizes else ():
        for n in sizes:
            for seed in (int(s) for s in a.large_seeds.split(",")):
                for kind in a.large_kinds.split(","):
                    if kind == "auto-matern" and n <= GP_MAX_POINTS:
                        continue  # auto is Matern there
                    row = {**large_data_quality(n, seed=seed, kind=kind, data=data), "seed": seed}
                    print_large_row(row)
                    if a.jsonl:
                        with open(a.jsonl, "a") as f:
                            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
