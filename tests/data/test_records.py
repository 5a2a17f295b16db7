"""The data standard: compositions, units, record ids."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from dm_hpc.data import (
    Composition,
    CompositionError,
    MaterialRecord,
    UnitError,
    UnknownPropertyError,
    canonical_unit,
    to_canonical,
)


def record(**overrides):
    data = {
        "composition": "Al0.25Cu0.75",
        "properties": [{"name": "density", "value": 7800, "unit": "kg/m^3", "uncertainty": 10}],
        "provenance": {"source": "experimental", "method": "lab-a"},
    }
    data.update(overrides)
    return MaterialRecord.model_validate(data)


def test_formula_dict_and_weight_percent_agree():
    by_formula = Composition("Fe0.5Ni0.5")
    by_dict = Composition({"Ni": 2, "Fe": 2})
    assert by_formula == by_dict
    assert by_formula.elements == ["Fe", "Ni"]
    wt = by_formula.amounts("weight_percent")
    back = Composition.from_amounts(wt, "weight_percent")
    assert back.fractions == pytest.approx(by_formula.fractions, abs=1e-12)
    assert sum(wt.values()) == pytest.approx(100)
    assert wt["Ni"] > wt["Fe"]  # nickel is heavier


def test_balance_element_as_metallurgists_write_it():
    steel = Composition.from_amounts({"Fe": "bal", "C": 0.2, "Mn": 1.5}, "weight_percent")
    wt = steel.amounts("weight_percent")
    assert wt["Fe"] == pytest.approx(98.3)
    assert steel.fractions["C"] > 0.2 / 100  # carbon is light: more atoms than its weight share


@pytest.mark.parametrize(
    "amounts, message",
    [({"Xx": 0.5, "Fe": 0.5}, "unknown element"), ({"Fe": -0.1, "Ni": 1.1}, "negative"),
     ({"Fe": 0.0}, "empty"), ({"Fe": "bal", "Ni": 120}, "balance")],
)
def test_bad_compositions_are_named(amounts, message):
    basis = "weight_percent" if "bal" in amounts.values() else "atomic_fraction"
    with pytest.raises(CompositionError, match=message):
        Composition.from_amounts(amounts, basis)


def test_units_convert_to_canonical_and_bad_units_are_rejected():
    assert canonical_unit("density") == "g/cm^3"
    assert to_canonical("density", 7800, "kg/m^3") == pytest.approx(7.8)
    assert to_canonical("mixing_energy", -50, "meV/atom") == pytest.approx(-0.05)
    assert to_canonical("temperature", 900, "degC", kind="process_parameter") == pytest.approx(1173.15)
    with pytest.raises(UnitError, match="density.*MPa"):
        to_canonical("density", 1.0, "MPa")
    with pytest.raises(UnitError, match="unknown unit"):
        to_canonical("density", 1.0, "furlongs-ish")
    with pytest.raises(UnknownPropertyError, match="unknown property 'strenght'"):
        to_canonical("strenght", 1.0, "MPa")


def test_record_converts_units_and_uncertainty():
    rec = record()
    density = rec.get_property("density")
    assert density.unit == "g/cm^3"
    assert density.value == pytest.approx(7.8)
    assert density.uncertainty == pytest.approx(0.01)


def test_record_id_is_content_hash_independent_of_circumstances():
    a = record()
    b = record(provenance={"source": "experimental", "method": "lab-a", "host": "elsewhere",
                           "job_id": "42", "contributor": "someone"})
    c = record(provenance={"source": "computed", "method": "lab-a"})
    same_in_other_units = record(properties=[{"name": "density", "value": 7.8, "unit": "g/cm^3",
                                              "uncertainty": 0.01}])
    assert a.record_id == b.record_id == same_in_other_units.record_id
    assert a.record_id != c.record_id  # computed and experimental are never the same record
    assert a.record_id.startswith("dm-") and len(a.record_id) == 23


def test_record_json_round_trip_keeps_id():
    rec = record(process=[{"name": "anneal", "parameters": {"annealing_temperature": {"value": 900, "unit": "degC"}}}])
    back = MaterialRecord.from_json(rec.to_json())
    assert back == rec and back.record_id == rec.record_id


def test_record_rejects_nan_unknown_property_and_duplicates():
    with pytest.raises(ValidationError, match="finite"):
        record(properties=[{"name": "density", "value": float("nan")}])
    with pytest.raises(ValidationError, match="unknown property"):
        record(properties=[{"name": "densty", "value": 1.0}])
    with pytest.raises(ValidationError, match="given twice"):
        record(properties=[{"name": "density", "value": 1.0}, {"name": "density", "value": 2.0}])
    with pytest.raises(ValidationError, match="source"):
        record(provenance={"source": "guessed", "method": "x"})


def test_a_per_mole_energy_is_refused_saying_what_to_do():
    """A user trial: a lab's kJ/mol header got only "cannot be converted to 'eV/atom'"."""
    import pint

    from dm_hpc.data import vocabulary

    with pytest.raises(UnitError, match=r"kJ/mol.*divide by them and give it in eV/atom; 1 kJ/mol of atoms = 10.36"):
        vocabulary.converter("mixing_energy", "kJ/mol")
    ureg = pint.UnitRegistry()  # the figure quoted is a mole of atoms' share, as pint converts it
    assert abs((1 * ureg("kJ/mol") / ureg.avogadro_constant).to("meV").magnitude - 10.36) < 0.005
    with pytest.raises(UnitError) as other:  # no per-mole hint where it does not apply
        vocabulary.converter("density", "MPa")
    assert "per-mole" not in str(other.value)


