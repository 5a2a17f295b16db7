"""`dm-hpc serve`, `dm-hpc users add|list|revoke`, `dm-hpc audit`: the portal and its users."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dm_hpc.cli.access import portal_state
from dm_hpc.cli.output import cli_console
from dm_hpc.cli.store import _clearance, fail

console = cli_console()
users_app = typer.Typer(help="Users of the portal: add (prints a token once), list, revoke.", no_args_is_help=True)
access_app = typer.Typer(help="Access levels of records (public, consortium, restricted, embargoed) and "
                              "export requests (requests, approve, deny).",
                         no_args_is_help=True)
StateDir = Annotated[Path, typer.Option("--state-dir", help="The portal's state folder (users, grants, audit log).")]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("audit")(audit)
    app.command("contributors")(contributors)
    app.add_typer(users_app, name="users")
    app.add_typer(access_app, name="access")
    from dm_hpc.cli import access

    access.register(access_app)


def _check_tls(cert: Path, key: Path) -> None:
    """Load the pair as uvicorn will, before anything is served: a missing or wrong file is named
    here, not in a traceback after the "serving" line."""
    import ssl

    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            fail(f"{flag} {path}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        fail(f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and its private key ({exc.reason or exc})")
    except OSError as exc:
        fail(f"--tls-cert {cert} / --tls-key {key}: cannot be read ({exc.strerror or exc})")


def serve(
    campaigns: Annotated[Path, typer.Option("--campaigns", help="Folder of campaign files (*.yaml) to serve.")],
    state_dir: StateDir,
    host: Annotated[str, typer.Option(help="Address to bind; the default serves this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    trusted_proxy: Annotated[Optional[list[str]], typer.Option(
        "--trusted-proxy", help="Address of a reverse proxy whose X-Forwarded-Proto/-For are believed "
                                "(repeatable); without it those headers are ignored.")] = None,
    tls_cert: Annotated[Optional[Path], typer.Option(help="Serve HTTPS directly with this certificate (PEM).")] = None,
    tls_key: Annotated[Optional[Path], typer.Option(help="The certificate's private key (PEM).")] = None,
) -> None:
    """Serve the portal: JSON API under /api/v1 (OpenAPI at /openapi.json) and pages at /.
    Cookies are Secure whenever a request came over TLS (directly, or via a --trusted-proxy)."""
    import uvicorn

    from dm_hpc.service import create_app

    if not campaigns.is_dir():
        fail(f"--campaigns {campaigns}: not a folder")
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together")
    if tls_cert is not None:
        _check_tls(tls_cert, tls_key)
    app = create_app(campaigns, state_dir, trusted_proxies=trusted_proxy or ())
    desk = app.state.service.desk
    for file, problem in desk.problems.items():
        console.print(f"[yellow]skipped {escape(str(file))}[/]: {escape(str(problem))}", highlight=False)
    scheme = "https" if tls_cert else "http"
    console.print(f"serving {len(desk.campaigns)} campaign(s) at {scheme}://{host}:{port}/ (users: {state_dir})")
    # proxy headers are handled in the app, and only from --trusted-proxy (uvicorn's own default
    # would believe any local process)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False,
                ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None)


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, - _ .).")],
    role: Annotated[str, typer.Option(help="admin | scientist | lab | approver")],
    state_dir: StateDir,
    campaign: Annotated[Optional[list[str]], typer.Option("--campaign", help="Campaign granted (repeatable).")] = None,
    clearance: Annotated[Optional[str], typer.Option(help="Access level the user may export up to "
                                                          "(public, consortium, restricted, embargoed); default by role.")] = None,
) -> None:
    """Add a user and print its bearer token (shown once; only its hash is kept)."""
    from dm_hpc.service import Role, UserError

    try:
        r = Role(role)
    except ValueError:
        fail(f"--role must be one of {', '.join(r.value for r in Role)}, not {role!r}")
    level = _clearance(clearance, "--clearance") if clearance else None
    try:
        token = portal_state(state_dir, create=True).add_user(name, r, campaign or [], level)
    except UserError as exc:
        fail(str(exc))
    console.print(f"added {name} ({r.value}); token (shown once, keep it secret):", highlight=False)
    print(token)


@users_app.command("list")
def list_(state_dir: StateDir) -> None:
    """Users, roles, clearances and granted campaigns."""
    table = Table(title="portal users")
    for col in ("name", "role", "clearance", "campaigns", "state"):
        table.add_column(col)
    for u in portal_state(state_dir).users():
        # Text: names typed by people are data, never markup ("[/]" would end the command)
        table.add_row(Text(u.name), u.role.value, u.clearance.value, Text(", ".join(sorted(u.campaigns)) or
                      ("(all)" if u.role.value == "admin" else "-")), "revoked" if u.revoked else "active")
    console.print(table)


@users_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument()], state_dir: StateDir) -> None:
    """Revoke a user's token at once."""
    from dm_hpc.service import UserError

    try:
        portal_state(state_dir).revoke(name)
    except UserError as exc:
        fail(str(exc))
    console.print(f"revoked {name}")


