"""The one place where the web service calls the campaign engine.

Every campaign operation the service offers (status, lab sheet out, measurements in, predictions,
inverse design, records, report) goes through ``CampaignDesk``; the routes never import
``dm_hpc.campaign``. Today it calls the engine's functions (``campaign.lab``, ``campaign.report``,
``campaign.strategy.fit_model``, ``acquire.design``); when the Python API ``dm_hpc.Campaign``
(suggest / add_measurements / records / run) lands, only this module changes:

- ``pending`` / ``lab_sheet``  <- ``journal.replay`` + ``lab.write_suggestions``  (then ``Campaign.suggest``)
- ``ingest``                   <- ``lab.read_lab_loaded`` + ``lab.take_lab_contents`` (then ``Campaign.add_measurements``)
- ``records``                  <- ``Store.records``                              (then ``Campaign.records``)
- ``predict``                  <- ``strategy.fit_model`` (or ``registry.load``: a version asked for) +
                                  ``prediction.predict_at`` (``shown_predictions``: in the campaign's units), as
                                  ``Campaign.predict``
- ``design``                   <- ``acquire.design.design_from_dataframe``
- ``status`` / ``report``      <- ``journal.replay`` / ``report.write_report``

One gate for what a caller may see: every derived output (status and best values, report and
plots, predictions, inverse design, the lab queue's predictions) is computed from ``_view``, the
store's records scoped to the caller's clearance (``AccessMap.scope``), never from the whole store
filtered afterwards; the status's counts and stop reason too (``_status``). Models are fitted per view: a caller is served a surrogate trained only on
records at or below their clearance (one per distinct view, fitted lazily, cached by store
generation, access sidecar and date); a model-file transfer source holding records above the
clearance (its provenance's access levels) is left out of that caller's model and report by the
same rank rule (``transfer.withheld_sources``), and they are told one was, not which.

Concurrency: uvicorn serves requests from several threads. Uploads to one campaign are
serialised by a per-campaign lock (the engine's own manager lock is a ``flock`` that two threads
of one process would both fail to take, and the sheet would wait in the inbox instead of being
stored). Fitted surrogates are cached per campaign and store generation, fitted once under the
same kind of lock, so fifty clients asking for predictions cause one fit.
"""
from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from dm_hpc.campaign import CampaignError, load_campaign
from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.prediction import (
    canonical_process,
    finite_or_none,
    in_shown_units,
    predict_at,
    request_problems,
)
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.data import MaterialRecord, Store, StoreError
from dm_hpc.data.access import AccessLevel, AccessMap, AccessRule
from dm_hpc.data.sheetfiles import load_table
from dm_hpc.data.sheets import SheetContents, SheetError

if TYPE_CHECKING:
    from dm_hpc.acquire.inverse import Target


class UnknownCampaign(KeyError):
    """No campaign of that name in the service's campaigns folder."""


class NotReady(ValueError):
    """The campaign cannot answer yet (no store, too few records to fit a model); says why."""


class BadInput(ValueError):
    """A request the campaign cannot read (an element outside its design space, a process parameter
    it lacks): the caller's to fix, unlike ``NotReady``. ``problems``: (where in the request body,
    why) pairs, as a validation error names them."""

    def __init__(self, problems: list[tuple[tuple, str]]) -> None:
        super().__init__("; ".join(msg for _, msg in problems))
        self.problems = problems


def _parsed_targets(targets: list[str]) -> list[Target]:
    """The ``Target`` of each target text; ``BadInput`` naming each one that cannot be
    read (syntax, property, unit), or all of them where they cannot all be met."""
    from dm_hpc.acquire.inverse import TargetError, check_targets, parse_target

    parsed, problems = [], []
    for i, text in enumerate(targets):
        try:
            parsed.append(parse_target(text))
        except TargetError as exc:
            problems.append((("targets", i), str(exc)))
    if not problems:
        try:
            check_targets(parsed)
        except TargetError as exc:
            problems.append((("targets",), str(exc)))
    if problems:
        raise BadInput(problems)
    return parsed


class UnknownModel(LookupError):
    """No registered model version of that name; says which there are."""


class ModelWithheld(PermissionError):
    """A registered version trained on records the caller may not read (its predictions carry them)."""


@dataclass(frozen=True)
class Upload:
    """What a lab upload did: ``records`` validated, ``new`` stored (0 when only queued), the
    ``held`` values (``dm_hpc.campaign.holds``), the ``stored`` records, the ``annotated``
    copy's token (``Desk.annotated``) and the ``conversions`` the CLI's reply lists."""

    records: int
    new: int
    queued: bool
    record_ids: list[str]
    held: list = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    stored: list[MaterialRecord] = field(default_factory=list)
    annotated: str | None = None
    #: whether the uploader may see the model's intervals (it reads every record the model learnt from)
    predictions: bool = True
    #: what `dm-hpc ingest` prints beside the result (a property left blank, an element outside the space)
    warnings: list[str] = field(default_factory=list)
    #: the records this upload labelled with the form's rule (those new to the store)
    labelled: list[str] = field(default_factory=list)
    #: each stored record's own rule after the upload (a record sent again keeps its own)
    levels: dict[str, AccessRule] = field(default_factory=dict)
    #: one line per property column stored in another unit than the sheet's (``LabIngest.conversions``)
    conversions: list[str] = field(default_factory=list)


