"""Transfer sources seen from outside the loop: ``suggest_sources`` ranks what the store holds for
``dm-hpc transfer suggest``; ``transfer_lines`` is the report's section with each source's weight.
Which records a source takes is ``dataset.source_rows`` (beside the campaign's own training set).
"""
from __future__ import annotations

import pandas as pd

from dm_hpc.campaign.spec import CampaignSpec


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


def transfer_lines(campaign: CampaignSpec, data) -> list[str]:
    """The report's "Transfer" section: each source's records and weight in the model fitted on the
    campaign's data now, and the leave-one-out evidence (log density per own record) behind the choice."""
    if campaign.transfer is None:
        return []
    from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS
    from dm_hpc.campaign.strategy import fit_model

    md = ["## Transfer", ""]
    fitted = fit_model(campaign, data) if len(data) >= MIN_TRAINING_RECORDS else None
    info = getattr(fitted, "transfer", None) or {}
    weights = info.get("weights", {})
    md += ["| source | records used | left out | weight |", "|---|---:|---|---:|"]
    for s in data.transfer:
        skipped = {**s.skipped, "elements outside the design space": info.get("outside_space", {}).get(s.name, 0)}
        left = ", ".join(f"{k}: {v}" for k, v in skipped.items() if v) or "-"
        w = f"{weights[s.name]:.3f}" if s.name in weights else "-"
        used = len(s.y) - skipped["elements outside the design space"]
        md.append(f"| {s.name} ({s.property}) | {used} | {left} | {w} |")
    md.append("")
    if not info:
        md += [f"No model with sources yet ({len(data)} own record(s); transfer starts at {MIN_TRAINING_RECORDS}, for a "
               "campaign with one property measured at one fidelity).", ""]
        return md
    loo = ", ".join(f"{k} {v:.3f}" for k, v in info["loo"].items())
    md += [f"Model: **{info['kind']}** (cold = the campaign's own data only; multitask = each source a task of a "
           "multi-task GP, weight = its learned correlation with the campaign; prior = the source model as the "
           "prior mean, weight = its fitted slope). Leave-one-out log predictive density per own record "
           f"(higher is better): {loo}. Sources are used only when they score above cold.", ""]
    return md
