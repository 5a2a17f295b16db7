"""Plausible campaign files: each parses, or is refused for a reason of the file, never for a bug of ours.

``test_spec_fuzz.py`` throws garbage at the parser and counts any ``CampaignError`` as a pass, so
an ``IndexError`` of our own space check (a Cu-Ni-Pd space with ``max_elements: 3`` that excluded
Pd) passed it as "invalid campaign: IndexError: ...". Here every document is a valid campaign
(``campaigns/*.yaml``, ``helpers.write_campaign``'s) with fields changed as an author would
change them: element bounds at 0, 1, equal or tiny, excluded elements down to none left,
``max_elements`` past the element count, process boxes in other units, fidelities added and
dropped, budgets, learning settings, objectives and constraints in other units, transfer
sources, durations. A refusal must come from a deliberate check (``own_bug``); a campaign that
parses must then pass through preflight, its design space (whose random points are feasible)
and ``dm-hpc validate`` / ``dm-hpc plan`` without a traceback.
"""
from __future__ import annotations

import copy
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import dm_hpc
from dm_hpc.campaign import CampaignError, CampaignSpec, load_campaign, parse_campaign
from dm_hpc.campaign.spec import resolve_paths
from tests.campaign.helpers import write_campaign
from tests.conftest import REPO

OURS = Path(dm_hpc.__file__).resolve().parent
CAMPAIGNS = REPO / "campaigns"


def _template(name: str) -> dict:
    """A committed campaign, its relative paths (pool, maps, site profile) made absolute."""
    data = yaml.safe_load((CAMPAIGNS / name).read_text())
    return resolve_paths(data, CAMPAIGNS)


def _helper_campaign() -> dict:
    """``helpers.write_campaign``'s campaign (the end-to-end tests'), read back."""
    with tempfile.TemporaryDirectory() as tmp:
        return yaml.safe_load(write_campaign(Path(tmp)).read_text())


TEMPLATES = {"demo": _template("hea-demo.yaml"), "turbine": _template("hea-turbine.yaml"),
             "helper": _helper_campaign(), "pool": _template("oer-catalyst.yaml"),
             "transfer": _template("bandgap-transfer.yaml")}
ELEMENTS = ["Al", "Cu", "Ni", "Pd", "Pt", "Ag", "Au", "Fe", "Co", "Cr", "Mn", "Ti"]
FRACTIONS = [0.0, 1e-9, 1e-3, 0.05, 0.1, 0.2, 0.25, 1 / 3, 0.35, 0.5, 0.9, 1 - 1e-9, 1.0]
PROCESS = {  # name -> (plausible bounds, units they may be written in)
    "annealing_temperature": ([0, 300, 900, 1250, 1500], ["degC", "K", "degF", "celsius", None]),
    "annealing_time": ([0, 0.5, 1, 30, 480], ["h", "min", "s", None]),
    "cooling_rate": ([-100, 0, 10, 1000], ["K/s", "K/min", "degC/s", None]),
    "reduction": ([0, 5, 50, 100], ["percent", None]),
    "pressure": ([0, 0.1, 100, 5000], ["MPa", "GPa", None]),
}
OBJECTIVES = {  # property -> (goals, units, targets in any of those units)
    "mixing_energy": (["min"], ["eV/atom", "meV/atom", None], [-0.2, 0, -50]),
    "bulk_modulus": (["max"], ["GPa", "kbar", "MPa", None], [150, 0, -1]),
    "raw_material_cost": (["min"], ["USD/kg", None], [5, 0]),
    "density": (["min", "max"], ["g/cm3", "g/cm^3", "g/cm**3", "kg/m3", "g/cc", None], [7, 7000]),
    "melting_temperature": (["max"], ["K", "degC", "degF", None], [1500, 1200, 0]),
    "size_mismatch": (["min"], ["percent", "%", "dimensionless", None], [5, 0.05]),
    "lattice_parameter": (["max"], ["angstrom", "nm", None], [3.6, 0.36]),
    "hardness": (["max"], ["GPa", "MPa", None], [2, 2000]),
    "overpotential": (["min"], ["V", "mV", None], [0.3, 300]),
    "bandgap": (["max"], ["eV", "meV", None], [3, 3000]),
}
CONSTRAINTS = ["density <= 12 g/cm3", "density <= 7.8 g/cm3", "density >= 2 g/cm3", "density < 9000 kg/m3",
               "density <= 0.6 g/cm3", "bulk_modulus >= 100 GPa", "mixing_energy <= 0 eV/atom",
               "mixing_energy <= -20 meV/atom", "raw_material_cost <= 20 USD/kg", "hardness>=2GPa",
               "lattice_parameter >= 3.5 angstrom", "overpotential <= 0.4 V", "bandgap >= 1 eV",
               "melting_temperature >= 1200 degC", "melting_temperature > 1500 K", "size_mismatch <= 6 %",
               {"property": "density", "op": "<=", "value": 9}, {"property": "density", "op": "<=", "value": 9000,
                                                                  "written_unit": "kg/m3"}]
