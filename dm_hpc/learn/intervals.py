"""The coverage of 90 % predictive intervals: the one definition (re-exported by ``quality``).

Plain numpy, so that a report drawn from kept predictions (``campaign.crossval``) judges them
without importing torch; tensors are accepted as well (``quality`` passes its posteriors).
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: Standard-normal quantile of 0.95: ``mean +- Z90 * std`` is the central 90 % interval.
Z90 = 1.6448536269514722


def _array(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor, possibly on a GPU or carrying gradients
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=float)


def interval_coverage(Y: Any, mean: Any, std: Any) -> np.ndarray:
    """Share (0-1) of outcomes inside ``mean +- 1.645 std``, per output: ``n x m`` -> ``m``.

    NaN predictions or outcomes are left out of their column (NaN where a column has none).
    """
    Y, mean, std = _array(Y), _array(mean), _array(std)
    ok = ~(np.isnan(Y) | np.isnan(mean) | np.isnan(std))
    with np.errstate(invalid="ignore"):  # NaN rows compare False; they are left out by ``ok``
        inside = (np.abs(Y - mean) <= Z90 * std) & ok
        return inside.sum(0) / ok.sum(0)  # 0/0 -> NaN: no usable point


__all__ = ["Z90", "interval_coverage"]
