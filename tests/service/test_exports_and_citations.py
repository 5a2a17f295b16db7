"""Issue 18 items 3 and 4: exports above the public level need an approver's bounded, audited
grant (API, pages, CLI); each record's citation history (page, API, `dm-hpc store cite`) is the
one source the credit table counts from."""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dm_hpc.data import Store
from dm_hpc.data.access import AccessLevel, AccessMap, AccessRule
from dm_hpc.service import Role, ServiceState
from dm_hpc.service.auth import COOKIE

from .conftest import CAMPAIGN, Portal, make_portal

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def portal(built_campaign, tmp_path_factory) -> Portal:
    p = make_portal(built_campaign, tmp_path_factory.mktemp("exports"))
    state = ServiceState(p.state_dir)
    p.tokens["approver"] = state.add_user("approver", Role.approver, [], AccessLevel.restricted)
    p.tokens["approver_low"] = state.add_user("approver_low", Role.approver, [], AccessLevel.public)
    return p


@pytest.fixture(scope="module")
def ids(portal) -> list[str]:
    store = portal.campaigns.parent / "store"
    ids = sorted(r.record_id for r in Store.open(store).records())
    AccessMap(store).set([ids[0]], AccessRule(AccessLevel.public))
    AccessMap(store).set([ids[1]], AccessRule(AccessLevel.consortium))
    AccessMap(store).set([ids[2]], AccessRule(AccessLevel.restricted))
    return ids


def _h(portal: Portal, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {portal.tokens[who]}"}


def dm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dm_hpc", *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def _exported(c: TestClient, portal: Portal, who: str = "scientist") -> set[str]:
    r = c.get(f"/api/v1/campaigns/{CAMPAIGN}/records", headers=_h(portal, who))
    assert r.status_code == 200
    return {rec["record_id"] for rec in r.json()["records"]}


def test_export_above_public_needs_a_bounded_audited_grant(portal, ids):
    state = ServiceState(portal.state_dir)
    with TestClient(portal.app()) as c:
        assert _exported(c, portal) == {ids[0]}  # readable, but only the public record leaves
        body = c.get(f"/api/v1/campaigns/{CAMPAIGN}/records", headers=_h(portal, "scientist")).json()
        assert body["awaiting_approval"] == len(ids) - 2  # all but the public and the restricted one
        # a request names only records the requester reads; a stray id is refused without naming it
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/exports", headers=_h(portal, "scientist"),
                   json={"record_ids": [ids[1], ids[2]], "reason": "paper"})
        assert r.status_code == 400 and ids[2] not in r.text
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/exports", headers=_h(portal, "scientist"),
                   json={"record_ids": [ids[1]], "reason": "paper with partner X"})
        assert r.status_code == 200 and r.json()["status"] == "pending"
        req = r.json()["id"]
        # who may decide: not the requester's role, not an approver below the records' level
        assert c.post(f"/api/v1/exports/{req}/approve", headers=_h(portal, "scientist"), json={}).status_code == 403
        low = c.post(f"/api/v1/exports/{req}/approve", headers=_h(portal, "approver_low"), json={})
        assert low.status_code == 400 and "not cleared" in low.json()["detail"]
        assert c.post(f"/api/v1/exports/{req}/approve", headers=_h(portal, "approver"), json={"days": 365}).status_code == 422
        ok = c.post(f"/api/v1/exports/{req}/approve", headers=_h(portal, "approver"), json={"days": 2, "note": "fine"})
        assert ok.status_code == 200 and ok.json()["status"] == "granted"
        again = c.post(f"/api/v1/exports/{req}/deny", headers=_h(portal, "approver"), json={})
        assert again.status_code == 400 and "already granted" in again.json()["detail"]
        assert _exported(c, portal) == {ids[0], ids[1]}
        # the grant is audited: who, which records, until when
        entry = state.audit_log(action="export_granted")[0]
        assert entry["user"] == "approver" and entry["detail"]["record_ids"] == [ids[1]]
        assert entry["detail"]["requester"] == "scientist" and entry["detail"]["until"] > entry["time"] + 86400
        # an admin does not decide their own request
        own = c.post(f"/api/v1/campaigns/{CAMPAIGN}/exports", headers=_h(portal, "admin"),
                     json={"record_ids": [ids[2]], "reason": "self"}).json()["id"]
        r = c.post(f"/api/v1/exports/{own}/approve", headers=_h(portal, "admin"), json={})
        assert r.status_code == 400 and "other than its requester" in r.json()["detail"]
        # requesters see their own requests; approvers see all
        assert {q["id"] for q in c.get("/api/v1/exports", headers=_h(portal, "scientist")).json()} == {req}
        assert {q["id"] for q in c.get("/api/v1/exports", headers=_h(portal, "approver")).json()} >= {req, own}
        # a grant ends: once past its date, the record no longer leaves
        with sqlite3.connect(portal.state_dir / "service.sqlite") as db:
            db.execute("UPDATE export_requests SET until = until - 3 * 86400 WHERE id = ?", (req,))
        assert _exported(c, portal) == {ids[0]}


