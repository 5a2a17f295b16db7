"""The Python API: a campaign driven from a notebook, as the CLI and the web service drive it.

In the style of BayBE's ``Campaign`` and Ax's ``Client``::

    from dm_hpc import Campaign
    camp = Campaign.load("campaigns/hea-demo.yaml")   # or Campaign.from_dict(d, base_dir=".")
    sheet = camp.suggest(4)        # DataFrame in the lab-sheet columns, property columns empty
    camp.add_measurements(filled)  # same validation as `dm-hpc ingest`; returns the records stored
    camp.records()                 # DataFrame of the campaign's records, in the lab sheet's columns
    camp.best(3)                   # the best records, in the lab sheet's columns
    camp.pending()                 # experiments suggested and not measured yet (sheet rows)
    camp.summary()                 # counts, budget, best values with units, why no model
    camp.predict(["Cu0.5Ni0.5"])   # the model's mean, std and 90 % interval at chosen compositions
    camp.train()                   # the periodic retraining, as `dm-hpc train`: a model version
    camp.report()                  # summary.md and plots, as `dm-hpc report` (shows as markdown)
    camp.run(max_seconds=None)     # the asynchronous loop, as `dm-hpc run`

A used-up budget raises ``BudgetExhausted`` (fewer suggestions than asked: a warning), never an
empty frame with the reason out of sight; suggestions drawn at random, not by a model, warn
(``RandomSuggestions``, with the reason). Input the campaign cannot read raises ``InputError``,
a prediction or training without enough records ``NoModel``, each one line naming the problem.

Every call goes through the same functions as the CLI (``campaign.suggest``, ``campaign.lab``,
``campaign.manager``, ``campaign.registry``, ``campaign.report``) and the portal
(``campaign.prediction``), so a notebook and ``dm-hpc`` see one journal and one store.
"""
from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from dm_hpc.campaign.prediction import InputError
from dm_hpc.campaign.spec import CampaignError, CampaignSpec, load_campaign, parse_campaign

if TYPE_CHECKING:
    from dm_hpc.campaign.report import Report


class BudgetExhausted(CampaignError):
    """No new suggestion can be made: the budget (or the design space) is used up; says which."""


class NoModel(CampaignError):
    """No model to predict with or to register: too few usable records (the message says why, as
    ``dm-hpc status`` does), or no registered version of the name asked for."""


class RandomSuggestions(UserWarning):
    """Suggestions drawn at random, not picked by a model: the campaign has no record yet, or too
    few to fit one (the message says which property is missing, as ``dm-hpc suggest`` does)."""


@dataclass(frozen=True)
class Trained:
    """What ``Campaign.train`` did.

    Attributes:
        status: "promoted" (``version`` is the current model now), "candidate" (registered; the
            current model stays ``current``, and ``reason`` says why) or "unchanged" (``version``,
            the latest, holds the model of these records with the same settings: nothing registered).
        version: the version registered (or found unchanged), e.g. ``v0003``.
        current: the version in use after the call.
        records: records in the training snapshot; ``trained_on``: those trained on (the rest held out).
        held_out: ``n`` (records held out; 0: too few to split), ``rmse`` (property with its unit,
            as the campaign shows it, e.g. ``"hardness [HV]"`` -> RMSE; None where none was
            held out) and ``coverage90`` (share of held-out values inside the 90 % interval).
        reason: the comparison with the model current before (``promotion``), if any.
        path: the version's folder.
    """

    status: str
    version: str
    current: str | None
    records: int
    trained_on: int
    held_out: dict[str, Any]
    reason: str | None
    path: Path

    def __str__(self) -> str:
        if self.status == "unchanged":
            return (f"unchanged: {self.version} holds the model of these {self.records} records with the same "
                    "settings; nothing registered (train(force=True) registers another version anyway)")
        if self.status == "promoted":
            return f"registered {self.version}, now the current model ({self.reason})"
        return (f"registered {self.version} as a candidate; the current model stays {self.current}: {self.reason} "
                f"(`dm-hpc models FILE --promote {self.version}` switches)")


class CampaignMoved(CampaignError):
    """A file a ``Campaign`` was seen with (its campaign file, journal or store) is no longer where
    it was: moved or deleted since. The object holds the old absolute paths, so reading on would
    see an empty campaign and writing would start a new one at the old place."""


