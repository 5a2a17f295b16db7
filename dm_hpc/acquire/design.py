"""Inverse design from store records (``dm-hpc design``): a DataFrame in, ranked candidates out.

Every ``source:method`` of the records is its own fidelity (``computed:emt``, ``computed:gpaw``,
``experimental:lab``): values of one property from two methods are never pooled as one quantity.
With several fidelities a multi-task GP predicts the target fidelity, which defaults to the
experimental one (the most records among several labs), else the scarcest computed method (the
expensive one, by how campaigns spend budgets); ``target_fidelity`` chooses it explicitly.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from dm_hpc.acquire.inverse import (Candidate, Exact, ExactProperty, Target, TargetError, check_targets, inverse_design,
                                    parse_target)
from dm_hpc.acquire.space import DesignSpace
from dm_hpc.acquire.validity import charge_balanced, formula, integer_formulas, known_index, mostly_balanced
from dm_hpc.data.columns import process_values

#: default time budget of one design call, s (the fit is never cut; scoring and listing are)
DEFAULT_MAX_SECONDS = 60.0
#: L-BFGS iteration cap of the design's multi-task fit: BoTorch's uncapped fit took ~75 s of a
#: 94 s design on 40 records of 20 ionic compounds (loaded machine); docs/measurements/design.md
DESIGN_FIT_MAXITER = 60


@dataclass(frozen=True)
class DesignModels:
    """One fitted surrogate per target property, all predicting fidelity ``target``."""

    models: dict
    fidelities: list[str]
    target: str


#: Fewest records of a property a design fits it on: the probability of meeting a target rests on
#: that property's model alone (a campaign's model may start from 2, ``dataset.MIN_TRAINING_RECORDS``,
#: beside its other properties and the acquisition's exploration).
MIN_RECORDS = 3

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
    if not els:  # (pymatgen's "Invalid formula=''" was the message)
        raise TargetError(f"every element of the records is excluded ({', '.join(sorted(excluded))}): nothing to design")
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
    prefit: dict | None = None,
) -> DesignModels:
    """Fit a surrogate per property on the rows that have it, one task per ``source:method``;
    ``prefit``: property -> a model the caller fitted on ``space``'s features (kept, not refitted)."""
    from dm_hpc.learn.fitted import fit_fidelity_surrogate
    from dm_hpc.learn.surrogates import GPSettings

    space = space or _space(df, None, ())
    cols = [f"x_{e}" for e in space.element_names]
    labels_all = fidelity_labels(df)
    target = target_fidelity or default_target(labels_all)
    if target not in set(labels_all):
        raise TargetError(f"no records of fidelity {target!r} (have: {', '.join(sorted(set(labels_all)))})")
    models = {}
    for prop in dict.fromkeys(properties):
        if prop in (prefit or {}):
            models[prop] = prefit[prop]
            continue
        if prop not in df.columns:
            raise TargetError(f"no records of property {prop!r} in the store")
        has = df[prop].notna().to_numpy()
        rows, labels = df[has], labels_all[has]
        if len(rows) < MIN_RECORDS:
            raise TargetError(f"only {len(rows)} records of {prop!r}; need at least {MIN_RECORDS}")
        f = rows.reindex(columns=cols).fillna(0.0).to_numpy(float)
        f = f / np.where(f.sum(1, keepdims=True) > 0, f.sum(1, keepdims=True), 1.0)
        Y = torch.tensor(rows[prop].to_numpy(float)).unsqueeze(-1)
        fitted = fit_fidelity_surrogate(space.featurize(f, _process(rows, space)), Y, list(labels), outputs=[prop], target=target,
                                        space=space, all_fidelities=sorted(set(labels_all)), seed=seed,
                                        multitask_options={"settings": GPSettings(full_fit_points=0),
                                                           "maxiter": DESIGN_FIT_MAXITER, "seed": seed})
        models[prop] = fitted.model
    return DesignModels(models, sorted(set(labels_all)), target)


