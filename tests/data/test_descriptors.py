"""One descriptor definition: the stored properties and the surrogates' features agree."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dm_hpc.compute.descriptors import analytic_properties
from dm_hpc.data import Composition
from dm_hpc.data.descriptors import DESCRIPTOR_NAMES, GAS_CONSTANT, composition_descriptors, descriptors, element_data
from dm_hpc.learn import feature_names, featurize

ALLOYS = [{"Co": 0.2, "Cr": 0.2, "Fe": 0.2, "Mn": 0.2, "Ni": 0.2}, {"Al": 0.2, "Co": 0.2, "Cr": 0.2, "Fe": 0.2, "Ni": 0.2},
          {"Cu": 0.5, "Ni": 0.5}, {"Cu": 0.4, "Ni": 0.3, "Pd": 0.3}, {"Fe": 1.0}]


@pytest.mark.parametrize("fractions", ALLOYS)
def test_properties_and_features_are_the_same_numbers(fractions):
    props = analytic_properties(Composition(fractions))
    els = ["Al", "Co", "Cr", "Cu", "Fe", "Mn", "Ni", "Pd"]
    row = dict(zip(feature_names(els), featurize([fractions], els)[0].tolist()))
    assert props["mixing_entropy"] == pytest.approx(row["mixing_entropy"], rel=1e-12)
    assert props["size_mismatch"] == pytest.approx(row["size_mismatch"], rel=1e-12, abs=1e-12)
    assert props["valence_electron_concentration"] == pytest.approx(row["vec_mean"], rel=1e-12)


def test_literature_definitions():
    d = descriptors({"Cu": 0.5, "Ni": 0.25, "Pd": 0.25})
    c = np.array([0.5, 0.25, 0.25])
    assert d["mixing_entropy"] == pytest.approx(-GAS_CONSTANT * float((c * np.log(c)).sum()))
    r = np.array([element_data(e).radius for e in ("Cu", "Ni", "Pd")])
    r_mean = float(c @ r)
    assert d["radius_mean"] == pytest.approx(r_mean)
    assert d["size_mismatch"] == pytest.approx(100 * math.sqrt(float(c @ (1 - r / r_mean) ** 2)))
    assert d["size_mismatch"] == pytest.approx(100 * d["radius_spread"] / d["radius_mean"])  # one radius
    assert d["vec_mean"] == pytest.approx(0.5 * 11 + 0.25 * 10 + 0.25 * 10)
    pure = descriptors({"Fe": 1.0})
    assert pure["mixing_entropy"] == 0.0 and pure["size_mismatch"] == pytest.approx(0.0, abs=1e-12)


def test_metallic_radii_tell_neighbours_apart():
    """The metallic radii the delta literature uses: Cu is larger than Ni, Al larger than Fe
    (Slater's atomic radii, used before by the features, had Cu = Ni and Al < Fe)."""
    assert element_data("Cu").radius > element_data("Ni").radius
    assert element_data("Al").radius > element_data("Fe").radius
    assert descriptors({"Cu": 0.5, "Ni": 0.5})["size_mismatch"] > 1.0
    assert element_data("Si").radius > 0 and element_data("He").electronegativity == 0.0  # fallbacks


def test_zero_rows_and_shapes():
    out = composition_descriptors(np.array([[0.0, 0.0], [2.0, 2.0]]), ["Cu", "Ni"])
    assert out.shape == (2, len(DESCRIPTOR_NAMES)) and np.isfinite(out).all()
    assert (out[0] == 0).all()
    assert out[1] == pytest.approx(composition_descriptors(np.array([[0.5, 0.5]]), ["Cu", "Ni"])[0])
