"""A noise level that varies over the inputs, for the subset GP of large tables, when the data show it.

Why: a GP with one noise level for noise that varies (measurements of one property are more
precise in one region than another) over-states the error where the noise is low, and its latent
intervals, the ones the acquisition ranks by, grow too wide there: on the calibration bench's
heteroscedastic set (noise sd 0.03-0.13) the homoscedastic subset GP's latent 90 % intervals covered
the truth 99 % of the time in the low-noise third and 93-96 % in the high-noise third.

The recipe is the "most likely heteroscedastic GP" (Kersting et al. 2007), on rows the subset GP
leaves out (above ``GP_MAX_POINTS`` records there are many):

1. the homoscedastic GP's residuals ``r`` at up to ``NOISE_ROWS`` left-out rows; for a Gaussian
   residual of variance ``v(x)``, ``log r^2 = log v(x) + log chi2_1``, whose second term has the
   known mean ``LOG_CHI2_MEAN`` and variance ``LOG_CHI2_VAR``: a GP regression of
   ``log r^2 - LOG_CHI2_MEAN`` with that known noise (``fit_gp`` with ``Yvar``) estimates
   ``log v(x)``, smoothly;
2. ``v(x)`` is the noise plus the model's error; the noise variance is ``sigma^2(x) = s v(x)``,
   ``s`` the share of the mean residual variance that the model's mean latent variance leaves to
   noise (a subtracted mean latent variance instead sent the low-noise region to the floor where
   that variance was larger than the noise: predictive coverage 66 % there);
3. the GP on the subset is refitted with that noise fixed per row (BoTorch
   ``SingleTaskGP(train_Yvar=...)``, a ``FixedNoiseGaussianLikelihood``), hyper-parameters
   warm-started from the homoscedastic fit.

It switches itself off unless the data show heteroscedasticity: on up to ``TEST_ROWS`` other
left-out rows, the homoscedastic residuals' Gaussian log-likelihood under the noise model's
``v(x)`` is compared, point by point, with that under the best constant (the mean ``r^2`` of the
noise rows); the varying noise is kept only when the mean gain exceeds ``HETERO_Z`` standard errors
(a one-sided test at about 2 %). Both variances are estimated on the same rows and judged on rows
neither has seen, so a noise model that only fits noise loses.

Predictions at new inputs use the predicted noise: ``posterior(X, observation_noise=True)`` adds
``sigma^2(X)``; the latent posterior (what the acquisitions rank by) is the GP's own.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import Tensor

from dm_hpc.learn.gp import GPSettings, _as_xy, conditioned_rows, fit_gp

#: Mean and variance of ``log X`` for ``X ~ chi2_1``: ``digamma(1/2) + log 2`` and ``pi^2 / 2``.
LOG_CHI2_MEAN = -1.2703628454614782
LOG_CHI2_VAR = math.pi ** 2 / 2
#: Left-out rows the noise model conditions on (at most; half of them when fewer are left out), and
#: rows that judge it (at most; the rest). Its hyper-parameters come from ``max_fit_points`` of them.
#: With 4,000 rows the noise model's log variance correlated 0.96 with the truth's, with 2,000 0.90-0.91
#: (10,000 and 100,000 records), but the final model was no better (measured with a subtracted
#: latent variance in place of step 2's share: latent coverage 95.1 / 96.2 % against 94.8 / 95.6 %,
#: RMSE 0.0092 / 0.0079 against 0.0093 / 0.0082) and the larger Cholesky cost 1-2 CPU s more. The
#: test's rows cost one posterior mean each.
NOISE_ROWS = 2000
TEST_ROWS = 10000
#: The noise model: BoTorch's own GP (RBF, dimension-scaled length-scale prior), capped fit. On
#: ``log r^2`` (a noise variance of ``LOG_CHI2_VAR``, several times the signal's) it was the steadier
#: of the engine's two priors: log-variance correlation 0.93-0.98 against 0.91-0.97 with the Matern
#: prior (three draws of the hyper-parameter rows, 10,000 records).
NOISE_SETTINGS = GPSettings(prior="botorch", full_fit_points=0)
#: Fewer left-out rows than this: no test, the homoscedastic model stays.
MIN_LEFT_OUT = 400
#: The varying noise is kept when the held-out log-likelihood gain exceeds this many standard errors.
HETERO_Z = 2.0
#: Rows whose latent variance gives the share of step 2 (each costs ``n^2``, ``n`` the subset: 0.2
#: CPU s at 10,000 records once the residuals have built the model's caches). With the whole
#: residual variance as noise (``s = 1``) its sd came out 5 % above the truth's on average and the
#: latent intervals covered 96.3 % of the truth; with the share (0.91) 5 % below and 95.4 %
#: (10,000 records, heteroscedastic set, one seed).
OFFSET_ROWS = 256
#: The noise's share of the residual variance is never set below this (a model whose latent
#: variance exceeds its residuals' would otherwise get no noise at all).
MIN_NOISE_SHARE = 0.1


@dataclass(frozen=True)
class NoiseEvidence:
    """The held-out test of one fit: ``gain`` is the mean log-likelihood gain per left-out row of
    the varying noise over the constant one (nats), ``se`` its standard error, over ``rows`` rows;
    ``kept`` whether the varying noise was adopted (``gain > HETERO_Z * se``)."""

    gain: float
    se: float
    rows: int
    kept: bool


@cache
def heteroscedastic_gp_class():
    """``HeteroscedasticGP``: a BoTorch ``SingleTaskGP`` with fixed per-row noise and a model of
    the noise at new inputs (built on first use: BoTorch loads lazily)."""
    from botorch.models import SingleTaskGP

    class HeteroscedasticGP(SingleTaskGP):
        """``SingleTaskGP(train_Yvar=...)`` whose ``noise_model`` (a GP on ``log`` squared
        residuals, outcome units squared) predicts the noise variance at new inputs, so that
        ``posterior(X, observation_noise=True)`` adds the noise of ``X`` (BoTorch would add the
        mean of the training noise). The latent posterior is ``SingleTaskGP``'s."""

        def attach_noise_model(self, noise_model, scale: Tensor) -> None:
            """``noise_model``: a GP of ``log v(x)``, the residual variance (``m`` outputs);
            ``scale``: the noise's share of ``v`` per output (``m``)."""
            self.noise_model = noise_model
            self.register_buffer("noise_scale", torch.as_tensor(scale, dtype=torch.double).reshape(-1))

        def noise_variance(self, X: Tensor) -> Tensor:
            """Noise variance at ``... x q x d`` X, ``... x q x m``, in outcome units squared."""
            return _noise_variance(self.noise_model, self.noise_scale, X)

        def posterior(self, X, output_indices=None, observation_noise=False, posterior_transform=None, **kwargs):
            if observation_noise is True and "noise_model" in self._modules:
                # the noise of X, in the transformed (standardised) outcome space BoTorch expects
                noise = self.noise_variance(X) / self.outcome_transform.stdvs.to(X) ** 2
                observation_noise = noise if output_indices is None else noise[..., output_indices]
            return super().posterior(X, output_indices=output_indices, observation_noise=observation_noise,
                                     posterior_transform=posterior_transform, **kwargs)

    return HeteroscedasticGP