def _process(rows: pd.DataFrame, space: DesignSpace) -> np.ndarray | None:
    """The rows' process parameters in ``space``'s order (canonical units), the box's middle where
    a record has none (calculations: as a campaign trains): a space with process variables scores
    candidates with them, so its models must be fitted on them too."""
    if not space.process:
        return None
    out = np.zeros((len(rows), len(space.process)))
    for j, (name, (low, high)) in enumerate(space.process.items()):
        values = process_values(rows, name)
        out[:, j] = np.where(np.isnan(values), 0.5 * (low + high), values)
    return out


def design_from_dataframe(df: pd.DataFrame, targets: Sequence[str | Target],
                          **options: Any) -> tuple[list[Candidate], DesignSpace]:
    """``design`` without the known materials: (new candidates, the design space used).
    ``options`` are ``design``'s keyword arguments."""
    res = design(df, targets, **options)
    return res.new, res.space


@dataclass(frozen=True)
class KnownMaterial:
    """A composition already in the store that meets every target by its measured values.

    Attributes:
        measured: mean measured value per target property at ``fidelity``, canonical units.
        records: how many records the means are over.
    """

    composition: dict[str, float]
    measured: dict[str, float]
    fidelity: str
    records: int


@dataclass(frozen=True)
class DesignResult:
    """New candidates (ranked; none of them in the store) and known materials (apart)."""

    new: list[Candidate]
    known: list[KnownMaterial]
    space: DesignSpace
    fidelity: str
    charge_balance: bool


def _fractions(df: pd.DataFrame, elements: Sequence[str]) -> np.ndarray:
    f = df.reindex(columns=[f"x_{e}" for e in elements]).fillna(0.0).to_numpy(float)
    return f / np.where(f.sum(1, keepdims=True) > 0, f.sum(1, keepdims=True), 1.0)


def known_materials(df: pd.DataFrame, targets: Sequence[Target], fidelity: str, elements: Sequence[str],
                    n: int) -> list[KnownMaterial]:
    """Up to ``n`` store compositions whose mean measured values at ``fidelity`` meet every target,
    the largest margin over the first target first."""
    props = list(dict.fromkeys(t.property for t in targets))  # a window names its property twice
    rows = df[(fidelity_labels(df) == fidelity) & df.reindex(columns=props).notna().all(axis=1).to_numpy()]
    if rows.empty:
        return []
    keys = [tuple(r) for r in np.round(_fractions(rows, elements), 4)]
    grouped = rows[props].groupby(pd.Series(keys, index=rows.index), sort=True)
    means, counts = grouped.mean(), grouped.size()
    ok = [k for k in means.index if all(t.met(float(means.at[k, t.property])) for t in targets)]
    t0 = targets[0]
    sign = 1.0 if t0.op in (">=", ">") else -1.0
    ok.sort(key=lambda k: (-sign * float(means.at[k, t0.property]), k))
    return [KnownMaterial({e: float(v) for e, v in zip(elements, k) if v > 0},
                          {p: float(means.at[k, p]) for p in props}, fidelity, int(counts[k])) for k in ok[:n]]


