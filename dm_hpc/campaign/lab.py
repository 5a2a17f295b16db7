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
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.holds import (
    Hold,
    among_stored,
    apply_holds,
    confirmed_in_sheet,
    find_holds,
    says_no,
    says_yes,
)
from dm_hpc.campaign.labsheet import lab_properties, suggestion_rows, write_suggestions  # noqa: F401 -- also this module's face
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.data import MaterialRecord, Source, Store, StoreError
from dm_hpc.data.corrections import blank_replacements
from dm_hpc.data.resend import completes, resolve_resends, retyped_as_stored
from dm_hpc.data.sheets import (
    SheetContents,
    SheetDefaults,
    SheetError,
    header_key,
    records_from_table,
    unit_conversions,
)
from dm_hpc.data.sheet_checks import merged_into
from dm_hpc.data.sheetfiles import LoadedTable, load_table
from dm_hpc.data.verdicts import Verdict


def suggestion_table(campaign: CampaignSpec, state: jn.State, include_measured: bool = False) -> pd.DataFrame:
    """The lab's sheet as a DataFrame (``labsheet.suggestion_rows``): one row per suggested
    experiment not yet measured, rounded, in the campaign author's units."""
    return pd.DataFrame(suggestion_rows(campaign, state, include_measured))


def read_lab_sheet(campaign: CampaignSpec, path: Path, sheet: str | None = None, contributor: str | None = None,
                   shown: str | None = None) -> SheetContents:
    """Read and check a filled sheet file against the campaign's suggestions (raises ``SheetError``).

    ``contributor``: credited on rows that name none (a circumstance: record ids do not change);
    ``shown``: the file's name in messages (an upload's name, not its temporary path)."""
    return read_lab_loaded(campaign, load_table(path, sheet, shown), shown or str(path), contributor)


def read_lab_loaded(campaign: CampaignSpec, loaded: LoadedTable, origin: str,
                    contributor: str | None = None) -> SheetContents:
    """``read_lab_sheet`` for a file already read (``load_table``; ``origin``: its name in
    messages): a door that also annotates the sheet reads the file once and hands the same
    cells to the checks and to ``annotate.write_annotated``."""
    return _lab_contents(campaign, loaded.frame, origin, contributor, loaded.decimal, loaded.refused)


def read_lab_table(campaign: CampaignSpec, table: pd.DataFrame, origin: str = "measurements") -> SheetContents:
    """``read_lab_sheet`` for rows already in a DataFrame (``Campaign.add_measurements``): the
    same checks and verdicts; lines count as in a sheet (header 1, first row 2). A column name
    given twice (``pd.concat([sheet, results], axis=1)``) is refused as a file's is, not a traceback."""
    names = [str(c).strip() for c in table.columns]
    seen: dict[str, int] = {}
    twice = []
    for i, name in enumerate(names):
        if name in seen:
            twice.append((1, f"column {name!r} appears twice (columns {seen[name] + 1} and {i + 1})"))
        seen.setdefault(name, i)
    if twice:
        raise SheetError(origin, twice)
    return _lab_contents(campaign, table.reset_index(drop=True).astype(object), origin)


def expected_properties(campaign: CampaignSpec) -> list[str]:
    """What a lab sheet of ``campaign`` may measure: a column the template does not know that
    holds one of these names (``Density (g/cm3)``) is a renamed measurement, refused, not ignored."""
    return list(dict.fromkeys([*lab_properties(campaign), *campaign.properties]))


def _lab_contents(campaign: CampaignSpec, frame: pd.DataFrame, origin: str, contributor: str | None = None,
                  decimal: str = ".", unread: Sequence[Verdict] = ()) -> SheetContents:
    """Every door's reading of a lab table (``frame``: its cells, ``decimal``: its decimal mark,
    ``unread``: cells its reader refused), checked against the journal's suggestions."""
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    lab_name = campaign.lab.name if campaign.lab else "lab"
    defaults = SheetDefaults(source=Source.experimental, method=lab_name, campaign=campaign.name, contributor=contributor)
    try:
        contents = records_from_table(as_ordered(campaign, state, frame), origin, defaults, set(state.lab), decimal,
                                      expected_properties(campaign), unread)
    except SheetError as exc:
        raise _naming_its_campaign(campaign, exc) from None
    bad = [r.sample_id for r in contents.records if r.source is not Source.experimental]
    if bad:
        raise SheetError(origin, [(0, f"rows {bad} say source=computed; a lab sheet holds measurements")])
    return _as_stored(campaign, state, contents)


