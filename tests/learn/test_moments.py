"""learn.moments: the one chunked posterior every prediction, screen and acquisition reads."""
from __future__ import annotations

import torch

from dm_hpc.learn import fit_ensemble, fit_gp
from dm_hpc.learn.moments import moments


def _rand(n: int, seed: int, d: int = 2):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.double)


def _data(n: int = 30, d: int = 2):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(n, d, generator=g, dtype=torch.double)
    Y = torch.sin(6 * X).sum(-1, keepdim=True) + 0.05 * torch.randn(n, 1, generator=g, dtype=torch.double)
    return X, Y


def test_chunks_give_the_joint_posteriors_diagonal():
    X, Y = _data()
    model = fit_gp(X, Y).eval()
    Xc = _rand(37, seed=1)
    mean, var = moments(model, Xc, chunk=5)
    with torch.no_grad():
        post = model.posterior(Xc)
    assert mean.shape == var.shape == (37, 1)
    assert torch.allclose(mean, post.mean, atol=1e-8)
    assert torch.allclose(var, post.variance, rtol=1e-5, atol=1e-10)


def test_means_alone_are_the_same_means_without_variances():
    X, Y = _data()
    model = fit_gp(X, Y).eval()
    Xc = _rand(20, seed=2)
    mean, var = moments(model, Xc, chunk=7, variances=False)
    assert var is None
    assert torch.allclose(mean, moments(model, Xc)[0], atol=1e-8)


def test_observation_noise_widens_a_gps_variance_by_its_noise():
    X, Y = _data()
    model = fit_gp(X, Y).eval()
    Xc = _rand(10, seed=3)
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
    Xc = _rand(8, seed=4)
    mean, var = moments(model, Xc, observation_noise=True)
    with torch.no_grad():
        post = model.posterior(Xc)
    assert torch.allclose(mean, post.mean) and torch.allclose(var, post.variance.clamp_min(0))


class _NoisyFailsAfter:
    """Stands in for a model whose noisy posterior fails on some rows (a matrix that is not
    positive definite cannot be had on demand from a real GP): the posterior of ``gp`` otherwise."""

    def __init__(self, gp, error, after: int):
        self.gp, self.error, self.after, self.calls = gp, error, after, 0

    def posterior(self, X, observation_noise=False):
        if observation_noise:
            self.calls += 1
            if self.calls > self.after:
                raise self.error
        return self.gp.posterior(X, observation_noise=observation_noise)


def test_a_model_without_noise_is_read_latent_throughout_and_a_failure_is_not_taken_for_that():
    import pytest

    X, Y = _data()
    gp = fit_gp(X, Y).eval()
    Xc = _rand(12, seed=5)
    latent = moments(gp, Xc)[1]
    # no noise model from the first chunk on: every row latent, as the latent posterior
    assert torch.allclose(moments(_NoisyFailsAfter(gp, NotImplementedError(), 0), Xc, chunk=4, observation_noise=True)[1], latent)
    # a noise model that fails on a later chunk, or fails otherwise: the error, not narrower intervals
    with pytest.raises(NotImplementedError):
        moments(_NoisyFailsAfter(gp, NotImplementedError(), 1), Xc, chunk=4, observation_noise=True)
    with pytest.raises(RuntimeError):
        moments(_NoisyFailsAfter(gp, RuntimeError("not positive definite"), 0), Xc, chunk=4, observation_noise=True)
