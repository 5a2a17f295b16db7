"""From the campaign file to the decision layer's parts: design space, costs, fitted surrogate,
and the planner (``acquire.planner``) the campaign's mode and stage call for.

The choice of fidelity per proposal (which calculation, or the lab) is the acquisition's
(information gain about the target per unit cost); the campaign only offers the fidelities
its budget and circuit breakers still allow.
"""
from __future__ import annotations

import hashlib

import numpy as np

from dm_hpc.acquire.gaps import GapFilling
from dm_hpc.acquire.planner import BoTorchOptimisation, LabSeeding, Planner, PlanRequest, RandomStart
from dm_hpc.campaign.candidates import pool_compositions, pool_table  # noqa: F401 -- pool_compositions: this module's face too
from dm_hpc.campaign.dataset import TrainingSet, own_in_model, sources_enter, target_index  # noqa: F401 -- target_index: this module's face too
from dm_hpc.campaign.spec import CampaignSpec, FidelityKind, Goal

from dm_hpc.compute.methods import TYPICAL_ATOMS  # noqa: E402 -- one size for cost and duration


def design_space(campaign: CampaignSpec):
    """The acquisition's ``DesignSpace`` for a campaign (continuous, or a candidate pool)."""
    from dm_hpc.acquire import DesignSpace

    sp = campaign.space
    if sp.pool is not None:
        comps, elements = pool_table(sp.pool, sp.pool_map)
        return DesignSpace.from_pool([dict(c) for c in comps], elements=list(elements))
    return DesignSpace(
        elements={el: tuple(b) for el, b in sp.elements.items()},
        max_elements=sp.max_elements,
        excluded=frozenset(sp.excluded),
        process={k: (b.low, b.high) for k, b in sp.process.items()},
        min_elements=sp.min_elements,
    )


def fidelity_costs(campaign: CampaignSpec) -> dict[str, float]:
    """Cost of one evaluation per fidelity, in core-hours (lab-days converted by the budget)."""
    from dm_hpc.compute import get_method

    costs = {}
    for fid in campaign.fidelities:
        if fid.kind == FidelityKind.experiment:
            costs[fid.name] = fid.lab_days * campaign.budget.core_hours_per_lab_day
        elif fid.cost == "auto":
            costs[fid.name] = get_method(fid.method).cost_core_seconds(TYPICAL_ATOMS) / 3600.0
        else:
            costs[fid.name] = float(fid.cost)
    return costs


#: Random compositions drawn to see whether a space's rules are met without its corners (``candidate_space``).
ANCHOR_CHECK_DRAWS = 256


def candidate_space(campaign: CampaignSpec):
    """``design_space`` as the planners draw from it: a pool without the rows that break a rule the
    composition decides (``raw_material_cost <= 200 USD/kg``; the realiser would not make them); a
    continuous space whose random draws rarely meet the rules with the points where each is most
    easily met among its candidates (``DesignSpace.anchors``: a rule validate found met only
    there was met by no draw, and the campaign suggested nothing).
    Left in, the optimiser proposed the same over-cap rows round after round and the batch came
    from the random fallback, or the pool read as exhausted with cheap rows never proposed."""
    import dataclasses

    from dm_hpc.campaign.realise import analytic_rules, meeting, rule_corner

    space = design_space(campaign)
    rules = analytic_rules(campaign)
    if not rules:
        return space
    if space.pool is None:  # where each rule is most easily met, drawn first as validate drew them,
        # when random draws rarely meet the rules (else every random start began at one corner: review)
        if meeting(rules, space.sample(ANCHOR_CHECK_DRAWS, np.random.default_rng(0))[0], space.element_names).any():
            return space
        corners = [comp for rule in rules if (comp := rule_corner(campaign, rule)) is not None]
        if not corners:
            return space
        anchors = np.array([[comp.get(el, 0.0) for el in space.element_names] for comp in corners])
        return dataclasses.replace(space, anchors=anchors)
    frac, proc = space.pool
    keep = meeting(rules, frac, space.element_names)
    return dataclasses.replace(space, pool=(frac[keep], proc[keep]))


