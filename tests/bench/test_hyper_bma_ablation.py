"""``benchmarks/hyper_bma_ablation.py``: importance weights over GP hyper-parameters and the step they make."""
import math

import torch

from tests.conftest import load_benchmark


def _batched_gp(X, y, lengthscales, noise=1e-3):
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize

    from dm_hpc.learn.gp import _matern_ard

    S, d = len(lengthscales), X.shape[-1]
    batch = torch.Size([S])
    gp = SingleTaskGP(X.expand(S, *X.shape), y.reshape(-1, 1).expand(S, -1, 1), covar_module=_matern_ard(d, batch),
                      input_transform=Normalize(d, bounds=torch.tensor([[0.0], [1.0]], dtype=torch.double)),
                      outcome_transform=Standardize(1, batch_shape=batch))
    gp.covar_module.base_kernel.initialize(lengthscale=torch.tensor(lengthscales, dtype=torch.double).reshape(S, 1, 1))
    gp.covar_module.initialize(outputscale=torch.ones(S, dtype=torch.double))
    gp.likelihood.noise_covar.initialize(noise=torch.full((S, 1), noise, dtype=torch.double))
    return gp


def test_weights_favour_the_length_scale_the_data_came_from():
    """Outcomes that wiggle on a 0.1 scale: a draw at length-scale 0.1 outweighs one at 3.0, and
    with equal proposal densities the weights are the posterior's, normalised."""
    mod = load_benchmark("hyper_bma_ablation")
    X = torch.linspace(0, 1, 25, dtype=torch.double).unsqueeze(-1)
    y = torch.sin(20 * X[:, 0])
    gp = _batched_gp(X, y, [0.1, 3.0])
    log_theta = torch.log(torch.tensor([[0.1, 1.0, 1e-3], [3.0, 1.0, 1e-3]], dtype=torch.double))
    lw = mod.log_weights(gp, X, gp.train_targets[0], log_theta, torch.zeros(2, dtype=torch.double))
    assert math.isclose(float(torch.logsumexp(lw, 0)), 0.0, abs_tol=1e-9)
    assert lw[0] > lw[1] + 5.0


def test_a_step_picks_an_unmeasured_candidate_and_reports_its_effective_sample_size():
    mod = load_benchmark("hyper_bma_ablation")
    X = torch.linspace(0, 1, 60, dtype=torch.double).unsqueeze(-1)
    y = torch.sin(6 * X[:, 0])
    s = mod.HyperBMA(X, seed=0, samples=32, spread=0.7)
    observed = list(range(0, 60, 7))
    pick = s.select(observed, y[observed])
    assert pick not in observed and 1.0 <= s.ess[-1] <= 32.0
