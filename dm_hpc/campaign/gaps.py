"""Gap filling: calculations where the existing data (e.g. a lab's measurements) is thinnest.

The plan's "blank data that experiments cannot reach", filled by computation. From a surrogate
fitted on the data that exists, choose calculations with the most predictive uncertainty removed
per core-hour, spread over the design space, and draw a coverage map before and after.

Selection (``gap_suggestions``): greedy integrated variance reduction with exact GP conditioning.
A GP's posterior covariance after observing a point does not depend on the value observed, so the
"fantasised" update of each greedy step is exact and needs no sampled outcomes:
``C <- C - C[:, j] C[j, :] / (C[j, j] + noise)``. A candidate's score is the variance it removes
summed over all candidates (``sum_r C[r, j]^2 / (C[j, j] + noise)``), per output normalised by the
output's prior variance, divided by its fidelity's cost. Scoring the variance *removed over the
space* rather than the candidate's own variance is what spreads the batch: after a pick, its
neighbours' covariance with the rest collapses, so the next pick lands in another thin region;
and an isolated corner point, which would teach nothing about its surroundings, is not favoured
merely for being far away. Pending points (calculations in flight) are conditioned on first. A
max-min distance floor (``MIN_SEPARATION``) guards against near-duplicates when a fitted length
scale is so long that the covariance barely separates neighbours, or where the descriptor
features are steep (next to the pure elements). Without a model (no data yet)
the prior is uninformative and the selection falls back to farthest-point sampling.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dm_hpc.campaign.spec import CampaignSpec, CampaignError
from dm_hpc.acquire.points import ProposedPoint
from dm_hpc.campaign.strategy import fidelity_costs

#: Random feasible candidates scored per call (an N x N covariance per output: 1024 keeps it < 1 s).
N_CANDIDATES = 1024
#: Minimum Euclidean distance, in atomic-fraction (and [0, 1]-scaled process) space, between two
#: proposals or a proposal and a pending point. Needed beyond the covariance because the model's
#: features include descriptors (mixing entropy, spreads) that are steep near the pure elements:
#: Pd and Pd0.94Cu0.06 are far apart for the GP but next to each other for a chemist.
MIN_SEPARATION = 0.1
#: Relative nugget added to every observation variance (numerical safety of the rank-1 updates).
JITTER = 1e-6


def _coords(space, fractions: np.ndarray, process: np.ndarray) -> np.ndarray:
    """``n x (E + P)`` plain coordinates: fractions and process scaled to [0, 1] by its bounds."""
    if not space.process or process is None or not process.size:
        return np.asarray(fractions, float)
    lo = np.array([b[0] for b in space.process.values()])
    hi = np.array([b[1] for b in space.process.values()])
    return np.hstack([fractions, (process - lo) / np.where(hi > lo, hi - lo, 1.0)])


def _points(space, items: list[tuple[dict[str, float], dict[str, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """``(composition, process)`` dicts -> ``(n x E fractions, n x P process)``."""
    from dm_hpc.learn.features import composition_matrix

    names = space.element_names
    comps = [{e: f for e, f in c.items() if e in names} for c, _ in items]
    frac = composition_matrix(comps, names) if items else np.zeros((0, len(names)))
    proc = np.array([[float(p.get(k, 0.5 * sum(space.process[k]))) for k in space.process] for _, p in items])
    return frac, proc.reshape(len(items), len(space.process))


def posterior_covariance(model, X) -> tuple[np.ndarray, np.ndarray]:
    """Joint posterior covariance per output, normalised by the output's prior variance.

    Args:
        model: a surrogate from ``dm_hpc.learn`` (exact GP, multi-task GP, deep ensemble).
        X: ``N x d`` features (``space.featurize``).

    Returns:
        ``(C, noise)``: ``m x N x N`` covariance and ``m`` observation-noise variances, both in
        units of each output's training variance (so outputs in eV/atom and USD/kg add up).
    """
    import torch

    from dm_hpc.learn import surrogate_kind

    X = torch.as_tensor(X, dtype=torch.double)
    kind = surrogate_kind(model)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "ensemble":
            # the members' spread is the uncertainty; their sample covariance is low rank (S)
            # but conditioning on it still removes variance where members agree to disagree
            vals = model.posterior(X).values  # (batch x) S x N x m
            vals = vals.reshape(-1, *vals.shape[-2:])
            dev = (vals - vals.mean(0, keepdim=True)).permute(2, 1, 0)  # m x N x S
            C = dev @ dev.transpose(-1, -2) / max(1, vals.shape[0] - 1)
            noise = torch.full((C.shape[0],), JITTER, dtype=torch.double)
        elif kind == "gp":
            # the GP itself on transformed inputs, as BoTorch's posterior() does, but stopping
            # before the outcome untransform: covariances are then already in units of each
            # output's training variance (Standardize), and the likelihood noise too
            m = model.num_outputs
            Xt = model.transform_inputs(X)
            mvn = model(Xt.unsqueeze(-3) if m > 1 else Xt)
            C = mvn.covariance_matrix.reshape(m, len(X), len(X))
            noise = model.likelihood.noise.detach().reshape(m, -1)[:, 0]
            return C.numpy(), (noise + JITTER).numpy()
        else:  # multi-task GP: one output (the target fidelity)
            post = model.posterior(X)
            C = post.mvn.covariance_matrix.reshape(1, len(X), len(X))
            with_noise = model.posterior(X[:1], observation_noise=True).variance.reshape(-1)
            noise = (with_noise - post.variance[:1].reshape(-1)).clamp_min(0)[:1]
        scale = _output_variance(model, C)
    C = C / scale[:, None, None]
    noise = noise / scale + JITTER
    return C.numpy(), noise.numpy()


def _output_variance(model, C) -> Any:
    """Training variance per output (falls back to the largest predictive variance)."""
    import torch

    tf = getattr(model, "outcome_transform", None)
    stdvs = getattr(tf, "stdvs", None)
    if stdvs is not None and stdvs.numel() == C.shape[0]:
        return (stdvs.reshape(-1) ** 2).clamp_min(1e-12)
    y_std = getattr(model, "y_std", None)
    if y_std is not None and torch.as_tensor(y_std).numel() == C.shape[0]:
        return (torch.as_tensor(y_std, dtype=torch.double).reshape(-1) ** 2).clamp_min(1e-12)
    return torch.diagonal(C, dim1=-2, dim2=-1).amax(-1).clamp_min(1e-12)


def _condition(C: np.ndarray, noise: np.ndarray, j: int) -> np.ndarray:
    """Posterior covariance after observing point ``j`` (exact for a GP; value-independent)."""
    col = C[:, :, j]  # m x N
    return C - col[:, :, None] * col[:, None, :] / (C[:, j, j] + noise)[:, None, None]


def _candidates(space, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random feasible points, or (a random subset of at most ``n`` of) the pool."""
    frac, proc = space.candidates(n, rng)
    if len(frac) > n:  # a large pool: the covariance is N x N, so score a random subset
        keep = np.sort(rng.choice(len(frac), n, replace=False))
        frac, proc = frac[keep], proc[keep]
    return frac, proc


