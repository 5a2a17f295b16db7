"""``benchmarks/pool_bench.py --variant``: an ablation reaches the model the engine's strategy fits."""
import numpy as np
import pytest
import torch

@pytest.fixture
def restore_defaults():
    """``apply_variant`` switches module-level defaults for the rest of a benchmark process; put them back."""
    from dm_hpc.acquire import acquisition
    from dm_hpc.learn import decision, gp

    saved = (gp.GP_DEFAULTS, acquisition.DEFAULT_ACQUISITION, acquisition.UCB_BETA, decision.DECISION_SETTINGS,
             decision.OUTCOME_WARP)
    yield
    (gp.GP_DEFAULTS, acquisition.DEFAULT_ACQUISITION, acquisition.UCB_BETA, decision.DECISION_SETTINGS,
     decision.OUTCOME_WARP) = saved


def _strategy_model(X: torch.Tensor, y: torch.Tensor):
    """The model the engine's pool strategy fits after 8 observations."""
    from dm_hpc.bench.strategies import Strategy

    s = Strategy("default", X, seed=0)
    s.select(list(range(8)), y[:8])
    return s.model


def test_warp_variant_builds_a_warped_model_and_the_default_does_not(restore_defaults, pool_bench):
    from botorch.models.transforms import Normalize
    from botorch.models.transforms.input import Warp

    g = torch.Generator().manual_seed(0)
    X = torch.rand(60, 3, generator=g, dtype=torch.double)
    y = torch.sin(6 * X[:, 0]) + X[:, 1]
    assert isinstance(_strategy_model(X, y).input_transform, Normalize)  # the default: plain normalisation
    pb = pool_bench
    assert pb.apply_variant("warp=1") == "warp-1"
    model = _strategy_model(X, y)
    assert isinstance(model.input_transform, Warp)
    # the concentrations were fitted (the prior's median, 1, is the identity warp they start from)
    a, b = model.input_transform.concentration1.detach(), model.input_transform.concentration0.detach()
    assert not (torch.allclose(a, torch.ones_like(a)) and torch.allclose(b, torch.ones_like(b)))


def test_variant_switches_the_fit_that_fit_gp_uses(restore_defaults, pool_bench):
    """The GP settings a variant names are the ones ``fit_gp`` reads (they live in ``learn.gp``)."""
    from dm_hpc.learn import decision, gp

    pb = pool_bench
    pb.apply_variant("prior=matern,full_fit_points=0")
    # the pick's model too, on its own settings (one length-scale below 10 points per input)
    assert decision.DECISION_SETTINGS == gp.GPSettings(prior="matern", full_fit_points=0, iso_points_per_dim=10)
    pb.apply_variant("iso_points_per_dim=0")  # the earlier default: ARD at every size
    assert decision.DECISION_SETTINGS == gp.GPSettings(prior="matern", full_fit_points=0)
    pb.apply_variant("iso_points_per_dim=0,ard_spread=0.5")  # a float setting is read as one
    assert decision.DECISION_SETTINGS.ard_spread == 0.5 and gp.GP_DEFAULTS.ard_spread == 0.5
    pb.apply_variant("prior=botorch,full_fit_points=500,ard_spread=0")
    assert gp.GP_DEFAULTS == gp.GPSettings(prior="botorch", full_fit_points=500)
    X = torch.rand(20, 2, dtype=torch.double, generator=torch.Generator().manual_seed(1))
    model = gp.fit_gp(X, X.sum(-1, keepdim=True))
    assert type(model.covar_module).__name__ != "ScaleKernel"  # BoTorch's own RBF, not the Matern default


@pytest.mark.parametrize("text", ["warp=maybe", "nonsense=1", "warp", "ard_spread=wide"])
def test_a_bad_variant_is_named(restore_defaults, pool_bench, text):
    pb = pool_bench
    with pytest.raises(SystemExit, match="variant"):
        pb.apply_variant(text)


def test_warped_fit_warm_starts_from_its_concentrations():
    """A warm start carries the warping concentrations with the kernel's hyper-parameters."""
    from dm_hpc.learn.gp import GPSettings, fit_gp

    g = torch.Generator().manual_seed(2)
    X = torch.rand(30, 2, generator=g, dtype=torch.double)
    Y = torch.sin(8 * X[:, :1] ** 2)
    settings = GPSettings(prior="matern", full_fit_points=0, warp=True)
    first = fit_gp(X, Y, settings=settings)
    kept = fit_gp(X, Y, settings=settings, warm_start=first, warm_maxiter=0)
    for name in ("concentration0", "concentration1"):
        torch.testing.assert_close(getattr(kept.input_transform, name), getattr(first.input_transform, name))
    assert np.isfinite(kept.posterior(torch.rand(5, 2, dtype=torch.double)).mean.detach().numpy()).all()
