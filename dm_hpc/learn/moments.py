"""Posterior moments of any BoTorch model at many points, a chunk of rows at a time.

The one place the engine asks a model for means and variances at more points than fit one joint
posterior: a GP's posterior of ``c`` points builds their joint ``c x c`` covariance even where only
the diagonal is read (and the ``c x c`` test kernel even where the variances are skipped), so every
caller splits its rows; each names its own chunk, since the right one depends on what it reads
(``acquire.acquisition.POSTERIOR_CHUNK``, ``learn.hetero.MEAN_CHUNK``, 4,096 for predictions).
Imports nothing of the engine.
"""
from __future__ import annotations

import torch
from torch import Tensor

#: Errors a model raises when asked for ``observation_noise`` it has no noise model for (not
#: RuntimeError: a matrix that is not positive definite, or memory running out, is not that, and
#: falling back would narrow the intervals without a word).
_NO_NOISE_MODEL = (NotImplementedError, TypeError)


def moments(model, X: Tensor, chunk: int = 4096, observation_noise: bool = False,
            variances: bool = True) -> tuple[Tensor, Tensor | None]:
    """Posterior mean and variance of ``model`` at each row of ``n x d`` X (each ``n x m``, the
    model's own output shape per row), from the joint posterior of each ``chunk`` rows.

    ``observation_noise``: the moments of a new observation where the model takes the argument
    (BoTorch GPs), else of its latent posterior (decided on the first chunk, so that every row is
    the same kind of moment). ``variances=False``: means alone, under GPyTorch's
    ``skip_posterior_variances`` (``n`` per row instead of ``n^2`` for an exact GP); the variance
    returned is then None. Variances are clamped at 0 (rounding can make them slightly negative).
    """
    import gpytorch

    means, variances_ = [], []
    noisy = observation_noise
    with torch.no_grad(), gpytorch.settings.skip_posterior_variances(not variances):
        for part in torch.split(torch.as_tensor(X, dtype=torch.double), chunk):
            post = None
            if noisy:
                try:
                    post = model.posterior(part, observation_noise=True)
                except _NO_NOISE_MODEL:
                    if means:  # an earlier chunk took the argument: this is another failure
                        raise
                    noisy = False
            post = model.posterior(part) if post is None else post
            means.append(post.mean)
            if variances:
                variances_.append(post.variance.clamp_min(0))
    # rows are the second-to-last dimension of a posterior's moments (``... x rows x m``)
    return torch.cat(means, -2), (torch.cat(variances_, -2) if variances else None)
