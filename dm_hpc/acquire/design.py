"""Inverse design from store records (``dm-hpc design``): a DataFrame in, ranked candidates out.

Every ``source:method`` of the records is its own fidelity (``computed:emt``, ``computed:gpaw``,
``experimental:lab``): values of one property from two methods are never pooled as one quantity.
With several fidelities a multi-task GP predicts the target fidelity, which defaults to the
experimental one (the most records among several labs), else the scarcest computed method (the
expensive one, by how campaigns spend budgets); ``target_fidelity`` chooses it explicitly.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dm_hpc.acquire.inverse import Candidate, Target, TargetError, inverse_design, parse_target
from dm_hpc.acquire.space import DesignSpace


@dataclass(frozen=True)
class DesignModels:
    """One fitted surrogate per target property, all predicting fidelity ``target``."""

    models: dict
    fidelities: list[str]
    target: str


def fidelity_labels(df: pd.DataFrame) -> np.ndarray:
    """``source:method`` per row (``source`` alone where the method is missing)."""
    src = df["source"].astype(str) if "source" in df else pd.Series(["experimental"] * len(df), index=df.index)
    meth = df["method"].fillna("").astype(str) if "method" in df else pd.Series([""] * len(df), index=df.index)
    return np.array([f"{s}:{m}" if m else s for s, m in zip(src, meth)])


def default_target(labels: Sequence[str]) -> str:
    """The experimental fidelity with most rows, else the computed one with fewest."""
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    expt = [(c, v) for v, c in zip(values, counts) if v.startswith("experimental")]
    if expt:
        return max(expt)[1]
    return min((c, v) for v, c in zip(values, counts))[1]


def _space(df: pd.DataFrame, max_elements: int | None, excluded: Sequence[str]) -> DesignSpace:
    x_cols = [c for c in df.columns if c.startswith("x_")]
    if not x_cols:
        raise TargetError("the records have no composition columns (x_<El>)")
    used = df[x_cols].fillna(0.0).to_numpy(float).max(0) > 0
    els = [c[2:] for c, u in zip(x_cols, used) if u and c[2:] not in set(excluded)]
    frac = df[[f"x_{e}" for e in els]].fillna(0.0).to_numpy(float)
    k_seen = int((frac > 0).sum(1).max())
    return DesignSpace(elements={e: (0.0, float(min(1.0, h))) for e, h in zip(els, frac.max(0))},
                       max_elements=max_elements or k_seen, excluded=frozenset(excluded))


def fit_design_models(
    df: pd.DataFrame,
    properties: Sequence[str],
    target_fidelity: str | None = None,
    space: DesignSpace | None = None,
    seed: int = 0,
) -> DesignModels:
    """Fit a surrogate per property on the rows that have it, one task per ``source:method``."""
    from dm_hpc.learn.fitted import fit_fidelity_surrogate

    space = space or _space(df, None, ())
    cols = [f"x_{e}" for e in space.element_names]
    labels_all = fidelity_labels(df)
    target = target_fidelity or default_target(labels_all)
    if target not in set(labels_all):
        raise TargetError(f"no records of fidelity {target!r} (have: {', '.join(sorted(set(labels_all)))})")
    models = {}
    for prop in dict.fromkeys(properties):
        if prop not in df.columns:
            raise TargetError(f"no records of property {prop!r} in the store")
        has = df[prop].notna().to_numpy()
        rows, labels = df[has], labels_all[has]
        if len(rows) < 3:
            raise TargetError(f"only {len(rows)} records of {prop!r}; need at least 3")
        f = rows.reindex(columns=cols).fillna(0.0).to_numpy(float)
        f = f / np.where(f.sum(1, keepdims=True) > 0, f.sum(1, keepdims=True), 1.0)
        Y = torch.tensor(rows[prop].to_numpy(float)).unsqueeze(-1)
        fitted = fit_fidelity_surrogate(space.featurize(f), Y, list(labels), outputs=[prop], target=target,
                                        space=space, all_fidelities=sorted(set(labels_all)), seed=seed)
        models[prop] = fitted.model
    return DesignModels(models, sorted(set(labels_all)), target)


def design_from_dataframe(
    df: pd.DataFrame,
    targets: Sequence[str | Target],
    n: int = 20,
    max_elements: int | None = None,
    excluded: Sequence[str] = (),
    n_candidates: int = 20000,
    seed: int = 0,
    target_fidelity: str | None = None,
) -> tuple[list[Candidate], DesignSpace]:
    """Fit one surrogate per target property on the records and rank new compositions.

    Args:
        df: ``Store.to_dataframe()`` output: ``x_<El>`` atomic fractions, one column per property
            (canonical units), ``source`` and ``method``.
        targets: target strings or ``Target``s.
        max_elements: element-count limit of candidates (default: the most seen in the data).
        target_fidelity: ``source:method`` to predict (default: ``default_target``).

    The design space is the data's elements with bounds up to the largest fraction seen (no
    extrapolation in range).

    Returns:
        (candidates, the design space used).
    """
    tg = [parse_target(t) if isinstance(t, str) else t for t in targets]
    space = _space(df, max_elements, excluded)
    fitted = fit_design_models(df, [t.property for t in tg], target_fidelity, space=space, seed=seed)
    return inverse_design(fitted.models, space, tg, n=n, n_candidates=n_candidates, seed=seed), space
