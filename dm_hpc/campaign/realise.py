"""Proposals -> realised points: what each fidelity will really calculate or make.

A calculation runs on the cell ``compute.structures`` builds: the integer occupation of the
smallest fitting fcc/bcc supercell. Two compositions that round to one cell are one calculation,
so a calculation's realised composition is the cell's own (iterated to a fixed point: the cell
of the cell composition is the same cell), and its process is the middle of the box (calculators
do not model the process route, as ``dataset.training_set`` assumes too). A lab makes a
composition at its stated ``precision`` (atomic fraction step); without one, as proposed. A point
whose realisation has fewer elements than ``space.min_elements``, or lacks an element whose lower
bound is above 0 (a cell or a step too coarse for a small fraction), cannot be made as asked:
None, as for a cell that cannot be built. A lab step that would take a fraction past its bounds
(Au at most 0.35, made to 0.5) is not this point either: the lab's sheet is what it makes, and
it must lie in the space. A cell's fractions may stand off the bounds by its rounding (at most
``composition_tolerance``, or half an atom of the largest cell): the calculation is an
approximation of the proposal, and the realised composition is what the record says.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from dm_hpc.acquire.points import PointKey, ProposedPoint, point_key
from dm_hpc.campaign.spec import CampaignSpec, FidelityKind

#: A cell size chain never takes more steps than there are cell sizes.
_MAX_STEPS = 6


def _midpoint(campaign: CampaignSpec) -> dict[str, float]:
    return {k: 0.5 * (b.low + b.high) for k, b in campaign.space.process.items()}


def realiser(campaign: CampaignSpec) -> Callable[[ProposedPoint], ProposedPoint | None]:
    """The campaign's realisation function: a point -> its realised point (None: cannot be made)."""
    from dm_hpc.compute import get_method
    from dm_hpc.compute.structures import StructureError, plan_structure
    from dm_hpc.data import Composition

    settings = {f.name: get_method(f.method).merged_settings(f.settings) for f in campaign.calculations}
    precision = {f.name: f.precision for f in campaign.fidelities if f.kind == FidelityKind.experiment}
    mid = _midpoint(campaign)

    @lru_cache(maxsize=65536)
    def cell(fidelity: str, comp: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...] | None:
        fractions = dict(comp)
        for _ in range(_MAX_STEPS):
            try:
                plan = plan_structure(Composition(fractions), settings[fidelity])
            except (StructureError, ValueError):
                return None
            n = sum(plan.counts.values())
            nxt = {el: c / n for el, c in plan.counts.items()}
            if point_key(nxt, {}) == point_key(fractions, {}):
                return tuple(sorted(nxt.items()))
            fractions = nxt
        return None  # no fixed point: the cell would change with every build

    least = campaign.space.min_elements
    bounds = {el: (lo, hi) for el, (lo, hi) in campaign.space.elements.items() if el not in campaign.space.excluded}
    required = {el for el, (lo, _) in bounds.items() if lo > 0}

    def realise(p: ProposedPoint) -> ProposedPoint | None:
        if p.fidelity in settings:
            comp = cell(p.fidelity, point_key(p.composition, {})[0])
            # a small cell dropped an element: below min_elements, or one that must be present (Al at
            # [1e-9, 0.001] is in no cell of up to 256 atoms: every "Al alloy" was calculated without Al)
            present = {el for el, x in comp if x > 0} if comp is not None else set()
            if comp is None or len(present) < least or not required <= present:
                return None
            return ProposedPoint(p.fidelity, dict(comp), dict(mid), exactly(p.predicted, dict(comp)))
        step = precision.get(p.fidelity)
        if step:
            n = max(1, round(1.0 / step))
            counts = bounded_counts(p.composition, n, bounds)
            if counts is None:  # no multiple of the step near it lies inside the bounds
                return None
            comp = {el: c / n for el, c in counts.items() if c > 0}
            if len(comp) < least:  # an element below half the lab's step is not made: not this point
                return None
            return ProposedPoint(p.fidelity, comp, dict(p.process), exactly(p.predicted, comp))
        return ProposedPoint(p.fidelity, dict(p.composition), dict(p.process), exactly(p.predicted, p.composition))

    return realise


