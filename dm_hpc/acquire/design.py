"""Inverse design from store records (``dm-hpc design``): a DataFrame in, ranked candidates out."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from dm_hpc.acquire.inverse import Candidate, Target, TargetError, inverse_design, parse_target
from dm_hpc.acquire.space import DesignSpace


def design_from_dataframe(
    df: pd.DataFrame,
    targets: Sequence[str | Target],
    n: int = 20,
    max_elements: int | None = None,
    excluded: Sequence[str] = (),
    n_candidates: int = 20000,
    seed: int = 0,
) -> tuple[list[Candidate], DesignSpace]:
    """Fit one surrogate per target property on the records and rank new compositions.

    Args:
        df: ``Store.to_dataframe()`` output: ``x_<El>`` atomic fractions, one column per property
            (canonical units), ``source`` (computed | experimental).
        targets: target strings or ``Target``s.
        max_elements: element-count limit of candidates (default: the most seen in the data).

    Where a property has both computed and experimental records, a multi-task GP over the two
    sources predicts the experimental value (computed data informs it, never silently mixed);
    otherwise the automatic surrogate of ``fit_surrogate`` is used. The design space is the
    data's elements with bounds up to the largest fraction seen (no extrapolation in range).

    Returns:
        (candidates, the design space used).
    """
    from dm_hpc.learn import fit_surrogate

    tg = [parse_target(t) if isinstance(t, str) else t for t in targets]
    x_cols = [c for c in df.columns if c.startswith("x_")]
    if not x_cols:
        raise TargetError("the records have no composition columns (x_<El>)")
    frac_all = df[x_cols].fillna(0.0).to_numpy(float)
    used = frac_all.max(0) > 0
    els = [c[2:] for c, u in zip(x_cols, used) if u and c[2:] not in set(excluded)]
    cols = [f"x_{e}" for e in els]
    hi = df[cols].fillna(0.0).to_numpy(float).max(0)
    k_seen = int((df[cols].fillna(0.0).to_numpy(float) > 0).sum(1).max())
    space = DesignSpace(elements={e: (0.0, float(min(1.0, h))) for e, h in zip(els, hi)},
                        max_elements=max_elements or k_seen, excluded=frozenset(excluded))
    models = {}
    for t in tg:
        if t.property in models:
            continue
        if t.property not in df.columns:
            raise TargetError(f"no records of property {t.property!r} in the store")
        rows = df[df[t.property].notna()]
        if len(rows) < 3:
            raise TargetError(f"only {len(rows)} records of {t.property!r}; need at least 3")
        f = rows[cols].fillna(0.0).to_numpy(float)
        f = f / np.where(f.sum(1, keepdims=True) > 0, f.sum(1, keepdims=True), 1.0)
        X = space.featurize(f)
        Y = torch.tensor(rows[t.property].to_numpy(float)).unsqueeze(-1)
        src = rows["source"].astype(str).to_numpy() if "source" in rows else np.array(["experimental"] * len(rows))
        if len(set(src)) > 1 and "experimental" in set(src):
            task = torch.tensor((src == "experimental").astype(int))
            models[t.property] = fit_surrogate(X, Y, kind="multitask", task_index=task, target_task=1)
        else:
            models[t.property] = fit_surrogate(X, Y, kind="auto", seed=seed)
    return inverse_design(models, space, tg, n=n, n_candidates=n_candidates, seed=seed), space
