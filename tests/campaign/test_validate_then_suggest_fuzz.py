"""A plausible campaign that validates gets its first suggestions, inside its space, or a reason.

``test_spec_semantic_fuzz.py`` stops at ``dm-hpc validate`` / ``dm-hpc plan``; "validate says ok,
then the first suggest fails" is the failure class met next. Here each generated campaign that
preflight accepts (``problems(spec) == []``, what ``validate`` gates on) is asked for its first
points as users ask, with an empty store and run folder in a temp dir:

- the loop's first plan (``CampaignPlanner.plan`` on the snapshot ``manager._plan_ahead`` makes
  before any record: no refit, nothing seen, the calculations then the lab allowed), which is
  where ``dm-hpc run`` starts, without running a calculation;
- for a campaign with a lab, ``Campaign.load(path).suggest(2)`` (``RandomSuggestions`` expected).

Each point must be in the design space (``violations`` empty, no excluded or foreign element,
process inside the box); refusing is allowed only as a ``CampaignError`` with a message that
names the problem, and an empty plan only with its ``shortfall`` said. Measurements are never
added, so no model is fitted from the campaign's own records.
"""
from __future__ import annotations

import copy
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dm_hpc.campaign import CampaignError, CampaignSpec
from tests.campaign.test_spec_semantic_fuzz import TEMPLATES, budget, campaigns, element_space, lab, objectives, parse, process

#: What EMT delivers (computed or derived from the composition): objectives an EMT campaign passes preflight with.
#: How far a calculation's cell may stand off the bounds: ``composition_tolerance``'s default (no
#: fuzzed fidelity sets it or ``n_atoms``); where no cell fits that, the largest cell is closer still.
CELL_TOLERANCE = 0.02

EMT_PROPERTIES = ["mixing_energy", "bulk_modulus", "raw_material_cost", "density", "lattice_parameter", "size_mismatch"]


@st.composite
def emt_campaigns(draw) -> dict:
    """``campaigns()`` narrowed to what preflight mostly accepts, so most examples reach the
    suggestions: the demo's elements (all EMT's) with new bounds, exclusions and element counts,
    one or two EMT fidelities, a lab or none (the process box only with a lab: no calculation
    realises it), EMT's properties, any batch size and budget."""
    data = copy.deepcopy(TEMPLATES["demo"])
    data["space"] = draw(element_space(data["space"], how=draw(st.sampled_from(["new bounds", "same bounds"]))))
    data["objectives"] = draw(objectives(EMT_PROPERTIES))
    # a rule the composition decides (a cost cap, a VEC or size-mismatch bound) holds exactly for what is made
    data["constraints"] = draw(st.lists(st.sampled_from([
        "raw_material_cost <= 30 USD/kg", "raw_material_cost <= 5000 USD/kg", "raw_material_cost >= 20000 USD/kg",
        "valence_electron_concentration >= 10.5", "valence_electron_concentration <= 8",
        "size_mismatch <= 3 percent"]), max_size=2, unique=True))
    fids = [{"name": name, "kind": "calculation", "method": "emt", "walltime": "5m"}
            for name in draw(st.lists(st.sampled_from(["emt", "emt-2"]), max_size=2, unique=True))]
    if not fids or draw(st.booleans()):
        fids.append(draw(lab(EMT_PROPERTIES)))
        if draw(st.booleans()):
            data["space"]["process"] = draw(process())
    data["fidelities"] = fids
    if draw(st.booleans()):
        data["budget"] = {**draw(budget()), "wall_time": "1d"}
    data["learning"] = {**data["learning"], "batch_size": draw(st.integers(1, 16))}
    return data


def _outside(c: CampaignSpec, points: list[tuple[dict, dict]], cell: float = 0.0) -> list[str]:
    """What of ``points`` (composition, process) lies outside ``c``'s design space (empty: none).

    ``cell``: how far a calculation's cell may stand off the element bounds (``realise``: the
    cell within ``composition_tolerance`` of the proposal); an element the space requires (lower
    bound above 0) must be in it all the same. A lab's points (``cell`` 0) keep the bounds."""
    from dm_hpc.campaign.strategy import design_space

    space = design_space(c)
    bad = [f"{comp}: element {el} not in the space" for comp, _ in points for el in comp
           if comp[el] > 0 and el not in space.elements]
    bad += [f"{comp}: excluded element {el}" for comp, _ in points for el in comp
            if comp[el] > 0 and el in c.space.excluded]
    bad += [f"{comp}: lacks {el}, whose lower bound is {lo:g}" for comp, _ in points
            for el, (lo, _) in space.elements.items() if lo > 0 and comp.get(el, 0.0) <= 0]
    bad += [f"{proc}: lacks {name}" for _, proc in points for name in space.process if name not in proc]
    if bad:
        return bad
    from dm_hpc.campaign.realise import analytic_rules, broken

    bad += [f"{comp}: breaks {rule}" for comp, _ in points for rule in broken(analytic_rules(c), comp)]
    if bad:
        return bad
    fractions, process = space.from_dicts(points)
    why = space.violations(fractions, process)
    # off by the cell's rounding only (checked apart: ``violations``' tol also counts an element
    # below it as absent, so a 108-atom cell's 2 Ag atoms of six elements read as "fewer than 6")
    if cell and "element bounds violated" in why and not (
            np.any(fractions < space.lower - cell) or np.any(fractions > space.upper + cell)):
        why.remove("element bounds violated")
    return [f"{w}: {points}" for w in why]


