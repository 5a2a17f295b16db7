"""From the store to training tensors: which records a campaign learns from, and as which fidelity.

A computed record counts as the fidelity whose calculation method made it; an experimental
record as the lab fidelity. Records of other methods, of elements outside the design space,
or lacking a needed property are left out (and counted, so a report can say so).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dm_hpc.campaign.spec import CampaignSpec, FidelityKind


@dataclass
class TrainingSet:
    """Rows the surrogate learns from.

    Attributes:
        compositions: one ``{element: atomic fraction}`` per row.
        process: ``n x P`` process parameters (canonical units; calculations get the midpoint).
        Y: ``n x m`` values of ``campaign.properties`` in canonical units.
        fidelity: ``n`` fidelity indices into ``campaign.fidelities``.
        record_ids: ``n`` record ids (provenance of every training row).
        skipped: reason -> number of records left out.
        transfer: the campaign's transfer sources (``campaign.transfer``), each with its records
            (``campaign.transfer.SourceRows``); empty without ``transfer``.
    """

    compositions: list[dict[str, float]]
    process: np.ndarray
    Y: np.ndarray
    fidelity: np.ndarray
    record_ids: list[str]
    sources: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    transfer: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.record_ids)


def fidelity_of(campaign: CampaignSpec, source: str, method: str) -> int | None:
    """Index of the fidelity a record belongs to (None: not this campaign's)."""
    for i, fid in enumerate(campaign.fidelities):
        if source == "computed" and fid.kind == FidelityKind.calculation and fid.record_method == method:
            return i
        if source == "experimental" and fid.kind == FidelityKind.experiment:
            return i
    return None


def process_values(df: pd.DataFrame, name: str) -> np.ndarray:
    """Process parameter ``name`` of every row of ``Store.to_dataframe()`` (canonical unit; NaN
    where a record has none, as calculations have). A record's steps are columns
    ``process.<step>:<name>``; the first step that sets it counts."""
    cols = [c for c in df.columns if c.startswith("process.") and c.endswith(f":{name}")]
    return df[cols].bfill(axis=1).iloc[:, 0].to_numpy(dtype=float) if cols else np.full(len(df), np.nan)


def training_set(campaign: CampaignSpec, df: pd.DataFrame) -> TrainingSet:
    """Select and shape the store's records (``Store.to_dataframe()``) for ``campaign``."""
    props = campaign.properties
    elements = list(campaign.space.elements)  # empty for a pool campaign: no element filter
    pnames = list(campaign.space.process)
    skipped: dict[str, int] = {}
    if df.empty:
        return TrainingSet([], np.zeros((0, len(pnames))), np.zeros((0, len(props))), np.zeros(0, int), [], [], {},
                           _transfer_rows(campaign, df))

    fid = np.array([fidelity_of(campaign, s, m) if fidelity_of(campaign, s, m) is not None else -1
                    for s, m in zip(df["source"], df["method"])])
    keep = fid >= 0
    skipped["other method or source"] = int((~keep).sum())
    if campaign.transfer is not None:
        from dm_hpc.campaign.transfer import taken_by_sources

        taken = taken_by_sources(campaign, df)  # a source's records are its own, never the campaign's too
        skipped["taken by a transfer source"] = int((keep & taken).sum())
        keep &= ~taken

    x_cols = [c for c in df.columns if c.startswith("x_")]
    has_comp = (df[x_cols].fillna(0).to_numpy() > 0).any(axis=1) if x_cols else np.zeros(len(df), bool)
    skipped["no elemental composition"] = int((keep & ~has_comp).sum())
    keep &= has_comp
    outside = [c for c in x_cols if c[2:] not in elements]
    if outside and elements:
        inside = (df[outside].fillna(0).to_numpy() <= 1e-9).all(axis=1)
        skipped["elements outside the design space"] = int((keep & ~inside).sum())
        keep &= inside
    for p in props:
        has = df[p].notna().to_numpy() if p in df.columns else np.zeros(len(df), bool)
        skipped[f"no {p}"] = int((keep & ~has).sum())
        keep &= has
    sub = df[keep]
    comps = [{c[2:]: float(v) for c, v in zip(x_cols, row) if v > 0} for row in sub[x_cols].to_numpy()]
    proc = np.zeros((len(sub), len(pnames)))
    for j, name in enumerate(pnames):
        bound = campaign.space.process[name]
        values = process_values(sub, name)
        # calculations do not model the process route: they stand at the middle of the box
        proc[:, j] = np.where(np.isnan(values), 0.5 * (bound.low + bound.high), values)
    return TrainingSet(
        compositions=comps,
        process=proc,
        Y=sub[props].to_numpy(dtype=float) if len(sub) else np.zeros((0, len(props))),
        fidelity=fid[keep],
        record_ids=list(sub["record_id"]),
        sources=list(sub["source"]),
        skipped={k: v for k, v in skipped.items() if v},
        transfer=_transfer_rows(campaign, df),
    )


def _transfer_rows(campaign: CampaignSpec, df: pd.DataFrame) -> list:
    if campaign.transfer is None:
        return []
    from dm_hpc.campaign.strategy import design_space
    from dm_hpc.campaign.transfer import source_rows

    return source_rows(campaign, df, list(design_space(campaign).element_names))


#: Fewest usable records a surrogate is fitted on (below it, suggestions are random draws).
MIN_TRAINING_RECORDS = 2


def unfit_reason(campaign: CampaignSpec, df: pd.DataFrame) -> str | None:
    """Why no model can be fitted on the campaign's records in ``df`` (None: one can, or the
    campaign has no records yet). Without a model, suggestions carry no predictions, ``predict``
    refuses and the acquisition draws at random: say so, and which property is missing."""
    mine = df[df["campaign"] == campaign.name] if "campaign" in df.columns else df.iloc[0:0]
    if mine.empty:
        return None
    data = training_set(campaign, df)
    if len(data) >= MIN_TRAINING_RECORDS:
        return None
    left_out = [(why, n) for why, n in data.skipped.items() if why.startswith("no ") and n]
    missing = "; ".join(f"{n} lack {why[3:]}" for why, n in left_out) or "; ".join(
        f"{why}: {n}" for why, n in data.skipped.items())
    hint = ""
    if left_out:
        props = ", ".join(why[3:] for why, _ in left_out)
        hint = (f" (every record needs every objective and constraint: measure {props}, or drop it from "
                f"the campaign)")
    return (f"the model cannot be fitted: {len(data)} usable records of {len(mine)} (needs "
            f"{MIN_TRAINING_RECORDS}); {missing}{hint}. Suggestions are random and carry no predictions")