class RejectedSheet(SheetError):
    """A refused upload, with the token of its annotated copy."""

    def __init__(self, path: str, problems, annotated: str | None) -> None:
        super().__init__(path, problems)
        self.annotated = annotated


#: An annotated copy's token: 16 hex digits (what ``secrets.token_hex(8)`` gives).
ANNOTATED_TOKEN = re.compile(r"^[0-9a-f]{16}$")


@dataclass
class _Fitted:
    view: tuple  # what the model was trained on: ``_view_key`` of its clearance at the time
    model: Any
    space: Any
    transfer: bool = False  # transfer sources entered the model (``FittedSurrogate.transfer``)
    #: what a prediction says made it (``schemas.ModelUsed``): a registered version, or "fit-" and
    #: the sha256 of the ids the portal's own fit was trained on, which also keys ``_Slot.models``
    name: str = ""
    registered: bool = False
    records: int = 0
    properties: tuple[str, ...] = ()  # its outputs, in order
    #: transfer sources left out at the caller's clearance (``transfer.withheld_sources``): counted, not named
    withheld: int = 0

    def used(self) -> dict[str, Any]:
        return {"name": self.name, "registered": self.registered, "records": self.records,
                "sources_withheld": self.withheld}


@dataclass
class _Registry:
    """What the portal read of a campaign's model registry, kept while ``registry.stamp`` is
    ``stamp`` (a version is never rewritten, so only a change of the registry makes it stale):
    the versions (``meta.json`` each), and as asked for, a version's record ids and its model."""

    stamp: Any
    versions: dict[str, Any]  # version -> registry.ModelVersion, oldest first
    ids: dict[str, list[str]] = field(default_factory=dict)
    loaded: dict[str, _Fitted] = field(default_factory=dict)

    def trained_on(self, version: str) -> list[str]:
        from dm_hpc.campaign import registry

        if version not in self.ids:
            self.ids[version] = sorted(registry.trained_on(self.versions[version]))
        return self.ids[version]


@dataclass
class _Slot:
    """Per-campaign locks and caches (status, surrogates) per clearance."""

    ingest: threading.Lock = field(default_factory=threading.Lock)
    fit: threading.Lock = field(default_factory=threading.Lock)
    report: threading.Lock = field(default_factory=threading.Lock)
    status: dict[AccessLevel, tuple[tuple, dict[str, Any]]] = field(default_factory=dict)
    fitted: dict[AccessLevel, _Fitted] = field(default_factory=dict)
    models: dict[str, _Fitted] = field(default_factory=dict)  # by the sha256 of the ids trained on
    registry: _Registry | None = None  # what was read of the campaign's model registry


#: What of a journalled lab entry (``journal.LabEntry``) the portal passes on. An allow-list: a
#: field the journal gains later stays out until someone decides what a reader may see of it, as
#: ``held`` (why a value is held: the value sent and the model's interval) is kept out and
#: rebuilt as ``held_note`` (which alone reads ``held_units``, the unit the sheet typed it in).
LAB_FIELDS = ("sample_id", "composition", "process", "batch", "record_id", "not_made")
#: What of a journalled prediction the portal passes on (the journal also keeps the acquisition's scores).
PREDICTED_FIELDS = ("mean", "std")


def held_note(c: CampaignSpec, entry: jn.LabEntry, full: bool) -> str | None:
    """What the portal says of a sample whose value is held (None when none is): which property,
    that it is not stored, and what to do. The interval it fell outside only with ``full`` (a
    reader of every record the model learnt from), from the journalled prediction the hold used,
    in the unit the sheet typed the value in (``Hold.interval_text``, as `dm-hpc ingest` and
    `status` say it; canonical for a hold journalled before the unit was). The journal's why is
    read only for the campaign's property names it starts with: the value sent (whose access level
    was never set: it was not stored) and the interval stay out."""
    from dm_hpc.campaign.holds import interval, interval_text
    from dm_hpc.campaign.labsheet import lab_properties
    from dm_hpc.data import canonical_unit

    if not entry.held or not entry.awaited:
        return None
    parts = entry.held.split("; ")
    props = [p for p in dict.fromkeys([*lab_properties(c), *c.properties])
             if any(part.startswith(f"{p} ") for part in parts)]
    named = []
    for p in props:
        bounds = interval(entry.predicted, p) if full else None
        said = interval_text(p, *bounds, entry.held_units.get(p) or canonical_unit(p)) if bounds else None
        named.append(p + (f" (99 % interval {said})" if said else ""))
    return (f"{', '.join(named) or 'a value'} held, not stored: far outside the model's 99 % interval. If it is "
            "right, write yes in the sample's confirm column (or tick confirm) and send the sheet again; "
            "otherwise correct it and send the sheet again")


