"""Transfer sources seen from outside the loop: ``suggest_sources`` ranks what the store holds for
``dm-hpc transfer suggest``; ``transfer_lines`` is the report's section with each source's weight and what the sources were worth
(``gain``); ``replay`` gives best-so-far with and without transfer (``report.plot_replay`` draws it).
Which records a source takes is ``dataset.source_rows`` (beside the campaign's own training set).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dm_hpc.campaign.spec import CampaignSpec, Goal


def suggest_sources(campaign: CampaignSpec, df: pd.DataFrame) -> pd.DataFrame:
    """Groups of store records (by campaign, else method) that hold the campaign's objective property,
    with their overlap: shared elements, shared process parameters and the record count.

    Rows sorted by shared elements then records; the campaign's own records are not proposed."""
    from dm_hpc.campaign.strategy import design_space

    prop = campaign.objectives[0].property
    mine = set(design_space(campaign).element_names)
    pnames = set(campaign.space.process)
    if df.empty or prop not in df.columns:
        return pd.DataFrame()
    df = df[df[prop].notna() & (df["campaign"].fillna("") != campaign.name)]
    x_cols = [c for c in df.columns if c.startswith("x_")]
    rows = []
    filed = df["campaign"].fillna("").astype(str) != ""  # records filed under a campaign, else by method
    groups = [("campaign", v, g) for v, g in df[filed].groupby("campaign")]
    groups += [("method", v, g) for v, g in df[~filed].groupby("method")]
    for by, value, group in groups:
        els = {c[2:] for c in x_cols if (group[c].fillna(0) > 0).any()}
        procs = {c.split(":", 1)[1] for c in group.columns if c.startswith("process.") and group[c].notna().any()}
        shared, other = sorted(els & mine), sorted(els - mine)
        rows.append({"select": f"{by}: {value}", "records": len(group), "source": ",".join(sorted(set(group["source"]))),
                     "shared elements": f"{len(shared)} of {len(mine)}", "other elements": f"{len(other)}",
                     "shared process": ",".join(sorted(procs & pnames)) or "-",
                     "elements": ",".join(shared) + (f" (+ {','.join(other)})" if other else ""),
                     "_n_shared": len(shared) + len(procs & pnames)})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = out[out["_n_shared"] > 0].sort_values(["_n_shared", "records"], ascending=False)
    return out.drop(columns="_n_shared").reset_index(drop=True)


def withheld_sources(campaign: CampaignSpec, clearance) -> tuple[CampaignSpec, list[str]]:
    """``campaign`` as a caller with ``clearance`` (``data.access.AccessLevel``) may be served it,
    and the names of the transfer sources left out for access: a model file holding records above
    the clearance (``standard.highest_level`` of its provenance, its chain included; one that cannot
    be read counts as holding embargoed ones). The decision is ``registry.may_read``, the rank rule
    by which the portal scopes store records (``AccessMap.scope``) and serves registered versions,
    so a reader is never served a model that learned from records they may not read. A store
    source's records are scoped with the store's (the portal's view); a table's rows carry no level."""
    if campaign.transfer is None or clearance is None or all(s.model is None for s in campaign.transfer.from_):
        return campaign, []  # before the imports: a report without model sources fits and imports no model
    from dm_hpc.campaign.registry import may_read
    from dm_hpc.campaign.standard import ModelFileError, highest_level, load_model_file

    kept, withheld = [], []
    for s in campaign.transfer.from_:
        if s.model is not None:
            try:
                level = highest_level(load_model_file(s.model).provenance)
            except ModelFileError:
                level = None
            if level is None or not may_read(level, clearance):
                withheld.append(s.name)
                continue
        kept.append(s)
    if not withheld:
        return campaign, []
    transfer = campaign.transfer.model_copy(update={"from_": kept}) if kept else None
    return campaign.model_copy(update={"transfer": transfer}), withheld


def withheld_line(n: int) -> str:
    """What a reader is told of ``n`` sources left out for access (``withheld_sources``): that they
    were, never which file or what it holds."""
    return (f"{n} transfer source{'s' if n != 1 else ''} left out: {'they hold' if n != 1 else 'it holds'} "
            "records above your clearance; the model here learns without " + ("them" if n != 1 else "it"))


