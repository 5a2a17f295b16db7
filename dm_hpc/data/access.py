"""Access levels per record: who may export or read a record, kept beside the store.

The plan opens data in stages (public institutions first, then firms) and protects core data
against unauthorised export. Each record has one level:

- ``public``: anyone;
- ``consortium``: members of the consortium (scientists by default);
- ``restricted``: only callers cleared for restricted data (admins, or as granted);
- ``embargoed``: as ``restricted`` until its ``until`` date (UTC, inclusive), then public (or
  ``then``: a record that merges an embargoed measurement with a restricted one stays restricted).

A caller's *clearance* is a level too; a record is readable when its effective level ranks at or
below the clearance. Clearance ``embargoed`` reads everything, embargoes included.

Why a sidecar and not a column of the HDF5 shards: shards are immutable and hashed, while a
level changes (an embargo ends, an admin opens a record), and access is policy about a record,
not its content. The sidecar is ``<store>/access.json`` (``{record_id: {"level": ..,
"until": .., "then": ..}}``, the last two for an embargo), replaced atomically under a file lock so concurrent writers lose nothing.
Records missing from it have ``DEFAULT_LEVEL``. Every change is also appended, under the same
lock, to ``<store>/access-log.jsonl`` (time, who, which records, the rule): from the shell
(``dm-hpc access set``, the login name) as from the portal (``portal:<user>``), so that a record
opened by mistake can be traced whichever door it went through (``AccessMap.history``).
"""
from __future__ import annotations


import enum
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

if TYPE_CHECKING:  # pandas only for the annotation: small commands import this module without it
    import pandas as pd

SIDECAR = "access.json"
HISTORY = "access-log.jsonl"


class AccessLevel(str, enum.Enum):
    """A record's level, or a caller's clearance (ordered from most to least open)."""

    public = "public"
    consortium = "consortium"
    restricted = "restricted"
    embargoed = "embargoed"

    @property
    def rank(self) -> int:
        return list(AccessLevel).index(self)


#: The level of a record nobody has labelled: shared within the consortium, never public by accident.
DEFAULT_LEVEL = AccessLevel.consortium


class AccessError(ValueError):
    """An access rule that makes no sense (an embargo without its end date, an unknown level)."""


class AccessMapError(AccessError):
    """A store's access levels file that cannot be read (damaged JSON, an entry with an unknown
    level): every read of the store's records refuses rather than guess a level."""


@dataclass(frozen=True)
class AccessRule:
    """One record's level; ``until`` is the last day of an embargo (UTC), ``then`` the level it
    falls to after (public, unless the record also holds data that is never to open: ``inherit``)."""

    level: AccessLevel = DEFAULT_LEVEL
    until: date | None = None
    then: AccessLevel = AccessLevel.public

    def __post_init__(self) -> None:
        if (self.level is AccessLevel.embargoed) != (self.until is not None):
            raise AccessError("an embargo needs its end date (until), and only an embargo has one")
        if self.then is not AccessLevel.public and (self.level is not AccessLevel.embargoed
                                                    or self.then is AccessLevel.embargoed):
            raise AccessError("only an embargo falls to another level when it ends, and not to an embargo")

    def effective(self, today: date | None = None) -> AccessLevel:
        """The level that applies on ``today`` (an ended embargo is ``then``, public by default)."""
        today = today or datetime.now(UTC).date()
        if self.level is AccessLevel.embargoed and self.until is not None and today > self.until:
            return self.then
        return self.level

    @property
    def lasting(self) -> AccessLevel:
        """The level once any embargo has ended (what the record is for good)."""
        return self.then if self.level is AccessLevel.embargoed else self.level

    def readable_by(self, clearance: AccessLevel, today: date | None = None) -> bool:
        return self.effective(today).rank <= clearance.rank

    def text(self) -> str:
        """The rule in words: ``embargoed until 2027-06-30, then restricted``."""
        return (self.level.value + (f" until {self.until.isoformat()}" if self.until else "")
                + (f", then {self.then.value}" if self.then is not AccessLevel.public else ""))

    def to_json(self) -> dict[str, str]:
        return {"level": self.level.value, **({"until": self.until.isoformat()} if self.until else {}),
                **({"then": self.then.value} if self.then is not AccessLevel.public else {})}


def parse_level(level: str) -> AccessLevel:
    """A record's level or a caller's clearance from user input (``parse_rule``, a command's
    ``--access-level``); raises ``AccessError`` naming the bad value and the levels."""
    try:
        return AccessLevel(level)
    except ValueError:
        raise AccessError(f"access level {level!r}: expected one of {', '.join(a.value for a in AccessLevel)}") from None


def parse_rule(level: str, until: str | date | None = None, then: str | None = None) -> AccessRule:
    """An ``AccessRule`` from user input; raises ``AccessError`` naming the bad value."""
    lvl = parse_level(level)
    if isinstance(until, str):
        try:
            until = date.fromisoformat(until.strip()) if until.strip() else None
        except ValueError:
            raise AccessError(f"embargo end {until!r}: expected a date YYYY-MM-DD") from None
    return AccessRule(lvl, until, parse_level(then) if then else AccessLevel.public)


def new_rule(level: str | AccessLevel, until: str | date | None = None, today: date | None = None) -> AccessRule:
    """A rule a user is setting now (``parse_rule``), refusing an embargo that has already ended:
    it would make the records public at once (a mistyped year), which nobody asks for under the
    word "embargoed". Stored rules whose embargo has since ended still load (``parse_rule``)."""
    rule = parse_rule(level.value if isinstance(level, AccessLevel) else level, until)
    today = today or datetime.now(UTC).date()
    if rule.until is not None and rule.until < today:
        raise AccessError(f"embargo end {rule.until.isoformat()} is in the past (today is {today.isoformat()}, UTC): "
                          "the records would be public at once; give the embargo's future last day, or level public "
                          "to open them now")
    return rule