class CampaignDesk:
    """The campaigns of one folder (``*.yaml``), as the service sees them."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.campaigns: dict[str, CampaignSpec] = {}
        self.problems: dict[str, str] = {}  # file -> why it was skipped
        for path in sorted(self.folder.glob("*.y*ml")):
            try:
                c = load_campaign(path)
            except CampaignError as exc:
                self.problems[path.name] = str(exc)
                continue
            self.campaigns.setdefault(c.name, c)
        self._slots = {name: _Slot() for name in self.campaigns}

    def names(self) -> list[str]:
        return sorted(self.campaigns)

    def get(self, name: str) -> CampaignSpec:
        try:
            return self.campaigns[name]
        except KeyError:
            raise UnknownCampaign(name) from None

    # ------------------------------------------------------------------ reading
    def _frame(self, c: CampaignSpec) -> tuple[pd.DataFrame, int]:
        """The whole store: only for the views below and for admins' credit counts."""
        try:
            with Store.open(c.store, "r") as store:
                return store.to_dataframe(), store.info()["generation"]
        except (StoreError, OSError):
            return pd.DataFrame(), -1

    def _view_key(self, c: CampaignSpec) -> tuple:
        """What a view depends on: store generation, access sidecar, and the date (embargoes end)."""
        return self._generation(c), self.access(c.name).state(), datetime.now(UTC).date()

    def _view(self, c: CampaignSpec, clearance: AccessLevel) -> tuple[pd.DataFrame, int]:
        """The store's records a caller with ``clearance`` may read, and the store's generation:
        the only frame derived outputs are computed from."""
        df, generation = self._frame(c)
        return self.access(c.name).scope(df, clearance), generation

    def _scoped(self, c: CampaignSpec, clearance: AccessLevel) -> tuple[pd.DataFrame, bool]:
        """``_view``'s records and whether they are every record of the store, from one read (what
        the journal counts or judged over every record may then be said as it is)."""
        whole, _ = self._frame(c)
        view = self.access(c.name).scope(whole, clearance)
        return view, len(view) == len(whole)

    def sees_everything(self, name: str, clearance: AccessLevel) -> bool:
        """Whether ``clearance`` reads every record of the campaign's store and every record its
        model-file transfer sources hold (``transfer.withheld_sources``): then what the campaign
        itself computed, such as the lab queue's predictions and its own report, may be shown as it is."""
        from dm_hpc.campaign.transfer import withheld_sources

        ids = [r.record_id for r in self.records(name)]
        return all(self.access(name).readable(ids, clearance)) and not withheld_sources(self.get(name), clearance)[1]

    def status(self, name: str, clearance: AccessLevel) -> dict[str, Any]:
        """Tasks, lab experiments, budget use and best-so-far per objective among the records
        ``clearance`` reads (recomputed only when the journal, the store or its access changed)."""
        c, slot = self.get(name), self._slots[name]
        journal = c.run_dir / "journal.jsonl"
        stat = journal.stat() if journal.exists() else None
        key = (stat and (stat.st_mtime_ns, stat.st_size), *self._view_key(c))
        cached = slot.status.get(clearance)
        if cached is not None and cached[0] == key:
            return cached[1]
        slot.status[clearance] = (key, self._status(c, clearance))
        return slot.status[clearance][1]

    def _status(self, c: CampaignSpec, clearance: AccessLevel) -> dict[str, Any]:
        """The status as ``clearance`` reads it. Whoever does not read every record of the store is
        told the counts of what their view holds (``State.tasks_seen``, ``measured``: a count from
        the journal would tell them how many records are withheld) and a stop judged on values only
        as their records show it (``stopping.phase_for_reader``). Work that made no record (tasks
        planned, in flight or failed, suggestions, core-hours) is the campaign's and is counted whole."""
        from dm_hpc.campaign.dataset import best_rows, own_records, target_best_values
        from dm_hpc.campaign.stopping import phase_for_reader

        state = jn.replay(c.run_dir / "journal.jsonl")
        df, everything = self._scoped(c, clearance)
        readable = None if everything else set(df["record_id"])
        counts = {k: 0 for k in (jn.PLANNED, jn.SUBMITTED, jn.INGESTED, jn.FAILED)}
        for t in state.tasks_seen(readable):
            counts[t.status] = counts.get(t.status, 0) + 1
        mine = own_records(c, df)  # none from a frame without a campaign column: no store, or an empty one
        best = []
        # the rule of Campaign.best, the run's best lines and the report (constraints met, analytic
        # properties derived), in the unit the campaign file writes, as Campaign.summary() gives it
        rows = best_rows(c, mine)
        for prop, row in rows.items():
            o = c.objective(prop)
            comp = {k[2:]: float(v) for k, v in row.items() if k.startswith("x_") and v > 0}
            best.append({"property": prop, "goal": o.goal.value, "value": float(o.shown(row[prop])),
                         "unit": o.shown_unit, "record_id": row["record_id"], "source": row["source"],
                         "composition": comp})
        # what a stop on targets is judged by: the reader's best at the target fidelity (the manager's rule);
        # every fidelity's told a reader of computed values that an embargoed lab value met the target (review)
        own = target_best_values(c, mine)
        return {
            "name": c.name, "description": (c.description or "").strip(),
            "state": phase_for_reader(c, state, None if readable is None else own),
            "tasks": counts, "refits": state.refits, "core_hours": round(state.core_hours, 6),
            "lab_suggested": len(state.lab),
            "lab_measured": state.measured(readable),
            "records": len(mine), "best": best,
        }

    def _lab_state(self, name: str, clearance: AccessLevel) -> jn.State:
        """The lab queue as ``clearance`` may see it: a state that holds only the journal's lab
        entries, each with the fields in ``LAB_FIELDS`` and two rebuilt, never copied: the
        predictions (the campaign's own, made from every record, when ``clearance`` reads every
        record, else those of the model trained on its view, else none; mean and std only) and a
        held value's note (``held_note``)."""
        c = self.get(name)
        state = jn.replay(c.run_dir / "journal.jsonl")
        full = self.sees_everything(name, clearance)
        if full:
            predicted = {k: e.predicted for k, e in state.lab.items()}
        else:
            waiting = [k for k, e in state.lab.items() if e.record_id is None]
            try:
                again = self.predict(name, [state.lab[k].composition for k in waiting],
                                     [state.lab[k].process for k in waiting], clearance) if waiting else []
            except (NotReady, BadInput):  # BadInput: a sample of a space the campaign file has since narrowed
                again = [{"mean": {}, "std": {}} for _ in waiting]
            predicted = {k: {"mean": {p: v for p, v in a["mean"].items() if v is not None},
                             "std": {p: v for p, v in a["std"].items() if v is not None}}
                         for k, a in zip(waiting, again)}
        lab = {k: jn.LabEntry(**{f: getattr(e, f) for f in LAB_FIELDS},
                              predicted={p: dict(v) for p, v in predicted.get(k, {}).items() if p in PREDICTED_FIELDS},
                              held=held_note(c, e, full))
               for k, e in state.lab.items()}
        return jn.State(lab=lab, lab_batches=state.lab_batches)

    def pending(self, name: str, clearance: AccessLevel) -> list[dict[str, Any]]:
        """Suggested experiments not yet measured: sample id, composition, process (also as on the
        lab sheet: the author's unit, rounded), prediction with units, and whether a value sent
        for it is held (``held_note``)."""
        from dm_hpc.campaign.labsheet import shown_process
        from dm_hpc.data import canonical_unit

        c = self.get(name)
        state = self._lab_state(name, clearance)
        out = []
        for e in state.lab.values():
            if e.record_id is not None:
                continue
            shown = {}
            for k, v in e.process.items():
                header, value = shown_process(c, k, v)
                shown[k] = f"{value:g} {header.rsplit('[', 1)[1].rstrip(']')}"
            mean = e.predicted.get("mean", {})
            out.append({"sample_id": e.sample_id, "composition": e.composition, "process": e.process,
                        "process_shown": shown, "predicted": mean, "predicted_std": e.predicted.get("std", {}),
                        "units": {k: canonical_unit(k) for k in mean}, "held": e.held})
        return out

    def lab_queue(self, name: str, clearance: AccessLevel) -> tuple[list[str], list[list[Any]]]:
        """The pending experiments as the lab sheet shows them (its column names, its rounded
        values in the author's units), less the columns the lab fills in: the portal's queue."""
        return self.lab_view(name, clearance)[:2]

    def lab_view(self, name: str, clearance: AccessLevel) -> tuple[list[str], list[list[Any]], dict[str, str]]:
        """``lab_queue`` and the samples of the queue whose value is held, with their note."""
        from dm_hpc.campaign.labsheet import suggestion_rows

        state = self._lab_state(name, clearance)
        rows = suggestion_rows(self.get(name), state)
        header = [h for h in dict.fromkeys(k for row in rows for k in row)
                  if not h.startswith(("property:", "uncertainty:", "confirm"))]
        held = {e.sample_id: e.held for e in state.lab.values() if e.held}
        return header, [[row.get(h) for h in header] for row in rows], held

    def lab_sheet(self, name: str, fmt: str, clearance: AccessLevel) -> bytes:
        """The pending experiments as a sheet in the standard template (``fmt``: csv | xlsx)."""
        from dm_hpc.campaign.lab import suggestion_table
        from dm_hpc.campaign.labsheet import write_lab_sheet

        c = self.get(name)
        table = suggestion_table(c, self._lab_state(name, clearance))
        with tempfile.TemporaryDirectory() as tmp:
            out = write_lab_sheet(c, table if not table.empty else pd.DataFrame(columns=["sample_id"]),
                                  Path(tmp) / f"sheet.{fmt}")
            return out.read_bytes()

    def records(self, name: str) -> list[MaterialRecord]:
        """Every record of the campaign's store (what the campaign learns from: its own results and
        any data imported into its store)."""
        c = self.get(name)
        try:
            with Store.open(c.store, "r") as store:
                return list(store.records())
        except (StoreError, OSError):
            return []

    def access(self, name: str) -> AccessMap:
        return AccessMap(self.get(name).store)

    def report_dir(self, name: str, clearance: AccessLevel) -> Path:
        """Where the report for ``clearance`` lives: the campaign's own ``report/`` (drawn from
        every record) when ``clearance`` reads every record, else one folder per clearance."""
        c = self.get(name)
        if self.sees_everything(name, clearance):
            return c.run_dir / "report"
        return c.run_dir / "portal-reports" / clearance.value

    def report(self, name: str, clearance: AccessLevel, force: bool = False) -> Path:
        """The report's folder (summary.md and PNG plots) drawn from the records ``clearance``
        reads, redrawn when the journal, the store or its access changed since it was drawn, on
        a new day (an embargo may have ended), or when ``force``."""
        from dm_hpc.campaign.report import write_report

        c = self.get(name)
        folder = self.report_dir(name, clearance)
        summary = folder / "summary.md"
        sources = [c.run_dir / "journal.jsonl", Path(c.store) / "manifest.json", self.access(name).path]
        newest = max((p.stat().st_mtime for p in sources if p.exists()), default=0.0)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        with self._slots[name].report:
            if force or not summary.exists() or summary.stat().st_mtime < max(newest, today):
                # always the scoped view: should an access change come between report_dir's check
                # and this, the campaign's own report is drawn without the newly hidden record
                view, everything = self._scoped(c, clearance)
                write_report(c, frame=view, out_dir=folder, whole_store=everything, clearance=clearance)
        return folder

    def used_record_ids(self, name: str) -> list[str]:
        """Records the campaign learns from (its training set): the 'data mileage' of a record."""
        from dm_hpc.campaign.dataset import training_set

        c = self.get(name)
        df, _ = self._frame(c)
        return list(training_set(c, df).record_ids) if not df.empty else []

    def model_versions(self, name: str) -> list[tuple[str, str, set[str]]]:
        """The campaign's registered model versions: (version, clearance trained at, record ids
        trained on), oldest first (``campaign.registry``)."""
        from dm_hpc.campaign import registry

        found = self._registry(self.get(name))
        return [(v.version, registry.trained_clearance(v.meta).value, set(found.trained_on(v.version)))
                for v in found.versions.values()]

    # ------------------------------------------------------------------ writing
    def annotated(self, name: str, token: str, reader: str | None = None) -> Path | None:
        """The annotated copy of an upload (None for an unknown or malformed token, or when
        ``reader`` is not the user who uploaded it: the copy holds the values they sent, which
        another user's clearance may not cover). ``reader=None``: no owner check (admins)."""
        if not ANNOTATED_TOKEN.fullmatch(token):
            return None
        path = self.get(name).run_dir / "annotated" / f"{token}.xlsx"
        owner = path.with_suffix(".owner")
        if reader is not None and (not owner.is_file() or owner.read_text() != reader):
            return None
        return path if path.is_file() else None

    def ingest(self, name: str, filename: str, content: bytes, rule: AccessRule,
               contributor: str | None = None, confirm_held: bool = False,
               clearance: AccessLevel = AccessLevel.embargoed) -> Upload:
        """Validate and store a filled lab sheet, all or nothing; raises ``RejectedSheet`` with
        every bad row. A sample already measured may be sent again only unchanged (same record
        id). Rows that name no contributor are credited to ``contributor`` (the uploading user).
        Values far outside the model's interval are held unless ``confirm_held`` (confirmed by
        ``contributor``); either way an annotated copy is written."""
        import secrets

        from dm_hpc.campaign.annotate import write_annotated
        from dm_hpc.campaign.lab import read_lab_loaded

        c = self.get(name)
        full = self.sees_everything(name, clearance)  # else no interval or prediction leaves here
        token = secrets.token_hex(8)
        copy = c.run_dir / "annotated" / f"{token}.xlsx"
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.with_suffix(".owner").write_text(contributor or "")
        suffix = Path(filename).suffix.lower()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(content)
            loaded = None
            try:
                # read once: the checks and the annotated copy see the same cells
                loaded = load_table(path, shown=filename)
                # the one reader of every door: its guards, checks and verdicts (no lock needed)
                contents = read_lab_loaded(c, loaded, filename, contributor)
                with self._slots[name].ingest:
                    done, labelled = self._store_measurements(c, filename, contents, rule, confirm_held,
                                                              contributor, clearance)
            except SheetError as exc:
                if loaded is None:  # a file the guards refuse gets no annotated copy, only the refusal
                    token = None
                else:
                    write_annotated(c, loaded, copy, refused=exc.problems, predictions=full)
                raise RejectedSheet(filename, exc.verdicts, token) from None
            write_annotated(c, loaded, copy, result=done, predictions=full)
            rules = self.access(name).rules()
            levels = {r.record_id: rules.get(r.record_id, AccessRule()) for r in done.stored}
            kept = [f"sample {r.sample_id!r} was stored before, at level {levels[r.record_id].text()}: "
                    f"its level is unchanged, not {rule.text()} as the form asked (after ingest only an "
                    "admin changes a record's level)" for r in done.stored if levels[r.record_id] != rule]
            return Upload(done.records, done.new, done.queued, [r.record_id for r in done.stored], done.held,
                          done.confirmed, done.stored, token, full, [*done.warnings, *kept], labelled, levels,
                          done.conversions)

    def _store_measurements(self, c: CampaignSpec, origin: str, contents: SheetContents, rule: AccessRule,
                            confirm_held: bool = False, by: str | None = None,
                            clearance: AccessLevel = AccessLevel.embargoed):
        """Under the campaign's ingest lock: refuse changed re-measurements, skip a sheet that
        only repeats what is stored, else ingest; new records get ``rule`` (an existing record
        keeps its level: after ingest only an admin changes it). Values far outside the model's
        interval are held unless ``confirm_held`` or the sheet's confirm column (by ``by``).
        A refusal names the stored record only to a sender whose ``clearance`` reads it (its id
        hashes its content, of which the sheet gave all but the value). A sender who neither reads
        a stored record nor contributed it is refused whatever value they send: accepting the one
        equal to the stored value (nothing new) and refusing the others answered guesses until
        one gave the embargoed value back. Returns the ``LabIngest`` and the ids labelled ``rule``."""
        from dm_hpc.campaign.lab import LabIngest, confirmations, take_lab_contents
        from dm_hpc.data.sheets import unit_conversions

        records = contents.records
        state = jn.replay(c.run_dir / "journal.jsonl")
        before = {r.sample_id: state.lab[r.sample_id].record_id for r in records}
        measured = [r for r in records if before[r.sample_id] is not None]
        shown = dict(zip((r.sample_id for r in measured),
                         self.access(c.name).readable([before[r.sample_id] for r in measured], clearance)))
        own = self._contributed(c, [before[r.sample_id] for r in measured if not shown[r.sample_id]], by)
        # a row that only fills blanks of a stored record the sender may read (or sent) completes it,
        # as the sheet's instructions say; it keeps that record's level (``AccessMap.inherit``)
        completing = self._completing(c, [r for r in measured if before[r.sample_id] != r.record_id
                                          and (shown[r.sample_id] or before[r.sample_id] in own)], before)
        changed = [(0, f"sample {r.sample_id!r} is already measured"
                       + (f" (record {before[r.sample_id]}); a different value needs a new suggestion"
                          if shown[r.sample_id] else
                          " (a record you may not read); another measurement of it needs a new suggestion"))
                   for r in measured if r.sample_id not in completing
                   if before[r.sample_id] != r.record_id or not (shown[r.sample_id] or before[r.sample_id] in own)]
        if changed:
            raise SheetError(origin, changed)
        fresh = [r.record_id for r in records if before[r.sample_id] is None]
        if not fresh and not completing and not contents.not_made:
            return LabIngest(len(records), 0, False, warnings=list(contents.warnings), stored=list(records),
                             conversions=unit_conversions(contents.verdicts)), []
        # labelled before they are stored: no reader ever sees them at the default level
        # a completion is a new record too: the form's level, or the stricter one of the record it
        # completes (``AccessMap.inherit`` at ingest; a second review: it ignored the form's level)
        completed = [r.record_id for r in records if r.sample_id in completing]
        if fresh or completed:
            store_dir = Path(c.store)
            if not store_dir.exists() or not any(store_dir.iterdir()):  # the labels sit beside the records: a
                Store.open(c.store, "a").close()  # folder of only them is no store, and every ingest refused it
            self.access(c.name).set(fresh + completed, rule, by=f"portal:{by}" if by else None)
        confirm = {r.sample_id for r in records} if confirm_held else confirmations(contents)
        return take_lab_contents(c, contents, origin, confirm=confirm, by=by), fresh

    def _completing(self, c: CampaignSpec, records: list, before: dict[str, str | None]) -> set[str]:
        """Sample ids of ``records`` that only add properties to their stored record (``before``:
        sample id -> its record id; ``data.resend.completes``)."""
        if not records:
            return set()
        from dm_hpc.data.resend import completes

        with Store.open(c.store, "r") as store:
            return {r.sample_id for r in records if completes(store, r, [before[r.sample_id]])}

    def _contributed(self, c: CampaignSpec, record_ids: list[str], by: str | None) -> set[str]:
        """Those of ``record_ids`` whose provenance names ``by`` as their contributor (a lab that
        stored its own measurement above its clearance may send the sheet again)."""
        if not record_ids or not by:
            return set()
        out = set()
        with Store.open(c.store, "r") as store:
            for rid in record_ids:
                try:
                    if store.get(rid).provenance.contributor == by:
                        out.add(rid)
                except KeyError:  # journalled, not in the store (yet): not known to be theirs
                    pass
        return out

    # ------------------------------------------------------------------ models
    def _generation(self, c: CampaignSpec) -> int:
        try:
            with Store.open(c.store, "r") as store:
                return store.info()["generation"]
        except (StoreError, OSError):
            return -1

    def _fitted(self, name: str, clearance: AccessLevel) -> _Fitted:
        """The surrogate trained on the records ``clearance`` reads, for the current view. While
        one thread refits after new data, the others answer with the previous fit of the same
        clearance (trained on a view it could read then) instead of queueing behind it; an
        access change (a record made more restricted) forces waiting for the refit."""
        from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS, training_set, unfit_reason
        from dm_hpc.campaign.strategy import fit_model
        from dm_hpc.campaign.transfer import withheld_sources

        c, slot = self.get(name), self._slots[name]
        view = self._view_key(c)
        previous = slot.fitted.get(clearance)
        if previous is not None and previous.view == view:
            return previous
        usable = previous is not None and previous.view[1:] == view[1:]  # same access, same day
        if usable and not slot.fit.acquire(blocking=False):
            return previous
        if not usable:
            slot.fit.acquire()
        try:
            df, _ = self._view(c, clearance)
            # the sources the caller may be served: a model file holding records above the clearance
            # is left out, as a store record above it is (the same rank rule, ``registry.may_read``)
            for_caller, withheld = withheld_sources(c, clearance)
            data = training_set(for_caller, df) if not df.empty else None
            if data is None or data.fewest < MIN_TRAINING_RECORDS:  # where suggest and Campaign.predict fit
                why = unfit_reason(c, df) if not df.empty else None  # e.g. which property the records lack
                n = 0 if data is None else data.fewest
                raise NotReady(f"campaign {name!r} has {n} usable record{'' if n == 1 else 's'} "
                               f"at clearance {clearance.value}; a model needs at least {MIN_TRAINING_RECORDS}"
                               + (f" ({why})" if why else ""))
            # the sources left out are part of what the model learned from: two clearances reading the
            # same records but not the same model files are served two models, of two names
            trained_on = hashlib.sha256("\n".join(sorted(data.record_ids) + [f"without source {n}" for n in withheld])
                                        .encode()).hexdigest()
            fitted = slot.models.get(trained_on)
            if fitted is None:  # clearances that see the same records share one model
                model = fit_model(for_caller, data)  # a learn.fitted.FittedSurrogate
                fitted = slot.models[trained_on] = _Fitted(view, model.model, model.space, bool(model.transfer),
                                                           f"fit-{trained_on[:12]}", False, len(data.record_ids),
                                                           tuple(c.properties), len(withheld))
            slot.fitted[clearance] = replace(fitted, view=view)
            served = {id(f.model) for f in slot.fitted.values()}  # forget models no clearance is served
            slot.models = {k: f for k, f in slot.models.items() if id(f.model) in served}
            return slot.fitted[clearance]
        finally:
            slot.fit.release()

    def _registry(self, c: CampaignSpec) -> _Registry:
        """The campaign's registry as last read, read again only when ``registry.stamp`` changed
        (one ``stat`` and one listing a request, where every version's ``meta.json`` was read). The
        stamp is taken before the read: a version registered during it makes the next request read
        again, never a stale read kept under a new stamp."""
        from dm_hpc.campaign import registry

        slot, now = self._slots[c.name], registry.stamp(c)
        if slot.registry is None or slot.registry.stamp != now:
            slot.registry = _Registry(now, {v.version: v for v in registry.versions(c)})
        return slot.registry

    def _registered(self, name: str, version: str, clearance: AccessLevel) -> _Fitted:
        """Registered model ``version`` of the campaign, for a caller with ``clearance``: refused
        (``ModelWithheld``) unless it was trained at that clearance or below (``registry.may_use``,
        ``registry.load``'s rule) and the caller reads every record it was trained on today (an
        access change since the training counts; a version that kept no ids counts as trained on
        every record); ``UnknownModel`` when there is no such version."""
        from dm_hpc.campaign import registry

        c = self.get(name)
        found = self._registry(c)
        if version == "current":  # the promoted version, as the notebook's predict(model="current") asks it
            version = registry.current(c) or "current"
        if version not in found.versions:
            raise UnknownModel(f"campaign {name!r} has no model version {version!r} "
                               f"(registered: {', '.join(found.versions) or 'none yet'})")
        v = found.versions[version]
        ids = found.trained_on(version)
        if not registry.may_use(v.meta, clearance):
            why = f"was trained on records up to clearance {registry.trained_clearance(v.meta).value}"
        elif not (all(self.access(name).readable(ids, clearance)) if ids else self.sees_everything(name, clearance)):
            why = "was trained on records that are now above your clearance"
        else:
            why = None
        if why:
            raise ModelWithheld(f"model version {version} of campaign {name!r} {why}, and your clearance is "
                                f"{clearance.value}: ask without 'model' for the model of the records you read")
        if version not in found.loaded:
            try:
                model, space, _ = registry.load(c, version, clearance)
            except registry.RegistryError as exc:
                raise NotReady(str(exc)) from None
            found.loaded[version] = _Fitted((), model, space, False, version, True,
                                            int(v.meta.get("trained_on") or len(ids)),
                                            tuple(v.meta.get("properties") or c.properties))
        return found.loaded[version]

    @staticmethod
    def _check_request(c: CampaignSpec, elements: list[str], compositions: list[dict[str, float]],
                       process: list[dict[str, float]] | None) -> None:
        """Raise ``BadInput`` naming each part of a prediction request the campaign cannot read
        (``prediction.request_problems``: an element outside its design space, fractions that do
        not sum to 1, a process parameter it lacks or a process list of another length)."""
        problems = request_problems(c, list(elements), compositions, process)
        if problems:
            raise BadInput(problems)

    def predict(self, name: str, compositions: list[dict[str, float]],
                process: list[dict[str, float]] | None, clearance: AccessLevel,
                model: str | None = None) -> list[dict[str, Any]]:
        """Predicted mean and standard deviation (canonical units) of the campaign's properties
        at each composition (atomic fractions that sum to 1 within ``COMPOSITION_TOLERANCE``; any
        other sum is refused, ``BadInput``, as the route refuses it; divided by their sum here, so the
        rounding a sheet also takes is answered at fractions summing to 1 exactly), by the model
        trained on the records ``clearance`` reads, or by registered version ``model``
        (``_registered``); each row names the model (``model``: ``_Fitted.used``). ``process``
        defaults to the middle of the campaign's process box."""
        from dm_hpc.campaign.dataset import design_elements

        c = self.get(name)
        elements = design_elements(c)  # the space's, or its pool's (every model here is fitted on them)
        if not elements:  # a pool file gone or damaged since the portal started; its path is the server's
            raise NotReady(f"campaign {name!r} cannot answer: its candidate pool cannot be read "
                           "(`dm-hpc validate` on the campaign file says why)")
        # the request first: a caller whose clearance reads too few records for a model is told to
        # fix a wrong request, not to wait for data
        self._check_request(c, elements, compositions, process)
        fitted = self._fitted(name, clearance) if model is None else self._registered(name, model, clearance)
        rows = predict_at(c, fitted.model, fitted.space, fitted.properties, compositions, process)
        return [{**{k: row[k] for k in ("composition", "mean", "std", "outside")}, "model": fitted.used()}
                for row in rows]

    def shown_predictions(self, name: str, compositions: list[dict[str, float]],
                          process: list[dict[str, float]] | None, clearance: AccessLevel,
                          model: str | None = None) -> list[dict[str, Any]]:
        """``predict`` for a reader: each mean and std in the unit the campaign shows the property
        in (``CampaignSpec.shown_unit``: an objective as the file writes it, as the status's ``best``
        gives it), named in ``units``. ``process`` values are read in the campaign's units too (as its
        lab sheet and ``Campaign.predict`` write them: 450 is 450 degC where the file's box is in degC;
        read as 450 K they were answered at another temperature: review)."""
        c = self.get(name)
        process = canonical_process(c, process) if process is not None else None
        return in_shown_units(c, self.predict(name, compositions, process, clearance, model))

    def design(self, name: str, targets: list[str], n: int, clearance: AccessLevel) -> list[dict[str, Any]]:
        """Compositions most likely to meet every target (``acquire.design``), learned from the
        campaign store's records ``clearance`` reads. A campaign that transfers lends its model
        (sources included, trained on the same view) and design space for its objective. A target
        it cannot read is ``BadInput`` (checked first, as ``predict`` checks its request); what the
        records ``clearance`` reads cannot answer (too few of a target's property) is ``NotReady``."""
        from dm_hpc.acquire.design import design_from_dataframe
        from dm_hpc.compute.descriptors import analytic_functions

        c = self.get(name)
        parsed = _parsed_targets(targets)
        df, _ = self._view(c, clearance)
        if df.empty:
            raise NotReady(f"campaign {name!r} has no records at clearance {clearance.value} yet")
        lent: dict[str, Any] = {}
        if c.transfer is not None:
            try:
                fitted = self._fitted(name, clearance)
            except NotReady:
                fitted = None
            if fitted is not None and fitted.transfer:
                lent = {"space": fitted.space, "models": {c.objectives[0].property: fitted.model}}
        if not lent:  # the campaign's own design space (its process box, its pool), as `dm-hpc design --campaign`,
            # learned from the records on its elements
            from dm_hpc.campaign.dataset import within_elements
            from dm_hpc.campaign.strategy import design_space

            try:
                space = design_space(c)
            except CampaignError as exc:  # a pool file gone or damaged since the portal started
                raise NotReady(f"campaign {name!r} cannot answer: {exc}") from None
            lent = {"space": space}
            df = df[within_elements(df, space.element_names)]
            if df.empty:
                raise NotReady(f"campaign {name!r} has no records on its design space's elements at clearance "
                               f"{clearance.value} yet")
        try:
            cands, _ = design_from_dataframe(df, parsed, n=n, n_candidates=2000,
                                             exact=analytic_functions(t.property for t in parsed), **lent)
        except ValueError as exc:  # a TargetError or the like: the targets were read above, so it is the records'
            raise NotReady(f"campaign {name!r} at clearance {clearance.value}: {exc}") from None
        from dm_hpc.data import canonical_unit

        return [{"composition": cd.composition, "process": cd.process, "probability": finite_or_none(cd.probability),
                 "mean": {k: finite_or_none(v) for k, v in cd.mean.items()},
                 "std": {k: finite_or_none(v) for k, v in cd.std.items()},
                 "units": {k: canonical_unit(k) for k in cd.mean},
                 "process_units": {k: canonical_unit(k, kind="process_parameter") for k in cd.process},
                 # as `/predict` reads them (the campaign file's unit): a candidate asked about as it is given
                 "process_in_file_units": {k: c.shown(k, v, kind="process_parameter") for k, v in cd.process.items()
                                           if k in c.space.process}} for cd in cands]
