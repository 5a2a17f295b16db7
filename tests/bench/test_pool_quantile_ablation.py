"""``benchmarks/pool_quantile_ablation.py``: inputs read as their mid-ranks in the pool."""
import torch

from tests.conftest import load_benchmark


def test_each_input_becomes_its_mid_rank_in_the_pool_and_ties_share_one():
    mod = load_benchmark("pool_quantile_ablation")
    X = torch.tensor([[0.0, 5.0], [0.0, 1.0], [0.0, 3.0], [2.0, 2.0]], dtype=torch.double)
    Q = mod.pool_quantiles(X)
    # column 0: three tied zeros share rank 2 -> (2 - 0.5) / 4; the 2.0 is rank 4
    assert torch.allclose(Q[:, 0], torch.tensor([0.375, 0.375, 0.375, 0.875], dtype=torch.double))
    assert torch.allclose(Q[:, 1], torch.tensor([0.875, 0.125, 0.625, 0.375], dtype=torch.double))
    assert Q.dtype == torch.double


def test_a_skewed_input_is_spread_evenly_and_the_order_of_the_pool_is_kept():
    """Most of the pool near one end (as titanium in steels): min-max scaling leaves 95 % of the
    pool in the bottom tenth of the axis; the mid-ranks spread it over the whole axis, in the same order."""
    mod = load_benchmark("pool_quantile_ablation")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, generator=g, dtype=torch.double) ** 8
    Q = mod.pool_quantiles(x.unsqueeze(-1))[:, 0]
    scaled = (x - x.min()) / (x.max() - x.min())
    assert (scaled < 0.1).double().mean() > 0.6
    assert abs((Q < 0.1).double().mean().item() - 0.1) < 0.01
    assert torch.equal(torch.argsort(Q), torch.argsort(x))
