"""A campaign file written from the guide, with one typo each: ``dm-hpc validate`` names the key
and the word meant. A user trial's misspelt keys read only "unknown field (check its spelling)",
``goal: maximise`` listed 'min' or 'max' without saying which, and ``method: emtt`` came back
under two errors saying no fidelity delivered the objective and the constraint."""
from __future__ import annotations

import pytest
import yaml

from .helpers import dm, write_campaign

CASES = [  # (where in the file, the typo, the error's words)
    (("budget",), {"calculation": 8}, "budget.calculation: unknown field (did you mean 'calculations'?)"),
    (("learning",), {"initial_point": 4}, "learning.initial_point: unknown field (did you mean 'initial_points'?)"),
    ((), {"sede": 3}, "sede: unknown field (did you mean 'seed'?)"),
    (("space", "process", "annealing_temperature"), {"units": "degC"},
     "space.process.annealing_temperature.units: unknown field (did you mean 'unit'?)"),
    (("fidelities", 0), {"targt": True}, "fidelities.0.targt: unknown field (did you mean 'target'?)"),
    (("learning",), {"xyz": 1}, "learning.xyz: unknown field (check its spelling; fields here: surrogate, "
                                "initial_points, refit_every"),
    (("objectives", 0), {"goal": "maximise"}, "objectives.0.goal: Input should be 'min' or 'max' (did you mean 'max'?)"),
    (("runner",), {"kind": "locl"}, "(did you mean 'local'?)"),
    (("objectives", 0), {"property": "bulk_modulos"}, "unknown property 'bulk_modulos' (did you mean 'bulk_modulus'?)"),
    (("space", "process"), {"anealing_temperature": {"low": 400, "high": 900, "unit": "degC"}},
     "unknown process_parameter 'anealing_temperature' (did you mean 'annealing_temperature'?)"),
    # a symbol in the wrong case said only "unknown element 'pt'"
    (("space", "elements"), {"pt": [0, 0.3]}, "unknown element 'pt' (did you mean 'Pt'?)"),
    (("space",), {"excluded": ["FE"]}, "unknown element 'FE' (did you mean 'Fe'?)"),
]


def _alloy(tmp_path, where, typo):
    path = write_campaign(tmp_path, name="cuni", constraints=["density <= 11 g/cm3"],
                          objectives=[{"property": "bulk_modulus", "goal": "max", "unit": "GPa"}],
                          space={"elements": {"Cu": [0.1, 0.6], "Ni": [0.1, 0.6], "Pd": [0, 0.4], "Au": [0, 0.3]},
                                 "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"}}})
    data = yaml.safe_load(path.read_text())
    node = data
    for part in where:
        node = node[part]
    if "anealing_temperature" in typo:
        node.clear()
    if "units" in typo:
        node.pop("unit")
    node.update(typo)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("where,typo,words", CASES, ids=[w for _, _, w in CASES])
def test_a_typo_names_the_key_and_the_word_meant(tmp_path, where, typo, words):
    out = dm("validate", str(_alloy(tmp_path, where, typo)))
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert words in out.stderr, out.stderr


def test_a_misspelt_method_is_the_one_error(tmp_path):
    out = dm("validate", str(_alloy(tmp_path, ("fidelities", 0), {"method": "emtt"})))
    assert out.returncode != 0
    assert "fidelities.emt: unknown method 'emtt' (did you mean 'emt'?" in out.stderr, out.stderr
    assert "no fidelity of this campaign delivers" not in out.stderr, out.stderr


def test_the_file_without_a_typo_validates(tmp_path):
    out = dm("validate", str(_alloy(tmp_path, (), {})))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("where,typo,words", [
    (("objectives", 0), {"unit": "Gpa"}, "unknown unit 'Gpa' (did you mean 'GPa'?)"),
    (("space", "process", "annealing_temperature"), {"unit": "degc"}, "unknown unit 'degc' (did you mean 'degC'?)"),
], ids=["objective unit", "process unit"])
def test_a_unit_typo_names_the_unit_meant(tmp_path, where, typo, words):
    """A user trial's `unit: Gpa` was refused as "unknown unit 'Gpa'" with no word of GPa."""
    out = dm("validate", str(_alloy(tmp_path, where, typo)))
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert words in out.stderr, out.stderr


def test_a_unit_typo_in_a_constraint_names_the_unit_meant(tmp_path):
    path = _alloy(tmp_path, (), {"constraints": ["density <= 11 g/cm3", "bulk_modulus >= 100 Gpa"]})
    out = dm("validate", str(path))
    assert out.returncode != 0 and "unknown unit 'Gpa' (did you mean 'GPa'?)" in out.stderr, out.stderr


def test_a_strict_constraint_is_read_as_its_inclusive_form_and_said(tmp_path):
    """A user trial's `density < 11` was silently read as `<=`: now it is said, with what to write."""
    out = dm("validate", str(_alloy(tmp_path, (), {"constraints": ["density < 11 g/cm3"]})))
    assert out.returncode == 0, out.stderr
    assert "warning: constraints: 'density < 11 g/cm3' is read as density <= 11" in out.stdout, out.stdout
    assert "write <=" in out.stdout
    out = dm("validate", str(_alloy(tmp_path, (), {"constraints": ["density <= 11 g/cm3"]})))
    assert "warning" not in out.stdout, out.stdout


def test_a_bare_number_for_a_duration_is_said_to_be_seconds(tmp_path):
    """`walltime: 300` is read as 300 s, where Slurm reads a bare --time as minutes: a campaign meant
    to give each calculation five hours killed it after five minutes, and validate said "ok"."""
    path = _alloy(tmp_path, ("fidelities", 0), {"walltime": 300})
    data = yaml.safe_load(path.read_text())
    data["budget"] = {**data.get("budget", {}), "wall_time": 7200}
    path.write_text(yaml.safe_dump(data))
    out = dm("validate", str(path))
    assert out.returncode == 0, out.stderr
    assert ("warning: fidelities[0] (emt).walltime: 300 is read as seconds (5 min), not minutes as Slurm "
            "reads a bare number; write 300s, 300m or 300h to say which") in out.stdout, out.stdout
    assert "warning: budget.wall_time: 7200 is read as seconds (2 h)" in out.stdout, out.stdout
    out = dm("validate", str(_alloy(tmp_path, ("fidelities", 0), {"walltime": "90"})))  # quoted, still no unit
    assert "warning: fidelities[0] (emt).walltime: 90 is read as seconds (1.5 min)" in out.stdout, out.stdout
    out = dm("validate", str(_alloy(tmp_path, ("fidelities", 0), {"walltime": "5h"})))
    assert out.returncode == 0 and "warning" not in out.stdout, out.stdout
