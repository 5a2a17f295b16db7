"""The FastAPI application: the API, the pages, and in front of both a request-body limit, the
audit of every refusal, and (only behind a trusted reverse proxy) its forwarded scheme."""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import anyio

from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dm_hpc.data.access import AccessMapError
from dm_hpc.service.auth import COOKIE, Service
from dm_hpc.service.campaigns import CampaignDesk
from dm_hpc.service.state import ServiceState

log = logging.getLogger(__name__)

#: Largest request body accepted (bytes): a lab sheet of some thousand rows fits many times over.
MAX_BODY_BYTES = 5 * 2**20


class BodyLimit:
    """Answer 413 to a body over ``limit`` bytes, by its Content-Length or while it streams in,
    before any handler parses it. A streamed body that crosses the limit is answered at once and
    the handler sees a disconnected client (whatever it answers then is dropped)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._reject(send)
        seen, started, rejected = 0, False, False

        async def counted() -> Message:
            nonlocal seen, started, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                rejected = True
                if not started:
                    started = True
                    await self._reject(send)
                return {"type": "http.disconnect"}
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, watched)

    async def _reject(self, send: Send) -> None:
        body = b'{"detail":"request body too large (limit %d bytes)"}' % self.limit
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


#: Statuses that refuse a caller (no or bad token, not allowed, body too large).
REFUSALS = {401: "unauthenticated", 403: "forbidden", 413: "too_large"}
_CAMPAIGN = re.compile(r"^(?:/api/v1)?/campaigns/([^/]+)")


class AuditRefusals:
    """Write every refusal to the audit log with its actor: 401, 403 and 413 answers (whoever
    raised them, the body limit included) and page redirects to sign-in (``request.state.refused``).
    The actor is the user whose bearer token or sign-in cookie came with the request, else
    ``(anonymous)`` or ``(unknown token)``."""

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 0

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            why = REFUSALS.get(status) or scope.get("state", {}).get("refused")
            if why:
                await anyio.to_thread.run_sync(self._audit, scope, status, why)

    def _token(self, scope: Scope) -> str | None:
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
            key, _, value = part.strip().partition("=")
            if key == COOKIE:
                return value
        return None

    def _audit(self, scope: Scope, status: int, why: str) -> None:
        token = self._token(scope)
        user = self.state.authenticate(token) if token else None
        actor = user.name if user else ("(unknown token)" if token else "(anonymous)")
        path = scope.get("path", "")
        campaign = m.group(1) if (m := _CAMPAIGN.match(path)) else None
        self.state.audit(actor, "refused", campaign, method=scope.get("method"), path=path[:300],
                         status=status, reason=why)


async def _access_damaged(request: Request, exc: AccessMapError) -> JSONResponse:
    """503 when a store's access levels cannot be read: nothing is served from that store (it
    fails closed) and the caller learns it is the server's problem, not theirs; the file and the
    entry go to the server's log, not to the caller."""
    log.error("access levels unreadable: %s", exc)
    return JSONResponse({"detail": "the access levels of this campaign's records cannot be read (the store's "
                                   "access.json is damaged); nothing is served from it until an admin repairs it"},
                        status_code=503)


def _not_json(request: Request, exc: RequestValidationError) -> str | None:
    """The media type of a body sent as something else to a route that reads JSON (its whole body
    refused as "not a dictionary"), else None. A form or an upload route names its fields instead."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not media or media == "application/json" or media.endswith("+json"):
        return None
    whole_body = any(tuple(e.get("loc", ())) == ("body",) and e.get("type") == "model_attributes_type"
                     for e in exc.errors())
    return media if whole_body else None


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field (``loc``) and why, without echoing the input: a non-finite
    number (``Infinity``) cannot be written as JSON, and a body is not repeated back. A JSON body
    sent under another media type is a 415 that says so: its fields were never read, and a 422
    saying it is not an object sent the caller looking for a fault in a body that is right."""
    media = _not_json(request, exc)
    if media is not None:
        return JSONResponse({"detail": f"send the body as JSON (Content-Type: application/json), not {media}"},
                            status_code=415)
    return JSONResponse({"detail": [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                                    for e in exc.errors()]}, status_code=422)


def create_app(campaigns: str | Path, state_dir: str | Path, body_limit: int = MAX_BODY_BYTES,
               trusted_proxies: Sequence[str] = ()) -> FastAPI:
    """The service for the campaign files in ``campaigns`` with users and audit in ``state_dir``.

    ``trusted_proxies``: addresses of reverse proxies whose ``X-Forwarded-Proto``/``-For`` are
    believed (so cookies are ``Secure`` behind a TLS-terminating proxy); from anyone else those
    headers are ignored (docs/admin.md)."""
    from dm_hpc.service import api, pages

    app = FastAPIOffline(title="dm-hpc portal", version="1",
                         description="Campaign status, lab queue, predictions, inverse design and record export, "
                                     "by role and access level. Authenticate with `Authorization: Bearer <token>`.")
    state = ServiceState(state_dir)
    app.state.service = Service(CampaignDesk(campaigns), state)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(AccessMapError, _access_damaged)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_middleware(BodyLimit, limit=body_limit)
    app.add_middleware(AuditRefusals, state=state)  # outside the body limit: sees its 413 too
    if trusted_proxies:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(trusted_proxies))
    return app