DURATIONS = ["90s", "5m", "5 min", "30m", "2h", "6h", "1d", "14d", 600, 3.5, 1, 86400 * 30]
LAB_DURATIONS = ["1d", "14d", "2 h", 3600, 0.5]


def bounds(values):
    """A (low, high) pair of ``values``, low <= high (equal too)."""
    return st.tuples(st.sampled_from(values), st.sampled_from(values)).map(lambda p: sorted(p))


@st.composite
def element_space(draw, space: dict, how: str | None = None) -> dict:
    """``space`` with its elements (``how``: new ones, new bounds of some, the same), exclusions and
    element counts changed."""
    space = dict(space)
    # a lower bound of 0 as often as not, and a base element of [0, 1]: few elements must be present
    pair = st.tuples(st.just(0.0), st.sampled_from(FRACTIONS)) | bounds(FRACTIONS) | st.just((0.0, 1.0))
    how = how or draw(st.sampled_from(["new elements", "new bounds", "same bounds"]))
    if how == "new elements":
        names = draw(st.lists(st.sampled_from(ELEMENTS), min_size=1, max_size=6, unique=True))
        space["elements"] = {el: draw(pair) for el in names}
    elif how == "new bounds":
        changed = draw(st.lists(st.sampled_from(list(space["elements"])), min_size=1, unique=True))
        space["elements"] = {el: draw(pair) if el in changed else b for el, b in space["elements"].items()}
    names = list(space["elements"])
    excluded = draw(st.sampled_from(["none", "some", "all but one", "all", "outside"]))
    if excluded == "some":
        space["excluded"] = draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True))
    elif excluded == "all but one":
        keep = draw(st.sampled_from(names))
        space["excluded"] = [el for el in names if el != keep]
    elif excluded == "all":
        space["excluded"] = names
    elif excluded == "outside":
        space["excluded"] = [draw(st.sampled_from(ELEMENTS))]
    if draw(st.booleans()):  # often just the elements that must be present (a lower bound > 0), or one more
        required = sum(1 for el, (low, _) in space["elements"].items() if low > 0 and el not in space.get("excluded", ()))
        space["max_elements"] = draw(st.sampled_from([None, max(required, 1), required + 1])
                                     | st.integers(1, len(names) + 2))
    if draw(st.booleans()):
        space["min_elements"] = draw(st.integers(1, len(names) + 2))
    return space


@st.composite
def process(draw) -> dict:
    """A process box of one or two parameters, in the units an author might write."""
    out = {}
    for name in draw(st.lists(st.sampled_from(sorted(PROCESS)), min_size=1, max_size=2, unique=True)):
        values, units = PROCESS[name]
        low, high = draw(bounds(values))
        box = {"low": low, "high": high}
        unit = draw(st.sampled_from(units))
        if unit is not None:
            box["unit"] = unit
        if draw(st.booleans()):
            box["precision"] = draw(st.sampled_from([1, 0.5, 10, 1e-6]))
        out[name] = box
    return out


