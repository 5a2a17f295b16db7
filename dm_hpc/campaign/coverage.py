"""The coverage map and the ``dm-hpc gaps`` command: plotting and CLI glue around the gap-filling
planner ``acquire.gaps.GapFilling`` (which only chooses points).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dm_hpc.acquire.points import ProposedPoint
from dm_hpc.acquire.gaps import condition_on, gap_candidates, posterior_covariance
from dm_hpc.acquire.planner import PlanRequest, fresh_points
from dm_hpc.campaign.spec import CampaignError, CampaignSpec
from dm_hpc.data.sheetfiles import write_frame


def _pca(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and the top two principal axes (``2 x D``) of ``coords``."""
    centre = coords.mean(0)
    _, _, vt = np.linalg.svd(coords - centre, full_matrices=False)
    axes = np.zeros((2, coords.shape[1]))
    axes[: min(2, len(vt))] = vt[:2]
    return centre, axes


def _fit(campaign: CampaignSpec, df: pd.DataFrame):
    """``(model or None, training set)`` of ``df`` (None: fewer than two usable records)."""
    from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS, training_set
    from dm_hpc.campaign.strategy import fit_model

    data = training_set(campaign, df)
    return (fit_model(campaign, data).model if data.fewest >= MIN_TRAINING_RECORDS else None), data


def _coverage_std(model, X_grid, extra=None) -> np.ndarray:
    """Normalised predictive std on the grid (RMS over outputs), conditioned on ``extra``
    features (proposals) when given. No model (no data): 1 everywhere."""
    import torch

    if model is None:
        return np.ones(len(X_grid))
    X = X_grid if extra is None else torch.cat([torch.as_tensor(extra), X_grid])
    C, noise = posterior_covariance(model, X)
    n_extra = 0 if extra is None else len(extra)
    for j in range(n_extra):
        C = condition_on(C, noise, j)
    var = np.diagonal(C[:, n_extra:, n_extra:], axis1=1, axis2=2)
    return np.sqrt(np.clip(var, 0, None).mean(0))


