"""The lab and campaign portal: a small web service with roles, access levels and an audit trail.

Public face: ``create_app(campaigns_dir, state_dir)`` (FastAPI), ``ServiceState`` (users, grants,
audit log in SQLite), ``CampaignDesk`` (the one adapter to the campaign engine).
Run it with ``dm-hpc serve``; manage users with ``dm-hpc users``; read the trail with ``dm-hpc audit``;
decide export requests with ``dm-hpc access requests|approve|deny`` (``exports``); cite a record with
``dm-hpc store cite`` (``records.citations``). Every derived output is computed from the store view
scoped to the caller's clearance (``CampaignDesk``); every form is CSRF-checked (``forms``).
"""
from dm_hpc.service.app import create_app
from dm_hpc.service.campaigns import CampaignDesk
from dm_hpc.service.state import Role, ServiceState, User, UserError

__all__ = ["CampaignDesk", "Role", "ServiceState", "User", "UserError", "create_app"]