def transfer_model(campaign: CampaignSpec, data):
    """The campaign's model when transfer sources enter it (a ``learn.fitted.FittedSurrogate`` whose
    ``transfer`` holds the ``TransferFit``); None without sources or with too few own records."""
    from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS
    from dm_hpc.campaign.strategy import fit_model

    if campaign.transfer is None or data.fewest < MIN_TRAINING_RECORDS:
        return None
    fitted = fit_model(campaign, data)
    return fitted if getattr(fitted, "transfer", None) else None


def design_inputs(campaign: CampaignSpec, df: pd.DataFrame):
    """What inverse design (``acquire.design.design``'s ``space`` and ``models``) takes from a
    campaign that transfers: its design space and its model with sources for its objective
    property; None when no source enters the campaign's model (design then fits its own)."""
    from dm_hpc.campaign.dataset import training_set

    fitted = transfer_model(campaign, training_set(campaign, df))
    if fitted is None:
        return None
    return fitted.space, {campaign.objectives[0].property: fitted.model}


def gain(info: dict) -> dict[str, float]:
    """What the sources were worth on the campaign's own records: leave-one-out RMSE and log
    predictive density of the cold model (own data only) and of the model used, and the RMSE ratio
    cold / used (> 1: the sources helped; 1: the guard chose cold)."""
    kind = info["kind"]
    cold_rmse, used_rmse = info["loo_rmse"].get("cold", float("nan")), info["loo_rmse"][kind]
    return {"cold_rmse": cold_rmse, "used_rmse": used_rmse, "cold_loo": info["loo"].get("cold", float("nan")),
            "used_loo": info["loo"][kind], "rmse_ratio": cold_rmse / used_rmse if used_rmse > 0 else float("nan")}


def source_worth(info: dict, seed: int = 0) -> dict[str, tuple[str, float]]:
    """Each source alone (with two or more sources): the guarded model fitted with that source only
    (``fit_transfer(kind="auto")``) on the same own records, as ``{source: (kind chosen, LOO RMSE)}``;
    empty with one source (the table above says it)."""
    from dm_hpc.learn.transfer import fit_transfer

    tables = info.get("tables") or []
    if len(tables) < 2:
        return {}
    target = info["fit"].fit_data["target"]
    out = {}
    for t in tables:
        alone = fit_transfer(target["X"], target["y"], [t], bounds=target["bounds"], seed=seed)
        out[t.name] = (alone.kind, alone.loo_rmse[alone.kind])
    return out


def model_source_lines(data) -> list[str]:
    """One line per model-file source: where the model comes from (its provenance)."""
    out = []
    for s in data.transfer:
        if s.model is None:
            continue
        p = s.model.provenance
        rec = p.get("records") or {}
        chain = len(p.get("derived_from") or [])
        out.append(f"- {s.name}: model file `{s.model.path.name}` (sha256 {s.model.sha256[:12]}), "
                   f"{p.get('kind')} of campaign {p.get('campaign')}{' ' + p['version'] if p.get('version') else ''}, "
                   f"{p.get('model_kind')}, trained on {rec.get('trained_on')} records (ids sha256 "
                   f"{str(rec.get('sha256'))[:12]}), engine {p.get('engine_version')}"
                   + (f", itself derived from {chain} model file(s)" if chain else ""))
    return out


_UNFITTED = object()


