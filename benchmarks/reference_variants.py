"""Variants of the stock-BoTorch yardstick's loop, to see whether a change is worth making in the engine.

Usage: OMP_NUM_THREADS=1 python benchmarks/reference_variants.py VARIANT SET[,SET...] [--seeds 10] [--budget 40]
       python benchmarks/reference_variants.py --table

Same protocol as ``../shared/tools/reference_bo.py`` (its ``pool`` is imported by path, so the pool,
the top set and the two initial points per seed are the reference's): per step a GP with
BoTorch's own priors on outcomes standardised with the population standard deviation, fitted by
``fit_gpytorch_mll`` with default settings, and mean + 2 std over the pool. One thing changes:

- ``yj``: the observed outcomes are Yeo-Johnson transformed (scipy) before standardising;
- ``m32``: an ARD Matern-3/2 kernel (the same dimension-scaled length-scale prior) instead of RBF;
- ``bma``: RBF, Matern-5/2 and Matern-3/2 GPs, each fitted, averaged with weights from their
  fitted log marginal likelihoods (moment-matched mixture);
- ``sel``: the same three, the one with the highest fitted log marginal likelihood used;
- ``order``: nothing but the order of the training rows, shuffled at every step. The fitted GP is
  mathematically the same, only its floating-point path differs: a null run that says how far
  two implementations of one method drift apart at 10 seeds.

Writes ``benchmarks/results/reference-variants/SET-VARIANT.json`` (per-seed found shares);
``--table`` prints the markdown table of benchmarks/README.md against the ``default`` and
reference rows in ``benchmarks/results/suite/default/``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch

torch.set_num_threads(1)
warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_bench as PB  # noqa: E402

OUT = PB.ROOT / "benchmarks" / "results" / "reference-variants"
VARIANTS = {"yj": "Yeo-Johnson outcomes", "m32": "Matern-3/2", "bma": "kernel average", "sel": "kernel by evidence",
            "order": "reference, rows shuffled"}


def _gp(X: torch.Tensor, Y: torch.Tensor, kernel: str):
    from botorch.models import SingleTaskGP
    from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
    from gpytorch.kernels import MaternKernel

    if kernel == "rbf":
        return SingleTaskGP(X, Y, outcome_transform=None)
    base = get_covar_module_with_dim_scaled_prior(X.shape[-1], use_rbf_kernel=False)  # Matern-5/2
    if kernel == "m32":
        base = MaternKernel(nu=1.5, ard_num_dims=X.shape[-1], lengthscale_prior=base.lengthscale_prior,
                            lengthscale_constraint=base.raw_lengthscale_constraint)
    return SingleTaskGP(X, Y, outcome_transform=None, covar_module=base)


def _fit(model) -> float:
    """Fit by BoTorch's defaults; the fitted log marginal likelihood (with priors), summed over points."""
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    try:
        fit_gpytorch_mll(mll)
    except Exception:  # as the reference: a failed fit keeps its hyper-parameters
        pass
    model.train()
    with torch.no_grad():
        value = float(mll(model(*model.train_inputs), model.train_targets)) * len(model.train_targets)
    model.eval()
    return value


def _scores(X: torch.Tensor, y: np.ndarray, Xr: torch.Tensor, variant: str) -> torch.Tensor:
    """Mean + 2 std at the ``Xr`` rows of the variant's model fitted on ``(X, y)``."""
    if variant == "yj":
        from scipy.stats import yeojohnson

        warped, _ = yeojohnson(y - np.median(y))
        y = warped if np.all(np.isfinite(warped)) else y
    ys = (y - y.mean()) / (y.std() if y.std() > 0 else 1.0)
    Y = torch.tensor(ys, dtype=torch.double).unsqueeze(-1)
    kernels = {"yj": ["rbf"], "m32": ["m32"], "bma": ["rbf", "m52", "m32"], "sel": ["rbf", "m52", "m32"],
               "order": ["rbf"]}[variant]
    models = [_gp(X, Y, k) for k in kernels]
    evidence = torch.tensor([_fit(m) for m in models])
    w = torch.softmax(evidence, 0)
    if variant == "sel":
        w = torch.nn.functional.one_hot(evidence.argmax(), len(models)).double()
    with torch.no_grad():
        posts = [m.posterior(Xr) for m in models]
    mus = torch.stack([p.mean.squeeze(-1) for p in posts])
    var = torch.stack([p.variance.squeeze(-1) for p in posts])
    mu = (w[:, None] * mus).sum(0)
    mix_var = (w[:, None] * (var + mus**2)).sum(0) - mu**2
    return mu + 2.0 * mix_var.clamp_min(0).sqrt()