def coverage_map(
    campaign: CampaignSpec,
    store_df: pd.DataFrame,
    proposals: list[ProposedPoint],
    out_png: str | Path,
    before_df: pd.DataFrame | None = None,
    seed: int = 0,
    model=None,
) -> Path:
    """Draw data coverage before and after filling the gaps (two panels, one PNG).

    Coordinates are the first two principal components of the design space's element fractions
    (and scaled process parameters); colour is the surrogate's predictive standard deviation, RMS
    over the campaign's properties, each in units of its training standard deviation (1 = knows
    nothing). Points are the measured/computed records and the proposals.

    Args:
        store_df: records (``Store.to_dataframe()``); the "after" data when ``before_df`` is given.
        proposals: the suggested calculations (drawn on both panels).
        before_df: data before the gap-filling calculations ran. When None, "after" is the
            expected coverage once the proposals are computed: the model conditioned on them
            (exact for a GP, since its posterior variance does not depend on the values).
        model: the surrogate already fitted on the "before" data (saves a refit), or None.

    Returns:
        the PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dm_hpc.campaign.strategy import design_space

    space = design_space(campaign)
    rng = np.random.default_rng(seed)
    frac, proc = gap_candidates(space, 1500, rng)
    coords = space.coordinates(frac, proc)
    centre, axes = _pca(coords)
    X_grid = space.featurize(frac, proc if proc.size else None)
    pf, pp = space.from_dicts([(s.composition, s.process) for s in proposals])
    X_prop = space.featurize(pf, pp if pp.size else None) if len(proposals) else None

    if before_df is None:
        if model is None:
            model, data_before = _fit(campaign, store_df)
        else:
            from dm_hpc.campaign.dataset import training_set

            data_before = training_set(campaign, store_df)
        data_after = data_before
        std_before = _coverage_std(model, X_grid)
        std_after = _coverage_std(model, X_grid, extra=X_prop)
        after_title = "after (expected, proposals computed)"
    else:
        model_before, data_before = (model, None) if model is not None else _fit(campaign, before_df)
        if data_before is None:
            from dm_hpc.campaign.dataset import training_set

            data_before = training_set(campaign, before_df)
        model_after, data_after = _fit(campaign, store_df)
        std_before, std_after = _coverage_std(model_before, X_grid), _coverage_std(model_after, X_grid)
        after_title = "after (refitted on the new data)"

    def project(items) -> np.ndarray:
        f, p = space.from_dicts(items)
        return (space.coordinates(f, p) - centre) @ axes.T if len(items) else np.zeros((0, 2))

    grid2 = (coords - centre) @ axes.T
    prop2 = project([(s.composition, s.process) for s in proposals])
    vmax = max(1e-9, float(np.max(np.concatenate([std_before, std_after]))))
    fig, panels = plt.subplots(1, 2, figsize=(12, 5), sharex=True, sharey=True, constrained_layout=True)
    for ax, std, data, title in ((panels[0], std_before, data_before, "before"),
                                 (panels[1], std_after, data_after, after_title)):
        hb = ax.hexbin(grid2[:, 0], grid2[:, 1], C=std, gridsize=28, reduce_C_function=np.mean,
                       cmap="viridis", vmin=0, vmax=vmax)
        pts = project([(c, {}) for c in data.compositions]) if len(data) else np.zeros((0, 2))
        sources = np.array(data.sources) if len(data) else np.array([])
        for src, marker, colour in (("experimental", "o", "white"), ("computed", "s", "orange")):
            sel = sources == src
            if sel.any():
                ax.scatter(pts[sel, 0], pts[sel, 1], marker=marker, s=22, c=colour, edgecolors="k",
                           linewidths=0.6, label=f"{src} ({int(sel.sum())})")
        if len(prop2):
            ax.scatter(prop2[:, 0], prop2[:, 1], marker="*", s=140, c="red", edgecolors="k",
                       linewidths=0.6, label=f"proposed ({len(prop2)})")
        ax.set_title(f"{title}: mean std {std.mean():.2f}")
        ax.set_xlabel("PC1 of composition")
        ax.legend(loc="best", fontsize=8)
    panels[0].set_ylabel("PC2 of composition")
    fig.colorbar(hb, ax=panels, label="predictive std / training std (RMS over properties)")
    fig.suptitle(f"{campaign.name}: data coverage ({', '.join(campaign.properties)})")
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def gaps_command(store_path: str | Path, campaign_path: str | Path, n: int, out_dir: str | Path,
                 seed: int | None = None) -> tuple[list[ProposedPoint], Path]:
    """``dm-hpc gaps STORE --space CAMPAIGN -n N``: propose ``N`` gap-filling calculations.

    Reads every record of ``STORE`` (any campaign; experimental records count as the campaign's
    lab fidelity, computed ones as the calculation fidelity of their method), fits the campaign's
    surrogate, proposes ``N`` calculations where its uncertainty per core-hour is highest and
    spread over ``CAMPAIGN``'s design space, and draws ``OUT_DIR/coverage.png`` (before / after).
    Also writes ``OUT_DIR/gaps.csv`` (one row per proposal: fidelity, composition, predicted
    mean and std in canonical units). The store is only read.

    Raises:
        CampaignError: bad campaign file, missing store, or ``n < 1``.
    """
    from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS, training_set
    from dm_hpc.campaign.realise import realiser, stored_keys
    from dm_hpc.campaign.spec import load_campaign
    from dm_hpc.campaign.strategy import fit_model, gap_filling
    from dm_hpc.data import Store, StoreError

    if n < 1:  # the count is no fact of the campaign file: the error names no file
        raise CampaignError(f"n must be at least 1, got {n}")
    campaign = load_campaign(campaign_path)
    try:
        store = Store.open(store_path, "r")
    except StoreError as exc:  # a StoreError names its store already
        raise CampaignError(str(exc)) from None
    try:
        df = store.to_dataframe()
    finally:
        store.close()
    data = training_set(campaign, df)
    planner = gap_filling(campaign)
    space = planner.space
    fitted = fit_model(campaign, data) if data.fewest >= MIN_TRAINING_RECORDS else None
    seed = campaign.seed if seed is None else seed
    # realised cells not yet in the store: a suggestion is a calculation that would add data
    suggestions = fresh_points(planner, PlanRequest(n, fitted, [], list(planner.costs), seed), realiser(campaign),
                               stored_keys(campaign, df)).points
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in suggestions:
        row: dict[str, Any] = {"fidelity": s.fidelity}
        row.update({f"x_{el}": s.composition.get(el, 0.0) for el in space.element_names})
        row.update({f"process:{k}": v for k, v in s.process.items()})
        for p in campaign.properties:
            row[f"predicted:{p}"] = s.predicted.get("mean", {}).get(p)
            row[f"predicted_std:{p}"] = s.predicted.get("std", {}).get(p)
        rows.append(row)
    write_frame(pd.DataFrame(rows), out_dir / "gaps.csv")  # fidelity names are user text: no formulas
    png = coverage_map(campaign, df, suggestions, out_dir / "coverage.png", seed=seed,
                       model=fitted.model if fitted is not None else None)
    return suggestions, png
