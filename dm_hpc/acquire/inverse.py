"""Inverse design: compositions / process settings ranked by the probability of meeting targets.

Targets are strings such as ``"bulk_modulus>=150 GPa"`` or ``"density<=7 g/cm3"``; values are
converted to the property's canonical unit (``dm_hpc.data.vocabulary``), in which the models
predict. The probability of meeting all targets treats the property predictions at a point as
independent Gaussians (separate models per property): ``P = prod_i Phi(+-(mu_i - v_i) / sigma_i)``,
with ``sigma_i`` the sd of a *measured* value (the model's observation noise included, where the
model has one): a target is met by what the lab measures, not by the noise-free latent function.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dm_hpc.acquire.points import MIN_SEPARATION
from dm_hpc.acquire.space import DesignSpace
from dm_hpc.data.rules import within

#: Candidates closer than this (fractions, scaled process) are one alloy for a lab: the spacing of
#: a design list is halved down to it when the space holds too few candidates farther apart.
SAME_ALLOY = 1e-3

if TYPE_CHECKING:  # torch is imported where predictions are ranked: parsing a target needs none
    from torch import Tensor

_TARGET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


class TargetError(ValueError):
    """A target string that cannot be parsed or converted."""


@dataclass(frozen=True)
class Target:
    """``property op value`` with ``value`` in the property's canonical ``unit``; ``written``: the
    unit the text gave the value in, as the vocabulary reads it (None when it gave none)."""

    property: str
    op: str
    value: float
    unit: str
    written: str | None = None

    def __str__(self) -> str:
        return f"{self.property}{self.op}{self.value:g} {self.unit}".strip()

    def probability(self, mean: Tensor, std: Tensor) -> Tensor:
        """Probability that a Gaussian prediction meets the target (elementwise); an exact value
        (std 0: ``ExactProperty``) meets it or not, one on the bound included (``data.rules.within``,
        as a campaign's rule: VEC 8.0 meets ``>= 8``, where z = 0 gave 0.5)."""
        import torch

        z = (mean - self.value) / std.clamp_min(1e-12)
        if self.op in ("<=", "<"):
            z = -z
        p = 0.5 * torch.erfc(-z / math.sqrt(2.0))
        return torch.where(std > 0, p, within(mean, self.op, self.value).to(p.dtype))

    def met(self, value: float) -> bool:
        return value >= self.value if self.op in (">=", ">") else value <= self.value


def meet_probability(targets: Sequence[Target], mean: Tensor, std: Tensor) -> Tensor:
    """Probability that a Gaussian prediction of one property meets all its ``targets``: the
    tightest bound of each side, and for a window ``lo <= x <= hi`` the mass between them
    (``P(x >= lo) + P(x <= hi) - 1``), not the product of the two sides, which counts a wide
    prediction as likely to fall inside (mean 8, sd 5 in 7-9: 0.34 for 0.16)."""
    lows = [t for t in targets if t.op in (">=", ">")]
    highs = [t for t in targets if t.op in ("<=", "<")]
    lo = max(lows, key=lambda t: t.value).probability(mean, std) if lows else None
    hi = min(highs, key=lambda t: t.value).probability(mean, std) if highs else None
    if lo is None or hi is None:
        return lo if hi is None else hi
    return (lo + hi - 1.0).clamp_min(0.0)


def check_targets(targets: Sequence[Target]) -> None:
    """Raise ``TargetError`` when the targets on one property cannot all be met (``density>=8``
    with ``density<=5``): no candidate could, and the search would say only "none found"."""
    for prop in dict.fromkeys(t.property for t in targets):
        lows = [t for t in targets if t.property == prop and t.op in (">=", ">")]
        highs = [t for t in targets if t.property == prop and t.op in ("<=", "<")]
        if lows and highs:
            lo, hi = max(lows, key=lambda t: t.value), min(highs, key=lambda t: t.value)
            if lo.value > hi.value or (lo.value == hi.value and (lo.op == ">" or hi.op == "<")):
                raise TargetError(f"the targets on {prop} cannot all be met: {lo} and {hi}")


def parse_target(text: str) -> Target:
    """Parse ``"name>=value [unit]"`` (ops <=, >=, <, >); convert to the canonical unit.

    Raises TargetError with a one-line message for bad syntax, unknown properties or units.
    """
    from dm_hpc.data.vocabulary import canonical_unit, to_canonical

    m = _TARGET.match(text)
    if not m:
        raise TargetError(f"cannot parse target {text!r}; expected e.g. 'bulk_modulus>=150 GPa'")
    name, op, value, unit = m.group(1), m.group(2), float(m.group(3)), m.group(4) or None
    try:
        try:
            canonical = to_canonical(name, value, unit)
        except ValueError:
            if unit is None:
                raise
            # "g/cm3" as written on lab sheets: read a digit after a unit symbol as a power
            unit = re.sub(r"(?<=[A-Za-z])(\d+)", r"**\1", unit)
            canonical = to_canonical(name, value, unit)
        cu = canonical_unit(name)
    except (KeyError, ValueError) as exc:
        raise TargetError(str(exc)) from None
    return Target(name, op, canonical, cu, unit)


@dataclass
class Candidate:
    """A proposed composition/process with its predicted properties.

    Attributes:
        probability: probability of meeting all targets.
        mean, std: predicted value and standard deviation per property, canonical units.
    """

    composition: dict[str, float]
    process: dict[str, float]
    probability: float
    mean: dict[str, float]
    std: dict[str, float]
    pool_index: int | None = None


def _predict_measured(model, X: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and sd (``n x m``) of a measured value: the posterior with observation noise where the
    model takes ``observation_noise`` (BoTorch GPs), else its plain posterior."""
    from dm_hpc.learn.moments import moments

    mean, var = moments(model, X, observation_noise=True)
    return mean, var.sqrt()


def _predict_all(models: Mapping[str, object], X: Tensor) -> tuple[Tensor, Tensor]:
    import torch

    means, stds = [], []
    for name, model in models.items():
        mu, sd = _predict_measured(model, X)
        means.append(mu[:, 0])
        stds.append(sd[:, 0])
    return torch.stack(means, -1), torch.stack(stds, -1)


def inverse_design(
    model,
    space: DesignSpace,
    targets: Sequence[Target | str],
    n: int = 20,
    outputs: Sequence[str] | None = None,
    n_candidates: int = 20000,
    refine_rounds: int = 2,
    seed: int = 0,
    min_distance: float = MIN_SEPARATION,
    accept: Callable[[np.ndarray], bool] | None = None,
    deadline: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Candidate]:
    """The ``n`` candidates most likely to meet every target.

    Args:
        model: ``{property: Model}`` (one single-output model per property), or one multi-output
            Model whose outputs are named by ``outputs``.
        space: the design space (continuous or a pool).
        targets: ``Target`` objects or strings (``parse_target``).
        n_candidates: random feasible candidates drawn; the best are refined locally
            ``refine_rounds`` times.
        min_distance: candidates closer than this (Euclidean on ``space.coordinates``: fractions
            and process scaled to [0, 1]) to a better-ranked one are skipped, so the list spans
            distinct alloys (default: the distance that makes two points of a batch distinct,
            ``points.MIN_SEPARATION``). Where the space holds fewer than ``n`` candidates that far
            apart (a narrow doping range), the list goes on at half the distance, and so on down
            to ``SAME_ALLOY``, saying so through ``progress``.
        accept: called on each candidate's fraction row (``E``) in rank order; a False leaves
            it out (known materials, charge-unbalanced compounds). Called lazily, so an
            expensive check runs only on the candidates that could make the list.
        deadline: ``time.monotonic()`` after which refinement is skipped and the list is cut
            short with what it holds.
        progress: receives one plain line per stage.

    Returns:
        up to ``n`` distinct candidates, most probable first, with predicted means and stds of all
        modelled properties.
    """
    import torch

    tg = [parse_target(t) if isinstance(t, str) else t for t in targets]
    if isinstance(model, Mapping):
        models = dict(model)
    else:
        names = list(outputs) if outputs is not None else [f"y{i}" for i in range(model.num_outputs)]
        from botorch.models.model import Model

        class _Out:  # one output of a multi-output model, as a single-output view for _predict_all
            def __init__(self, i):
                self.i = i

            def posterior(self, X):
                post = model.posterior(X)
                return _Slice(post.mean[..., self.i : self.i + 1], post.variance[..., self.i : self.i + 1])

        models = {nm: _Out(i) for i, nm in enumerate(names)}
        _ = Model  # models from BoTorch; typing aid only
    missing = [t.property for t in tg if t.property not in models]
    if missing:
        raise TargetError(f"no model for target properties {missing}; modelled: {list(models)}")
    names = list(models)
    say = progress or (lambda line: None)
    rng = np.random.default_rng(seed)
    frac, proc = space.candidates(n_candidates, rng)
    say(f"scoring {len(frac)} candidates")

    def score(f, p):
        X = space.featurize(f, p)
        mu, sd = _predict_all(models, X)
        prob = torch.ones(len(X), dtype=torch.double)
        margin = torch.zeros(len(X), dtype=torch.double)
        for prop in dict.fromkeys(t.property for t in tg):
            i = names.index(prop)
            prob = prob * meet_probability([t for t in tg if t.property == prop], mu[:, i], sd[:, i])
        for t in tg:
            i = names.index(t.property)
            z = (mu[:, i] - t.value) / sd[:, i].clamp_min(1e-12) * (1 if t.op in (">=", ">") else -1)
            margin = margin + z.clamp(max=6.0)
        return prob, margin, mu, sd

    prob, margin, mu, sd = score(frac, proc)
    if space.pool is None:
        for r in range(refine_rounds):
            if deadline is not None and time.monotonic() > deadline:
                say("time budget reached: no further refinement")
                break
            say(f"refining the best candidates (round {r + 1} of {refine_rounds})")
            top = torch.topk(prob + 1e-6 * torch.sigmoid(margin), min(64, len(prob))).indices.numpy()
            f2, p2 = space.neighbours(frac[top], proc[top], 16, rng)
            pr2, mg2, mu2, sd2 = score(f2, p2)
            frac, proc = np.concatenate([frac, f2]), np.concatenate([proc, p2])
            prob, margin = torch.cat([prob, pr2]), torch.cat([margin, mg2])
            mu, sd = torch.cat([mu, mu2]), torch.cat([sd, sd2])
    # rank by probability; among near-certain candidates prefer the larger margin. Rounded and
    # stably sorted (pool index last), so round-off does not reorder near-ties between processes.
    p_key = np.round(prob.clamp(max=1 - 1e-9).numpy(), 6)
    m_key = np.round(margin.numpy(), 6)
    order = np.lexsort((np.arange(len(p_key)), -m_key, -p_key))
    out: list[Candidate] = []
    listed: list[int] = []  # rows of the candidates listed
    taken: set[int] = set()  # rows listed or refused by ``accept``
    coords = space.coordinates(frac, proc) if space.pool is None else None
    distance = min_distance
    while True:
        timed_out = False
        for i in order:
            i = int(i)
            if i in taken:
                continue
            # a list of near-copies of one alloy helps no one: keep candidates at least
            # ``distance`` apart (fractions and scaled process, as a batch's points)
            if coords is not None and any(np.linalg.norm(coords[i] - coords[j]) < distance for j in listed):
                continue
            if coords is None and any(np.array_equal(frac[i], frac[j]) for j in listed):
                continue
            if deadline is not None and time.monotonic() > deadline and out:
                say(f"time budget reached: listing {len(out)} candidates")
                timed_out = True
                break
            taken.add(i)
            if accept is not None and not accept(frac[i]):
                continue
            listed.append(i)
            comp, pr = space.to_dicts(frac[i : i + 1], proc[i : i + 1])[0]
            out.append(
                Candidate(
                    composition=comp,
                    process=pr,
                    probability=float(prob[i]),
                    mean={nm: float(mu[i, j]) for j, nm in enumerate(names)},
                    std={nm: float(sd[i, j]) for j, nm in enumerate(names)},
                    pool_index=int(i) if space.pool is not None else None,
                )
            )
            if len(out) >= n:
                return out
        # a narrow space (a doping range) holds fewer than ``n`` candidates this far apart: the
        # list goes on with closer ones, down to what a lab can still tell apart
        if timed_out or coords is None or distance / 2 < SAME_ALLOY:
            return out
        distance /= 2
        say(f"{len(out)} candidates lie {2 * distance:g} apart in this space: the list goes on with candidates "
            f"{distance:g} apart")


class _Slice:
    def __init__(self, mean: Tensor, variance: Tensor):
        self.mean, self.variance = mean, variance


#: A property computed from compositions: ``n x E`` atomic fractions and the ``E`` elements -> ``n`` values.
Exact = Callable[[np.ndarray, Sequence[str]], np.ndarray]


class ExactProperty:
    """A property the composition decides (a raw-material cost from a price table), in the place
    of a model: its value at the fractions in the first ``E`` feature columns (``featurize`` puts
    them first), variance 0, so a target on it is met or not, never "likely". A GP of the cost
    fitted on gold and copper alloys put a copper-nickel alloy of 11 USD/kg at -1,100 USD/kg."""

    num_outputs = 1

    def __init__(self, values: Exact, elements: Sequence[str]):
        self.values, self.elements = values, list(elements)

    def __call__(self, X: Tensor) -> Tensor:
        """``... x d`` features -> ``...`` values (an ``acquisition.ExactOutput``: what the campaign's
        planner ranks an exact objective or rule with)."""
        import torch

        E = len(self.elements)
        rows = X[..., :E].detach().cpu().numpy().reshape(-1, E)
        return torch.as_tensor(self.values(rows, self.elements), dtype=X.dtype).reshape(X.shape[:-1])

    def posterior(self, X: Tensor, observation_noise: bool = False) -> _Slice:
        import torch

        mean = self(X).unsqueeze(-1)
        return _Slice(mean, torch.zeros_like(mean))