def exactly(predicted: dict, composition: dict[str, float]) -> dict:
    """``predicted`` (a proposal's ``{"mean": ..., "std": ...}``) with each analytic property (a
    raw-material cost, a mixing entropy: ``compute.descriptors``) at its exact value for the
    realised ``composition``, standard deviation 0: the lab sheet's predicted cost was the model's
    guess at the proposal, where the price table gives it for what is made. Predictions at chosen
    compositions take it too (``prediction.predict_at``)."""
    from dm_hpc.compute.descriptors import ANALYTIC_PROPERTIES, analytic_properties
    from dm_hpc.data import Composition

    means = predicted.get("mean") or {}
    names = [n for n in means if n in ANALYTIC_PROPERTIES]
    exact = analytic_properties(Composition(composition), names) if names else {}
    if not exact:
        return predicted
    return {**predicted, "mean": {**means, **exact}, "std": {**(predicted.get("std") or {}), **dict.fromkeys(exact, 0.0)}}


def bounded_counts(fractions: dict[str, float], n: int, bounds: dict[str, tuple[float, float]]
                   ) -> dict[str, int] | None:
    """Counts of ``n`` steps (summing to ``n``) nearest ``n x fraction`` by largest remainder, each
    within its element's bounds rounded inward to the step (``[ceil(lo n), floor(hi n)]``; an
    element the proposal lacks and the bounds do not require stays absent); None when no counts
    fit. Plain rounding took Au at most 0.35 to 0.5 at a step of 0.5 (a sheet outside the space),
    and a refusal of every such point threw away most draws on a bound (the sampler and the
    optimiser put many there): a proposal on a bound is made at the nearest step inside it."""
    import math

    eps = 1e-9
    names = sorted(set(fractions) | {el for el, (lo, _) in bounds.items() if lo > 0})
    raw = {el: fractions.get(el, 0.0) * n for el in names}
    low = {el: math.ceil(bounds.get(el, (0.0, 1.0))[0] * n - eps) for el in names}
    high = {el: math.floor(bounds.get(el, (0.0, 1.0))[1] * n + eps) if raw[el] > 0 or low[el] > 0 else 0
            for el in names}
    if any(low[el] > high[el] for el in names):
        return None
    counts = {el: min(max(math.floor(raw[el] + eps), low[el]), high[el]) for el in names}
    left = n - sum(counts.values())
    while left:
        up = left > 0  # add to the largest remainder with room, or take from the most over
        room = [el for el in names if (counts[el] < high[el] if up else counts[el] > low[el])]
        if not room:
            return None
        el = min(room, key=lambda e: (-(raw[e] - counts[e] if up else counts[e] - raw[e]), e))  # ties: by name
        counts[el] += 1 if up else -1
        left += -1 if up else 1
    return counts


def stored_keys(campaign: CampaignSpec, df) -> dict[str, set[PointKey]]:
    """Realised keys of the store's records per fidelity of ``campaign`` (``Store.to_dataframe()``).

    A computed record's composition is its cell's; calculations stand at the middle of the box.
    """
    from dm_hpc.campaign.dataset import fidelity_of

    out: dict[str, set[PointKey]] = {f.name: set() for f in campaign.fidelities}
    if df is None or df.empty:
        return out
    x_cols = [c for c in df.columns if c.startswith("x_")]
    pnames = list(campaign.space.process)
    mid = _midpoint(campaign)
    proc_cols = {name: [c for c in df.columns if c.startswith("process.") and c.endswith(f":{name}")]
                 for name in pnames}
    for i, (src, meth) in enumerate(zip(df["source"], df["method"])):
        idx = fidelity_of(campaign, src, meth)
        if idx is None:
            continue
        fid = campaign.fidelities[idx]
        row = df.iloc[i]
        comp = {c[2:]: float(row[c]) for c in x_cols if row[c] == row[c] and row[c] > 0}
        if fid.kind == FidelityKind.calculation:
            proc = mid
        else:
            proc = {}
            for name, cols in proc_cols.items():
                vals = [row[c] for c in cols if row[c] == row[c]]
                proc[name] = float(vals[0]) if vals else mid[name]
        out[fid.name].add(point_key(comp, proc))
    return out