@st.composite
def objectives(draw, choices: list[str]) -> list[dict]:
    """One to three of ``choices``, each in one of its units, some with a target."""
    out = []
    for prop in draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3, unique=True)):
        goals, units, targets = OBJECTIVES[prop]
        o = {"property": prop, "goal": draw(st.sampled_from(goals))}
        unit = draw(st.sampled_from(units))
        if unit is not None:
            o["unit"] = unit
        if draw(st.booleans()):
            o["target"] = draw(st.sampled_from(targets))
        out.append(o)
    return out


@st.composite
def calculation(draw) -> dict:
    """A calculation fidelity: a method, its walltime, and some of cores, cost, settings, target."""
    method = draw(st.sampled_from(["emt", "emt", "chgnet", "gpaw", "qe"]))
    f = {"name": draw(st.sampled_from([method, f"{method}-1", "screen"])), "kind": "calculation", "method": method,
         "walltime": draw(st.sampled_from(DURATIONS))}
    if draw(st.booleans()):
        f["cores"] = draw(st.sampled_from([1, 2, 4, 32]))
    if draw(st.booleans()):
        f["cost"] = draw(st.sampled_from(["auto", 0.01, 2, 1e-6]))
    if method == "gpaw" and draw(st.booleans()):
        f["settings"] = draw(st.sampled_from([{"ecut_ev": 450}, {"xc": "PBE"}, {}]))
    if draw(st.booleans()):
        f["target"] = True
    return f


@st.composite
def lab(draw, properties: list[str]) -> dict:
    """The lab: cost, batch size, turnaround, and some of precision, measures (of ``properties``), target."""
    f = {"name": draw(st.sampled_from(["lab", "Lab (Jena)"])), "kind": "experiment",
         "cost": draw(st.sampled_from(["auto", 0.05, 1, 5])), "batch_size": draw(st.integers(1, 8)),
         "turnaround": draw(st.sampled_from(LAB_DURATIONS))}
    if draw(st.booleans()):
        f["precision"] = draw(st.sampled_from([0.001, 0.01, 0.05, 0.5]))
    if draw(st.booleans()) and properties:
        f["measures"] = draw(st.lists(st.sampled_from(properties), min_size=1, unique=True))
    if draw(st.booleans()):
        f["target"] = True
    return f


@st.composite
def budget(draw) -> dict:
    """Some of the budget's limits (none at all too: refused, a campaign must end)."""
    out = {}
    for key, values in (("core_hours", [0.5, 100, 20000]), ("calculations", [1, 8, 40, 10**6]),
                        ("lab_experiments", [0, 1, 8, 60]), ("wall_time", ["170s", "5m", "14d", 60]),
                        ("core_hours_per_lab_day", [0.5, 400, 1000])):
        if draw(st.booleans()):
            out[key] = draw(st.sampled_from(values))
    return out


@st.composite
def transfer(draw, template: dict) -> dict:
    """A transfer block of one or two sources: store queries, the band-gap table, this campaign itself."""
    table = TEMPLATES["transfer"]["transfer"]["from"][0]
    sources = [{"campaign": "hea-demo"}, {"method": "emt"}, {"source": "computed", "elements": ["Cu", "Ni"]},
               {"source": "experimental", "property": "mixing_energy"}, {"campaign": template["name"]},
               dict(table), {**table, "property": "bandgap", "label": "dft"}]
    chosen = draw(st.lists(st.sampled_from(sources), min_size=1, max_size=2, unique_by=str))
    return {"from": [dict(s) for s in chosen]}


