"""The JSON API under ``/api/v1`` (its OpenAPI is served at ``/openapi.json``).

Handlers are plain ``def``: FastAPI runs them in its thread pool, so a model fit or a store read
never blocks the event loop. Every read of records, sheet, prediction or design is audited.
"""
from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse

from dm_hpc.data import StoreLockedError
from dm_hpc.data.access import AccessError, AccessLevel, AccessMapError, new_rule
from dm_hpc.data.sheets import SheetError
from dm_hpc.service import exports as ex
from dm_hpc.service import schemas as s
from dm_hpc.service.auth import LAB, SCIENCE, Service, api_user, check_campaign, require_admin, service
from dm_hpc.service.campaigns import BadInput, ModelWithheld, NotReady, UnknownModel
from dm_hpc.service.records import cite, contributor_report, export_rows, readable_records
from dm_hpc.service.state import User

_ERR = {"model": dict[str, str]}
COMMON = {401: _ERR, 403: _ERR, 404: _ERR}
#: A route that reads a JSON body answers another media type with 415 (``app._invalid``).
JSON_BODY = {415: _ERR}
router = APIRouter(prefix="/api/v1", responses=COMMON)
Name = str
SHEET_TYPES = {"csv": "text/csv",
               "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def report_plots(folder) -> list[str]:
    """The plots of the report drawn in ``folder`` that a reader may be listed and served: the
    report's own (``report.PLOT_FILES``, which each redraw removes first), never any other PNG
    found there, so nothing drawn for another view or left from before is served."""
    from dm_hpc.campaign.report import PLOT_FILES

    return [name for name in PLOT_FILES.values() if (folder / name).is_file()]

#: Largest sheet accepted (bytes); the app's body limit is a little above it.
MAX_SHEET_BYTES = 4 * 2**20


@router.get("/me", response_model=s.Me)
def me(user: User = Depends(api_user)):
    return s.Me(name=user.name, role=user.role.value, clearance=user.clearance, campaigns=sorted(user.campaigns))


@router.get("/campaigns", response_model=list[s.CampaignSummary])
def campaigns(user: User = Depends(api_user), svc: Service = Depends(service)):
    """The campaigns the caller may see."""
    return [s.CampaignSummary(name=n, description=(svc.desk.get(n).description or "").strip())
            for n in svc.desk.names() if user.may_see(n)]


@router.get("/campaigns/{name}", response_model=s.Status)
def status(name: Name, user: User = Depends(api_user), svc: Service = Depends(service)):
    """Tasks, lab experiments, budget use and best-so-far of a campaign."""
    check_campaign(user, svc, name, SCIENCE)
    svc.state.audit(user.name, "status", name)
    return svc.desk.status(name, user.clearance)


@router.get("/campaigns/{name}/report", response_model=s.Report, responses={409: _ERR})
def report(name: Name, user: User = Depends(api_user), svc: Service = Depends(service)):
    """The campaign report (markdown) and the names of its plots, redrawn when the data changed."""
    check_campaign(user, svc, name, SCIENCE)
    folder = svc.desk.report(name, user.clearance)
    svc.state.audit(user.name, "report", name)
    return s.Report(summary_markdown=(folder / "summary.md").read_text(),
                    plots=report_plots(folder))


@router.get("/campaigns/{name}/report/{plot}", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}}})
def plot(name: Name, plot: str, user: User = Depends(api_user), svc: Service = Depends(service)):
    check_campaign(user, svc, name, SCIENCE)
    folder = svc.desk.report(name, user.clearance)
    if plot not in report_plots(folder):
        raise HTTPException(404, "no such plot")
    return FileResponse(folder / plot, media_type="image/png")


@router.get("/campaigns/{name}/lab/pending", response_model=list[s.PendingExperiment])
def pending(name: Name, user: User = Depends(api_user), svc: Service = Depends(service)):
    """Suggested experiments not yet measured."""
    check_campaign(user, svc, name, LAB)
    svc.state.audit(user.name, "lab_pending", name)
    return svc.desk.pending(name, user.clearance)


@router.get("/campaigns/{name}/lab/sheet", response_class=Response,
            responses={200: {"content": {t: {} for t in SHEET_TYPES.values()}}})
