"""Approval before data leaves: exports of records above the public level, requested and decided.

A scientist's export (``GET /records``, API or page) carries public records and, beyond them,
only records named in one of their *granted* requests that has not expired. A request names its
campaign and record ids (only ids the requester's clearance reads) and why; an approver (role
``approver``, or an admin; never the requester) grants it until a date or denies it. Requests
and decisions are rows of the service database and entries of the audit log (who, which
records, until when). Admins export without a request: they hold the store itself.

The same functions serve the API (``/api/v1/exports``), the pages (``/exports``) and the CLI
(``dm-hpc access requests|approve|deny``).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from dm_hpc.data.access import AccessLevel
from dm_hpc.service.state import Role, ServiceState, User

#: Longest a grant may run (days): an approval is for one exchange, not a standing permission.
MAX_GRANT_DAYS = 90
APPROVERS = frozenset({Role.admin, Role.approver})


class ExportDecisionError(ValueError):
    """A request that cannot be made or decided (unknown, already decided, own request, ...)."""


@dataclass(frozen=True)
class ExportRequest:
    id: int
    time: float
    requester: str
    campaign: str
    record_ids: list[str]
    reason: str
    status: str  # pending | granted | denied
    decided_by: str | None
    decided_at: float | None
    until: float | None  # end of a grant (epoch s)
    note: str | None

    def active(self, now: float | None = None) -> bool:
        return self.status == "granted" and self.until is not None and (now or time.time()) <= self.until


_COLUMNS = "id, time, requester, campaign, record_ids, reason, status, decided_by, decided_at, until, note"


def _row(row: tuple) -> ExportRequest:
    values = list(row)
    values[4] = json.loads(values[4])
    return ExportRequest(*values)


def request_export(state: ServiceState, user: User, campaign: str, record_ids: list[str], reason: str) -> ExportRequest:
    """Record ``user``'s request to export ``record_ids`` of ``campaign`` (audited)."""
    if not record_ids:
        raise ExportDecisionError("nothing to request: no record above the public level that you may read")
    if not reason.strip():
        raise ExportDecisionError("say why the records must leave (reason)")
    with state._db() as db:
        cur = db.execute("INSERT INTO export_requests (time, requester, campaign, record_ids, reason) VALUES (?, ?, ?, ?, ?)",
                         (time.time(), user.name, campaign, json.dumps(sorted(set(record_ids))), reason.strip()[:2000]))
        rid = cur.lastrowid
    state.audit(user.name, "export_request", campaign, request=rid, record_ids=sorted(set(record_ids)), reason=reason.strip()[:2000])
    return get(state, rid)


#: SQLite's INTEGER range: an id beyond it names no request (and cannot be bound to a query at all).
_SQLITE_INTEGERS = range(-(2**63), 2**63)


def get(state: ServiceState, request_id: int) -> ExportRequest:
    if request_id not in _SQLITE_INTEGERS:
        raise ExportDecisionError(f"no export request {request_id}")
    with state._db() as db:
        row = db.execute(f"SELECT {_COLUMNS} FROM export_requests WHERE id = ?", (request_id,)).fetchone()
    if row is None:
        raise ExportDecisionError(f"no export request {request_id}")
    return _row(row)


def requests(state: ServiceState, user: User | None = None, status: str | None = None) -> list[ExportRequest]:
    """Requests, newest first: all for approvers (or ``user`` None: the CLI), else ``user``'s own."""
    sql, args = f"SELECT {_COLUMNS} FROM export_requests WHERE 1", []
    if user is not None and user.role not in APPROVERS:
        sql += " AND requester = ?"
        args.append(user.name)
    if status:
        sql += " AND status = ?"
        args.append(status)
    with state._db() as db:
        return [_row(r) for r in db.execute(sql + " ORDER BY id DESC", args)]


def decide(state: ServiceState, request_id: int, approver: User, grant: bool, days: int = 30,
           note: str = "", readable=None) -> ExportRequest:
    """Grant (for ``days``) or deny a pending request; audited with who, which records, until when.
    ``readable(record_ids, clearance) -> list[bool]``: the approver must be cleared for every record."""
    req = get(state, request_id)
    if approver.role not in APPROVERS:
        raise ExportDecisionError(f"user {approver.name!r} ({approver.role.value}) may not decide export requests")
    if approver.name == req.requester:
        raise ExportDecisionError("a request is decided by someone other than its requester")
    if req.status != "pending":
        raise ExportDecisionError(f"export request {request_id} is already {req.status}")
    if grant and not 1 <= days <= MAX_GRANT_DAYS:
        raise ExportDecisionError(f"days: a grant runs 1 to {MAX_GRANT_DAYS} days, not {days}")
    if grant and readable is not None and not all(readable(req.record_ids, approver.clearance)):
        raise ExportDecisionError(f"user {approver.name!r} is not cleared for every record of request {request_id}")
    now = time.time()
    until = now + days * 86400 if grant else None
    status = "granted" if grant else "denied"
    with state._db() as db:
        db.execute("UPDATE export_requests SET status = ?, decided_by = ?, decided_at = ?, until = ?, note = ? "
                   "WHERE id = ? AND status = 'pending'", (status, approver.name, now, until, note.strip()[:2000], request_id))
    state.audit(approver.name, f"export_{status}", req.campaign, request=request_id, requester=req.requester,
                record_ids=req.record_ids, until=until, note=note.strip()[:2000])
    return get(state, request_id)


def granted_ids(state: ServiceState, user: User, campaign: str, now: float | None = None) -> set[str]:
    """Record ids of ``campaign`` that ``user`` may export beyond the public ones (active grants)."""
    now = now or time.time()
    with state._db() as db:
        rows = db.execute(f"SELECT {_COLUMNS} FROM export_requests WHERE requester = ? AND campaign = ? "
                          "AND status = 'granted' AND until >= ?", (user.name, campaign, now)).fetchall()
    return {rid for r in rows for rid in _row(r).record_ids}


def may_leave(user: User, level: AccessLevel, record_id: str, granted: set[str]) -> bool:
    """Whether a record the user may read may also leave in an export (public, granted, or an admin)."""
    return user.role is Role.admin or level is AccessLevel.public or record_id in granted


def as_json(req: ExportRequest, visible: set[str] | None = None) -> dict[str, Any]:
    """A request for a viewer: record ids the viewer may not read are counted, not named."""
    shown = req.record_ids if visible is None else [r for r in req.record_ids if r in visible]
    return {"id": req.id, "time": req.time, "requester": req.requester, "campaign": req.campaign,
            "record_ids": shown, "hidden": len(req.record_ids) - len(shown), "reason": req.reason,
            "status": req.status, "decided_by": req.decided_by, "until": req.until, "note": req.note}
