"""Multi-fidelity RMSE table (issue 10 §4): how well is the measured value of held-out materials
predicted, given computed values?

Usage: OMP_NUM_THREADS=1 python benchmarks/fidelity_bench.py [--splits 5] [--measured 50,0]

Data: ``bandgap_dft_vs_expt.csv`` (150 formulas, a DFT and a measured band gap each, eV); inputs are
the eight composition descriptors of ``dm_hpc.learn.features``. Per split s (``default_rng(s)``): 30 %
of formulas held out; of the other 70 %, ``--measured`` have their measured value known (0 = all);
every formula's computed value is known (a DFT screen of all candidates). RMSE on the held-out
measured values of:
  (a) GP on the measured values alone; (b) measured = computed; (c) GP on measured - computed;
  (d) GP with the computed value as an input; (e) multi-task GP (``fit_multitask``);
  engine = ``dm_hpc.learn.multifidelity.fit_multifidelity(kind="auto")`` (5-fold CV among c, d, e).
All GPs with ``MULTITASK_SETTINGS`` (BoTorch's own model, uncapped fits).
"""
from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import torch

torch.set_num_threads(1)
DATA = Path(os.environ.get("DM_HPC_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (``n x 8``), computed and measured band gaps (eV) of the formulas that have both."""
    from dm_hpc.bench.modes import _composition_features

    df = pd.read_csv(DATA / "bandgap_dft_vs_expt.csv")
    dft = df[df["theory_data"] == 1].groupby("composition")["bandgap"].mean()
    exp = df[df["expt_data"] == 1].groupby("composition")["bandgap"].mean()
    both = sorted(set(dft.index) & set(exp.index))
    return _composition_features(both), dft[both].to_numpy(float), exp[both].to_numpy(float)


def main() -> None:
    from dm_hpc.learn import fit_gp, predict
    from dm_hpc.learn.multifidelity import fit_multifidelity
    from dm_hpc.learn.surrogates import MULTITASK_SETTINGS

    ap = argparse.ArgumentParser()
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--measured", default="50,0", help="measured training values per split (0 = all)")
    a = ap.parse_args()
    F, dft, exp = load()
    X, c, y = (torch.tensor(v, dtype=torch.double) for v in (F, dft, exp))
    n = len(y)
    names = ["(a) GP on measured only", "(b) measured = computed", "(c) GP on residual", "(d) computed as input",
             "(e) multi-task GP", "engine: fit_multifidelity(auto)"]
    print(f"N = {n} formulas, 30 % held out, {a.splits} splits; RMSE of measured band gap (eV), mean ± sd over splits\n")
    for m_train in (int(v) for v in a.measured.split(",")):
        res = {k: [] for k in names}
        chosen = Counter()
        for s in range(a.splits):
            rng = np.random.default_rng(s)
            perm = rng.permutation(n)
            test = torch.as_tensor(perm[: round(0.3 * n)])
            train = perm[round(0.3 * n):]
            known = torch.as_tensor(train[:m_train] if m_train else train)
            y_obs = torch.full((n,), float("nan"), dtype=torch.double)
            y_obs[known] = y[known]

            def rmse(mu):
                return float(((mu - y[test]) ** 2).mean().sqrt())

            bounds = torch.stack([X.min(0).values, torch.where(X.max(0).values > X.min(0).values, X.max(0).values, X.min(0).values + 1)])
            alone = fit_gp(X[known], y[known].unsqueeze(-1), bounds=bounds, settings=MULTITASK_SETTINGS)
            res[names[0]].append(rmse(predict(alone, X[test])[0][:, 0]))
            res[names[1]].append(rmse(c[test]))
            for name, kind in zip(names[2:5], ("residual", "feature", "multitask")):
                res[name].append(rmse(fit_multifidelity(X, c, y_obs, kind=kind).predict(X[test], c[test])[0]))
            auto = fit_multifidelity(X, c, y_obs, kind="auto", seed=s)
            chosen[auto.kind] += 1
            res[names[5]].append(rmse(auto.predict(X[test], c[test])[0]))
        label = f"all {len(train)}" if not m_train else str(m_train)
        print(f"measured training values: {label}")
        print("| model | RMSE (eV) |\n|---|---|")
        for k, v in res.items():
            print(f"| {k} | {np.mean(v):.3f} ± {np.std(v):.3f} |")
        print(f"engine's choice per split: {dict(chosen)}\n", flush=True)


if __name__ == "__main__":
    main()
