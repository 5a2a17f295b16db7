import math

import numpy as np
import pytest

from dm_hpc.learn import DESCRIPTOR_NAMES, feature_names, featurize
from dm_hpc.data.descriptors import GAS_CONSTANT, element_data


def test_featurize_shapes_and_descriptors():
    els = ["Ni", "Al", "Fe"]
    X = featurize([{"Ni": 0.5, "Al": 0.5}, {"Fe": 1.0}], els)
    assert X.shape == (2, len(els) + len(DESCRIPTOR_NAMES))
    names = feature_names(els)
    row = dict(zip(names, X[0].tolist()))
    assert row["x_Ni"] == pytest.approx(0.5)
    assert row["mixing_entropy"] == pytest.approx(GAS_CONSTANT * math.log(2))  # J/(mol K)
    assert row["vec_mean"] == pytest.approx((10 + 3) / 2)  # Ni 10, Al 3 valence electrons
    pure = dict(zip(names, X[1].tolist()))
    assert pure["mixing_entropy"] == pytest.approx(0.0, abs=1e-12)
    assert pure["size_mismatch"] == pytest.approx(0.0, abs=1e-12)
    assert pure["radius_mean"] == pytest.approx(element_data("Fe").radius)


def test_process_scaled_by_bounds():
    X = featurize(
        [{"Fe": 1.0}, {"Fe": 1.0}], ["Fe"], process=[{"temperature": 300.0}, {"temperature": 1300.0}],
        process_bounds={"temperature": (300.0, 1300.0)}, descriptors=False,
    )
    assert X[:, -1].tolist() == [0.0, 1.0]


def test_unknown_element_rejected():
    with pytest.raises(ValueError):
        featurize([{"Cu": 1.0}], ["Fe"])


def test_array_input_matches_dicts():
    els = ["Co", "Cr", "Fe"]
    a = featurize(np.array([[0.2, 0.3, 0.5]]), els)
    b = featurize([{"Co": 0.2, "Cr": 0.3, "Fe": 0.5}], els)
    assert np.allclose(a.numpy(), b.numpy())
