"""EMT runs of the whole recipe: lattice constants, mixing energies, reproducibility, failures."""
from __future__ import annotations

import math

import pytest

from dm_hpc.compute import FailureKind, calculate, result_to_record
from dm_hpc.compute.calculation import _REFERENCE_MEMO
from dm_hpc.data import Source


def test_emt_cu_lattice_within_one_percent_of_3_59():
    result = calculate("Cu", "emt")
    assert result.ok, result
    a = result.property_dict()["lattice_parameter"]
    assert abs(a - 3.59) / 3.59 < 0.01
    assert result.property_dict()["mixing_energy"] == 0.0


def test_dilute_alloy_mixing_energy_finite_and_reproducible():
    first = calculate("Cu0.97Ni0.03", "emt", seed=1)
    _REFERENCE_MEMO.clear()  # the second run reads references from the disk cache
    second = calculate("Cu0.97Ni0.03", "emt", seed=1)
    assert first.ok and second.ok
    assert first.n_atoms == 32 and first.cell_composition == {"Cu": 0.96875, "Ni": 0.03125}
    e_mix = first.property_dict()["mixing_energy"]
    assert math.isfinite(e_mix) and abs(e_mix) < 0.05  # eV/atom: a dilute alloy mixes gently
    rec1, rec2 = result_to_record(first), result_to_record(second)
    assert rec1.record_id == rec2.record_id
    assert rec1.source is Source.computed and rec1.provenance.method == "emt"
    assert rec1.provenance.extra["wall_time_s"] > 0 and rec1.provenance.extra["cores"] == 1


def test_seed_changes_the_occupation_not_the_composition():
    r0 = calculate("Cu0.5Ni0.5", "emt", {"n_atoms": 32}, seed=0)
    r1 = calculate("Cu0.5Ni0.5", "emt", {"n_atoms": 32}, seed=1)
    assert r0.ok and r1.ok and r0.input_hash != r1.input_hash
    assert result_to_record(r0).record_id != result_to_record(r1).record_id


def test_quaternary_alloy_properties_and_units():
    r = calculate("Al0.25Cu0.25Ni0.25Pd0.25", "emt", properties=[
        "energy_per_atom", "mixing_energy", "lattice_parameter", "volume_per_atom", "density", "bulk_modulus",
        "raw_material_cost", "mixing_entropy", "size_mismatch", "valence_electron_concentration"])
    assert r.ok, r
    p = r.property_dict()
    assert p["mixing_entropy"] == pytest.approx(8.314462618 * math.log(4), rel=1e-6)
    assert p["valence_electron_concentration"] == pytest.approx((3 + 11 + 10 + 10) / 4)
    assert p["size_mismatch"] > 0 and p["raw_material_cost"] > 1000  # Pd dominates the cost
    assert 3.5 < p["lattice_parameter"] < 4.0 and 5 < p["density"] < 12
    assert 50 < p["bulk_modulus"] < 250  # GPa
    units = {q.name: q.unit for q in r.properties}
    assert units["lattice_parameter"] == "angstrom" and units["bulk_modulus"] == "GPa"


def test_emt_cu_bulk_modulus():
    b = calculate("Cu", "emt", properties=["bulk_modulus"]).property_dict()["bulk_modulus"]
    assert 120 < b < 150  # EMT Cu: ~134 GPa (experiment ~140 GPa)


def test_unsupported_element_is_a_typed_failure_not_an_exception():
    out = calculate("Fe0.5Cr0.5", "emt")
    assert not out.ok
    assert out.kind is FailureKind.unsupported_element and "Cr, Fe" in out.reason
    assert out.exit_code == 10


def test_relaxation_step_limit_is_a_typed_failure():
    out = calculate("Al0.25Cu0.25Ni0.25Pd0.25", "emt", {"relax_steps": 1})
    assert not out.ok and out.kind is FailureKind.relax_step_limit
    assert "BFGS" in out.output_tail  # the optimiser's log


@pytest.mark.parametrize("kwargs, words", [
    ({"composition": "Qq2"}, "bad composition"),
    ({"composition": "Cu", "method": "vasp"}, "unknown method"),
    ({"composition": "Cu", "settings": {"ecut": 3}}, "no setting"),
    ({"composition": "Cu", "properties": ["colour"]}, "cannot derive"),
    ({"composition": "Cu0.99Ni0.01", "settings": {"n_atoms": 4}}, "no site for Ni"),
])
def test_bad_tasks_are_invalid_task_failures(kwargs, words):
    out = calculate(**kwargs)
    assert not out.ok and out.kind is FailureKind.invalid_task and words in out.reason
