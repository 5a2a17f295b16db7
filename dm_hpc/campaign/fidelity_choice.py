"""The report's evidence for how computed values predict measured ones (issue 23 §2).

For each objective and each calculation fidelity of the campaign, the compositions with a computed
value are the items, and the lab's measurements of the same compositions (mean of replicates; a
calculation knows no process route, so measurements pair by composition alone) are the measured
values. ``learn.multifidelity.fit_multifidelity(kind="auto")`` chooses among "measured = computed",
a linear calibration and the GPs by repeated cross-validation; the report tables every candidate's
CV RMSE with the standard error of its difference to the best, and which ones the rule averaged.

The campaign's proposals do not use this fit: they use the multi-task GP over all fidelities
(``learn.fitted.fit_fidelity_surrogate``), because choosing which fidelity to run next needs a
joint model that predicts the computed and the measured value of compositions where neither is
known yet, while every candidate here needs the computed value of each composition it predicts.
The section says so, and its multi-task row is that model family judged by the same evidence.
"""
from __future__ import annotations

import numpy as np

from dm_hpc.campaign.dataset import TrainingSet
from dm_hpc.campaign.labsheet import lab_properties
from dm_hpc.campaign.spec import CampaignSpec, FidelityKind


def _key(comp: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((el, round(float(x), 6)) for el, x in comp.items() if x > 0))


def paired_items(data: TrainingSet, j: int, calc: int, lab: int
                 ) -> tuple[list[dict[str, float]], np.ndarray, np.ndarray, np.ndarray]:
    """Compositions with a computed value of property ``j`` at fidelity ``calc``, their process rows
    (``n x P``, the calculation's), their computed values and the lab's measured values (NaN where
    not measured), each averaged over replicates."""
    comps: dict[tuple, dict[str, float]] = {}
    rows: dict[tuple, np.ndarray] = {}
    cheap: dict[tuple, list[float]] = {}
    meas: dict[tuple, list[float]] = {}
    for comp, proc, y, f in zip(data.compositions, data.process, data.Y[:, j], data.fidelity):
        if not np.isfinite(y):
            continue
        k = _key(comp)
        if f == calc:
            comps.setdefault(k, comp)
            rows.setdefault(k, proc)
            cheap.setdefault(k, []).append(float(y))
        elif f == lab:
            meas.setdefault(k, []).append(float(y))
    keys = list(cheap)
    process = np.array([rows[k] for k in keys]).reshape(len(keys), data.process.shape[1])
    return ([comps[k] for k in keys], process, np.array([np.mean(cheap[k]) for k in keys]),
            np.array([np.mean(meas[k]) if k in meas else np.nan for k in keys]))


def fidelity_choice_lines(campaign: CampaignSpec, data: TrainingSet) -> list[str]:
    """Markdown lines of the report's section (empty when the campaign has no calculation and lab pair)."""
    labs = [i for i, f in enumerate(campaign.fidelities) if f.kind == FidelityKind.experiment]
    calcs = [i for i, f in enumerate(campaign.fidelities) if f.kind == FidelityKind.calculation]
    if not labs or not calcs or len(data) == 0:
        return []  # before the imports: a lab-only campaign's report needs no torch
    import torch

    from dm_hpc.campaign.strategy import design_space
    from dm_hpc.learn.features import composition_matrix
    from dm_hpc.learn.multifidelity import CV_FOLDS, CV_REPEATS, KINDS, fit_multifidelity

    space = design_space(campaign)
    md = ["## Measured values from computed ones", "",
          f"Candidates scored by {CV_REPEATS} x {CV_FOLDS}-fold cross-validation on the compositions with both a "
          "computed and a measured value; the chosen model is the average of the candidates within one standard "
          "error of the best (`dm_hpc.learn.multifidelity`). This is evidence, not the proposals' model: proposals "
          "come from the campaign's multi-task GP over all fidelities (the `multitask` row is that model family), "
          "since choosing which fidelity to run next needs predictions where no value is computed yet.", ""]
    asked = set(lab_properties(campaign))
    # an objective the lab never measures (a cost computed from the composition) has no measured
    # value to predict: no number of samples would make its choice
    for o in (o for o in campaign.objectives if o.property in asked):
        j = campaign.properties.index(o.property)
        unit = o.shown_unit  # as the campaign file writes it, as every other table of the report; fits stay canonical
        for calc in calcs:
            name = campaign.fidelities[calc].name
            comps, process, cheap, measured = paired_items(data, j, calc, labs[0])
            n_both = int(np.isfinite(measured).sum())
            if n_both < 2 * CV_FOLDS:
                md += [f"- {o.property} from {name}: {n_both} composition(s) with both values; "
                       f"the choice needs {2 * CV_FOLDS}.", ""]
                continue
            X = space.featurize(composition_matrix(comps, space.element_names), process)
            fit = fit_multifidelity(X, torch.as_tensor(cheap), torch.as_tensor(measured), seed=campaign.seed)
            md += [f"{o.property} [{unit}] from {name} ({len(comps)} computed, {n_both} also measured): "
                   f"chosen **{fit.kind}**" + (" (their average)." if len(fit.members) > 1 else "."), "",
                   f"| candidate | CV RMSE [{unit}] | minus the best, ± its standard error | |", "|---|---:|---:|---|"]
            spread = o.shown_spread  # an RMSE and a difference of two: the unit's scale, no offset
            for k in KINDS:
                mark = ", ".join(m for m, on in (("chosen", k in fit.members), ("lowest CV", k == fit.best)) if on)
                gap = fit.cv_rmse[k] - fit.cv_rmse[fit.best]
                md.append(f"| {k} | {spread(fit.cv_rmse[k]):.4g} | {'+' if gap >= 0 else '-'}{spread(gap):.3g} "
                          f"± {spread(fit.cv_se[k]):.2g} | {mark} |")
            md.append("")
    return md


__all__ = ["fidelity_choice_lines", "paired_items"]
