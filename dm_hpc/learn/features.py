"""Composition and process features for the surrogates.

A composition ``{element: atomic fraction}`` becomes the element-fraction vector over a fixed
element list plus the eight alloy descriptors of ``dm_hpc.data.descriptors`` (``DESCRIPTOR_NAMES``:
radius, electronegativity and valence-electron mean and spread, mixing entropy, size mismatch;
definitions and units there, the same numbers ``compute`` stores as properties). The models
normalise their inputs, so the descriptors' units do not matter to them.

Process parameters are scaled to [0, 1] by their declared bounds, so one length scale prior fits
every column.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from dm_hpc.data.descriptors import DESCRIPTOR_NAMES, composition_descriptors


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