def transfer_lines(campaign: CampaignSpec, data, fitted=_UNFITTED) -> list[str]:
    """The report's "Transfer" section: each source's records and weight in the model fitted on the
    campaign's data now, the leave-one-out evidence behind the choice and the gain over cold.
    ``fitted``: ``transfer_model``'s answer, when the caller has it (None included)."""
    if campaign.transfer is None:
        return []
    from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS, own_in_model

    md = ["## Transfer", ""]
    fitted = transfer_model(campaign, data) if fitted is _UNFITTED else fitted
    info = getattr(fitted, "transfer", None) or {}
    weights = info.get("weights", {})
    md += ["| source | records used | left out | weight |", "|---|---:|---|---:|"]
    # a model file trained on the campaign's own records is left out of its model (``strategy.fit_model``)
    seen = {s.name: own_in_model(s.model, data.record_ids) if s.model is not None else 0 for s in data.transfer}
    for s in data.transfer:
        # records with elements outside the design space enter the source's own model (the prior
        # kind's); only the multi-task GP, on the campaign's features, has no column for them
        outside = info.get("outside_space", {}).get(s.name, 0) if info.get("kind") == "multitask" else 0
        skipped = {**s.skipped, "elements outside the design space": outside,
                   "trained on the campaign's own records": seen[s.name]}
        w = f"{weights[s.name]:.3f}" if s.name in weights else "-"
        # the rows the chosen model learns from (a subsample of a large source); none without a model
        points = info.get("source_points", {})
        inside = len(s.y) - outside
        # a multi-task source with fewer than two records inside the space learns from its model's
        # predictions at design draws (``strategy._records_source``): those are no records
        real = not (info.get("kind") == "multitask" and inside < 2)
        used = ("-" if not info else "model" if s.model is not None
                else points[s.name] if points.get(s.name) is not None and real else inside)
        if info.get("kind") not in (None, "cold") and s.model is None and isinstance(used, int) and used < inside:
            skipped["subsampled away"] = inside - used
        left = ", ".join(f"{k}: {v}" for k, v in skipped.items() if v) or "-"
        md.append(f"| {s.name} ({s.property}) | {used} | {left} | {w} |")
    md.append("")
    from dm_hpc.campaign.dataset import mixed_sources

    mixed = mixed_sources(data.transfer)
    if mixed:  # the fidelities keep calculations and measurements apart: a source that mixes them is said
        md += [f"Source(s) mixing computed and experimental records in one task: {', '.join(mixed)} (no `source:` "
               "filter): the campaign's fidelities keep calculations and measurements apart, this source does not.", ""]
    models = model_source_lines(data)
    if models:
        md += ["Model sources (standard models):", "", *models, ""]
    empty = [f"{s.name} ({s.property})" for s in data.transfer if s.model is None and not len(s.y)]
    if empty:  # said first: a source without records cannot enter the model, whatever else holds
        alone = len(empty) == len(data.transfer)
        md += [f"Source(s) that matched no records holding their property: {', '.join(empty)} (check the "
               "filters; `dm-hpc transfer suggest` lists the store's sources)."
               + (" The model learns from the campaign's own records alone." if alone else ""), ""]
        if alone:
            return md
    if not info and all(seen[s.name] for s in data.transfer):
        md += ["No source enters the model: each was trained on the campaign's own records (`dm-hpc validate` "
               "names them).", ""]
        return md
    if not info and data.fewest >= MIN_TRAINING_RECORDS:
        md += ["The sources do not enter the model: transfer needs a campaign with one property measured at "
               "one fidelity. A store source's records then count as the campaign's own where their method is "
               "one of its fidelities', as without the transfer block.", ""]
        return md
    if not info:
        md += [f"No model with sources yet ({len(data)} own record(s); transfer starts at {MIN_TRAINING_RECORDS}, for a "
               "campaign with one property measured at one fidelity).", ""]
        return md
    loo = ", ".join(f"{k} {v:.3f}" for k, v in info["loo"].items())
    md += [f"Model: **{info['kind']}** (cold = the campaign's own data only; multitask = each source a task of a "
           "multi-task GP, weight = its learned correlation with the campaign; prior = the source model as the "
           "prior mean, weight = its fitted slope, negative where the campaign's values run against the "
           "source's). Leave-one-out log predictive density per own record "
           f"(higher is better): {loo}. Sources are used only when they score above cold.", ""]
    g = gain(info)
    o = campaign.objectives[0]
    unit, rmse_shown = o.shown_unit, o.shown_spread  # the campaign file's unit (the fits are canonical)
    md += ["What the sources were worth (leave-one-out on the campaign's own records):", "",
           "| model | LOO RMSE | LOO log density |", "|---|---:|---:|",
           f"| without sources (cold) | {rmse_shown(g['cold_rmse']):.4g} {unit} | {g['cold_loo']:.3f} |",
           f"| used ({info['kind']}) | {rmse_shown(g['used_rmse']):.4g} {unit} | {g['used_loo']:.3f} |", "",
           f"Gain: the cold model's LOO RMSE is {g['rmse_ratio']:.2f}x the model's used.", ""]
    alone = source_worth(info, campaign.seed)
    if alone:
        md += ["Each source alone (the guarded model with that source only):", "",
               "| source | model chosen | LOO RMSE |", "|---|---|---:|",
               *[f"| {name} | {kind} | {rmse_shown(rmse):.4g} {unit} |" for name, (kind, rmse) in alone.items()], ""]
    return md