def fit_model(campaign: CampaignSpec, data: TrainingSet, for_decisions: bool = False):
    """Fit the campaign's surrogate on ``data``; returns a ``learn.fitted.FittedSurrogate`` whose
    fidelities are the campaign's fidelity names (task id = position in the campaign file).
    ``for_decisions``: the model will choose points, so with one objective its ``decision_model``
    is fitted too (``decision_outputs``)."""
    import torch

    from dm_hpc.learn.features import composition_matrix
    from dm_hpc.learn.fitted import fit_fidelity_surrogate

    space = design_space(campaign)
    X = space.featurize(composition_matrix(data.compositions, space.element_names), data.process)
    Y = torch.tensor(np.array(data.Y), dtype=torch.double)
    names = [f.name for f in campaign.fidelities]
    target = target_index(campaign)
    if target not in set(data.fidelity.tolist()):  # predict what was measured, not an empty task
        target = int(data.fidelity.max())
    # a model file trained on the campaign's own records is not related data (validate refuses it)
    sources = [s for s in data.transfer if len(s.y) or (s.model is not None and not own_in_model(s.model, data.record_ids))]
    if sources and len(data) and sources_enter(campaign, data.fidelity):
        return _fit_with_sources(campaign, space, X, Y, names[int(data.fidelity[0])], sources)
    decides = decision_outputs(campaign) if for_decisions else ()
    computed = tuple(campaign.properties.index(p) for p in exact_outputs(campaign, space)) if decides else ()
    return fit_fidelity_surrogate(X, Y, [names[i] for i in data.fidelity], outputs=campaign.properties,
                                  target=names[target], space=space,
                                  kind=campaign.learning.surrogate, all_fidelities=names, seed=campaign.seed,
                                  decision_outputs=decides, computed_outputs=computed)


def decision_outputs(campaign: CampaignSpec) -> tuple[int, ...]:
    """The output a decision model is fitted on warped values of (``learn.decision``): the one
    objective's, unless a constraint bounds that property too (bounds are in its raw units) or the
    composition decides it (ranked by its computed value: no model decides)."""
    if len(campaign.objectives) != 1:
        return ()
    prop = campaign.objectives[0].property
    if any(c.property == prop for c in campaign.constraints):
        return ()
    from dm_hpc.compute.descriptors import analytic_functions

    # computed, not modelled (``optimiser``); the space (a pool campaign reads its pool for it)
    # only for a property the composition can decide
    if analytic_functions([prop]) and prop in exact_outputs(campaign, design_space(campaign)):
        return ()
    return (campaign.properties.index(prop),)


def _fit_with_sources(campaign: CampaignSpec, space, X, Y, fidelity: str, sources: list):
    """The campaign's one property on its one observed fidelity, with its transfer sources
    (``learn.transfer.fit_transfer``: weighted by the campaign's own data, cold when they do not help).

    A model source (``SourceRows.model``) enters as its predictions at ``MODEL_SOURCE_POINTS`` seeded
    draws of the design space plus the campaign's own points (the multitask kind's data), and as
    itself for the prior kind (``campaign.standard.ModelOnSpace``); a store source as its GP on its
    own elements for the prior kind (``source_tables``)."""
    from dm_hpc.learn.fitted import FittedSurrogate
    from dm_hpc.learn.transfer import fit_transfer

    tables, outside = source_tables(campaign, space, X, sources)
    fit = fit_transfer(X, Y[:, 0], tables, seed=campaign.seed)
    info = {"kind": fit.kind, "weights": fit.weights, "loo": fit.loo, "loo_rmse": fit.loo_rmse,
            "source_points": fit.source_points, "outside_space": outside, "fit": fit, "tables": tables}
    return FittedSurrogate(fit.model, tuple(campaign.properties), (fidelity,), fidelity, space, X, transfer=info)