def audit(
    state_dir: StateDir,
    limit: Annotated[int, typer.Option(min=1, help="Newest entries to show.")] = 50,
    action: Annotated[Optional[str], typer.Option(help="Only this action (export, upload, lab_sheet, ...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, all details.")] = False,
) -> None:
    """Who read or exported what, and when (newest first)."""
    state = portal_state(state_dir)
    entries = state.audit_log(limit=limit, action=action)
    if action and not entries and action not in (known := state.audit_actions()):
        fail(f"--action {action!r}: the log holds no such action; it holds {', '.join(known) or 'none yet'}")
    if as_json:
        for e in entries:
            print(json.dumps(e, ensure_ascii=False))
        return
    table = Table(title="audit log")
    for col in ("time (UTC)", "user", "action", "campaign", "detail"):
        table.add_column(col)
    for e in entries:
        detail = dict(e["detail"])
        if "record_ids" in detail:
            ids = detail.pop("record_ids")
            detail["records"] = f"{len(ids)}: " + ", ".join(ids[:3]) + (" ..." if len(ids) > 3 else "")
        table.add_row(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e["time"])), Text(e["user"]), Text(e["action"]),
                      Text(e["campaign"] or ""), Text(json.dumps(detail, ensure_ascii=False)))
    console.print(table)


def contributors(
    campaigns: Annotated[Path, typer.Option("--campaigns", help="Folder of campaign files (*.yaml).")],
    state_dir: StateDir,
) -> None:
    """Credit: records per contributor, times campaigns learned from them, times they were exported."""
    from dm_hpc.service import CampaignDesk
    from dm_hpc.service.records import contributor_report

    if not campaigns.is_dir():
        fail(f"--campaigns {campaigns}: not a folder")
    table = Table(title="contributors (data mileage)")
    for col in ("contributor", "records", "campaign uses", "exports"):
        table.add_column(col, justify="left" if col == "contributor" else "right")
    for row in contributor_report(CampaignDesk(campaigns), portal_state(state_dir)):
        table.add_row(Text(row["contributor"]), str(row["records"]), str(row["campaign_uses"]), str(row["exports"]))
    console.print(table)


@access_app.command("set")
def access_set(
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder.")],
    level: Annotated[str, typer.Option(help="public | consortium | restricted | embargoed")],
    record_id: Annotated[Optional[list[str]], typer.Argument(help="Record ids (default: every record matching --campaign).")] = None,
    until: Annotated[Optional[str], typer.Option(help="Last day of an embargo, YYYY-MM-DD (only with embargoed).")] = None,
    campaign: Annotated[Optional[str], typer.Option(help="All records of this campaign.")] = None,
) -> None:
    """Set the access level of records (by id, or all of a campaign)."""
    from dm_hpc.data import Store, StoreError
    from dm_hpc.data.access import AccessError, AccessMap, new_rule

    try:
        rule = new_rule(level, until)
    except AccessError as exc:
        fail(str(exc))
    if not record_id and not campaign:
        fail("name record ids or --campaign")
    try:
        with Store.open(store, "r") as s:
            known = {r.record_id for r in s.records(**({"campaign": campaign} if campaign else {}))}
    except StoreError as exc:
        fail(str(exc))
    ids = list(record_id or sorted(known))
    if not ids:
        fail(f"campaign {campaign!r} has no records in {store}")
    missing = [i for i in ids if i not in known]
    if missing:
        fail(f"not in {store}" + (f" (campaign {campaign})" if campaign else "") + f": {', '.join(missing[:5])}")
    try:
        AccessMap(store).set(ids, rule)
    except AccessError as exc:  # a damaged access.json: named, nothing logged or changed
        fail(str(exc))
    console.print(f"{len(ids)} record(s) now {rule.text()} (logged in {AccessMap(store).log_path})",
                  markup=False, highlight=False)


@access_app.command("history")
def access_history(
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder.")],
    record_id: Annotated[Optional[str], typer.Argument(help="Only the changes of this record.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Every change of access levels in a store, oldest first: when, by whom (login name from the
    shell, portal:<user> from the portal), which records, the level set."""
    from dm_hpc.data.access import AccessMap
    from dm_hpc.data.layout import MANIFEST

    if not (store / MANIFEST).is_file() and not AccessMap(store).path.is_file():
        fail(f"--store {store}: not a record store")
    changes = [c for c in AccessMap(store).history() if record_id is None or record_id in c["record_ids"]]
    if as_json:
        for c in changes:
            print(json.dumps(c, ensure_ascii=False))
        return
    table = Table(title=f"access changes in {store}")
    for col in ("time (UTC)", "by", "records", "level", "until"):
        table.add_column(col)
    for c in changes:
        ids = c["record_ids"]
        table.add_row(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(c["time"])), Text(c["by"]),
                      Text(f"{len(ids)}: " + ", ".join(ids[:3]) + (" ..." if len(ids) > 3 else "")), c["level"],
                      c.get("until", ""))
    console.print(table)