class AccessMap:
    """The sidecar of one store: ``rule(record_id)``, ``set(ids, rule)``, ``filter(...)``."""

    def __init__(self, store_root: str | os.PathLike[str]) -> None:
        self.path = Path(store_root) / SIDECAR
        self._lock = FileLock(str(self.path) + ".lock")

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AccessMapError(f"{self.path}: not readable JSON ({exc}); restore it from a backup (deleting it "
                                 "would put every record at the default level)") from None
        if not isinstance(data, dict):
            raise AccessMapError(f"{self.path}: expected an object of record id -> level, found {type(data).__name__}")
        return data

    def rules(self) -> dict[str, AccessRule]:
        """Every labelled record's rule (``AccessMapError`` naming the file and the entry when one is damaged)."""
        out = {}
        for rid, r in self._read().items():
            try:
                out[rid] = parse_rule(r["level"], r.get("until"), r.get("then"))
            except (AccessError, KeyError, TypeError, AttributeError) as exc:
                why = str(exc) if isinstance(exc, AccessError) else 'expected {"level": ...}'
                raise AccessMapError(f"{self.path}: entry {rid!r} ({json.dumps(r)[:200]}): {why}") from None
        return out

    def rule(self, record_id: str) -> AccessRule:
        return self.rules().get(record_id, AccessRule())

    @property
    def log_path(self) -> Path:
        return self.path.with_name(HISTORY)

    def set(self, record_ids: Iterable[str], rule: AccessRule, by: str | None = None) -> int:
        """Label records (atomic replace under a lock) and log the change with ``by`` (default
        the login name); returns how many were set."""
        import getpass
        import time

        ids = list(record_ids)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if by is None:
            try:
                by = getpass.getuser()
            except (KeyError, OSError):
                by = f"uid {os.getuid()}"
        with self._lock:
            self.rules()  # a damaged map is refused before anything is logged or written (AccessMapError)
            with open(self.log_path, "a") as log:  # before the map: a change is never applied unlogged
                log.write(json.dumps({"time": time.time(), "by": by, "record_ids": ids, **rule.to_json()}) + "\n")
                log.flush()
                os.fsync(log.fileno())
            data = self._read()
            data.update({rid: rule.to_json() for rid in ids})
            tmp = self.path.with_name(f".{SIDECAR}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
            with open(tmp) as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        return len(ids)

    def inherit(self, successors: Mapping[str, Iterable[str]]) -> int:
        """Label each new record (id -> the ids it supersedes: a correction, a completion) at the
        strictest rule among those it supersedes where that is stricter than its own: a corrected
        or completed value is the same measurement, and the default level of a new id opened an
        embargoed value to the consortium (review: a completion through ``dm-hpc ingest``). The
        stricter of two embargoes is the one that ends later; an embargo taken over falls, when it
        ends, to the strictest lasting level among the rules weighed (``then``): a record that
        merges an embargoed value with a restricted one must not open to the public with the
        embargo. Returns how many were labelled."""
        if not successors:
            return 0
        rules = self.rules()

        def strictness(rule: AccessRule) -> tuple[int, date]:
            return rule.effective().rank, rule.until or date.min

        changed: dict[AccessRule, list[str]] = {}
        for rid, older in successors.items():
            found = [rules[o] for o in older if o in rules]
            if not found:
                continue
            own = rules.get(rid, AccessRule())
            strictest = max(found, key=strictness)
            rule = strictest if strictness(strictest) > strictness(own) else own
            if rule.effective() is AccessLevel.embargoed:  # its own embargo too (a portal completion's)
                weighed = [*found, own] if rid in rules else found  # an unlabelled id's default is no decision
                lasting = max((r.lasting for r in weighed), key=lambda level: level.rank)
                if lasting.rank > rule.then.rank:
                    rule = replace(rule, then=lasting)
            if rule != own:
                changed.setdefault(rule, []).append(rid)
        for rule, ids in changed.items():
            self.set(ids, rule, by="supersedes")
        return sum(len(ids) for ids in changed.values())

    def history(self) -> list[dict]:
        """Every logged change, oldest first (a damaged line, e.g. from a crash mid-write, is skipped)."""
        out = []
        try:
            lines = self.log_path.read_text().splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and {"time", "by", "record_ids", "level"} <= entry.keys():
                out.append(entry)
        return out

    def readable(self, record_ids: Iterable[str], clearance: AccessLevel,
                 today: date | None = None) -> list[bool]:
        """For each id, whether a caller with ``clearance`` may read it."""
        rules: Mapping[str, AccessRule] = self.rules()
        default = AccessRule()
        return [rules.get(rid, default).readable_by(clearance, today) for rid in record_ids]

    def state(self) -> tuple[int, int] | None:
        """What identifies the sidecar's current content (mtime in ns, size), None when absent:
        a cache of anything scoped by clearance is keyed by it (and by the date, for embargoes)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def scope(self, frame: pd.DataFrame, clearance: AccessLevel, today: date | None = None) -> pd.DataFrame:
        """The rows of a store frame (``Store.to_dataframe``: a ``record_id`` column) that a caller
        with ``clearance`` may read: the one view every derived output (best values, reports,
        models, designs) is computed from, so nothing above the clearance enters the computation."""
        if frame.empty or "record_id" not in frame.columns:
            return frame
        keep = self.readable(frame["record_id"].astype(str), clearance, today)
        return frame.loc[keep]
