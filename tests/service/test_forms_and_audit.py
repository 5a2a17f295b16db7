"""Issue 18 item 2, replayed as an attacker would: login CSRF, forged form posts, cookies over TLS
(only behind a trusted proxy), and the audit of every write and every refusal with its actor."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from dm_hpc.service import ServiceState
from dm_hpc.service.auth import COOKIE
from dm_hpc.service.forms import PRESESSION

from .conftest import CAMPAIGN, Portal, make_portal

EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def portal(built_campaign, tmp_path_factory) -> Portal:
    return make_portal(built_campaign, tmp_path_factory.mktemp("forms"))


def _token_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "every form carries its CSRF token"
    return m.group(1)


def _log(portal: Portal, action: str | None = None) -> list[dict]:
    return ServiceState(portal.state_dir).audit_log(action=action)


def test_login_csrf_from_another_site_is_refused(portal):
    """The attack: another site's auto-submitting form posts the attacker's token to /signin."""
    with TestClient(portal.app(), follow_redirects=False) as victim:
        r = victim.post("/signin", data={"token": portal.tokens["scientist_other"]},
                        headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403 and COOKIE not in r.cookies
        # an old browser sending neither header: no token bound to the pre-session cookie, refused too
        r = victim.post("/signin", data={"token": portal.tokens["scientist_other"]})
        assert r.status_code == 403 and "security token" in r.text and COOKIE not in r.cookies
        # the token of another browser's page does not fit this browser's pre-session cookie
        with TestClient(portal.app()) as attacker:
            stolen = _token_of(attacker.get("/").text)
        r = victim.post("/signin", data={"token": portal.tokens["scientist_other"], "csrf_token": stolen})
        assert r.status_code == 403 and COOKIE not in r.cookies
        # the genuine form of this browser signs in
        own = _token_of(victim.get("/").text)
        r = victim.post("/signin", data={"token": portal.tokens["scientist"], "csrf_token": own},
                        headers={"Origin": str(victim.base_url), "Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 303 and r.cookies.get(COOKIE) == portal.tokens["scientist"]
    assert sum(e["detail"]["path"] == "/signin" and e["detail"]["status"] == 403 for e in _log(portal, "refused")) == 3


def test_every_signed_in_form_is_checked_for_forgery(portal):
    with TestClient(portal.app(), cookies={COOKIE: portal.tokens["scientist"]}, follow_redirects=False) as c:
        token = _token_of(c.get(f"/campaigns/{CAMPAIGN}").text)
        for path in (f"/campaigns/{CAMPAIGN}/report", f"/campaigns/{CAMPAIGN}/lab", "/signout"):
            kwargs = {"files": {"file": ("x.csv", b"sample_id\n", "text/csv")}} if path.endswith("/lab") else {}
            assert c.post(path, **kwargs).status_code == 403, path
            r = c.post(path, data={"csrf_token": token}, headers={"Origin": EVIL}, **kwargs)
            assert r.status_code == 403 and "another origin" in r.text, path
        r = c.post(f"/campaigns/{CAMPAIGN}/report", data={"csrf_token": token})
        assert r.status_code == 303


def test_cookies_are_secure_over_tls_and_forwarded_scheme_only_from_a_trusted_proxy(portal):
    from dm_hpc.service import create_app

    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    # the TestClient's peer is "testclient": trusted in one app, a stranger to the other
    for trusted, secure in (([], False), (["testclient"], True)):
        app = create_app(portal.campaigns, portal.state_dir, trusted_proxies=trusted)
        with TestClient(app, follow_redirects=False) as c:
            page = c.get("/", headers=forwarded)
            token = _token_of(page.text)
            # sent by hand: the client keeps a Secure cookie for https, and this hop is plain http
            presession = {"Cookie": f"{PRESESSION}={page.cookies[PRESESSION]}"}
            c.cookies.clear()
            r = c.post("/signin", data={"token": portal.tokens["scientist"], "csrf_token": token},
                       headers={**forwarded, **presession})
            assert r.status_code == 303
            cookies = r.headers.get_list("set-cookie") + page.headers.get_list("set-cookie")
            assert cookies and all(("; secure" in h.lower()) is secure for h in cookies), cookies
            assert all("httponly" in h.lower() and "samesite=strict" in h.lower() for h in cookies)
    with TestClient(create_app(portal.campaigns, portal.state_dir), base_url="https://portal.test") as c:
        assert "secure" in c.get("/").headers["set-cookie"].lower()  # TLS straight to the service


def test_writes_and_refusals_are_audited_with_their_actor(portal):
    admin = {"Authorization": f"Bearer {portal.tokens['admin']}"}
    with TestClient(portal.app(), follow_redirects=False) as c:
        # the page post that rewrites a campaign's report
        c.cookies.set(COOKIE, portal.tokens["scientist"])
        token = _token_of(c.get(f"/campaigns/{CAMPAIGN}").text)
        assert c.post(f"/campaigns/{CAMPAIGN}/report", data={"csrf_token": token}).status_code == 303
        c.cookies.clear()
        # refusals: not granted, no token, bad token, too large, page without sign-in
        other = {"Authorization": f"Bearer {portal.tokens['scientist_other']}"}
        assert c.get(f"/api/v1/campaigns/{CAMPAIGN}/records", headers=other).status_code == 403
        assert c.get("/api/v1/audit").status_code == 401
        assert c.get("/api/v1/me", headers={"Authorization": "Bearer forged"}).status_code == 401
        big = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", headers={"Authorization": f"Bearer {portal.tokens['lab']}"},
                     files={"file": ("big.csv", b"x" * (6 * 2**20))})
        assert big.status_code == 413
        assert c.get(f"/campaigns/{CAMPAIGN}").status_code == 303
        # admin reads of the credit table and the audit log
        assert c.get("/api/v1/contributors", headers=admin).status_code == 200
        assert c.get("/api/v1/audit", headers=admin).status_code == 200
    redraws = _log(portal, "report_redraw")
    assert redraws and redraws[0]["user"] == "scientist" and redraws[0]["campaign"] == CAMPAIGN
    refused = [(e["user"], e["detail"]["status"], e["detail"]["path"]) for e in _log(portal, "refused")]
    assert ("scientist_other", 403, f"/api/v1/campaigns/{CAMPAIGN}/records") in refused
    assert ("(anonymous)", 401, "/api/v1/audit") in refused
    assert ("(unknown token)", 401, "/api/v1/me") in refused
    assert ("lab", 413, f"/api/v1/campaigns/{CAMPAIGN}/lab/results") in refused
    assert ("(anonymous)", 303, f"/campaigns/{CAMPAIGN}") in refused
    assert [e["user"] for e in _log(portal, "read_contributors")] == ["admin"]
    assert [e["user"] for e in _log(portal, "read_audit")] == ["admin"]
