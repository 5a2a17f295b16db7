"""The FastAPI application: the API, the pages, and a request-body limit in front of both."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dm_hpc.service.auth import Service
from dm_hpc.service.campaigns import CampaignDesk
from dm_hpc.service.state import ServiceState

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


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field (``loc``) and why, without echoing the input: a non-finite
    number (``Infinity``) cannot be written as JSON, and a body is not repeated back."""
    return JSONResponse({"detail": [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                                    for e in exc.errors()]}, status_code=422)


def create_app(campaigns: str | Path, state_dir: str | Path, body_limit: int = MAX_BODY_BYTES) -> FastAPI:
    """The service for the campaign files in ``campaigns`` with users and audit in ``state_dir``."""
    from dm_hpc.service import api, pages

    app = FastAPI(title="dm-hpc portal", version="1",
                  description="Campaign status, lab queue, predictions, inverse design and record export, "
                              "by role and access level. Authenticate with `Authorization: Bearer <token>`.")
    app.state.service = Service(CampaignDesk(campaigns), ServiceState(state_dir))
    app.add_exception_handler(RequestValidationError, _invalid)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_middleware(BodyLimit, limit=body_limit)
    return app