def _in_place(method):
    """A call that reads or writes the campaign: first ``Campaign._here``."""
    @functools.wraps(method)
    def checked(self: Campaign, *args, **kwargs):
        self._here()
        return method(self, *args, **kwargs)
    return checked



def _count(n) -> int:
    """A number of rows asked for: a whole number of at least 1 (``best("3")`` reached pandas,
    ``best(-1)`` returned all rows but the last)."""
    import numbers

    if isinstance(n, bool) or not isinstance(n, numbers.Integral):  # numpy's integers are Integral too
        raise TypeError(f"n must be a whole number, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return int(n)


def _seconds(max_seconds) -> float | None:
    """A run's time: None (until a stopping rule) or a number of seconds above 0 (``run("5")``
    failed inside the manager's loop, after it had journalled a resume; ``run(-1)`` ran)."""
    import math
    import numbers

    if max_seconds is None:
        return None
    if isinstance(max_seconds, bool) or not isinstance(max_seconds, numbers.Real):
        raise TypeError(f"max_seconds must be a number of seconds or None, got {max_seconds!r}")
    if not (max_seconds > 0 and math.isfinite(max_seconds)):  # nan and inf fail too
        raise ValueError(f"max_seconds must be a finite number of seconds above 0 (or None: until a stopping "
                         f"rule ends the run), got {max_seconds!r}")
    return float(max_seconds)


def _text(name: str, value) -> str:
    """A text argument (``retract(None, ...)`` was an AttributeError from deep in the store)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a text, got {value!r}")
    return value

class Campaign:
    """One campaign: its validated file, its journal (``run_dir``) and its store."""

    def __init__(self, spec: CampaignSpec, origin: str = "<campaign>", path: str | Path | None = None) -> None:
        self.spec = spec
        self.origin = origin
        # the files this object works on (``path``: the campaign file it was loaded from): each
        # call finds those it has seen where they were, or refuses (``_here``)
        self._path = None if path is None else Path(path).absolute()
        self._files = [*([self._path] if self._path else []), spec.run_dir / "journal.jsonl", Path(spec.store)]
        self._seen: set[Path] = set()
        self._here()

    def _here(self) -> None:
        """Raise ``CampaignMoved`` when a file this campaign was seen with is gone; note the ones
        there now (a journal or store the first ``suggest`` or ``run`` makes)."""
        gone = [f for f in self._files if f in self._seen and not f.exists()]
        if gone:
            loaded = f" (this one was loaded from {self._path})" if self._path else ""
            raise CampaignMoved(f"campaign {self.name!r}: {', '.join(map(str, gone))} "
                                f"{'is' if len(gone) == 1 else 'are'} gone since this object last saw "
                                f"{'it' if len(gone) == 1 else 'them'} (moved or deleted?); nothing was read or "
                                f"written. If the campaign's folder moved, Campaign.load its file where it is now"
                                + loaded)
        self._seen.update(f for f in self._files if f.exists())

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | Path) -> Campaign:
        """From a campaign YAML file (paths in it relative to the file's folder, as for the CLI)."""
        if not isinstance(path, (str, os.PathLike)):  # a TypeError from pathlib named neither
            raise TypeError(f"Campaign.load takes the path of a campaign file (str or Path), not "
                                f"{type(path).__name__}: {path!r}")
        return cls(load_campaign(path), str(path), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: str | Path = ".") -> Campaign:
        """From a dict with the campaign file's fields; relative paths are taken from ``base_dir``."""
        if not isinstance(data, dict):
            raise CampaignError(f"a campaign is a mapping of fields, got {type(data).__name__}")
        return cls(parse_campaign(data, "<dict>", base_dir=Path(base_dir).absolute()), "<dict>")

    @property
    def name(self) -> str:
        return self.spec.name

    # ------------------------------------------------------------------ ask / tell
    @_in_place
    def suggest(self, n: int) -> pd.DataFrame:
        """``n`` new lab experiments from the current model, journalled as one lab batch.

        Returns the lab sheet's rows (``sample_id``, composition and process columns, predictions,
        empty ``property:<name> [unit]`` columns). Raises ``BudgetExhausted`` when none can be
        made; warns (``UserWarning``, with the reason) when fewer than ``n`` can, and
        (``RandomSuggestions``) when the points are random draws without predictions: the campaign
        has no record yet, or too few to fit a model (``dataset.unfit_reason`` says which property)."""
        from dm_hpc.campaign.dataset import unfit_reason
        from dm_hpc.campaign.preflight import check
        from dm_hpc.campaign.suggest import batch_table, request_lab_batch

        _count(n)
        if self.spec.lab is None:
            raise CampaignError(f"campaign {self.name!r} has no experiment fidelity to suggest for")
        check(self.spec, self.origin)
        batch = request_lab_batch(self.spec, n)
        if not batch.samples:
            raise BudgetExhausted(f"campaign {self.name!r}: no new experiment: {batch.why_empty}")
        # stacklevel 3: the caller's line, past ``_in_place``'s wrapper (2 named api.py's)
        if batch.why_empty:
            warnings.warn(f"campaign {self.name!r}: {len(batch.samples)} of {n} experiments: {batch.why_empty}",
                          stacklevel=3)
        # random draws, not a model's picks: no record yet, or too few to fit (what `dm-hpc suggest` says)
        why = batch.random_start or unfit_reason(self.spec, self._store_frame(whole=True))
        if why:  # not raised: a lab-only campaign starts this way
            warnings.warn(RandomSuggestions(f"campaign {self.name!r}: {why}"), stacklevel=3)
        table = batch_table(self.spec, batch.samples)
        table.attrs["why_empty"] = batch.why_empty
        return table

    @_in_place
    def add_measurements(self, df: pd.DataFrame | str | Path, replace: bool = False,
                         confirm: Iterable[str] = ()) -> pd.DataFrame:
        """Take filled lab-sheet rows back (checked as ``dm-hpc ingest``: all or nothing, by
        ``sample_id``); ``df`` is a DataFrame or a sheet file (.csv, .xlsx), read with the same
        guards as every other door. Returns the stored records (``records()`` columns).

        ``replace``: store re-sent values as corrections (the old ones stay, superseded);
        ``confirm``: sample ids whose values far outside the model's 99 % interval are meant
        (with the sheet's ``confirm`` column; an id no row holds is refused); other such values
        are held, not stored, and listed in the result's ``attrs["held"]``; the sheet's warnings
        (what ``dm-hpc ingest`` prints: a property left blank, a confirm cell that is not a yes)
        in ``attrs["warnings"]``, and a line per property column stored in another unit than the
        sheet's in ``attrs["conversions"]``. The frame's ``record_id`` column names each stored record.

        Raises ``SheetError`` whose messages name the row (line 2 is the first row), sample id,
        column and value; a frame with no ``property:<name> [unit]`` column is refused (with
        "did you mean"), never read as nothing measured."""
        from dm_hpc.campaign.lab import confirmations, read_lab_sheet, read_lab_table, take_lab_contents

        if isinstance(df, (str, Path)):
            contents, origin = read_lab_sheet(self.spec, Path(df)), str(df)
        elif isinstance(df, pd.DataFrame):
            contents, origin = read_lab_table(self.spec, df), "measurements"
        else:
            raise TypeError(f"add_measurements takes a DataFrame or a sheet path, not {type(df).__name__}")
        confirm = set(confirm) | confirmations(contents)
        taken = take_lab_contents(self.spec, contents, origin, replace, confirm)
        ids = {r.sample_id for r in taken.stored}
        if taken.queued:  # a running manager ingests them within a poll interval, under these ids
            out = pd.DataFrame({"sample_id": sorted(ids), "record_id": [taken.record_ids[sid] for sid in sorted(ids)]})
        else:
            stored = self.records()
            out = stored if stored.empty else stored[stored["sample_id"].isin(ids)].reset_index(drop=True)
        out.attrs["held"] = [h.message() for h in taken.held]
        out.attrs["warnings"] = list(taken.warnings)  # what `dm-hpc ingest` prints (a blank property, ...)
        out.attrs["conversions"] = list(taken.conversions)  # 'hardness: HV converted to GPa for the store'
        return out

    @_in_place
    def retract(self, record_id: str, reason: str, by: str | None = None):
        """Withdraw a stored record from queries, training and exports (it stays in the store
        with who, when and why; its lab sample is awaited again). Returns the ``Retraction``."""
        from dm_hpc.campaign.lab import retract_record

        _text("record_id", record_id)
        _text("reason", reason)
        try:
            return retract_record(self.spec, record_id, reason, by)
        except KeyError:
            raise CampaignError(f"campaign {self.name!r}: no record {record_id!r} in {self.spec.store} "
                                "(`records()` lists them)") from None

    @_in_place
    def records(self) -> pd.DataFrame:
        """The campaign's records in the store, one row each, in the lab sheet's columns
        (``dm_hpc.data.columns``): ``sample_id``, ``record_id``, ``source``, ``method``,
        ``campaign``, ``task_id``, ``time``, ``composition:<El> [at_frac]``,
        ``process:<step>:<parameter> [unit]`` (in the unit the campaign file writes),
        ``property:<name> [unit]`` and ``uncertainty:<name> [unit]`` (canonical units; an objective
        or a constrained property in the unit the campaign file writes, as on the lab sheet:
        ``CampaignSpec.shown_unit``). Its composition and process columns are ``pending()``'s: the
        campaign's elements in the file's order (then any other its records hold), and each of its
        process parameters, empty where a record has none (a calculation)."""
        df = self._store_frame()
        if df.empty:
            return self._no_records()
        from dm_hpc.campaign.labsheet import PROCESS_STEP

        have = {str(col).partition(":")[2] for col in df.columns if str(col).startswith("process.")}
        missing = {f"process.{PROCESS_STEP}:{name}": float("nan") for name in self.spec.space.process if name not in have}
        return self._sheet_frame(df.assign(**missing) if missing else df)

    def _no_records(self) -> pd.DataFrame:
        """No rows, the columns records would have (ids, then the lab sheet's composition, process
        and property columns): code written against a full frame works on an empty one."""
        from dm_hpc.campaign.suggest import batch_table

        sheet = [c for c in batch_table(self.spec, []).columns if c.startswith(("composition:", "process:", "property:"))]
        return pd.DataFrame(columns=["sample_id", "record_id", "source", "method", "campaign", *sheet])

    def _store_frame(self, whole: bool = False) -> pd.DataFrame:
        """The campaign's records as ``Store.to_dataframe`` names them; ``whole``: every record of
        its store, what its model learns from (``dataset.training_set``: records of its fidelities,
        whichever campaign filed them). No store yet: an empty frame without columns."""
        from dm_hpc.data import Store

        if not Path(self.spec.store).exists():
            return pd.DataFrame()
        with Store.open(self.spec.store, "r") as store:
            return store.to_dataframe() if whole else store.to_dataframe(campaign=self.name)

    def _sheet_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        from dm_hpc.campaign.labsheet import written_units
        from dm_hpc.data.columns import sheet_frame

        # the campaign's elements first, in the file's order, as the lab sheet (and pending()) has them
        first = [f"x_{el}" for el in self.spec.space.elements if f"x_{el}" in df.columns]
        df = df[first + [col for col in df.columns if col not in first]]

        # the campaign's properties in the unit it shows them in (an objective's or a constraint's
        # as the file writes it: ``CampaignSpec.shown_unit``), as ``suggest`` and the lab sheet head them
        return sheet_frame(df, written_units(self.spec), {p: self.spec.shown_unit(p) for p in self.spec.properties})

    @_in_place
    def pending(self) -> pd.DataFrame:
        """Experiments suggested to the lab and not measured yet (nor returned as not made), as
        lab-sheet rows (the columns of ``suggest``)."""
        from dm_hpc.campaign import journal as jn
        from dm_hpc.campaign.lab import suggestion_table
        from dm_hpc.campaign.suggest import batch_table

        table = suggestion_table(self.spec, jn.replay(self.spec.run_dir / "journal.jsonl"))
        return batch_table(self.spec, []) if table.empty else table

    @_in_place
    def best(self, n: int = 1, property: str | None = None) -> pd.DataFrame:
        """The ``n`` best records for ``property`` (default: the first objective) among the
        campaign's records that meet every constraint, best first: ``sample_id``, ``record_id``,
        ``source``, ``method``, then composition, process and property columns as on a lab sheet
        (the units in the headers: canonical, an objective's or a constrained property's as the
        campaign file writes it)."""
        from dm_hpc.campaign.spec import Goal

        _count(n)
        goal = {o.property: o.goal for o in self.spec.objectives}
        prop = property or self.spec.objectives[0].property
        if prop not in goal:
            raise ValueError(f"{prop!r} is not an objective of {self.name!r} ({', '.join(goal)})")
        from dm_hpc.campaign.dataset import meets_constraints, with_analytic

        df = with_analytic(self.spec, self._store_frame())
        if df.empty or prop not in df.columns:
            return self._no_records()
        keep = df[prop].notna() & meets_constraints(self.spec, df)
        top = df[keep].sort_values(prop, ascending=goal[prop] == Goal.min, kind="stable").head(n)
        ids = ["sample_id", "record_id", "source", "method"]
        comp = [c for c in top.columns if c.startswith("x_") and top[c].fillna(0).gt(0).any()]
        proc = [c for c in top.columns if c.startswith("process.") and top[c].notna().any()]
        props = [p for p in self.spec.properties if p in top.columns]
        cols = [c for c in ids if c in top.columns] + comp + proc + props
        return self._sheet_frame(top[cols].reset_index(drop=True))

    @_in_place
    def summary(self) -> pd.Series:
        """Where the campaign stands: lab experiments and calculations, refits, budget used,
        the best value per objective among the records that meet every constraint (in the unit the
        campaign file writes, named in the key: ``best hardness [HV]``, as records() and best() give
        it) with the fidelity whose record it is (``best hardness from``: a calculation's value is not
        a measurement's) and why no model can be fitted, if so."""
        from dm_hpc.campaign import journal as jn
        from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS, best_records, own_records, training_set, unfit_reason
        from dm_hpc.campaign.suggest import targets_reached

        c = self.spec
        state = jn.replay(c.run_dir / "journal.jsonl")
        df = self._store_frame(whole=True)  # a model is judged on every record, as `dm-hpc status` judges it
        mine = own_records(c, df)  # no store yet: no rows
        out: dict[str, Any] = {
            "campaign": self.name,
            "state": state.stopped or ("not started" if state.started_at is None and not state.lab else
                                       f"done: objective targets met ({met})" if (met := targets_reached(c, df)) else "open"),
            "records": len(mine),
            "lab experiments suggested": len(state.lab),
            "lab experiments measured": sum(e.record_id is not None for e in state.lab.values()),
            "lab experiments pending": sum(e.awaited for e in state.lab.values()),
            "lab values held": sum(bool(e.held) for e in state.lab.values()),  # awaiting a confirmation
            "calculations": len(state.tasks),
            "calculations failed": sum(t.status == jn.FAILED for t in state.tasks.values()),
            "surrogate refits": state.refits,
            "core-hours used": round(state.core_hours, 6),
        }
        if c.budget.lab_experiments is not None:
            out["lab budget left"] = max(0, c.budget.lab_experiments - len(state.lab))
        for prop, (value, fidelity) in best_records(c, mine).items():  # as records() and best() give it
            o = c.objective(prop)
            out[f"best {prop} [{o.shown_unit}]"] = float(o.shown(value))
            # named: an EMT energy read as the campaign's measured best (the run summary names it too)
            out[f"best {prop} from"] = fidelity or "-"
        if len(mine):
            out["model"] = unfit_reason(c, df) or "can be fitted"
        else:  # the store's other records may fit it (a shared store, an import): suggest fits on them
            others = training_set(c, df).fewest if not df.empty else 0
            out["model"] = (f"can be fitted on {others} records of the store (none of this campaign's yet)"
                            if others >= MIN_TRAINING_RECORDS else "no records yet")
        return pd.Series(out, dtype=object, name=self.name)

    # ------------------------------------------------------------------ model and report
    @_in_place
    def predict(self, compositions, process=None, model: str | None = None) -> pd.DataFrame:
        """The model's prediction of every objective and constraint at chosen compositions.

        ``compositions``: a list of ``{element: atomic fraction}`` dicts or formula strings
        (``"Cu0.5Ni0.5"``, ``"CuNi"``: amounts, normalised as a lab sheet's ``formula`` column),
        one of them alone, or a DataFrame whose ``composition:<El> [at_frac]`` columns (the
        frames of ``records``, ``pending``, ``suggest``; ``[at%]`` too) or element-symbol columns
        hold atomic fractions, with any ``process:<step>:<parameter> [unit]`` columns as process values.
        Fractions must sum to 1 within ``data.composition.COMPOSITION_TOLERANCE`` (a lab sheet's
        rule, as the portal's ``/predict``), and every element be in the campaign's design space.
        ``process``: a dict (for every composition) or a list of dicts, parameter -> value in the
        unit the campaign file writes its range in; default: the middle of the process box.
        ``model``: None (fitted now on every record of the store, as ``suggest`` and the portal
        fit it), a registered version (``"v0002"``) or ``"current"`` (``train`` registers them).

        Returns one row per composition (first its ``sample_id`` where a frame gave one):
        ``composition:<El> [at_frac]`` (normalised to sum to 1),
        ``process:...`` (used), and per property ``predicted:<name> [unit]`` (mean),
        ``predicted_std:<name> [unit]`` (one standard deviation) and ``90 % low:<name> [unit]``,
        ``90 % high:<name> [unit]`` (mean -+ 1.645 std), each in the unit the campaign shows it
        in (``CampaignSpec.shown_unit``, as ``suggest`` heads it); ``outside`` (where the input
        lies outside the campaign's bounds: the model extrapolates there) and ``model`` (what
        predicted: ``"fitted now on N records"`` or the version). ``attrs["model"]`` says the same.

        Raises ``InputError`` naming each composition or process value it cannot read, before
        anything is fitted; ``NoModel`` when too few records hold a property to fit a model
        (why, as ``dm-hpc status`` says it) or there is no such registered version;
        ``CampaignError`` when a file it reads (a pool campaign's pool) is gone or damaged."""
        from dm_hpc.campaign.dataset import design_elements
        from dm_hpc.campaign.preflight import check_inputs
        from dm_hpc.campaign.prediction import (in_shown_units, predict_at, prediction_frame, read_request,
                                                request_problems, said)

        c = self.spec
        check_inputs(c, self.origin, sources=False)  # a pool gone or damaged since: named, not a traceback
        elements = design_elements(c)  # as the portal's /predict reads them: one rule for both
        comps, proc = read_request(c, compositions, process)
        problems = request_problems(c, elements, comps, proc)
        if problems:
            raise InputError(f"campaign {self.name!r}: cannot predict: {said(problems)}")
        fitted_model, fitted_space, properties, used = self._predictor(model)
        rows = in_shown_units(c, predict_at(c, fitted_model, fitted_space, properties, comps, proc))
        frame = prediction_frame(c, elements, rows, used)
        if isinstance(compositions, pd.DataFrame) and "sample_id" in compositions.columns:
            frame.insert(0, "sample_id", compositions["sample_id"].to_numpy())  # one row each, in order: matched back
        return frame

    def _predictor(self, model: str | None) -> tuple[Any, Any, tuple[str, ...], dict[str, Any]]:
        """(model, its design space, its outputs, what it is) for ``predict``."""
        from dm_hpc.campaign import registry

        c = self.spec
        if model is None:
            from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS, training_set, unfit_reason
            from dm_hpc.campaign.strategy import fit_model

            df = self._store_frame(whole=True)
            data = training_set(c, df)
            if data.fewest < MIN_TRAINING_RECORDS:
                why = unfit_reason(c, df) or (f"{data.fewest} usable records in {c.store} (a model needs "
                                              f"{MIN_TRAINING_RECORDS}): the campaign has no record yet")
                raise NoModel(f"campaign {self.name!r}: no model to predict with: {why}")
            fitted = fit_model(c, data)
            return (fitted.model, fitted.space, tuple(c.properties),
                    {"name": f"fitted now on {len(data)} records", "registered": False, "records": len(data)})
        _text("model", model)
        version = registry.current(c) if model == "current" else model
        found = {v.version: v for v in registry.versions(c)}
        if version not in found:
            damaged = registry.unusable(c, version)
            if damaged is not None:
                raise NoModel(f"campaign {self.name!r}: {damaged} (registered: {', '.join(found) or 'none usable'}; "
                              "`dm-hpc train` registers a new version, `dm-hpc models` lists them)")
            asked = "no current model version" if version is None else f"no model version {version!r}"
            raise NoModel(f"campaign {self.name!r}: {asked} (registered: {', '.join(found) or 'none yet'}; "
                          "Campaign.train() or `dm-hpc train` registers one; without a model named, one is fitted now)")
        try:
            fitted_model, fitted_space, _ = registry.load(c, version)
        except registry.RegistryError as exc:
            raise NoModel(str(exc)) from None
        meta = found[version].meta
        current = " (current)" if version == registry.current(c) else ""
        return (fitted_model, fitted_space, tuple(meta.get("properties") or c.properties),
                {"name": f"{version}{current}", "registered": True, "records": meta.get("trained_on")})

    @_in_place
    def train(self, force: bool = False, surrogate: str | None = None) -> Trained:
        """The periodic retraining (as ``dm-hpc train``, in this process): fit the campaign's
        surrogate on the whole store and register it as a new model version, current when it is
        no worse than the current one on the same held-out records, else a candidate. When the
        latest version holds these records with the same settings nothing is registered
        (``force``: register anyway). ``surrogate``: the kind to train, one that the campaign
        file's ``learning.surrogate`` takes (default: the campaign's), as `dm-hpc train
        --surrogate`. Returns ``Trained`` (what was registered, its held-out
        quality, whether it was promoted; its text says it in one line).

        Raises ``NoModel`` when too few records to train on, ``CampaignError`` when the registry,
        the store or a file it reads (a pool campaign's pool) cannot be used (each one line;
        nothing is half-registered)."""
        from dm_hpc.campaign import registry
        from dm_hpc.campaign.preflight import check_inputs
        from dm_hpc.campaign.prediction import is_finite_number
        from dm_hpc.data import StoreError
        from dm_hpc.learn import SURROGATE_KINDS
        from dm_hpc.data.integrity import disk_problem

        if not isinstance(force, bool):
            raise TypeError(f"force must be True or False, got {force!r}")
        if surrogate is not None and surrogate not in SURROGATE_KINDS:
            raise InputError(f"campaign {self.name!r}: surrogate must be one of {', '.join(SURROGATE_KINDS)} "
                             f"(or None: the campaign's {self.spec.learning.surrogate!r}), got {surrogate!r}")
        c = self.spec
        check_inputs(c, self.origin, sources=False)  # a version is fitted on the campaign's own records
        try:
            result = registry.train(c, registry.TrainOptions(kind=surrogate, force=force))
        except registry.NotEnoughData as exc:
            raise NoModel(f"nothing trained: {exc}") from None
        except (registry.RegistryError, StoreError) as exc:
            raise CampaignError(str(exc)) from None
        except OSError as exc:  # a registry this account may not write (read-only, another's, full)
            said = disk_problem(exc)
            if said is None:
                raise
            raise CampaignError(f"campaign {self.name!r}: nothing registered: {said}") from None
        unchanged = isinstance(result, registry.Unchanged)
        v = result.version if unchanged else result
        decision = v.meta.get("promotion") or {}
        status = "unchanged" if unchanged else "promoted" if decision.get("promoted", True) else "candidate"
        held = v.meta.get("held_out") or {}
        # RMSEs in the unit the campaign shows each property in; NaN (none of it held out): None
        rmse = {f"{p} [{c.shown_unit(p)}]": float(c.shown_spread(p, x)) if is_finite_number(x) else None
                for p, x in (held.get("rmse") or {}).items()}
        return Trained(status, v.version, registry.current(c), int(v.meta["records"]),
                       int(v.meta.get("trained_on", v.meta["records"])),
                       {"n": int(held.get("n") or 0), "rmse": rmse,
                        "coverage90": float(held["coverage90"]) if is_finite_number(held.get("coverage90")) else None},
                       None if unchanged else decision.get("reason"), v.path)

    @_in_place
    def report(self) -> Report:
        """Write the campaign report (as ``dm-hpc report``): ``summary.md`` and its PNG plots in
        the run folder's ``report/``. Returns a ``Report``: ``summary`` (the markdown file's path),
        ``plots`` (the PNG paths it lists) and ``markdown`` (its text); a notebook shows it as
        markdown. A transfer source whose file is gone is left out, with a warning."""
        from dm_hpc.campaign.preflight import check_inputs
        from dm_hpc.campaign.report import draw_report, readable_sources

        for line in readable_sources(self.spec)[1]:  # what `dm-hpc report` prints as warnings
            warnings.warn(f"campaign {self.name!r}: {line}", stacklevel=3)
        check_inputs(self.spec, self.origin, sources=False)  # a missing pool named, not a traceback
        return draw_report(self.spec)

    @_in_place
    def run(self, max_seconds: float | None = None, quiet: bool = True):
        """The asynchronous loop (as ``dm-hpc run``, after the same preflight); returns its
        ``Summary``. Interrupted or paused, ``run`` again resumes."""
        from dm_hpc.campaign.manager import CampaignManager
        from dm_hpc.campaign.preflight import check

        max_seconds = _seconds(max_seconds)
        check(self.spec, self.origin, check_codes=True)
        return CampaignManager(self.spec, quiet=quiet).run(max_seconds=max_seconds)

    def __repr__(self) -> str:
        return f"Campaign({self.name!r}, run_dir={str(self.spec.run_dir)!r})"