def _farthest_points(coords: np.ndarray, taken: np.ndarray, q: int, rng: np.random.Generator) -> list[int]:
    """Greedy max-min distance selection (the no-model fallback)."""
    chosen: list[int] = []
    if len(taken):
        dmin = np.linalg.norm(coords[:, None, :] - taken[None, :, :], axis=-1).min(1)
    else:
        dmin = np.full(len(coords), np.inf)
    for _ in range(q):
        j = int(rng.integers(len(coords))) if np.isinf(dmin).all() else int(np.argmax(dmin))
        chosen.append(j)
        dmin = np.minimum(dmin, np.linalg.norm(coords - coords[j], axis=1))
    return chosen


def gap_suggestions(
    campaign: CampaignSpec,
    model,
    space,
    q: int,
    pending: list[tuple[dict[str, float], dict[str, float]]] | None = None,
    seed: int = 0,
    n_candidates: int = N_CANDIDATES,
) -> list[ProposedPoint]:
    """``q`` calculations where the data is thinnest, spread over the space (see module doc).

    Args:
        campaign: gives the properties (model outputs) and the calculation fidelities with costs.
        model: surrogate on ``space.featurize`` features with ``len(campaign.properties)`` outputs
            (from ``strategy.fit_model``), or None when there is no data: space-filling then.
        space: the ``DesignSpace`` (``strategy.design_space``).
        q: number of proposals.
        pending: ``(composition, process)`` of calculations in flight or already proposed.
        seed: candidate sampling seed.

    Returns:
        ``q`` suggestions (cheapest calculation fidelity per unit of variance removed), each with
        ``predicted = {"mean", "std"}`` per property (canonical units) and ``"variance_reduction"``
        (summed normalised variance removed over the candidates) and ``"gain_per_cost"``
        (per core-hour).
    """
    from dm_hpc.learn import predict

    rng = np.random.default_rng(seed)
    props = campaign.properties
    costs = fidelity_costs(campaign)
    fid = min(campaign.calculations, key=lambda f: costs[f.name])  # a single-task model cannot tell
    cost = max(costs[fid.name], 1e-12)                                 # fidelities apart: cheapest wins
    frac, proc = _candidates(space, n_candidates, rng)
    pend_frac, pend_proc = _points(space, list(pending or []))
    coords = _coords(space, frac, proc)
    taken = _coords(space, pend_frac, pend_proc)
    separation = MIN_SEPARATION
    if space.pool is not None:
        # a pool's neighbours may sit closer than the floor: keep it below their typical spacing
        # (pending pool points themselves are still excluded: they are at distance ~0)
        d = np.linalg.norm(coords[:, None, :] - coords[None, :, :], axis=-1)
        np.fill_diagonal(d, np.inf)
        separation = min(MIN_SEPARATION, 0.5 * float(np.median(d.min(1)))) if len(coords) > 1 else 0.0
        separation = max(separation, 1e-6)
    q = min(q, len(frac))

    if model is None:
        idx = _farthest_points(coords, taken, q, rng)
        return [ProposedPoint(fid.name, c, p, {"mean": {}, "std": {}})
                for c, p in space.to_dicts(frac[idx], proc[idx])]

    X_all = space.featurize(np.vstack([pend_frac, frac]), np.vstack([pend_proc, proc]) if proc.size else None)
    C, noise = posterior_covariance(model, X_all)
    n_pend = len(pend_frac)
    for j in range(n_pend):  # in-flight points will remove their share of uncertainty anyway
        C = _condition(C, noise, j)
    C = C[:, n_pend:, n_pend:]
    dmin = (np.linalg.norm(coords[:, None, :] - taken[None, :, :], axis=-1).min(1)
            if len(taken) else np.full(len(coords), np.inf))
    chosen: list[int] = []
    gains: list[float] = []
    for _ in range(q):
        diag = np.diagonal(C, axis1=1, axis2=2)  # m x N
        reduction = ((C ** 2).sum(1) / (diag + noise[:, None])).sum(0)  # N
        allowed = dmin >= separation
        if not allowed.any():  # space exhausted at this separation: fall back to the best left
            allowed = np.ones(len(coords), bool)
            allowed[chosen] = False
        j = int(np.argmax(np.where(allowed, reduction, -np.inf)))
        chosen.append(j)
        gains.append(float(reduction[j]))
        C = _condition(C, noise, j)
        dmin = np.minimum(dmin, np.linalg.norm(coords - coords[j], axis=1))

    mean, std = predict(model, space.featurize(frac[chosen], proc[chosen] if proc.size else None))
    out = []
    for k, (comp, pr) in enumerate(space.to_dicts(frac[chosen], proc[chosen])):
        out.append(ProposedPoint(fid.name, comp, pr, {
            "mean": {p: float(mean[k, i]) for i, p in enumerate(props)},
            "std": {p: float(std[k, i]) for i, p in enumerate(props)},
            "variance_reduction": gains[k],
            "gain_per_cost": {fid.name: gains[k] / cost},
        }))
    return out


