"""Properties that need no calculation: raw-material cost and classic alloy descriptors.

- raw_material_cost (USD/kg): mass-fraction-weighted element prices from ``element_prices.yaml``
  (source and date in the file); None when an element has no price.
- mixing_entropy (J/(mol*K)): ideal configurational entropy -R * sum x ln x.
- size_mismatch (percent): delta = 100 * sqrt(sum x (1 - r / r_mean)^2), metallic radii
  (pymatgen's table, atomic radius where no metallic one is listed).
- valence_electron_concentration: mean valence electrons per atom, counting d electrons for
  transition metals (group number), s+p for main-group elements (group - 10 for p-block).
"""
from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from dm_hpc.data import Composition

GAS_CONSTANT = 8.314462618  # J/(mol*K)
_PRICES = Path(__file__).with_name("element_prices.yaml")
ANALYTIC_PROPERTIES = ("raw_material_cost", "mixing_entropy", "size_mismatch", "valence_electron_concentration")


@cache
def price_table() -> dict[str, Any]:
    """The element price file: ``{"source", "date", "unit", "prices": {El: USD/kg}}``."""
    return yaml.safe_load(_PRICES.read_text())


def raw_material_cost(composition: Composition) -> float | None:
    """USD per kg of alloy from element prices, weighted by mass fraction (None if a price is missing)."""
    prices = price_table()["prices"]
    weights = composition.weight_fractions()
    if any(el not in prices for el in weights):
        return None
    return sum(w * float(prices[el]) for el, w in weights.items())


def mixing_entropy(composition: Composition) -> float:
    """Ideal configurational entropy of mixing in J/(mol*K)."""
    return max(0.0, -GAS_CONSTANT * sum(x * math.log(x) for x in composition.fractions.values() if x > 0))


@cache
def _radius(element: str) -> float:
    from pymatgen.core import Element

    el = Element(element)
    r = el.metallic_radius or el.atomic_radius
    return float(r)


def size_mismatch(composition: Composition) -> float:
    """Atomic size mismatch delta in percent."""
    x = composition.fractions
    r_mean = sum(xi * _radius(el) for el, xi in x.items())
    return 100.0 * math.sqrt(sum(xi * (1 - _radius(el) / r_mean) ** 2 for el, xi in x.items()))


@cache
def _valence(element: str) -> int:
    from pymatgen.core import Element

    el = Element(element)
    group = int(el.group)
    return group - 10 if group > 12 else group


def valence_electron_concentration(composition: Composition) -> float:
    """Mean valence electrons per atom (dimensionless)."""
    return sum(x * _valence(el) for el, x in composition.fractions.items())


def analytic_properties(composition: Composition, names: tuple[str, ...] | list[str] = ANALYTIC_PROPERTIES) -> dict[str, float]:
    """The analytic properties in ``names`` (canonical units); absent where not defined."""
    funcs = {"raw_material_cost": raw_material_cost, "mixing_entropy": mixing_entropy,
             "size_mismatch": size_mismatch, "valence_electron_concentration": valence_electron_concentration}
    out = {}
    for name in names:
        if name in funcs:
            value = funcs[name](composition)
            if value is not None:
                out[name] = float(value)
    return out