def _refusal(exc: BaseException) -> str | None:
    """Why ``exc`` is not a deliberate refusal (None: it is one): a ``CampaignError`` whose
    message names the problem on its first line."""
    if not isinstance(exc, CampaignError):
        return f"{type(exc).__name__}: {exc}\n{''.join(traceback.format_exception(exc))}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return None if len(first) > 20 else f"CampaignError without a reason: {exc!r}"


def first_plan(c: CampaignSpec):
    """The loop's first plan: ``manager._plan_ahead``'s snapshot of a campaign with no record."""
    from dm_hpc.campaign import journal as jn
    from dm_hpc.campaign.planning import CampaignPlanner, Snapshot, seen_points

    c.run_dir.mkdir(parents=True, exist_ok=True)
    journal = jn.Journal(c.run_dir / "journal.jsonl")
    try:
        allowed = [f.name for f in c.calculations]
        if c.lab is not None and c.budget.lab_experiments != 0:  # ``stopping.lab_budget_left``
            allowed.append(c.lab.name)
        if not allowed:
            return None
        snap = Snapshot(data=None, seed=int(np.random.default_rng([c.seed, 0, 0, 0, 0]).integers(2**31)),
                        pending=[], seen=seen_points(c, {}, jn.State(), []), allowed=allowed,
                        seed_lab=c.lab is not None and c.lab.name in allowed)
        return CampaignPlanner(c, journal).plan(snap)
    finally:
        journal.close()


FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(campaigns())
def test_a_campaign_that_validates_gets_first_suggestions_in_its_space(data):
    first_suggestions(data)


@FUZZ
@given(emt_campaigns())
def test_an_emt_campaign_that_validates_gets_first_suggestions_in_its_space(data):
    """The same, on campaigns most of which validate (few of ``campaigns()``'s do)."""
    first_suggestions(data)


def first_suggestions(data: dict) -> None:
    """Ask the campaign of ``data``, if it validates, for its first plan and (with a lab) suggest(2)."""
    from dm_hpc.api import BudgetExhausted, Campaign, RandomSuggestions
    from dm_hpc.campaign import journal as jn
    from dm_hpc.campaign.preflight import problems

    with tempfile.TemporaryDirectory() as tmp:
        c = parse(data, Path(tmp))
        if c is None or problems(c):
            event("refused by the file check or preflight")
            return
        event("lab" if c.lab is not None else "calculations only")
        shown = yaml.safe_dump({k: v for k, v in data.items() if k not in ("store", "workdir")}, sort_keys=False)
        try:
            plan = first_plan(c)
        except Exception as exc:  # noqa: BLE001 - what it is decides pass or fail
            why = _refusal(exc)
            assert why is None, f"first plan: {why}\ncampaign:\n{shown}"
            event("first plan refused")
            plan = None
        if plan is not None:
            assert plan.points or plan.shortfall, f"first plan: no point and no reason\ncampaign:\n{shown}"
            event("first plan: points" if plan.points else "first plan: a shortfall")
            lab = [(p.composition, p.process) for p in plan.points if c.lab is not None and p.fidelity == c.lab.name]
            cells = [(p.composition, p.process) for p in plan.points if c.lab is None or p.fidelity != c.lab.name]
            why = _outside(c, lab) + (_outside(c, cells, cell=CELL_TOLERANCE) if cells else [])
            assert why == [], f"first plan: {why}\ncampaign:\n{shown}"
        if c.lab is None:
            return
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            try:
                table = Campaign.load(Path(tmp) / "campaign.yaml").suggest(2)
            except BudgetExhausted as exc:
                assert _refusal(exc) is None and c.budget.lab_experiments == 0 or "no new" in str(exc), (
                    f"suggest(2): {exc}\ncampaign:\n{shown}")
                event("suggest: budget exhausted")
                return
            except Exception as exc:  # noqa: BLE001
                why = _refusal(exc)
                assert why is None, f"suggest(2): {why}\ncampaign:\n{shown}"
                event("suggest refused")
                return
        event("suggest: rows")
        assert 1 <= len(table) <= 2, f"suggest(2) gave {len(table)} rows\ncampaign:\n{shown}"
        assert any(issubclass(w.category, RandomSuggestions) for w in said), [str(w.message) for w in said]
        sent = [(e.composition, e.process) for e in jn.replay(c.run_dir / "journal.jsonl").lab.values()]
        assert len(sent) == len(table) and _outside(c, sent) == [], f"suggest(2): {_outside(c, sent)}\n{shown}"
