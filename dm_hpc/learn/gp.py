"""Exact Gaussian processes: ``fit_gp`` and the settings every exact GP of the engine is built with.

ARD Matern-5/2 kernel, inputs normalised to the unit cube, outcomes standardised. Fast paths:
hyper-parameters warm-started from a previous model (few L-BFGS iterations), and above
``max_fit_points`` the hyper-parameters are fitted on a random subset while the posterior
conditions on all points. ``surrogates`` (the choice among models) and ``subset_gp`` (an exact GP
on a subset of a large table) build on this module; it imports neither.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

#: ``kind="auto"`` conditions an exact GP on at most this many training points: on all of them up to
#: here, on a random subset of this many beyond (``dm_hpc.learn.subset_gp``; the cost of an exact GP
#: grows as N^3, and of every posterior a proposal evaluates as N^2). At 10,000 records, RMSE against
#: the truth 0.0196 with 2,000 rows, 0.0190 with 2,500 (hyper-parameters on 500 rows, one run).
GP_MAX_POINTS = 2500
#: Stock fitting (BoTorch's own model, cold start, all points, no iteration cap) is available up to
#: ``GPSettings.full_fit_points``; the default does not use it (benchmarks/README.md, "Ablations":
#: on the dev suite it was level or behind the capped, warm-started Matern path and 3-8x slower).
GP_FULL_FIT_POINTS = 500
#: Above ``GPSettings.full_fit_points``, hyper-parameters are fitted on a random subset of at most
#: this many points (warm-started, capped); the posterior still conditions on all points.
GP_MAX_FIT_POINTS = 250
#: ``(loc, scale)`` of the log-normal prior on both Kumaraswamy concentrations of ``GPSettings.warp``,
#: as in BoTorch's input-warping tutorial (``bo_with_warped_gp``): median 1 (the identity warp),
#: a factor of ~2.4 either way within one standard deviation.
WARP_PRIOR = (0.0, 0.75 ** 0.5)


@dataclass(frozen=True)
class GPSettings:
    """How ``fit_gp`` builds and fits an exact GP (one source of truth; the pool benchmark's
    ablations switch these fields, campaigns use ``GP_DEFAULTS``).

    prior: "botorch" = SingleTaskGP's own model (RBF kernel with the dimension-scaled log-normal
        length-scale prior and log-normal noise prior, Hvarfner et al. 2024); "matern" = ARD
        Matern-5/2 in a ScaleKernel with a Gamma output-scale prior (the earlier default).
    full_fit_points: up to this many points: cold fit, no iteration cap (see GP_FULL_FIT_POINTS).
    warp: learned Kumaraswamy input warping (BoTorch's ``Warp``, Snoek et al. 2014) in place of
        the plain normalisation: each input is mapped to the unit cube by ``bounds`` and then through
        the CDF ``1 - (1 - x^a)^b``, ``a`` and ``b`` fitted with the other hyper-parameters under
        the log-normal priors of BoTorch's warping tutorial (``WARP_PRIOR``: median 1 = identity).
        Lets a stationary kernel follow a function whose roughness changes across the box. An
        ablation (benchmarks/README.md, "Input warping"); not the default.
    iso_points_per_dim: with the Matern prior, a GP on fewer than this many points per input
        (``n < iso_points_per_dim * d``) shares one length-scale across the inputs (isotropic, one
        hyper-parameter in place of ``d``; same log-normal prior and output-scale prior), ARD from
        there on; 0 = ARD at every size. 10 is Loeppky et al. (2009)'s rule of thumb for the size
        of a GP design; the decision model's setting (``learn.decision.DECISION_SETTINGS``), measured
        on the dev suite (benchmarks/README.md); the reporting model keeps ARD (``GP_DEFAULTS``).
    iso_by_evidence: with the Matern prior and one output, fit both kernels at every size and keep
        the one with the better Bayesian information criterion (the data's log marginal likelihood
        at the fitted hyper-parameters less ``k/2 log n`` for ``k`` length-scales): ARD only where
        the data pay for its ``d - 1`` extra hyper-parameters. Overrides ``iso_points_per_dim``.
        An ablation (benchmarks/README.md); not the default.
    iso_by_loo: as ``iso_by_evidence``, the kernel kept being the one whose leave-one-out
        predictions of the outcomes have the higher log density (closed form, Rasmussen & Williams
        2006 eq. 5.10, at the fitted hyper-parameters): the criterion asks how well each point is
        predicted from the others, not how many hyper-parameters a kernel has, so ARD is kept as
        soon as telling the inputs apart predicts better. An ablation; not the default.
    ard_spread: with the Matern prior, an ARD kernel's length-scales share one prior centre: their
        geometric mean has the dimension-scaled log-normal prior of one length-scale, and each
        log length-scale departs from that mean by ``Normal(0, ard_spread)`` (a hierarchical,
        shrinkage prior). Small values tie the inputs together as the isotropic kernel does, large
        ones leave them free; the data move them apart only as far as they pay for it, at every
        size (in place of a switch at ``iso_points_per_dim``). 0 = independent priors. An ablation.
    trend: with the Matern prior, a linear kernel on the inputs centred in the unit cube is added to
        the Matern one (Bayesian linear regression beside the GP; universal kriging): away from the
        data the model follows the measured rows' trend instead of falling back to their mean, so a
        strength that rises with two elements points past the best alloy measured so far. One
        hyper-parameter, the slopes' variance, under a log-normal prior whose median gives the
        trend a quarter of the outcomes' variance over a uniform design. An ablation.
    """

    prior: str = "botorch"
    full_fit_points: int = GP_FULL_FIT_POINTS
    warp: bool = False
    iso_points_per_dim: int = 0
    iso_by_evidence: bool = False
    iso_by_loo: bool = False
    ard_spread: float = 0.0
    trend: bool = False


#: What campaigns use, chosen by the dev-suite protocol of benchmarks/README.md (issue 10): Matern
#: prior, warm-started capped fits at every size.
GP_DEFAULTS = GPSettings(prior="matern", full_fit_points=0)
#: Multi-task GPs: BoTorch's own model and uncapped fits below 500 points, as measured in the
#: multi-fidelity table of benchmarks/README.md.
MULTITASK_SETTINGS = GPSettings()


def kernel_prior(model) -> str | None:
    """``GPSettings.prior`` of a GP built by ``fit_gp``: "matern" when its kernel is the ARD
    Matern-5/2 of ``_matern_ard``, else "botorch" (SingleTaskGP's own RBF); None for a model
    without a kernel. Saved models record it, so that they are rebuilt with the kernel they were
    fitted with."""
    from gpytorch.kernels import MaternKernel

    if getattr(model, "covar_module", None) is None:
        return None
    return "matern" if any(isinstance(k, MaternKernel) for k in model.covar_module.modules()) else "botorch"


def saved_settings(prior: str | None) -> GPSettings:
    """The settings a saved GP is rebuilt with: capped fits, as campaigns make them, with the kernel
    it recorded (``kernel_prior``); None, a model saved before the kernel was recorded, had Matern."""
    return GPSettings(prior=prior or "matern", full_fit_points=0)


def conditioned_rows(model) -> tuple[Tensor, Tensor]:
    """``(X, Y)``: the ``k x d`` inputs and ``k x m`` outcomes an exact single-task GP conditions on,
    in the units it was given (its input and outcome transforms undone; eval mode)."""
    X = model.train_inputs[0]
    X = X[0] if X.dim() == 3 else X  # a batched multi-output GP holds one copy per output
    y = model.train_targets
    y = y.unsqueeze(-1) if y.dim() == 1 else y.transpose(-1, -2)
    with torch.no_grad():
        X = model.input_transform.untransform(X) if getattr(model, "input_transform", None) is not None else X
        Y = y * model.outcome_transform.stdvs + model.outcome_transform.means
    return X.detach().cpu(), Y.detach().cpu()


def _as_xy(X, Y) -> tuple[Tensor, Tensor]:
    """Inputs ``n x d`` and outcomes ``n x m`` as double tensors (a 1-D ``Y`` becomes ``n x 1``)."""
    X = torch.as_tensor(X, dtype=torch.double)
    Y = torch.as_tensor(Y, dtype=torch.double)
    return X, (Y.unsqueeze(-1) if Y.dim() == 1 else Y)


def _matern_ard(d: int, batch_shape: torch.Size = torch.Size(), ard: bool = True, spread: float = 0.0,
                trend: bool = False):
    """ARD Matern-5/2 with the dimension-scaled log-normal length-scale prior (Hvarfner et al. 2024),
    which keeps the prior sensible whatever the number of inputs; ``ard`` False: one length-scale
    shared by the ``d`` inputs, under the same prior (``GPSettings.iso_points_per_dim``);
    ``spread`` > 0 (ARD only): that prior on the length-scales' geometric mean and ``Normal(0,
    spread)`` on each log length-scale's departure from it (``GPSettings.ard_spread``); ``trend``:
    plus a linear kernel on the centred inputs (``GPSettings.trend``)."""
    from gpytorch.kernels import MaternKernel, ScaleKernel
    from gpytorch.priors import GammaPrior, LogNormalPrior, NormalPrior

    one = LogNormalPrior(math.sqrt(2.0) + 0.5 * math.log(d), math.sqrt(3.0))
    shrink = ard and spread > 0 and d > 1
    base = MaternKernel(nu=2.5, ard_num_dims=d if ard else None, batch_shape=batch_shape,
                        lengthscale_prior=None if shrink else one)
    if shrink:
        def logs(k):
            return k.lengthscale.log()

        def centre(k):
            return logs(k).mean(-1, keepdim=True)

        # setting closures keep the other part: BoTorch's retry after a failed fit samples each prior
        base.register_prior("lengthscale_centre_prior", one, lambda k: centre(k).exp(),
                            lambda k, v: k.initialize(lengthscale=(logs(k) - centre(k) + torch.as_tensor(v).log()).exp()))
        base.register_prior("lengthscale_spread_prior", NormalPrior(0.0, spread), lambda k: logs(k) - centre(k),
                            lambda k, v: k.initialize(lengthscale=(centre(k) + v - v.mean(-1, keepdim=True)).exp()))
    matern = ScaleKernel(base, batch_shape=batch_shape, outputscale_prior=GammaPrior(2.0, 0.15))
    if not trend:
        return matern
    # slopes w ~ N(0, v I) on inputs centred in the unit cube: Var(w.x) = v d / 12 over a uniform
    # design, so v = 3 / d gives the trend a quarter of the standardised outcomes' unit variance
    from dm_hpc.learn.kernels import CentredLinearKernel

    return matern + CentredLinearKernel(batch_shape=batch_shape,
                                        variance_prior=LogNormalPrior(math.log(3.0 / d), math.sqrt(3.0)))


def _hyper_state(model) -> dict[str, Tensor]:
    """Hyper-parameters of a GP (everything but training data and transform buffers). The
    warping concentrations are parameters without a ``raw_`` form (their constraint has no transform)."""
    return {
        k: v.detach().clone()
        for k, v in model.state_dict().items()
        if "raw_" in k or k.endswith("mean_module.constant") or k.endswith("mean_module.raw_constant")
        or (k.startswith("input_transform.") and k.rsplit(".", 1)[-1] in ("concentration0", "concentration1"))
    }


def _input_transform(d: int, bounds: Tensor, warp: bool):
    """Inputs to the unit cube by ``bounds`` (``2 x d``); with ``warp``, then through a learned
    Kumaraswamy CDF per input (BoTorch's ``Warp`` normalises by the same bounds itself)."""
    from botorch.models.transforms import Normalize

    if not warp:
        return Normalize(d, bounds=bounds)
    from botorch.models.transforms.input import Warp
    from gpytorch.priors import LogNormalPrior

    return Warp(d, indices=list(range(d)), bounds=bounds,
                concentration1_prior=LogNormalPrior(*WARP_PRIOR), concentration0_prior=LogNormalPrior(*WARP_PRIOR))


def _load_hypers(model, state: dict[str, Tensor]) -> bool:
    """Load the hyper-parameters of ``state`` (``_hyper_state``) that ``model`` has, of the same shape.
    A length-scale of an isotropic kernel warm-starts an ARD one (the single value on every input)
    and back (the mean of the raw values): ``GPSettings.iso_points_per_dim`` switches at a size."""
    own = model.state_dict()
    usable = {}
    for k, v in state.items():
        if k not in own:
            continue
        if own[k].shape == v.shape:
            usable[k] = v
        elif (k.endswith("raw_lengthscale") and own[k].shape[:-1] == v.shape[:-1]
              and 1 in (own[k].shape[-1], v.shape[-1])):
            usable[k] = v.expand(own[k].shape).clone() if v.shape[-1] == 1 else v.mean(-1, keepdim=True)
    if not usable:
        return False
    model.load_state_dict(usable, strict=False)
    return True


def _fit_mll(model, maxiter: int | None, seed: int = 0) -> None:
    """Maximise the marginal likelihood; ``maxiter`` None = BoTorch's own settings (no cap).

    A failed attempt makes ``fit_gpytorch_mll`` restart from hyper-parameters drawn from the
    priors with torch's global generator, so the fit (and the next proposal) depended on
    whatever the process had drawn before: the same campaign step gave another model after
    another run in the same process. The fit draws from its own generator state, seeded by
    ``seed``, and leaves the caller's untouched.
    """
    from botorch.fit import fit_gpytorch_mll
    from botorch.optim.fit import fit_gpytorch_mll_scipy
    from gpytorch.mlls import ExactMarginalLogLikelihood

    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        try:
            if maxiter is None:
                fit_gpytorch_mll(mll)
            else:
                # The iteration cap is deliberate (speed): accept a capped optimum instead of letting
                # BoTorch treat "iteration limit reached" as a failure and restart from random priors.
                fit_gpytorch_mll(
                    mll,
                    optimizer=fit_gpytorch_mll_scipy,
                    optimizer_kwargs={"options": {"maxiter": maxiter}},
                    warning_handler=lambda w: True,
                    max_attempts=2,
                )
        except Exception:  # a failed fit keeps the prior-mode hyper-parameters; still a valid model
            pass
    model.eval()


def _bic(model, lengthscales: int) -> float:
    """The data's log marginal likelihood under ``model``'s fitted hyper-parameters (no prior
    terms: the ARD kernel has ``d`` length-scale priors, the isotropic one) less the BIC penalty
    for its ``lengthscales``; the other hyper-parameters are common to both kernels."""
    model.train()
    try:
        with torch.no_grad():
            marginal = model.likelihood(model(*model.train_inputs))
            loglik = float(marginal.log_prob(model.train_targets))
    finally:
        model.eval()
    return loglik - 0.5 * lengthscales * math.log(model.train_targets.shape[-1])


def _loo(model, lengthscales: int) -> float:
    """The summed log density of each training outcome under ``model``'s prediction from the
    others (gpytorch's ``LeaveOneOutPseudoLikelihood``, times ``n``); ``lengthscales`` unused
    (the criterion needs no penalty), taken so that it reads as ``_bic``."""
    from gpytorch.mlls import LeaveOneOutPseudoLikelihood

    del lengthscales
    model.train()
    try:
        with torch.no_grad():
            loo = LeaveOneOutPseudoLikelihood(model.likelihood, model)
            value = float(loo(model(*model.train_inputs), model.train_targets))
    finally:
        model.eval()
    return value * model.train_targets.shape[-1]


def _is_ard(model, otherwise: bool) -> bool:
    """Whether ``model``'s Matern kernel has a length-scale per input; ``otherwise`` without one."""
    from gpytorch.kernels import MaternKernel

    covar = getattr(model, "covar_module", None)
    kernels = [k for k in covar.modules() if isinstance(k, MaternKernel)] if covar is not None else []
    return kernels[0].ard_num_dims is not None if kernels else otherwise


def fit_gp(
    X: Tensor,
    Y: Tensor,
    Yvar: Tensor | None = None,
    bounds: Tensor | None = None,
    warm_start=None,
    max_fit_points: int = GP_MAX_FIT_POINTS,
    maxiter: int = 60,
    warm_maxiter: int = 30,
    seed: int = 0,
    settings: GPSettings | None = None,
    model_class: type | None = None,
):
    """Exact GP fitted by maximum a posteriori.

    Up to ``settings.full_fit_points`` points the fit is BoTorch's own (cold start, all points, no
    iteration cap; ``warm_start`` and the caps are ignored). Beyond, hyper-parameters come from at
    most ``max_fit_points`` points (a random subset), warm-started from ``warm_start`` when given,
    at most ``warm_maxiter`` / ``maxiter`` L-BFGS iterations. The default (``GP_DEFAULTS``) is the
    latter at every size, with the Matern prior. With ``settings.iso_points_per_dim``, the Matern
    kernel is isotropic below that many points per input (with ``warm_maxiter=0``: as the warm start's).

    Args:
        X: ``n x d`` inputs. Y: ``n x m`` outcomes (m independent outputs). Yvar: optional
            ``n x m`` known noise variances.
        bounds: ``2 x d`` input bounds for normalisation (default: the data's range).
        warm_start: a previous model from ``fit_gp`` on the same inputs (capped path only).
        max_fit_points: subset size for the hyper-parameters above ``full_fit_points``.
        maxiter / warm_maxiter: L-BFGS iteration caps of a cold / warm subset fit; ``warm_maxiter=0``
            keeps ``warm_start``'s hyper-parameters (no fit: the GP conditions on these points).
        settings: model and fit choices (default ``GP_DEFAULTS``).
        model_class: a subclass of ``SingleTaskGP`` with its constructor to build instead
            (``hetero.HeteroscedasticGP``, which adds a noise model for new inputs).

    Returns:
        a fitted ``botorch.models.SingleTaskGP`` (``model_class``) in eval mode.
    """
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Standardize

    settings = settings or GP_DEFAULTS
    X, Y = _as_xy(X, Y)
    n, d = X.shape
    m = Y.shape[-1]
    if bounds is None:
        lo, hi = X.min(0).values, X.max(0).values
        hi = torch.where(hi > lo, hi, lo + 1.0)
        bounds = torch.stack([lo, hi])

    ard = not 0 < n < settings.iso_points_per_dim * d
    keep = warm_start is not None and warm_maxiter == 0 and settings.prior == "matern"
    if keep:
        ard = _is_ard(warm_start, ard)  # the warm start's hyper-parameters kept: its kernel too
    elif (settings.iso_by_evidence or settings.iso_by_loo) and settings.prior == "matern" and m == 1 and d > 1 and n > 2:
        both = [fit_gp(X, Y, Yvar, bounds, warm_start, max_fit_points, maxiter, warm_maxiter, seed,
                       dataclasses.replace(settings, iso_by_evidence=False, iso_by_loo=False, iso_points_per_dim=k),
                       model_class)
                for k in (0, n + 1)]  # ARD, isotropic
        score = _loo if settings.iso_by_loo else _bic
        return max(zip(both, (d, 1)), key=lambda mk: score(*mk))[0]

    def build(Xs, Ys, Yv):
        batch = torch.Size([m]) if m > 1 else torch.Size()
        return (model_class or SingleTaskGP)(
            Xs,
            Ys,
            train_Yvar=Yv,
            covar_module=_matern_ard(d, batch, ard, settings.ard_spread, settings.trend) if settings.prior == "matern" else None,
            input_transform=_input_transform(d, bounds.to(X), settings.warp),
            outcome_transform=Standardize(m),
        )

    if n <= settings.full_fit_points:
        model = build(X, Y, Yvar)
        _fit_mll(model, None, seed)
        return model
    fit_n = min(n, max_fit_points)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:fit_n]
    sub = build(X[idx], Y[idx], None if Yvar is None else Yvar[idx])
    warm = warm_start is not None and _load_hypers(sub, _hyper_state(warm_start))
    if warm and warm_maxiter == 0:  # the warm start's hyper-parameters kept: the model only conditions
        sub.eval()
    else:
        _fit_mll(sub, warm_maxiter if warm else maxiter, seed)
    if fit_n == n:
        return sub
    model = build(X, Y, Yvar)
    _load_hypers(model, _hyper_state(sub))
    model.eval()
    return model
