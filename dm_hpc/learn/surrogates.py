"""Surrogate models, all behind BoTorch's ``Model`` interface.

- ``fit_gp`` (defined in ``gp``): exact GP, ARD Matern-5/2 kernel, inputs normalised to the unit cube, outcomes
  standardised. Fast paths: hyper-parameters warm-started from a previous model (few L-BFGS
  iterations), and above ``max_fit_points`` the hyper-parameters are fitted on a random subset
  while the posterior conditions on all points.
- ``fit_multitask``: multi-task GP over discrete fidelities (each calculation method and the
  lab is a task); cheap data informs the expensive target through the learned task covariance.
- ``DeepEnsemble`` / ``fit_ensemble``: S torch MLPs trained together with ``torch.func.vmap``;
  the posterior is BoTorch's ``EnsemblePosterior`` (mean and variance across members).
- ``fit_surrogate``: picks one of the above, or the exact GP on a subset of the records
  (``subset_gp``: BoTorch's RBF kernel above ``GP_MAX_POINTS`` records), by data size (overridable).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

# The exact GP lives in ``gp`` (``subset_gp`` builds on it too); its public names are this
# module's as well, where callers have always found them.
from dm_hpc.learn.gp import (
    GP_DEFAULTS,
    GP_FULL_FIT_POINTS,
    GP_MAX_FIT_POINTS,
    GP_MAX_POINTS,
    MULTITASK_SETTINGS,
    GPSettings,
    _as_xy,
    _fit_mll,
    _hyper_state,
    _load_hypers,
    _matern_ard,
    fit_gp,
)



#: a task (fidelity) observed fewer times than this shares the mean of the task observed most, and
#: its variance across the space is held near that task's (``TASK_SCALE_PRIOR``). BoTorch's
#: ``MultiTaskGP`` gives every task its own mean and scale: a task seen once fitted its one value
#: with its mean, and the marginal likelihood grew without bound as its variance shrank, so the
#: model predicted that value everywhere with a thousandth of the spread (hea-demo, one lab record
#: beside 40 calculations: 0.0306 +- 0.00013 eV/atom at every composition). Now the one value is
#: explained through the task covariance, as a shift of the calculations' trend
#: (``benchmarks/one_lab_record.py``, 12 synthetic families: lab RMSE over the lab values' spread
#: 1.02 -> 0.47, 90 % coverage 0.28 -> 0.78). From two records on, the likelihood is bounded and the
#: model is BoTorch's: holding two records too helped the synthetic families (0.70 -> 0.39) but on
#: measured band gaps beside DFT (``fidelity_bench.py --measured 2``, 5 splits) it was worse on three
#: splits of five (RMSE 1.425 -> 1.630 eV on average, coverage 63 -> 71 %).
OWN_MEAN_POINTS = 2
#: ``(loc, scale)`` of the log-normal prior on an under-observed task's variance over the most
#: observed task's: median 1 (a measurement of the property varies across compositions as the
#: calculation does), a factor 1.65 either way within one standard deviation.
TASK_SCALE_PRIOR = (0.0, 0.5)
#: ``own_mean_points`` that shares the mean, and holds the scale, of every task but the most observed
HOLD_ALL = 2**31


#: prior variance (standardised outcome units) of each task's constant offset from the most observed
#: task's level, integrated out (``task_offset_kernel``) instead of fitted as a mean of its own
#: (``fit_multitask(task_offsets=True)``, an ablation). On synthetic families (a lab = a f + b + a
#: small discrepancy) it raised the 90 % coverage of the lab predictions from 0.44-0.89 to 0.79-0.94
#: at 3-10 records and lowered their error (``benchmarks/one_lab_record.py``), but on the measured
#: band gaps beside DFT (``fidelity_bench.py``, 5 splits) the multi-task model's RMSE rose at every
#: count: 1.088 -> 1.324 eV (5 measured), 1.114 -> 1.355 (10), 0.950 -> 0.976 (20), 0.868 -> 0.943
#: (50), coverage level or lower. Not adopted: the synthetic lab is a shifted copy by construction.
TASK_OFFSET_VAR = 1.0


def task_offset_kernel(col: int, variances: Sequence[float]):
    """``k((x, t), (x', t')) = v_t [t == t']``: a constant offset per task, ``N(0, v_t)``, integrated
    out. Added to a ``MultiTaskGP``'s kernel, whose inputs carry the task's position (0 .. T-1) in
    column ``col``; ``variances``: ``T`` prior variances (0 for the task that fixes the shared
    level). The class is built on first use: gpytorch is not imported with this module."""
    global _TaskOffset
    if _TaskOffset is None:
        from gpytorch.kernels import Kernel

        class TaskOffset(Kernel):
            is_task_offset = True  # what ``persist`` recognises

            def __init__(self, col: int, variances: Sequence[float]) -> None:
                super().__init__()
                self.col = col
                self.register_buffer("v", torch.as_tensor(list(variances), dtype=torch.double))

            def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, **params) -> Tensor:
                t1, t2 = x1[..., self.col].long(), x2[..., self.col].long()
                K = (t1.unsqueeze(-1) == t2.unsqueeze(-2)).to(x1) * self.v.to(x1)[t1].unsqueeze(-1)
                return K.diagonal(dim1=-2, dim2=-1) if diag else K

        _TaskOffset = TaskOffset
    return _TaskOffset(col, variances)


_TaskOffset = None


def _task_means(counts: Sequence[int], own_mean_points: int = OWN_MEAN_POINTS):
    """``MultitaskMean`` over tasks observed ``counts`` times (in task-id order): a ``ConstantMean``
    per task observed ``own_mean_points`` times or more, the most observed task's for the others."""
    from gpytorch.means import ConstantMean, MultitaskMean

    means = [ConstantMean() for _ in counts]
    main = _most_observed(counts)
    return MultitaskMean([means[t] if c >= own_mean_points else means[main] for t, c in enumerate(counts)],
                         num_tasks=len(counts))


def _most_observed(counts: Sequence[int]) -> int:
    return max(range(len(counts)), key=lambda t: counts[t])


def _hold_task_scales(task_kernel, counts: Sequence[int], own_mean_points: int = OWN_MEAN_POINTS) -> None:
    """Register ``TASK_SCALE_PRIOR`` on the variance of each task of ``task_kernel`` (BoTorch's
    ``PositiveIndexKernel``, ``B = L L^T + diag(var)``) observed fewer than ``own_mean_points``
    times, relative to the most observed task's. Its setting closure moves the task's own ``var``
    (a draw from the prior, when a failed fit restarts from the priors)."""
    from gpytorch.priors import LogNormalPrior

    main = _most_observed(counts)
    for u, c in enumerate(counts):
        if c >= own_mean_points or u == main:
            continue

        def ratio(k, u=u):
            B = k.covar_matrix
            return B[..., u, u] / B[..., main, main]

        def set_ratio(k, r, u=u):
            cf = k.covar_factor.detach()
            unnorm = cf @ cf.transpose(-1, -2) + torch.diag_embed(k.var.detach())
            var = k.var.detach().clone()
            var[..., u] = (r.to(var) * unnorm[..., main, main] - unnorm[..., u, u] + var[..., u]).clamp_min(1e-6)
            k.var = var

        task_kernel.register_prior(f"task{u}_scale_prior", LogNormalPrior(*TASK_SCALE_PRIOR), ratio, set_ratio)


def fit_multitask(
    X: Tensor,
    Y: Tensor,
    task_index: Tensor,
    target_task: int | None = None,
    bounds: Tensor | None = None,
    warm_start=None,
    maxiter: int = 200,
    warm_maxiter: int = 30,
    all_tasks: Sequence[int] | None = None,
    settings: GPSettings | None = None,
    seed: int = 0,
    own_mean_points: int = OWN_MEAN_POINTS,
    task_offsets: bool = False,
):
    """Multi-task GP over discrete fidelities.

    Args:
        X: ``n x d`` inputs (without the task column). Y: ``n x 1`` outcomes.
        task_index: ``n`` integer task ids (e.g. 0 = cheap calculator, 1 = DFT, 2 = lab).
        target_task: the task that ``posterior(X)`` predicts when X has no task column (default:
            the highest id, by convention the experimental target).
        all_tasks: every task id the model should know, observed or not yet (default: observed
            ids plus ``target_task``).
        warm_start / maxiter / warm_maxiter: used only above ``MULTITASK_SETTINGS.full_fit_points``
            points; below, the fit is BoTorch's own (cold, uncapped).
        settings: default ``MULTITASK_SETTINGS``; ``full_fit_points=0`` caps every fit at ``maxiter``.
        seed: seeds the task kernel's random initial factor and the fit's restarts, so one data set
            gives one model in any process (the factor was drawn from torch's global generator).
        own_mean_points: a task observed fewer times shares the most observed task's constant mean
            and has its variance held near that task's (``OWN_MEAN_POINTS``; 0 = every task its
            own mean and scale, as models saved before it were built).
        task_offsets: an ablation, not the default: every task shares the most observed task's
            constant mean, differs from it by an offset integrated out (``task_offset_kernel``,
            ``TASK_OFFSET_VAR``) and has its variance held near that task's
            (``TASK_SCALE_PRIOR``); ``own_mean_points`` is then unused.

    Returns:
        a fitted ``botorch.models.MultiTaskGP``; inputs with ``d + 1`` columns (last = task id)
        give per-task predictions, ``d`` columns give the target task.
    """
    from botorch.models import MultiTaskGP
    from botorch.models.transforms import Normalize, Standardize

    X = torch.as_tensor(X, dtype=torch.double)
    Y = torch.as_tensor(Y, dtype=torch.double).reshape(-1, 1)
    tasks = torch.as_tensor(task_index, dtype=torch.double).reshape(-1, 1)
    n, d = X.shape
    if bounds is None:
        lo, hi = X.min(0).values, X.max(0).values
        hi = torch.where(hi > lo, hi, lo + 1.0)
        bounds = torch.stack([lo, hi])
    known = {int(t) for t in tasks.flatten().tolist()} | ({target_task} if target_task is not None else set())
    all_tasks = sorted(known | set(all_tasks or ()))
    target = max(all_tasks) if target_task is None else int(target_task)
    full_bounds = torch.cat([bounds.to(X), torch.tensor([[0.0], [1.0]], dtype=X.dtype)], dim=-1)
    counts = [int((tasks == t).sum()) for t in all_tasks]  # position in all_tasks = the model's task index
    with torch.random.fork_rng(devices=[]):  # IndexKernel draws its initial factor with torch.randn
        torch.manual_seed(seed)
        model = MultiTaskGP(
            torch.cat([X, tasks], dim=-1),
            Y,
            task_feature=-1,
            mean_module=_task_means(counts, HOLD_ALL if task_offsets else own_mean_points),
            covar_module=_matern_ard(d) if MULTITASK_SETTINGS.prior == "matern" else None,
            output_tasks=[target],
            all_tasks=all_tasks,
            input_transform=Normalize(d + 1, bounds=full_bounds, indices=list(range(d))),
            outcome_transform=Standardize(1),
        )
    _hold_task_scales(model.covar_module.kernels[-1], counts, HOLD_ALL if task_offsets else own_mean_points)
    if task_offsets:
        main = _most_observed(counts)
        model.covar_module = model.covar_module + task_offset_kernel(
            d, [0.0 if t == main else TASK_OFFSET_VAR for t in range(len(counts))])
    if n <= (settings or MULTITASK_SETTINGS).full_fit_points:  # BoTorch's own fit, no cap, no warm start
        _fit_mll(model, None, seed)
        return model
    warm = warm_start is not None and _load_hypers(model, _hyper_state(warm_start))
    _fit_mll(model, warm_maxiter if warm else maxiter, seed)
    return model


class DeepEnsemble(nn.Module):
    """S independent MLPs ``d -> width -> width -> m`` evaluated together with ``torch.func.vmap``.

    Wrapped by ``EnsembleSurrogate`` for BoTorch; kept as a plain module so that training is
    ordinary torch code.
    """

    def __init__(self, d: int, m: int, members: int = 5, width: int = 64, seed: int = 0):
        super().__init__()
        from torch.func import stack_module_state

        with torch.random.fork_rng(devices=[]):  # nn.Linear draws from the global generator
            torch.manual_seed(seed)
            nets = [
                nn.Sequential(nn.Linear(d, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, m))
                for _ in range(members)
            ]
        params, buffers = stack_module_state(nets)
        self.params = nn.ParameterDict({k.replace(".", "_"): nn.Parameter(v) for k, v in params.items()})
        self._names = {k.replace(".", "_"): k for k in params}
        self._buffers_stacked = buffers
        self._template = [nets[0]]  # a list so that it is not registered as a sub-module
        self.members = members

    def forward(self, x: Tensor) -> Tensor:
        """``... x n x d`` -> ``S x ... x n x m`` (in the parameters' dtype)."""
        from torch.func import functional_call, vmap

        params = {self._names[k]: v for k, v in self.params.items()}
        x = x.to(next(iter(params.values())).dtype)  # an acquisition may have moved the model to double
        template = self._template[0]

        def one(p, b, xx):
            return functional_call(template, (p, b), (xx,))

        return vmap(one, in_dims=(0, 0, None))(params, self._buffers_stacked, x)


def _ensemble_model_class():
    from botorch.models.ensemble import EnsembleModel

    class EnsembleSurrogate(EnsembleModel):
        """A trained ``DeepEnsemble`` as a BoTorch model: ``forward`` gives
        ``batch_shape x S x n x m`` member predictions in the original outcome units, so every
        MC acquisition (qLogNEI, qLogNEHVI) works with it through ``EnsemblePosterior``."""

        def __init__(self, net: DeepEnsemble, x_mean: Tensor, x_std: Tensor, y_mean: Tensor, y_std: Tensor, train_inputs: Tensor):
            super().__init__()
            self.net = net
            self.register_buffer("x_mean", x_mean)
            self.register_buffer("x_std", x_std)
            self.register_buffer("y_mean", y_mean)
            self.register_buffer("y_std", y_std)
            self._num_outputs = int(y_mean.numel())
            self.train_inputs = (train_inputs,)

        def forward(self, X: Tensor) -> Tensor:
            z = (X - self.x_mean) / self.x_std
            with torch.set_grad_enabled(X.requires_grad):
                out = self.net(z).to(X.dtype)  # S x batch x n x m
            out = out * self.y_std + self.y_mean
            return out.movedim(0, -3)  # batch x S x n x m

    return EnsembleSurrogate


def fit_ensemble(
    X: Tensor,
    Y: Tensor,
    members: int = 5,
    width: int = 64,
    steps: int | None = None,
    batch_size: int = 512,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
):
    """Train a deep ensemble and return it as a BoTorch ``EnsembleModel``.

    Args:
        X: ``n x d`` inputs; Y: ``n x m`` outcomes (standardised internally).
        members: ensemble size S; width: hidden units; steps: optimiser steps (default grows
            slowly with n: 600 at small n, ~2,000 at 100k points).
        batch_size: minibatch size; each member sees its own random minibatches, the
            source of diversity together with its own initialisation.

    Returns:
        model whose ``posterior(X)`` has mean and variance across members (``batch x q x m``).
    """
    X, Y = _as_xy(X, Y)
    n, d = X.shape
    m = Y.shape[-1]
    x_mean, x_std = X.mean(0), X.std(0).clamp_min(1e-8) if n > 1 else torch.ones(d, dtype=X.dtype)
    y_mean, y_std = Y.mean(0), (Y.std(0).clamp_min(1e-8) if n > 1 else torch.ones(m, dtype=Y.dtype))
    xs = ((X - x_mean) / x_std).float()
    ys = ((Y - y_mean) / y_std).float()
    net = DeepEnsemble(d, m, members=members, width=width, seed=seed)
    if steps is None:
        steps = int(600 + 300 * max(0.0, math.log10(max(n, 1) / 1000.0)) * 2)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(seed)
    bs = min(batch_size, n)
    for _ in range(steps):
        if bs < n:
            idx = torch.randint(0, n, (members, bs), generator=gen)
        else:
            idx = torch.arange(n).expand(members, n)
        xb, yb = xs[idx], ys[idx]  # S x bs x d
        from torch.func import functional_call, vmap

        params = {net._names[k]: v for k, v in net.params.items()}
        pred = vmap(lambda p, b, xx: functional_call(net._template[0], (p, b), (xx,)))(params, net._buffers_stacked, xb)
        loss = ((pred - yb) ** 2).mean() * members
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    cls = _ensemble_model_class()
    return cls(net, x_mean, x_std, y_mean, y_std, X)


def auto_kind(rows: int, tasks: int = 1) -> str:
    """The kind ``fit_surrogate(kind="auto")`` fits on ``rows`` records of ``tasks`` fidelities: the
    one size rule, which the model registry (``dm-hpc train``) follows too.

    "multitask" for several fidelities; else "subset-gp" at every size: an exact GP on all records
    up to ``GP_MAX_POINTS``, on a random ``GP_MAX_POINTS`` of them beyond. Chosen by measurement at
    2k-100k records (benchmarks/README.md, "Large data"): the calibrated ensemble's latent intervals
    covered the noise-free truth about half as often as they claim, the subset GP's 89-98 %.
    ``rows`` does not change the kind today; it is an argument so that a size rule has one home.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    return "multitask" if tasks > 1 else "subset-gp"


def fit_surrogate(
    X: Tensor,
    Y: Tensor,
    kind: str = "auto",
    task_index: Tensor | None = None,
    target_task: int | None = None,
    bounds: Tensor | None = None,
    warm_start=None,
    **kwargs,
):
    """Fit the surrogate that suits the data.

    Args:
        X: ``n x d`` features (``featurize``). Y: ``n x m`` outcomes in canonical units.
        kind: ``"auto"`` (multi-task when ``task_index`` holds several tasks; else an exact GP on
            at most ``GP_MAX_POINTS`` points, a random subset beyond with BoTorch's RBF kernel in place
            of Matern-5/2, its hyper-parameters kept from the better of two starts, a noise level
            per input where the left-out rows show one:
            ``subset_gp``, ``hetero``), ``"gp"`` (``fit_gp``: one start, all points),
            ``"subset-gp"`` (as auto), ``"multitask"``, ``"ensemble"`` (calibrated Gaussian ensemble).
        task_index: ``n`` integer fidelity ids for the multi-task GP.
        warm_start: previous model of the same kind, to warm-start hyper-parameters.
        kwargs: passed to ``fit_gp`` / ``subset_gp.fit_subset_gp`` / ``fit_multitask`` /
            ``ensemble.fit_calibrated_ensemble``.

    Returns:
        a BoTorch ``Model``.
    """
    X, Y = _as_xy(X, Y)
    if kind == "auto":
        tasks = 1 if task_index is None else len(torch.unique(torch.as_tensor(task_index)))
        kind = auto_kind(len(X), tasks)
    if bool(torch.isnan(Y).any()):
        return _fit_each_output(X, Y, kind, task_index, target_task, bounds, warm_start, **kwargs)
    if kind == "gp":
        return fit_gp(X, Y, bounds=bounds, warm_start=warm_start, **kwargs)
    if kind == "subset-gp":
        from dm_hpc.learn.subset_gp import fit_subset_gp

        return fit_subset_gp(X, Y, bounds=bounds, warm_start=warm_start, **kwargs)
    if kind == "multitask":
        if task_index is None:
            raise ValueError("kind='multitask' needs task_index")
        if Y.shape[-1] > 1:
            # one multi-task GP per property (a MultiTaskGP models one outcome over tasks),
            # held together as a model list: posteriors are n x m like any other surrogate
            from botorch.models import ModelListGP

            return ModelListGP(*[
                fit_multitask(X, Y[:, i:i + 1], task_index, target_task=target_task, bounds=bounds, **kwargs)
                for i in range(Y.shape[-1])
            ])
        return fit_multitask(X, Y, task_index, target_task=target_task, bounds=bounds, warm_start=warm_start, **kwargs)
    if kind == "ensemble":  # the large-data model: calibrated Gaussian ensemble (dm_hpc.learn.ensemble)
        from dm_hpc.learn.ensemble import fit_calibrated_ensemble

        return fit_calibrated_ensemble(X, Y, **kwargs)
    raise ValueError(f"unknown surrogate kind {kind!r}; use auto, gp, subset-gp, multitask or ensemble")


def _fit_each_output(X: Tensor, Y: Tensor, kind: str, task_index, target_task, bounds, warm_start, **kwargs):
    """``fit_surrogate`` where some outcomes are missing (NaN: a lab filled hardness and left
    density for later, a calculation gives the energy and not the hardness): each output learns
    from the rows that hold it, so a row missing one value still informs the others (it was left
    out of every output before). One output: its rows alone, one model as usual. Several: one
    model per output, of the kind resolved on all rows (a multi-task GP stays one however few
    tasks an output saw), held as a model list whose posteriors are ``n x m`` like any other
    surrogate's. The ensemble learns all outputs at once: it takes only the complete rows.

    Raises ValueError naming the output when one has no value at all.
    """
    from botorch.models import ModelListGP

    have = ~torch.isnan(Y)
    if kind == "ensemble":
        full = have.all(-1)
        return fit_surrogate(X[full], Y[full], kind=kind, task_index=None if task_index is None
                             else torch.as_tensor(task_index)[full], target_task=target_task, bounds=bounds,
                             warm_start=warm_start, **kwargs)
    empty = [i for i in range(Y.shape[-1]) if not bool(have[:, i].any())]
    if empty:
        raise ValueError(f"output(s) {empty} have no value in any row: nothing to learn them from")
    tasks = None if task_index is None else torch.as_tensor(task_index)
    warm = list(warm_start.models) if isinstance(warm_start, ModelListGP) and len(warm_start.models) == Y.shape[-1] else None

    def one(i: int):
        ok = have[:, i]
        own = dict(kwargs)
        if own.get("Yvar") is not None:  # a known noise per value: the output's own rows of it
            own["Yvar"] = torch.as_tensor(own["Yvar"], dtype=torch.double).reshape(Y.shape)[ok, i:i + 1]
        return fit_surrogate(X[ok], Y[ok, i:i + 1], kind=kind, task_index=None if tasks is None else tasks[ok],
                             target_task=target_task, bounds=bounds, warm_start=None if warm is None else warm[i],
                             **own)

    if Y.shape[-1] == 1:
        return one(0)
    return ModelListGP(*[one(i) for i in range(Y.shape[-1])])


def surrogate_kind(model) -> str:
    """'gp' (also an exact GP on a subset), 'multitask', 'ensemble' (member values) or
    'calibrated-ensemble' for a model made here."""
    from botorch.models import MultiTaskGP
    from botorch.models.ensemble import EnsembleModel

    from dm_hpc.learn.ensemble import calibrated_ensemble_class

    if isinstance(model, MultiTaskGP):
        return "multitask"
    if isinstance(model, calibrated_ensemble_class()):
        return "calibrated-ensemble"
    if isinstance(model, EnsembleModel):
        return "ensemble"
    return "gp"


def predict(model, X: Tensor) -> tuple[Tensor, Tensor]:
    """Posterior mean and standard deviation (``n x m`` each) of ``model`` at ``n x d`` X, in chunks."""
    from dm_hpc.learn.moments import moments

    mean, var = moments(model, X)
    return mean, var.sqrt()


__all__: Sequence[str] = (
    "GP_DEFAULTS",
    "GP_FULL_FIT_POINTS",
    "GP_MAX_FIT_POINTS",
    "GP_MAX_POINTS",
    "MULTITASK_SETTINGS",
    "GPSettings",
    "DeepEnsemble",
    "auto_kind",
    "fit_ensemble",
    "fit_gp",
    "fit_multitask",
    "fit_surrogate",
    "predict",
    "surrogate_kind",
)
