"""``benchmarks/pool_scale_ablation.py``: inputs normalised by the pool's spread, the model otherwise the default's."""
import torch

from tests.conftest import load_benchmark


def test_a_rare_departure_is_a_long_step_and_a_constant_input_stays_put():
    mod = load_benchmark("pool_scale_ablation")
    X = torch.zeros(100, 3, dtype=torch.double)
    X[:5, 0] = 1.0  # a rare element: 0 in most rows
    X[:, 1] = torch.linspace(0, 1, 100, dtype=torch.double)  # spread evenly over the same range
    X[:, 2] = 7.0  # constant
    lo, hi = mod.spread_bounds(X)
    scaled = (X - lo) / (hi - lo)
    # by range both would span 1; by spread the rare step is longer than the even input's whole span
    assert scaled[:5, 0].mean() - scaled[5:, 0].mean() > scaled[:, 1].max() - scaled[:, 1].min()
    assert torch.allclose(scaled[:, 2], torch.full((100,), 0.5, dtype=torch.double))


def test_it_changes_the_normalisation_only():
    mod = load_benchmark("pool_scale_ablation")
    g = torch.Generator().manual_seed(0)
    X = torch.rand(50, 2, generator=g, dtype=torch.double)
    s = mod.SpreadScaled(X, 0)
    assert s.name == "default" and torch.equal(s.bounds, mod.spread_bounds(X))
    assert torch.equal(s.X, X)
