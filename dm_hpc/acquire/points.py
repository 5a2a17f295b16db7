"""The one type for a proposed point, and its identity.

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

PointKey = tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]


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
