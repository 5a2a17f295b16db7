"""``benchmarks/trust_region_ablation.py``: the box on a pool, its fallbacks, and how its side moves."""
import numpy as np
import torch

from tests.conftest import load_benchmark


def test_the_box_keeps_the_points_inside_and_falls_back_as_asked_when_it_is_sparse():
    mod = load_benchmark("trust_region_ablation")
    U = torch.tensor([[0.5, 0.5], [0.55, 0.45], [0.9, 0.5], [0.5, 0.9], [0.1, 0.1]], dtype=torch.double)
    centre = torch.tensor([0.5, 0.5], dtype=torch.double)
    # stretched along the second input: 0.5 +- 0.45 reaches (0.5, 0.9), not (0.9, 0.5)
    inside = mod.in_region(U, centre, torch.tensor([0.1, 0.45], dtype=torch.double), at_least=2)
    assert sorted(inside.tolist()) == [0, 1, 3]
    tight = torch.tensor([0.01, 0.01], dtype=torch.double)
    assert mod.in_region(U, centre, tight, at_least=2).tolist() == [0, 1]  # the nearest two
    assert mod.in_region(U, centre, tight, at_least=2, sparse="global").tolist() == [0, 1, 2, 3, 4]


def test_the_side_doubles_after_improvements_and_halves_after_failures():
    mod = load_benchmark("trust_region_ablation")
    X = torch.rand(50, 2, dtype=torch.double, generator=torch.Generator().manual_seed(0))
    tr = mod.TrustRegion(X, seed=0, min_points=5)
    tr._update(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.double))  # three improvements in a row
    assert tr.length == min(2 * mod.L_INIT, mod.L_MAX)
    tr._update(torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.double))  # max(4, d) = 4 failures
    assert tr.length == min(2 * mod.L_INIT, mod.L_MAX) / 2


def test_a_small_box_keeps_the_search_by_the_best_point_where_the_default_would_leave():
    """Two clusters: the measured one around (0.2, 0.2), an unmeasured one around (0.8, 0.8) whose
    trend draws the default's confidence bound; a box of side 0.2 stays by the best point."""
    mod = load_benchmark("trust_region_ablation")
    g = torch.Generator().manual_seed(1)
    A = 0.2 + 0.05 * torch.randn(60, 2, dtype=torch.double, generator=g)
    B = 0.8 + 0.05 * torch.randn(60, 2, dtype=torch.double, generator=g)
    X = torch.cat([A, B])
    y = X.sum(-1)  # rising towards B: the model's mean and bound point there
    observed = list(range(0, 40, 2))  # 20 points of cluster A
    tr = mod.TrustRegion(X, seed=0, min_points=5, fail_tol=1000)
    tr.length = 0.2
    nxt = tr.select(observed, y[observed])
    assert nxt < 60 and nxt not in observed
    default = mod.Strategy("default", X, seed=0).select(observed, y[observed])
    assert default >= 60  # the check has teeth: without the box the pick leaves the cluster
