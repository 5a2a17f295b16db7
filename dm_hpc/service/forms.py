"""Cross-site request forgery (CSRF) protection of every page form, sign-in included.

Two independent checks, both required for a form post:

- **Origin**: a browser says where a post comes from. ``Sec-Fetch-Site`` must be ``same-origin``
  (or ``none``: typed by the user), and ``Origin``, when sent, must be this service's own origin.
  A form on another site that auto-submits to ``/signin`` (login CSRF: the victim is signed in
  as the attacker and uploads into the attacker's account) fails here in every current browser.
- **Token bound to a pre-session cookie**: the first page sets a random ``dm_hpc_presession``
  cookie (HttpOnly, SameSite=Strict); each form carries ``csrf_token`` = HMAC-SHA256 of that
  cookie under the service's secret. Another site can neither read the cookie nor compute the
  HMAC, and a cookie planted from a sibling subdomain is worthless without the secret. This
  covers old browsers that send neither header.

The session cookie itself stays SameSite=Strict and HttpOnly; all cookies are ``Secure`` when the
request came over TLS (directly, or through a trusted proxy's ``X-Forwarded-Proto``: ``app.py``).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request
from starlette.responses import Response

PRESESSION = "dm_hpc_presession"
FIELD = "csrf_token"
#: Values of Sec-Fetch-Site a form post may carry (``none``: the user typed or bookmarked it).
SAME_SITE = ("same-origin", "none")


def _sign(secret: bytes, presession: str) -> str:
    return hmac.new(secret, b"csrf:" + presession.encode(), hashlib.sha256).hexdigest()


def secure(request: Request) -> bool:
    """Whether cookies set on this request's response must be ``Secure`` (served over TLS)."""
    return request.url.scheme == "https"


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def form_token(request: Request, secret: bytes) -> tuple[str, str | None]:
    """The token to put in this page's forms, and a new pre-session value to set as a cookie
    (None when the browser already holds one)."""
    held = request.cookies.get(PRESESSION)
    presession = held or secrets.token_urlsafe(32)
    return _sign(secret, presession), None if held else presession


def set_presession(response: Response, request: Request, presession: str | None) -> None:
    if presession is not None:
        response.set_cookie(PRESESSION, presession, httponly=True, samesite="strict", secure=secure(request))


def form_problem(request: Request, secret: bytes, token: str) -> str | None:
    """Why this form post must be refused, or None when it came from this service's own page."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in SAME_SITE:
        return f"form posted from another site ({site}) refused"
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request):
        return "form posted from another origin refused"
    presession = request.cookies.get(PRESESSION)
    if not presession or not token or not hmac.compare_digest(token, _sign(secret, presession)):
        return "the form's security token is missing or stale: reload the page and submit again"
    return None
