"""Design spaces: compositions on the simplex, process boxes, discrete candidate pools.

Candidates are drawn at random (uniform on the bounded simplex of a random subset of at most
``max_elements`` elements) and refined locally; a full Cartesian grid is never built.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where features are built: a feasibility check needs none
    from torch import Tensor


#: A fraction above this counts as the element being present (``violations``' default tolerance):
#: an element whose upper bound is not above it can never count towards ``min_elements``.
PRESENT = 1e-6


#: Points drawn close around each of a space's ``anchors`` among its candidates.
ANCHOR_NEIGHBOURS = 32


class DesignSpaceError(ValueError):
    """The bounds admit no composition (e.g. lower bounds sum above one)."""


@dataclass
class DesignSpace:
    """Where proposals may lie.

    Attributes:
        elements: ``{element: (low, high)}`` atomic-fraction bounds; fractions sum to one.
        max_elements: at most this many elements with a non-zero fraction (None: no limit).
        excluded: elements that must not appear (removed from ``elements``).
        process: ``{name: (low, high)}`` process-parameter box in canonical units.
        pool: optional discrete candidates ``(n x E fractions, n x P process)``; when set, proposals
            come only from it.
        descriptors: whether features include the physical descriptors (must match the model).
        min_elements: at least this many elements with a non-zero fraction (a campaign's
            ``space.min_elements``: an alloy family of at least three principal elements).
        anchors: ``k x E`` fractions always among a continuous space's ``candidates`` (a
            campaign's corners where a rule the composition decides is most easily met,
            ``campaign.realise.rule_corner``: a VEC met only near Cu0.99 is met by no random draw).
    """

    elements: dict[str, tuple[float, float]] = field(default_factory=dict)
    max_elements: int | None = None
    excluded: frozenset[str] = frozenset()
    process: dict[str, tuple[float, float]] = field(default_factory=dict)
    pool: tuple[np.ndarray, np.ndarray] | None = None
    descriptors: bool = True
    min_elements: int = 1
    anchors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.excluded = frozenset(self.excluded)
        if self.elements and set(self.elements) <= self.excluded:
            raise DesignSpaceError(f"every element of the space is excluded ({', '.join(self.elements)}): "
                                   "no composition is left to suggest")
        gone = sorted(set(self.elements) & self.excluded)
        self.elements = {e: (float(lo), float(hi)) for e, (lo, hi) in self.elements.items() if e not in self.excluded}
        self.process = {k: (float(lo), float(hi)) for k, (lo, hi) in self.process.items()}
        if self.anchors is not None and (np.ndim(self.anchors) != 2 or np.shape(self.anchors)[1] != len(self.elements)):
            raise DesignSpaceError(f"anchors: a table of fractions with one column per element ({len(self.elements)}), "
                                   f"got shape {np.shape(self.anchors)}")
        lo, hi = self.lower, self.upper
        if self.elements:
            if np.any(lo < 0) or np.any(hi > 1) or np.any(lo > hi):
                raise DesignSpaceError("element bounds must satisfy 0 <= low <= high <= 1")
            if lo.sum() > 1 + 1e-12:
                raise DesignSpaceError(f"element lower bounds sum to {lo.sum():.3f} > 1")
            k = self.max_elements or len(lo)
            if self.min_elements > len(lo):
                raise DesignSpaceError(f"min_elements = {self.min_elements}, but only {len(lo)} elements are left "
                                       f"({', '.join(self.elements)})" + (f" once {', '.join(gone)} "
                                       f"{'is' if len(gone) == 1 else 'are'} excluded" if gone else ""))
            can = [el for el, (_, b) in self.elements.items() if b > PRESENT]
            if self.min_elements > len(can):
                raise DesignSpaceError(f"min_elements = {self.min_elements}, but only {len(can)} element(s) can be "
                                       f"present ({', '.join(can)}): the others' upper bound is 0")
            if self.min_elements > k:
                raise DesignSpaceError(f"min_elements = {self.min_elements} is above max_elements = {k}")
            if int((lo > 0).sum()) > k:
                raise DesignSpaceError(f"{int((lo > 0).sum())} elements have a lower bound > 0 but max_elements = {k}")
            # the largest sum of fractions with 1, 2, ... elements: those with a lower bound > 0 are in
            # every composition, so they take the first places whatever their upper bounds (Cu and Ni
            # at [0.1, 0.2] under max_elements 2 passed on Pd's upper bound 1, and every point drawn
            # broke the bounds); then the others, largest first
            required = lo > 0
            n = int(required.sum())
            # the elements with a lower bound take it from every composition: what is left must hold
            # the min_elements - n others, each above PRESENT (Al and Pd at [0.5, 0.5] under
            # min_elements 3 left nothing for a third, and every point drawn broke the rule)
            room = 1.0 - lo[required].sum()
            if self.min_elements > n and room <= (self.min_elements - n) * PRESENT + 1e-12:
                fixed = ", ".join(el for el, r in zip(self.elements, required) if r)
                raise DesignSpaceError(f"min_elements = {self.min_elements}, but the lower bounds of {fixed} sum to "
                                       f"{lo[required].sum():.6g}: every composition is theirs alone, with no room for "
                                       f"{self.min_elements - n} more element(s)")
            others = np.cumsum(np.sort(hi[~required])[::-1])
            reach = hi[required].sum() + np.concatenate([np.zeros(n), others])  # fewer than n: refused above
            if reach[-1] < 1 - 1e-12:
                raise DesignSpaceError(f"upper bounds of the allowed elements sum to {reach[-1]:.3g} < 1: "
                                       "no composition reaches a sum of one")
            # max_elements above the elements left (some excluded) allows them all: no index past the end
            if k < len(reach) and reach[k - 1] < 1 - 1e-12:  # the bounds reach one, but only with more elements than allowed
                need = int(np.argmax(reach >= 1 - 1e-12)) + 1
                names = list(self.elements)
                present = ", ".join(names[i] for i in np.flatnonzero(required))
                kept = (f"the upper bounds of {present} (a lower bound > 0: in every composition)"
                        + (f" and the {k - n} largest others" if k > n else "")
                        + f" sum to {reach[k - 1]:.3g}, which is" if n
                        else f"the largest upper bound {reach[0]:.3g} is" if k == 1
                        else f"the {k} largest upper bounds sum to {reach[k - 1]:.3g}, which is")
                raise DesignSpaceError(f"max_elements = {k} allows a composition of {k} element(s), and {kept} "
                                       f"below one: raise max_elements to {need} or the upper bounds")
        for name, (a, b) in self.process.items():
            if a > b:
                raise DesignSpaceError(f"process parameter {name!r}: low {a} > high {b}")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_pool(
        cls,
        compositions: Sequence[Mapping[str, float]],
        process: Sequence[Mapping[str, float]] | None = None,
        elements: Sequence[str] | None = None,
        process_bounds: Mapping[str, tuple[float, float]] | None = None,
        descriptors: bool = True,
    ) -> DesignSpace:
        """A discrete space of the given candidates (bounds default to the candidates' range)."""
        from dm_hpc.learn.features import composition_matrix

        els = list(elements) if elements is not None else sorted({e for c in compositions for e in c})
        frac = composition_matrix(compositions, els)
        if process:
            names = list(process_bounds) if process_bounds else list(process[0])
            proc = np.array([[float(p[nm]) for nm in names] for p in process])
            pb = dict(process_bounds) if process_bounds else {nm: (float(proc[:, i].min()), float(proc[:, i].max())) for i, nm in enumerate(names)}
        else:
            proc, pb = np.zeros((len(frac), 0)), {}
        bounds = {e: (0.0, 1.0) for e in els}
        return cls(elements=bounds, process=pb, pool=(frac, proc), descriptors=descriptors)

    # -- basic facts ----------------------------------------------------------------------------
    @property
    def element_names(self) -> list[str]:
        return list(self.elements)

    @property
    def lower(self) -> np.ndarray:
        return np.array([b[0] for b in self.elements.values()], dtype=float)

    @property
    def upper(self) -> np.ndarray:
        return np.array([b[1] for b in self.elements.values()], dtype=float)

    def featurize(self, fractions: np.ndarray, process: np.ndarray | None = None) -> Tensor:
        """``n x E`` fractions (+ ``n x P`` process, canonical units) -> ``n x d`` model features."""
        from dm_hpc.learn.features import featurize

        proc = process if self.process and process is not None and process.size else None
        return featurize(fractions, self.element_names, proc, self.process or None, descriptors=self.descriptors)

    def coordinates(self, fractions: np.ndarray, process: np.ndarray | None) -> np.ndarray:
        """``n x (E + P)`` plain coordinates, in which distances between points are measured
        (``points.MIN_SEPARATION``): the fractions, and the process scaled to [0, 1] by its bounds."""
        # ``shape[-1]``, not ``size``: no candidate left (0 x P) has the process columns all the
        # same, and 0 x E against the pending points' n x (E + P) failed to broadcast once a tiny
        # space (pure Cu and Ni under max_elements 1) was used up within the first plan
        if not self.process or process is None or np.shape(process)[-1] == 0:
            return np.asarray(fractions, float)
        lo = np.array([b[0] for b in self.process.values()])
        hi = np.array([b[1] for b in self.process.values()])
        return np.hstack([fractions, (process - lo) / np.where(hi > lo, hi - lo, 1.0)])

    @property
    def coordinate_columns(self) -> list[int]:
        """The columns of ``featurize``'s features that are the plain ``coordinates``: the fractions
        come first and the scaled process last, the descriptors between them."""
        from dm_hpc.learn.features import feature_names

        d = len(feature_names(self.element_names, self.process or None, self.descriptors))
        return list(range(len(self.elements))) + list(range(d - len(self.process), d))

    def to_dicts(self, fractions: np.ndarray, process: np.ndarray) -> list[tuple[dict[str, float], dict[str, float]]]:
        """Rows -> ``({element: fraction} without zeros, {parameter: value})``."""
        names = self.element_names
        pnames = list(self.process)
        return [
            ({e: float(f) for e, f in zip(names, fr) if f > 0}, {p: float(v) for p, v in zip(pnames, pr)})
            for fr, pr in zip(fractions, process if process.size else np.zeros((len(fractions), 0)))
        ]

    def from_dicts(self, items: Sequence[tuple[Mapping[str, float], Mapping[str, float]]],
                   strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``to_dicts`` backwards: ``(composition, process)`` pairs -> ``n x E`` and ``n x P`` rows.

        Tolerant by default, because the pairs need not come from this space (records and
        pending points of a wider campaign, a coverage map's data): elements outside the space
        are ignored, and a missing process parameter takes the middle of its box (as
        calculations do). ``strict`` (points a caller says are of this space, e.g. the pending
        points given to ``propose``) raises ValueError naming a foreign element or a missing
        parameter instead. No pairs give ``0 x E`` and ``0 x P`` arrays.
        """
        from dm_hpc.learn.features import composition_matrix

        names = self.element_names
        if strict:
            for comp, pr in items:
                missing = [k for k in self.process if k not in pr]
                if missing:
                    raise ValueError(f"point {dict(comp)} {dict(pr)} lacks process parameter(s) {missing}")
        else:
            items = [({e: f for e, f in c.items() if e in self.elements}, pr) for c, pr in items]
        frac = composition_matrix([c for c, _ in items], names)  # raises on a foreign element
        proc = np.array([[float(pr.get(k, 0.5 * (lo + hi))) for k, (lo, hi) in self.process.items()]
                         for _, pr in items]).reshape(len(items), len(self.process))
        return frac, proc

    def violations(self, fractions: np.ndarray, process: np.ndarray | None = None, tol: float = PRESENT) -> list[str]:
        """Human-readable list of broken constraints of the rows (empty when all hold)."""
        bad = []
        f = np.atleast_2d(fractions)
        if f.size:
            if np.any(np.abs(f.sum(1) - 1) > tol):
                bad.append("fractions do not sum to one")
            if np.any(f < self.lower - tol) or np.any(f > self.upper + tol):
                bad.append("element bounds violated")
            if self.max_elements is not None and np.any((f > tol).sum(1) > self.max_elements):
                bad.append(f"more than {self.max_elements} elements")
            if self.min_elements > 1 and np.any((f > tol).sum(1) < self.min_elements):
                bad.append(f"fewer than {self.min_elements} elements")
        if process is not None and process.size and self.process:
            lo = np.array([b[0] for b in self.process.values()])
            hi = np.array([b[1] for b in self.process.values()])
            if np.any(process < lo - tol) or np.any(process > hi + tol):
                bad.append("process bounds violated")
        return bad

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator, active: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` random feasible points: (``n x E`` fractions, ``n x P`` process).

        Compositions: a random subset of ``min_elements`` to ``max_elements`` elements (always
        containing the elements with a lower bound > 0), a uniform Dirichlet draw above the lower bounds, then the
        excess over upper bounds moved to elements with room, in proportion to their room (one pass
        keeps every bound because the room covers the excess). ``active`` (``n x E`` bool) fixes
        the element subsets instead.
        """
        E = len(self.elements)
        frac = np.zeros((n, E))
        if E:
            lo, hi = self.lower, self.upper
            if active is None:
                active = self._random_subsets(n, rng)
            w = rng.gamma(1.0, size=(n, E)) * active
            w /= w.sum(1, keepdims=True)
            lo_a = lo * active
            x = lo_a + (1.0 - lo_a.sum(1, keepdims=True)) * w
            hi_a = np.where(active, hi, 0.0)
            for _ in range(3):  # one pass suffices in exact arithmetic; repeat against round-off
                excess = np.clip(x - hi_a, 0, None).sum(1, keepdims=True)
                x = np.minimum(x, hi_a)
                room = np.clip(hi_a - x, 0, None)
                x = x + excess * room / np.where(room.sum(1, keepdims=True) > 0, room.sum(1, keepdims=True), 1.0)
            frac = x / x.sum(1, keepdims=True)
        P = len(self.process)
        proc = np.zeros((n, P))
        if P:
            plo = np.array([b[0] for b in self.process.values()])
            phi = np.array([b[1] for b in self.process.values()])
            proc = plo + (phi - plo) * rng.random((n, P))
        return frac, proc

    def _random_subsets(self, n: int, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.lower, self.upper
        E = len(lo)
        kmax = min(self.max_elements or E, E)
        required = lo > 0
        absent = hi <= PRESENT  # never counted present: drawn last, so min_elements counts elements that can be
        active = np.zeros((n, E), dtype=bool)
        todo = np.arange(n)
        for _ in range(50):  # redraw subsets whose upper bounds cannot reach one
            m = len(todo)
            kmin = max(int(required.sum()), self.min_elements, 1)
            k = rng.integers(kmin, kmax + 1, size=m)
            keys = rng.random((m, E))
            keys[:, required] = -1.0
            keys[:, absent & ~required] = 2.0
            ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
            act = ranks < k[:, None]
            ok = (hi * act).sum(1) >= 1 - 1e-12
            active[todo[ok]] = act[ok]
            todo = todo[~ok]
            if not len(todo):
                break
        if len(todo):  # fall back to the elements with the largest upper bounds
            order = np.argsort(-(hi + 2 * required))[:kmax]
            active[np.ix_(todo, order)] = True
        return active

    def neighbours(
        self, fractions: np.ndarray, process: np.ndarray, per_point: int, rng: np.random.Generator, steps=(0.03, 0.1, 0.3)
    ) -> tuple[np.ndarray, np.ndarray]:
        """Feasible points near the given rows: convex mixtures with random points on the same
        element subset (so bounds, sum and element count stay valid); process jittered in the box."""
        if self.pool is not None:
            raise ValueError("a discrete pool has no neighbours")
        reps = np.repeat(np.arange(len(fractions)), per_point)
        f0 = fractions[reps]
        active = f0 > 0
        rnd, prnd = self.sample(len(reps), rng, active=active if len(self.elements) else None)
        a = rng.choice(np.asarray(steps), size=(len(reps), 1))
        f = (1 - a) * f0 + a * rnd
        f = f / np.where(f.sum(1, keepdims=True) > 0, f.sum(1, keepdims=True), 1.0) if f.size else f
        p = process[reps]
        if self.process:
            p = (1 - a) * p + a * prnd
        return f, p

    def candidates(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The pool, or ``n`` random feasible points; first the ``anchors`` (random process values)
        and ``ANCHOR_NEIGHBOURS`` points close around each (mixed 0.3-3 % with a random point of its
        elements): once an anchor is measured, what is near it is still there to choose."""
        if self.pool is not None:
            return self.pool
        frac, proc = self.sample(n, rng)
        if self.anchors is not None and len(self.anchors):
            af = np.asarray(self.anchors, dtype=float)
            ap = self.sample(len(af), rng)[1]
            nf, np_ = self.neighbours(af, ap, ANCHOR_NEIGHBOURS, rng, steps=(0.003, 0.01, 0.03))
            frac, proc = np.concatenate([af, nf, frac]), np.concatenate([ap, np_, proc])
        return frac, proc
