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
    camp.run(max_seconds=None)     # the asynchronous loop, as `dm-hpc run`

A used-up budget raises ``BudgetExhausted`` (fewer suggestions than asked: a warning), never an
empty frame with the reason out of sight.

Every call goes through the same functions as the CLI (``campaign.suggest``, ``campaign.lab``,
``campaign.manager``), so a notebook and ``dm-hpc`` see one journal and one store.
"""
from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from dm_hpc.campaign.spec import CampaignError, CampaignSpec, load_campaign, parse_campaign


class BudgetExhausted(CampaignError):
    """No new suggestion can be made: the budget (or the design space) is used up; says which."""


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
        made; warns (``UserWarning``, with the reason) when fewer than ``n`` can, and when the
        campaign has no record yet (the points are then a random start, without predictions)."""
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
        if batch.random_start:  # not raised: a lab-only campaign starts this way
            warnings.warn(f"campaign {self.name!r}: {batch.random_start}", stacklevel=3)
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

    def _store_frame(self) -> pd.DataFrame:
        """The campaign's records as ``Store.to_dataframe`` names them (what learning reads)."""
        from dm_hpc.data import Store

        if not Path(self.spec.store).exists():
            return pd.DataFrame()
        with Store.open(self.spec.store, "r") as store:
            return store.to_dataframe(campaign=self.name)

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
        it) and why no model can be fitted, if so."""
        from dm_hpc.campaign import journal as jn
        from dm_hpc.campaign.dataset import unfit_reason
        from dm_hpc.campaign.planning import best_values

        c = self.spec
        state = jn.replay(c.run_dir / "journal.jsonl")
        df = self._store_frame()
        mine = df[df["campaign"] == self.name] if "campaign" in df.columns else df
        out: dict[str, Any] = {
            "campaign": self.name,
            "state": state.stopped or ("not started" if state.started_at is None and not state.lab else "open"),
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
        for prop, value in best_values(c, mine).items():  # as records() and best() give it
            o = c.objective(prop)
            out[f"best {prop} [{o.shown_unit}]"] = float(o.shown(value))
        out["model"] = (unfit_reason(c, df) or "can be fitted") if len(mine) else "no records yet"
        return pd.Series(out, dtype=object, name=self.name)

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