def campaign(X: np.ndarray, y: np.ndarray, top: set, variant: str, seed: int, budget: int) -> list[float]:
    n = len(y)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(n, 2, replace=False).tolist()  # the reference's initial points
    Xt = torch.tensor(X, dtype=torch.double)
    while len(chosen) < min(budget, n):
        rest = np.setdiff1d(np.arange(n), chosen)
        rows = np.asarray(chosen)
        if variant == "order":
            rows = rows[np.random.default_rng([seed, len(chosen)]).permutation(len(rows))]
        a = _scores(Xt[rows], y[rows], Xt[rest], variant)
        chosen.append(int(rest[int(torch.argmax(a))]))
    return (np.cumsum([c in top for c in chosen]) / len(top)).tolist()


def table() -> None:
    res = PB.ROOT / "benchmarks" / "results" / "suite" / "default"

    def metrics(path: Path, n: int):
        m = PB.curve_metrics(np.array(json.loads(path.read_text())["found"]), n)
        return m["af"]["0.5"], m["ef_peak"]

    cell = lambda af, ef: f"{'-' if not af else f'{af:.2f}'} / {ef:.2f}"  # noqa: E731
    print("| set | ref-LCB | ref-EI | default | " + " | ".join(VARIANTS.values()) + " |")
    print("|---|" + "---|" * (3 + len(VARIANTS)))
    ratios: dict[str, list[float]] = {v: [] for v in ["default", *VARIANTS]}
    for f in sorted(res.glob("*-reference-gp-lcb.json")):
        name = f.name.removesuffix("-reference-gp-lcb.json")
        n = json.loads(f.read_text())["n_pool"]
        lcb, ei = metrics(f, n), metrics(res / f"{name}-reference-gp-ei.json", n)
        best = max(lcb[1], ei[1])
        row = [cell(*lcb), cell(*ei)]
        for v in ratios:
            p = res / f"{name}-default.json" if v == "default" else OUT / f"{name}-{v}.json"
            if p.exists():
                got = metrics(p, n)
                row.append(cell(*got))
                ratios[v].append(got[1] / best)
            else:
                row.append("")
        print(f"| {name} | " + " | ".join(row) + " |")
    print()
    for v, r in ratios.items():
        if r:
            print(f"- {VARIANTS.get(v, v)}: EF peak / better reference over {len(r)} sets: mean {np.mean(r):.2f}, "
                  f"min {np.min(r):.2f}, below 1.0 on {sum(x < 1 for x in r)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variant", nargs="?", choices=list(VARIANTS))
    ap.add_argument("sets", nargs="?")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    if a.table:
        return table()
    if not a.variant or not a.sets:
        ap.error("VARIANT and SETS are needed (or --table)")
    from dm_hpc.bench.suite import materialise

    ref = PB.reference_module()
    OUT.mkdir(parents=True, exist_ok=True)
    sets_dir = tempfile.mkdtemp(prefix="dm-hpc-devsets-")  # the materialised dev sets (synthetic pools)
    for name in a.sets.split(","):
        s = materialise(name, PB.DATA, sets_dir)
        X, y, top = ref.pool(str(s.path), list(s.inputs), s.objective, s.goal)
        t = time.perf_counter()
        found = [campaign(X, y, top, a.variant, k, a.budget) for k in range(a.seeds)]
        (OUT / f"{name}-{a.variant}.json").write_text(json.dumps({"set": name, "variant": a.variant, "seeds": a.seeds,
                                                                  "budget": a.budget, "n_pool": len(y), "found": found}))
        print(f"{name} {a.variant}: {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
