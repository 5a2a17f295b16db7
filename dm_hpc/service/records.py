"""Records leaving the service: exports filtered by the caller's clearance, and credit to contributors.

Every export (API or page) goes through ``readable_records``, so no path can skip the access
filter; every export is written to the audit log with the ids that left.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

from dm_hpc.data import MaterialRecord
from dm_hpc.data.access import AccessLevel, AccessRule
from dm_hpc.service.campaigns import CampaignDesk
from dm_hpc.service.state import ServiceState

#: How a record without a named contributor is credited.
UNNAMED = "(not named)"


def readable_records(desk: CampaignDesk, campaign: str, clearance: AccessLevel,
                     ) -> tuple[list[tuple[MaterialRecord, AccessRule]], int]:
    """The campaign's records a caller with ``clearance`` may read, with their rules; and how
    many were withheld."""
    records = desk.records(campaign)
    rules = desk.access(campaign).rules()
    default = AccessRule()
    out = [(r, rules.get(r.record_id, default)) for r in records]
    keep = [(r, rule) for r, rule in out if rule.readable_by(clearance)]
    return keep, len(out) - len(keep)


def export_rows(pairs: list[tuple[MaterialRecord, AccessRule]]) -> list[dict[str, Any]]:
    """Records as JSON-ready rows: id, level, embargo end, the record in the store's form."""
    return [{"record_id": r.record_id, "access_level": rule.level, "embargo_until": rule.until,
             "record": json.loads(r.to_json())} for r, rule in pairs]


def contributor_report(desk: CampaignDesk, state: ServiceState) -> list[dict[str, Any]]:
    """Per contributor (provenance ``contributor``, else ``institution``, else the lab/method):
    records held, times campaigns learned from them, times they were exported."""
    owner: dict[str, str] = {}
    for name in desk.names():
        for r in desk.records(name):
            p = r.provenance
            owner[r.record_id] = p.contributor or p.institution or p.method or UNNAMED
    held = Counter(owner.values())
    used: Counter[str] = Counter()
    for name in desk.names():
        used.update(owner[rid] for rid in desk.used_record_ids(name) if rid in owner)
    exported: Counter[str] = Counter()
    for entry in state.audit_log(action="export"):
        exported.update(owner[rid] for rid in entry["detail"].get("record_ids", []) if rid in owner)
    return [{"contributor": who, "records": n, "campaign_uses": used[who], "exports": exported[who]}
            for who, n in held.most_common()]
