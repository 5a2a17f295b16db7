"""Who is asking, and may they: bearer tokens (API) or the sign-in cookie (pages), roles and grants.

Rules (one place): 401 without a valid token; 403 when the role may not do the thing or the
campaign is not granted (also for campaign names that do not exist, so a non-admin cannot probe
which campaigns exist); 404 only for admins asking for an unknown campaign.
"""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dm_hpc.service.campaigns import CampaignDesk
from dm_hpc.service.state import Role, ServiceState, User

COOKIE = "dm_hpc_token"
_bearer = HTTPBearer(auto_error=False, description="The token `dm-hpc users add` printed.")


@dataclass
class Service:
    """What every request handler needs (held on ``app.state.service``)."""

    desk: CampaignDesk
    state: ServiceState


def service(request: Request) -> Service:
    return request.app.state.service


def api_user(creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
             svc: Service = Depends(service)) -> User:
    """The caller of an API route (``Authorization: Bearer <token>``)."""
    user = svc.state.authenticate(creds.credentials) if creds else None
    if user is None:
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    return user


def page_user(request: Request, svc: Service = Depends(service)) -> User | None:
    """The signed-in user of a page (the cookie set at sign-in), or None."""
    token = request.cookies.get(COOKIE)
    return svc.state.authenticate(token) if token else None


#: What each role may do in a campaign it is granted.
SCIENCE = frozenset({Role.admin, Role.scientist})
LAB = frozenset({Role.admin, Role.scientist, Role.lab})


def check_campaign(user: User, svc: Service, name: str, roles: frozenset[Role]) -> None:
    """Raise 403/404 unless ``user`` may act on campaign ``name`` with one of ``roles``."""
    if user.role not in roles or not user.may_see(name):
        raise HTTPException(403, f"user {user.name!r} ({user.role.value}) may not do this in campaign {name!r}")
    if name not in svc.desk.campaigns:
        raise HTTPException(404, f"no campaign {name!r}")


def require_admin(user: User) -> None:
    if user.role is not Role.admin:
        raise HTTPException(403, "admins only")
