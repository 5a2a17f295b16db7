"""The calculator registry read from configs/calculators.yaml."""
from __future__ import annotations

import pytest

from dm_hpc.compute import UnknownMethodError, get_method, method_names
from dm_hpc.data import Composition


def test_registry_lists_the_four_methods_with_fidelities():
    assert {"emt", "gpaw", "qe", "chgnet"} <= set(method_names())
    assert get_method("emt").fidelity == "emt"
    assert get_method("qe").fidelity == get_method("gpaw").fidelity == "dft-pbe"
    assert get_method("chgnet").fidelity == "mlip"


def test_elements_and_supports():
    emt = get_method("emt")
    assert emt.elements == frozenset({"Ag", "Al", "Au", "Cu", "Ni", "Pd", "Pt"})
    assert emt.supports(Composition("Al0.25Cu0.25Ni0.25Pd0.25"))
    assert emt.unsupported(Composition("Fe0.5Ni0.5")) == ["Fe"]
    qe = get_method("qe")
    assert "Cu" in qe.elements and "Al" not in qe.elements  # Debian ships no PBE Al potential
    assert "Al" in qe.elements_for({"xc": "lda"})
    assert "Fe" in get_method("chgnet").elements and "Am" not in get_method("chgnet").elements


def test_cost_grows_with_atoms_and_dft_costs_more():
    for name in method_names():
        m = get_method(name)
        assert 0 < m.cost_core_seconds(4) < m.cost_core_seconds(32)
    assert get_method("qe").cost_core_seconds(4) > 100 * get_method("emt").cost_core_seconds(4)


def test_unknown_method_and_unknown_setting():
    with pytest.raises(UnknownMethodError):
        get_method("vasp")
    with pytest.raises(ValueError, match="no setting"):
        get_method("emt").merged_settings({"ecut_ev": 400})
    assert get_method("gpaw").merged_settings({"ecut_ev": 400})["ecut_ev"] == 400
