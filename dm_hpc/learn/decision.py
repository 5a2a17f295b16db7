"""The model a decision is taken on: the surrogate refitted on Yeo-Johnson-warped objective values.

A campaign's surrogate reports predictions and intervals in the property's units; that model stays
as it is. Choosing the next point is another use: the confidence bound only ranks candidates, and a
GP ranks them better when the values it learns from look Gaussian. Most measured objectives do not
(a strength or an activity skewed towards a few good alloys, a test function's narrow peak above a
plateau). Measured on the dev suite at 20 seeds (``benchmarks/output_warp_ablation.py``,
benchmarks/README.md "Outcomes warped for the decision"): the bound on values warped by a fitted
Yeo-Johnson transform (Yeo & Johnson, Biometrika 87 (2000); HEBO's outcome warping, Cowen-Rivers
et al., JAIR 74 (2022)) found 1.07x the top set of the same bound on raw values on average over the
twelve sets (90 % interval 1.03-1.15), up to 1.5x on the full OER plates; rank-only normal scores
(a copula) lost on seven sets. The transform is monotone increasing, so what is better stays better
and a minimised objective stays minimised; nothing but the pick depends on it.

Applies where it was measured: one objective, an exact GP on every record (``GP_MAX_POINTS`` or
fewer, one fidelity); elsewhere ``fit_decision_model`` returns None and the reporting model decides.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from dm_hpc.learn.gp import GP_DEFAULTS, GPSettings

#: Off switch for ablations (``pool_bench --variant outcome_warp=0``): decisions on raw values.
OUTCOME_WARP = True

#: The decision model's GP settings (None: the reporting model's, ``GP_DEFAULTS``): the reporting
#: model's Matern kernel and capped warm fits, with one length-scale shared by the inputs while the
#: campaign has fewer than 10 points per input (``GPSettings.iso_points_per_dim``), ARD from there:
#: on the dev suite (benchmarks/README.md, "One length-scale until ten points per input") it took
#: the default from 1.02x to 1.11x the better stock BoTorch reference and left no set firmly
#: behind it. BoTorch's own model fitted cold with the warp was level on average (not adopted).
#: Ablations switch it (``pool_bench --variant``; ``iso_points_per_dim=0``: the earlier default).
#: Predictions, intervals and saved models stay the reporting model's (ARD at every size), and so
#: does a decision model that also holds constraints (``fit_decision_model``).
DECISION_SETTINGS: GPSettings | None = dataclasses.replace(GP_DEFAULTS, iso_points_per_dim=10)


def yeo_johnson(y: np.ndarray) -> np.ndarray:
    """``y`` (``n``; NaN = not measured, kept NaN) standardised, through the Yeo-Johnson transform
    whose exponent maximises the normal likelihood of the values (``scipy.stats.yeojohnson``), and
    standardised again. Fewer than three values, or all equal: standardised only (no exponent can
    be fitted). Monotone increasing in ``y``."""
    from scipy import stats

    y = np.asarray(y, dtype=float)
    out = np.full_like(y, np.nan)
    have = ~np.isnan(y)
    v = y[have]
    if not len(v):
        return out
    z = (v - v.mean()) / (v.std() or 1.0)
    if len(v) >= 3 and np.ptp(v) > 0:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            t = stats.yeojohnson(z)[0]
        if np.all(np.isfinite(t)) and t.std() > 0:
            z = (t - t.mean()) / t.std()
    out[have] = z
    return out


def warped(Y: Tensor, outputs: Sequence[int]) -> Tensor:
    """``Y`` (``n x m``) with the columns ``outputs`` through ``yeo_johnson``, the others as given."""
    Yw = torch.as_tensor(Y, dtype=torch.double).clone()
    for i in outputs:
        Yw[:, i] = torch.as_tensor(yeo_johnson(Yw[:, i].numpy()), dtype=torch.double)
    return Yw


def warps(kind: str, rows: int, outputs: Sequence[int]) -> bool:
    """Whether a decision on ``outputs`` of a ``kind`` surrogate over ``rows`` records is taken on
    warped values: one objective, an exact GP on every record (the measured case)."""
    from dm_hpc.learn.gp import GP_MAX_POINTS

    return OUTCOME_WARP and len(outputs) == 1 and kind in ("auto", "gp", "subset-gp") and rows <= GP_MAX_POINTS


def fit_decision_model(X: Tensor, Y: Tensor, outputs: Sequence[int], kind: str = "auto",
                       computed: Sequence[int] = (), **kwargs):
    """The surrogate ``fit_surrogate(X, warped(Y, outputs), kind, settings=DECISION_SETTINGS, **kwargs)``
    that decisions are taken on, or None where ``warps`` says the reporting model decides (several objectives, a multi-task
    or large-data surrogate).

    Args:
        X: ``n x d`` features. Y: ``n x m`` outcomes (NaN = not measured).
        outputs: the objective's output index (one; constraints stay on raw values, so an output
            that a constraint bounds must not be listed).
        computed: outputs the inputs decide (a raw-material cost cap): modelled with the others,
            but no decision weighs them, so they are not constraints here.
        kwargs: passed to ``fit_surrogate`` (``bounds``, ``warm_start`` of the last decision model, ``seed``).
    """
    from dm_hpc.learn.surrogates import fit_surrogate

    if not warps(kind, len(X), outputs):
        return None
    settings = DECISION_SETTINGS
    weighed = Y.shape[-1] - len(set(computed) - set(outputs))
    if weighed > 1 and settings is not None:  # the other columns are constraints, weighed by this
        # model too: one length-scale was measured for the objective alone (found by review: a rule's
        # probability from it had 30-70x the Brier score of the ARD reporting model's)
        settings = dataclasses.replace(settings, iso_points_per_dim=0)
    return fit_surrogate(X, warped(Y, outputs), kind=kind, settings=settings, **kwargs)