#: the replay's steps at most: each refits a cold GP and the guarded transfer model (about 1.9 CPU s
#: a step on 24 own records with one model source, so 20 steps add ~40 CPU s to a report)
REPLAY_MAX_STEPS = 20


def replay(campaign: CampaignSpec, data, fitted, max_steps: int = REPLAY_MAX_STEPS) -> dict[str, np.ndarray]:
    """Best-so-far with and without transfer, replayed on the campaign's own measured records.

    The campaign's records in the order they were stored are the only candidates (their values are
    known, so no experiment is invented). Both runs start from the same first
    ``learning.initial_points`` records; then, step by step, each picks the not-yet-revealed record
    its model predicts best (posterior mean, the goal's direction) and reveals its value: "cold"
    refits a GP on the revealed records alone (the candidate ``fit_transfer`` calls cold), "transfer"
    refits the guarded transfer model (``fit_transfer(kind="auto")``: the sources, weight 0 when they
    do not help on the revealed records). At most ``max_steps`` steps (the rest of the curve is not
    drawn). Returns ``{"cold": best_so_far, "transfer": best_so_far}``, each of length
    ``initial + steps``, in the objective's units.
    """
    import torch

    from dm_hpc.learn.transfer import fit_transfer

    info = fitted.transfer
    fit = info["fit"]
    tables = info["tables"]
    X, y = fit.fit_data["target"]["X"], fit.fit_data["target"]["y"]
    sign = 1.0 if campaign.objectives[0].goal == Goal.max else -1.0
    n = len(y)
    start = min(max(2, campaign.learning.initial_points), n)
    curves = {}
    for mode in ("cold", "transfer"):
        seen = list(range(start))
        prev = None
        while len(seen) < min(n, start + max_steps):
            rest = [i for i in range(n) if i not in seen]
            got = fit_transfer(X[seen], y[seen], tables, kind="cold" if mode == "cold" else "auto",
                               bounds=fit.fit_data["target"]["bounds"], warm_start=prev, seed=campaign.seed)
            prev = got
            with torch.no_grad():
                mu = got.model.posterior(X[rest]).mean.reshape(-1)
            seen.append(rest[int(torch.argmax(sign * mu))])
        vals = sign * y[seen].numpy()
        curves[mode] = sign * np.maximum.accumulate(vals)
    return curves


def replay_lines(campaign: CampaignSpec, curves: dict[str, np.ndarray]) -> list[str]:
    """The replay in words: experiments each run needed to reach the best value of the records."""
    best = max(curves["cold"][-1], curves["transfer"][-1]) if campaign.objectives[0].goal == Goal.max else \
        min(curves["cold"][-1], curves["transfer"][-1])

    def reached(c):
        hit = np.flatnonzero(np.isclose(c, best))
        return int(hit[0]) + 1 if hit.size else None

    r = {k: reached(v) for k, v in curves.items()}
    said = {k: (f"{v}" if v is not None else f"not within {len(curves[k])}") for k, v in r.items()}
    o = campaign.objectives[0]  # the fits are canonical; said in the campaign file's unit, as the plot draws it
    return [f"Replay on the campaign's own {len(curves['cold'])} records (plot `transfer_replay.png`): the best of "
            f"them ({float(o.shown(best)):.4g} {o.shown_unit}) is reached after {said['transfer']} experiments with "
            f"transfer and {said['cold']} "
            "without (same first records; each step takes the record the model predicts best).", ""]
