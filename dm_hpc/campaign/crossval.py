"""Cross-validated predictions of the campaign's training set, and the file that keeps them.

The report's parity plot and its model-quality verdicts (R², 90 %-interval coverage) come from
``cross_validate``. Computing them needs torch, BoTorch and one GP fit: ~3 s of CPU, more than
half of a small campaign's report. A lab batch (``suggest.journal_batch``) fits a model anyway,
so it also cross-validates and keeps the answer in ``RUN_DIR/cross-validation.json`` under a
fingerprint of everything the answer depends on (the training set's records and values, the
campaign file, the settings below). ``current`` returns it only while that fingerprint still
holds, so a report drawn after the lab's last batch reuses it without importing torch, and any
change (a new measurement, a retraction, an edited campaign file, a report on a reader's scoped
view) falls back to computing it anew. The file is a cache: deleting it costs time, never content.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dm_hpc.campaign.dataset import TrainingSet
from dm_hpc.campaign.spec import CampaignSpec

#: Cross-validation folds of the parity plot (fewer points: leave-one-out).
CV_FOLDS = 5
#: At most this many records enter the cross-validation (random subset beyond; keeps it < ~15 s).
CV_MAX_POINTS = 300
#: Fewest training rows a cross-validation (and the report's parity plot) is drawn from.
MIN_POINTS = 3
#: Bumped when ``cross_validate`` changes what it computes, so older files are not reused
#: (2: the hyper-parameter fit at ``fit_gp``'s own iteration cap instead of 100).
FORMAT = 2
FILE_NAME = "cross-validation.json"


@dataclass(frozen=True)
class CrossValidation:
    """``rows``: indices into the training set (``n``); ``mean``, ``std``: ``n x m`` predictions of
    a new observation of each of ``campaign.properties`` (canonical units, noise included in std)."""

    rows: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def cross_validate(campaign: CampaignSpec, data: TrainingSet, folds: int = CV_FOLDS, seed: int = 0
                   ) -> CrossValidation:
    """k-fold cross-validated predictions on the training set.

    Fidelity enters as an extra input column (index scaled to [0, 1]), so one exact GP covers a
    multi-fidelity set. Hyper-parameters are fitted once on all rows and kept for every fold (each
    fold's GP only conditions on its training rows): one fit instead of ``folds + 1``, which keeps a
    report of a small campaign within seconds. The held-out rows took part in that one fit, so the
    figures lean slightly optimistic; the predictions themselves never see the held-out values.
    That one fit stops at ``fit_gp``'s own L-BFGS cap, as the campaign's models do: a cap of 100
    cost ~0.25 s more CPU per report and moved CV R² by 0.03 or less in most of 18 draws from the
    public sets (at most 0.06, on 8-20 rows, well inside the spread between fold draws there).
    """
    import torch

    from dm_hpc.campaign.strategy import design_space
    from dm_hpc.learn import fit_gp
    from dm_hpc.learn.features import composition_matrix
    from dm_hpc.learn.quality import predictive

    rng = np.random.default_rng(seed)
    rows = np.arange(len(data))
    if len(rows) > CV_MAX_POINTS:
        rows = np.sort(rng.choice(rows, CV_MAX_POINTS, replace=False))
    space = design_space(campaign)
    X = space.featurize(composition_matrix([data.compositions[i] for i in rows], space.element_names),
                        data.process[rows])
    nf = len(campaign.fidelities)
    if len(np.unique(data.fidelity[rows])) > 1:
        fcol = torch.as_tensor(data.fidelity[rows] / max(1, nf - 1), dtype=torch.double).reshape(-1, 1)
        X = torch.cat([X, fcol], dim=-1)
    Y = torch.as_tensor(data.Y[rows], dtype=torch.double)
    lo, hi = X.min(0).values, X.max(0).values
    bounds = torch.stack([lo, torch.where(hi > lo, hi, lo + 1.0)])
    order = rng.permutation(len(rows))
    mean = np.full(Y.shape, np.nan)
    std = np.full(Y.shape, np.nan)
    have = ~torch.isnan(Y).numpy()
    # one GP on all outputs; where rows lack some value (NaN), one per output on the rows that
    # hold it (as ``fit_surrogate`` fits them), its folds the same permutation's rows
    groups = [list(range(Y.shape[-1]))] if have.all() else [[j] for j in range(Y.shape[-1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cols in groups:
            mine = order[have[order][:, cols].all(axis=1)]
            if len(mine) < MIN_POINTS:
                continue  # too few to cross-validate: NaN, as a prediction nobody made
            k = min(folds, len(mine))
            Yc = Y[:, cols]
            full = fit_gp(X[np.sort(mine)], Yc[np.sort(mine)], bounds=bounds)
            for f in range(k):
                test = mine[f::k]
                train = np.setdiff1d(mine, test)
                model = fit_gp(X[train], Yc[train], bounds=bounds, warm_start=full, warm_maxiter=0)
                mu, sd = predictive(model, X[test])
                mean[np.ix_(test, cols)], std[np.ix_(test, cols)] = mu.numpy(), sd.numpy()
    return CrossValidation(rows, mean, std)


def fingerprint(campaign: CampaignSpec, data: TrainingSet, seed: int) -> str:
    """SHA-256 of everything ``cross_validate(campaign, data, seed=seed)`` depends on: the campaign
    file as loaded, the settings of this module and every training row (record id, composition,
    process, values, fidelity)."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "folds": CV_FOLDS, "max_points": CV_MAX_POINTS, "seed": seed,
                         "campaign": campaign.model_dump(mode="json"), "records": data.record_ids,
                         "compositions": [sorted(c.items()) for c in data.compositions]},
                        sort_keys=True, default=str).encode())
    for a in (data.process, data.Y, data.fidelity):
        h.update(np.ascontiguousarray(a, dtype=float).tobytes())
    return h.hexdigest()