def test_export_requests_from_the_cli_and_the_portal(portal, ids):
    with TestClient(portal.app()) as c:
        first = c.post(f"/api/v1/campaigns/{CAMPAIGN}/exports", headers=_h(portal, "scientist"),
                       json={"reason": "cli grant"}).json()["id"]
        second = c.post(f"/api/v1/campaigns/{CAMPAIGN}/exports", headers=_h(portal, "scientist"),
                        json={"reason": "cli deny"}).json()["id"]
    state_dir, campaigns = str(portal.state_dir), str(portal.campaigns)
    listed = dm("access", "requests", "--state-dir", state_dir, "--status", "pending", "--json")
    assert listed.returncode == 0
    pending = {r["id"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert pending[first]["reason"] == "cli grant" and pending[second]["reason"] == "cli deny"
    assert pending[first]["requester"] == "scientist" and ids[1] in pending[first]["record_ids"]
    assert "export requests" in dm("access", "requests", "--state-dir", state_dir).stdout  # the table
    refused = dm("access", "approve", str(first), "--state-dir", state_dir, "--campaigns", campaigns, "--by", "scientist")
    assert refused.returncode != 0 and "may not decide" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    granted = dm("access", "approve", str(first), "--state-dir", state_dir, "--campaigns", campaigns,
                 "--by", "approver", "--days", "3")
    assert granted.returncode == 0 and "granted by approver until" in granted.stdout
    denied = dm("access", "deny", str(second), "--state-dir", state_dir, "--campaigns", campaigns, "--by", "approver",
                "--note", "not yet")
    assert denied.returncode == 0 and f"request {second} denied" in denied.stdout
    log = ServiceState(portal.state_dir).audit_log()
    assert [e["action"] for e in log[:2]] == ["export_denied", "export_granted"]
    # the portal: a scientist asks from the campaign page; an approver grants on /exports
    with TestClient(portal.app(), cookies={COOKIE: portal.tokens["scientist"]}) as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get(f"/campaigns/{CAMPAIGN}").text).group(1)
        r = c.post(f"/campaigns/{CAMPAIGN}/exports", data={"reason": "page request", "csrf_token": token})
        assert r.status_code == 200 and "sent" in r.text
    with TestClient(portal.app(), cookies={COOKIE: portal.tokens["approver"]}) as c:
        page = c.get("/exports").text
        assert "page request" in page and 'class="approve"' in page
        req = max(q["id"] for q in c.get("/api/v1/exports", headers=_h(portal, "approver")).json())
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert c.post(f"/exports/{req}/approve", data={"days": "1"}).status_code == 403  # no form token
        r = c.post(f"/exports/{req}/approve", data={"days": "1", "csrf_token": token})
        assert r.status_code == 200 and f"request {req} granted" in r.text


def test_citation_history_is_the_one_source_of_credit(portal, ids):
    from dm_hpc.campaign import load_campaign, registry

    campaign = load_campaign(portal.campaigns / f"{CAMPAIGN}.yaml")
    version = registry.train(campaign)  # fewer than 10 records: nothing held out
    cited = ids[1]
    with TestClient(portal.app()) as c:
        c.get(f"/api/v1/campaigns/{CAMPAIGN}/records", headers=_h(portal, "admin"))  # an export carrying it
        r = c.get(f"/api/v1/campaigns/{CAMPAIGN}/records/{cited}/citation", headers=_h(portal, "scientist"))
        assert r.status_code == 200
        cite = r.json()
        assert cite["record_id"] == cited and cite["source"] and cite["method"] and cite["creator"]
        assert CAMPAIGN in cite["learned_by"] and CAMPAIGN in cite["stores"]
        trained = registry.trained_on(version)
        assert ({"campaign": CAMPAIGN, "version": version.version, "clearance": "embargoed"} in cite["models"]) == (cited in trained)
        # who exported it and when is the audit log's: a scientist sees a count, an admin the entries
        # (a user review found every export's user and time shown to a public-clearance partner)
        assert {e["user"] for e in cite["exports"]} <= {"scientist"} and cite["other_exports"] >= 1
        assert '"admin"' not in r.text
        full = c.get(f"/api/v1/campaigns/{CAMPAIGN}/records/{cited}/citation", headers=_h(portal, "admin")).json()
        assert any(e["user"] == "admin" for e in full["exports"]) and full["other_exports"] == 0
        # a record above the caller's clearance has no citation page for them (and is not named)
        low = ServiceState(portal.state_dir).add_user("sci_public", Role.scientist, [CAMPAIGN], AccessLevel.public)
        r = c.get(f"/api/v1/campaigns/{CAMPAIGN}/records/{cited}/citation", headers={"Authorization": f"Bearer {low}"})
        assert r.status_code == 404 and cited not in r.text
        # the credit table counts from the same histories
        credit = c.get("/api/v1/contributors", headers=_h(portal, "admin")).json()
        every = [c.get(f"/api/v1/campaigns/{CAMPAIGN}/records/{rid}/citation", headers=_h(portal, "admin")).json()
                 for rid in ids]
        assert sum(row["records"] for row in credit) == len(every)
        assert sum(row["campaign_uses"] for row in credit) == sum(len(h["learned_by"]) for h in every)
        assert sum(row["exports"] for row in credit) == sum(len(h["exports"]) for h in every)
    with TestClient(portal.app(), cookies={COOKIE: portal.tokens["scientist"]}) as c:
        page = c.get(f"/campaigns/{CAMPAIGN}/records/{cited}")
        assert page.status_code == 200 and cite["creator"] in page.text and "Exports that carried it" in page.text
        assert "by other users" in page.text and "admin (" not in page.text
    out = dm("store", "cite", cited, "--campaigns", str(portal.campaigns), "--state-dir", str(portal.state_dir), "--json")
    assert out.returncode == 0, out.stderr
    assert {k: v for k, v in json.loads(out.stdout).items() if k != "exports"} == {k: v for k, v in full.items() if k != "exports"}
    missing = dm("store", "cite", "dm-0000", "--campaigns", str(portal.campaigns), "--state-dir", str(portal.state_dir))
    assert missing.returncode != 0 and "in none of the stores" in missing.stdout + missing.stderr


@pytest.mark.parametrize("request_id", [2**63, -(2**63) - 1, 10**30])
def test_an_export_request_id_beyond_sqlite_integers_is_a_400_not_a_500(portal, request_id):
    """`POST /api/v1/exports/9223372036854775808/approve` ended in SQLite's OverflowError: a 500
    (found by the OpenAPI fuzz). No request has such an id: it is answered as any unknown one."""
    with TestClient(portal.app(), headers={"Authorization": f"Bearer {portal.tokens['approver']}"}) as c:
        for action in ("approve", "deny"):
            r = c.post(f"/api/v1/exports/{request_id}/{action}", json={})
            assert r.status_code == 400, r.text
            assert r.json() == {"detail": f"no export request {request_id}"}
