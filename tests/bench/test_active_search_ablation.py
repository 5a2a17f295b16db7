"""``benchmarks/active_search_ablation.py``: the top-set threshold and the choice it makes."""
import math

import torch

from tests.conftest import load_benchmark


def _script():
    return load_benchmark("active_search_ablation")


def test_the_threshold_leaves_k_expected_members_above_it():
    """The count above tau is continuous in the candidates and steps at each measured outcome: tau
    is where it crosses k (at a measured outcome when the step jumps over k)."""
    mod = _script()
    measured = torch.tensor([3.0, 1.0, -2.0], dtype=torch.double)
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(200, generator=g, dtype=torch.double)
    sd = 0.1 + torch.rand(200, generator=g, dtype=torch.double)
    for k in (2, 5, 20):
        tau = mod.top_threshold(measured, mean, sd, k)

        def count(t):
            return float((measured > t).sum() + torch.special.ndtr((mean - t) / sd).sum())

        assert count(tau + 1e-6) <= k + 1e-4 and count(tau - 1e-6) >= k - 1e-4, (k, tau, count(tau))


def test_the_strategy_picks_the_candidate_likeliest_to_be_a_member():
    mod = _script()
    X = torch.linspace(0, 1, 40, dtype=torch.double).unsqueeze(-1)
    y = torch.sin(6 * X[:, 0])
    s = mod.TopSet(X, seed=0, share=0.05)
    observed = list(range(0, 40, 3))
    pick = s.select(observed, y[observed])
    assert pick not in observed
    with torch.no_grad():
        post = s.model.posterior(X)
    mean, sd = post.mean.reshape(-1), post.variance.reshape(-1).sqrt()
    rest = [i for i in range(40) if i not in observed]
    tau = mod.top_threshold(y[observed], mean[rest], sd[rest], math.ceil(0.05 * 40))
    prob = torch.special.ndtr((mean[rest] - tau) / sd[rest])
    assert pick == rest[int(torch.argmax(prob))]