@st.composite
def campaigns(draw) -> dict:
    """A campaign file's data: a template with some of its fields changed plausibly."""
    kind = draw(st.sampled_from(sorted(TEMPLATES)))
    data = copy.deepcopy(TEMPLATES[kind])
    pool = "pool" in data["space"]
    if not pool and draw(st.integers(0, 2)):
        data["space"] = draw(element_space(data["space"]))
    if pool and draw(st.booleans()):  # element-space fields beside a pool: refused, a pool's rows are as they are
        data["space"] = {**data["space"], **draw(st.fixed_dictionaries(
            {}, optional={"excluded": st.lists(st.sampled_from(["Ni", "Fe", "Co", "Cu"]), max_size=2, unique=True),
                          "max_elements": st.integers(1, 4)}))}
    if draw(st.booleans()):
        data["space"] = {**data["space"], "process": draw(process())}
    props = (["overpotential", "bandgap", "hardness"] if pool or kind == "transfer"
             else ["mixing_energy", "bulk_modulus", "raw_material_cost", "density", "lattice_parameter", "hardness",
                   "melting_temperature", "size_mismatch"])
    if draw(st.booleans()):
        data["objectives"] = draw(objectives(props))
    if draw(st.booleans()):
        data["constraints"] = draw(st.lists(st.sampled_from(CONSTRAINTS), max_size=2))
    if draw(st.booleans()):
        measured = [o["property"] for o in data["objectives"]] + ["density", "hardness"]
        fids = draw(st.lists(calculation(), max_size=2, unique_by=lambda f: f["name"]))
        if not fids or draw(st.booleans()):  # an empty list is refused by pydantic alone: rarely worth a draw
            old_lab = next((f for f in data["fidelities"] if f["kind"] == "experiment"), None)
            fids.append(draw(st.just(old_lab) if old_lab and draw(st.booleans()) else lab(measured)))
        data["fidelities"] = fids
    elif draw(st.booleans()):  # only durations changed
        for f in data["fidelities"]:
            f["walltime" if f["kind"] == "calculation" else "turnaround"] = draw(st.sampled_from(DURATIONS))
    if draw(st.booleans()):
        data["budget"] = draw(budget())
    if draw(st.booleans()):
        data["learning"] = draw(st.fixed_dictionaries({}, optional={
            "surrogate": st.sampled_from(["auto", "gp", "multitask", "ensemble"]), "initial_points": st.integers(1, 30),
            "refit_every": st.integers(1, 16), "batch_size": st.integers(1, 16),
            "batch_separation": st.sampled_from([0, 0.01, 0.05, 0.5])}))
    if draw(st.booleans()):
        data["stopping"] = draw(st.fixed_dictionaries({}, optional={
            "no_improvement_rounds": st.integers(1, 20), "targets_met": st.booleans(),
            "max_consecutive_failures": st.integers(1, 5)}))
    if draw(st.booleans()):
        data["runner"] = draw(st.fixed_dictionaries(
            {"kind": st.sampled_from(["local", "slurm", "dask", "mpi"])},
            optional={"cores": st.sampled_from([1, 2, 64]), "max_in_flight": st.sampled_from([1, 4, 64]),
                      "retries": st.integers(0, 3),
                      "site": st.sampled_from(["local", "cluster", str(REPO / "configs/sites/cluster.yaml")])}))
    if draw(st.integers(0, 3)) == 0:  # rarer: it is refused beside more than one property
        data["transfer"] = draw(transfer(data))
        if draw(st.booleans()):  # as its author would: one property
            data["objectives"] = data["objectives"][:1]
            data.pop("constraints", None)
    elif draw(st.booleans()):
        data.pop("transfer", None)
    if draw(st.booleans()):
        data["mode"] = draw(st.sampled_from(["optimise", "gaps"]))
    if draw(st.booleans()):
        data["material_class"] = draw(st.sampled_from(["metal", "ceramic", "polymer", "other"]))
    return data