def is_heteroscedastic(model) -> bool:
    """Whether ``model`` is a ``HeteroscedasticGP`` made here."""
    return isinstance(model, heteroscedastic_gp_class())


#: Rows per joint posterior in ``_means``: GPyTorch builds the ``chunk x chunk`` test kernel even
#: when the variances are skipped (7,500 means at 10,000 records: 3.4 CPU s in one chunk, 0.43 s in
#: chunks of 512, 0.44 s in chunks of 128).
MEAN_CHUNK = 512


def _means(model, X: Tensor) -> Tensor:
    """Posterior mean of ``model`` at ``n x d`` X, ``n x m``."""
    from dm_hpc.learn.moments import moments

    return moments(model, X, MEAN_CHUNK, variances=False)[0]


def _gaussian_loglik(r2: Tensor, var: Tensor) -> Tensor:
    """Log-density of residuals with squares ``r2`` under ``N(0, var)``, summed over outputs (``n``)."""
    return (-0.5 * (math.log(2 * math.pi) + var.log() + r2 / var)).sum(-1)


def _noise_variance(noise_model, scale: Tensor, X: Tensor) -> Tensor:
    """Noise variance at ``... x q x d`` X, ``... x q x m``, outcome units squared: the noise model's
    residual variance ``v`` times the noise's share ``scale`` (``m``)."""
    return _means(noise_model, X).exp() * scale.to(X)


