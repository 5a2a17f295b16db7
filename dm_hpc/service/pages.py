"""Server-rendered pages (Jinja2, no JavaScript): sign-in, campaigns, a campaign, its lab queue.

Signing in puts the token in an HttpOnly, SameSite=Strict cookie (``Secure`` over TLS): the
browser never hands it to scripts or sends it with another site's form posts. Every form, sign-in
included, is also checked for forgery (``forms``: Origin / Sec-Fetch-Site and a token bound to a
pre-session cookie). Pages use the same checks (``auth.check_campaign``) and the same upload path
as the API; every post is audited with its actor.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from dm_hpc.data.access import AccessLevel
from dm_hpc.service import schemas as s
from dm_hpc.service import exports as ex
from dm_hpc.service.api import (MAX_SHEET_BYTES, SHEET_TYPES, decide, receive_sheet, report_plots, requestable,
                                visible_ids)
from dm_hpc.service.auth import COOKIE, LAB, SCIENCE, Service, check_campaign, page_user, service
from dm_hpc.service.forms import FIELD, form_problem, form_token, secure, set_presession
from dm_hpc.service.state import Role, User

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _page(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    """A page whose forms carry the CSRF token (and the pre-session cookie it is bound to)."""
    token, presession = form_token(request, service(request).state.secret())
    response = templates.TemplateResponse(request, template, {**context, "csrf": token}, status_code=status_code)
    set_presession(response, request, presession)
    return response


def _forged(request: Request, user: User | None, csrf_token: str) -> Response | None:
    """A 403 page when this form post did not come from one of our pages; None when it did."""
    problem = form_problem(request, service(request).state.secret(), csrf_token)
    if problem is None:
        return None
    return _page(request, "message.html", 403, user=user, title="Not allowed", message=problem)


def _guard(request: Request, user: User | None, svc: Service, name: str, roles) -> Response | None:
    """A sign-in redirect or an error page when ``user`` may not open this page; None when allowed."""
    if user is None:
        request.state.refused = "not signed in"  # audited as a refusal (app.AuditRefusals)
        return RedirectResponse("/", status_code=303)
    try:
        check_campaign(user, svc, name, roles)
    except HTTPException as exc:
        return _page(request, "message.html", exc.status_code, user=user, title="Not allowed", message=exc.detail)
    return None


@router.get("/", response_class=HTMLResponse)
def home(request: Request, user: User | None = Depends(page_user)):
    if user is not None:
        return RedirectResponse("/campaigns", status_code=303)
    return _page(request, "signin.html", user=None)


@router.post("/signin")
def signin(request: Request, token: str = Form(""), csrf_token: str = Form("", alias=FIELD),
           svc: Service = Depends(service)):
    if (forged := _forged(request, None, csrf_token)) is not None:
        return forged
    user = svc.state.authenticate(token.strip()) if token.strip() else None
    if user is None:
        return _page(request, "signin.html", 401, user=None, error="unknown or revoked token")
    svc.state.audit(user.name, "signin")
    response = RedirectResponse("/campaigns", status_code=303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", secure=secure(request))
    return response


@router.post("/signout")
def signout(request: Request, csrf_token: str = Form("", alias=FIELD), user: User | None = Depends(page_user),
            svc: Service = Depends(service)):
    if (forged := _forged(request, user, csrf_token)) is not None:
        return forged
    if user is not None:
        svc.state.audit(user.name, "signout")
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=secure(request))
    return response


@router.get("/campaigns", response_class=HTMLResponse)
def campaign_list(request: Request, user: User | None = Depends(page_user), svc: Service = Depends(service)):
    if user is None:
        request.state.refused = "not signed in"
        return RedirectResponse("/", status_code=303)
    shown = [(n, (svc.desk.get(n).description or "").strip()) for n in svc.desk.names() if user.may_see(n)]
    return _page(request, "campaigns.html", user=user, campaigns=shown, science=user.role is not Role.lab)


@router.get("/campaigns/{name}", response_class=HTMLResponse)
def campaign_page(request: Request, name: str, user: User | None = Depends(page_user),
                  svc: Service = Depends(service)):
    if (denied := _guard(request, user, svc, name, SCIENCE)) is not None:
        return denied
    folder = svc.desk.report(name, user.clearance)
    svc.state.audit(user.name, "status", name)
    return _page(request, "campaign.html", user=user, s=svc.desk.status(name, user.clearance),
                 plots=report_plots(folder))


@router.post("/campaigns/{name}/report")
def redraw(request: Request, name: str, csrf_token: str = Form("", alias=FIELD),
           user: User | None = Depends(page_user), svc: Service = Depends(service)):
    if (denied := _guard(request, user, svc, name, SCIENCE) or _forged(request, user, csrf_token)) is not None:
        return denied
    svc.desk.report(name, user.clearance, force=True)
    svc.state.audit(user.name, "report_redraw", name, clearance=user.clearance.value)
    return RedirectResponse(f"/campaigns/{name}", status_code=303)


@router.get("/campaigns/{name}/plots/{plot}")
def plot_file(request: Request, name: str, plot: str, user: User | None = Depends(page_user),
              svc: Service = Depends(service)):
    if (denied := _guard(request, user, svc, name, SCIENCE)) is not None:
        return denied
    folder = svc.desk.report(name, user.clearance)
    if plot not in report_plots(folder):
        return _page(request, "message.html", 404, user=user, title="Not found", message="no such plot")
    return FileResponse(folder / plot, media_type="image/png")


def _lab_page(request: Request, user: User, svc: Service, name: str, status_code: int = 200, **extra) -> HTMLResponse:
    header, rows, held = svc.desk.lab_view(name, user.clearance)
    return _page(request, "lab.html", status_code, user=user, name=name, header=header, pending=rows,
                 held_pending=held, levels=list(AccessLevel), **extra)


@router.get("/campaigns/{name}/lab", response_class=HTMLResponse)
def lab_page(request: Request, name: str, user: User | None = Depends(page_user), svc: Service = Depends(service)):
    if (denied := _guard(request, user, svc, name, LAB)) is not None:
        return denied
    return _lab_page(request, user, svc, name)


@router.get("/campaigns/{name}/lab/sheet.{fmt}")
def lab_sheet(request: Request, name: str, fmt: str, user: User | None = Depends(page_user),
              svc: Service = Depends(service)):
    if (denied := _guard(request, user, svc, name, LAB)) is not None:
        return denied
    if fmt not in SHEET_TYPES:
        return _page(request, "message.html", 404, user=user, title="Not found", message="sheets are .xlsx or .csv")
    svc.state.audit(user.name, "lab_sheet", name, format=fmt)
    return Response(svc.desk.lab_sheet(name, fmt, user.clearance), media_type=SHEET_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}-lab.{fmt}"'})


@router.get("/campaigns/{name}/lab/annotated/{token}.xlsx")
def lab_annotated(request: Request, name: str, token: str, user: User | None = Depends(page_user),
                  svc: Service = Depends(service)):
    """The annotated copy of an upload: every cell's verdict, colour and comment."""
    if (denied := _guard(request, user, svc, name, LAB)) is not None:
        return denied
    path = svc.desk.annotated(name, token, None if user.role == Role.admin else user.name)
    if path is None:
        return _page(request, "message.html", 404, user=user, title="Not found", message="no such annotated sheet")
    return FileResponse(path, media_type=SHEET_TYPES["xlsx"],
                        headers={"Content-Disposition": f'attachment; filename="{name}-annotated.xlsx"'})


