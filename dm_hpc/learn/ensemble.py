"""The large-data surrogate: a calibrated Gaussian deep ensemble.

Above the exact-GP limit the engine needs a model whose cost grows linearly with the data and
whose uncertainty still means something. The earlier ensemble (S MLPs trained on squared error,
uncertainty = spread of the member means) covered 13-18 % of held-out points with its 90 %
intervals: members trained on the same data agree with each other far more than with the truth,
and the noise of the measurements was not modelled at all. This one fixes the three causes:

1. **Gaussian likelihood.** Every member has a mean head and a variance head and is trained by
   the Gaussian negative log-likelihood, so the measurement noise (aleatoric) is learned.
2. **Diversity.** Members start from their own initialisation and each draws its own
   minibatches with replacement (an online bootstrap), so their means disagree where the data
   does not pin them down (epistemic).
3. **Recalibration.** A held-out calibration split (``calibration_fraction`` of the data, at most
   ``CALIBRATION_MAX`` points; out-of-fold residuals on small data) gives the standardised
   residuals ``|y - mu| / sigma``; one scale
   factor per output, ``s = q90(|z|) / 1.645``, makes the 90 % intervals cover 90 % there
   (Kuleshov et al. 2018 reduced to a variance scale, which keeps the posterior Gaussian).

The predictive distribution of the mixture is Gaussian with ``mu = mean_s mu_s``,
``var_y = s^2 (mean_s sigma_s^2 + var_s mu_s)``; the latent (noise-free) variance BoTorch's
acquisitions use is ``s^2 var_s mu_s`` and ``posterior(X, observation_noise=True)`` adds the
learned noise — the same convention as a GP with a likelihood.

Training cost grows with the data: ``epochs`` passes over it (``steps = epochs * n / batch``,
never fewer than ``MIN_STEPS``); the global minibatch of every step is a pure function of
``(seed, step)``, which is what lets ``dm_hpc.learn.distributed`` split it across ranks and
resume a killed training exactly.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

#: 90 % two-sided interval of a standard normal: mu +- Z90 * sigma.
Z90 = 1.6448536269514722
#: Calibration split: at most this many points (the 0.9-quantile is already precise to ~1 %).
CALIBRATION_MAX = 5000
#: Standardised inputs are clipped here: an MLP extrapolates linearly without bound, so a point far
#: outside the training data (a rare element in one column) would otherwise get any prediction.
Z_MAX = 8.0
#: Below this many points the calibration scale comes from out-of-fold residuals (cross-calibration).
CROSS_CALIBRATION_BELOW = 1000
CALIBRATION_FOLDS = 4
#: Lower bound on optimiser steps, so that small data sets are still trained to convergence.
MIN_STEPS = 500
#: Above ``batch_size * STEPS_PER_EPOCH`` points the minibatch grows with the data (up to
#: ``BATCH_MAX``) instead of the step count: every step has fixed costs (the optimiser update, and
#: under data parallelism one gradient exchange) that a 256-row step on 100,000 records pays 7,000
#: times. A pass over the data stays at least ``STEPS_PER_EPOCH`` steps, so training cost still
#: grows with n; measured at 100,000 records the held-out RMSE moved by about 1 % (distrib.md).
STEPS_PER_EPOCH = 40
BATCH_MAX = 4096
#: On the CPU a step's rows go through forward and backward in slices of this many rows per
#: member, their gradients summed before the one optimiser update (and the one gradient exchange):
#: a whole 4096-row batch makes activations of ~5 MB per layer and member stack, which leave the
#: cache, and two ranks then share memory bandwidth instead of each using its core. Measured on
#: one core, 4096 rows: 17.6 ms per step whole, 12.2 ms in slices of 512. A GPU takes the batch whole.
CPU_SLICE_ROWS = 512


@dataclass(frozen=True)
class EnsembleConfig:
    """Architecture and optimiser settings of a Gaussian deep ensemble.

    Attributes:
        members: ensemble size S. width: hidden units of each member's two hidden layers.
        epochs: passes over the training data (steps grow with n). batch_size: smallest global
            minibatch per member and step (capped at n); it grows to ``n / STEPS_PER_EPOCH``
            (at most ``BATCH_MAX``) on large data. lr / weight_decay: AdamW. seed: initialisation and
            the minibatch stream. calibration_fraction: share of the data held out to calibrate.
    """

    members: int = 5
    width: int = 64
    epochs: int = 20
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    calibration_fraction: float = 0.15

    def steps(self, n: int) -> int:
        """Optimiser steps for ``n`` training points: ``epochs`` passes, at least ``MIN_STEPS``."""
        return max(MIN_STEPS, math.ceil(self.epochs * n / self.batch(n)))

    def batch(self, n: int) -> int:
        """Global minibatch per member for ``n`` training points."""
        grown = max(self.batch_size, min(BATCH_MAX, math.ceil(n / STEPS_PER_EPOCH)))
        return max(1, min(grown, n))


class GaussianMembers(nn.Module):
    """S MLPs ``d -> width -> width -> 2m`` (mean and variance heads) as stacked weights.

    Members are evaluated together by batched matrix products (``S x n x d -> S x n x 2m``),
    which is plain autograd, so ``DistributedDataParallel`` wraps it as any module.
    """

    def __init__(self, d: int, m: int, members: int = 5, width: int = 64, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        dims = [d, width, width, 2 * m]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(a)  # nn.Linear's default initialisation, member by member
            self.weights.append(nn.Parameter((torch.rand(members, a, b, generator=gen) * 2 - 1) * bound))
            self.biases.append(nn.Parameter((torch.rand(members, 1, b, generator=gen) * 2 - 1) * bound))
        self.members, self.m = members, m

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``n x d`` (shared by all members) or ``S x n x d`` -> mean and variance, ``S x n x m`` each."""
        h = x if x.dim() == 3 else x.unsqueeze(0).expand(self.members, *x.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = nn.functional.silu(h)
        mean, raw = h.split(self.m, dim=-1)
        return mean, nn.functional.softplus(raw) + 1e-6


def global_batch(step: int, seed: int, members: int, batch: int, n_total: int) -> Tensor:
    """Row indices (``S x batch``, into the global training set) of optimiser step ``step``.

    A pure function of its arguments: every rank draws the same global batch and trains on the
    part it holds, and a resumed training continues the same stream.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(0, n_total, (members, batch), generator=gen)


def local_batch(idx: Tensor, offset: int, n_local: int) -> tuple[Tensor, Tensor]:
    """The rows of the global batch ``idx`` (``S x B``) that fall in ``[offset, offset + n_local)``.

    Returns:
        ``(rows, weight)``, both ``S x K`` with K the largest per-member count: local row indices
        (padded) and 1/0 weights that mask the padding.
    """
    local = idx - offset
    inside = (local >= 0) & (local < n_local)
    order = torch.argsort((~inside).to(torch.int8), dim=1, stable=True)  # local rows first
    k = int(inside.sum(1).max()) if n_local else 0
    take = order[:, :k]
    return local.gather(1, take).clamp(0, max(n_local - 1, 0)), inside.gather(1, take).float()


def nll_step_loss(net: nn.Module, xs: Tensor, ys: Tensor, rows: Tensor, weight: Tensor, scale: float) -> Tensor:
    """Gaussian NLL summed over the local part of a global batch, times ``scale``.

    With ``scale = world / (S * B)`` the gradients averaged by DDP over the ranks equal the
    gradient of the mean NLL over the whole global batch, however its rows split across ranks.
    """
    mean, var = net(xs[rows])  # S x K x m
    nll = 0.5 * (var.log() + (ys[rows] - mean) ** 2 / var)
    return (nll.sum(-1) * weight).sum() * scale


def adamw(params, config: EnsembleConfig) -> torch.optim.AdamW:
    """The members' optimiser. Fused: one kernel for all parameters (0.04 against 0.14 ms a step on
    one core), a fixed cost of every step that each rank pays whatever the rank count."""
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)


def train_members(
    net: nn.Module,
    xs: Tensor,
    ys: Tensor,
    config: EnsembleConfig,
    n_total: int | None = None,
    offset: int = 0,
    world: int = 1,
    start_step: int = 0,
    optimizer_state: dict | None = None,
    on_step: Callable[[int, nn.Module, Any, Any], None] | None = None,
) -> None:
    """Train ``net`` (``GaussianMembers`` or a DDP wrapper of it) on standardised data.

    Args:
        xs, ys: this process's rows, ``n_local x d`` and ``n_local x m`` (float, standardised),
            rows ``[offset, offset + n_local)`` of a global training set of ``n_total`` rows.
        world: number of data-parallel ranks (gradients averaged by DDP).
        start_step / optimizer_state: resume from a checkpoint.
        on_step: called as ``on_step(step_done, net, optimizer, scheduler)`` after every step
            (checkpointing).
    """
    n_total = len(xs) if n_total is None else n_total
    steps, batch = config.steps(n_total), config.batch(n_total)
    opt = adamw(net.parameters(), config)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state["optimizer"])
        sched.load_state_dict(optimizer_state["scheduler"])
    members = config.members
    scale = world / (members * batch)
    slice_rows = CPU_SLICE_ROWS if xs.device.type == "cpu" else None
    # Only the last slice goes through a DDP wrapper, whose backward exchanges the gradient summed
    # over the step's slices, once a step. The others go through the wrapped module itself: the
    # gradients accumulate as under ``no_sync()`` (DDP's hooks are idle outside a DDP forward),
    # without DDP's forward work per slice (0.25-0.35 ms of a 5.7 ms step with 2 ranks here in two
    # of three runs, level in the third: docs/measurements/distrib.md).
    plain = getattr(net, "module", net)
    for step in range(start_step, steps):
        idx = global_batch(step, config.seed, members, batch, n_total)
        rows, weight = local_batch(idx, offset, len(xs))
        rows, weight = rows.to(xs.device), weight.to(xs.device)
        opt.zero_grad(set_to_none=True)
        # at least one (maybe empty) slice, so that every rank joins the step's one exchange
        slices = list(zip(rows.split(slice_rows, 1), weight.split(slice_rows, 1))) if slice_rows else [(rows, weight)]
        for i, (r, w) in enumerate(slices):
            nll_step_loss(net if i == len(slices) - 1 else plain, xs, ys, r, w, scale).backward()
        opt.step()
        sched.step()
        if on_step is not None:
            on_step(step + 1, net, opt, sched)


@dataclass
class Standardiser:
    """Affine maps of inputs and outcomes to zero mean and unit variance (``d`` and ``m`` vectors)."""

    x_mean: Tensor
    x_std: Tensor
    y_mean: Tensor
    y_std: Tensor

    @classmethod
    def from_moments(cls, n: int, sx: Tensor, sxx: Tensor, sy: Tensor, syy: Tensor) -> Standardiser:
        """From sums and sums of squares (what an all-reduce across ranks adds up)."""

        def std(s, ss):
            var = (ss - s * s / n) / max(n - 1, 1)
            sd = var.clamp_min(0).sqrt()
            # a column that (almost) never varies in training is left unscaled: dividing by its
            # tiny spread would send the first point that differs to hundreds of std away
            return torch.where(sd > 1e-6, sd, torch.ones_like(sd))

        return cls(sx / n, std(sx, sxx), sy / n, std(sy, syy))

    def inputs(self, X: Tensor) -> Tensor:
        """Standardised inputs, clipped to ``+-Z_MAX`` (same map in training and prediction)."""
        return ((X - self.x_mean.to(X)) / self.x_std.to(X)).clamp(-Z_MAX, Z_MAX)

    @classmethod
    def fit(cls, X: Tensor, Y: Tensor) -> Standardiser:
        return cls.from_moments(len(X), X.sum(0), (X * X).sum(0), Y.sum(0), (Y * Y).sum(0))


def moments(net: GaussianMembers, std: Standardiser, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mixture mean, epistemic and aleatoric variance (``n x m`` each, outcome units) at ``n x d`` X."""
    dev = next(net.parameters()).device
    z = std.inputs(X).to(device=dev, dtype=torch.float32)
    mean, var = net(z)  # S x n x m
    mean, var = mean.to(X), var.to(X)
    ys = std.y_std.to(X)
    mu = mean.mean(0) * ys + std.y_mean.to(X)
    # the members' spread, written out: torch's var warns "degrees of freedom <= 0" on no rows (a
    # rank or a small training with no calibration rows), though the answer, empty, is right
    epistemic = (mean - mean.mean(0)).pow(2).mean(0) * ys**2
    aleatoric = var.mean(0) * ys**2
    return mu, epistemic, aleatoric


