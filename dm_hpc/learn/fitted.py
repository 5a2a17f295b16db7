"""A fitted surrogate as a type: the model, what its inputs are, and which fidelity each task is.

``fit_fidelity_surrogate`` is the one entry the decision layer uses: every parameter explicit,
one task per fidelity (a calculation method, or the lab), the target fidelity named. It returns
a ``FittedSurrogate`` instead of a tuple indexed by position.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class FittedSurrogate:
    """A BoTorch model and the facts needed to use it.

    Attributes:
        model: a fitted BoTorch ``Model``; ``model.posterior(X)`` with ``X`` of shape ``n x d``
            gives ``n x m`` predictions (of the target fidelity when there are several).
        outputs: the ``m`` output (property) names, in model order.
        fidelities: fidelity names; position = task id of the multi-task model. One name when
            the data had a single fidelity.
        target: the fidelity whose values the model predicts for ``n x d`` inputs.
        space: what turns compositions and process settings into the ``n x d`` features the
            model was trained on (an ``acquire.DesignSpace``; ``learn`` does not import it).
        train_X: the ``n x d`` training inputs (without a task column).
        transfer: when sources informed the model (``learn.transfer``): ``{"kind", "weights"
            {source: weight}, "loo" {kind: density}, "loo_rmse" {kind: error}, "source_points"
            {source: rows}, "fit" (the ``TransferFit``)}``; else None.
        decision_model: the surrogate refitted on warped objective values that picks the next
            points (``learn.decision``), or None: ``model`` decides. Predictions and intervals are
            always ``model``'s.
    """

    model: Any
    outputs: tuple[str, ...]
    fidelities: tuple[str, ...]
    target: str
    space: Any
    train_X: Tensor
    transfer: dict | None = None
    decision_model: Any = None

    @property
    def decider(self) -> Any:
        """The model the next points are chosen with: ``decision_model``, else ``model``."""
        return self.model if self.decision_model is None else self.decision_model

    @property
    def multi_fidelity(self) -> bool:
        return len(self.fidelities) > 1

    def task_of(self, fidelity: str) -> int:
        """The task id of a fidelity name."""
        return self.fidelities.index(fidelity)


def fit_fidelity_surrogate(
    X: Tensor,
    Y: Tensor,
    fidelity: Sequence[str],
    *,
    outputs: Sequence[str],
    target: str,
    space: Any,
    kind: str = "auto",
    all_fidelities: Sequence[str] | None = None,
    seed: int = 0,
    multitask_options: dict | None = None,
    decision_outputs: Sequence[int] = (),
    computed_outputs: Sequence[int] = (),
) -> FittedSurrogate:
    """Fit one surrogate over rows that each belong to a named fidelity.

    Args:
        X: ``n x d`` features; Y: ``n x m`` outcomes (canonical units).
        fidelity: ``n`` fidelity names (e.g. ``"computed:emt"``, ``"lab"``).
        outputs: the ``m`` property names.
        target: the fidelity to predict (need not be observed yet).
        kind: ``auto`` (multi-task GP over fidelities when several are observed, else the
            single-fidelity default of ``fit_surrogate``), ``gp``, ``multitask``, ``ensemble``.
        all_fidelities: every fidelity the model should know (default: observed + target), sorted
            as given; the position is the task id.
        seed: seeds the single-fidelity fit's subsampling (the multi-task fit is deterministic).
        multitask_options: passed to ``fit_multitask`` (e.g. ``settings``, ``maxiter``).
        decision_outputs: the objective's output index when the model will choose points: with one
            fidelity, a second fit on its warped values decides (``learn.decision``; empty: none).
        computed_outputs: outputs the inputs decide (``acquire.ExactOutput``): no decision weighs
            their model (``fit_decision_model``).
    """
    from dm_hpc.learn.decision import fit_decision_model
    from dm_hpc.learn.surrogates import fit_surrogate

    X = torch.as_tensor(X, dtype=torch.double)
    Y = torch.as_tensor(np.asarray(Y), dtype=torch.double).reshape(len(X), -1)
    names = list(all_fidelities) if all_fidelities is not None else sorted(set(fidelity) | {target})
    missing = sorted(set(fidelity) - set(names))
    if missing:
        raise ValueError(f"rows of fidelities {missing} not among {names}")
    observed = sorted(set(fidelity))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(observed) > 1 and kind in ("auto", "multitask"):
            task = torch.tensor([names.index(f) for f in fidelity])
            model = fit_surrogate(X, Y, kind="multitask", task_index=task, target_task=names.index(target),
                                  all_tasks=list(range(len(names))), **(multitask_options or {}))
            return FittedSurrogate(model, tuple(outputs), tuple(names), target, space, X)
        single = "gp" if kind == "multitask" else kind
        model = fit_surrogate(X, Y, kind=single, seed=seed)
        # rows of several fidelities in one single-task model (kind gp/ensemble asked): the warp was
        # measured on one fidelity's values only, so the reporting model decides
        decision = (fit_decision_model(X, Y, decision_outputs, kind=single, computed=computed_outputs, seed=seed)
                    if len(observed) <= 1 else None)
    only = observed[0] if observed else target
    return FittedSurrogate(model, tuple(outputs), (only,), only, space, X, decision_model=decision)
