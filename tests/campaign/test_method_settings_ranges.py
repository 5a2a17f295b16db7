"""A calculation method's numeric settings are range-checked, not only type-checked.

``fidelities: [{name: emt, method: emt, settings: {eos_points: 1}}]`` validated, then every
calculation failed (an equation-of-state fit needs 4 volumes); ``eos_strain: 0`` stored a bulk
modulus of -160 GPa as the best; ``relax_fmax: -1`` never converged; ``round_digits: 0`` rounded
every value to 200 GPa. ``validate`` now names the fidelity, the setting, the value and the range
in one line, and ``calculate()`` refuses the same settings with the same words.
"""
from __future__ import annotations

import pytest

from tests.campaign.helpers import dm, write_campaign

#: bad values of each method's settings: (setting, value, words the refusal says)
BAD_BY_METHOD = {
    "emt": [("eos_points", 1, "1 is below 4"), ("eos_points", 3, "3 is below 4"),
            ("eos_strain", 0, "0 is not above 0"), ("eos_strain", -0.01, "-0.01 is not above 0"),
            ("eos_strain", 0.9, "0.9 is above 0.2"), ("relax_steps", 0, "0 is below 1"),
            ("relax_fmax", -1, "-1 is not above 0"), ("relax_fmax", 0, "0 is not above 0"),
            ("round_digits", 0, "0 is below 1"), ("round_digits", 16, "16 is above 15"),
            ("composition_tolerance", -0.1, "-0.1 is below 0")],
    "gpaw": [("ecut_ev", 0, "0 is not above 0"), ("kpoint_density", -1, "-1 is below 0"),
             ("smearing_ev", -0.1, "-0.1 is below 0"), ("scf_max_iter", 0, "0 is below 1")],
    "qe": [("ecutwfc_ry", -30, "-30 is not above 0"), ("ecutrho_ry", 0, "0 is not above 0"),
           ("degauss_ry", 0, "0 is not above 0"), ("conv_thr_ry", 0, "0 is not above 0"),
           ("press_conv_thr_kbar", -0.5, "-0.5 is not above 0")],
    "chgnet": [("relax_steps", 0, "0 is below 1")],
}
BAD = [(method, *case) for method, cases in BAD_BY_METHOD.items() for case in cases]

#: values at the edge of each range, still accepted
GOOD = [("emt", {"eos_points": 4}), ("emt", {"eos_strain": 0.2}), ("emt", {"relax_steps": 1}),
        ("emt", {"round_digits": 1}), ("emt", {"round_digits": 15}), ("emt", {"composition_tolerance": 0}),
        ("emt", {"relax_fmax": 1}), ("gpaw", {"smearing_ev": 0, "kpoint_density": 0}),
        ("qe", {"scf_max_iter": 1, "relax_steps": 1})]


def _campaign(tmp_path, settings, method="emt"):
    fidelity = {"name": "calc", "kind": "calculation", "method": method, "walltime": "5m", "settings": settings}
    return write_campaign(tmp_path, fidelities=[fidelity], lab=False)


@pytest.mark.parametrize(("method", "key", "value", "said"), BAD)
def test_validate_names_the_fidelity_setting_value_and_range(tmp_path, method, key, value, said):
    from dm_hpc.campaign.preflight import problems
    from dm_hpc.campaign.spec import load_campaign

    found = problems(load_campaign(_campaign(tmp_path, {key: value}, method)))
    line = [p for p in found if p.startswith(f"fidelities.calc.settings.{key}: ")]
    assert len(line) == 1 and said in line[0] and "(" in line[0], found  # the range and why, in one line


@pytest.mark.parametrize(("method", "settings"), GOOD)
def test_values_at_the_edge_of_a_range_still_validate(tmp_path, method, settings):
    from dm_hpc.campaign.preflight import problems
    from dm_hpc.campaign.spec import load_campaign

    found = problems(load_campaign(_campaign(tmp_path, settings, method)))
    assert not [p for p in found if ".settings." in p], found


@pytest.mark.parametrize(("key", "value", "said"), [("eos_points", 1, "1 is below 4 (an equation-of-state fit"),
                                                     ("eos_strain", 0.9, "0.9 is above 0.2"),
                                                     ("round_digits", 0, "0 is below 1")])
def test_the_validate_command_refuses_with_exit_2_and_no_traceback(tmp_path, key, value, said):
    res = dm("validate", str(_campaign(tmp_path, {key: value})))
    text = res.stdout + res.stderr
    assert res.returncode == 2, text
    assert f"fidelities.calc.settings.{key}: {said}" in text and "Traceback" not in text, text


def test_the_validate_command_still_says_ok_for_good_settings(tmp_path):
    res = dm("validate", str(_campaign(tmp_path, {"eos_points": 4, "eos_strain": 0.05, "round_digits": 6})))
    assert res.returncode == 0 and res.stdout.startswith("ok"), res.stdout + res.stderr


def test_a_setting_of_the_wrong_kind_is_named_at_validate_not_a_traceback(tmp_path):
    """``eos_points: abc`` ended in a traceback from the realisation check before ``problems``
    could name it."""
    res = dm("validate", str(_campaign(tmp_path, {"eos_points": "abc"})))
    text = res.stdout + res.stderr
    assert res.returncode == 2 and "expected a whole number" in text and "Traceback" not in text, text


@pytest.mark.parametrize(("key", "value", "said"), [("eos_points", 3, "3 is below 4"),
                                                     ("eos_strain", 0, "0 is not above 0"),
                                                     ("relax_fmax", -1, "-1 is not above 0"),
                                                     ("round_digits", 0, "0 is below 1")])
def test_calculate_refuses_an_out_of_range_setting_before_any_work(tmp_path, key, value, said):
    from dm_hpc.compute import calculate
    from dm_hpc.compute import CalcFailure, FailureKind

    out = calculate("CuNi", "emt", {key: value}, workdir=tmp_path)
    assert isinstance(out, CalcFailure) and out.kind == FailureKind.invalid_task, out
    assert f"setting {key}: {said}" in out.reason, out.reason


def test_merged_settings_raises_a_setting_error_naming_the_key():
    from dm_hpc.compute.methods import SettingError, get_method

    with pytest.raises(SettingError, match=r"method emt: setting eos_points: 1 is below 4 \(") as err:
        get_method("emt").merged_settings({"eos_points": 1})
    assert err.value.key == "eos_points" and isinstance(err.value, ValueError)
    # whole-number settings still take a whole number written as text or as a float
    merged = get_method("emt").merged_settings({"eos_points": "6", "relax_steps": 7.0})
    assert merged["eos_points"] == 6 and merged["relax_steps"] == 7


def test_every_numeric_default_of_every_method_has_a_range_and_lies_in_it():
    from dm_hpc.compute.methods import SETTING_RANGES, get_method, method_names

    for name in method_names():
        method = get_method(name)
        for key, default in method.settings.items():
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                assert key in SETTING_RANGES, f"{name}.{key} has no declared range"
        method.merged_settings()  # the defaults themselves are in range