def source_tables(campaign: CampaignSpec, space, X, sources: list) -> tuple[list, dict[str, int]]:
    """``learn.transfer.Source`` per source (``dataset.SourceRows``) on the campaign's features, and
    per source the records with elements outside the design space. ``X``: the campaign's own
    ``n x d`` features (a model source is also read there).

    A store source's prior-mean model is a GP on its own elements (``_records_source``): all its
    records enter it, and it reads a campaign composition on the elements it knows, renormalised.
    Its multitask rows are those records inside the design space (the multi-task GP's inputs are
    the campaign's features, where another element has no column)."""
    known = set(space.element_names)
    tables, outside = [], {}
    for s in sources:
        if s.model is not None:  # the model's inputs are the campaign's features: other elements cannot enter
            tables.append(_model_source(campaign, space, X, s))
            outside[s.name] = 0
            continue
        inside = np.array([set(c) <= known for c in s.compositions], bool)
        outside[s.name] = int((~inside).sum())
        tables.append(_records_source(campaign, space, X, s, inside))
    return tables, outside


#: fitted source GPs by what they were fitted on (features, seed, rows): a campaign refits its own
#: model every few records, its sources' do not change between refits (a source GP on 2,000 records
#: costs a few CPU seconds a refit); oldest dropped beyond ``_SOURCE_GPS_KEPT``
_SOURCE_GPS: dict[str, object] = {}
_SOURCE_GPS_KEPT = 8


def _records_source(campaign: CampaignSpec, space, X, rows, inside: np.ndarray):
    """A store source (``dataset.SourceRows``) as a ``learn.transfer.Source``: its prior-mean model a GP
    fitted on its records featurised on its own elements (the campaign's that it holds, then its
    others, sorted), read on the campaign's features by
    ``campaign.standard.RecordsOnOwnElements``; its multitask rows the records ``inside`` the
    design space on the campaign's features (the GP's predictions at design-space draws and at ``X``
    when fewer than two are)."""
    import torch

    from dm_hpc.campaign.standard import RecordsOnOwnElements, _features_of
    from dm_hpc.learn.features import composition_matrix, featurize
    from dm_hpc.learn.gp import fit_gp
    from dm_hpc.learn.transfer import PRIOR_SOURCE_POINTS, Source, subsample

    held = {e for c in rows.compositions for e in c}
    own = [e for e in space.element_names if e in held] + sorted(held - set(space.element_names))
    features = {**_features_of(space, []), "elements": own}
    bounds = {k: tuple(v) for k, v in features["process"].items()}
    proc = rows.process if bounds and rows.process.size else None
    Xo = featurize(composition_matrix(rows.compositions, own), own, proc, bounds or None, descriptors=features["descriptors"])
    y = torch.tensor(rows.y, dtype=torch.double)
    key = hashlib.sha256(repr((features, campaign.seed)).encode() + Xo.numpy().tobytes() + y.numpy().tobytes()).hexdigest()
    fitted = _SOURCE_GPS.pop(key, None)
    if fitted is None:
        # the same seeded subsample and fit as ``fit_transfer`` gives a source GP on the campaign's features
        sub = subsample(Source(rows.name, Xo, y), PRIOR_SOURCE_POINTS, campaign.seed)
        fitted = fit_gp(sub.X, sub.y.reshape(-1, 1), seed=campaign.seed)
    _SOURCE_GPS[key] = fitted  # the newest last
    while len(_SOURCE_GPS) > _SOURCE_GPS_KEPT:
        _SOURCE_GPS.pop(next(iter(_SOURCE_GPS)))
    model = RecordsOnOwnElements(fitted, features, space)
    if inside.sum() >= 2:  # rows of its own (a spread to standardise by); else its model's predictions
        comps = [c for c, ok in zip(rows.compositions, inside) if ok]
        Xs = space.featurize(composition_matrix(comps, space.element_names), rows.process[inside])
        # the prior kind scales the GP by the records it was fitted on, not the few inside (review: two
        # equal rows inside switched a 100-record source off)
        scale = (float(y.mean()), float(y.std())) if len(y) > 1 else None
        return Source(rows.name, Xs, y[torch.as_tensor(inside)], model=model, scale=scale)
    Xs = torch.cat([_design_draws(campaign, space), X])
    with torch.no_grad():
        return Source(rows.name, Xs, model.posterior(Xs).mean[:, 0], model=model)


#: design-space draws at which a model source's predictions stand in for its data (multitask kind)
MODEL_SOURCE_POINTS = 300


