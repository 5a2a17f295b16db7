from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dm_hpc.bench.suite import DEV_SUITE, materialise

DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets"


@pytest.mark.parametrize("name", ["branin2", "hartmann6-simplex", "griewank8-simplex"])
def test_synthetic_sets_are_repeatable_and_shaped(tmp_path, name):
    s = materialise(name, DATA, tmp_path / "a")
    again = materialise(name, DATA, tmp_path / "b")
    a, b = pd.read_csv(s.path), pd.read_csv(again.path)
    pd.testing.assert_frame_equal(a, b)
    spec = DEV_SUITE[name]
    assert a.shape == (spec.n, spec.dim + 1) and list(s.inputs) == [f"x{i}" for i in range(spec.dim)]
    if spec.source.startswith("simplex:"):
        np.testing.assert_allclose(a[list(s.inputs)].sum(1), 1.0, atol=1e-9)
        assert ((a[list(s.inputs)] > 0).sum(1) <= 4).all()


@pytest.mark.skipif(not (DATA / "steel_strength.csv").is_file(), reason="shared datasets not present")
def test_shared_variants(tmp_path):
    sub = pd.read_csv(materialise("steel-sub150", DATA, tmp_path).path)
    assert len(sub) == 150 and "tensile strength" in sub
    bg = materialise("bandgap-expt", DATA, tmp_path)
    df = pd.read_csv(bg.path)
    assert len(df) == 150 and len(bg.inputs) == 8 and df["bandgap"].notna().all()
