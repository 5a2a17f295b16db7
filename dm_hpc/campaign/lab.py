"""The lab hand-off: suggested-experiment sheets out, measured sheets back in, by sample id.

A suggestion sheet is the standard template (``dm_hpc.data.sheets``) with the suggested
composition and process, the predicted values with their uncertainty, and empty
``property:<name> [unit]`` columns for the lab to fill. A filled sheet comes back as
``experimental`` records, all or nothing; its composition columns are what was *made*, so a
sample that deviates from the suggestion is stored as measured. Unknown ids are rejected. A row
whose measurement cells are empty was not made: the journal records it as such (no value). A
value the store already holds for a sample is refused unless ``replace`` (``dm_hpc.data.resend``).

While a campaign runs, its manager holds the store: ``ingest_lab_sheet`` then validates the
sheet and leaves the records in the campaign's inbox, which the manager ingests within a
poll interval.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.data import MaterialRecord, Source, Store, StoreError, canonical_unit
from dm_hpc.data.resend import resolve_resends
from dm_hpc.data.sheets import (
    SheetContents,
    SheetDefaults,
    SheetError,
    read_sheet_contents,
    records_from_table,
    write_table,
)
from dm_hpc.data.verdicts import Verdict


def suggestion_table(campaign: CampaignSpec, state: jn.State, include_measured: bool = False) -> pd.DataFrame:
    """The lab's sheet: one row per suggested experiment not yet measured."""
    rows = []
    for entry in state.lab.values():
        if (entry.record_id is not None or entry.not_made) and not include_measured:
            continue
        row: dict[str, object] = {"sample_id": entry.sample_id, "material_class": campaign.material_class,
                                  "method": campaign.lab.name if campaign.lab else "lab"}
        for el in campaign.space.elements or entry.composition:
            row[f"composition:{el} [at_frac]"] = entry.composition.get(el, 0.0)
        for name, value in entry.process.items():
            row[f"process:process:{name} [{canonical_unit(name, kind='process_parameter')}]"] = value
        mean, std = entry.predicted.get("mean", {}), entry.predicted.get("std", {})
        for prop in campaign.properties:
            unit = canonical_unit(prop)
            if prop in mean:
                row[f"predicted:{prop} [{unit}]"] = mean[prop]
                row[f"predicted_std:{prop} [{unit}]"] = std.get(prop)
            row[f"property:{prop} [{unit}]"] = None
            row[f"uncertainty:{prop} [{unit}]"] = None
        rows.append(row)
    return pd.DataFrame(rows)


def write_suggestions(campaign: CampaignSpec, out: Path) -> int:
    """Write the pending experiments to ``out`` (.csv or .xlsx); returns how many."""
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    table = suggestion_table(campaign, state)
    if table.empty:
        table = pd.DataFrame(columns=["sample_id"])
    write_table(table, out)
    return len(table)


def read_lab_sheet(campaign: CampaignSpec, path: Path, sheet: str | None = None, contributor: str | None = None,
                   shown: str | None = None) -> SheetContents:
    """Read and check a filled sheet file against the campaign's suggestions (raises ``SheetError``).

    ``contributor``: credited on rows that name none (a circumstance: record ids do not change);
    ``shown``: the file's name in messages (an upload's name, not its temporary path)."""
    return _lab_contents(campaign, lambda defaults, ids: read_sheet_contents(
        path, defaults, known_ids=ids, sheet=sheet, shown=shown), shown or str(path), contributor)


def read_lab_table(campaign: CampaignSpec, table: pd.DataFrame, origin: str = "measurements") -> SheetContents:
    """``read_lab_sheet`` for rows already in a DataFrame (``Campaign.add_measurements``): the
    same checks and verdicts; lines count as in a sheet (header 1, first row 2)."""
    frame = table.reset_index(drop=True).astype(object)
    return _lab_contents(campaign, lambda defaults, ids: records_from_table(frame, origin, defaults, ids), origin)