@router.post("/campaigns/{name}/lab", response_class=HTMLResponse)
def lab_upload(request: Request, name: str, file: UploadFile = File(...), access_level: AccessLevel = Form(AccessLevel.consortium),
               embargo_until: str = Form(""), confirm_held: str = Form(""),
               csrf_token: str = Form("", alias=FIELD),
               user: User | None = Depends(page_user), svc: Service = Depends(service)):
    if (denied := _guard(request, user, svc, name, LAB) or _forged(request, user, csrf_token)) is not None:
        return denied
    try:
        until = date.fromisoformat(embargo_until) if embargo_until.strip() else None
    except ValueError:
        until = None
    result = receive_sheet(svc, user, name, file.filename or "", file.file.read(MAX_SHEET_BYTES + 1), access_level, until,
                           confirm_held=confirm_held == "yes")
    if isinstance(result, s.UploadRejected):
        return _lab_page(request, user, svc, name, 400, rejected=result)
    return _lab_page(request, user, svc, name, result=result)


def _exports_page(request: Request, user: User, svc: Service, status_code: int = 200, **extra) -> HTMLResponse:
    import time

    shown = []
    for r in ex.requests(svc.state, user):
        row = ex.as_json(r, visible_ids(svc, user, r))
        row["until_text"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(r.until)) if r.until else ""
        shown.append(row)
    return _page(request, "exports.html", status_code, user=user, requests=shown, approver=user.role in ex.APPROVERS, **extra)


