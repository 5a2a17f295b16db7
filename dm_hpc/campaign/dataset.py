"""From the store to training tensors: which records a campaign learns from, and as which fidelity.

A computed record counts as the fidelity whose calculation method made it; an experimental
record as the lab fidelity. Records of other methods, of elements outside the design space,
or lacking a needed property are left out (and counted, so a report can say so).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from dm_hpc.campaign.spec import CampaignSpec, FidelityKind, Goal, TransferSourceSpec
from dm_hpc.data.columns import process_values  # noqa: F401 -- also this module's face (report)


@dataclass
class TrainingSet:
    """Rows the surrogate learns from.

    Attributes:
        compositions: one ``{element: atomic fraction}`` per row.
        process: ``n x P`` process parameters (canonical units; calculations get the midpoint).
        Y: ``n x m`` values of ``campaign.properties`` in canonical units; NaN where a row lacks
            one (every row holds at least one).
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

    @property
    def counts(self) -> list[int]:
        """Per property (``Y``'s columns) the rows that hold it: a row may lack some (NaN) and
        still inform the others."""
        return np.isfinite(self.Y).sum(axis=0).astype(int).tolist() if self.Y.ndim == 2 else []

    @property
    def fewest(self) -> int:
        """Values of the least measured property: every output's model needs some, so this, not
        the number of rows, is what the fitting thresholds compare (the same when no row lacks one)."""
        return min(self.counts, default=0)


def fidelity_of(campaign: CampaignSpec, source: str, method: str) -> int | None:
    """Index of the fidelity a record belongs to (None: not this campaign's)."""
    for i, fid in enumerate(campaign.fidelities):
        if source == "computed" and fid.kind == FidelityKind.calculation and fid.record_method == method:
            return i
        if source == "experimental" and fid.kind == FidelityKind.experiment:
            return i
    return None


def design_elements(campaign: CampaignSpec) -> list[str]:
    """The elements a campaign's candidates may hold: its space's less those ``excluded`` (as
    ``DesignSpace`` drops them), or for a pool campaign those of its pool (empty when the pool file
    cannot be read: then nothing is filtered). A store record with another element is not the
    campaign's data: its model has no input for that element (a pool campaign sharing a store with
    other campaigns failed on one; an element excluded after records holding it were stored made
    every fit fail)."""
    if campaign.space.elements:
        return [el for el in campaign.space.elements if el not in campaign.space.excluded]
    from dm_hpc.campaign.candidates import pool_compositions

    try:
        return sorted({el for comp in pool_compositions(campaign) for el in comp})
    except (OSError, ValueError):  # the pool file gone or damaged since: no element filter, as before (empty)
        return []


def training_set(campaign: CampaignSpec, df: pd.DataFrame) -> TrainingSet:
    """Select and shape the store's records (``Store.to_dataframe()``) for ``campaign``.

    A store-query transfer source takes the records it selects away from the campaign's own, but
    only where the sources enter the model (``sources_enter``); elsewhere those records are the
    campaign's as without the transfer block (review: with two fidelities measured, 10 of a
    source's lab records were in neither the model nor a source)."""
    data = _training_set(campaign, df, take=True)
    if (campaign.transfer is not None and data.skipped.get("taken by a transfer source")
            and not sources_enter(campaign, data.fidelity)):
        return _training_set(campaign, df, take=False)
    return data


def target_index(campaign: CampaignSpec) -> int:
    """The fidelity the campaign optimises: flagged ``target``, else the lab, else the last."""
    for i, fid in enumerate(campaign.fidelities):
        if fid.target:
            return i
    for i, fid in enumerate(campaign.fidelities):
        if fid.kind == FidelityKind.experiment:
            return i
    return len(campaign.fidelities) - 1


def target_best_values(campaign: CampaignSpec, df: pd.DataFrame) -> dict[str, float]:
    """Best value per objective (``best_rows``: constraints met) over the records of the fidelity
    whose values are the answer (``target_index``): what an objective's ``target`` is met by. A
    computed energy below a lab target stopped a campaign whose lab had measured nothing (review)."""
    if df.empty:
        return {}
    t = target_index(campaign)
    at = [fidelity_of(campaign, s, m) == t for s, m in zip(df["source"], df["method"])]
    return best_values(campaign, df[at])