def calibration_scale(y: Tensor, mu: Tensor, var: Tensor) -> Tensor:
    """Per-output factor ``s`` (``m``) with which ``mu +- 1.645 s sigma`` covers 90 % of ``y`` (``n x m``)."""
    if len(y) == 0:
        return torch.ones(y.shape[-1], dtype=y.dtype)
    z = (y - mu).abs() / var.clamp_min(1e-18).sqrt()
    return (torch.quantile(z, 0.9, dim=0) / Z90).clamp_min(1e-3)


def _model_class():
    from botorch.models.model import Model
    from botorch.posteriors.gpytorch import GPyTorchPosterior
    from gpytorch.distributions import MultitaskMultivariateNormal, MultivariateNormal
    from linear_operator.operators import DiagLinearOperator

    class CalibratedEnsemble(Model):
        """A trained, recalibrated ``GaussianMembers`` as a BoTorch ``Model``.

        ``posterior(X)`` for ``batch x q x d`` X is a ``GPyTorchPosterior`` with a diagonal
        covariance (members give no cross-point covariance); mean ``batch x q x m``. ``X`` may
        omit the trailing ``fixed_columns`` (e.g. the fidelity column set to the target).
        """

        def __init__(self, net: GaussianMembers, std: Standardiser, scale: Tensor, train_inputs: Tensor,
                     config: EnsembleConfig, fixed_columns: Tensor | None = None):
            super().__init__()
            self.net, self.std, self.config = net, std, config
            self.register_buffer("scale", scale.to(torch.double))
            self.fixed_columns = torch.zeros(0, dtype=torch.double) if fixed_columns is None else fixed_columns
            self._num_outputs = net.m
            self.train_inputs = (train_inputs,)

        @property
        def num_outputs(self) -> int:
            return self._num_outputs

        @property
        def y_std(self) -> Tensor:
            """``m`` training standard deviations of the outcomes (their natural scale)."""
            return self.std.y_std

        def _full(self, X: Tensor) -> Tensor:
            k = self.fixed_columns.numel()
            if k and X.shape[-1] == self.std.x_mean.numel() - k:
                X = torch.cat([X, self.fixed_columns.to(X).expand(*X.shape[:-1], k)], dim=-1)
            return X

        def variances(self, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            """Mean, latent variance and predictive (with noise) variance, ``... x q x m`` each."""
            X = self._full(X)
            flat = X.reshape(-1, X.shape[-1])
            with torch.set_grad_enabled(X.requires_grad):
                mu, epi, ale = moments(self.net, self.std, flat)
            s2 = self.scale.to(X) ** 2
            shape = (*X.shape[:-1], self._num_outputs)
            return mu.reshape(shape), (s2 * epi).reshape(shape), (s2 * (epi + ale)).reshape(shape)

        def posterior(self, X: Tensor, output_indices=None, observation_noise=False,
                      posterior_transform=None, **kwargs):
            mu, latent, total = self.variances(X)
            var = (total if observation_noise is not False else latent).clamp_min(1e-12)
            if output_indices is not None:
                mu, var = mu[..., output_indices], var[..., output_indices]
            if mu.shape[-1] == 1:
                mvn = MultivariateNormal(mu[..., 0], DiagLinearOperator(var[..., 0]))
            else:  # interleaved: covariance index = point * m + output, as mean.reshape(..., q*m)
                mvn = MultitaskMultivariateNormal(mu, DiagLinearOperator(var.reshape(*var.shape[:-2], -1)),
                                                  interleaved=True)
            post = GPyTorchPosterior(mvn)
            return post if posterior_transform is None else posterior_transform(post)

        def to_state(self) -> dict[str, Any]:
            """Everything needed to rebuild the model: tensors and plain values (no pickled objects)."""
            return {
                "config": asdict(self.config),
                "d": int(self.std.x_mean.numel()),
                "m": int(self._num_outputs),
                "net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "standardiser": {k: v.cpu() for k, v in asdict(self.std).items()},
                "scale": self.scale.cpu(),
                "train_inputs": self.train_inputs[0].detach().cpu(),
                "fixed_columns": self.fixed_columns.cpu(),
            }

        @classmethod
        def from_state(cls, state: dict[str, Any]) -> CalibratedEnsemble:
            config = EnsembleConfig(**state["config"])
            net = GaussianMembers(state["d"], state["m"], config.members, config.width)
            net.load_state_dict(state["net"])
            net.eval().requires_grad_(False)
            return cls(net, Standardiser(**state["standardiser"]), state["scale"], state["train_inputs"],
                       config, state["fixed_columns"])

    return CalibratedEnsemble


def calibrated_ensemble_class():
    """The ``CalibratedEnsemble`` BoTorch model class (built lazily: BoTorch is heavy to import)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _model_class()
    return _CLASS


_CLASS = None


def _train(X: Tensor, Y: Tensor, config: EnsembleConfig) -> tuple[GaussianMembers, Standardiser]:
    std = Standardiser.fit(X, Y)
    net = GaussianMembers(X.shape[1], Y.shape[1], config.members, config.width, config.seed)
    train_members(net, std.inputs(X).float(), ((Y - std.y_mean) / std.y_std).float(), config)
    return net.eval().requires_grad_(False), std


def _residuals(net: GaussianMembers, std: Standardiser, X: Tensor, Y: Tensor) -> Tensor:
    """``n x 3m``: outcomes, predicted means and predictive variances (for ``calibration_scale``)."""
    with torch.no_grad():
        mu, epi, ale = moments(net, std, X)
    return torch.cat([Y, mu, epi + ale], dim=-1)


def fit_calibrated_ensemble(X: Tensor, Y: Tensor, config: EnsembleConfig | None = None, **overrides):
    """Train a Gaussian deep ensemble in this process and recalibrate its intervals.

    With ``n >= CROSS_CALIBRATION_BELOW`` points a random ``calibration_fraction`` (at most
    ``CALIBRATION_MAX``) is held out and the model keeps the rest. Below, a held-out split would
    be a few dozen points (a noisy quantile) and costly to lose, so the scale comes from
    ``CALIBRATION_FOLDS``-fold out-of-fold residuals and the model is trained on all points
    (``folds + 1`` trainings, each cheap at that size).

    Args:
        X: ``n x d`` inputs; Y: ``n x m`` outcomes. config: settings (``overrides`` replace
            fields, e.g. ``seed=3``, ``epochs=10``).

    Returns:
        a ``CalibratedEnsemble`` (BoTorch ``Model``); ``posterior(X)`` is ``batch x q x m``.
    """
    from dataclasses import replace

    config = replace(config or EnsembleConfig(), **overrides)
    X = torch.as_tensor(X, dtype=torch.double)
    Y = torch.as_tensor(Y, dtype=torch.double)
    Y = Y.unsqueeze(-1) if Y.dim() == 1 else Y
    n, m = Y.shape
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed + 7919))
    if n >= CROSS_CALIBRATION_BELOW:
        k = min(CALIBRATION_MAX, int(round(config.calibration_fraction * n)))
        cal, train = perm[:k], perm[k:]
        net, std = _train(X[train], Y[train], config)
        res = _residuals(net, std, X[cal], Y[cal])
    else:
        folds = [perm[i::CALIBRATION_FOLDS] for i in range(CALIBRATION_FOLDS)] if n >= 2 * CALIBRATION_FOLDS else []
        parts = []
        for i, held in enumerate(folds):
            rest = torch.cat([f for j, f in enumerate(folds) if j != i])
            fold_net, fold_std = _train(X[rest], Y[rest], replace(config, seed=config.seed + 101 * (i + 1)))
            parts.append(_residuals(fold_net, fold_std, X[held], Y[held]))
        net, std = _train(X, Y, config)
        res = torch.cat(parts) if parts else torch.zeros(0, 3 * m, dtype=torch.double)
    scale = calibration_scale(*res.split([m, m, m], dim=-1))
    return calibrated_ensemble_class()(net, std, scale, X, config)


__all__ = [
    "EnsembleConfig",
    "GaussianMembers",
    "Standardiser",
    "calibrated_ensemble_class",
    "calibration_scale",
    "fit_calibrated_ensemble",
    "global_batch",
    "local_batch",
    "moments",
    "train_members",
]
