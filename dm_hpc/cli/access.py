"""`dm-hpc access requests|approve|deny`: export requests of the portal, decided from the shell;
`dm-hpc store cite RECORD_ID`: a record's citation history (``service.records.citations``).

The same rules as the portal's ``/exports`` (``service.exports``): the deciding user (``--by``) is
an approver or an admin, never the requester, cleared for every record of the request; a grant
runs 1 to 90 days; every decision is in the audit log.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from dm_hpc.cli.output import cli_console
from dm_hpc.cli.store import fail

console = cli_console()
StateDir = Annotated[Path, typer.Option("--state-dir", help="The portal's state folder (users, grants, audit log).")]
Campaigns = Annotated[Path, typer.Option("--campaigns", help="Folder of campaign files (*.yaml) the portal serves.")]
By = Annotated[str, typer.Option("--by", help="The approver (a portal user of role approver or admin).")]


def register(access_app: typer.Typer) -> None:
    from dm_hpc.cli.store import store_app

    access_app.command("requests")(requests)
    access_app.command("approve")(approve)
    access_app.command("deny")(deny)
    store_app.command("cite")(cite)  # `dm-hpc store cite`: kept here, beside the portal's other records of use


def portal_state(state_dir: Path, create: bool = False):
    """The portal's state; only ``users add`` (and ``serve``) make a new one: a mistyped folder
    read by the other commands would answer "no users, nothing audited" from an empty state."""
    from dm_hpc.service import ServiceState
    from dm_hpc.service.state import DB_NAME

    if not create and not (state_dir / DB_NAME).is_file():
        fail(f"--state-dir {state_dir}: no portal state there (no {DB_NAME}); give the folder that "
             "`dm-hpc serve` and `dm-hpc users add` use")
    return ServiceState(state_dir)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) if t else ""


def requests(
    state_dir: StateDir,
    status: Annotated[Optional[str], typer.Option(help="Only pending, granted or denied.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, with the record ids.")] = False,
) -> None:
    """Export requests, newest first (who, which campaign, how many records, why, the decision)."""
    import json

    from dm_hpc.service import exports as ex

    if status not in (None, "pending", "granted", "denied"):
        fail(f"--status must be pending, granted or denied, not {status!r}")
    if as_json:
        for r in ex.requests(portal_state(state_dir), None, status):
            print(json.dumps(ex.as_json(r), ensure_ascii=False))
        return
    table = Table(title="export requests")
    for col in ("id", "time (UTC)", "requester", "campaign", "records", "reason", "status", "by", "until (UTC)"):
        table.add_column(col)
    for r in ex.requests(portal_state(state_dir), None, status):
        # Text: a reason is typed by a partner, shown literally ("[internal review]" is not markup)
        table.add_row(str(r.id), _when(r.time), Text(r.requester), Text(r.campaign), str(len(r.record_ids)),
                      Text(r.reason), r.status, Text(r.decided_by or ""), _when(r.until))
    console.print(table)


def _decide(state_dir: Path, campaigns: Path, request_id: int, by: str, grant: bool, days: int, note: str) -> None:
    from dm_hpc.service import CampaignDesk
    from dm_hpc.service import exports as ex

    state = portal_state(state_dir)
    approver = next((u for u in state.users() if u.name == by and not u.revoked), None)
    if approver is None:
        fail(f"--by {by!r}: no active portal user of that name")
    if not campaigns.is_dir():
        fail(f"--campaigns {campaigns}: not a folder")
    desk = CampaignDesk(campaigns)
    try:
        req = ex.get(state, request_id)
        readable = desk.access(req.campaign).readable if req.campaign in desk.campaigns else None
        req = ex.decide(state, request_id, approver, grant, days, note, readable=readable)
    except ex.ExportDecisionError as exc:
        fail(str(exc))
    console.print(f"request {req.id} {req.status} by {by}" + (f" until {_when(req.until)} UTC" if req.until else ""),
                  highlight=False)


def approve(
    request_id: Annotated[int, typer.Argument(help="The request's id (`dm-hpc access requests`).")],
    state_dir: StateDir, campaigns: Campaigns, by: By,
    days: Annotated[int, typer.Option(help="How long the grant runs (1-90 days).")] = 30,
    note: Annotated[str, typer.Option(help="Why, for the audit log.")] = "",
) -> None:
    """Grant an export request for a bounded time (audited)."""
    _decide(state_dir, campaigns, request_id, by, True, days, note)


def deny(
    request_id: Annotated[int, typer.Argument(help="The request's id (`dm-hpc access requests`).")],
    state_dir: StateDir, campaigns: Campaigns, by: By,
    note: Annotated[str, typer.Option(help="Why, for the audit log and the requester.")] = "",
) -> None:
    """Deny an export request (audited)."""
    _decide(state_dir, campaigns, request_id, by, False, 30, note)


def cite(
    record_id: Annotated[str, typer.Argument(help="The record's id (dm-...).")],
    campaigns: Campaigns, state_dir: StateDir,
    as_json: Annotated[bool, typer.Option("--json", help="The history as one JSON object.")] = False,
) -> None:
    """A record's citation history: creator, source, method, the model versions trained on it, the
    campaigns that learn from it, and the portal exports that carried it."""
    import json

    from dm_hpc.service import CampaignDesk
    from dm_hpc.service.records import citations

    if not campaigns.is_dir():
        fail(f"--campaigns {campaigns}: not a folder")
    found = citations(CampaignDesk(campaigns), portal_state(state_dir)).get(record_id.strip())
    if found is None:
        fail(f"record {record_id!r} is in none of the stores of the campaigns in {campaigns}")
    if as_json:
        print(json.dumps(found.to_json(), ensure_ascii=False))
        return
    console.print(Text.assemble((found.record_id, "bold"), f": created by {found.creator} ({found.source}, "
                                f"{found.method}) at {found.created}; in the stores of {', '.join(found.stores)}"),
                  highlight=False)
    console.print("model versions trained on it: " + (", ".join(f"{c} {v} (clearance {k})" for c, v, k in found.models)
                                                     or "none"), highlight=False, markup=False)
    console.print("campaigns that learn from it: " + (", ".join(found.learned_by) or "none"), highlight=False, markup=False)
    console.print(f"exports that carried it: {len(found.exports)}", highlight=False)
    for e in found.exports:
        console.print(f"  {_when(e['time'])} UTC  {e['user']}  {e['campaign']}  {e['format']}", highlight=False,
                      markup=False)
