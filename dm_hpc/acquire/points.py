"""The one type for a proposed point, its identity, and how far apart two points of a batch stand.

A proposal becomes a *realised point* before anything else happens to it: what will really be
built (the integer occupation of the cell a calculator makes) or made (the composition at the
lab's stated precision). Two proposals with one realised point are one calculation; ``key``
is that identity, per fidelity.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

#: Fractions and process values equal to this many decimals are the same point.
KEY_DECIMALS = 6
#: Smallest Euclidean distance, on atomic fractions and process values scaled to [0, 1] by their
#: bounds (``DesignSpace.coordinates``), between two proposals of one batch or a proposal and a
#: pending point, while the space has room (continuous spaces; a pool's points are what they are).
#: Closer points are near-replicates: a lab cannot make alloys 1 at.% apart as different ones
#: (weighing, arc-melting), and the model's descriptor features are steep near the pure elements,
#: so Pd and Pd0.94Cu0.06 are far apart for a GP but next to each other for a chemist. A campaign
#: may set its own (``learning.batch_separation``).
MIN_SEPARATION = 0.1
#: Candidates closer than this to a running point (same coordinates) are that point again: it adds
#: nothing to a batch (a model's joint batch value ties it with near-worthless candidates), so a
#: batch never takes one, whatever the separation.
DUPLICATE_DISTANCE = 1e-5

PointKey = tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]


def may_take(nearest, excluded, separation: float):
    """Which candidates a batch may take next: those at least ``separation`` from every running
    point (the batch so far, the pending points) while any is; then, the space being exhausted at
    this separation, any that is not a running point again (``DUPLICATE_DISTANCE``). Every batch
    planner relaxes the separation this way, model or none.

    Args:
        nearest: ``n`` distances from each candidate to its nearest running point (inf where none
            runs), a numpy array or a torch tensor.
        excluded: ``n`` bool of the same kind: candidates never to take (taken, measured).
        separation: the smallest distance (``MIN_SEPARATION`` or the campaign's).

    Returns:
        ``n`` bool of the same kind.
    """
    new = ~excluded & (nearest >= DUPLICATE_DISTANCE)
    far = new & (nearest >= separation)
    return far if bool(far.any()) else new


def point_key(composition: Mapping[str, float], process: Mapping[str, float]) -> PointKey:
    """Identity of a point up to ``10**-KEY_DECIMALS`` (zero fractions dropped)."""
    comp = tuple(sorted((el, round(float(x), KEY_DECIMALS)) for el, x in composition.items()
                        if round(float(x), KEY_DECIMALS) > 0))
    return comp, tuple(sorted((k, round(float(v), KEY_DECIMALS)) for k, v in process.items()))


@dataclass(frozen=True)
class ProposedPoint:
    """One thing to calculate or measure next.

    Attributes:
        fidelity: the fidelity's name (a calculation, or the lab).
        composition: ``{element: atomic fraction}``, non-zero fractions, sum 1.
        process: ``{parameter: value}`` in canonical units.
        predicted: ``{"mean": {prop: value}, "std": {...}, ...}`` as the planner saw it.
    """

    fidelity: str
    composition: dict[str, float]
    process: dict[str, float] = field(default_factory=dict)
    predicted: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> PointKey:
        return point_key(self.composition, self.process)

    def at(self, fidelity: str) -> ProposedPoint:
        """The same point for another fidelity (realise it again for that fidelity)."""
        return replace(self, fidelity=fidelity)