def design(
    df: pd.DataFrame,
    targets: Sequence[str | Target],
    n: int = 20,
    max_elements: int | None = None,
    excluded: Sequence[str] = (),
    n_candidates: int = 20000,
    seed: int = 0,
    target_fidelity: str | None = None,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    progress: Callable[[str], None] | None = None,
    space: DesignSpace | None = None,
    models: dict | None = None,
    exact: Mapping[str, Exact] | None = None,
) -> DesignResult:
    """New candidates most likely to meet every target, and the known materials that do.

    Args:
        df: ``Store.to_dataframe()`` output: ``x_<El>`` atomic fractions, one column per property
            (canonical units), ``source`` and ``method``.
        targets: target strings or ``Target``s.
        max_elements: element-count limit of candidates (default: the most seen in the data).
        target_fidelity: ``source:method`` to predict (default: ``default_target``).
        max_seconds: budgets scoring and listing after the fit (the list is cut short, never the fit).
        progress: receives plain progress lines.
        space / models: a caller's design space and its models per property on that space's features
            (a campaign's model with its transfer sources); properties without a model are fitted here
            on ``space``. Default: the space of the data and a model per property fitted here.
        exact: property -> its value computed from compositions (``ExactProperty``: a raw-material
            cost from a price table), taken in place of a model wherever it is defined for every
            element of the space (a price the table lacks leaves the model).

    The design space is the data's elements with bounds up to the largest fraction seen (no
    extrapolation in range). Compositions already in the store are listed apart as known
    materials, never as new candidates.

    A candidate within ``validity.KNOWN_TOLERANCE`` of a store composition is never listed as
    new. When the store's compositions are mostly charge-balanced (ionic data), candidates are
    integer formulas of a few atoms with a balanced oxidation-state guess; others are dropped
    before ranking.
    """
    start = time.monotonic()

    def say(line: str) -> None:
        if progress is not None:
            progress(f"[{time.monotonic() - start:5.1f} s] {line}")

    tg = [parse_target(t) if isinstance(t, str) else t for t in targets]
    check_targets(tg)
    from dm_hpc.data.elements import ELEMENTS, unknown_element

    unknown = sorted(set(excluded) - set(ELEMENTS))
    if unknown:  # a typo would exclude nothing without a word
        raise TargetError("excluded: " + "; ".join(unknown_element(el) for el in unknown))
    banned = np.zeros(0, int)
    if space is None:
        space = _space(df, max_elements, excluded)
    else:  # the models' feature columns stay: excluded elements are refused among candidates instead
        space = dataclasses.replace(space, max_elements=max_elements or space.max_elements)
        banned = np.array([i for i, e in enumerate(space.element_names) if e in set(excluded)], int)
    els = space.element_names
    store_frac = _fractions(df, els)
    store_formulas = [formula(c, els) for c in integer_formulas(store_frac, max_atoms=24)]
    ionic = mostly_balanced(store_formulas)
    say(f"fitting {', '.join(dict.fromkeys(t.property for t in tg))} on {len(df)} records"
        f" ({len(els)} elements{'; ionic: charge balance required' if ionic else ''})")
    computed = {}
    for prop, values in (exact or {}).items():
        if prop not in {t.property for t in tg}:
            continue
        if np.isnan(values(np.eye(len(els)), els)).any():  # an element it is not defined for: learned instead
            say(f"{prop} is not defined for every element of the space: predicted by a model")
            continue
        computed[prop] = ExactProperty(values, els)
    if computed:
        say(f"{', '.join(computed)}: computed from the composition, exactly")
    fitted = fit_design_models(df, [t.property for t in tg], target_fidelity, space=space, seed=seed,
                               prefit={**(models or {}), **computed})
    say("fitted")
    pool_space = space
    if ionic and space.pool is None:
        frac, proc = space.sample(n_candidates, np.random.default_rng(seed))
        counts = integer_formulas(frac)
        counts, first = np.unique(counts, axis=0, return_index=True)
        keep = counts.sum(1) > 0
        counts, first = counts[keep], first[keep]
        pool_space = dataclasses.replace(space, pool=(counts / counts.sum(1, keepdims=True), proc[first]))

    def accept(f: np.ndarray) -> bool:
        if known_index(f, store_frac) >= 0 or (banned.size and np.any(f[banned] > 0)):
            return False
        return not ionic or charge_balanced(formula(integer_formulas(f[None, :])[0], els))

    new = inverse_design(fitted.models, pool_space, tg, n=n, n_candidates=n_candidates, seed=seed,
                         accept=accept, deadline=start + max_seconds, progress=say)
    if computed:  # a stored composition meets an exact target by its composition (lab rows hold no cost)
        df = df.assign(**{prop: model.values(store_frac, els) for prop, model in computed.items()})
    known = known_materials(df, tg, fitted.target, els, n)
    say(f"done: {len(new)} new candidates, {len(known)} known materials")
    return DesignResult(new, known, space, fitted.target, ionic)
