"""The dev suite on which defaults are chosen (issue 10 §2): single-objective pools, each
materialised as a CSV so that the engine's harness and the stock-BoTorch reference read the same file.

Kinds of set (and only these; other public tables are kept for judging):

- the shared sets, single-objective variants: P3HT conductivity (max), OER overpotential (min),
  steels by tensile strength (max), band gaps by experimental value (max; the eight composition
  descriptors of ``dm_hpc.learn.features`` as inputs);
- pools drawn from BoTorch's standard test functions with Gaussian noise (5 % of the pool's
  standard deviation), 2 to 8 inputs, including compositions on the simplex;
- sub-sampled variants of the shared sets (a random share of the pool, fixed seed).

``DEV_SUITE`` maps a set name to a ``DevSet``; ``materialise(name, data_dir, out_dir)`` writes the
set's CSV (idempotent) and returns the ``DevSet`` with its path filled in.
"""
from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: noise added to synthetic pools, as a share of the noiseless pool's standard deviation
SYNTHETIC_NOISE = 0.05


@dataclass(frozen=True)
class DevSet:
    """One pool: ``source`` says how it is built; ``budget`` counts evaluations incl. the 2 initial."""

    name: str
    source: str  # "shared:<file>", "synthetic:<function>", "simplex:<function>"
    budget: int
    goal: str = "max"
    objective: str = "y"
    inputs: tuple[str, ...] = ()
    dim: int = 0
    n: int = 0  # pool size for synthetic / sub-sampled sets (0: the whole table)
    path: Path | None = None


P3HT_INPUTS = ("P3HT content (%)", "D1 content (%)", "D2 content (%)", "D6 content (%)", "D8 content (%)")
OER_INPUTS = ("ni_load", "fe_load", "co_load", "mn_load", "ce_load", "la_load")
STEEL_INPUTS = ("c", "mn", "si", "cr", "ni", "mo", "v", "n", "nb", "co", "w", "al", "ti")

DEV_SUITE: dict[str, DevSet] = {s.name: s for s in [
    DevSet("p3ht", "shared:p3ht_conductivity.csv", 60, "max", "Conductivity (measured) (S/cm)", P3HT_INPUTS),
    DevSet("oer", "shared:oer_plate_3496.csv", 150, "min", "overpotential", OER_INPUTS),
    DevSet("steel-uts", "shared:steel_strength.csv", 60, "max", "tensile strength", STEEL_INPUTS),
    DevSet("bandgap-expt", "bandgap:bandgap_dft_vs_expt.csv", 50, "max", "bandgap"),
    DevSet("oer-sub400", "shared:oer_plate_3496.csv", 60, "min", "overpotential", OER_INPUTS, n=400),
    DevSet("steel-sub150", "shared:steel_strength.csv", 50, "max", "tensile strength", STEEL_INPUTS, n=150),
    DevSet("branin2", "synthetic:Branin", 40, dim=2, n=300),
    DevSet("levy4", "synthetic:Levy", 50, dim=4, n=300),
    DevSet("ackley3", "synthetic:Ackley", 50, dim=3, n=300),
    DevSet("hartmann6", "synthetic:Hartmann", 60, dim=6, n=400),
    DevSet("hartmann6-simplex", "simplex:Hartmann", 60, dim=6, n=400),
    DevSet("griewank8-simplex", "simplex:Griewank", 60, dim=8, n=400),
]}


def _test_function(name: str, dim: int):
    import botorch.test_functions.synthetic as synth

    cls = getattr(synth, name)
    return cls(negate=True) if name == "Branin" else cls(dim=dim, negate=True)


def _synthetic(s: DevSet, rng: np.random.Generator) -> pd.DataFrame:
    """Uniform points in the function's box, or sparse compositions (2-4 of ``dim`` components,
    fractions on a 0.05 grid) mapped into the box, as for a composition space."""
    import torch

    f = _test_function(s.source.split(":")[1], s.dim)
    lo, hi = f.bounds[0].numpy(), f.bounds[1].numpy()
    if s.source.startswith("simplex:"):
        U = np.zeros((s.n, s.dim))
        for row in U:
            k = rng.integers(2, 5)
            idx = rng.choice(s.dim, k, replace=False)
            w = rng.dirichlet(np.ones(k))
            row[idx] = np.round(w / 0.05) * 0.05
            row /= max(row.sum(), 1e-12)
        Xin = U
        Xf = lo + U * (hi - lo)
    else:
        Xin = lo + rng.random((s.n, s.dim)) * (hi - lo)
        Xf = Xin
    y = f(torch.tensor(Xf)).numpy()
    y = y + SYNTHETIC_NOISE * y.std() * rng.standard_normal(len(y))
    df = pd.DataFrame(Xin, columns=[f"x{i}" for i in range(s.dim)])
    df["y"] = y
    return df


def _bandgap(path: Path) -> pd.DataFrame:
    from dm_hpc.bench.modes import _composition_features
    from dm_hpc.learn.features import DESCRIPTOR_NAMES

    df = pd.read_csv(path)
    lab = df[df["expt_data"] == 1].groupby("composition", as_index=False)["bandgap"].mean()
    out = pd.DataFrame(_composition_features(lab["composition"].astype(str).tolist()), columns=list(DESCRIPTOR_NAMES))
    out["bandgap"] = lab["bandgap"].to_numpy()
    return out


def materialise(name: str, data_dir: str | Path, out_dir: str | Path) -> DevSet:
    """Write ``out_dir/<name>.csv`` (inputs + objective; same content on every call) and return the set."""
    s = DEV_SUITE[name]
    out = Path(out_dir) / f"{name}.csv"
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # stable across processes, unlike hash()
    kind, what = s.source.split(":")
    if kind in ("synthetic", "simplex"):
        df = _synthetic(s, rng)
        inputs = tuple(c for c in df.columns if c != "y")
    elif kind == "bandgap":
        df = _bandgap(Path(data_dir) / what)
        inputs = tuple(c for c in df.columns if c != s.objective)
    else:
        from dm_hpc.bench.pool import load_pool

        df = load_pool(Path(data_dir) / what, list(s.inputs), [s.objective])
        if s.n and s.n < len(df):
            df = df.iloc[np.sort(rng.choice(len(df), s.n, replace=False))]
        inputs = s.inputs
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    return dataclasses.replace(s, inputs=inputs, path=out)
