"""The model check on returned measurements: a value far outside the campaign model's prediction
is held for confirmation, neither refused silently nor stored silently.

The prediction is the one journalled with the suggestion (``lab_suggested``: the model's
posterior mean and standard deviation at the suggested point, canonical units), so the check
needs no refit and gives the same answer on every door a sheet comes through. A measured value
outside ``mean ± Z_99 · std`` (the two-sided 99 % interval of a normal predictive) is *held*:
not stored, the sample stays pending, and the lab is told the interval. Confirming is explicit
and audited: ``confirm`` (a ``confirm`` column in the sheet, ``--confirm SAMPLE_ID``, the
``confirm=`` argument, a portal checkbox) stores the value with ``provenance.extra["confirmed"]``
(who, when, the interval it fell outside).

A sample without a prediction (suggested before the model had data) is never held: there is
no interval to be outside of. Nor is a value that lies among those the campaign has stored for the
property (their range widened by ``RANGE_MARGIN`` of its width each side: ``among_stored``): a
hold is for a value far from anything seen (a unit slip, a typo), and an overconfident interval
alone cannot tell one (a multi-task GP's lab task fitted on two lab records predicted
-10.3 +- 0.34 meV/atom everywhere, and held every value of the next batch, all within the
-12..+118 meV/atom stored).
"""
from __future__ import annotations

import getpass
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

from dm_hpc.data import MaterialRecord, canonical_unit, vocabulary

#: Two-sided 99 % quantile of the standard normal (2.5758...).
Z_99 = NormalDist().inv_cdf(0.995)
#: How far beyond the range of the stored values of a property (a share of its width, each side)
#: a value may lie and still not be held (``among_stored``).
RANGE_MARGIN = 0.5
#: Words in a sheet's ``confirm`` column that confirm a held value (case-insensitive).
CONFIRM_WORDS = frozenset({"yes", "y", "true", "1", "x", "confirm", "confirmed", "ja", "oui", "sí", "si"})
#: what a confirm cell may say for "not confirmed" (or an empty cell as a reader gives it), without a warning
DECLINE_WORDS = frozenset({"", "nan", "none", "no", "n", "false", "0", "0.0"})


def interval_text(prop: str, low: float, high: float, unit: str) -> str:
    """An interval of ``prop`` (canonical ``low``, ``high``) in ``unit`` (``[-151.5, -48.48] meV/atom``)."""
    said = vocabulary.from_canonical(prop, unit)
    return f"[{float(said(low)):.4g}, {float(said(high)):.4g}] {unit}"


@dataclass(frozen=True)
class Hold:
    """A measured value outside the model's 99 % interval ``[low, high]`` (canonical ``unit``, as
    stored and audited). ``typed_unit``: the unit the sheet's column gave the value in (None:
    canonical); what is said to people (``typed``, ``reason``, ``message``) is in it, so a lab that
    typed 1700 meV/atom reads its own number beside an interval it can compare."""

    line: int
    sample_id: str
    prop: str
    value: float
    low: float
    high: float
    unit: str
    typed_unit: str | None = None

    @property
    def said_unit(self) -> str:
        """The unit what is said of the hold is in: the sheet's (``typed_unit``), else canonical."""
        return self.typed_unit or self.unit

    def typed(self) -> str:
        """The value as the sheet gave it, with its unit (``1700 meV/atom``)."""
        return f"{float(vocabulary.from_canonical(self.prop, self.typed_unit)(self.value)):.6g} {self.said_unit}"

    def interval_text(self) -> str:
        """The interval it fell outside, in the unit the sheet gave the value in
        (``[-151.5, -48.48] meV/atom``)."""
        return interval_text(self.prop, self.low, self.high, self.said_unit)

    def reason(self, with_interval: bool = True) -> str:
        """Why it is held; ``with_interval=False`` for a reader who may not see every record the
        model learnt from (the interval is derived from them: issue 18's one gate)."""
        where = f" {self.interval_text()}" if with_interval else ""
        return f"held: outside the model's 99 % interval{where}; confirm it if it is right, or correct it"

    def message(self, with_interval: bool = True) -> str:
        """The hold as the ingest reply says it (``with_interval``: as ``reason``)."""
        return f"line {self.line}: sample {self.sample_id!r}: {self.prop} = {self.typed()} {self.reason(with_interval)}"


