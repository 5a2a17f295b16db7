"""The lab hand-off: suggested-experiment sheets out, measured sheets back in, by sample id.

A suggestion sheet is the standard template (``dm_hpc.data.sheets``) with the suggested
composition and process, the predicted values with their uncertainty, and empty
``property:<name> [unit]`` columns for the lab to fill. A filled sheet comes back as
``experimental`` records, all or nothing; its composition columns are what was *made*, so a
sample that deviates from the suggestion is stored as measured. Unknown ids are rejected.

While a campaign runs, its manager holds the store: ``ingest_lab_sheet`` then validates the
sheet and leaves the records in the campaign's inbox, which the manager ingests within a
poll interval.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.spec import Campaign
from dm_hpc.data import MaterialRecord, Source, Store, canonical_unit
from dm_hpc.data.sheets import SheetDefaults, read_sheet, write_table


def suggestion_table(campaign: Campaign, state: jn.State, include_measured: bool = False) -> pd.DataFrame:
    """The lab's sheet: one row per suggested experiment not yet measured."""
    rows = []
    for entry in state.lab.values():
        if entry.record_id is not None and not include_measured:
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


def write_suggestions(campaign: Campaign, out: Path) -> int:
    """Write the pending experiments to ``out`` (.csv or .xlsx); returns how many."""
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    table = suggestion_table(campaign, state)
    if table.empty:
        table = pd.DataFrame(columns=["sample_id"])
    write_table(table, out)
    return len(table)


def read_lab_sheet(campaign: Campaign, path: Path) -> list[MaterialRecord]:
    """Validate a filled sheet against the campaign's suggestions (raises ``SheetError``)."""
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    lab_name = campaign.lab.name if campaign.lab else "lab"
    defaults = SheetDefaults(source=Source.experimental, method=lab_name, campaign=campaign.name)
    records = read_sheet(path, defaults, known_ids=set(state.lab))
    bad = [r.sample_id for r in records if r.source is not Source.experimental]
    if bad:
        from dm_hpc.data.sheets import SheetError

        raise SheetError(str(path), [(0, f"rows {bad} say source=computed; a lab sheet holds measurements")])
    return records


def store_lab_results(records: list[MaterialRecord], store: Store, journal: jn.Journal, sheet: str) -> dict:
    """Ingest measured records and journal which suggestion each answers; returns the event."""
    result = store.ingest(records)
    return journal.write("lab_ingested", records={r.sample_id: rid for r, rid in zip(records, result.ids)},
                         new=result.new, sheet=sheet)


def ingest_sheet_records(path: Path, store: Store, journal: jn.Journal) -> dict:
    """Ingest records a validated sheet left in the inbox (called by the manager); returns
    the journal event."""
    records = [MaterialRecord.from_json(text) for text in json.loads(Path(path).read_text())]
    return store_lab_results(records, store, journal, str(path))


def ingest_lab_sheet(campaign: Campaign, path: Path) -> tuple[int, int, bool]:
    """Take a filled lab sheet back: returns ``(records, new, queued)``.

    ``queued`` is True when a running manager holds the store: the validated records then
    wait in the campaign's inbox and the manager ingests them.
    """
    from dm_hpc.campaign.ownership import drop_in_inbox, exclusive

    records = read_lab_sheet(campaign, path)
    with exclusive(campaign) as held:
        if held is None:  # a manager holds the campaign: it ingests from its inbox
            drop_in_inbox(campaign.run_dir, json.dumps([r.to_json() for r in records]))
            return len(records), 0, True
        store, journal = held
        event = store_lab_results(records, store, journal, str(path))
        return len(records), event["new"], False