def _design_draws(campaign: CampaignSpec, space):
    """``MODEL_SOURCE_POINTS`` seeded draws of the design space (pool rows, or samples of the box) as features."""
    if space.pool is not None:
        frac, proc = space.pool
        pick = np.random.default_rng(campaign.seed).permutation(len(frac))[:MODEL_SOURCE_POINTS]
        frac, proc = frac[pick], proc[pick] if proc is not None and proc.size else None
    else:
        frac, proc = space.sample(MODEL_SOURCE_POINTS, np.random.default_rng(campaign.seed))
    return space.featurize(frac, proc if proc is not None and proc.size else None)


def _model_source(campaign: CampaignSpec, space, X, rows):
    """A model file as a ``learn.transfer.Source`` on the campaign's features ``X`` (``n x d``)."""
    import torch

    from dm_hpc.campaign.standard import ModelOnSpace
    from dm_hpc.learn.transfer import Source

    model = ModelOnSpace(rows.model, space, rows.property)
    Xs = torch.cat([_design_draws(campaign, space), X])
    with torch.no_grad():
        y = model.posterior(Xs).mean[:, 0]
    return Source(rows.name, Xs, y, model=model)


def exact_outputs(campaign: CampaignSpec, space) -> dict:
    """Of the campaign's objectives and constraints, the properties the composition decides
    (``compute.descriptors.analytic_functions``: a raw-material cost, a mixing entropy), each as an
    ``acquire.ExactProperty`` on ``space``'s features: the planner ranks with the computed value,
    not a model's guess of it (a GP of the demo's costs put a 12 USD/kg alloy at 635 +- 843).
    Left out where an element of the space has no value (a price the table lacks): the model's."""
    from dm_hpc.acquire.inverse import ExactProperty
    from dm_hpc.compute.descriptors import analytic_functions

    elements = space.element_names
    props = [o.property for o in campaign.objectives] + [c.property for c in campaign.constraints]
    pure = np.eye(len(elements))
    return {name: ExactProperty(f, elements) for name, f in analytic_functions(props).items()
            if elements and np.isfinite(f(pure, elements)).all()}


def optimiser(campaign: CampaignSpec) -> BoTorchOptimisation:
    """The BoTorch planner for the campaign's objectives and outcome constraints (an objective or
    a rule the composition decides computed exactly: ``exact_outputs``)."""
    from dm_hpc.acquire import Objective, OutcomeConstraint

    props = campaign.properties
    space = candidate_space(campaign)
    exact = exact_outputs(campaign, space)
    return BoTorchOptimisation(
        space=space,
        objectives=[Objective(props.index(o.property), o.goal == Goal.max, o.property, exact.get(o.property))
                    for o in campaign.objectives],
        constraints=[OutcomeConstraint(props.index(c.property), c.op, c.value, c.property, exact.get(c.property))
                     for c in campaign.constraints],
        outputs=props,
        costs=fidelity_costs(campaign),
        separation=campaign.learning.batch_separation,
    )


def random_start(campaign: CampaignSpec) -> RandomStart:
    """The random start (before a model, and the fallback of every planner), spread as a model's
    batch is (``learning.batch_separation``)."""
    return RandomStart(candidate_space(campaign), separation=campaign.learning.batch_separation)


def gap_filling(campaign: CampaignSpec) -> GapFilling:
    """The gap-filling planner for the campaign: its properties on its design space, every
    proposal at the cheapest calculation fidelity still allowed (a single-task model cannot tell
    fidelities apart, so the cheapest wins); the properties the composition decides computed,
    not gaps (``exact_outputs``)."""
    costs = fidelity_costs(campaign)
    space = candidate_space(campaign)
    return GapFilling(space, campaign.properties, {f.name: costs[f.name] for f in campaign.calculations},
                      separation=campaign.learning.batch_separation, computed=exact_outputs(campaign, space))


def choose_planner(campaign: CampaignSpec, fitted, seed_lab: bool) -> Planner:
    """The planner for the campaign's mode and stage: random start until a model is fitted,
    then gap filling or BoTorch; a first lab batch while no measurement exists (``seed_lab``)."""
    if campaign.mode == "gaps":
        return gap_filling(campaign)
    if fitted is None:
        return random_start(campaign)
    if seed_lab and campaign.lab is not None and campaign.calculations:
        return LabSeeding(optimiser(campaign), campaign.lab.name, campaign.calculations[0].name)
    return optimiser(campaign)
