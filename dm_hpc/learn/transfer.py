"""Transfer from related data: sources beside the target's own measurements, weighted by evidence.

A *source* is a related table (another campaign, an imported table, a computed screen) on the same
inputs as the target: the union of the target's and the sources' input columns, an input absent
from a table being 0 there (``union_columns``, ``on_columns``). Two ways of using sources:

- ``multitask``: each source a task of BoTorch's ``MultiTaskGP`` beside the target task
  (``fit_multitask``); the learned task covariance (``PositiveIndexKernel``: correlations in [0, 1])
  says how far a source informs the target. A source is subsampled, seeded, to
  ``MULTITASK_SOURCE_POINTS`` (an exact multi-task GP costs O(N^3) per fit iteration).
- ``prior``: a GP per source (``fit_gp``, up to ``PRIOR_SOURCE_POINTS`` points, fitted once) whose
  standardised posterior mean ``z_k(x)`` enters the target GP's prior mean
  ``c_0 + sum_k c_k z_k(x)``; the slopes ``c_k`` (target standard deviations per source standard
  deviation) are fitted with the other hyper-parameters by marginal likelihood. A source whose
  inputs are a composition (``Source.simplex``) reads a target composition with the elements it
  never had left out and the rest renormalised (as a model file is read on another campaign's
  elements, ``campaign.standard.ModelOnSpace``): a target alloy with 30 % of a new element is
  predicted as its known part, not at a point off the source's simplex where its GP knows nothing.
  The source's prediction is uncertain where it had no data; with ``source_covariance`` (on by
  default, ``PRIOR_SOURCE_COVARIANCE``) the prior model's covariance is
  ``k_residual(x, x') + sum_k c_k^2 Cov_k(x, x')`` (``SourceCovariance``),
  ``Cov_k`` source k's posterior covariance of ``z_k``: with ``z_k`` as a fixed mean the target GP
  was as sure of the source's guess as its shrunken residual (``steel``: the pool's best alloy
  predicted 1625 +- 76 MPa where it is 2570; docs/measurements/transfer.md). A diagonal term (the
  source's variance per point) would widen each interval but leave the points independent: a joint
  posterior over a batch would count the source's one error at q points as q independent errors,
  and a measured point would not teach its neighbours that the source was wrong there.

The guard against negative transfer (``fit_transfer(kind="auto")``): a cold GP on the target alone,
the multitask and the prior model are each fitted on the target's data, and each is scored by its
leave-one-out log predictive density on the target's own rows (closed form for an exact GP,
Rasmussen & Williams 2006, eq. 5.12, in the target's units so that models that standardise
differently compare). The best transfer model is used only when it scores above the cold GP; else
every source's weight is 0 and the model is the cold GP. Below ``MIN_TARGET_POINTS`` target points
there is no evidence either way and the transfer model is used (a new campaign should start warm).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from gpytorch.kernels import Kernel
from gpytorch.means import Mean
from gpytorch.priors import NormalPrior
from torch import Tensor

from dm_hpc.learn.gp import GP_DEFAULTS, GPSettings, _fit_mll, _hyper_state, _load_hypers, _matern_ard, fit_gp
from dm_hpc.learn.surrogates import fit_multitask

KINDS = ("cold", "multitask", "prior")
#: points kept per source in the multi-task GP (seeded subsample; the fit is O(N^3) per iteration)
MULTITASK_SOURCE_POINTS = 300
#: points kept per source for its prior-mean GP (fitted once; hyper-parameters on a subset of these)
PRIOR_SOURCE_POINTS = 2000
#: below this many target points the leave-one-out scores cannot tell transfer from cold
MIN_TARGET_POINTS = 4
#: the prior kind's covariance includes its sources' posterior covariance (``SourceCovariance``).
#: On: measured on the transfer benchmark at 20 seeds (docs/measurements/transfer.md, "Source
#: uncertainty"): ``steel`` 1.21x -> 1.83x cold, the other related tasks level but
#: ``hartmann3-extra-dim``, 0.97x of the mean-only model (0.96-0.99) and still above 1.5x cold
PRIOR_SOURCE_COVARIANCE = True
#: capped, warm-started multi-task fits at every size (the target refits at every step)
_MULTITASK_FIT = GPSettings(full_fit_points=0)


@dataclass(frozen=True)
class Source:
    """A related data set on the target's inputs. X: ``n_s x d``; y: ``n_s`` (the target's units
    need not match: every model standardises per task or fits a slope). ``measured``: indices of
    the ``d`` columns the source's table has (default all); its prior-mean model reads only those,
    so a column it never varied (0 by the union rule) does not make it extrapolate."""

    name: str
    X: Tensor
    y: Tensor
    measured: tuple[int, ...] = ()
    #: indices of the ``d`` columns (among ``measured``) that are the source's composition
    #: fractions, summing to 1 in each of its rows; its prior-mean model reads a target row with these
    #: renormalised to sum 1 (a row with none of them stays 0). Default none.
    simplex: tuple[int, ...] = ()
    #: a ready model of the source on the target's ``d`` columns (``posterior(batch x n x d).mean``:
    #: ``batch x n x 1``), e.g. an exported standard model; the prior kind uses it instead of fitting
    #: a GP on ``X, y`` (which are then its predictions, for the multitask kind). A model that
    #: conditions on rows of its own may say how many by an int ``n_conditioned`` (``source_points``)
    model: object | None = field(default=None, compare=False)
    #: ``(mean, standard deviation)`` of the values ``model`` was fitted on, where ``y`` is not all of
    #: them (a store source's GP sees every record, ``y`` only those inside the target's space): the
    #: prior kind scales the model's predictions by these. Default: ``y``'s own.
    scale: tuple[float, float] | None = None

    def columns(self) -> list[int]:
        return list(self.measured) or list(range(self.X.shape[-1]))

    def simplex_positions(self) -> list[int]:
        """Positions in ``columns()`` of the ``simplex`` columns (what ``SourcePriorMean`` renormalises)."""
        cols = self.columns()
        return [cols.index(c) for c in self.simplex]


def union_columns(target: Sequence[str], sources: Sequence[Sequence[str]]) -> list[str]:
    """The target's input columns, then each source's new ones in order of appearance."""
    out = list(target)
    for cols in sources:
        out += [c for c in cols if c not in out]
    return out


def on_columns(table: Mapping[str, np.ndarray] | object, columns: Sequence[str]) -> np.ndarray:
    """``n x len(columns)`` array of a table's (a DataFrame's) columns; a column it lacks is 0."""
    n = len(table)
    return np.column_stack([np.asarray(table[c], float) if c in table else np.zeros(n) for c in columns]) \
        if columns else np.zeros((n, 0))


def subsample(source: Source, k: int, seed: int) -> Source:
    """At most ``k`` rows of ``source``, drawn without replacement by ``seed``."""
    n = len(source.y)
    if n <= k:
        return source
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k]
    return replace(source, X=source.X[idx], y=source.y[idx])


#: the most rows a source's joint posterior is taken over to be kept for later blocks: the mean
#: may have read a screen of 20,000 candidates, and their joint covariance (20,000^2 doubles per
#: source) is what killed a campaign with two table sources (24 GB, then the OOM killer)
MAX_JOINT_ROWS = 4096
#: kernel entries a source's batched joint posterior may form at a time (64 M doubles: 512 MB);
#: the batch of candidates is split to stay under it
JOINT_ELEMENTS = 64_000_000


class SourcePriorMean(Mean):
    """Prior mean ``c_0 + sum_k c_k z_k(x)`` of the target GP, ``z_k`` source k's standardised posterior
    mean. Inputs arrive normalised to the unit cube by the target model, so they are mapped back by
    ``bounds`` (``2 x d``) before the source models (which normalise on their own) see them, each
    its ``source_columns`` with those at ``source_simplex`` (positions in them) renormalised to sum 1.
    Shapes: ``batch x n x d -> batch x n``."""

    def __init__(self, source_models: Sequence, source_columns: Sequence[Sequence[int]], source_stats: Tensor, bounds: Tensor,
                 source_simplex: Sequence[Sequence[int]] = ()):
        super().__init__()
        self._sources = list(source_models)  # a plain list: not sub-modules, so never refitted here
        self._columns = [list(c) for c in source_columns]
        self._simplex = [list(c) for c in source_simplex] or [[] for _ in self._sources]
        self.register_buffer("stats", source_stats)  # K x 2: mean and std of each source's outcomes
        self.register_buffer("bounds", bounds)
        self.register_parameter("constant", torch.nn.Parameter(torch.zeros((), dtype=bounds.dtype)))
        self.register_parameter("slopes", torch.nn.Parameter(torch.zeros(len(self._sources), dtype=bounds.dtype)))
        # a source is a hypothesis, not a fact: slopes start at 0 and are pulled back towards it
        self.register_prior("slope_prior", NormalPrior(0.0, 1.0), lambda m: m.slopes)
        # per source: the rows and covariance of its last joint posterior at inputs without gradient
        self._joint: list[tuple[Tensor, Tensor] | None] = [None] * len(self._sources)
        self._rows: Tensor | None = None  # the rows the mean last read without gradient

    def forward(self, x: Tensor) -> Tensor:
        out = self.constant.expand(x.shape[:-1])
        if x.dim() == 2 and not x.requires_grad:  # a prediction's rows (``source_covariances``)
            self._rows = x.detach()
        for k, model in enumerate(self._sources):
            mu = model.posterior(self._on_source(x, k)).mean[..., 0]
            out = out + self.slopes[k] * (mu - self.stats[k, 0]) / self.stats[k, 1]
        return out

    def _on_source(self, x: Tensor, k: int) -> Tensor:
        """Normalised target inputs ``... x d`` as source k reads them: ``... x len(columns_k)``."""
        raw = x * (self.bounds[1] - self.bounds[0]) + self.bounds[0]
        return _on_source(raw[..., self._columns[k]], self._simplex[k])

    def source_covariances(self, x1: Tensor, x2: Tensor, diag: bool = False) -> Tensor:
        """Posterior covariance of each ``z_k`` (standardised: source k's covariance over its
        outcomes' variance) between normalised inputs ``batch x n x d`` and ``batch x m x d``:
        ``K x batch x n x m`` (diag: ``K x batch x n``). A source whose posterior has no covariance
        (a ready model giving only a mean, ``Source.model``) contributes 0.

        The source models are fixed, so a joint posterior at rows without gradient is kept and later
        blocks of it are cut from it (``_kept_block``): a fit reads the training rows' block at
        every iteration, and a prediction reads the mean at ``train + test`` rows, then the
        test-test block, then the test-train block (GPyTorch's order), so the test-test posterior
        is taken over all the rows the mean read. Each was a posterior over up to 2,000 source points
        (deciding 4 of 2,048: 5.4 -> 3.1 CPU s).

        Always the sources' real covariance: where the prior model's means alone are asked for
        (GPyTorch's ``skip_posterior_variances``: baseline pruning, the confidence bound's screen),
        its kernel still needs the sources' cross-covariance, which that flag would make zero in
        their posteriors, giving wrong means and keeping a wrong block for the variances after."""
        import gpytorch

        with gpytorch.settings.skip_posterior_variances(False):
            return self._source_covariances(x1, x2, diag)

    def _source_covariances(self, x1: Tensor, x2: Tensor, diag: bool) -> Tensor:
        batch = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])
        same = x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))
        out = []
        for k, model in enumerate(self._sources):
            scale = self.stats[k, 1] ** 2
            kept = self._kept_block(k, x1, x1 if diag else x2)
            if kept is not None:
                out.append((kept.diagonal(dim1=-2, dim2=-1) if diag else kept) / scale)
                continue
            if diag:
                post = model.posterior(self._on_source(x1, k))
                var = getattr(post, "variance", None)
                out.append(torch.zeros(*batch, x1.shape[-2], dtype=x1.dtype) if var is None
                           else var[..., 0].expand(*batch, x1.shape[-2]) / scale)
                continue
            # one joint posterior over both sets: its off-diagonal block is the cross-covariance
            both = x1 if same else torch.cat([x1.expand(*batch, *x1.shape[-2:]), x2.expand(*batch, *x2.shape[-2:])], -2)
            keep = both.dim() == 2 and not both.requires_grad
            if same and keep and self._rows is not None and len(x1) < len(self._rows) <= MAX_JOINT_ROWS \
                    and torch.equal(self._rows[len(self._rows) - len(x1):], x1):
                both = self._rows  # the test rows are the tail of the prediction's: take in the rest
            C = self._joint_covariance(model, self._on_source(both, k))
            if C is not None and keep:  # fixed sources, fixed rows: kept for every later call on them
                C = C.detach()
                self._joint[k] = (both.detach(), C)
            n = x1.shape[-2]
            C = None if C is None else C[..., -n:, -n:] if same else C[..., :n, n:]
            if C is None:
                out.append(torch.zeros(*batch, x1.shape[-2], x2.shape[-2], dtype=x1.dtype))
                continue
            out.append(C.expand(*batch, x1.shape[-2], x2.shape[-2]) / scale)
        return torch.stack(out)

    @staticmethod
    def _joint_covariance(model, rows: Tensor) -> Tensor | None:
        """A source's joint posterior covariance at ``rows`` (``batch x n x d``), a slice of the
        leading batch at a time: an acquisition asks 1,024 candidates at once, and a source
        conditioned on a 3,496-row table then asked for over 4.8 GB (the OOM killer ended the run).
        None for a source whose posterior has no covariance."""
        # GPyTorch forms the kernel over (conditioned + asked) rows for every batch element
        conditioned = getattr(model, "n_conditioned", None)
        if conditioned is None:
            train = getattr(model, "train_inputs", None)
            conditioned = int(train[0].shape[-2]) if train else 0
        per_element = (conditioned + rows.shape[-2]) ** 2
        step = max(1, JOINT_ELEMENTS // per_element)
        parts = torch.split(rows, step) if rows.dim() >= 3 and rows.shape[0] > step else [rows]
        out = []
        for part in parts:
            mvn = getattr(model.posterior(part), "distribution", None)
            if not hasattr(mvn, "covariance_matrix"):
                return None
            out.append(mvn.covariance_matrix)
        return out[0] if len(out) == 1 else torch.cat(out)

    def _kept_block(self, k: int, x1: Tensor, x2: Tensor) -> Tensor | None:
        """Source k's covariance between ``n x d`` x1 and ``m x d`` x2 cut from the last joint
        posterior it computed (``source_covariances``), when both are runs of that posterior's rows
        at its start or end; else None."""
        kept = self._joint[k]
        if kept is None or x1.dim() != 2 or x2.dim() != 2 or x1.requires_grad or x2.requires_grad:
            return None
        rows, C = kept

        def run(x: Tensor) -> int | None:
            for start in (0, len(rows) - len(x)):
                if start >= 0 and x.shape[-1] == rows.shape[-1] and torch.equal(rows[start:start + len(x)], x):
                    return start
            return None

        a, b = run(x1), run(x2)
        return None if a is None or b is None else C[a:a + len(x1), b:b + len(x2)]


class SourceCovariance(Kernel):
    """``sum_k c_k^2 Cov_k(x, x')``: what the prior mean ``c_0 + sum_k c_k z_k(x)`` of ``mean`` does not
    know, ``Cov_k`` the posterior covariance of ``z_k`` (``SourcePriorMean.source_covariances``), the
    slopes ``c_k`` the mean's own (one parameter, fitted once). Added to the residual kernel of the
    prior model. Shapes: ``batch x n x d, batch x m x d -> batch x n x m`` (diag: ``batch x n``).
    The sources' covariance at rows without gradient is computed once (``source_covariances``)."""

    def __init__(self, mean: SourcePriorMean):
        super().__init__()
        self._mean = [mean]  # a plain list: the mean is the model's sub-module, not this kernel's

    def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, **params) -> Tensor:
        mean = self._mean[0]
        cov = mean.source_covariances(x1, x2, diag)
        w = mean.slopes.pow(2).reshape(-1, *([1] * (cov.dim() - 1)))
        return (w * cov).sum(0)


def _on_source(x: Tensor, simplex: Sequence[int]) -> Tensor:
    """``x`` (``... x c``, a source's columns) with the columns at ``simplex`` renormalised to sum 1
    (rows where they sum to 0 left as they are)."""
    if not simplex:
        return x
    part = x[..., simplex]
    total = part.sum(-1, keepdim=True)
    out = x.clone()
    out[..., simplex] = part / torch.where(total > 0, total, torch.ones_like(total))
    return out


@dataclass
class TransferFit:
    """A target model that may lean on sources.

    kind: the model used (``KINDS``); model: a BoTorch ``Model``, ``posterior(X)`` of ``n x d`` gives
    the target's ``n x 1`` prediction. weights: source name -> weight in [0, 1]-ish units (multitask:
    the learned correlation of the source's task with the target's; prior: the fitted slope
    ``c_k``; 0 for every source when the cold GP is used). loo: kind -> mean leave-one-out log
    predictive density per target point (target units; higher is better) of each candidate.
    source_points: source name -> rows the chosen model learns from (after subsampling; 0 for the
    cold model; for a ready model the rows it conditions on, None where it does not say: ``_rows_used``).
    loo_rmse: kind -> leave-one-out root-mean-square error on the target's rows (target units): the
    cross-validated error of each candidate, so ``loo_rmse["cold"]`` against that of ``kind`` is
    what the sources were worth on the target's own data.
    """

    kind: str
    model: object
    weights: dict[str, float]
    loo: dict[str, float] = field(default_factory=dict)
    source_points: dict[str, int | None] = field(default_factory=dict)
    candidates: dict[str, object] = field(default_factory=dict, repr=False)
    source_models: tuple = field(default=(), repr=False)
    sources_key: tuple = field(default=(), repr=False)
    loo_rmse: dict[str, float] = field(default_factory=dict)
    #: kind -> the data each candidate was fitted on (what ``transfer_state`` saves)
    fit_data: dict[str, dict] = field(default_factory=dict, repr=False)


def loo_log_density(model, rows: Tensor | None = None) -> Tensor:
    """Leave-one-out log predictive density (outcome units) of an exact GP's training rows.

    ``rows``: boolean ``N`` mask of the rows to score (default all). For ``K`` the prior covariance
    plus noise at the training inputs and ``r = y - m`` the residuals from the prior mean,
    ``mu_i = y_i - [K^-1 r]_i / [K^-1]_ii`` and ``var_i = 1 / [K^-1]_ii`` (R&W eq. 5.12), in the
    model's standardised units; ``- log(std_y)`` brings the density back to outcome units.
    Returns the densities of the scored rows (``n_rows``).
    """
    return _loo(model, rows)[0]


def _loo(model, rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``loo_log_density`` and the leave-one-out residuals ``y_i - mu_i`` (outcome units) of the rows."""
    X = model.train_inputs[0]
    y = model.train_targets
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = model.forward(X)
        K = model.likelihood(prior, [X]).covariance_matrix
        r = y - prior.mean
        Kinv = torch.cholesky_inverse(torch.linalg.cholesky(K + 1e-8 * torch.eye(len(y), dtype=K.dtype)))
        diag = Kinv.diagonal()
        resid = (Kinv @ r) / diag  # y_i - mu_i
        lpd = -0.5 * (torch.log(2 * math.pi / diag) + resid ** 2 * diag)
    scale = getattr(getattr(model, "outcome_transform", None), "stdvs", None)
    if scale is not None:
        lpd = lpd - torch.log(scale.reshape(-1)[0])
        resid = resid * scale.reshape(-1)[0]
    return (lpd, resid) if rows is None else (lpd[rows], resid[rows])


def loo_predictions(fit: TransferFit) -> tuple[Tensor, Tensor]:
    """Leave-one-out predictions of the model ``fit`` uses at each target row (R&W eq. 5.12, the
    hyper-parameters of the fit on all rows kept): means ``n`` and predictive standard deviations
    ``n`` (noise included), in the target's units, rows in the order of the ``X`` given to
    ``fit_transfer``."""
    model = fit.model
    rows = model.train_inputs[0][:, -1] == len(fit.weights) if fit.kind == "multitask" else None
    X = model.train_inputs[0]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        K = model.likelihood(model.forward(X), [X]).covariance_matrix
        var = 1.0 / torch.cholesky_inverse(torch.linalg.cholesky(K + 1e-8 * torch.eye(len(X), dtype=K.dtype))).diagonal()
    _, resid = _loo(model, rows)
    y = fit.fit_data["target"]["y"]
    scale = getattr(getattr(model, "outcome_transform", None), "stdvs", None)
    sd = var.sqrt() * (scale.reshape(-1)[0] if scale is not None else 1.0)
    return y - resid, (sd if rows is None else sd[rows])


def _bounds(*Xs: Tensor) -> Tensor:
    X = torch.cat(Xs)
    lo, hi = X.min(0).values, X.max(0).values
    return torch.stack([lo, torch.where(hi > lo, hi, lo + 1.0)])


def _source_correlations(model, n_sources: int) -> list[float]:
    """Correlation of each source task (ids 0..K-1) with the target task (id K)."""
    with torch.no_grad():
        C = model.covar_module.kernels[1].covar_matrix.to_dense()
        d = C.diagonal().sqrt()
        corr = C / (d[:, None] * d[None, :])
    return [float(corr[k, n_sources]) for k in range(n_sources)]


def _prior_model(X: Tensor, y: Tensor, mean: SourcePriorMean, bounds: Tensor, source_covariance: bool):
    """The prior kind's target GP (``n x d``, ``n``) on ``mean``: a Matern residual, plus the sources'
    posterior covariance when ``source_covariance`` (``SourceCovariance``)."""
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize

    d = X.shape[-1]
    covar = _matern_ard(d) + SourceCovariance(mean) if source_covariance else _matern_ard(d)
    return SingleTaskGP(X, y.reshape(-1, 1), covar_module=covar, mean_module=mean,
                        input_transform=Normalize(d, bounds=bounds), outcome_transform=Standardize(1))


def _fit_prior(X, y, sources, source_models, stats, bounds, warm, seed, source_covariance: bool):
    mean = SourcePriorMean(source_models, [s.columns() for s in sources], stats, bounds, [s.simplex_positions() for s in sources])
    model = _prior_model(X, y, mean, bounds, source_covariance)
    ok = warm is not None and _load_hypers(model, {**_hyper_state(warm), "mean_module.slopes": warm.mean_module.slopes.detach(),
                                                    "mean_module.constant": warm.mean_module.constant.detach()})
    _fit_mll(model, 30 if ok else 60, seed)
    return model


def fit_transfer(
    X: Tensor,
    y: Tensor,
    sources: Sequence[Source],
    kind: str = "auto",
    bounds: Tensor | None = None,
    warm_start: TransferFit | None = None,
    seed: int = 0,
    source_covariance: bool | None = None,
) -> TransferFit:
    """Fit the target's model with sources, or without them when they do not help.

    Args:
        X: ``n x d`` target inputs (union columns). y: ``n`` target outcomes (to model; any units).
        sources: related data on the same ``d`` columns; names unique.
        kind: ``"auto"`` (the guard of the module docstring), or one of ``KINDS`` to force it.
        bounds: ``2 x d`` bounds of the target's space (default: the range of ``X``): the cold
            candidate normalises by them, the others by their union with the sources' range (a
            source in percent against target fractions must not squash the cold model that the
            guard falls back to into 1 % of its unit cube).
        warm_start: the previous ``TransferFit`` on the same sources: hyper-parameters of each
            candidate start from it, and the source GPs of the prior kind are reused.
        seed: subsampling of sources and the fits' restarts.
        source_covariance: the prior kind adds its sources' posterior covariance to its kernel
            (``SourceCovariance``); False: the sources' means only. None: ``PRIOR_SOURCE_COVARIANCE``
            (read at the call, so a benchmark can switch it for a whole campaign).

    Returns:
        a ``TransferFit``; its ``model`` predicts the target (``n x d -> n x 1``).
    """
    if kind != "auto" and kind not in KINDS:
        raise ValueError(f"unknown transfer kind {kind!r}; use auto or one of {', '.join(KINDS)}")
    if source_covariance is None:
        source_covariance = PRIOR_SOURCE_COVARIANCE
    X = torch.as_tensor(X, dtype=torch.double)
    y = torch.as_tensor(y, dtype=torch.double).reshape(-1)
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, got {names}")
    for s in sources:
        if s.X.shape[-1] != X.shape[-1]:
            raise ValueError(f"source {s.name!r} has {s.X.shape[-1]} input columns, the target {X.shape[-1]}")
    bounds = _bounds(X) if bounds is None else torch.as_tensor(bounds, dtype=torch.double)
    wide = _bounds(bounds, *[torch.as_tensor(s.X, dtype=torch.double) for s in sources])
    key = tuple((s.name, id(s.X), len(s.y)) for s in sources)
    prev = warm_start if warm_start is not None and warm_start.sources_key == key else None
    wanted = KINDS if kind == "auto" else (kind,)
    if not sources:
        wanted = ("cold",)
    fits: dict[str, object] = {}
    data: dict[str, dict] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "cold" in wanted:
            fits["cold"] = fit_gp(X, y.unsqueeze(-1), bounds=bounds, seed=seed, settings=GP_DEFAULTS,
                                  warm_start=prev.candidates.get("cold") if prev else None)
        if "multitask" in wanted:
            sub = [subsample(s, MULTITASK_SOURCE_POINTS, seed) for s in sources]
            Xa = torch.cat([*[torch.as_tensor(s.X, dtype=torch.double) for s in sub], X])
            # each source brought to the target's mean and spread: the multi-task GP's one Standardize
            # would otherwise let a source on another scale (a computed value, another unit) swamp it
            ya = torch.cat([*[_on_scale_of(torch.as_tensor(s.y, dtype=torch.double), y) for s in sub], y])
            task = torch.cat([torch.full((len(s.y),), k) for k, s in enumerate(sub)] + [torch.full((len(y),), len(sub))])
            data["multitask"] = {"X": Xa, "y": ya, "task": task}
            fits["multitask"] = fit_multitask(Xa, ya.unsqueeze(-1), task, target_task=len(sub), bounds=wide,
                                              all_tasks=list(range(len(sub) + 1)), settings=_MULTITASK_FIT, seed=seed,
                                              maxiter=60, warm_start=prev.candidates.get("multitask") if prev else None)
        source_models, stats = (prev.source_models if prev else ()), None
        if "prior" in wanted:
            if not source_models:  # a source with its own model (a standard model) is not refitted
                source_models = tuple(s.model if s.model is not None else fit_gp(s.X[:, s.columns()], s.y.reshape(-1, 1), seed=seed)
                                      for s in (subsample(s, PRIOR_SOURCE_POINTS, seed) for s in sources))
            # what each source GP conditions on (None: a ready model), for ``transfer_state``
            data["prior"] = {"sources": [None if s.model is not None else
                                         (s.X[:, s.columns()].double(), s.y.double().reshape(-1, 1))
                                         for s in (subsample(s, PRIOR_SOURCE_POINTS, seed) for s in sources)],
                             "columns": [s.columns() for s in sources],
                             "simplex": [s.simplex_positions() for s in sources],
                             "source_covariance": source_covariance}
            stats = torch.stack([torch.tensor(s.scale, dtype=torch.double).clamp_min(torch.tensor([-math.inf, 1e-12]))
                                 if s.scale is not None else torch.stack([s.y.double().mean(), _spread(s.y.double())])
                                 for s in sources])
            fits["prior"] = _fit_prior(X, y, sources, source_models, stats, wide, prev.candidates.get("prior") if prev else None, seed,
                                       source_covariance)
    loo, rmse = _score(fits, len(y), len(sources), y)
    chosen = _choose(loo, len(y)) if kind == "auto" else kind
    weights = _weights(chosen, fits.get(chosen), names)
    model = fits[chosen]
    points = {s.name: _rows_used(s, chosen) for s in sources}
    return TransferFit(chosen, model, weights, loo, points, fits, tuple(source_models), key, rmse,
                       {**data, "target": {"X": X, "y": y, "bounds": bounds, "wide": wide, "seed": seed}})


def _rows_used(source: Source, kind: str) -> int | None:
    """Rows of ``source`` the ``kind`` model learns from: none for the cold model, its subsample
    for the others; for the prior kind with a ready model, the rows that model conditions on
    (``Source.model``'s ``n_conditioned``), None where it does not say (not the predictions
    standing in for it)."""
    if kind == "cold":
        return 0
    if kind == "multitask":
        return min(len(source.y), MULTITASK_SOURCE_POINTS)
    if source.model is not None:
        return getattr(source.model, "n_conditioned", None)
    return min(len(source.y), PRIOR_SOURCE_POINTS)


def _on_scale_of(source: Tensor, target: Tensor) -> Tensor:
    """Source outcomes shifted and scaled to the target's mean and standard deviation (1 below 2 points)."""
    return target.mean() + _spread(target) * (source - source.mean()) / _spread(source)


def _spread(values: Tensor) -> Tensor:
    """The standard deviation of ``values`` to scale by: 1 below two values (a one-row source made
    every input NaN and the fit end in a traceback: review), at least 1e-12."""
    if len(values) < 2:
        return torch.ones((), dtype=values.dtype)
    return values.std().clamp_min(1e-12)


def _score(fits: dict, n: int, n_sources: int, y: Tensor) -> tuple[dict[str, float], dict[str, float]]:
    """kind -> mean LOO log predictive density per target point, and kind -> LOO RMSE (target units)."""
    out, rmse = {}, {}
    for k, model in fits.items():
        if n < 2:
            out[k] = rmse[k] = float("nan")
            continue
        lpd, resid = _loo(model, model.train_inputs[0][:, -1] == n_sources if k == "multitask" else None)
        out[k], rmse[k] = float(lpd.mean()), float(resid.pow(2).mean().sqrt())
    return out, rmse


def _choose(loo: dict[str, float], n: int) -> str:
    """The guard: the best-scoring transfer kind if it beats cold, else cold (see module docstring)."""
    transfer = {k: v for k, v in loo.items() if k != "cold" and not math.isnan(v)}
    if not transfer:
        return "cold" if "cold" in loo else next(iter(loo))
    best = max(transfer, key=transfer.get)
    if n < MIN_TARGET_POINTS or "cold" not in loo or math.isnan(loo["cold"]):
        return best
    return best if transfer[best] > loo["cold"] else "cold"


def _weights(kind: str, model, names: list[str]) -> dict[str, float]:
    if kind == "multitask":
        return dict(zip(names, _source_correlations(model, len(names))))
    if kind == "prior":
        return dict(zip(names, model.mean_module.slopes.detach().tolist()))
    return {n: 0.0 for n in names}


#: format of ``transfer_state``; ``rebuild_transfer`` reads only this one
STATE_FORMAT = 1


def transfer_state(fit: TransferFit, source_state: Callable[[object], dict], columns: Sequence[Sequence[int]] = ()) -> dict:
    """The model ``fit`` uses as tensors and plain values (never a pickled object), for
    ``rebuild_transfer``: the chosen kind, the data it was fitted on, its ``state_dict``; for the
    prior kind also each source model: a source GP as ``learn.persist`` saves a GP (with the rows
    it conditions on), a ready model (``Source.model``) by ``source_state(model)`` (a dict of the
    same kind of values); and each source's input columns (``columns``, default as fitted)."""
    target = fit.fit_data["target"]
    state: dict = {"format": STATE_FORMAT, "kind": "transfer", "transfer_kind": fit.kind, "X": target["X"].cpu(),
                   "y": target["y"].cpu(), "seed": int(target["seed"]),
                   # the bounds the chosen model normalises by (``fit_transfer``: the cold one the target's)
                   "bounds": (target["bounds"] if fit.kind == "cold" else target.get("wide", target["bounds"])).cpu(),
                   "weights": {k: float(v) for k, v in fit.weights.items()},
                   "state_dict": {k: v.detach().cpu() for k, v in fit.model.state_dict().items()}}
    if fit.kind == "multitask":
        d = fit.fit_data["multitask"]
        from dm_hpc.learn.surrogates import OWN_MEAN_POINTS

        state.update(Xa=d["X"].cpu(), ya=d["y"].cpu(), task=d["task"].cpu(), n_sources=len(fit.weights),
                     own_mean_points=OWN_MEAN_POINTS)
    if fit.kind == "prior":
        from dm_hpc.learn.persist import surrogate_state

        prior = fit.fit_data.get("prior") or {"sources": [None] * len(fit.source_models), "columns": []}
        state["sources"] = [source_state(m) if d is None else surrogate_state(m, "gp", *d)
                            for m, d in zip(fit.source_models, prior["sources"])]
        state["columns"] = [list(c) for c in (columns or prior["columns"])]
        state["simplex"] = [list(c) for c in prior.get("simplex", [])]
        state["source_covariance"] = bool(prior.get("source_covariance", False))
    return state


def rebuild_transfer(state: dict, source_model: Callable[[dict], object]):
    """The model saved by ``transfer_state``, in eval mode (a source GP is rebuilt here,
    ``source_model(saved)`` rebuilds a ready source model of the prior kind). Raises ValueError on
    a state of another format or kind."""
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize

    if state.get("format") != STATE_FORMAT or state.get("kind") != "transfer":
        raise ValueError(f"not a transfer model state (format {state.get('format')!r}, kind {state.get('kind')!r})")
    kind, X, y, bounds = state["transfer_kind"], state["X"], state["y"], state["bounds"]
    d = X.shape[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "multitask":
            K = int(state["n_sources"])
            model = fit_multitask(state["Xa"], state["ya"].unsqueeze(-1), state["task"], target_task=K, bounds=bounds,
                                  all_tasks=list(range(K + 1)), settings=_MULTITASK_FIT, seed=state["seed"], maxiter=0,
                                  own_mean_points=int(state.get("own_mean_points", 0)))  # saved before: own means
        elif kind in ("cold", "prior"):
            if kind == "prior":
                from dm_hpc.learn.persist import rebuild_surrogate

                models = [rebuild_surrogate(s) if s.get("kind") == "gp" else source_model(s) for s in state["sources"]]
                mean = SourcePriorMean(models, state["columns"], torch.zeros(len(models), 2, dtype=torch.double), bounds,
                                       state.get("simplex", ()))
                # a state saved before the key existed is a model without the sources' covariance
                model = _prior_model(X, y, mean, bounds, bool(state.get("source_covariance", False)))
            else:
                model = SingleTaskGP(X, y.reshape(-1, 1), covar_module=_matern_ard(d),
                                     input_transform=Normalize(d, bounds=bounds), outcome_transform=Standardize(1))
        else:
            raise ValueError(f"unknown transfer kind {kind!r} in a saved model")
    model.train()
    model.load_state_dict(state["state_dict"], strict=True)
    return model.eval()


__all__ = ["KINDS", "MIN_TARGET_POINTS", "MULTITASK_SOURCE_POINTS", "PRIOR_SOURCE_COVARIANCE", "PRIOR_SOURCE_POINTS", "Source",
           "SourceCovariance", "SourcePriorMean",
           "TransferFit", "fit_transfer", "loo_log_density", "loo_predictions", "on_columns", "rebuild_transfer", "subsample",
           "transfer_state", "union_columns"]
