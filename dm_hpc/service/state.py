"""The service's own state in SQLite (``<state-dir>/service.sqlite``): users, grants, audit log.

Campaign data never lives here: it stays in the campaigns' HDF5 stores and journals. A token is
shown once when a user is added; only its SHA-256 is stored, so a copy of this file grants
nothing. Every connection is short-lived and opened per call, which keeps SQLite safe to use
from uvicorn's worker threads and from the CLI at the same time (WAL mode).
"""
from __future__ import annotations

import enum
import hashlib
import json
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dm_hpc.data.access import AccessLevel

DB_NAME = "service.sqlite"
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a user id: also a column in the audit log
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, clearance TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE, created REAL NOT NULL, revoked REAL);
CREATE TABLE IF NOT EXISTS grants (
    user TEXT NOT NULL REFERENCES users(name), campaign TEXT NOT NULL, PRIMARY KEY (user, campaign));
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, user TEXT NOT NULL, action TEXT NOT NULL,
    campaign TEXT, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS export_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, requester TEXT NOT NULL,
    campaign TEXT NOT NULL, record_ids TEXT NOT NULL, reason TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', decided_by TEXT, decided_at REAL, until REAL, note TEXT);
"""


class Role(str, enum.Enum):
    """What a user may do: admins everything; scientists their granted campaigns; labs their lab
    queues; approvers grant or deny requests to export records above the public level."""

    admin = "admin"
    scientist = "scientist"
    lab = "lab"
    approver = "approver"


#: The clearance a role gets unless told otherwise.
DEFAULT_CLEARANCE = {Role.admin: AccessLevel.embargoed, Role.scientist: AccessLevel.consortium,
                     Role.lab: AccessLevel.public, Role.approver: AccessLevel.restricted}


class UserError(ValueError):
    """A user operation that cannot be done (duplicate name, unknown user)."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    clearance: AccessLevel
    campaigns: frozenset[str]
    revoked: bool = False

    def may_see(self, campaign: str) -> bool:
        return self.role is Role.admin or campaign in self.campaigns


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ServiceState:
    """Users, grants and the audit log of one service (``state_dir`` is created if missing)."""

    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / DB_NAME
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:  # commit on success, roll back on error
                yield db
        finally:
            db.close()

    # ------------------------------------------------------------------ users
    def add_user(self, name: str, role: Role, campaigns: list[str] = (),  # type: ignore[assignment]
                 clearance: AccessLevel | None = None) -> str:
        """Create a user; returns the bearer token (shown once, stored only as its hash)."""
        if not USER_NAME.fullmatch(name or ""):  # ASCII only, no final newline (str.isalnum takes "²")
            raise UserError(f"user name {name!r}: use letters, digits, - _ .")
        token = secrets.token_urlsafe(32)
        clearance = clearance or DEFAULT_CLEARANCE[role]
        try:
            with self._db() as db:
                db.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, NULL)",
                           (name, role.value, clearance.value, token_hash(token), time.time()))
                db.executemany("INSERT INTO grants VALUES (?, ?)", [(name, c) for c in dict.fromkeys(campaigns)])
        except sqlite3.IntegrityError:
            if any(u.name == name and u.revoked for u in self.users()):
                # a name is never reused: the audit log's entries under it stay the first holder's
                raise UserError(f"user {name!r} was revoked and a name is not given again (the audit log "
                                "keeps its entries under it); choose another name") from None
            raise UserError(f"user {name!r} exists; revoke it or choose another name") from None
        return token

    def revoke(self, name: str) -> None:
        with self._db() as db:
            if db.execute("UPDATE users SET revoked = ? WHERE name = ? AND revoked IS NULL",
                          (time.time(), name)).rowcount == 0:
                raise UserError(f"no active user {name!r}")

    def _user(self, db: sqlite3.Connection, row: tuple) -> User:
        name, role, clearance, revoked = row
        grants = frozenset(c for (c,) in db.execute("SELECT campaign FROM grants WHERE user = ?", (name,)))
        return User(name, Role(role), AccessLevel(clearance), grants, revoked is not None)

    def users(self) -> list[User]:
        with self._db() as db:
            rows = db.execute("SELECT name, role, clearance, revoked FROM users ORDER BY name").fetchall()
            return [self._user(db, r) for r in rows]

    def authenticate(self, token: str) -> User | None:
        """The active user holding ``token``, or None."""
        with self._db() as db:
            row = db.execute("SELECT name, role, clearance, revoked FROM users "
                             "WHERE token_sha256 = ? AND revoked IS NULL", (token_hash(token),)).fetchone()
            return self._user(db, row) if row else None

    # ------------------------------------------------------------------ secret
    def secret(self) -> bytes:
        """The service's signing key (``secret.key``, 32 random bytes, owner-only), made on first
        use; it signs form tokens, so a copy of the database alone forges nothing."""
        path = self.dir / "secret.key"
        if not path.exists():  # written whole, then linked: a concurrent reader never sees half a key
            tmp = self.dir / f".secret.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            finally:
                tmp.unlink()
        return path.read_bytes()

    # ------------------------------------------------------------------ audit
    def audit(self, user: str, action: str, campaign: str | None = None, **detail: Any) -> None:
        """Record who read or exported what (``detail``: record ids, counts, filters)."""
        with self._db() as db:
            db.execute("INSERT INTO audit (time, user, action, campaign, detail) VALUES (?, ?, ?, ?, ?)",
                       (time.time(), user, action, campaign, json.dumps(detail, sort_keys=True, default=str)))

    def audit_actions(self) -> list[str]:
        """The actions the log holds (``audit --action`` names one of them)."""
        with self._db() as db:
            return sorted(a for (a,) in db.execute("SELECT DISTINCT action FROM audit"))

    def audit_log(self, limit: int | None = None, action: str | None = None) -> list[dict[str, Any]]:
        """Audit entries, newest first."""
        sql = "SELECT time, user, action, campaign, detail FROM audit"
        args: list[Any] = []
        if action:
            sql += " WHERE action = ?"
            args.append(action)
        sql += " ORDER BY id DESC" + (" LIMIT ?" if limit else "")
        args += [limit] if limit else []
        with self._db() as db:
            return [{"time": t, "user": u, "action": a, "campaign": c, "detail": json.loads(d)}
                    for t, u, a, c, d in db.execute(sql, args)]
