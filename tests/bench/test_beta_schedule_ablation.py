"""``benchmarks/beta_schedule_ablation.py``: the bound's width over the budget, and one change only."""
import numpy as np
import torch

from tests.conftest import load_benchmark


def test_the_width_falls_from_the_defaults_to_the_floor_over_the_budget():
    mod = load_benchmark("beta_schedule_ablation")
    assert mod.beta_at(2, 40, 2, 0.25) == mod.BETA0  # the first pick after the 2 initial points
    assert mod.beta_at(39, 40, 2, 0.25) == 0.25  # the last pick
    mid = [mod.beta_at(t, 40, 2, 0.25) for t in range(2, 40)]
    assert all(a > b for a, b in zip(mid, mid[1:]))


def test_at_a_constant_width_of_four_it_picks_what_the_default_picks():
    """The closed-form bound over the pool is the default's acquisition for one pick: with the
    floor at the default's beta every pick is the default strategy's (its decision model: warped
    values, one length-scale), so the ablation changes the width alone."""
    mod = load_benchmark("beta_schedule_ablation")
    g = torch.Generator().manual_seed(3)
    X = torch.rand(150, 3, dtype=torch.double, generator=g)
    y = -((X - 0.6) ** 2).sum(-1) + 0.3 * torch.sin(9 * X[:, 0])
    observed = list(np.random.default_rng(0).choice(150, 2, replace=False))
    same, default = mod.BetaSchedule(X, 0, budget=12, floor=4.0), mod.Strategy("default", X, 0)
    shrinking = mod.BetaSchedule(X, 0, budget=12, floor=0.0)
    picks = []
    for _ in range(10):
        a, b = same.select(observed, y[observed]), default.select(observed, y[observed])
        assert a == b
        picks.append(shrinking.select(observed, y[observed]))
        observed.append(a)
    assert picks != observed[2:]  # a width that shrinks is another policy