def sheet(name: Name, format: Literal["xlsx", "csv"] = "xlsx", user: User = Depends(api_user),
          svc: Service = Depends(service)):
    """The pending experiments as a sheet in the standard template, to fill in and upload."""
    check_campaign(user, svc, name, LAB)
    content = svc.desk.lab_sheet(name, format, user.clearance)
    svc.state.audit(user.name, "lab_sheet", name, format=format)
    return Response(content, media_type=SHEET_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="{name}-lab.{format}"'})


@router.post("/campaigns/{name}/lab/results", response_model=s.UploadResult,
             responses={400: {"model": s.UploadRejected}, 413: _ERR})
def upload(name: Name, file: UploadFile = File(description="The filled sheet (.csv or .xlsx)."),
           access_level: AccessLevel = Form(AccessLevel.consortium),
           embargo_until: date | None = Form(None),
           user: User = Depends(api_user), svc: Service = Depends(service)):
    """Measured results back, validated as `dm-hpc ingest` does: all rows or none."""
    check_campaign(user, svc, name, LAB)
    result = receive_sheet(svc, user, name, file.filename or "", file.file.read(MAX_SHEET_BYTES + 1),
                           access_level, embargo_until)
    if isinstance(result, s.UploadRejected):
        return JSONResponse(result.model_dump(), status_code=400)
    return result


def receive_sheet(svc: Service, user: User, name: str, filename: str, content: bytes,
                  level: AccessLevel, until: date | None, confirm_held: bool = False) -> s.UploadResult | s.UploadRejected:
    """Shared by the API and the lab page: validate, store, label, audit (``confirm_held``: the
    user confirms the values far outside the model's interval; audited with their name)."""
    shown = Path(filename).name or "upload"
    if len(content) > MAX_SHEET_BYTES:
        svc.state.audit(user.name, "upload_rejected", name, file=shown, reason="too large")
        return s.UploadRejected(detail=f"{shown}: larger than {MAX_SHEET_BYTES} bytes",
                                problems=[s.RowProblem(line=None, message="file too large")])
    try:
        rule = new_rule(level, until)
        done = svc.desk.ingest(name, shown, content, rule, contributor=user.name, confirm_held=confirm_held,
                               clearance=user.clearance)
    except AccessMapError:
        raise  # the store's access file is damaged: the server's problem (503), not the sheet's
    except StoreLockedError:
        raise HTTPException(409, f"campaign {name!r} is busy with another command (a suggestion being "
                                 "computed); send the sheet again in a few minutes") from None
    except AccessError as exc:
        svc.state.audit(user.name, "upload_rejected", name, file=shown, reason=str(exc))
        return s.UploadRejected(detail=str(exc), problems=[s.RowProblem(line=None, message=str(exc))])
    except SheetError as exc:
        svc.state.audit(user.name, "upload_rejected", name, file=shown, problems=len(exc.problems))
        return s.UploadRejected(detail=f"{shown}: {len(exc.problems)} problem(s), nothing stored",
                                problems=[s.RowProblem(line=line or None, message=msg) for line, msg in exc.problems],
                                annotated=_annotated_url(name, getattr(exc, "annotated", None)))
    svc.state.audit(user.name, "upload", name, file=shown, record_ids=done.record_ids, new=done.new,
                    access_level=level.value, labelled=done.labelled, held=[h.sample_id for h in done.held], confirmed=done.confirmed)
    return s.UploadResult(
        records=done.records, new=done.new, queued=done.queued, record_ids=done.record_ids,
        access_level=level if done.labelled else None,
        held=[s.HeldValue(line=h.line, sample_id=h.sample_id, property=h.prop, value=h.value,
                          low=h.low if done.predictions else None, high=h.high if done.predictions else None,
                          unit=h.unit, typed=h.typed(), interval=h.interval_text() if done.predictions else None,
                          message=h.message(with_interval=done.predictions)) for h in done.held],
        confirmed=done.confirmed,
        stored=[s.StoredSample(sample_id=r.sample_id or "", record_id=r.record_id,
                               values={p.name: p.value for p in r.properties},
                               units={p.name: p.unit or "" for p in r.properties},
                               access_level=done.levels[r.record_id].level,
                               embargo_until=done.levels[r.record_id].until) for r in done.stored],
        annotated=_annotated_url(name, done.annotated), warnings=done.warnings, conversions=done.conversions)


def _annotated_url(name: str, token: str | None) -> str | None:
    return None if token is None else f"/campaigns/{name}/lab/annotated/{token}.xlsx"


def refused(exc: BadInput) -> RequestValidationError:
    """A body the campaign cannot read, answered as the schema's own refusals are (``app._invalid``):
    a 422 naming each problem where it is in the body (``loc``), by /predict and /design alike."""
    return RequestValidationError([{"loc": ("body", *loc), "msg": msg, "type": "value_error"}
                                   for loc, msg in exc.problems])


@router.post("/campaigns/{name}/predict", response_model=list[s.Prediction], responses={409: _ERR, **JSON_BODY})
def predict(name: Name, body: s.PredictRequest, user: User = Depends(api_user), svc: Service = Depends(service)):
    """Predicted properties with one-sigma uncertainty at posted compositions, in the units the
    campaign file writes (named in ``units``), each naming the model that made it (``model``)."""
    check_campaign(user, svc, name, SCIENCE)
    try:
        out = svc.desk.shown_predictions(name, body.compositions, body.process, user.clearance, body.model)
    except BadInput as exc:
        raise refused(exc) from None
    except NotReady as exc:
        raise HTTPException(409, str(exc)) from None
    except UnknownModel as exc:
        raise HTTPException(404, str(exc)) from None
    except ModelWithheld as exc:
        svc.state.audit(user.name, "predict_refused", name, model=body.model)
        raise HTTPException(403, str(exc)) from None
    svc.state.audit(user.name, "predict", name, compositions=len(body.compositions), model=out[0]["model"]["name"])
    return out


@router.post("/campaigns/{name}/design", response_model=list[s.DesignCandidate], responses={409: _ERR, **JSON_BODY})
def design(name: Name, body: s.DesignRequest, user: User = Depends(api_user), svc: Service = Depends(service)):
    """Inverse design: compositions most likely to meet every posted target. A target it cannot
    read is a 422 naming it, as /predict names a composition; too few records of a target's
    property among those the caller reads is a 409, as /predict says too few records."""
    check_campaign(user, svc, name, SCIENCE)
    try:
        out = svc.desk.design(name, body.targets, body.n, user.clearance)
    except BadInput as exc:
        raise refused(exc) from None
    except NotReady as exc:
        raise HTTPException(409, str(exc)) from None
    svc.state.audit(user.name, "design", name, targets=body.targets)
    return out


@router.get("/campaigns/{name}/records", response_model=s.Export,
            responses={200: {"content": {"text/csv": {}}}})
def export(name: Name, format: Literal["json", "csv"] = "json", user: User = Depends(api_user),
           svc: Service = Depends(service)):
    """The campaign store's records the caller's clearance allows (others are counted as withheld)."""
    from dm_hpc.data.sheets import write_sheet

    check_campaign(user, svc, name, SCIENCE)
    readable, withheld = readable_records(svc.desk, name, user.clearance)
    granted = ex.granted_ids(svc.state, user, name)
    pairs = [(r, rule) for r, rule in readable if ex.may_leave(user, rule.effective(), r.record_id, granted)]
    svc.state.audit(user.name, "export", name, format=format, withheld=withheld,
                    awaiting_approval=len(readable) - len(pairs), record_ids=[r.record_id for r, _ in pairs])
    if format == "csv":
        with tempfile.TemporaryDirectory() as tmp:
            out = write_sheet([r for r, _ in pairs], Path(tmp) / "records.csv")
            return Response(out.read_bytes(), media_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="{name}-records.csv"'})
    # a confirmed value's stamp keeps the model's interval only for a reader of every record it learnt from
    rows = export_rows(pairs, intervals=svc.desk.sees_everything(name, user.clearance))
    return s.Export(records=rows, withheld=withheld, awaiting_approval=len(readable) - len(pairs))


def requestable(svc: Service, user: User, name: str, wanted: list[str] | None) -> list[str]:
    """The records of ``name`` that ``user`` may ask to export (read, above public); 400 when
    ``wanted`` names others (how many, not which: an id is not confirmed to exist)."""
    readable, _ = readable_records(svc.desk, name, user.clearance)
    above = {r.record_id for r, rule in readable if rule.effective() is not AccessLevel.public}
    if wanted is None:
        return sorted(above)
    stray = len(set(wanted) - above)
    if stray:
        raise HTTPException(400, f"{stray} of the requested ids are not records of campaign {name!r} above the "
                                 "public level that you may read")
    return sorted(set(wanted))


@router.post("/campaigns/{name}/exports", response_model=s.ExportRequestOut, responses={400: _ERR, **JSON_BODY})
def request_export(name: Name, body: s.ExportRequestBody, user: User = Depends(api_user),
                   svc: Service = Depends(service)):
    """Ask an approver to let records above the public level leave in your exports."""
    check_campaign(user, svc, name, SCIENCE)
    try:
        req = ex.request_export(svc.state, user, name, requestable(svc, user, name, body.record_ids), body.reason)
    except ex.ExportDecisionError as exc:
        raise HTTPException(400, str(exc)) from None
    return ex.as_json(req)


def visible_ids(svc: Service, user: User, req: ex.ExportRequest) -> set[str]:
    """The ids of a request that ``user`` may read today (the others are counted, not named)."""
    if req.campaign not in svc.desk.campaigns:
        return set()
    ok = svc.desk.access(req.campaign).readable(req.record_ids, user.clearance)
    return {rid for rid, yes in zip(req.record_ids, ok) if yes}


@router.get("/exports", response_model=list[s.ExportRequestOut])
def export_requests(status: Literal["pending", "granted", "denied"] | None = None, user: User = Depends(api_user),
                    svc: Service = Depends(service)):
    """Export requests: all for approvers and admins, else the caller's own."""
    svc.state.audit(user.name, "read_export_requests", status=status)
    return [ex.as_json(r, visible_ids(svc, user, r)) for r in ex.requests(svc.state, user, status)]


def decide(svc: Service, user: User, request_id: int, grant: bool, days: int, note: str) -> ex.ExportRequest:
    """Shared by the API and the page: refusals are 403 (not an approver) or 400 (with why)."""
    if user.role not in ex.APPROVERS:
        raise HTTPException(403, f"user {user.name!r} ({user.role.value}) may not decide export requests")
    try:
        req = ex.get(svc.state, request_id)
        return ex.decide(svc.state, request_id, user, grant, days, note,
                         readable=svc.desk.access(req.campaign).readable if req.campaign in svc.desk.campaigns else None)
    except ex.ExportDecisionError as exc:
        raise HTTPException(400, str(exc)) from None


@router.post("/exports/{request_id}/approve", response_model=s.ExportRequestOut, responses={400: _ERR, **JSON_BODY})
def approve(request_id: int, body: s.ExportDecision, user: User = Depends(api_user), svc: Service = Depends(service)):
    """Approvers: let the request's records leave in its requester's exports for ``days``."""
    req = decide(svc, user, request_id, True, body.days, body.note)
    return ex.as_json(req, visible_ids(svc, user, req))


@router.post("/exports/{request_id}/deny", response_model=s.ExportRequestOut, responses={400: _ERR, **JSON_BODY})
def deny(request_id: int, body: s.ExportDecision, user: User = Depends(api_user), svc: Service = Depends(service)):
    """Approvers: refuse the request."""
    req = decide(svc, user, request_id, False, body.days, body.note)
    return ex.as_json(req, visible_ids(svc, user, req))


@router.get("/campaigns/{name}/records/{record_id}/citation", response_model=s.Citation)
def citation(name: Name, record_id: str, user: User = Depends(api_user), svc: Service = Depends(service)):
    """A record's citation history: creator, source and method, the model versions trained on it,
    the campaigns that learn from it and the exports that carried it."""
    check_campaign(user, svc, name, SCIENCE)
    found = cite(svc.desk, svc.state, name, record_id, user)
    if found is None:
        raise HTTPException(404, f"no such record in campaign {name!r}")
    svc.state.audit(user.name, "citation", name, record_ids=[record_id])
    return found.to_json()


@router.put("/campaigns/{name}/records/{record_id}/access", response_model=s.AccessChange, responses={400: _ERR, **JSON_BODY})
def set_access(name: Name, record_id: str, body: s.AccessChange, user: User = Depends(api_user),
               svc: Service = Depends(service)):
    """Admins: set one record's access level (and an embargo's end)."""
    require_admin(user)
    check_campaign(user, svc, name, SCIENCE)
    if record_id not in {r.record_id for r in svc.desk.records(name)}:
        raise HTTPException(404, f"no such record in campaign {name!r}")
    try:
        rule = new_rule(body.level, body.until)
    except AccessError as exc:
        raise HTTPException(400, str(exc)) from None
    svc.desk.access(name).set([record_id], rule, by=f"portal:{user.name}")
    svc.state.audit(user.name, "set_access", name, record_ids=[record_id], **rule.to_json())
    return body


@router.get("/contributors", response_model=list[s.Contributor])
def contributors(user: User = Depends(api_user), svc: Service = Depends(service)):
    """Admins: records per contributor and how often campaigns used and exports carried them."""
    require_admin(user)
    svc.state.audit(user.name, "read_contributors")
    return contributor_report(svc.desk, svc.state)


@router.get("/audit", response_model=list[s.AuditEntry])
def audit(limit: int = 200, user: User = Depends(api_user), svc: Service = Depends(service)):
    """Admins: the newest audit entries."""
    require_admin(user)
    svc.state.audit(user.name, "read_audit", limit=limit)
    return svc.state.audit_log(limit=max(1, min(limit, 10_000)))