def test_explicit_fractions_that_do_not_sum_to_one_are_refused_not_rescaled():
    """A review (stop 46): ``{"fractions": {"Cu": 0.3, "Ni": 0.3}}`` was stored as Cu0.5Ni0.5, another
    alloy than the one given, though ``fractions_problem`` says such a sum is never rescaled.
    Amounts and formulas are still normalised; fractions within the tolerance are kept."""
    from dm_hpc.data.composition import Composition

    with pytest.raises(ValueError, match="fractions sum to 0.6, not 1"):
        MaterialRecord.model_validate({"composition": {"fractions": {"Cu": 0.3, "Ni": 0.3}},
                                       "properties": [{"name": "hardness", "value": 1}],
                                       "provenance": {"source": "experimental", "method": "lab"}})
    with pytest.raises(ValueError, match="look like atomic percent"):
        Composition(fractions={"Cu": 50, "Ni": 50})
    assert Composition(fractions={"Cu": 0.5, "Ni": "bal"}).fractions == {"Cu": 0.5, "Ni": 0.5}
    assert Composition({"Cu": 3, "Ni": 3}).fractions == {"Cu": 0.5, "Ni": 0.5}  # amounts: normalised
    assert Composition(fractions={"Cu": 0.499, "Ni": 0.499}).fractions == pytest.approx({"Cu": 0.5, "Ni": 0.5})


def test_a_measurement_outside_its_material_class_range_is_refused_however_it_comes_in():
    """A lab sheet refused a metal of density 0.3 g/cm3, ``Store.ingest`` (the engine's and the
    Python API's door) stored it, and a re-import of its export was then refused (found by review).
    The class range now holds for every experimental record; a computed one keeps the general
    range (an unstable cell's negative bulk modulus), and a stored record is read as it was."""
    light = [{"name": "density", "value": 0.3, "unit": "g/cm^3"}]
    with pytest.raises(ValidationError, match=r"0.5 to 23 g/cm\^3 for a metal"):
        record(properties=light)
    assert record(properties=light, material_class="ceramic").get_property("density").value == 0.3
    computed = {"source": "computed", "method": "dft"}
    unstable = [{"name": "bulk_modulus", "value": -5.0, "unit": "GPa"}]
    assert record(properties=unstable, provenance=computed).get_property("bulk_modulus").value == -5.0
    with pytest.raises(ValidationError, match="for a metal"):
        record(properties=unstable)
    stored = json.loads(record(properties=light, material_class="ceramic").to_json())
    stored["content"]["material_class"] = "metal"  # as written before the check: read back, never refused
    assert MaterialRecord.from_json(json.dumps(stored)).material_class.value == "metal"


def test_a_composition_kept_unnormalised_is_written_by_weight_without_a_negative_amount():
    """Fractions summing to 1 within 1e-9 are stored as given; closing their gap evenly took a
    trace element below zero, and the export's exactness check raised (review)."""
    c = Composition({"Fe": 0.5000000009, "Ni": 0.4999999999, "C": 1e-12})
    assert all(v > 0 for v in c.amounts("weight_percent").values())
    assert c.written_exactly("weight_percent") in (True, False)
