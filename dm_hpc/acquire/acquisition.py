"""Acquisition functions and the greedy batch selection over candidate sets.

Single objective: batch upper confidence bound ``qUpperConfidenceBound`` (default, see
``DEFAULT_ACQUISITION``) or ``qLogNoisyExpectedImprovement`` (``kind="nei"``, and always when there
are outcome constraints); several objectives: ``qLogNoisyExpectedHypervolumeImprovement``.
Outcome constraints enter qLogNEI/qLogNEHVI as sigmoid-smoothed feasibility weights. Pending points (proposed, results not back) are ``X_pending``: the
acquisition integrates over their unknown outcomes, so they are never proposed again.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

import torch
from torch import Tensor

from dm_hpc.acquire.points import may_take
from dm_hpc.data.rules import within


#: single-objective acquisition used by ``propose`` and the ``default`` strategy: "ucb" (batch
#: confidence bound, qUCB, mean + 2 std) or "nei" (qLogNEI). Outcome constraints always use qLogNEI
#: (qUCB cannot weigh feasibility). UCB is the default because in the pool benchmarks
#: (benchmarks/README.md) it was never worse than EI/NEI and clearly better on the noisy set;
#: Liang et al. (2021) report the same robustness of confidence bounds.
DEFAULT_ACQUISITION = "ucb"
#: confidence-bound width: mean + sqrt(beta) * std, i.e. two standard deviations.
UCB_BETA = 4.0


#: ``... x d`` features -> ``...`` values of an output the inputs decide (canonical unit): a
#: raw-material cost or a descriptor of the composition (``inverse.ExactProperty``), computed where
#: a model would only guess it.
ExactOutput = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Objective:
    """One objective: model output ``output`` is maximised (or minimised).

    ``exact``: when the inputs decide the output (``ExactOutput``), the acquisition takes its values
    from it instead of the model's samples (the model may still hold the output: it is not used).
    """

    output: int = 0
    maximize: bool = True
    name: str = ""
    exact: ExactOutput | None = field(default=None, compare=False, repr=False)

    @property
    def sign(self) -> float:
        return 1.0 if self.maximize else -1.0


@dataclass(frozen=True)
class OutcomeConstraint:
    """Model output ``output`` must satisfy ``op value`` (``op`` is ``"<="`` or ``">="``),
    in the output's canonical unit, e.g. density <= 7 g/cm3.

    ``exact``: when the inputs decide the output (``ExactOutput``), the constraint is not weighed in
    probability: candidates that break it are never ranked (``propose``), and the acquisition
    leaves it out."""

    output: int
    op: str
    value: float
    name: str = ""
    exact: ExactOutput | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise ValueError(f"constraint operator must be '<=' or '>=', got {self.op!r}")

    def met(self, X: Tensor) -> Tensor:
        """``n x d`` features -> ``n`` booleans: the exact constraint holds (``data.rules.within``:
        a value on the bound meets it). Only for a constraint with ``exact``."""
        if self.exact is None:
            raise ValueError(f"constraint on {self.name or self.output!r} has no exact form")
        return within(self.exact(X), self.op, self.value)

    def as_callable(self) -> Callable[[Tensor], Tensor]:
        """BoTorch constraint ``samples (... x q x m) -> ... x q``, feasible where <= 0."""
        i, v = self.output, float(self.value)
        if self.op == "<=":
            return lambda Z: Z[..., i] - v
        return lambda Z: v - Z[..., i]


def rules_met(X: Tensor, constraints: Sequence[OutcomeConstraint]) -> Tensor | None:
    """``n`` booleans (``batch x n``): the ``n x d`` (``batch x n x d``) features meet every exact constraint (``OutcomeConstraint.exact``);
    None when no constraint is exact. What is never ranked (``propose``, ``select_from_pool``)."""
    rules = [c for c in constraints if c.exact is not None]
    if not rules:
        return None
    ok = torch.ones(X.shape[:-1], dtype=torch.bool, device=X.device)  # ``batch x n x d`` inputs too (an MC objective's)
    for rule in rules:
        ok &= rule.met(X)
    return ok


def _column(Z: Tensor, X: Tensor | None, ob: Objective) -> Tensor:
    """An objective's values oriented to be maximised: ``Z`` (``... x m`` model samples or means)
    at output ``ob.output``, or its exact values at ``X`` (``batch x n x d``, broadcast over the
    samples' leading dimensions)."""
    if ob.exact is None or X is None:
        return ob.sign * Z[..., ob.output]
    return (ob.sign * ob.exact(X).to(Z)).expand(Z.shape[:-1])


def _objective_transform(objectives: Sequence[Objective], num_outputs: int,
                         rules: Sequence[OutcomeConstraint] = (), floor: Tensor | None = None):
    """The MC objective of ``objectives`` (None: the model's one output, maximised). With ``rules``
    (exact constraints) and ``floor`` (``k`` values, one per objective), an input that breaks a
    rule takes ``floor``: below anything the model expects, so such a record sets no bar."""
    from botorch.acquisition.multi_objective.objective import (
        GenericMCMultiOutputObjective,
        WeightedMCMultiOutputObjective,
    )
    from botorch.acquisition.objective import GenericMCObjective

    if rules and floor is not None:
        def values(Z: Tensor, X: Tensor | None = None) -> Tensor:
            v = objective_values(Z, objectives, X)  # sample x batch x n x k
            if X is None:
                return v
            return torch.where(rules_met(X, rules).unsqueeze(-1), v, floor.to(v))  # X: batch x n x d

        if len(objectives) == 1:
            return GenericMCObjective(lambda Z, X=None: values(Z, X)[..., 0])
        return GenericMCMultiOutputObjective(values)
    exact = any(ob.exact is not None for ob in objectives)
    if len(objectives) == 1:
        ob = objectives[0]
        if num_outputs == 1 and ob.maximize and not exact:
            return None
        return GenericMCObjective(lambda Z, X=None: _column(Z, X, ob))
    if exact:  # BoTorch passes the inputs with the samples (``objective(samples, X=X)``)
        return GenericMCMultiOutputObjective(lambda Z, X=None: objective_values(Z, objectives, X))
    weights = torch.tensor([ob.sign for ob in objectives], dtype=torch.double)
    return WeightedMCMultiOutputObjective(weights=weights, outcomes=[ob.output for ob in objectives], num_outcomes=num_outputs)


def objective_values(Y: Tensor, objectives: Sequence[Objective], X: Tensor | None = None) -> Tensor:
    """``n x m`` outcomes -> ``n x k`` objective values, all oriented to be maximised (an exact
    objective's computed at ``X``, the ``n x d`` inputs, when given)."""
    return torch.stack([_column(Y, X, ob) for ob in objectives], dim=-1)


def prune_baseline_by_mean(model, X_baseline: Tensor, objectives: Sequence[Objective], keep: int) -> Tensor:
    """Keep the ``keep`` baseline points most likely to be the incumbent (best posterior mean of the
    first objective, or the non-dominated means for several objectives, filled up by rank).
    Bounds the cost of noisy-EI/EHVI on 10^4-10^5 records."""
    from botorch.utils.multi_objective.pareto import is_non_dominated

    from dm_hpc.learn.moments import moments

    if X_baseline.shape[0] <= keep:
        return X_baseline
    means = moments(model, X_baseline, 1024, variances=False)[0]
    obj = objective_values(means, objectives, X_baseline)
    if obj.shape[-1] == 1:
        return X_baseline[obj[:, 0].topk(keep).indices]
    nd = is_non_dominated(obj)
    order = torch.argsort(obj.sum(-1) + 1e9 * nd.double(), descending=True)
    return X_baseline[order[:keep]]


def with_computed(mean: Tensor, std: Tensor, computed: Mapping[int, ExactOutput], X: Tensor,
                  width: int = 0) -> tuple[Tensor, Tensor]:
    """A model's ``n x m`` mean and std at ``X`` (``n x d``) as reported: widened with NaN columns to
    ``width`` and to every ``computed`` output (an output the inputs decide need not be one of the
    model's), each computed output at its value with std 0 (``propose``, ``GapFilling``)."""
    width = max(mean.shape[-1], max(computed, default=-1) + 1, width)
    mean, std = (torch.cat([t, t.new_full((*t.shape[:-1], width - t.shape[-1]), float("nan"))], -1) for t in (mean, std))
    for i, f in computed.items():
        mean[..., i], std[..., i] = f(X).to(mean), 0.0
    return mean, std


def _below_expected(model, X: Tensor, objectives: Sequence[Objective]) -> Tensor:
    """``k`` objective values below what ``model`` expects anywhere in ``X`` (``n x d``): per
    objective the least of mean - 6 sd (an exact objective: its value), less its size again, as
    BoTorch's ``get_infeasible_cost`` bounds an infeasible point's objective."""
    from dm_hpc.learn.moments import moments

    mean, var = moments(model, X, 1024)
    sd = torch.stack([torch.zeros(len(X), dtype=mean.dtype, device=mean.device) if ob.exact is not None else var[:, ob.output].clamp_min(0).sqrt()
                      for ob in objectives], -1)
    lower = (objective_values(mean, objectives, X) - 6 * sd).min(0).values
    return lower - lower.abs().clamp_min(1.0)


def _is_gp(model) -> bool:
    from botorch.models.gpytorch import GPyTorchModel

    return isinstance(model, GPyTorchModel)


def build_acquisition(
    model,
    X_baseline: Tensor,
    objectives: Sequence[Objective],
    constraints: Sequence[OutcomeConstraint] = (),
    X_pending: Tensor | None = None,
    ref_point: Sequence[float] | None = None,
    max_baseline: int = 512,
    kind: str | None = None,
):
    """qUCB or qLogNEI (one objective; ``kind`` "ucb"/"nei") or qLogNEHVI (several) on ``model``.

    Args:
        X_baseline: ``n x d`` observed inputs (the noisy incumbent is taken from their posterior).
        objectives: which outputs, maximised or minimised. constraints: outcome constraints.
        X_pending: ``p x d`` points whose results are not back yet.
        ref_point: hypervolume reference in objective units (oriented to maximise); default
            inferred from the posterior means at the baseline (BoTorch's ``infer_reference_point``).
        max_baseline: baseline points kept (by posterior mean) beyond which cost would explode.

    Returns:
        an acquisition function ``batch x q x d -> batch``.
    """
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.utils.multi_objective.hypervolume import infer_reference_point

    from dm_hpc.acquire.kernels import use_environment_cache

    if not objectives:
        raise ValueError("at least one objective is needed")
    obj = _objective_transform(objectives, model.num_outputs)
    X_baseline = X_baseline.to(torch.double)
    kind = kind or DEFAULT_ACQUISITION
    learned = [c for c in constraints if c.exact is None]
    if len(objectives) == 1 and kind == "ucb" and not learned and objectives[0].exact is None:  # needs no baseline (nor its pruning,
        # a posterior at every training input: 40 % of proposing 16 with a 2,500-point GP)
        return _objective_ucb_class()(model=model, beta=UCB_BETA, objective=obj, X_pending=X_pending,
                                      output=objectives[0].output, sign=objectives[0].sign)
    met = rules_met(X_baseline, constraints)
    if met is not None and met.any():  # the incumbent to beat is one that meets the exact rules
        X_baseline = X_baseline[met]
    elif met is not None:  # none does (a cap added after the records): none is an incumbent; a
        # rule-breaking record's value would set a bar no allowed candidate reaches (the acquisition
        # went flat: log-values -58 where +4 without that record; found by review)
        floor = _below_expected(model, X_baseline, objectives)
        obj = _objective_transform(objectives, model.num_outputs, [c for c in constraints if c.exact is not None], floor)
        if ref_point is None:  # nor a hypervolume reference inferred from them (a second review)
            ref_point = floor.tolist()
    X_baseline = prune_baseline_by_mean(model, X_baseline, objectives, max_baseline)
    # cached Cholesky of the baseline covariance: exact GPs only (ensembles have no covariance)
    cache_root = _is_gp(model)
    # an exact constraint is met by every candidate ranked (``propose`` filters them): weighing
    # it in probability as well would only discount points that meet it
    cons = [c.as_callable() for c in constraints if c.exact is None] or None
    if len(objectives) == 1:
        return qLogNoisyExpectedImprovement(
            model=model, X_baseline=X_baseline, objective=obj, constraints=cons, X_pending=X_pending,
            prune_baseline=True, cache_root=cache_root,
        )
    if ref_point is None:
        with torch.no_grad():
            means = objective_values(model.posterior(X_baseline).mean, objectives, X_baseline)
        ref_point = infer_reference_point(means).tolist()
    use_environment_cache()  # the first qLogNEHVI of a process builds BoTorch's fused kernel (kernels.py)
    return qLogNoisyExpectedHypervolumeImprovement(
        model=model, ref_point=list(ref_point), X_baseline=X_baseline, objective=obj, constraints=cons,
        X_pending=X_pending, prune_baseline=True, cache_root=cache_root,
    )


@cache
def _objective_ucb_class():
    """``qUpperConfidenceBound`` that knows its objective output and sign (for ``exact_ucb``);
    a subclass, so nothing is set on a BoTorch object (built on first use: BoTorch loads lazily)."""
    from botorch.acquisition.monte_carlo import qUpperConfidenceBound

    class ObjectiveUCB(qUpperConfidenceBound):
        def __init__(self, *, output: int, sign: float, **kwargs) -> None:
            super().__init__(**kwargs)
            self.objective_output = (output, sign)

    return ObjectiveUCB


#: Candidates whose exact confidence bound ``exact_ucb`` computes at least: the best ones by the
#: screen's upper bound. ``greedy_select`` needs exact values at the top only (its shortlist of
#: ``max(32, 2 q)``, the 32 the local refinement starts from, the first pick).
SCREEN_KEEP = 128
#: Training rows of the screening GP (``screening_gp``): its variance, an upper bound of the model's,
#: costs ``SCREEN_ROWS^2`` per candidate instead of ``n^2``.
SCREEN_ROWS = 256


def screening_gp(model, rows: int = SCREEN_ROWS):
    """The same exact GP (same hyper-parameters) conditioned on ``rows`` evenly spaced rows of its
    training data, or None when ``model`` is not a single-task GP with a Gaussian likelihood (one
    noise level, or a fixed noise per row: ``learn.hetero``) or has no more than ``2 * rows`` rows.

    Conditioning a Gaussian process on fewer observations never lowers its posterior variance
    (the posterior covariance shrinks by a positive semi-definite term with every observation),
    so the screen's latent variance bounds the model's from above at every input, at a fraction
    of the cost (the model's variance costs ``n^2`` per candidate, ``n`` up to ``GP_MAX_POINTS``).
    With a fixed noise per row the kept rows keep their own noise, and the argument holds as it is.
    Public GPyTorch API: ``ExactGP.set_train_data`` on a copy (in eval mode the stored inputs are
    already transformed, so the copy needs no transform of its own data), and
    ``FixedNoiseGaussianLikelihood.noise`` for the kept rows' noise.
    """
    import copy

    from botorch.models import SingleTaskGP
    from gpytorch.likelihoods import FixedNoiseGaussianLikelihood, GaussianLikelihood

    # a subclass qualifies only with SingleTaskGP's own prior (forward): ``HeteroscedasticGP``
    # changes the noise of new points, never the latent posterior the screen bounds
    if (not isinstance(model, SingleTaskGP) or type(model).forward is not SingleTaskGP.forward
            or type(model.likelihood) not in (GaussianLikelihood, FixedNoiseGaussianLikelihood) or model.training):
        return None
    X, y = model.train_inputs[0], model.train_targets
    n = X.shape[-2]
    if n <= 2 * rows:
        return None
    keep = torch.linspace(0, n - 1, rows).round().long()
    screen = copy.deepcopy(model)
    screen.set_train_data(inputs=X[..., keep, :], targets=y[..., keep], strict=False)
    if isinstance(screen.likelihood, FixedNoiseGaussianLikelihood):
        screen.likelihood.noise = model.likelihood.noise[..., keep]
    return screen.eval()


#: Candidates per posterior in ``exact_ucb``. A GP's posterior of ``c`` points builds their joint
#: ``c x c`` covariance even where only the means or the variances are read; ``c`` = 256 keeps
#: that below the ``c n^2`` of the variances themselves (``n`` training rows; from 1,000 records
#: on) and below the ``c n`` of the means. Per point (a ``c x 1 x d`` batch) GPyTorch copied the
#: ``n x d`` training inputs once per point instead: at 1,000 records, 2,048 means and 512
#: variances cost 0.10 + 0.14 CPU s in chunks of 1,024 and per point, 0.06 + 0.06 in these.
POSTERIOR_CHUNK = 256


def _point_moments(model, X: Tensor, i: int, chunk: int) -> tuple[Tensor, Tensor]:
    """Latent mean and variance of output ``i`` at each row of ``n x d`` X (``n`` each), from the
    joint posterior of each ``chunk`` rows (its diagonal: each point's own, to rounding)."""
    from dm_hpc.learn.moments import moments

    mean, var = moments(model, X, chunk)
    return mean[..., i], var[..., i]


def exact_ucb(acq, X_cand: Tensor, chunk: int = POSTERIOR_CHUNK, keep: int = SCREEN_KEEP, exclude: Tensor | None = None) -> Tensor | None:
    """The closed form of a q = 1 qUCB without pending points: ``s * mean + sqrt(beta) * std``
    of the objective output (``n``); None for any other acquisition. The Monte Carlo estimate
    is only needed for joint batches; for a single pick it adds noise that can reorder
    near-ties.

    For an exact GP with many rows (``screening_gp``) the value is exact for every candidate that
    can be among the ``keep`` best ones not ``exclude``d (``n`` bool), and a lower bound
    (``s * mean``) for the rest: the mean costs ``n`` per candidate, the variance ``n^2``, so the
    variance is computed only where the screen's upper bound ``s * mean + sqrt(beta) * std_screen``
    reaches the ``keep``-th best exact value found so far (candidates in order of that bound,
    ``keep`` at a time). The ``keep`` best values and their order are those of the full computation.
    """
    if not isinstance(acq, _objective_ucb_class()) or acq.X_pending is not None:
        return None
    from dm_hpc.learn.moments import moments

    i, sign = acq.objective_output
    model, width = acq.model, UCB_BETA ** 0.5
    screen = screening_gp(model) if X_cand.shape[0] > 2 * keep else None
    if screen is None:
        mean, var = _point_moments(model, X_cand, i, chunk)
        return sign * mean + width * var.sqrt()
    values = sign * moments(model, X_cand, chunk, variances=False)[0][..., i]  # the mean alone: n per candidate
    upper = values + width * _point_moments(screen, X_cand, i, chunk)[1].sqrt()
    if exclude is not None:
        upper = upper.masked_fill(exclude, float("-inf"))
    order = torch.argsort(upper, descending=True)
    exact = torch.empty(0, dtype=values.dtype)
    for start in range(0, len(order), keep):
        if len(exact) >= keep and upper[order[start]] < exact.topk(keep).values[-1]:
            break  # no candidate left can enter the best `keep`
        part = order[start:start + keep]
        mean, var = _point_moments(model, X_cand[part], i, chunk)
        values[part] = sign * mean + width * var.sqrt()
        exact = torch.cat([exact, values[part]])
    return values


def evaluate(acq, X_cand: Tensor, chunk: int = 1024) -> Tensor:
    """Acquisition value of each of ``n x d`` candidates taken one at a time (``n``)."""
    out = []
    with torch.no_grad():
        for c in torch.split(X_cand, chunk):
            out.append(acq(c.unsqueeze(-2)))
    return torch.cat(out)


#: Shortlisted candidates ``_lazy_ucb_round`` evaluates at a time.
LAZY_CHUNK = 8


def _batch_value(acq, X: Tensor) -> float:
    """The acquisition value of the ``p x d`` points ``X`` as one batch, without pending points."""
    pending = acq.X_pending
    acq.set_X_pending(None)
    with torch.no_grad():
        value = float(acq(X.unsqueeze(0)))
    acq.set_X_pending(pending)
    return value


def _lazy_ucb_round(acq, X_cand: Tensor, short: Tensor, gains: Tensor, mask: Tensor, running: Tensor) -> Tensor:
    """One pick of the greedy qUCB batch by lazy evaluation (Minoux 1978): ``n`` values, the joint
    batch value where evaluated, -inf elsewhere; ``gains`` (``n``) is updated in place.

    qUCB's batch value is an expectation of a maximum over the batch, so a candidate's marginal
    gain over the running points never grows as points join them (submodularity). Candidates are
    evaluated ``LAZY_CHUNK`` at a time in order of their last gain, and the round stops once the
    best fresh gain is at least the last gain of every candidate not yet evaluated: none of them
    can beat it. Same pick as evaluating the whole shortlist, up to the Monte Carlo error of the
    estimates; at 10,000 records this was 40 % of proposing 16, growing as picks times shortlist.
    """
    vals = torch.full((X_cand.shape[0],), float("-inf"), dtype=X_cand.dtype)
    base = _batch_value(acq, running)
    open_ = short[~mask[short]]
    order = open_[torch.argsort(gains[open_], descending=True)]
    best = float("-inf")
    for start in range(0, len(order), LAZY_CHUNK):
        if best >= float(gains[order[start]]):
            break
        part = order[start:start + LAZY_CHUNK]
        vals[part] = evaluate(acq, X_cand[part])
        gains[part] = vals[part] - base
        best = max(best, float(gains[part].max()))
    return vals


@cache
def _set_model_class():
    """``JointSetModel``: one output's joint posterior on a fixed set of points, computed once,
    whose inputs are row numbers of the set (built on first use: BoTorch loads lazily)."""
    from botorch.models.model import Model
    from botorch.posteriors.gpytorch import GPyTorchPosterior
    from gpytorch.distributions import MultivariateNormal
    from linear_operator import to_linear_operator

    class JointSetModel(Model):
        """Posterior of rows ``X[..., 0]`` of a set of ``N`` points: ``mean`` (``N``) and
        ``covariance`` (``N x N``) of the latent output, sliced (``batch x q``), nothing recomputed."""

        def __init__(self, mean: Tensor, covariance: Tensor) -> None:
            super().__init__()
            self.set_mean, self.set_covariance = mean, covariance

        @property
        def num_outputs(self) -> int:
            return 1

        @property
        def batch_shape(self) -> torch.Size:
            return torch.Size()

        def posterior(self, X: Tensor, output_indices=None, observation_noise=False, posterior_transform=None, **kwargs):
            rows = X[..., 0].round().long()  # batch x q
            # a linear operator, as the model's posterior covariance is: sampling factorises it with
            # GPyTorch's jitter when near-duplicate points make it singular (a tensor would be
            # factorised by torch at once, without)
            covariance = to_linear_operator(self.set_covariance[rows.unsqueeze(-1), rows.unsqueeze(-2)])
            mvn = MultivariateNormal(self.set_mean[rows], covariance)
            post = GPyTorchPosterior(mvn)
            return post if posterior_transform is None else posterior_transform(post)

    return JointSetModel


def _shortlist_ucb(acq, X_cand: Tensor, rows: Tensor, pending: Tensor | None):
    """The qUCB ``acq`` on the joint posterior of ``pending`` (``p x d``) and ``X_cand[rows]``,
    computed once: ``(set_acq, X_index, pending_index)`` with ``X_index`` (``n x 1``) the row of
    each candidate in the set (-1 outside it) and ``pending_index`` (``p x 1``, or None); None when
    ``acq`` is not a qUCB on a single-output GPyTorch model without posterior transform (a
    multi-output model keeps the model's posteriors: BoTorch 0.18 cannot give one output's).

    Every batch the greedy rounds evaluate is made of these points, and the joint posterior of a
    batch is the sub-matrix of the set's: the rounds then cost no kernel evaluation nor ``n^2``
    product with the training rows (at 1,000 records they were half of a proposal). The acquisition
    shares ``acq``'s sampler, so its Monte Carlo samples are those of ``acq`` (a single output:
    the same base samples).
    """
    from botorch.acquisition.monte_carlo import qUpperConfidenceBound
    from botorch.posteriors.gpytorch import GPyTorchPosterior

    if (not isinstance(acq, _objective_ucb_class()) or acq.posterior_transform is not None
            or not _is_gp(acq.model) or acq.model.num_outputs != 1):
        return None
    sign = acq.objective_output[1]
    p = 0 if pending is None else pending.shape[0]
    X_set = X_cand[rows] if pending is None else torch.cat([pending.to(X_cand), X_cand[rows]])
    with torch.no_grad():
        post = acq.model.posterior(X_set)
    if not isinstance(post, GPyTorchPosterior) or post.mean.shape != (X_set.shape[0], 1):
        return None
    mvn = post.distribution
    set_model = _set_model_class()(mvn.mean.detach(), mvn.covariance_matrix.detach())
    X_index = torch.full((X_cand.shape[0], 1), -1.0, dtype=X_cand.dtype)
    X_index[rows, 0] = torch.arange(p, p + len(rows), dtype=X_cand.dtype)
    pending_index = torch.arange(p, dtype=X_cand.dtype).unsqueeze(-1) if p else None
    set_acq = qUpperConfidenceBound(model=set_model, beta=UCB_BETA, sampler=acq.sampler,
                                    objective=_objective_transform([Objective(0, sign > 0)], 1))
    return set_acq, X_index, pending_index


def greedy_select(
    acq,
    X_cand: Tensor,
    q: int,
    X_pending: Tensor | None = None,
    exclude: Tensor | None = None,
    refine: Callable[[Tensor, Tensor], Tensor] | None = None,
    shortlist: int | None = None,
    reuse_posterior: bool = True,
    separation: float = 0.0,
    coordinate_columns: Sequence[int] | None = None,
) -> tuple[list[int], list[float], Tensor]:
    """Sequential greedy batch: pick the best candidate, add it to the pending set, repeat.

    Args:
        acq: an MC acquisition with ``set_X_pending``. X_cand: ``n x d`` candidates.
        q: batch size. X_pending: ``p x d`` points already running.
        exclude: ``n`` bool mask of candidates never to pick (e.g. already measured).
        refine: optional ``(acq_values n, X_cand n x d) -> (k x d)`` local-search proposals
            around good candidates (candidates that may not be picked have value -inf); they are
            appended to the candidate set.
        shortlist: after the first pick, re-evaluate only this many candidates, the best of
            the first pass (default ``max(32, 2 q)``). Batch values are submodular-like: a
            candidate's gain with pending points never exceeds its value alone, so good later
            picks come from the top of the first pass (as in lazy greedy). This turns
            ``q x n_cand`` joint posteriors of growing size into one pass plus ``q`` small ones.
            For qUCB the shortlist is evaluated lazily (``_lazy_ucb_round``). When none of the
            shortlist may be picked any more (each is picked, a copy of a pick, or too close to
            one), the best candidates of the first pass that may still be picked join it.
        reuse_posterior: qUCB on a GP: evaluate the batches of the shortlist from one joint
            posterior of the shortlist, the picks and ``X_pending`` (``_shortlist_ucb``); False
            asks the model for each batch's posterior (the same values, at ``n^2`` per point).
        separation: no pick closer than this to another pick or a row of ``X_pending``, measured
            on ``coordinate_columns`` (Euclidean), while any candidate is that far; then the best
            of the rest (the space is exhausted at this separation). A pick never repeats a
            running point (``points.DUPLICATE_DISTANCE``).
        coordinate_columns: the columns of ``X_cand`` the separation is measured on (default all).

    Returns:
        (indices into the final candidate set, acquisition values, the final candidate set).
    """
    chosen: list[int] = []
    values: list[float] = []
    pending0 = X_pending if X_pending is not None and X_pending.numel() else None
    cols = list(coordinate_columns) if coordinate_columns is not None else list(range(X_cand.shape[-1]))
    mask = torch.zeros(X_cand.shape[0], dtype=torch.bool) if exclude is None else exclude.clone()
    short: Tensor | None = None
    size = 0  # the shortlist's length, and of each top-up
    first: Tensor | None = None  # the first pass's values (chosen and excluded candidates -inf)
    exact: Tensor | None = None
    gains: Tensor | None = None  # qUCB: each shortlisted candidate's last marginal gain (lazy greedy)
    joint = None  # qUCB on a GP: the joint posterior of the shortlist and the running points (_shortlist_ucb)

    def blocked_by(running: Tensor | None) -> Tensor:
        """Candidates that may not be picked next (``points.may_take``): excluded, picked, a
        running point again, or closer than ``separation`` to one while some candidate is not."""
        if running is None:
            return mask.clone()
        nearest = torch.cdist(X_cand[:, cols], running[:, cols].to(X_cand)).amin(-1)
        return ~may_take(nearest, mask, separation)

    for k in range(q):
        sel = X_cand[chosen] if chosen else None
        parts = [p for p in (pending0, sel) if p is not None]
        running = torch.cat(parts) if parts else None
        acq.set_X_pending(running)
        blocked = blocked_by(running)
        if short is not None and bool(blocked[short].all()) and not bool(blocked.all()):
            # the shortlist is used up: the next best of the first pass that may be picked join it,
            # each evaluated at least once (a screened first pass holds lower bounds beyond its top)
            more = torch.topk(first.masked_fill(blocked, float("-inf")), min(size, int((~blocked).sum()))).indices
            short, joint = torch.cat([short, more]), None
            if gains is not None:
                gains[more] = float("inf")
        if short is None:
            exact = exact_ucb(acq, X_cand, exclude=blocked) if not parts else None
            vals = exact if exact is not None else evaluate(acq, X_cand)
        elif gains is not None:
            if joint is None and reuse_posterior:
                joint = _shortlist_ucb(acq, X_cand, torch.unique(torch.cat([short, torch.tensor(chosen)])), pending0)
                reuse_posterior = joint is not None
            if joint is not None:
                set_acq, X_index, pending_index = joint
                running_index = torch.cat([p for p in (pending_index, X_index[chosen]) if p is not None])
                set_acq.set_X_pending(running_index)
                vals = _lazy_ucb_round(set_acq, X_index, short, gains, blocked, running_index)
            else:
                vals = _lazy_ucb_round(acq, X_cand, short, gains, blocked, running)
        else:
            vals = torch.full((X_cand.shape[0],), float("-inf"), dtype=X_cand.dtype)
            rows = short[~blocked[short]]
            vals[rows] = evaluate(acq, X_cand[rows])
        if refine is not None and k == 0:
            extra = refine(vals.masked_fill(blocked, float("-inf")), X_cand)
            if extra is not None and extra.numel():
                X_cand = torch.cat([X_cand, extra.to(X_cand)])
                mask = torch.cat([mask, torch.zeros(extra.shape[0], dtype=torch.bool)])
                extra_vals = exact_ucb(acq, extra.to(X_cand)) if exact is not None else None
                vals = torch.cat([vals, extra_vals if extra_vals is not None else evaluate(acq, extra.to(X_cand))])
                blocked = blocked_by(running)
        if short is None and q > 1:
            first = vals.masked_fill(mask, float("-inf"))
            size = min(X_cand.shape[0], shortlist or max(32, 2 * q))
            short = torch.topk(first.masked_fill(blocked, float("-inf")), size).indices
            if isinstance(acq, _objective_ucb_class()):  # qUCB: greedy picks by lazy evaluation
                gains = first - (_batch_value(acq, pending0) if pending0 is not None else 0.0)
        vals = vals.masked_fill(blocked, float("-inf"))
        if torch.isinf(vals).all():
            break
        best = int(torch.argmax(vals))
        chosen.append(best)
        values.append(float(vals[best]))
        mask[best] = True
    acq.set_X_pending(pending0)
    return chosen, values, X_cand