def _raised_at(exc: BaseException) -> str:
    """The file of the innermost frame of ``exc``'s traceback ('' without one)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return str(Path(frames[-1].filename).resolve()) if frames else ""


def own_bug(exc: BaseException | None) -> str | None:
    """Why ``exc``, what ``parse_campaign`` turned into a ``CampaignError``, is a bug rather than a
    refusal (None: a refusal). A refusal is a ``ValueError`` raised by our checks or pydantic's own
    verdict; an ``IndexError`` in dm_hpc, or a ``ValueError`` of numpy wrapped by a validator, is a
    bug whatever the message says."""
    if exc is None:
        return None
    if isinstance(exc, ValidationError):  # pydantic wraps the ValueErrors of our validators: look at each
        inner = [e["ctx"]["error"] for e in exc.errors() if isinstance(e.get("ctx", {}).get("error"), BaseException)]
        return next((why for why in map(own_bug, inner) if why), None)
    where = _raised_at(exc)
    if where.startswith(str(OURS)):
        return None if isinstance(exc, ValueError) else f"{type(exc).__name__} raised in {where}: {exc}"
    # every unit written here is a real one of the right dimension: pint choking on it is ours too
    return f"{type(exc).__name__} raised in {where} (a library called by dm_hpc): {exc}"


def parse(data: dict, folder: Path) -> CampaignSpec | None:
    """Write ``data`` as a campaign file in ``folder`` (store and run folder there) and load it:
    the campaign, or None for a refusal; a bug of ours fails the test."""
    data = {**data, "store": str(folder / "store"), "workdir": str(folder / "run")}
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # strict '<' and bare seconds are said, not refused
        try:
            return load_campaign(path)
        except CampaignError as exc:
            assert str(exc).startswith(str(path)), str(exc)
            why = own_bug(exc.__context__)
            assert why is None, f"{why}\nreported as: {exc}\ncampaign: {yaml.safe_dump(data, sort_keys=False)}"
            return None


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_templates_are_valid():
    with tempfile.TemporaryDirectory() as tmp:
        for data in TEMPLATES.values():
            assert parse(data, Path(tmp)) is not None


@FUZZ
@given(campaigns())
def test_a_plausible_campaign_parses_or_is_refused_by_a_check(data):
    """...and one that parses passes through preflight without a traceback, and has a design space
    that holds its exclusions and process box and whose random points keep its bounds."""
    from dm_hpc.campaign.preflight import problems
    from dm_hpc.campaign.strategy import design_space

    with tempfile.TemporaryDirectory() as tmp:
        c = parse(data, Path(tmp))
        if c is None:
            return
        assert isinstance(problems(c), list)
        space = design_space(c)
        # what the file says shapes the space is what the space holds (a pool once dropped both silently)
        assert not set(space.element_names) & set(c.space.excluded) and set(space.process) == set(c.space.process)
        if space.pool is None:
            fractions, proc = space.sample(16, np.random.default_rng(0))
            assert space.violations(fractions, proc) == [], yaml.safe_dump(data)


@settings(max_examples=300, deadline=None)
@given(element_space(TEMPLATES["helper"]["space"], how="new elements"))
def test_a_space_that_parses_has_feasible_random_points(space):
    """The space alone, many more of them (no file written): bounds, exclusions and max_elements
    that the space check accepts must admit the compositions the campaign then draws."""
    from dm_hpc.campaign.strategy import design_space

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            c = parse_campaign({**TEMPLATES["helper"], "space": space}, "space.yaml")
        except CampaignError as exc:
            assert own_bug(exc.__context__) is None, f"{own_bug(exc.__context__)}\nreported as: {exc}"
            return
    d = design_space(c)
    fractions, proc = d.sample(16, np.random.default_rng(0))
    assert d.violations(fractions, proc) == [], (space, fractions)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(campaigns())
def test_validate_and_plan_answer_without_a_traceback(data):
    from typer.testing import CliRunner

    from dm_hpc.cli import app

    with tempfile.TemporaryDirectory() as tmp:
        if parse(data, Path(tmp)) is None:
            return
        for command in (["validate"], ["plan", "--no-scripts"]):
            res = CliRunner().invoke(app, [*command, str(Path(tmp) / "campaign.yaml")])
            assert res.exit_code in (0, 1, 2) and (res.exception is None or isinstance(res.exception, SystemExit)), (
                f"{command}: {res.output}\n{''.join(traceback.format_exception(res.exception))}")
            assert "Traceback" not in res.output, res.output
