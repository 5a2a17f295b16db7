"""Classic alloy descriptors of a composition: the one definition for properties and features.

``compute`` stores some of them as properties (canonical units of ``properties.yaml``) and
``learn`` appends all eight to the surrogates' inputs, under the same names and with the same
numbers. Pure numpy on atomic fractions, element data from pymatgen (imported on first use).

| name | definition | unit |
|---|---|---|
| ``radius_mean``, ``radius_spread`` | fraction-weighted mean / std of the element radius r | angstrom |
| ``chi_mean``, ``chi_spread`` | same for the Pauling electronegativity | - |
| ``vec_mean``, ``vec_spread`` | same for the valence electron count; the mean is the VEC | electrons |
| ``mixing_entropy`` | ideal configurational entropy ``-R sum c ln c`` | J/(mol*K) |
| ``size_mismatch`` | ``delta = 100 sqrt(sum c (1 - r / r_mean)^2)`` | percent |

The radius is the metallic radius (12-fold coordination), the one the alloy-design literature
tabulates for delta (Zhang et al., Adv. Eng. Mater. 2008; Guo & Liu 2011): pymatgen's
``atomic_radius`` (Slater's empirical radii, rounded to 0.05 angstrom) gives Cu and Ni the same
size and makes Al smaller than Fe, which inverts the size mismatch of Al-containing alloys.
Elements without a metallic radius (non-metals) fall back to the atomic, then the mean ionic
radius. With one radius, ``size_mismatch = 100 * radius_spread / radius_mean`` exactly.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

#: J/(mol*K) (CODATA 2018, exact).
GAS_CONSTANT = 8.314462618

DESCRIPTOR_NAMES: tuple[str, ...] = (
    "radius_mean",
    "radius_spread",
    "chi_mean",
    "chi_spread",
    "vec_mean",
    "vec_spread",
    "mixing_entropy",
    "size_mismatch",
)


@dataclass(frozen=True)
class ElementData:
    """Per-element inputs of the descriptors: ``radius`` (angstrom, metallic where listed),
    Pauling ``electronegativity`` (0 where undefined, e.g. noble gases) and ``valence_electrons``
    (alloy-design VEC convention: group number for groups 1-12, group - 10 for groups 13-18,
    3 for lanthanides and actinides; Ni -> 10, Al -> 3)."""

    radius: float
    electronegativity: float
    valence_electrons: float


@cache
def element_data(symbol: str) -> ElementData:
    """The ``ElementData`` of ``symbol`` from pymatgen's periodic table."""
    from pymatgen.core.periodic_table import Element

    el = Element(symbol)
    with warnings.catch_warnings():  # pymatgen warns where it has no value: the fallbacks here
        warnings.simplefilter("ignore")
        radius = el.metallic_radius or el.atomic_radius or el.average_ionic_radius or 0.0
        chi = float(el.X)
    if el.is_lanthanoid or el.is_actinoid:
        vec = 3.0
    else:
        group = int(el.group)
        vec = float(group if group <= 12 else group - 10)
    return ElementData(float(radius), 0.0 if math.isnan(chi) else chi, vec)


def composition_descriptors(fractions: np.ndarray, elements: Sequence[str]) -> np.ndarray:
    """The descriptors of ``n`` compositions.

    Args:
        fractions: ``n x E`` atomic fractions (rows are renormalised to sum to one; an all-zero
            row gives zeros).
        elements: the ``E`` element symbols, in column order.

    Returns:
        ``n x 8`` array, columns and units as in ``DESCRIPTOR_NAMES`` (module table).
    """
    fractions = np.asarray(fractions, dtype=float).reshape(-1, len(elements))
    props = np.array([[d.radius, d.electronegativity, d.valence_electrons]
                      for d in map(element_data, elements)], dtype=float).reshape(len(elements), 3)
    total = fractions.sum(axis=1, keepdims=True)
    c = np.divide(fractions, total, out=np.zeros_like(fractions), where=total > 0)
    mean = c @ props  # n x 3
    spread = np.sqrt(np.clip(c @ props**2 - mean**2, 0.0, None))
    c_ln_c = c * np.log(np.where(c > 0, c, 1.0))  # 0 ln 0 = 0
    entropy = np.maximum(0.0, -GAS_CONSTANT * c_ln_c.sum(axis=1))
    r_mean = mean[:, 0:1]
    ratio = np.where(r_mean > 0, props[None, :, 0] / np.where(r_mean > 0, r_mean, 1.0), 1.0)
    delta = 100.0 * np.sqrt(np.sum(c * (1.0 - ratio) ** 2, axis=1))
    return np.column_stack(
        [mean[:, 0], spread[:, 0], mean[:, 1], spread[:, 1], mean[:, 2], spread[:, 2], entropy, delta]
    )


def descriptors(fractions: Mapping[str, float]) -> dict[str, float]:
    """``{name: value}`` of one composition ``{element: atomic fraction}`` (units as above)."""
    elements = list(fractions)
    row = composition_descriptors(np.array([[float(fractions[e]) for e in elements]]), elements)[0]
    return dict(zip(DESCRIPTOR_NAMES, row.tolist()))


__all__ = ["DESCRIPTOR_NAMES", "GAS_CONSTANT", "ElementData", "composition_descriptors", "descriptors", "element_data"]
