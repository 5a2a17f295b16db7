"""Preflight that knows who delivers what (issue 19 item 3): each objective and constraint must be
delivered by every fidelity, constraints must be satisfiable, and a model that cannot be fitted
says so. Real CLI, real EMT."""
from __future__ import annotations

import pytest

from dm_hpc.campaign import CampaignError, load_campaign
from dm_hpc.campaign.preflight import problems

from .helpers import dm, write_campaign

LAB = {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2}
EMT = {"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m"}


def test_emt_with_a_hardness_objective_is_refused_at_validate_and_run(tmp_path):
    """Issue 19: `validate` said ok, then `run` failed 4 tasks ("cannot derive hardness")."""
    path = write_campaign(tmp_path, name="hard", objectives=[{"property": "hardness", "goal": "max"}])
    for cmd in ("validate", "run"):
        res = dm(cmd, str(path))
        assert res.returncode == 2, (cmd, res.stdout, res.stderr)
        assert "fidelities.emt: none of this campaign's methods (emt) computes hardness" in res.stderr, res.stderr
        assert "can come from the lab only" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "store").exists()  # nothing was spent


def test_a_property_nobody_delivers_names_who_could(tmp_path):
    c = load_campaign(write_campaign(tmp_path, name="nolab", lab=False,
                                     objectives=[{"property": "hardness", "goal": "max"}]))
    [why] = problems(c)
    assert why.startswith("objective hardness: no fidelity of this campaign delivers it")
    assert "none of this campaign's methods (emt) computes hardness, nor does any other registered method" in why
    assert "so only a lab can measure it" in why and "measures: [hardness]" in why
    # the lab measures hardness only: the density constraint names the methods that derive it
    c = load_campaign(write_campaign(tmp_path, name="lab2", fidelities=[{**LAB, "measures": ["hardness"]}],
                                     objectives=[{"property": "hardness", "goal": "max"}],
                                     constraints=["density <= 9"], budget={"lab_experiments": 4}))
    [why] = problems(c)
    assert why.startswith("constraint density: no fidelity of this campaign delivers it")
    assert "methods that derive it: emt" in why and "list it in fidelities.lab.measures" in why
    # EMT and a lab that does not measure density: the lab is named
    c = load_campaign(write_campaign(tmp_path, name="lab3", fidelities=[EMT, {**LAB, "measures": ["mixing_energy"]}],
                                     constraints=["density <= 9"]))
    [why] = problems(c)
    assert why.startswith("fidelities.lab: measures does not list density (constraint; delivered by emt")


def test_a_property_no_method_computes_is_said_to_come_from_the_lab(tmp_path):
    """First-hour review: formation energy with EMT was "(delivered by lab; no calculation method
    derives it (a lab-only property))": nested parentheses, and formation energy is no lab-only
    property to a computational scientist; no method of this campaign (or registered) computes it."""
    c = load_campaign(write_campaign(tmp_path, name="fe", objectives=[{"property": "formation_energy", "goal": "min"}]))
    [why] = problems(c)
    assert why == ("fidelities.emt: none of this campaign's methods (emt) computes formation_energy, nor does any "
                   "other registered method: the objective can come from the lab only, and the emt calculations "
                   "would fail; remove the fidelity (a lab-only campaign) or drop formation_energy"), why


def test_a_lab_only_property_validates_on_a_lab_only_campaign(tmp_path):
    path = write_campaign(tmp_path, name="labhard", fidelities=[{**LAB, "measures": ["hardness", "density"]}],
                          objectives=[{"property": "hardness", "goal": "max", "unit": "HV"}],
                          constraints=["density <= 9 g/cm3"], budget={"lab_experiments": 4})
    assert problems(load_campaign(path)) == []
    # the lab's measures default to every objective and constraint
    path = write_campaign(tmp_path, name="labdefault", fidelities=[LAB],
                          objectives=[{"property": "hardness", "goal": "max"}], budget={"lab_experiments": 4})
    assert problems(load_campaign(path)) == []


def test_calculation_fidelities_cannot_declare_measures(tmp_path):
    path = write_campaign(tmp_path, name="m", lab=False, fidelities=[{**EMT, "measures": ["density"]}])
    with pytest.raises(CampaignError, match="measures is the lab's"):
        load_campaign(path)


@pytest.mark.parametrize("constraint, message", [
    ("density <= -1 g/cm3", "density <= -1 g/cm^3 cannot be met: density is > 0"),
    ("density <= 0", "cannot be met: density is > 0"),
    ("yield_strength <= -5 MPa", "cannot be met: yield_strength is >= 0 MPa"),
])
def test_an_unsatisfiable_constraint_is_refused_at_validate(tmp_path, constraint, message):
    """Issue 19: a constraint no value can meet was accepted."""
    path = write_campaign(tmp_path, name="c", lab=False, constraints=[constraint])
    with pytest.raises(CampaignError, match="constraints.0") as err:
        load_campaign(path)
    assert message in str(err.value)


def test_validate_refuses_an_unsatisfiable_constraint(tmp_path):
    res = dm("validate", str(write_campaign(tmp_path, name="c", lab=False, constraints=["density <= -1 g/cm3"])))
    assert res.returncode == 2 and "cannot be met" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_a_satisfiable_constraint_at_the_edge_is_kept(tmp_path):
    c = load_campaign(write_campaign(tmp_path, name="ok", lab=False, constraints=["density >= 0.5 g/cm3"]))
    assert c.constraints[0].value == pytest.approx(0.5)


ANNEAL = {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"}}
ALLOY = {"elements": {"Cu": [0.1, 0.6], "Ni": [0.1, 0.6], "Pd": [0, 0.4], "Au": [0, 0.3]}, "process": ANNEAL}


def test_a_process_parameter_no_fidelity_realises_is_refused(tmp_path):
    """A user trial: EMT alone with annealing_temperature in the space validated; its records never
    carried the parameter (the report's column all '-') and `design` proposed the middle of the
    box plus noise. No fidelity of a calculation-only campaign can realise or measure a process
    parameter, as none delivers a lab-only property: refused the same way, naming what to do."""
    path = write_campaign(tmp_path, name="cuni", lab=False, space=ALLOY, constraints=["density <= 11 g/cm3"],
                          objectives=[{"property": "bulk_modulus", "goal": "max", "unit": "GPa"}])
    [why] = problems(load_campaign(path))
    assert why.startswith("space.process.annealing_temperature: no fidelity of this campaign realises or "
                          "measures it"), why
    assert "calculations ignore process parameters" in why
    assert "add an experiment fidelity" in why and "remove annealing_temperature from space.process" in why
    res = dm("validate", str(path))
    assert res.returncode == 2 and "space.process.annealing_temperature" in res.stderr, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    # with a lab beside the calculation, the lab realises it: valid
    path = write_campaign(tmp_path, name="cunilab", space=ALLOY, constraints=["density <= 11 g/cm3"],
                          objectives=[{"property": "bulk_modulus", "goal": "max", "unit": "GPa"}])
    assert problems(load_campaign(path)) == []


def test_the_shipped_campaigns_still_validate():
    from tests.conftest import REPO

    for path in sorted((REPO / "campaigns").glob("*.yaml")):
        c = load_campaign(path)
        assert not [p for p in problems(c) if p.startswith("space.process")], path
