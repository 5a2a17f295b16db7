"""``propose``: the next batch of compositions / process settings (and fidelities) to evaluate,
as ``ProposedPoint``s (``points.py``: the one type for a proposed point)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from dm_hpc.acquire.acquisition import (Objective, OutcomeConstraint, build_acquisition, greedy_select, rules_met,
                                        with_computed)
from dm_hpc.acquire.fidelity import Fidelity, choose_fidelity
from dm_hpc.acquire.points import DUPLICATE_DISTANCE, MIN_SEPARATION, ProposedPoint
from dm_hpc.acquire.space import DesignSpace


def training_inputs(model) -> Tensor:
    """The ``n x d`` inputs a model was trained on (task column removed for multi-task GPs).

    Public BoTorch/GPyTorch API only: ``train_inputs`` holds the transformed inputs once the
    model is in eval mode, so the input transform is undone (``Normalize`` is invertible); the
    multi-task GPs of ``learn.fit_multitask`` carry the task id in their last column. Prefer
    the ``train_X`` of a ``learn.fitted.FittedSurrogate`` where one is at hand.
    """
    from botorch.models import ModelListGP, MultiTaskGP

    if isinstance(model, ModelListGP):
        return training_inputs(model.models[0])
    X = model.train_inputs[0]
    transform = getattr(model, "input_transform", None)
    if transform is not None and not model.training:
        X = transform.untransform(X)
    if X.dim() > 2:  # batched multi-output GP: identical inputs per output
        X = X[0]
    if isinstance(model, MultiTaskGP):
        X = torch.unique(X[..., :-1], dim=0)
    return X


def _pending_features(space: DesignSpace, pending) -> Tensor | None:
    if pending is None:
        return None
    if isinstance(pending, Tensor):
        return pending.to(torch.double) if pending.numel() else None
    items = list(pending)
    if not items:
        return None
    pairs = [(p.composition, p.process) if isinstance(p, ProposedPoint) else (p if isinstance(p, tuple) else (p, {}))
             for p in items]
    return space.featurize(*space.from_dicts(pairs, strict=True))


def propose(
    model,
    space: DesignSpace,
    objectives: Sequence[Objective] = (Objective(0, True),),
    constraints: Sequence[OutcomeConstraint] = (),
    q: int = 1,
    pending: Sequence[ProposedPoint | Mapping | tuple] | Tensor | None = None,
    fidelities: Sequence[Fidelity] | None = None,
    outputs: Sequence[str] | None = None,
    X_baseline: Tensor | None = None,
    n_candidates: int = 2048,
    refine: bool = True,
    exclude_pool: Sequence[int] = (),
    seed: int = 0,
    kind: str | None = None,
    snap: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    fidelity: str = "",
    predict_with=None,
    min_separation: float | None = None,
) -> list[ProposedPoint]:
    """Propose a batch of ``q`` evaluations.

    Args:
        model: a BoTorch model on ``space.featurize`` features (``fit_surrogate``); for
            multi-fidelity a multi-task GP whose default output is the target fidelity.
        space: where proposals may lie (continuous compositions/process, or a pool).
        objectives: outputs to maximise/minimise (one: qUCB, or qLogNEI with constraints or
            ``kind='nei'``; several: qLogNEHVI).
        constraints: outcome constraints, e.g. ``OutcomeConstraint(1, "<=", 7.0)`` (density).
        q: batch size (sequential greedy: each choice becomes pending for the next).
        pending: points running now (``ProposedPoint``s, ``(composition, process)`` tuples,
            composition dicts, or a ``p x d`` feature tensor); they are not proposed again.
        fidelities: the fidelities and their costs; each proposal then names one, chosen by
            information gain about the target per unit cost (``dm_hpc.acquire.fidelity``).
        outputs: names of the model outputs (keys of ``predicted["mean"]``/``["std"]``); default "y0", "y1", ...
        X_baseline: observed ``n x d`` inputs (default: the model's training inputs).
        n_candidates: random feasible candidates drawn (continuous spaces), then refined around
            the best ones; ignored for a pool.
        exclude_pool: pool indices never to propose (already measured).
        snap: maps candidate rows (``n x E`` fractions, ``n x P`` process) to the rows of what
            would really be evaluated, dropping those that are not new (continuous spaces): the
            acquisition then ranks realised, new points only, so every proposal is one.

        fidelity: the fidelity of every proposal when ``fidelities`` is not given ("": none).
        predict_with: the model whose predictions a proposal carries (``predicted``), when
            ``model`` only ranks (a decision model fitted on warped values, ``learn.decision``);
            default ``model``. Fidelities are chosen on it too: information about the target
            in its own units.
        min_separation: continuous spaces: no proposal closer than this to another of the batch or
            to a pending point (Euclidean on ``space.coordinates``: fractions, process scaled to
            [0, 1]) while the space has room; default ``points.MIN_SEPARATION``. A pool's points
            are what they are: there only a pending or chosen point is never proposed again.

    Returns:
        ``q`` ``ProposedPoint``s in the order chosen (fewer when ``snap`` leaves fewer
        candidates); ``predicted`` holds ``mean`` and ``std`` per output name (of the target
        fidelity), ``acquisition`` (log-acquisition value when chosen, higher is better),
        ``gain_per_cost`` per fidelity name (multi-fidelity only) and, on a pool,
        ``pool_index``.
    """
    rng = np.random.default_rng(seed)
    exact_rules = any(c.exact is not None for c in constraints)

    def admit(f: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Continuous candidates as they would be made (``snap``), less those that break a rule the
        inputs decide: what is never ranked (a pool's are ``exclude``d below)."""
        if snap is not None:
            f, p = snap(f, p)
        if exact_rules and len(f):
            keep = rules_met(space.featurize(f, p), constraints).numpy()
            f, p = f[keep], p[keep]
        return f, p

    frac, proc = space.candidates(n_candidates, rng)
    if space.pool is None:
        frac, proc = admit(frac, proc)
        if not len(frac):
            return []
    X_cand = space.featurize(frac, proc)
    X_pend = _pending_features(space, pending)
    X_base = training_inputs(model) if X_baseline is None else X_baseline
    acq = build_acquisition(model, X_base, objectives, constraints, X_pending=X_pend, kind=kind)

    exclude = None
    if space.pool is not None:
        exclude = torch.zeros(X_cand.shape[0], dtype=torch.bool)
        exclude[list(exclude_pool)] = True
        if X_pend is not None:  # a pool point that is pending is excluded outright
            exclude |= (torch.cdist(X_cand, X_pend) < DUPLICATE_DISTANCE).any(-1)  # round-off of re-featurised dicts
        if exact_rules:
            exclude |= ~rules_met(X_cand, constraints)

    state = {"frac": frac, "proc": proc}

    def refine_fn(vals: Tensor, Xc: Tensor) -> Tensor | None:
        top = torch.topk(vals, min(32, len(vals))).indices.numpy()
        f2, p2 = admit(*space.neighbours(state["frac"][top], state["proc"][top], 8, rng))
        if not len(f2):
            return None
        state["frac"] = np.concatenate([state["frac"], f2])
        state["proc"] = np.concatenate([state["proc"], p2])
        return space.featurize(f2, p2)

    use_refine = refine and space.pool is None and len(space.elements) + len(space.process) > 0
    separation = 0.0 if space.pool is not None else MIN_SEPARATION if min_separation is None else min_separation
    idx, values, X_all = greedy_select(acq, X_cand, q, X_pending=X_pend, exclude=exclude,
                                       refine=refine_fn if use_refine else None, separation=separation,
                                       coordinate_columns=space.coordinate_columns)
    frac_all, proc_all = state["frac"], state["proc"]

    X_sel = X_all[idx]
    reporter = model if predict_with is None else predict_with
    computed = {o.output: o.exact for o in [*objectives, *constraints] if o.exact is not None}
    with torch.no_grad():
        post = reporter.posterior(X_sel)
        # what the inputs decide is reported as computed, no spread (need not be one of the model's outputs)
        mean, std = with_computed(post.mean, post.variance.clamp_min(0).sqrt(), computed, X_sel, len(outputs or ()))
    names = list(outputs) if outputs is not None else [f"y{i}" for i in range(mean.shape[-1])]
    chosen_fid: list[Fidelity | None] = [None] * len(idx)
    scores = None
    if fidelities:  # information about what is learned, not about what the inputs decide
        learned = [i for i in range(reporter.num_outputs) if i not in computed]
        chosen_fid, scores = choose_fidelity(reporter, X_sel, fidelities, learned if computed else None)
    dicts = space.to_dicts(frac_all[idx], proc_all[idx])
    out = []
    for k, (comp, pr) in enumerate(dicts):
        predicted = {
            "mean": {n: float(mean[k, i]) for i, n in enumerate(names)},
            "std": {n: float(std[k, i]) for i, n in enumerate(names)},
            "acquisition": values[k],
            "gain_per_cost": {f.name: float(scores[k, j]) for j, f in enumerate(fidelities)} if scores is not None else {},
        }
        if space.pool is not None:
            predicted["pool_index"] = int(idx[k])
        out.append(ProposedPoint(chosen_fid[k].name if chosen_fid[k] is not None else fidelity, comp, pr, predicted))
    return out
