"""Corrections with history: retracting a stored measurement, and blank cells under ``replace``.

A store never forgets (``store``: records are immutable, shards are never rewritten), so a
retraction is itself a record: a copy of the retracted record's content with the method
``RETRACTION_METHOD`` (so its id differs, and retracting twice is idempotent), which names the
retracted record in ``provenance.supersedes`` and says who, when and why in
``provenance.extra["retraction"]``. The store then treats the retracted record like a
superseded one (out of queries, training and exports unless ``superseded=True``) and hides the
retraction record itself the same way. Nothing is erased: ``superseded=True`` shows both.

A correction (``dm_hpc.data.resend``) replaces values that a sheet re-sends. A *blank* cell
cannot correct: under ``replace`` a sample whose row is blank (or marked not made) while the
store holds a current value for it would leave the old value live without anyone saying so;
``blank_replacements`` names every such sample, its stored value and how to withdraw it.
"""
from __future__ import annotations

import getpass
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from dm_hpc.data.records import STORED, MaterialRecord
from dm_hpc.data.store import RETRACTION_METHOD, Store
from dm_hpc.data.vocabulary import canonical_unit, property_names

__all__ = ["RETRACTION_METHOD", "Retraction", "blank_replacements", "retract", "retraction_of"]


@dataclass(frozen=True)
class Retraction:
    """Who withdrew which record, when (UTC) and why."""

    record_id: str
    reason: str
    by: str
    at: datetime


def retract(store: Store, record_id: str, reason: str, by: str | None = None) -> Retraction:
    """Withdraw ``record_id`` from queries, training and exports, keeping it and the reason.

    Raises ``KeyError`` for an unknown id and ``ValueError`` for an empty reason or a record
    that is already withdrawn (superseded by a correction, or retracted).
    """
    reason = reason.strip()
    if not reason:
        raise ValueError("a retraction needs a reason (--reason): the store keeps it with the record")
    old = store.get(record_id)
    if old.provenance.method == RETRACTION_METHOD:
        raise ValueError(f"{record_id} is a retraction, not a measurement")
    if record_id in store.superseded_ids():
        raise ValueError(f"{record_id} is already withdrawn (corrected or retracted); "
                         f"`dm-hpc store query --store {store.root} --superseded` lists it")
    done = Retraction(record_id, reason, by or getpass.getuser(), datetime.now(UTC))
    extra = {**old.provenance.extra,
             "retraction": {"record_id": record_id, "reason": reason, "by": done.by, "at": done.at.isoformat()}}
    data = old.model_dump()
    data["provenance"].update(method=RETRACTION_METHOD, supersedes=[record_id], extra=extra, timestamp=done.at,
                              contributor=done.by)
    # validated anew, not model_copy: the copy would keep the old record's cached id; as stored (its
    # values are the stored record's: a range tightened since must not make a record unretractable)
    store.ingest([MaterialRecord.model_validate(data, context=STORED)])
    return done


def retraction_of(record: MaterialRecord) -> Retraction | None:
    """The retraction a record carries (None for a measurement or calculation)."""
    if record.provenance.method != RETRACTION_METHOD:
        return None
    r = record.provenance.extra["retraction"]
    return Retraction(r["record_id"], r["reason"], r["by"], datetime.fromisoformat(r["at"]))


def blank_replacements(store: Store | None, blank_samples: Iterable[tuple[int, str]], campaign: str | None,
                       source: str = "experimental") -> list[tuple[int, str]]:
    """``(line, message)`` for each blank row whose sample has a current stored value.

    ``blank_samples``: (sheet line, sample id) of rows with no measurement. Under ``replace``
    such a row leaves the stored value live, which the lab may have meant to change: say so.
    """
    blank = list(blank_samples)
    if store is None or not blank or len(store) == 0:
        return []
    df = store.to_dataframe(campaign=campaign) if campaign else store.to_dataframe()
    if df.empty:
        return []
    df = df[df["source"] == source]
    props = [p for p in property_names() if p in df.columns]
    problems = []
    for line, sid in blank:
        held = df[df["sample_id"] == sid]
        told = [f"{p} = {v:g} {canonical_unit(p)} (record {rid})"
                for p in props for v, rid in zip(held[p], held["record_id"]) if v == v]
        if told:
            problems.append((line, f"sample {sid!r}: this row is blank, so the store keeps {'; '.join(told)} "
                                   "live; a blank cell does not remove a value: write the corrected value, or "
                                   "withdraw the old one with `dm-hpc retract RECORD_ID --reason ...`"))
    return problems