def fit_heteroscedastic(homo, X: Tensor, Y: Tensor, rows: Tensor, bounds: Tensor, seed: int = 0,
                        **fit_options):
    """The heteroscedastic version of the subset GP ``homo``, or ``homo`` itself when the left-out
    rows do not show varying noise.

    Args:
        homo: the homoscedastic ``SingleTaskGP`` conditioned on ``X[rows]``, ``Y[rows]``.
        X: ``n x d`` inputs. Y: ``n x m`` outcomes. rows: the subset's row indices; the noise
            model's and the test's rows are drawn from the others with ``seed``.
        bounds: ``2 x d`` input bounds (those of ``homo``). fit_options: passed to ``fit_gp``
            (``max_fit_points``, ``maxiter``, ``warm_maxiter``, ``settings``).

    Returns:
        ``(model, evidence)``: a ``HeteroscedasticGP`` conditioned on the same rows, or ``homo``;
        ``NoiseEvidence``, None when fewer than ``MIN_LEFT_OUT`` rows were left out (no test).
    """
    X, Y = _as_xy(X, Y)
    left = torch.ones(len(X), dtype=torch.bool)
    left[rows] = False
    left_out = left.nonzero().flatten()
    if len(left_out) < MIN_LEFT_OUT:
        return homo, None
    perm = left_out[torch.randperm(len(left_out), generator=torch.Generator().manual_seed(seed + 104729))]
    half = len(perm) // 2
    noise_rows, test_rows = perm[:min(half, NOISE_ROWS)], perm[half:half + TEST_ROWS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        both = torch.cat([noise_rows, test_rows])
        r2 = (Y[both] - _means(homo, X[both])).pow(2).clamp_min(torch.finfo(Y.dtype).tiny)
        r2_fit, r2_test = r2[:len(noise_rows)], r2[len(noise_rows):]
        noise_model = fit_gp(X[noise_rows], r2_fit.log() - LOG_CHI2_MEAN, Yvar=torch.full_like(r2_fit, LOG_CHI2_VAR),
                             bounds=bounds, seed=seed, settings=NOISE_SETTINGS,
                             **{k: v for k, v in fit_options.items() if k not in ("warm_maxiter", "settings")})
        v_test = _means(noise_model, X[test_rows]).exp()
    gain = _gaussian_loglik(r2_test, v_test) - _gaussian_loglik(r2_test, r2_fit.mean(0).expand_as(r2_test))
    se = float(gain.std() / math.sqrt(len(gain)))
    evidence = NoiseEvidence(float(gain.mean()), se, len(gain), bool(gain.mean() > HETERO_Z * se))
    if not evidence.kept:
        return homo, evidence
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():  # v = latent + noise: the homoscedastic model's mean latent variance at left-out rows (m)
            latent = homo.posterior(X[noise_rows[:OFFSET_ROWS]].unsqueeze(-2)).variance.mean((0, 1))
        scale = (1 - latent / r2_fit.mean(0)).clamp_min(MIN_NOISE_SHARE)
        Yvar = _noise_variance(noise_model, scale, X[rows])
        model = fit_gp(X[rows], Y[rows], Yvar=Yvar, bounds=bounds, warm_start=homo, seed=seed,
                       model_class=heteroscedastic_gp_class(), **fit_options)
    model.attach_noise_model(noise_model, scale)
    return model, evidence


def heteroscedastic_state(model) -> dict[str, Any]:
    """What ``rebuild_heteroscedastic`` needs besides the ``state_dict`` and the settings: the
    subset's rows, their fixed noise, the noise model's rows and targets (tensors only)."""
    X, Y = conditioned_rows(model)
    noise_X, noise_Z = conditioned_rows(model.noise_model)
    return {"X": X, "Y": Y, "Yvar": _train_yvar(model).detach().cpu(), "noise_X": noise_X, "noise_Z": noise_Z}


def _train_yvar(model) -> Tensor:
    """``n x m`` fixed training noise of a ``FixedNoiseGaussianLikelihood`` GP in outcome units squared."""
    v = model.likelihood.noise
    v = v.unsqueeze(-1) if v.dim() == 1 else v.transpose(-1, -2)
    return v * model.outcome_transform.stdvs ** 2


def rebuild_heteroscedastic(state: dict[str, Any], state_dict: dict[str, Tensor], settings: GPSettings | None = None):
    """The ``HeteroscedasticGP`` saved as ``heteroscedastic_state`` plus its ``state_dict``, in eval
    mode, built with ``settings`` (its kernel; default ``fit_gp``'s)."""
    d = state["X"].shape[-1]
    bounds = torch.stack([torch.zeros(d), torch.ones(d)]).double()  # replaced by the saved Normalize bounds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = state["noise_Z"]
        noise_model = fit_gp(state["noise_X"], Z, Yvar=torch.full_like(Z, LOG_CHI2_VAR), bounds=bounds, maxiter=0,
                             settings=NOISE_SETTINGS)
        model = fit_gp(state["X"], state["Y"], Yvar=state["Yvar"], bounds=bounds, maxiter=0,
                       model_class=heteroscedastic_gp_class(), settings=settings)
    model.attach_noise_model(noise_model, torch.ones(state["Y"].shape[-1]))
    model.train()
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


__all__ = ["HETERO_Z", "LOG_CHI2_MEAN", "LOG_CHI2_VAR", "MIN_LEFT_OUT", "NOISE_ROWS", "NOISE_SETTINGS",
           "NoiseEvidence", "TEST_ROWS", "fit_heteroscedastic", "heteroscedastic_gp_class",
           "heteroscedastic_state", "is_heteroscedastic", "rebuild_heteroscedastic"]
