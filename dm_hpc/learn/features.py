"""Composition and process features for the surrogates.

A composition ``{element: atomic fraction}`` becomes the element-fraction vector over a fixed
element list plus eight physical descriptors computed from pymatgen's element data:

| column | meaning | unit |
|---|---|---|
| ``radius_mean``, ``radius_spread`` | fraction-weighted mean / std of the atomic radius | angstrom |
| ``chi_mean``, ``chi_spread`` | same for the Pauling electronegativity | - |
| ``vec_mean``, ``vec_spread`` | same for the valence electron count (VEC convention) | electrons |
| ``mixing_entropy`` | ideal configurational entropy ``-sum c ln c`` | R (gas constant) |
| ``size_mismatch`` | ``delta = sqrt(sum c (1 - r_i / r_mean)^2)`` | fraction (x100 = %) |

Process parameters are scaled to [0, 1] by their declared bounds, so one length scale prior fits
every column.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

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


@lru_cache(maxsize=None)
def element_properties(symbol: str) -> tuple[float, float, float]:
    """(atomic radius / angstrom, Pauling electronegativity, valence electrons) of ``symbol``.

    Valence electrons follow the alloy-design VEC convention: the group number for groups 1-12,
    group - 10 for groups 13-18 (Al -> 3, Ni -> 10), 3 for lanthanides and actinides. Missing
    pymatgen values (e.g. noble-gas electronegativity) become 0.
    """
    from pymatgen.core.periodic_table import Element

    el = Element(symbol)
    radius = el.atomic_radius
    radius = float(radius) if radius is not None else float(el.average_ionic_radius or 0.0)
    chi = float(el.X)
    chi = 0.0 if math.isnan(chi) else chi
    if el.is_lanthanoid or el.is_actinoid:
        vec = 3.0
    else:
        group = int(el.group)
        vec = float(group if group <= 12 else group - 10)
    return radius, chi, vec


def composition_descriptors(fractions: np.ndarray, elements: Sequence[str]) -> np.ndarray:
    """Physical descriptors of compositions.

    Args:
        fractions: ``n x E`` atomic fractions (rows are renormalised to sum to one).
        elements: the ``E`` element symbols, in column order.

    Returns:
        ``n x 8`` array, columns as in ``DESCRIPTOR_NAMES``.
    """
    props = np.array([element_properties(e) for e in elements], dtype=float).reshape(len(elements), 3)
    total = fractions.sum(axis=1, keepdims=True)
    c = np.divide(fractions, total, out=np.zeros_like(fractions), where=total > 0)
    mean = c @ props  # n x 3
    spread = np.sqrt(np.clip(c @ props**2 - mean**2, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.sum(np.where(c > 0, c * np.log(np.where(c > 0, c, 1.0)), 0.0), axis=1)
        r_mean = mean[:, 0:1]
        ratio = np.where(r_mean > 0, props[None, :, 0] / np.where(r_mean > 0, r_mean, 1.0), 1.0)
        delta = np.sqrt(np.sum(c * (1.0 - ratio) ** 2, axis=1))
    out = np.column_stack(
        [mean[:, 0], spread[:, 0], mean[:, 1], spread[:, 1], mean[:, 2], spread[:, 2], entropy, delta]
    )
    return out


def composition_matrix(compositions: Sequence[Mapping[str, float]], elements: Sequence[str]) -> np.ndarray:
    """``n x E`` array of atomic fractions; elements absent from ``elements`` raise ValueError."""
    index = {e: i for i, e in enumerate(elements)}
    out = np.zeros((len(compositions), len(elements)))
    for row, comp in enumerate(compositions):
        for el, frac in comp.items():
            if el not in index:
                raise ValueError(f"element {el!r} of composition {dict(comp)} is not in {list(elements)}")
            out[row, index[el]] = float(frac)
    return out


def scale_process(
    process: Sequence[Mapping[str, float]] | np.ndarray,
    bounds: Mapping[str, tuple[float, float]],
) -> np.ndarray:
    """Scale process parameters to [0, 1] by their declared ``bounds`` ``{name: (low, high)}``.

    ``process`` is a sequence of ``{name: value}`` (canonical units) or an ``n x P`` array in the
    order of ``bounds``. Returns ``n x P``.
    """
    names = list(bounds)
    if isinstance(process, np.ndarray):
        raw = np.asarray(process, dtype=float).reshape(-1, len(names))
    else:
        raw = np.array([[float(p[name]) for name in names] for p in process], dtype=float).reshape(-1, len(names))
    lo = np.array([bounds[n][0] for n in names], dtype=float)
    hi = np.array([bounds[n][1] for n in names], dtype=float)
    return (raw - lo) / np.where(hi > lo, hi - lo, 1.0)


def featurize(
    compositions: Sequence[Mapping[str, float]] | np.ndarray,
    elements: Sequence[str],
    process: Sequence[Mapping[str, float]] | np.ndarray | None = None,
    process_bounds: Mapping[str, tuple[float, float]] | None = None,
    descriptors: bool = True,
) -> Tensor:
    """Features of compositions (and process settings) for the surrogates.

    Args:
        compositions: ``n`` compositions ``{element: atomic fraction}``, or an ``n x E`` array of
            fractions in the order of ``elements``.
        elements: the element list that fixes the fraction columns.
        process: optional ``n`` process settings ``{name: value}`` (or an ``n x P`` array);
            needs ``process_bounds``.
        process_bounds: ``{name: (low, high)}`` in canonical units; fixes the process columns.
        descriptors: append the eight physical descriptors (``DESCRIPTOR_NAMES``).

    Returns:
        ``n x (E + 8 + P)`` double tensor: fractions, descriptors, scaled process parameters.
    """
    if isinstance(compositions, np.ndarray):
        frac = np.asarray(compositions, dtype=float).reshape(-1, len(elements))
    else:
        frac = composition_matrix(compositions, elements)
    parts = [frac]
    if descriptors:
        parts.append(composition_descriptors(frac, elements))
    if process is not None:
        if process_bounds is None:
            raise ValueError("process parameters need process_bounds to be scaled")
        parts.append(scale_process(process, process_bounds))
    return torch.as_tensor(np.column_stack(parts), dtype=torch.double)


def feature_names(
    elements: Sequence[str], process_bounds: Mapping[str, tuple[float, float]] | None = None, descriptors: bool = True
) -> list[str]:
    """Column names of ``featurize`` output, in order."""
    names = [f"x_{e}" for e in elements]
    if descriptors:
        names += list(DESCRIPTOR_NAMES)
    if process_bounds:
        names += list(process_bounds)
    return names