def as_ordered(campaign: CampaignSpec, state: jn.State, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the composition and process columns its suggested samples have on their lab
    sheet (what was ordered, ``labsheet.suggestion_rows``) when it has no composition of its own:
    a table of ``sample_id`` and measurements answers its suggestions by id, as a returned sheet
    whose composition was left as sent does (it was refused for lacking composition columns,
    before its ids were read). A row whose id is no suggestion gets none: its id is refused."""
    keys = [header_key(h) for h in frame.columns]  # a header's name, its [unit] aside, as the template reads it
    if "sample_id" not in keys or any(k.startswith(("composition:", "raw:")) or k == "formula" for k in keys):
        return frame
    from dm_hpc.data.columns import composition_column

    ordered = {row["sample_id"]: row for row in suggestion_rows(campaign, state, include_measured=True)}
    ids = [str(sid).strip() for sid in frame.iloc[:, keys.index("sample_id")]]
    # the campaign's elements too: with no suggestion yet, every row is refused by its id alone
    headers = dict.fromkeys([*map(composition_column, campaign.space.elements),
                             *(h for row in ordered.values() for h in row
                               if h.startswith(("composition:", "process:")))])
    named = set(keys)  # a process parameter the table gives, in any unit
    added = {h: [ordered[sid].get(h) if sid in ordered else None for sid in ids]
             for h in headers if header_key(h) not in named}
    return frame.assign(**{h: pd.Series(v, index=frame.index, dtype=object) for h, v in added.items()})


def _naming_its_campaign(campaign: CampaignSpec, exc: SheetError) -> SheetError:
    """``exc`` with a first line naming the campaign a sheet is of, when every sample id it
    refused as unknown carries another campaign's name (``labsheet.sample_id``): a sheet sent to
    the wrong campaign, which the row-by-row refusals alone do not say."""
    from dm_hpc.campaign.labsheet import campaign_of_sample

    unknown = [str(v.value) for v in exc.verdicts if v.column == "sample_id" and "unknown sample_id" in v.reason]
    names = {campaign_of_sample(sid) for sid in unknown}
    if not unknown or None in names or campaign.name in names:
        return exc
    theirs = ", ".join(repr(n) for n in sorted(names))
    return SheetError(exc.path, [(0, f"its sample ids are of campaign {theirs}, not of campaign {campaign.name!r}: "
                                     "a sheet of another campaign? ingest it with that campaign's file"), *exc.verdicts])


def _as_stored(campaign: CampaignSpec, state: jn.State, contents: SheetContents) -> SheetContents:
    """``contents`` with each value of a measured sample that was typed in another unit than the
    store's and is the stored value at the digits typed given the stored value
    (``resend.retyped_as_stored``), so every door reads such a row as the record it repeats. The
    store is read only when a measured sample's value was converted (the journal names its record)."""
    from dataclasses import replace

    from dm_hpc.data.verdicts import Decision

    measured = {sid: e.record_id for sid, e in state.lab.items() if e.record_id is not None}
    ids = {v.sample_id for v in contents.verdicts
           if v.decision is Decision.accepted and v.converted_from and v.sample_id in measured}
    if not ids:
        return contents
    with _snapshot(campaign) as store:
        # a record journalled but not in the store yet (a running manager's inbox) is left out
        found = {sid: _record(store, measured[sid]) for sid in ids}
    stored = {sid: rec for sid, rec in found.items() if rec is not None}
    records, said = retyped_as_stored(contents.records, contents.lines, contents.verdicts, stored)
    return replace(contents, records=records, warnings=[*contents.warnings, *said]) if said else contents


def store_lab_results(records: list[MaterialRecord], store: Store, journal: jn.Journal, sheet: str,
                      not_made: list[str] | None = None, campaign: CampaignSpec | None = None,
                      **audit: list[str] | dict[str, str]) -> dict:
    """Ingest measured records and journal which suggestion each answers (and which samples
    were not made; ``audit``: ``held`` and ``confirmed`` sample ids, ``held_why`` why each is held,
    ``held_units`` the unit the sheet typed each held property in);
    returns the event.

    With ``campaign``, the event also says whether a model can be fitted on the store now
    (``unfit``: why not, "" when it can), so ``dm-hpc status`` can warn without reading the store."""
    result = store.ingest(records)
    checked = {}
    if campaign is not None:
        from dm_hpc.campaign.dataset import unfit_reason

        checked["unfit"] = unfit_reason(campaign, store.to_dataframe()) or ""
    return journal.write("lab_ingested", records={r.sample_id: rid for r, rid in zip(records, result.ids)},
                         new=result.new, sheet=sheet, not_made=list(not_made or []),
                         **{k: v for k, v in audit.items() if v}, **checked)


def ingest_sheet_records(path: Path, store: Store, journal: jn.Journal) -> dict:
    """Ingest records a validated sheet left in the inbox (called by the manager); returns
    the journal event."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, list):  # the inbox format before not-made samples were recorded
        data = {"records": data}
    records = [MaterialRecord.from_json(text) for text in data["records"]]
    audit = {k: data[k] for k in ("held", "confirmed", "held_why", "held_units") if data.get(k)}  # absent in older inbox files
    return store_lab_results(records, store, journal, str(path), data.get("not_made"), **audit)


@dataclass(frozen=True)
class LabIngest:
    """What taking a lab sheet back did: ``records`` valid rows, ``new`` of them stored now
    (0 when ``queued`` for the running manager), ``replaced`` corrections of stored values,
    ``completed`` stored samples that rows only added properties to (no value changed),
    ``not_made`` sample ids (marked so), ``pending`` ones (blank measurement cells: still
    waiting), ``warnings`` about the sheet, every ``verdicts`` of the reading, ``held`` values
    outside the model's interval (not stored, see ``holds``), ``confirmed`` sample ids stored
    despite a hold, the ``stored`` records, and ``conversions``: one line per property column
    stored in another unit than the sheet's ('hardness: HV converted to GPa for the store')."""

    records: int
    new: int
    queued: bool
    replaced: int = 0
    completed: int = 0
    not_made: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    held: list[Hold] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    stored: list[MaterialRecord] = field(default_factory=list)
    conversions: list[str] = field(default_factory=list)

    @property
    def record_ids(self) -> dict[str, str]:
        """Sample id -> the id of the record stored for it (a content hash: the same before a
        running manager has ingested a queued sheet as after)."""
        return {r.sample_id: r.record_id for r in self.stored if r.sample_id}


def confirmations(contents: SheetContents) -> set[str]:
    """Sample ids a sheet's ``confirm`` column confirms (empty when it has none)."""
    return confirmed_in_sheet(contents.confirm)


def take_lab_sheet(campaign: CampaignSpec, path: Path, replace: bool = False, sheet: str | None = None,
                   confirm: Collection[str] = (), by: str | None = None) -> LabIngest:
    """Take a filled lab sheet back, all or nothing (raises ``SheetError``).

    A running manager holds the store: the validated records then wait in the campaign's inbox
    and the manager ingests them (``queued``). ``replace``: store re-sent values as corrections
    (see ``dm_hpc.data.resend``); ``sheet``: the workbook sheet to read; ``confirm``: sample ids
    whose values outside the model's interval are meant (with the sheet's ``confirm`` column;
    ``by``: who confirms, default the login name; an id no row holds refuses the sheet). Held
    values are not stored (``holds``).
    """
    return take_lab_loaded(campaign, load_table(path, sheet), str(path), replace, confirm, by)


def take_lab_loaded(campaign: CampaignSpec, loaded: LoadedTable, origin: str, replace: bool = False,
                    confirm: Collection[str] = (), by: str | None = None) -> LabIngest:
    """``take_lab_sheet`` for a file already read (``load_table``; ``origin``: its name in
    messages and the journal)."""
    contents = read_lab_loaded(campaign, loaded, origin)
    confirm = set(confirm) | confirmations(contents)
    return take_lab_contents(campaign, contents, origin, replace, confirm, by)


def partial_warnings(campaign: CampaignSpec, stored: Iterable[MaterialRecord]) -> list[str]:
    """Samples stored with some of the lab's properties blank: the sample leaves the queue, and the
    model learns the blank property from other records only (the sample's own values inform the
    others: ``dataset.training_set``), so the user is told how to complete it. ``stored``: the
    records the sheet stores, not its rows: a held row is not stored, so its blank is not said
    until it is confirmed (it was said beside the hold: 'stored without it')."""
    from dm_hpc.campaign.labsheet import lab_properties

    wanted = lab_properties(campaign)
    out = []
    for rec in stored:
        missing = [p for p in wanted if rec.get_property(p) is None]
        if rec.sample_id and missing and len(missing) < len(wanted):
            it = "it" if len(missing) == 1 else "them"
            out.append(f"sample {rec.sample_id}: {', '.join(missing)} blank: stored without {it}; send the row "
                       f"again with {it} filled in once measured (no --replace needed)")
    return out


def outside_warnings(campaign: CampaignSpec, contents: SheetContents) -> list[str]:
    """Samples holding an element outside the campaign's design space: stored (they are what the
    lab made), but its model has no input for that element and leaves them out, so the user is
    told instead of finding out from a report ("elements outside the design space: 1")."""
    from dm_hpc.campaign.dataset import design_elements

    allowed = set(design_elements(campaign))
    out = []
    for rec in contents.records:
        extra = sorted(el for el, x in (rec.composition.fractions if rec.composition else {}).items()
                       if x > 0 and el not in allowed) if allowed else []
        if extra:
            out.append(f"sample {rec.sample_id}: {', '.join(extra)} {'is' if len(extra) == 1 else 'are'} outside the "
                       f"campaign's design space ({', '.join(sorted(allowed))}): stored, but the campaign's model "
                       "does not learn from it")
    return out


def unknown_confirmations(contents: SheetContents, confirm: Collection[str]) -> list[tuple[int, str]]:
    """A ``--confirm`` id that no row of the sheet holds: a typo, whose meant value would stay
    held while the rest is stored, so the sheet is refused naming it (a warning was missed)."""
    ids = ({r.sample_id for r in contents.records} | set(contents.confirm)
           | {sid for _, sid in [*contents.not_made, *contents.pending] if sid is not None})
    return [(0, f"--confirm {sid}: no row of this sheet has that sample id; check the id (nothing was stored)")
            for sid in sorted(set(confirm) - ids)]


def confirm_warnings(contents: SheetContents) -> list[str]:
    """A ``confirm`` cell that is filled but not a yes ("maybe"), or that a merge from another
    column covers (a merge down the confirm column is each row's yes: ``SHARED_WHEN_MERGED``):
    the value it meant stays held, so the user is told instead of nothing."""
    out = []
    for sid, cell in contents.confirm.items():
        if (anchor := merged_into(cell)) is not None:
            out.append(f"sample {sid}: its confirm cell is merged into the cell {anchor}, which is no row's confirm "
                       "cell: unmerge the cells and write yes in the row's own confirm cell to confirm")
        elif not says_yes(cell) and not says_no(cell):
            out.append(f"sample {sid}: its confirm cell says {str(cell).strip()!r}, which is not a yes "
                       "(write yes to confirm)")
    return out


def take_lab_contents(campaign: CampaignSpec, contents: SheetContents, origin: str, replace: bool = False,
                      confirm: Collection[str] = (), by: str | None = None) -> LabIngest:
    """Store a checked sheet's records, all or nothing (see ``take_lab_sheet``); ``origin``
    names the sheet in messages and the journal."""
    from dm_hpc.campaign.ownership import drop_in_inbox, exclusive

    unknown = unknown_confirmations(contents, confirm)
    if unknown:
        raise SheetError(origin, unknown)
    contents.warnings.extend(confirm_warnings(contents) + outside_warnings(campaign, contents))
    not_made = [sid for _, sid in contents.not_made if sid is not None]
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    holds = find_holds(contents.records, contents.lines, {sid: e.predicted for sid, e in state.lab.items()},
                       contents.units)

    def check(store: Store | None) -> tuple[list[MaterialRecord], list[int], list[Hold], list[str]]:
        # a record already stored (the same sheet sent again) was accepted before: no new hold
        again = {r.sample_id for r in contents.records if _record(store, r.record_id) is not None}
        fresh = [h for h in holds if h.sample_id not in again]
        if fresh:  # the store's values are read only when a value is outside its interval (rarely)
            fresh = among_stored(fresh, _stored_ranges(campaign, store, {h.prop for h in fresh}))
        checked, lines, held = apply_holds(contents.records, contents.lines, fresh, confirm, by)
        return checked, lines, held, sorted({h.sample_id for h in fresh} - {h.sample_id for h in held})

    def completions(store: Store | None, records: list[MaterialRecord]) -> int:
        # a row that only adds a property measured since supersedes the record it extends, as a
        # correction does; the summary must not call it "correcting stored values"
        return sum(1 for r in records if store is not None and r.provenance.supersedes
                   and completes(store, r, r.provenance.supersedes))

    def done(records: list[MaterialRecord], new: int, queued: bool, held: list[Hold], confirmed: list[str],
             warnings: list[str], completed: int) -> LabIngest:
        replaced = sum(bool(r.provenance.supersedes) for r in records) - completed
        return LabIngest(len(records), new, queued, replaced, completed,
                         not_made, contents.warnings + partial_warnings(campaign, records) + warnings, [sid for _, sid in contents.pending if sid is not None],
                         contents.verdicts, held, confirmed, records, unit_conversions(contents.verdicts))

    with exclusive(campaign) as owned:
        if owned is None:  # a manager holds the campaign: it ingests from its inbox
            with _snapshot(campaign) as snapshot:
                checked, lines, held, confirmed = check(snapshot)
                records = resolve_resends(snapshot, checked, lines, origin, replace, contents.units)
                warnings = _blank_warnings(campaign, contents, replace, snapshot)
                completed = completions(snapshot, records)
            # the holds and confirmations travel with the records: the manager journals them
            drop_in_inbox(campaign.run_dir, json.dumps({"records": [r.to_json() for r in records],
                                                        "not_made": not_made, **_audit(held, confirmed)}))
            return done(records, 0, True, held, confirmed, warnings, completed)
        store, journal = owned
        checked, lines, held, confirmed = check(store)
        records = resolve_resends(store, checked, lines, origin, replace, contents.units)
        warnings = _blank_warnings(campaign, contents, replace, store)
        completed = completions(store, records)
        event = store_lab_results(records, store, journal, origin, not_made, campaign, **_audit(held, confirmed))
        return done(records, event["new"], False, held, confirmed, warnings, completed)


def _stored_ranges(campaign: CampaignSpec, store: Store | None,
                   props: Collection[str]) -> dict[str, tuple[float, float]]:
    """Lowest and highest value the campaign's current records hold of each of ``props``
    (canonical units; every fidelity: a calculation's range tells a unit slip as well)."""
    if store is None:
        return {}
    df = store.to_dataframe(campaign=campaign.name)
    return {p: (float(df[p].min()), float(df[p].max())) for p in props if p in df.columns and df[p].notna().any()}


def _audit(held: list[Hold], confirmed: list[str]) -> dict:
    """What the journal keeps of a sheet's holds and confirmations: the held and the confirmed
    sample ids, why each is held (every held property of the sample, joined) and the unit the sheet
    typed each held property in (the portal's note rebuilds the interval in it: ``held_note``)."""
    why: dict[str, list[str]] = {}
    units: dict[str, dict[str, str]] = {}
    for h in held:
        why.setdefault(h.sample_id, []).append(f"{h.prop} {h.typed()} {h.reason()}")
        units.setdefault(h.sample_id, {})[h.prop] = h.said_unit
    return {"held": sorted(why), "confirmed": list(confirmed), "held_why": {k: "; ".join(v) for k, v in why.items()},
            "held_units": units}


def ingest_lab_sheet(campaign: CampaignSpec, path: Path) -> tuple[int, int, bool]:
    """``take_lab_sheet`` without options: returns ``(records, new, queued)``."""
    result = take_lab_sheet(campaign, path)
    return result.records, result.new, result.queued


def _blank_warnings(campaign: CampaignSpec, contents: SheetContents, replace: bool, store: Store | None) -> list[str]:
    """Under ``replace``, say which blank (pending) or not-made rows leave a stored value live
    (``dm_hpc.data.corrections``): a blank cell never withdraws a value silently."""
    blank = [(line, sid) for line, sid in [*contents.pending, *contents.not_made] if sid is not None]
    problems = blank_replacements(store, sorted(blank), campaign.name) if replace and blank else []
    return [f"line {line}: {msg}" for line, msg in problems]


def _record(store: Store | None, record_id: str) -> MaterialRecord | None:
    """The stored record ``record_id`` (None when the store has none, or there is no store)."""
    if store is None:
        return None
    try:
        return store.get(record_id)
    except KeyError:
        return None


@contextmanager
def _snapshot(campaign: CampaignSpec) -> Iterator[Store | None]:
    """A read-only snapshot of the store a running manager holds (None when there is none yet)."""
    try:
        store = Store.open(campaign.store, "r")
    except StoreError:
        yield None
        return
    with store:
        yield store


def retract_record(campaign: CampaignSpec, record_id: str, reason: str, by: str | None = None):
    """Withdraw a stored record of this campaign (``dm_hpc.data.corrections.retract``) and
    journal it; returns the ``Retraction``. Raises ``StoreError`` while a manager holds the store."""
    from dm_hpc.campaign.ownership import exclusive
    from dm_hpc.data.corrections import retract

    with exclusive(campaign) as held:
        if held is None:
            raise StoreError(f"campaign {campaign.name!r} is running and holds its store; "
                             f"`dm-hpc stop` it, then retract {record_id}")
        store, journal = held
        done = retract(store, record_id, reason, by)
        journal.write("retracted", record_id=record_id, reason=done.reason, by=done.by, at=done.at.isoformat())
        return done
