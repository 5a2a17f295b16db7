"""The campaign's transfer sources: related records, from the store or a table file, for
``dm_hpc.learn.transfer``.

A source (``TransferSourceSpec``) is a store query (campaign, method, source, elements: every filter
given must match) or a table file read through the sheet reader and filtered alike. Its records give
the campaign's objective property (or the source's ``property``: one property informing another).
Store records a source takes are the source's, not the campaign's own data (``training_set`` leaves
them out), so one record never counts twice. Records with elements outside the campaign's design
space are left out and counted: the model's inputs are the campaign's features.

``suggest_sources`` ranks what the store holds for ``dm-hpc transfer suggest``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from dm_hpc.campaign.spec import CampaignSpec, TransferSourceSpec


@dataclass
class SourceRows:
    """One source's usable records: ``compositions`` (n), ``process`` (``n x P``, canonical units;
    the box's middle where a record has none), ``y`` (n, the property in canonical units)."""

    name: str
    property: str
    compositions: list[dict[str, float]]
    process: np.ndarray
    y: np.ndarray
    record_ids: list[str]
    skipped: dict[str, int] = field(default_factory=dict)


@lru_cache(maxsize=8)
def _table_frame(path: Path, column_map: Path | None, mtime: float) -> pd.DataFrame:
    """A table file's records as ``Store.to_dataframe`` columns (ids, provenance, ``x_<El>``, properties)."""
    from dm_hpc.data.sheets import read_sheet

    rows = []
    for r in read_sheet(path, column_map=column_map):
        if r.composition is None:
            continue
        row = {"record_id": r.record_id, "source": r.provenance.source.value, "method": r.provenance.method,
               "campaign": r.provenance.campaign}
        row.update({f"x_{el}": v for el, v in r.composition.fractions.items()})
        row.update({p.name: p.value for p in r.properties})
        rows.append(row)
    df = pd.DataFrame(rows)
    x_cols = [c for c in df.columns if c.startswith("x_")]
    df[x_cols] = df[x_cols].fillna(0.0)
    return df


def matches(spec: TransferSourceSpec, df: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the rows of ``df`` (``Store.to_dataframe`` columns) that ``spec`` selects."""
    keep = np.ones(len(df), bool)
    for col in ("campaign", "method", "source"):
        want = getattr(spec, col)
        if want is not None:
            keep &= (df[col] == want).to_numpy() if col in df.columns else False
    for el in spec.elements or ():
        keep &= (df[f"x_{el}"].fillna(0) > 0).to_numpy() if f"x_{el}" in df.columns else False
    return keep


def taken_by_sources(campaign: CampaignSpec, df: pd.DataFrame) -> np.ndarray:
    """Store rows that some store-query source of ``campaign`` takes (False where none)."""
    taken = np.zeros(len(df), bool)
    if campaign.transfer is not None and len(df):
        for spec in campaign.transfer.from_:
            if spec.table is None:
                taken |= matches(spec, df)
    return taken


def source_rows(campaign: CampaignSpec, df: pd.DataFrame, elements: list[str]) -> list[SourceRows]:
    """Each transfer source's usable records (``df``: the store's records; ``elements``: the design
    space's element columns)."""
    from dm_hpc.campaign.dataset import process_values

    out = []
    for spec in (campaign.transfer.from_ if campaign.transfer is not None else ()):
        if spec.table is not None:
            frame = _table_frame(spec.table, spec.table_map, spec.table.stat().st_mtime)
        else:
            frame = df
        sub = frame[matches(spec, frame)] if len(frame) else frame
        prop = spec.property or campaign.objectives[0].property
        skipped = {}
        has = sub[prop].notna().to_numpy() if prop in sub.columns else np.zeros(len(sub), bool)
        skipped[f"no {prop}"] = int((~has).sum())
        x_cols = [c for c in sub.columns if c.startswith("x_")]
        outside = [c for c in x_cols if c[2:] not in elements]
        inside = (sub[outside].fillna(0).to_numpy() <= 1e-9).all(axis=1) if outside else np.ones(len(sub), bool)
        skipped["elements outside the design space"] = int((has & ~inside).sum())
        sub = sub[has & inside]
        comps = [{c[2:]: float(v) for c, v in zip(x_cols, row) if v > 0} for row in sub[x_cols].to_numpy()]
        proc = np.zeros((len(sub), len(campaign.space.process)))
        for j, (name, bound) in enumerate(campaign.space.process.items()):
            values = process_values(sub, name)
            proc[:, j] = np.where(np.isnan(values), 0.5 * (bound.low + bound.high), values)
        out.append(SourceRows(spec.name, prop, comps, proc, sub[prop].to_numpy(float), list(sub["record_id"]),
                              {k: v for k, v in skipped.items() if v}))
    return out


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
        left = ", ".join(f"{k}: {v}" for k, v in s.skipped.items()) or "-"
        w = f"{weights[s.name]:.3f}" if s.name in weights else "-"
        md.append(f"| {s.name} ({s.property}) | {len(s.y)} | {left} | {w} |")
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