def best_values(campaign: CampaignSpec, df: pd.DataFrame) -> dict[str, float]:
    """Best value so far per objective over ``df``'s records that meet every constraint (any
    fidelity; analytic properties derived where a record lacks them, as training sees them)."""
    return {prop: value for prop, (value, _) in best_records(campaign, df).items()}


def best_records(campaign: CampaignSpec, df: pd.DataFrame) -> dict[str, tuple[float, str | None]]:
    """Per objective, ``(best value, fidelity name of its record)`` over ``df``'s records that meet
    every constraint (``dataset.best_rows``; an alloy over the density limit was reported the
    best, and a target met by it would have stopped the campaign). The fidelity is named because
    an EMT energy and a measured one are different quantities."""
    out = {}
    for prop, row in best_rows(campaign, df).items():
        fid = fidelity_of(campaign, row["source"], row["method"]) if "source" in row.index else None
        out[prop] = (float(row[prop]), campaign.fidelities[fid].name if fid is not None else None)
    return out


def within_elements(df: pd.DataFrame, elements) -> np.ndarray:
    """Rows of ``df`` (``Store.to_dataframe`` columns) holding no element but ``elements``: a record
    with another is not a point of the design space (read on its elements, a Zn-rich alloy would be
    renormalised into a Cu-Ni one)."""
    known = set(elements)
    outside = [c for c in df.columns if c.startswith("x_") and c[2:] not in known]
    if not outside:
        return np.ones(len(df), bool)
    return (df[outside].fillna(0).to_numpy() <= 1e-9).all(axis=1)


def sources_enter(campaign: CampaignSpec, fidelity: np.ndarray) -> bool:
    """Whether transfer sources enter ``campaign``'s model, its records being at ``fidelity``
    (``n`` fidelity indices): one property, measured at one fidelity (``strategy.fit_model``)."""
    return len(campaign.properties) == 1 and len(set(np.asarray(fidelity).tolist())) <= 1


def _training_set(campaign: CampaignSpec, df: pd.DataFrame, take: bool) -> TrainingSet:
    props = campaign.properties
    elements = design_elements(campaign)
    pnames = list(campaign.space.process)
    skipped: dict[str, int] = {}
    if df.empty:
        return TrainingSet([], np.zeros((0, len(pnames))), np.zeros((0, len(props))), np.zeros(0, int), [], [], {},
                           _transfer_rows(campaign, df))

    fid = np.array([fidelity_of(campaign, s, m) if fidelity_of(campaign, s, m) is not None else -1
                    for s, m in zip(df["source"], df["method"])])
    keep = fid >= 0
    skipped["other method or source"] = int((~keep).sum())
    if campaign.transfer is not None and take:
        taken = taken_by_sources(campaign, df)  # a source's records are its own, never the campaign's too
        skipped["taken by a transfer source"] = int((keep & taken).sum())
        keep &= ~taken

    x_cols = [c for c in df.columns if c.startswith("x_")]
    has_comp = (df[x_cols].fillna(0).to_numpy() > 0).any(axis=1) if x_cols else np.zeros(len(df), bool)
    skipped["no elemental composition"] = int((keep & ~has_comp).sum())
    keep &= has_comp
    if elements:
        inside = within_elements(df, elements)
        skipped["elements outside the design space"] = int((keep & ~inside).sum())
        keep &= inside
    df = _with_analytic(df, [p for p in props if p in _analytic()], keep, x_cols)
    # a record informs every property it holds: one with hardness measured and density not yet
    # is a row (its density NaN, learned from the others'); one with none of them is left out
    has = np.column_stack([df[p].notna().to_numpy() if p in df.columns else np.zeros(len(df), bool) for p in props])
    if campaign.learning.surrogate == "ensemble":
        # the ensemble learns every output at once from the records holding them all
        # (``learn.fit_surrogate``): its training set is those, so every threshold counts them
        for j, p in enumerate(props):
            skipped[f"no {p}"] = int((keep & ~has[:, j]).sum())
            keep &= has[:, j]
    else:
        skipped["no " + ", ".join(props)] = int((keep & ~has.any(axis=1)).sum())
        keep &= has.any(axis=1)
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
        # reindex: a property no record holds has no column; its values are all NaN
        Y=sub.reindex(columns=props).to_numpy(dtype=float) if len(sub) else np.zeros((0, len(props))),
        fidelity=fid[keep],
        record_ids=list(sub["record_id"]),
        sources=list(sub["source"]),
        skipped={k: v for k, v in skipped.items() if v},
        transfer=_transfer_rows(campaign, df),
    )


