"""Server-rendered pages (Jinja2, no JavaScript): sign-in, campaigns, a campaign, its lab queue.

Signing in puts the token in an HttpOnly, SameSite=Strict cookie: the browser never hands it to
scripts or sends it with another site's form posts, so the upload form needs no CSRF token.
Pages use the same checks (``auth.check_campaign``) and the same upload path as the API.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from dm_hpc.data.access import AccessLevel
from dm_hpc.service import schemas as s
from dm_hpc.service.api import MAX_SHEET_BYTES, PLOT_NAME, SHEET_TYPES, receive_sheet
from dm_hpc.service.auth import COOKIE, LAB, SCIENCE, Service, check_campaign, page_user, service
from dm_hpc.service.state import Role, User

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _page(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def _guard(request: Request, user: User | None, svc: Service, name: str, roles) -> Response | None:
    """A sign-in redirect or an error page when ``user`` may not open this page; None when allowed."""
    if user is None:
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
def signin(request: Request, token: str = Form(""), svc: Service = Depends(service)):
    user = svc.state.authenticate(token.strip()) if token.strip() else None
    if user is None:
        return _page(request, "signin.html", 401, user=None, error="unknown or revoked token")
    svc.state.audit(user.name, "signin")
    response = RedirectResponse("/campaigns", status_code=303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict")
    return response


@router.post("/signout")
def signout():
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/campaigns", response_class=HTMLResponse)
def campaign_list(request: Request, user: User | None = Depends(page_user), svc: Service = Depends(service)):
    if user is None:
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
                 plots=sorted(p.name for p in folder.glob("*.png")))


@router.post("/campaigns/{name}/report")
def redraw(request: Request, name: str, user: User | None = Depends(page_user), svc: Service = Depends(service)):
    if (denied := _guard(request, user, svc, name, SCIENCE)) is not None:
        return denied
    svc.desk.report(name, user.clearance, force=True)
    return RedirectResponse(f"/campaigns/{name}", status_code=303)


@router.get("/campaigns/{name}/plots/{plot}")
def plot_file(request: Request, name: str, plot: str, user: User | None = Depends(page_user),
              svc: Service = Depends(service)):
    if (denied := _guard(request, user, svc, name, SCIENCE)) is not None:
        return denied
    path = svc.desk.report(name, user.clearance) / plot
    if not PLOT_NAME.match(plot) or not path.is_file():
        return _page(request, "message.html", 404, user=user, title="Not found", message="no such plot")
    return FileResponse(path, media_type="image/png")


def _lab_page(request: Request, user: User, svc: Service, name: str, status_code: int = 200, **extra) -> HTMLResponse:
    return _page(request, "lab.html", status_code, user=user, name=name, pending=svc.desk.pending(name, user.clearance),
                 levels=list(AccessLevel), **extra)


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


@router.post("/campaigns/{name}/lab", response_class=HTMLResponse)
def lab_upload(request: Request, name: str, file: UploadFile = File(...), access_level: AccessLevel = Form(AccessLevel.consortium),
               embargo_until: str = Form(""), user: User | None = Depends(page_user), svc: Service = Depends(service)):
    if (denied := _guard(request, user, svc, name, LAB)) is not None:
        return denied
    try:
        until = date.fromisoformat(embargo_until) if embargo_until.strip() else None
    except ValueError:
        until = None
    result = receive_sheet(svc, user, name, file.filename or "", file.file.read(MAX_SHEET_BYTES + 1), access_level, until)
    if isinstance(result, s.UploadRejected):
        return _lab_page(request, user, svc, name, 400, rejected=result)
    return _lab_page(request, user, svc, name, result=result)