def current(campaign: CampaignSpec, data: TrainingSet, seed: int) -> CrossValidation | None:
    """The kept cross-validation when it was computed on exactly this campaign and ``data``."""
    try:
        kept = json.loads((campaign.run_dir / FILE_NAME).read_text())
        if kept.get("fingerprint") != fingerprint(campaign, data, seed):
            return None
        return CrossValidation(np.asarray(kept["rows"], dtype=int), np.asarray(kept["mean"], dtype=float),
                               np.asarray(kept["std"], dtype=float))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no file, or one that is damaged: compute anew


def keep_for_report(campaign: CampaignSpec, data: TrainingSet) -> None:
    """Cross-validate ``data`` as the report will (its seed, the campaign's) and keep the answer,
    unless the kept one is current or there are too few rows. Called where a model is fitted
    anyway (a lab batch); a failure here only means the report computes it itself, and says why."""
    if data.fewest < MIN_POINTS or current(campaign, data, campaign.seed) is not None:
        return
    try:
        keep(campaign, data, campaign.seed, cross_validate(campaign, data, seed=campaign.seed))
    except Exception:  # the lab batch must not fail for the report's sake
        return


def keep(campaign: CampaignSpec, data: TrainingSet, seed: int, cv: CrossValidation) -> None:
    """Write ``cv`` with its fingerprint (replaced atomically; a failure only costs speed)."""
    body = {"fingerprint": fingerprint(campaign, data, seed), "rows": cv.rows.tolist(),
            # NaN (a property a row lacks) as null: strict JSON
            "mean": np.where(np.isnan(cv.mean), None, cv.mean).tolist(),
            "std": np.where(np.isnan(cv.std), None, cv.std).tolist()}
    try:
        campaign.run_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=campaign.run_dir, prefix=".cross-validation-")
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh)
        os.replace(tmp, campaign.run_dir / FILE_NAME)
    except OSError:
        pass


def keep_in_background(campaign: CampaignSpec, data: TrainingSet) -> Callable[[], None]:
    """Start ``keep_for_report`` in a forked worker and return the function that waits for it.

    A report that must cross-validate spends ~3 s of CPU importing torch and BoTorch and fitting,
    while it also spends ~2 s importing matplotlib and drawing its other plots; the two are
    independent, so on a machine with a second core the report's wall time becomes the larger of
    the two instead of their sum. The worker only writes the kept file, which ``cross_validation``
    then finds current; if it fails, the caller computes in-process as before, so the answer never
    depends on the worker.

    Forked only where that is safe and useful: more than one core available, a single-threaded
    caller (a portal worker thread runs it in-process) and no torch loaded yet (its thread pools
    are not meant to cross a fork). Elsewhere, and when nothing is to be computed, the returned
    function does nothing.
    """
    if (data.fewest < MIN_POINTS or len(os.sched_getaffinity(0)) < 2 or threading.active_count() > 1
            or "torch" in sys.modules or current(campaign, data, campaign.seed) is not None):
        return lambda: None
    try:
        worker = multiprocessing.get_context("fork").Process(target=keep_for_report, args=(campaign, data),
                                                            name="dm-hpc-cross-validation", daemon=True)
        worker.start()
    except (OSError, ValueError):  # no fork here: the report computes it in-process
        return lambda: None
    return worker.join


def cross_validation(campaign: CampaignSpec, data: TrainingSet, seed: int, remember: bool = True) -> CrossValidation:
    """The cross-validation of ``data``: the kept one when current, else computed (and kept when
    ``remember``; a report on a reader's scoped view does not overwrite the whole campaign's)."""
    cv = current(campaign, data, seed)
    if cv is None:
        cv = cross_validate(campaign, data, seed=seed)
        if remember:
            keep(campaign, data, seed, cv)
    return cv


__all__ = ["CV_FOLDS", "CV_MAX_POINTS", "MIN_POINTS", "CrossValidation", "cross_validate", "cross_validation",
           "current", "fingerprint", "keep", "keep_for_report", "keep_in_background"]
