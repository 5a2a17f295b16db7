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
from dm_hpc.data.rules import within

#: A cell size chain never takes more steps than there are cell sizes.
_MAX_STEPS = 6


def _midpoint(campaign: CampaignSpec) -> dict[str, float]:
    return {k: 0.5 * (b.low + b.high) for k, b in campaign.space.process.items()}


def realiser(campaign: CampaignSpec) -> Callable[[ProposedPoint], ProposedPoint | None]:
    """The campaign's realisation function: a point -> its realised point (None: cannot be made)."""
    from dm_hpc.campaign.labsheet import composition_step, rounded_to
    from dm_hpc.compute import get_method
    from dm_hpc.compute.structures import StructureError, bounded_counts, plan_structure
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

    rules = analytic_rules(campaign)
    sheet_step = {f.name: composition_step(campaign) for f in campaign.fidelities
                  if f.kind == FidelityKind.experiment and not f.precision}

    def realise(p: ProposedPoint) -> ProposedPoint | None:
        made = _realise(p)
        # a cost cap or a descriptor rule is known exactly for what is made: a point that breaks
        # one is not made (the model learns the cost, so its proposals met a cap in probability
        # only, and the random start not at all: gold alloys went to a lab capped at 30 USD/kg)
        if made is None or not rules:
            return made
        if broken(rules, made.composition):
            return None
        step = sheet_step.get(made.fidelity)
        if step:  # the lab weighs what its sheet says: Au 0.00062 (138 USD/kg) is written 0.001 (214)
            shown = {el: rounded_to(x, step) for el, x in made.composition.items()}
            if broken(rules, shown):
                return None
        return made

    def _realise(p: ProposedPoint) -> ProposedPoint | None:
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


#: An analytic constraint: (property, "<=" or ">=", bound in the canonical unit).
Rule = tuple[str, str, float]


def analytic_rules(campaign: CampaignSpec) -> list[Rule]:
    """The campaign's constraints on properties the composition decides (``ANALYTIC_PROPERTIES``)."""
    from dm_hpc.compute.descriptors import ANALYTIC_PROPERTIES

    return [(c.property, c.op, c.value) for c in campaign.constraints if c.property in ANALYTIC_PROPERTIES]


def broken(rules: list[Rule], composition: dict[str, float]) -> list[Rule]:
    """The ``rules`` ``composition`` breaks, each computed exactly (``breaking``)."""
    from dm_hpc.compute.descriptors import analytic_properties
    from dm_hpc.data import Composition

    return breaking(rules, analytic_properties(Composition({el: x for el, x in composition.items() if x > 0}),
                                               [r[0] for r in rules]))


def breaking(rules: list[Rule], values: dict[str, float]) -> list[Rule]:
    """The ``rules`` the analytic ``values`` (property -> canonical value) break (``data.rules.within``). A value
    not given (a cost the price table cannot give) breaks nothing here: validate refuses a capped
    space with an unpriced element."""
    return [rule for rule in rules if rule[0] in values and not within(values[rule[0]], rule[1], rule[2])]


def meeting(rules: list[Rule], fractions, elements: list[str]):
    """Which of ``n`` compositions (``n x E`` atomic fractions, columns ``elements``) meet every
    rule (``data.rules.within``; NaN, undefined, meets), at once: a pool's rows. Returns a boolean array of ``n``."""
    import numpy as np

    from dm_hpc.compute.descriptors import analytic_values

    ok = np.ones(len(fractions), bool)
    for name, op, bound in rules:
        values = analytic_values(name, fractions, elements)
        ok &= np.isnan(values) | within(values, op, bound)
    return ok


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


def rule_corner(c: CampaignSpec, rule: tuple[str, str, float]) -> dict[str, float] | None:
    """The composition of ``c``'s element space where ``rule`` is most easily met, for a property
    that is a weighted mean of per-element values (a VEC by atomic fraction, a cost by mass
    fraction: moving a fraction to a higher-valued element raises either): the fewest elements
    ``max_elements`` and ``min_elements`` allow, the best-valued filled to their upper bounds, the
    others present at 0.001. None for another property, or where the bounds leave no such point."""
    from dm_hpc.compute.descriptors import price_table
    from dm_hpc.data.descriptors import element_data

    name, op, _ = rule
    sp = c.space
    bounds = {el: b for el, b in sp.elements.items() if el not in sp.excluded and b[1] > 0}
    if name == "valence_electron_concentration":
        value = {el: element_data(el).valence_electrons for el in bounds}
    elif name == "raw_material_cost":
        prices = price_table()["prices"]
        if any(el not in prices for el in bounds):
            return None
        value = {el: float(prices[el]) for el in bounds}
    else:
        return None
    order = sorted(bounds, key=lambda el: (value[el] if op == ">=" else -value[el], el), reverse=True)
    chosen = [el for el in order if bounds[el][0] > 0]
    for el in order:
        if len(chosen) >= max(sp.min_elements, 1) and sum(bounds[e][1] for e in chosen) >= 1:
            break
        if el not in chosen and len(chosen) < (sp.max_elements or len(bounds)):
            chosen.append(el)
    x = {el: max(bounds[el][0], 1e-3) for el in chosen}
    left = 1.0 - sum(x.values())
    for el in sorted(chosen, key=order.index):
        add = max(0.0, min(bounds[el][1] - x[el], left))
        x[el] += add
        left -= add
    return x if abs(left) < 1e-9 and all(bounds[el][0] <= v <= bounds[el][1] for el, v in x.items()) else None