def interval(predicted: Mapping[str, Any], prop: str) -> tuple[float, float] | None:
    """The 99 % interval of a journalled prediction (None when there is none)."""
    mean, std = predicted.get("mean", {}).get(prop), predicted.get("std", {}).get(prop)
    if mean is None or std is None or not std > 0:
        return None
    return mean - Z_99 * std, mean + Z_99 * std


def find_holds(records: list[MaterialRecord], lines: list[int], predictions: Mapping[str, Mapping[str, Any]],
               typed_units: Mapping[str, str] | None = None) -> list[Hold]:
    """Every measured value outside its sample's 99 % interval. ``predictions``: sample id ->
    the journalled ``predicted`` dict (``{"mean": {prop: v}, "std": {prop: s}}``);
    ``typed_units``: property -> the unit the sheet gave it in (``SheetContents.units``)."""
    typed_units = typed_units or {}
    holds = []
    for line, rec in zip(lines, records):
        predicted = predictions.get(rec.sample_id or "", {})
        for p in rec.properties:
            bounds = interval(predicted, p.name)
            if bounds is not None and not bounds[0] <= p.value <= bounds[1]:
                holds.append(Hold(line, rec.sample_id or "", p.name, p.value, *bounds, canonical_unit(p.name),
                                  typed_units.get(p.name)))
    return holds


def among_stored(holds: list[Hold], ranges: Mapping[str, tuple[float, float]]) -> list[Hold]:
    """``holds`` less those whose value lies within ``ranges`` (property -> lowest and highest
    stored value, canonical units) widened by ``RANGE_MARGIN`` of the width each side."""
    def far(h: Hold) -> bool:
        if h.prop not in ranges:
            return True
        lo, hi = ranges[h.prop]
        margin = RANGE_MARGIN * (hi - lo)
        return not lo - margin <= h.value <= hi + margin

    return [h for h in holds if far(h)]


def apply_holds(records: list[MaterialRecord], lines: list[int], holds: list[Hold], confirm: Collection[str],
                by: str | None = None) -> tuple[list[MaterialRecord], list[int], list[Hold]]:
    """Split by ``confirm``: the records to store (confirmed ones stamped with who, when and the
    interval), their lines, and the holds still waiting."""
    by = by or getpass.getuser()
    at = datetime.now(UTC).isoformat()
    held_ids = {h.sample_id for h in holds if h.sample_id not in confirm}
    keep, keep_lines = [], []
    for line, rec in zip(lines, records):
        if rec.sample_id in held_ids:
            continue
        mine = [h for h in holds if h.sample_id == rec.sample_id]
        if mine:
            stamp = {"by": by, "at": at, "outside": {h.prop: [h.low, h.high] for h in mine}}
            extra = {**rec.provenance.extra, "confirmed": stamp}
            rec = rec.model_copy(update={"provenance": rec.provenance.model_copy(update={"extra": extra})})
        keep.append(rec)
        keep_lines.append(line)
    return keep, keep_lines, [h for h in holds if h.sample_id in held_ids]


def confirmed_in_sheet(column: Mapping[str, Any]) -> set[str]:
    """Sample ids whose ``confirm`` cell says yes (``column``: sample id -> cell)."""
    return {sid for sid, cell in column.items() if says_yes(cell)}


def says_yes(cell: Any) -> bool:
    """A confirm cell that says yes: a yes word, or a spreadsheet's TRUE or 1 (read as True, 1.0)."""
    if isinstance(cell, bool):
        return cell
    if isinstance(cell, (int, float)):
        return cell == 1
    return str(cell).strip().lower() in CONFIRM_WORDS


def says_no(cell: Any) -> bool:
    """A confirm cell that is empty or says no (FALSE, 0 included)."""
    return not says_yes(cell) and str(cell).strip().lower() in DECLINE_WORDS