@router.get("/exports", response_class=HTMLResponse)
def exports_page(request: Request, user: User | None = Depends(page_user), svc: Service = Depends(service)):
    if user is None:
        request.state.refused = "not signed in"
        return RedirectResponse("/", status_code=303)
    svc.state.audit(user.name, "read_export_requests")
    return _exports_page(request, user, svc)


@router.post("/campaigns/{name}/exports", response_class=HTMLResponse)
def request_export_page(request: Request, name: str, reason: str = Form(""), csrf_token: str = Form("", alias=FIELD),
                        user: User | None = Depends(page_user), svc: Service = Depends(service)):
    if (denied := _guard(request, user, svc, name, SCIENCE) or _forged(request, user, csrf_token)) is not None:
        return denied
    try:
        req = ex.request_export(svc.state, user, name, requestable(svc, user, name, None), reason)
    except ex.ExportDecisionError as exc:
        return _exports_page(request, user, svc, 400, message=str(exc), failed=True)
    return _exports_page(request, user, svc, message=f"request {req.id} sent: {len(req.record_ids)} record(s)")


def _decide_page(request: Request, request_id: int, grant: bool, days: int, note: str, csrf_token: str,
                 user: User | None, svc: Service) -> Response:
    if user is None:
        request.state.refused = "not signed in"
        return RedirectResponse("/", status_code=303)
    if (forged := _forged(request, user, csrf_token)) is not None:
        return forged
    try:
        req = decide(svc, user, request_id, grant, days, note)
    except HTTPException as exc:
        return _exports_page(request, user, svc, exc.status_code, message=exc.detail, failed=True)
    return _exports_page(request, user, svc, message=f"request {req.id} {req.status}")


@router.post("/exports/{request_id}/approve", response_class=HTMLResponse)
def approve_page(request: Request, request_id: int, days: int = Form(30), note: str = Form(""),
                 csrf_token: str = Form("", alias=FIELD), user: User | None = Depends(page_user),
                 svc: Service = Depends(service)):
    return _decide_page(request, request_id, True, days, note, csrf_token, user, svc)


@router.post("/exports/{request_id}/deny", response_class=HTMLResponse)
def deny_page(request: Request, request_id: int, note: str = Form(""), csrf_token: str = Form("", alias=FIELD),
              user: User | None = Depends(page_user), svc: Service = Depends(service)):
    return _decide_page(request, request_id, False, 30, note, csrf_token, user, svc)


@router.get("/campaigns/{name}/records/{record_id}", response_class=HTMLResponse)
def record_page(request: Request, name: str, record_id: str, user: User | None = Depends(page_user),
                svc: Service = Depends(service)):
    """A record's citation history (only for a record the user's clearance reads)."""
    import time

    from dm_hpc.service.records import cite

    if (denied := _guard(request, user, svc, name, SCIENCE)) is not None:
        return denied
    found = cite(svc.desk, svc.state, name, record_id, user)
    if found is None:
        return _page(request, "message.html", 404, user=user, title="Not found", message="no such record in this campaign")
    svc.state.audit(user.name, "citation", name, record_ids=[record_id])
    exports = [{**e, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(e["time"]))} for e in found.exports]
    return _page(request, "record.html", user=user, c=found, name=name, exports=exports)