def with_analytic(campaign: CampaignSpec, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (``Store.to_dataframe`` columns) with the campaign's analytic properties filled in
    from the composition where a record lacks them (``_with_analytic``): the one view that
    training, best values, reports and ``Campaign.best`` share, so a lab record's derived cost
    counts everywhere or nowhere."""
    names = [p for p in campaign.properties if p in _analytic()]
    if not names or df.empty:
        return df
    x_cols = [c for c in df.columns if c.startswith("x_")]
    has_comp = (df[x_cols].fillna(0).to_numpy() > 0).any(axis=1) if x_cols else np.zeros(len(df), bool)
    return _with_analytic(df, names, has_comp, x_cols)


def meets_constraints(campaign: CampaignSpec, df: pd.DataFrame) -> pd.Series:
    """Per record of ``df`` (canonical units), whether it meets every constraint of the campaign:
    the one rule that best values (the run's lines, stopping on targets), the report's best records
    and ``Campaign.best`` share. A record lacking a constrained value is not known to meet it."""
    keep = pd.Series(True, index=df.index)
    for c in campaign.constraints:
        col = df[c.property] if c.property in df.columns else pd.Series(float("nan"), index=df.index)
        keep &= (col <= c.value) if c.op == "<=" else (col >= c.value)
    return keep



def best_rows(campaign: CampaignSpec, df: pd.DataFrame) -> dict[str, pd.Series]:
    """Per objective, the record of ``df`` (``Store.to_dataframe`` columns, canonical units) with
    the best value among those that meet every constraint (``meets_constraints``; analytic
    properties derived where a record lacks them, as training sees them): the one choice behind
    the run's best lines, the stopping rule on targets and the portal's best-so-far. Objectives
    with no such value are left out."""
    df = with_analytic(campaign, df)
    if df.empty:
        return {}
    df = df[meets_constraints(campaign, df)]
    out = {}
    for o in campaign.objectives:
        if o.property in df.columns and df[o.property].notna().any():
            col = df[o.property]
            out[o.property] = df.loc[col.idxmax() if o.goal == Goal.max else col.idxmin()]
    return out


def _analytic() -> tuple[str, ...]:
    from dm_hpc.compute.descriptors import ANALYTIC_PROPERTIES

    return ANALYTIC_PROPERTIES


def _with_analytic(df: pd.DataFrame, names: list[str], rows: np.ndarray, x_cols: list[str]) -> pd.DataFrame:
    """``df`` with the analytic properties ``names`` (a raw-material price, a mixing entropy: a
    function of the composition alone) filled in where the ``rows`` lack them. A lab measures
    hardness, not the price of its alloy: without this a campaign whose objective is the cost
    never learned from a single lab record ("2 lack raw_material_cost"). The store is not
    changed; the value is derived, as a calculation derives it."""
    if not names or not len(df):
        return df
    from dm_hpc.compute.descriptors import analytic_properties
    from dm_hpc.data.composition import Composition

    present = [n for n in names if n in df.columns]
    has_all = df[present].notna().all(axis=1).to_numpy() if len(present) == len(names) else np.zeros(len(df), bool)
    if not (rows & ~has_all).any():  # nothing to derive: no copy (best values read this at every reload)
        return df
    df = df.copy()
    for name in names:
        if name not in df.columns:
            df[name] = np.nan
    lacking = np.flatnonzero(rows & df[names].isna().any(axis=1).to_numpy())
    fractions = df[x_cols].fillna(0.0).to_numpy()
    cols = {name: df.columns.get_loc(name) for name in names}
    for i in lacking:
        comp = Composition({c[2:]: float(v) for c, v in zip(x_cols, fractions[i]) if v > 0})
        for name, value in analytic_properties(comp, names).items():
            if np.isnan(df.iat[i, cols[name]]):
                df.iat[i, cols[name]] = value
    return df


def _transfer_rows(campaign: CampaignSpec, df: pd.DataFrame) -> list:
    return source_rows(campaign, df) if campaign.transfer is not None else []


# Transfer sources (``campaign.transfer``): a source is a store query (campaign, method, source,
# elements: every filter given must match) or a table file read through the sheet reader and
# filtered alike. Its records give the campaign's first objective (or the source's ``property``:
# one property informing another). Store records a source takes are the source's, not the
# campaign's own data (``training_set`` leaves them out), so one record never counts twice.

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
    #: a model source's loaded file (``campaign.standard.ModelFile``; no records: its predictions
    #: on the campaign's design space are the source)
    model: object | None = None
    #: the record sources (``computed``, ``experimental``) of the rows: two is one task of both,
    #: which the campaign's fidelities keep apart (``mixed_sources`` says so)
    kinds: tuple[str, ...] = ()


def table_frame(path: Path, column_map: Path | None) -> pd.DataFrame:
    """A table file's records as ``Store.to_dataframe`` columns, read once per version of the file
    (a campaign often names one table as pool, emulated lab and transfer source; preflight reads it too)."""
    return _table_frame(Path(path), column_map, Path(path).stat().st_mtime)


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


def _not_own(campaign: CampaignSpec, df: pd.DataFrame) -> np.ndarray:
    """Rows that are not ``campaign``'s own records: a source is related data, never the campaign's
    own measurements (a source ``{campaign: <itself>}`` or ``{elements: [O]}`` took them away from
    its training data: 12 of 12, every suggestion random)."""
    return (df["campaign"] != campaign.name).to_numpy() if "campaign" in df.columns else np.ones(len(df), bool)


def query_source_count(campaign: CampaignSpec, spec: TransferSourceSpec, df: pd.DataFrame) -> int:
    """How many records of ``df`` (the store's) the store-query source ``spec`` would give ``campaign``:
    not its own, selected by every filter, holding the source's property."""
    sub = _store_selection(campaign, spec, df)
    prop = spec.property or campaign.objectives[0].property
    return int(sub[prop].notna().sum()) if prop in sub.columns else 0


def _store_selection(campaign: CampaignSpec, spec: TransferSourceSpec, df: pd.DataFrame) -> pd.DataFrame:
    """The store records (``df``) a store-query source selects: not the campaign's own, every filter met."""
    frame = df[_not_own(campaign, df)] if len(df) else df
    return frame[matches(spec, frame)] if len(frame) else frame


def taken_by_sources(campaign: CampaignSpec, df: pd.DataFrame) -> np.ndarray:
    """Store rows that some store-query source of ``campaign`` takes (False where none): those it
    selects that hold its property (the source learns from no other; a record without it stays
    the campaign's, review: ``property: formation_energy`` took all 20 of the campaign's records)."""
    taken = np.zeros(len(df), bool)
    if campaign.transfer is not None and len(df):
        for spec in campaign.transfer.from_:
            if spec.table is None and spec.model is None:  # a table or a model takes no store record
                prop = spec.property or campaign.objectives[0].property
                if prop in df.columns:
                    taken |= matches(spec, df) & df[prop].notna().to_numpy()
    return taken & _not_own(campaign, df) if len(df) else taken


def own_in_model(model, own_ids) -> int:
    """How many of a campaign's training records (``own_ids``) the model file ``model``
    (``campaign.standard.ModelFile``) learned from, down its ``derived_from`` chain: such a source
    is the campaign's own data seen twice, and the guard's leave-one-out would score it on records
    it has seen (review: the campaign's own exported version as a source, LOO RMSE 1.7x "better",
    1.02x on fresh points)."""
    return len(model.record_ids() & set(own_ids))


#: ``SourceRows.skipped``'s reason for rows that are the campaign's own answers (``own_answers``)
OWN_ANSWERS = "the campaign's own answers"


def _row_keys(frame: pd.DataFrame, prop: str) -> list[tuple]:
    """(record source, composition, value of ``prop``) of each row of ``frame`` (``Store.to_dataframe``
    columns): a record's identity whatever its id (a table row and the store record made from it
    share none). The source counts: a calculation that gives a measured value (a metal's band gap of
    0) is not the measurement. A row without the value has None for it."""
    from dm_hpc.acquire.points import point_key

    if not len(frame):
        return []
    x_cols = [c for c in frame.columns if c.startswith("x_")]
    values = frame[prop].to_numpy(float) if prop in frame.columns else np.full(len(frame), np.nan)
    kinds = frame["source"].astype(str).to_numpy() if "source" in frame.columns else np.full(len(frame), "")
    return [(kind, point_key({c[2:]: v for c, v in zip(x_cols, row) if v > 0}, {})[0],
             float(f"{value:.9g}") if np.isfinite(value) else None)
            for kind, row, value in zip(kinds, frame[x_cols].fillna(0).to_numpy(), values)]


def _answer_keys(frame: pd.DataFrame, prop: str) -> set[tuple]:
    return {k for k in _row_keys(frame, prop) if k[2] is not None}


def lab_answers(campaign: CampaignSpec, prop: str, df: pd.DataFrame, emulated: bool = True) -> set[tuple]:
    """The campaign's own answers for ``prop`` as ``_answer_keys``: its records in ``df`` (the store's)
    and, with ``emulated``, every row its emulated lab answers from (``emulate_from``: its measured
    rows, or all where it has none, as ``EmulatedLab`` reads it; a table that cannot be read gives
    none here, preflight names it). A table source is checked against both; a store source against
    the records (another campaign's records of the same literature are that campaign's data)."""
    keys = _answer_keys(own_records(campaign, df), prop)
    for fid in (campaign.fidelities if emulated else ()):
        if fid.kind == FidelityKind.experiment and fid.emulate_from is not None:
            try:
                table = table_frame(fid.emulate_from, fid.emulate_map)
            except (OSError, ValueError):
                continue
            if "source" in table.columns and (table["source"] == "experimental").any():
                table = table[table["source"] == "experimental"]
            keys |= _answer_keys(table, prop)
    return keys


def own_answers(rows: pd.DataFrame, prop: str, answers: set[tuple]) -> np.ndarray:
    """Mask of a source's ``rows`` that are the campaign's own answers (``lab_answers``): the same
    record source, composition and value of ``prop`` as one of its records or of the rows its
    emulated lab answers from. Such a
    source is the campaign's own data seen twice, as a model file trained on its records is
    (``own_in_model``): its gain is the campaign fitting itself (review: the lab's own table as a
    source, 40.8x "better")."""
    if not answers:
        return np.zeros(len(rows), bool)
    return np.array([k in answers for k in _row_keys(rows, prop)], bool)


def source_rows(campaign: CampaignSpec, df: pd.DataFrame) -> list[SourceRows]:
    """Each transfer source's records that hold its property (``df``: the store's records), whatever
    their elements: the source's model is fitted on its own elements (``strategy.source_tables``).
    Rows that are the campaign's own answers (``own_answers``) are left out, counted in ``skipped``
    (``OWN_ANSWERS``; ``dm-hpc validate`` refuses such a source)."""
    out = []
    answers: dict[tuple, set[tuple]] = {}  # per (property, table source), read once (the emulated lab's table)
    for spec in (campaign.transfer.from_ if campaign.transfer is not None else ()):
        if spec.model is not None:
            from dm_hpc.campaign.standard import load_model_file

            out.append(SourceRows(spec.name, spec.property or campaign.objectives[0].property, [],
                                  np.zeros((0, len(campaign.space.process))), np.zeros(0), [],
                                  model=load_model_file(spec.model)))
            continue
        if spec.table is not None:
            frame = table_frame(spec.table, spec.table_map)
            sub = frame[matches(spec, frame)] if len(frame) else frame
        else:
            sub = _store_selection(campaign, spec, df)
        prop = spec.property or campaign.objectives[0].property
        skipped = {}
        has = sub[prop].notna().to_numpy() if prop in sub.columns else np.zeros(len(sub), bool)
        skipped[f"no {prop}"] = int((~has).sum())
        x_cols = [c for c in sub.columns if c.startswith("x_")]
        sub = sub[has]
        key = (prop, spec.table is not None)
        if key not in answers:
            answers[key] = lab_answers(campaign, prop, df, emulated=spec.table is not None)
        seen = own_answers(sub, prop, answers[key])
        skipped[OWN_ANSWERS] = int(seen.sum())
        sub = sub[~seen]
        comps = [{c[2:]: float(v) for c, v in zip(x_cols, row) if v > 0} for row in sub[x_cols].to_numpy()]
        proc = np.zeros((len(sub), len(campaign.space.process)))
        for j, (name, bound) in enumerate(campaign.space.process.items()):
            values = process_values(sub, name)
            proc[:, j] = np.where(np.isnan(values), 0.5 * (bound.low + bound.high), values)
        values = sub[prop].to_numpy(float) if prop in sub.columns else np.zeros(0)  # a source without it: no rows
        # an empty frame (no store yet: ``report._store_frame``) has no columns: a query that matches nothing
        ids = list(sub["record_id"]) if "record_id" in sub.columns else []
        kinds = tuple(sorted(set(sub["source"].dropna().astype(str)))) if "source" in sub.columns else ()
        out.append(SourceRows(spec.name, prop, comps, proc, values, ids,
                              {k: v for k, v in skipped.items() if v}, kinds=kinds))
    return out


def mixed_sources(sources: list[SourceRows]) -> list[str]:
    """Names of the sources (``source_rows``) whose rows are computed and experimental records in one
    task: the campaign's fidelities keep the two apart (a calculation and a measurement are different
    quantities), a source without a ``source:`` filter mixes them; said, never done silently."""
    return [s.name for s in sources if len(s.kinds) > 1]


#: Fewest usable records a surrogate is fitted on (below it, suggestions are random draws).
MIN_TRAINING_RECORDS = 2


def own_records(campaign: CampaignSpec, df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df`` (``Store.to_dataframe`` columns) filed under ``campaign``."""
    return df[df["campaign"] == campaign.name] if "campaign" in df.columns else df.iloc[0:0]


def unfit_reason(campaign: CampaignSpec, df: pd.DataFrame) -> str | None:
    """Why no model can be fitted on the campaign's records in ``df`` (None: one can, or the
    campaign has no records yet). Without a model, suggestions carry no predictions, ``predict``
    refuses and the acquisition draws at random: say so, and which property is missing."""
    mine = own_records(campaign, df)
    if mine.empty:
        return None
    data = training_set(campaign, df)
    if data.fewest >= MIN_TRAINING_RECORDS:
        return None
    if campaign.learning.surrogate == "ensemble":  # its records hold every property (``training_set``)
        short = [(why[3:], n) for why, n in data.skipped.items() if why.startswith("no ") and n]
        need = "every record needs every objective and constraint (the ensemble learns them at once)"
    else:  # the properties too few records hold, each with how many of the campaign's records lack it
        none = data.skipped.get("no " + ", ".join(campaign.properties), 0)  # records holding none of them
        short = [(p, len(data) - n + none) for p, n in zip(campaign.properties,
                                                           data.counts or [0] * len(campaign.properties))
                 if n < MIN_TRAINING_RECORDS]
        need = f"every objective and constraint needs {MIN_TRAINING_RECORDS} records that hold it"
    missing = "; ".join(f"{n} lack {p}" for p, n in short if n) or "; ".join(
        f"{why}: {n}" for why, n in data.skipped.items())
    hint = ""
    if any(n for _, n in short):
        props = ", ".join(p for p, n in short if n)
        hint = f" ({need}: measure {props}, or drop it from the campaign)"
    # no record lacks a property and none was left out: there are only too few yet (a "; ." said nothing)
    missing = f"; {missing}" if missing else ""
    return (f"the model cannot be fitted: {data.fewest} usable record{'' if data.fewest == 1 else 's'} of {len(mine)} (needs "
            f"{MIN_TRAINING_RECORDS}){missing}{hint}. Suggestions are random and carry no predictions")