def _lab_contents(campaign: CampaignSpec, read, origin: str, contributor: str | None = None) -> SheetContents:
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    lab_name = campaign.lab.name if campaign.lab else "lab"
    defaults = SheetDefaults(source=Source.experimental, method=lab_name, campaign=campaign.name, contributor=contributor)
    contents = read(defaults, set(state.lab))
    bad = [r.sample_id for r in contents.records if r.source is not Source.experimental]
    if bad:
        raise SheetError(origin, [(0, f"rows {bad} say source=computed; a lab sheet holds measurements")])
    return contents


def store_lab_results(records: list[MaterialRecord], store: Store, journal: jn.Journal, sheet: str,
                      not_made: list[str] | None = None) -> dict:
    """Ingest measured records and journal which suggestion each answers (and which samples
    were not made); returns the event."""
    result = store.ingest(records)
    return journal.write("lab_ingested", records={r.sample_id: rid for r, rid in zip(records, result.ids)},
                         new=result.new, sheet=sheet, not_made=list(not_made or []))


def ingest_sheet_records(path: Path, store: Store, journal: jn.Journal) -> dict:
    """Ingest records a validated sheet left in the inbox (called by the manager); returns
    the journal event."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, list):  # the inbox format before not-made samples were recorded
        data = {"records": data}
    records = [MaterialRecord.from_json(text) for text in data["records"]]
    return store_lab_results(records, store, journal, str(path), data.get("not_made"))


@dataclass(frozen=True)
class LabIngest:
    """What taking a lab sheet back did: ``records`` valid rows, ``new`` of them stored now
    (0 when ``queued`` for the running manager), ``replaced`` corrections of stored values,
    ``not_made`` sample ids (marked so), ``pending`` ones (blank measurement cells: still
    waiting), ``warnings`` about the sheet, and every ``verdicts`` of the reading."""

    records: int
    new: int
    queued: bool
    replaced: int = 0
    not_made: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)


def take_lab_sheet(campaign: CampaignSpec, path: Path, replace: bool = False, sheet: str | None = None) -> LabIngest:
    """Take a filled lab sheet back, all or nothing (raises ``SheetError``).

    A running manager holds the store: the validated records then wait in the campaign's inbox
    and the manager ingests them (``queued``). ``replace``: store re-sent values as corrections
    (see ``dm_hpc.data.resend``); ``sheet``: the workbook sheet to read.
    """
    return take_lab_contents(campaign, read_lab_sheet(campaign, path, sheet), str(path), replace)


def take_lab_contents(campaign: CampaignSpec, contents: SheetContents, origin: str, replace: bool = False) -> LabIngest:
    """Store a checked sheet's records, all or nothing (see ``take_lab_sheet``); ``origin``
    names the sheet in messages and the journal."""
    from dm_hpc.campaign.ownership import drop_in_inbox, exclusive

    not_made = [sid for _, sid in contents.not_made if sid is not None]

    def done(records: list[MaterialRecord], new: int, queued: bool) -> LabIngest:
        return LabIngest(len(records), new, queued, sum(bool(r.provenance.supersedes) for r in records),
                         not_made, contents.warnings, [sid for _, sid in contents.pending if sid is not None],
                         contents.verdicts)

    with exclusive(campaign) as held:
        if held is None:  # a manager holds the campaign: it ingests from its inbox
            records = _resolve(campaign, contents, origin, replace)
            drop_in_inbox(campaign.run_dir, json.dumps({"records": [r.to_json() for r in records],
                                                        "not_made": not_made}))
            return done(records, 0, True)
        store, journal = held
        records = resolve_resends(store, contents.records, contents.lines, origin, replace)
        event = store_lab_results(records, store, journal, origin, not_made)
        return done(records, event["new"], False)


def ingest_lab_sheet(campaign: CampaignSpec, path: Path) -> tuple[int, int, bool]:
    """``take_lab_sheet`` without options: returns ``(records, new, queued)``."""
    result = take_lab_sheet(campaign, path)
    return result.records, result.new, result.queued


def _resolve(campaign: CampaignSpec, contents: SheetContents, origin: str, replace: bool) -> list[MaterialRecord]:
    """``resolve_resends`` against the store a running manager holds (read-only snapshot)."""
    try:
        store = Store.open(campaign.store, "r")
    except StoreError:
        return resolve_resends(None, contents.records, contents.lines, origin, replace)
    with store:
        return resolve_resends(store, contents.records, contents.lines, origin, replace)