# ---------------------------------------------------------------------------------- coverage map
def _pca(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and the top two principal axes (``2 x D``) of ``coords``."""
    centre = coords.mean(0)
    _, _, vt = np.linalg.svd(coords - centre, full_matrices=False)
    axes = np.zeros((2, coords.shape[1]))
    axes[: min(2, len(vt))] = vt[:2]
    return centre, axes


def _fit(campaign: CampaignSpec, df: pd.DataFrame):
    """``(model or None, training set)`` of ``df`` (None: fewer than two usable records)."""
    from dm_hpc.campaign.dataset import training_set
    from dm_hpc.campaign.strategy import fit_model

    data = training_set(campaign, df)
    return (fit_model(campaign, data).model if len(data) >= 2 else None), data


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
        C = _condition(C, noise, j)
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
    frac, proc = _candidates(space, 1500, rng)
    coords = _coords(space, frac, proc)
    centre, axes = _pca(coords)
    X_grid = space.featurize(frac, proc if proc.size else None)
    pf, pp = _points(space, [(s.composition, s.process) for s in proposals])
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
        f, p = _points(space, items)
        return (_coords(space, f, p) - centre) @ axes.T if len(items) else np.zeros((0, 2))

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
    from dm_hpc.campaign.dataset import training_set
    from dm_hpc.campaign.spec import load_campaign
    from dm_hpc.campaign.strategy import design_space, fit_model
    from dm_hpc.data import Store, StoreError

    campaign = load_campaign(campaign_path)
    if n < 1:
        raise CampaignError(f"{campaign_path}: -n must be at least 1, got {n}")
    try:
        store = Store.open(store_path, "r")
    except StoreError as exc:
        raise CampaignError(f"{store_path}: {exc}") from None
    try:
        df = store.to_dataframe()
    finally:
        store.close()
    data = training_set(campaign, df)
    space = design_space(campaign)
    model = fit_model(campaign, data).model if len(data) >= 2 else None
    seed = campaign.seed if seed is None else seed
    suggestions = gap_suggestions(campaign, model, space, n, [], seed)
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
    pd.DataFrame(rows).to_csv(out_dir / "gaps.csv", index=False)
    png = coverage_map(campaign, df, suggestions, out_dir / "coverage.png", seed=seed, model=model)
    return suggestions, png
