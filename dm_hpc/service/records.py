"""Records leaving the service: exports filtered by the caller's clearance, citation history and
credit to contributors.

Every export (API or page) goes through ``readable_records``, so no path can skip the access
filter; every export is written to the audit log with the ids that left.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from dm_hpc.data import MaterialRecord
from dm_hpc.data.access import AccessLevel, AccessRule
from dm_hpc.service.campaigns import CampaignDesk
from dm_hpc.service.state import Role, ServiceState, User

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


#: What of a confirmation stamp (``provenance.extra["confirmed"]``, ``campaign.holds``) leaves for
#: a reader who does not read every record of the campaign: who and when. An allow-list: the
#: interval the value fell outside (``outside``) is the campaign model's output, learnt from
#: every record, and stays in.
CONFIRMATION_SHOWN = ("by", "at")


def export_rows(pairs: list[tuple[MaterialRecord, AccessRule]], intervals: bool = True) -> list[dict[str, Any]]:
    """Records as JSON-ready rows: id, level, embargo end, the record in the store's form
    (``intervals=False``: a confirmation's stamp says only who confirmed and when)."""
    rows = []
    for r, rule in pairs:
        record = json.loads(r.to_json())
        extra = record.get("circumstances", {}).get("provenance", {}).get("extra", {})
        if not intervals and isinstance(extra.get("confirmed"), dict):
            extra["confirmed"] = {k: v for k, v in extra["confirmed"].items() if k in CONFIRMATION_SHOWN}
        rows.append({"record_id": r.record_id, "access_level": rule.level, "embargo_until": rule.until,
                     "record": record})
    return rows


@dataclass
class Citation:
    """A record's citation history (the plan's M-DOI): who made it, how, and where it was used.

    ``models``: (campaign, version, clearance trained at) of registered model versions trained
    on it; ``learned_by``: campaigns whose training set holds it; ``exports``: the exports that
    carried it (time, user, campaign, format); ``other_exports`` / ``other_campaigns``: how many
    exports by other users and uses in campaigns the viewer may not see were left out
    (``seen_by``)."""

    record_id: str
    creator: str
    source: str
    method: str
    created: str | None
    stores: list[str] = field(default_factory=list)  # campaigns whose store holds the record
    models: list[tuple[str, str, str]] = field(default_factory=list)
    learned_by: list[str] = field(default_factory=list)
    exports: list[dict[str, Any]] = field(default_factory=list)
    other_exports: int = 0
    other_campaigns: int = 0

    def seen_by(self, viewer: User) -> Citation:
        """What ``viewer`` may read of it: who exported what and when is the audit log's, which
        only admins read, so others see their own exports and a count of the rest; campaigns they
        are not granted are counted, not named (a campaign's existence is not theirs to learn)."""
        if viewer.role is Role.admin:
            return self
        own = [e for e in self.exports if e["user"] == viewer.name]
        seen = viewer.may_see
        hidden = {c for c in self.stores + self.learned_by + [m[0] for m in self.models] if not seen(c)}
        return Citation(self.record_id, self.creator, self.source, self.method, self.created,
                        [c for c in self.stores if seen(c)], [m for m in self.models if seen(m[0])],
                        [c for c in self.learned_by if seen(c)], own, len(self.exports) - len(own), len(hidden))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "models": [{"campaign": c, "version": v, "clearance": k} for c, v, k in self.models]}


def citations(desk: CampaignDesk, state: ServiceState) -> dict[str, Citation]:
    """Every record's citation history, from one pass over the stores, the model registries and
    the audit log: the one source of the record pages, ``dm-hpc store cite`` and the credit table."""
    out: dict[str, Citation] = {}
    for name in desk.names():
        for r in desk.records(name):
            p = r.provenance
            cite = out.setdefault(r.record_id, Citation(
                r.record_id, p.contributor or p.institution or p.method or UNNAMED, p.source.value, p.method,
                p.timestamp.isoformat()))
            cite.stores.append(name)
    for name in desk.names():
        for rid in desk.used_record_ids(name):
            if rid in out:
                out[rid].learned_by.append(name)
        for version, clearance, ids in desk.model_versions(name):
            for rid in ids & out.keys():
                out[rid].models.append((name, version, clearance))
    for entry in reversed(state.audit_log(action="export")):  # oldest first
        for rid in entry["detail"].get("record_ids", []):
            if rid in out:
                out[rid].exports.append({"time": entry["time"], "user": entry["user"], "campaign": entry["campaign"],
                                         "format": entry["detail"].get("format")})
    return out


def contributor_report(desk: CampaignDesk, state: ServiceState) -> list[dict[str, Any]]:
    """Per contributor (provenance ``contributor``, else ``institution``, else the lab/method):
    records held, times campaigns learned from them, times they were exported (``citations``)."""
    held: Counter[str] = Counter()
    used: Counter[str] = Counter()
    exported: Counter[str] = Counter()
    for cite in citations(desk, state).values():
        held[cite.creator] += 1
        used[cite.creator] += len(cite.learned_by)
        exported[cite.creator] += len(cite.exports)
    return [{"contributor": who, "records": n, "campaign_uses": used[who], "exports": exported[who]}
            for who, n in held.most_common()]


def cite(desk: CampaignDesk, state: ServiceState, campaign: str, record_id: str,
         viewer: User) -> Citation | None:
    """``record_id``'s citation history as ``viewer`` may read it (``Citation.seen_by``) when it
    is a record of ``campaign`` that their clearance reads; else None (the same answer for a
    record that does not exist: no probing)."""
    readable, _ = readable_records(desk, campaign, viewer.clearance)
    if record_id not in {r.record_id for r, _ in readable}:
        return None
    found = citations(desk, state).get(record_id)
    return found.seen_by(viewer) if found is not None else None
