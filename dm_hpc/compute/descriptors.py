"""Properties that need no calculation: raw-material cost and classic alloy descriptors.

- raw_material_cost (USD/kg): mass-fraction-weighted element prices from ``element_prices.yaml``
  (source and date in the file); None when an element has no price.
- mixing_entropy (J/(mol*K)), size_mismatch (percent), valence_electron_concentration (electrons
  per atom): the descriptors of ``dm_hpc.data.descriptors`` (definitions and element data
  there), the same numbers the surrogates see as features.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dm_hpc.data import Composition
from dm_hpc.data.descriptors import DESCRIPTOR_NAMES, composition_descriptors, descriptors
from dm_hpc.data.elements import atomic_mass

#: The element prices a raw-material cost is computed from (a model's targets: ``registry.model_code``
#: fingerprints the file).
PRICE_FILE = Path(__file__).with_name("element_prices.yaml")
ANALYTIC_PROPERTIES = ("raw_material_cost", "mixing_entropy", "size_mismatch", "valence_electron_concentration")
#: Stored property name -> descriptor name (``data.descriptors.DESCRIPTOR_NAMES``).
DESCRIPTOR_PROPERTIES = {"mixing_entropy": "mixing_entropy", "size_mismatch": "size_mismatch",
                         "valence_electron_concentration": "vec_mean"}


@cache
def price_table() -> dict[str, Any]:
    """The element price file: ``{"source", "date", "unit", "prices": {El: USD/kg}}``."""
    return yaml.safe_load(PRICE_FILE.read_text())


def raw_material_cost(composition: Composition) -> float | None:
    """USD per kg of alloy from element prices, weighted by mass fraction (None if a price is missing)."""
    prices = price_table()["prices"]
    weights = composition.weight_fractions()
    if any(el not in prices for el in weights):
        return None
    return sum(w * float(prices[el]) for el, w in weights.items())


def mixing_entropy(composition: Composition) -> float:
    """Ideal configurational entropy of mixing in J/(mol*K)."""
    return descriptors(composition.fractions)["mixing_entropy"]


def size_mismatch(composition: Composition) -> float:
    """Atomic size mismatch delta in percent."""
    return descriptors(composition.fractions)["size_mismatch"]


def valence_electron_concentration(composition: Composition) -> float:
    """Mean valence electrons per atom (dimensionless)."""
    return descriptors(composition.fractions)["vec_mean"]


def analytic_properties(composition: Composition, names: tuple[str, ...] | list[str] = ANALYTIC_PROPERTIES) -> dict[str, float]:
    """The analytic properties in ``names`` (canonical units); absent where not defined."""
    out: dict[str, float] = {}
    if any(n in DESCRIPTOR_PROPERTIES for n in names):
        row = descriptors(composition.fractions)
        out.update({n: float(row[DESCRIPTOR_PROPERTIES[n]]) for n in names if n in DESCRIPTOR_PROPERTIES})
    if "raw_material_cost" in names and (cost := raw_material_cost(composition)) is not None:
        out["raw_material_cost"] = float(cost)
    return {n: out[n] for n in names if n in out}


def analytic_values(name: str, fractions: np.ndarray, elements: Sequence[str]) -> np.ndarray:
    """``name`` (one of ``ANALYTIC_PROPERTIES``) of ``n`` compositions at once, canonical unit:
    ``n x E`` atomic fractions (columns ``elements``; rows renormalised) -> ``n`` values, NaN where
    it is not defined (a cost with an element the price table lacks). The same numbers as
    ``analytic_properties`` row by row (what design ranks thousands of candidates with)."""
    fractions = np.asarray(fractions, dtype=float).reshape(-1, len(elements))
    if name in DESCRIPTOR_PROPERTIES:
        return composition_descriptors(fractions, elements)[:, DESCRIPTOR_NAMES.index(DESCRIPTOR_PROPERTIES[name])]
    if name != "raw_material_cost":
        raise ValueError(f"{name!r} is not an analytic property (those are {', '.join(ANALYTIC_PROPERTIES)})")
    prices = price_table()["prices"]
    price = np.array([float(prices[el]) if el in prices else np.nan for el in elements])
    mass = fractions * np.array([atomic_mass(el) for el in elements])
    total = mass.sum(axis=1, keepdims=True)
    weights = np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)
    unpriced = ((fractions > 0) & np.isnan(price)).any(axis=1)
    return np.where(unpriced, np.nan, weights @ np.nan_to_num(price))


def analytic_functions(properties: Iterable[str]) -> dict[str, Callable[[np.ndarray, Sequence[str]], np.ndarray]]:
    """Of ``properties``, those the composition decides, each as ``(n x E fractions, E elements) ->
    n values`` (``analytic_values``): what ``design`` computes instead of learning."""
    return {name: partial(analytic_values, name) for name in dict.fromkeys(properties) if name in ANALYTIC_PROPERTIES}


__all__ = ["ANALYTIC_PROPERTIES", "analytic_functions", "analytic_properties", "analytic_values", "mixing_entropy",
           "price_table", "raw_material_cost", "size_mismatch", "valence_electron_concentration"]
