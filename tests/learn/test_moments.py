"""learn.moments: the one chunked posterior every prediction, screen and acquisition reads."""
from __future__ import annotations

import torch

from dm_hpc.learn import fit_ensemble, fit_gp
from dm_hpc.learn.moments import moments


def _data(n: int = 30, d: int = 2):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(n, d, generator=g, dtype=torch.double)
    Y = torch.sin(6 * X).sum(-1, keepdim=True) + 0.05 * torch.randn(n, 1, generator=g, dtype=torch.double)
    return X, Y


def test_chunks_give_the_joint_posteriors_diagonal():
    X, Y = _data()
    model = fit_gp(X, Y).eval()
    Xc = torch.rand(37, 2, dtype=torch.double)
    mean, var = moments(model, Xc, chunk=5)
    with torch.no_grad():
        post = model.posterior(Xc)
    assert mean.shape == var.shape == (37, 1)
    assert torch.allclose(mean, post.mean, atol=1e-8)
    assert torch.allclose(var, post.variance, rtol=1e-5, atol=1e-10)


def test_means_alone_are_the_same_means_without_variances():
    X, Y = _data()
    model = fit_gp(X, Y).eval()
    Xc = torch.rand(20, 2, dtype=torch.double)
    mean, var = moments(model, Xc, chunk=7, variances=False)
    assert var is None
    assert torch.allclose(mean, moments(model, Xc)[0], atol=1e-8)


def test_observation_noise_widens_a_gps_variance_by_its_noise():
    X, Y = _data()
    model = fit_gp(X, Y).eval()
    Xc = torch.rand(10, 2, dtype=torch.double)
    latent = moments(model, Xc)[1]
    observed = moments(model, Xc, observation_noise=True)[1]
    noise = model.likelihood.noise.detach().reshape(-1)[0]
    # outcome-transformed GP: the noise is in standardised units, the variances in outcome units
    scale = (observed - latent) / noise
    assert torch.all(observed > latent)
    assert torch.allclose(scale, scale[0].expand_as(scale), rtol=1e-6)


def test_a_model_without_a_noise_model_gives_its_latent_posterior():
    X, Y = _data()
    model = fit_ensemble(X, Y, seed=0, steps=50)
    Xc = torch.rand(8, 2, dtype=torch.double)
    mean, var = moments(model, Xc, observation_noise=True)
    with torch.no_grad():
        post = model.posterior(Xc)
    assert torch.allclose(mean, post.mean) and torch.allclose(var, post.variance.clamp_min(0))
