"""Gap filling: calculations where the existing data (e.g. a lab's measurements) is thinnest.

The plan's "blank data that experiments cannot reach", filled by computation. From a surrogate
fitted on the data that exists, the ``GapFilling`` planner chooses calculations with the most
predictive uncertainty removed per core-hour, spread over the design space (the coverage map and
the ``dm-hpc gaps`` command are in ``campaign/coverage.py``).

Selection: greedy integrated variance reduction with exact GP conditioning.
A GP's posterior covariance after observing a point does not depend on the value observed, so the
"fantasised" update of each greedy step is exact and needs no sampled outcomes:
``C <- C - C[:, j] C[j, :] / (C[j, j] + noise)``. A candidate's score is the variance it removes
summed over all candidates (``sum_r C[r, j]^2 / (C[j, j] + noise)``), per output normalised by the
output's prior variance, divided by its fidelity's cost. Scoring the variance *removed over the
space* rather than the candidate's own variance is what spreads the batch: after a pick, its
neighbours' covariance with the rest collapses, so the next pick lands in another thin region;
and an isolated corner point, which would teach nothing about its surroundings, is not favoured
merely for being far away. Pending points (calculations in flight) are conditioned on first. A
max-min distance floor (``separation``, by default ``points.MIN_SEPARATION``, as for every batch)
guards against near-duplicates when a fitted length scale is so long that the covariance barely
separates neighbours, or where the descriptor features are steep (next to the pure elements).
Without a model (no data yet) the prior is uninformative and the selection falls back to
farthest-point sampling. When the request says which points are new (``PlanRequest.admissible``),
the candidates are realised and filtered first, so only points that will really be calculated,
and are not yet, are scored.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dm_hpc.acquire.planner import PlanRequest, admissible_rows
from dm_hpc.acquire.points import MIN_SEPARATION, ProposedPoint
from dm_hpc.acquire.space import DesignSpace

#: Random feasible candidates scored per call (an N x N covariance per output: 1024 keeps it < 1 s).
N_CANDIDATES = 1024
#: Relative nugget added to every observation variance (numerical safety of the rank-1 updates).
JITTER = 1e-6


@dataclass
class GapFilling:
    """The gap-filling planner: most variance removed per unit cost, spread over the space.

    A single-task model cannot tell calculation fidelities apart, so every proposal of a call
    gets one fidelity: the cheapest of ``costs`` that the request allows (a fidelity stopped by
    its budget or circuit breaker is not in ``request.allowed``).

    Attributes:
        space: where candidates are drawn (``space.featurize`` must give the model's features).
        outputs: property names of the model's outputs, in order.
        costs: cost per evaluation (core-hours) of each calculation fidelity that may be proposed.
        n_candidates: random candidates scored per call (or a random subset of a larger pool).
        separation: smallest distance between two proposals, or a proposal and a pending point
            (``DesignSpace.coordinates``; on a pool at most half its typical spacing).
        computed: outputs the inputs decide (name -> ``ExactOutput`` on features: a raw-material
            cost): not a gap to fill, and reported at their computed value, std 0.
    """

    space: DesignSpace
    outputs: Sequence[str]
    costs: Mapping[str, float]
    n_candidates: int = N_CANDIDATES
    separation: float = MIN_SEPARATION
    computed: Mapping[str, Any] = field(default_factory=dict)

    def fidelity_for(self, allowed: Sequence[str]) -> str:
        """The cheapest fidelity of ``costs`` in ``allowed`` (all of ``costs`` when none is)."""
        names = [f for f in self.costs if f in allowed] or list(self.costs)
        return min(names, key=lambda f: self.costs[f])

    def propose(self, request: PlanRequest) -> list[ProposedPoint]:
        """Up to ``request.q`` proposals (fewer when fewer admissible candidates exist), each with
        ``predicted = {"mean", "std"}`` per output (canonical units; empty without a model),
        ``"variance_reduction"`` (normalised variance removed, summed over the candidates) and
        ``"gain_per_cost"`` (``{fidelity: variance_reduction / cost}``)."""
        space = self.space
        fidelity = self.fidelity_for(request.allowed)
        rng = np.random.default_rng(request.seed)
        frac, proc = gap_candidates(space, self.n_candidates, rng)
        if request.admissible is not None:
            frac, proc = admissible_rows(space, request.admissible, fidelity)(frac, proc)
        if not len(frac):
            return []
        pend_frac, pend_proc = space.from_dicts([(p.composition, p.process) for p in request.pending])
        coords = space.coordinates(frac, proc)
        taken = space.coordinates(pend_frac, pend_proc)
        q = min(request.q, len(frac))
        model = None if request.fitted is None else request.fitted.model
        if model is None:
            idx = _farthest_points(coords, taken, q, rng)
            return [ProposedPoint(fidelity, c, p, {"mean": {}, "std": {}})
                    for c, p in space.to_dicts(frac[idx], proc[idx])]

        learned = [i for i, name in enumerate(self.outputs) if name not in self.computed]
        if not learned:  # every output computed: nothing to learn, only to spread
            idx = _farthest_points(coords, taken, q, rng)
            return self._points(model, fidelity, frac[idx], proc[idx], [0.0] * len(idx))
        X_all = space.featurize(np.vstack([pend_frac, frac]), np.vstack([pend_proc, proc]) if proc.size else None)
        C, noise = posterior_covariance(model, X_all)
        if len(learned) < len(self.outputs) and C.shape[0] == len(self.outputs):  # a computed output's
            C, noise = C[learned], noise[learned]  # model says nothing worth a calculation (found by review)
        n_pend = len(pend_frac)
        for j in range(n_pend):  # in-flight points will remove their share of uncertainty anyway
            C = condition_on(C, noise, j)
        chosen, gains = _greedy_reduction(C[:, n_pend:, n_pend:], noise, coords, taken, q,
                                          _separation(space, coords, self.separation))
        return self._points(model, fidelity, frac[chosen], proc[chosen], gains)

    def _points(self, model, fidelity: str, frac: np.ndarray, proc: np.ndarray,
                gains: list[float]) -> list[ProposedPoint]:
        from dm_hpc.acquire.acquisition import with_computed
        from dm_hpc.learn import predict

        X = self.space.featurize(frac, proc if proc.size else None)
        computed = {i: self.computed[name] for i, name in enumerate(self.outputs) if name in self.computed}
        mean, std = with_computed(*predict(model, X), computed, X, len(self.outputs))
        cost = max(self.costs[fidelity], 1e-12)
        return [ProposedPoint(fidelity, comp, pr, {
                    "mean": {p: float(mean[k, i]) for i, p in enumerate(self.outputs)},
                    "std": {p: float(std[k, i]) for i, p in enumerate(self.outputs)},
                    "variance_reduction": gains[k],
                    "gain_per_cost": {fidelity: gains[k] / cost},
                })
                for k, (comp, pr) in enumerate(self.space.to_dicts(frac, proc))]


def _greedy_reduction(C: np.ndarray, noise: np.ndarray, coords: np.ndarray, taken: np.ndarray, q: int,
                      separation: float) -> tuple[list[int], list[float]]:
    """Greedy picks of most variance removed (``C``: ``m x N x N``, ``noise``: ``m``), none
    closer than ``separation`` to another pick or a ``taken`` row while the space allows.

    Returns ``q`` indices into the ``N`` candidates and the variance each removed when picked.
    """
    dmin = (np.linalg.norm(coords[:, None, :] - taken[None, :, :], axis=-1).min(1)
            if len(taken) else np.full(len(coords), np.inf))
    chosen: list[int] = []
    gains: list[float] = []
    for _ in range(q):
        diag = np.diagonal(C, axis1=1, axis2=2)  # m x N
        reduction = ((C ** 2).sum(1) / (diag + noise[:, None])).sum(0)  # N
        allowed = dmin >= separation
        if not allowed.any():  # space exhausted at this separation: fall back to the best left
            allowed = np.ones(len(coords), bool)
            allowed[chosen] = False
        j = int(np.argmax(np.where(allowed, reduction, -np.inf)))
        chosen.append(j)
        gains.append(float(reduction[j]))
        C = condition_on(C, noise, j)
        dmin = np.minimum(dmin, np.linalg.norm(coords - coords[j], axis=1))
    return chosen, gains


def _separation(space: DesignSpace, coords: np.ndarray, separation: float) -> float:
    """``separation``; for a pool, at most half its typical nearest-neighbour spacing
    (pool neighbours may sit closer than the floor; pending pool points are still excluded:
    they are at distance ~0)."""
    if space.pool is None:
        return separation
    if len(coords) < 2:
        return 1e-6
    d = np.linalg.norm(coords[:, None, :] - coords[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    return max(min(separation, 0.5 * float(np.median(d.min(1)))), 1e-6)


def posterior_covariance(model, X) -> tuple[np.ndarray, np.ndarray]:
    """Joint posterior covariance per output, normalised by the output's prior variance.

    Args:
        model: a surrogate from ``dm_hpc.learn`` (exact GP, multi-task GP, deep ensemble, or the
            calibrated ensemble, whose covariance is diagonal).
        X: ``N x d`` features (``space.featurize``).

    Returns:
        ``(C, noise)``: ``m x N x N`` covariance and ``m`` observation-noise variances, both in
        units of each output's training variance (so outputs in eV/atom and USD/kg add up).
    """
    import torch
    from botorch.models import ModelListGP

    from dm_hpc.learn import surrogate_kind

    if isinstance(model, ModelListGP):  # a model per output (multi-fidelity, several objectives): stacked
        parts = [posterior_covariance(m, X) for m in model.models]
        return np.concatenate([c for c, _ in parts]), np.concatenate([n for _, n in parts])
    X = torch.as_tensor(X, dtype=torch.double)
    kind = surrogate_kind(model)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "ensemble":
            # the members' spread is the uncertainty; their sample covariance is low rank (S)
            # but conditioning on it still removes variance where members agree to disagree
            vals = model.posterior(X).values  # (batch x) S x N x m
            vals = vals.reshape(-1, *vals.shape[-2:])
            dev = (vals - vals.mean(0, keepdim=True)).permute(2, 1, 0)  # m x N x S
            C = dev @ dev.transpose(-1, -2) / max(1, vals.shape[0] - 1)
            noise = torch.full((C.shape[0],), JITTER, dtype=torch.double)
        elif kind == "gp":
            # the GP itself on transformed inputs, as BoTorch's posterior() does, but stopping
            # before the outcome untransform: covariances are then already in units of each
            # output's training variance (Standardize), and the likelihood noise too
            m = model.num_outputs
            Xt = model.transform_inputs(X)
            mvn = model(Xt.unsqueeze(-3) if m > 1 else Xt)
            C = mvn.covariance_matrix.reshape(m, len(X), len(X))
            # one level per output; a noise fixed per row (learn.hetero) stands in by its mean, as in BoTorch
            noise = model.likelihood.noise.detach().reshape(m, -1).mean(1)
            return C.numpy(), (noise + JITTER).numpy()
        elif kind == "calibrated-ensemble":
            # no joint covariance (each point's members are independent of the next point's):
            # the diagonal variances. The greedy score is then each point's own variance and
            # the separation alone spreads the batch; the learned noise varies by point, its
            # mean over the candidates stands for the observation noise of the rank-1 updates
            var = model.posterior(X).variance.reshape(len(X), -1).T  # m x N
            C = torch.diag_embed(var)
            noisy = model.posterior(X, observation_noise=True).variance.reshape(len(X), -1).T
            noise = (noisy - var).clamp_min(0).mean(1)
        else:  # multi-task GP: one output (the target fidelity)
            post = model.posterior(X)
            C = post.mvn.covariance_matrix.reshape(1, len(X), len(X))
            with_noise = model.posterior(X[:1], observation_noise=True).variance.reshape(-1)
            noise = (with_noise - post.variance[:1].reshape(-1)).clamp_min(0)[:1]
        scale = _output_variance(model, C)
    C = C / scale[:, None, None]
    noise = noise / scale + JITTER
    return C.numpy(), noise.numpy()


def _output_variance(model, C) -> Any:
    """Training variance per output (falls back to the largest predictive variance)."""
    import torch

    tf = getattr(model, "outcome_transform", None)
    stdvs = getattr(tf, "stdvs", None)
    if stdvs is not None and stdvs.numel() == C.shape[0]:
        return (stdvs.reshape(-1) ** 2).clamp_min(1e-12)
    y_std = getattr(model, "y_std", None)
    if y_std is not None and torch.as_tensor(y_std).numel() == C.shape[0]:
        return (torch.as_tensor(y_std, dtype=torch.double).reshape(-1) ** 2).clamp_min(1e-12)
    return torch.diagonal(C, dim1=-2, dim2=-1).amax(-1).clamp_min(1e-12)


def condition_on(C: np.ndarray, noise: np.ndarray, j: int) -> np.ndarray:
    """Posterior covariance after observing point ``j`` (exact for a GP; value-independent)."""
    col = C[:, :, j]  # m x N
    return C - col[:, :, None] * col[:, None, :] / (C[:, j, j] + noise)[:, None, None]


def gap_candidates(space: DesignSpace, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random feasible points, or (a random subset of at most ``n`` of) the pool."""
    frac, proc = space.candidates(n, rng)
    if space.pool is not None and len(frac) > n:  # a large pool: the covariance is N x N, so score a random subset
        keep = np.sort(rng.choice(len(frac), n, replace=False))
        frac, proc = frac[keep], proc[keep]
    return frac, proc


def _farthest_points(coords: np.ndarray, taken: np.ndarray, q: int, rng: np.random.Generator) -> list[int]:
    """Greedy max-min distance selection (the no-model fallback)."""
    chosen: list[int] = []
    if len(taken):
        dmin = np.linalg.norm(coords[:, None, :] - taken[None, :, :], axis=-1).min(1)
    else:
        dmin = np.full(len(coords), np.inf)
    for _ in range(q):
        j = int(rng.integers(len(coords))) if np.isinf(dmin).all() else int(np.argmax(dmin))
        chosen.append(j)
        dmin = np.minimum(dmin, np.linalg.norm(coords - coords[j], axis=1))
    return chosen
