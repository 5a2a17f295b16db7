"""Every API endpoint x every role x granted or not -> the expected status; exports by access level."""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from dm_hpc.data import Store
from dm_hpc.data.access import AccessLevel, AccessMap, AccessRule
from dm_hpc.service import Role, ServiceState

from .conftest import CAMPAIGN, filled_sheet

# endpoint -> who may call it: "any" signed-in user, "science" (admin + granted scientist),
# "lab" (admin + granted scientist or lab user), "admin" only.
ENDPOINTS = [
    ("GET", "/api/v1/me", "any"),
    ("GET", "/api/v1/campaigns", "any"),
    ("GET", f"/api/v1/campaigns/{CAMPAIGN}", "science"),
    ("GET", f"/api/v1/campaigns/{CAMPAIGN}/report", "science"),
    ("GET", f"/api/v1/campaigns/{CAMPAIGN}/report/best_vs_evaluations.png", "science"),
    ("GET", f"/api/v1/campaigns/{CAMPAIGN}/lab/pending", "lab"),
    ("GET", f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv", "lab"),
    ("GET", f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=xlsx", "lab"),
    ("POST", f"/api/v1/campaigns/{CAMPAIGN}/lab/results", "lab"),
    ("POST", f"/api/v1/campaigns/{CAMPAIGN}/predict", "science"),
    ("POST", f"/api/v1/campaigns/{CAMPAIGN}/design", "science"),
    ("GET", f"/api/v1/campaigns/{CAMPAIGN}/records", "science"),
    ("GET", f"/api/v1/campaigns/{CAMPAIGN}/records?format=csv", "science"),
    ("PUT", f"/api/v1/campaigns/{CAMPAIGN}/records/RECORD/access", "admin"),
    ("GET", "/api/v1/contributors", "admin"),
    ("GET", "/api/v1/audit", "admin"),
]
ALLOWED = {
    "any": {"admin", "scientist", "scientist_other", "lab", "lab_other"},
    "science": {"admin", "scientist"},
    "lab": {"admin", "scientist", "lab"},
    "admin": {"admin"},
}
CALLERS = ["anonymous", "bad_token", "admin", "scientist", "scientist_other", "lab", "lab_other"]


@pytest.fixture(scope="module")
def client(portal):
    with TestClient(portal.app()) as c:
        yield c


@pytest.fixture(scope="module")
def filled(client, portal) -> bytes:
    sheet = client.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv",
                       headers={"Authorization": f"Bearer {portal.tokens['admin']}"})
    return filled_sheet(sheet.content).to_csv(index=False).encode()


def call(client, method, path, token, filled: bytes, record_id: str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    path = path.replace("RECORD", record_id)
    if path.endswith("/lab/results"):
        return client.post(path, headers=headers, files={"file": ("filled.csv", filled, "text/csv")})
    if path.endswith("/predict"):
        return client.post(path, headers=headers, json={"compositions": [{"Cu": 0.5, "Ni": 0.5}]})
    if path.endswith("/design"):
        return client.post(path, headers=headers, json={"targets": ["mixing_energy<=0 eV/atom"], "n": 2})
    if method == "PUT":
        return client.put(path, headers=headers, json={"level": "consortium"})
    return client.request(method, path, headers=headers)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path", "kind"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_matrix(client, portal, filled, caller, method, path, kind):
    token = {"anonymous": None, "bad_token": "not-a-token"}.get(caller, portal.tokens.get(caller))
    record_id = next(iter(Store.open(portal.campaigns.parent / "store").records())).record_id
    response = call(client, method, path, token, filled, record_id)
    if caller in ("anonymous", "bad_token"):
        expected = 401
    else:
        expected = 200 if caller in ALLOWED[kind] else 403
    if path.endswith("/lab/results") and caller == "lab" and response.status_code == 400:
        # the sheet another caller stored before (consortium, which the lab, clearance public, does
        # not read): refused whatever its values, as a guess of them would be (test_lab_resend.py)
        expected = 400
        assert "a record you may not read" in response.text, response.text[:300]
    assert response.status_code == expected, response.text[:300]


def test_unknown_campaign_is_404_for_admins_and_403_for_others(client, portal):
    for caller, expected in (("admin", 404), ("scientist", 403), ("lab", 403)):
        r = client.get("/api/v1/campaigns/nope/lab/pending", headers={"Authorization": f"Bearer {portal.tokens[caller]}"})
        assert r.status_code == expected


def test_tokens_are_stored_only_as_hashes_and_revocation_is_immediate(client, portal):
    raw = (portal.state_dir / "service.sqlite").read_bytes()
    assert all(token.encode() not in raw for token in portal.tokens.values())
    state = ServiceState(portal.state_dir)
    token = state.add_user("temp", Role.scientist, [CAMPAIGN])
    h = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/v1/campaigns/{CAMPAIGN}", headers=h).status_code == 200
    state.revoke("temp")
    assert client.get(f"/api/v1/campaigns/{CAMPAIGN}", headers=h).status_code == 401
    with sqlite3.connect(portal.state_dir / "service.sqlite") as db:
        assert db.execute("SELECT count(*) FROM users WHERE name = 'temp' AND revoked IS NOT NULL").fetchone() == (1,)


def test_exports_follow_access_levels_and_are_audited(client, portal):
    store = portal.campaigns.parent / "store"
    ids = sorted(r.record_id for r in Store.open(store).records())
    assert len(ids) >= 5
    today = datetime.now(UTC).date()
    levels = {
        ids[0]: AccessRule(AccessLevel.public),
        ids[1]: AccessRule(AccessLevel.consortium),
        ids[2]: AccessRule(AccessLevel.restricted),
        ids[3]: AccessRule(AccessLevel.embargoed, today + timedelta(days=30)),
        ids[4]: AccessRule(AccessLevel.embargoed, today - timedelta(days=1)),  # ended: public now
    }
    access = AccessMap(store)
    for rid, rule in levels.items():
        access.set([rid], rule)
    state = ServiceState(portal.state_dir)
    tokens = {lvl: state.add_user(f"sci_{lvl.value}", Role.scientist,
                                  [CAMPAIGN], lvl) for lvl in AccessLevel}
    seen = {}
    approver = {"Authorization": f"Bearer {state.add_user('approver', Role.approver, [], AccessLevel.embargoed)}"}
    for lvl, token in tokens.items():
        h = {"Authorization": f"Bearer {token}"}
        before = client.get(f"/api/v1/campaigns/{CAMPAIGN}/records", headers=h).json()
        # above the public level nothing leaves before an approver grants the request
        assert all(rec["access_level"] == "public" or rec["record_id"] == ids[4] for rec in before["records"])
        asked = client.post(f"/api/v1/campaigns/{CAMPAIGN}/exports", headers=h, json={"reason": "paper"})
        if asked.status_code == 200:
            granted = client.post(f"/api/v1/exports/{asked.json()['id']}/approve", headers=approver, json={"days": 1})
            assert granted.status_code == 200 and granted.json()["status"] == "granted"
        r = client.get(f"/api/v1/campaigns/{CAMPAIGN}/records", headers=h)
        assert r.status_code == 200
        body = r.json()
        got = {rec["record_id"] for rec in body["records"]}
        seen[lvl] = got
        assert body["withheld"] == len(ids) - len(got) and body["awaiting_approval"] == 0
    assert ids[0] in seen[AccessLevel.public] and ids[4] in seen[AccessLevel.public]
    assert ids[1] not in seen[AccessLevel.public] and ids[1] in seen[AccessLevel.consortium]
    assert ids[2] not in seen[AccessLevel.consortium] and ids[2] in seen[AccessLevel.restricted]
    assert ids[3] not in seen[AccessLevel.restricted] and ids[3] in seen[AccessLevel.embargoed]
    assert seen[AccessLevel.embargoed] == set(ids)
    # the CSV export applies the same filter
    csv = client.get(f"/api/v1/campaigns/{CAMPAIGN}/records?format=csv",
                     headers={"Authorization": f"Bearer {tokens[AccessLevel.public]}"}).text
    assert ids[2] not in csv and ids[3] not in csv
    # every export is in the audit log with the ids that left
    log = state.audit_log(action="export")
    mine = [e for e in log if e["user"] == "sci_public"]
    assert mine and set(mine[0]["detail"]["record_ids"]) == seen[AccessLevel.public]
    # an admin can open a restricted record; an embargo without an end date is refused
    admin = {"Authorization": f"Bearer {portal.tokens['admin']}"}
    bad = client.put(f"/api/v1/campaigns/{CAMPAIGN}/records/{ids[2]}/access", headers=admin, json={"level": "embargoed"})
    assert bad.status_code == 400 and "end date" in bad.json()["detail"]
    ok = client.put(f"/api/v1/campaigns/{CAMPAIGN}/records/{ids[2]}/access", headers=admin, json={"level": "public"})
    assert ok.status_code == 200 and access.rule(ids[2]).level is AccessLevel.public


PAGES = [
    ("GET", "/campaigns", "any"),
    ("GET", f"/campaigns/{CAMPAIGN}", "science"),
    ("GET", f"/campaigns/{CAMPAIGN}/plots/parity.png", "science"),
    ("POST", f"/campaigns/{CAMPAIGN}/report", "science"),
    ("GET", f"/campaigns/{CAMPAIGN}/lab", "lab"),
    ("GET", f"/campaigns/{CAMPAIGN}/lab/sheet.csv", "lab"),
    ("GET", f"/campaigns/{CAMPAIGN}/lab/sheet.xlsx", "lab"),
    ("POST", f"/campaigns/{CAMPAIGN}/lab", "lab"),
]


def csrf_of(c: TestClient) -> str:
    """The CSRF token of this client's pages (it also receives the pre-session cookie)."""
    import re

    html = c.get("/campaigns").text if "signin" not in c.get("/", follow_redirects=False).text else c.get("/").text
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    return m.group(1) if m else ""


@pytest.mark.parametrize("caller", CALLERS)
def test_page_matrix(portal, filled, caller):
    """Pages: no or bad cookie -> back to sign-in (303); outside grants -> 403 page; else 200."""
    from dm_hpc.service.auth import COOKIE

    token = {"anonymous": None, "bad_token": "not-a-token"}.get(caller, portal.tokens.get(caller))
    with TestClient(portal.app(), cookies={COOKIE: token} if token else {}, follow_redirects=False) as c:
        form = {"csrf_token": csrf_of(c)}
        for method, path, kind in PAGES:
            if method == "POST" and path.endswith("/lab"):
                r = c.post(path, files={"file": ("filled.csv", filled, "text/csv")}, data=form)
            elif method == "POST":
                r = c.post(path, data=form)
            else:
                r = c.request(method, path)
            if caller in ("anonymous", "bad_token"):
                assert r.status_code == 303 and r.headers["location"] == "/", path
            elif caller in ALLOWED[kind] and method == "POST" and path.endswith("/lab") and r.status_code == 400:
                # the sheet stored before by a caller of higher clearance (test_matrix's admin, consortium):
                # refused whatever its values for a caller who does not read it, as in test_matrix
                assert "a record you may not read" in r.text, r.text[:300]
            elif caller in ALLOWED[kind]:
                assert r.status_code in (200, 303), (path, r.status_code)  # the report redraw redirects
            else:
                assert r.status_code == 403 and "may not" in r.text, path


# ---------------------------------------------------------------------------------------------
# The canary: one embargoed lab record with a distinctive value, far from every other value of
# the campaign (EMT mixing energies here lie within about +-0.1 eV/atom). No byte of any response
# to a caller without clearance may carry its id or its value: not a record listing, nor a
# derived output (best values, report, plots, predictions, designs, lab sheets, pages, errors).
CANARY_VALUE = -0.9187346
#: Callers granted the campaign (or not) but not cleared for embargoed records.
UNCLEARED = ["scientist", "restricted", "lab", "scientist_other", "lab_other", "approver"]
#: The lab's held value after the canary (``canary``): its why in the journal, which names the
#: value sent and the model's interval, and the interval's bounds (name -> ways of writing it).
HELD: dict[str, set[bytes]] = {}
#: The canary's sample sent again with another value (refused for every caller: already measured).
RESEND: list[bytes] = []
PLOTS = ["best_vs_evaluations.png", "parity.png", "pareto.png"]


def canary_strings(record_id: str) -> list[bytes]:
    """Every way the canary may be written: its id, its value at 3 to 9 significant digits."""
    values = {f"{CANARY_VALUE:.{k}g}" for k in range(3, 10)} | {repr(CANARY_VALUE)}
    return [record_id.encode(), *(v.encode() for v in sorted(values))]


def readable_bytes(content: bytes) -> list[bytes]:
    """A response body and what it holds in compressed form: each member of a zip (XLSX) and the
    text chunks of a PNG (metadata)."""
    import io
    import zipfile

    out = [content]
    if content.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            out += [zf.read(n) for n in zf.namelist()]
    if content.startswith(b"\x89PNG"):
        from PIL import Image

        with Image.open(io.BytesIO(content)) as img:
            out += [f"{k}={v}".encode() for k, v in {**img.info, **getattr(img, "text", {})}.items()]
    return out


@pytest.fixture(scope="module")
def canary(built_campaign, tmp_path_factory):
    """A fresh portal whose store holds the canary (embargoed for a year), a scientist of
    clearance restricted; returns the portal, the canary's record id and its composition."""
    import io

    import pandas as pd

    from .conftest import PROP, make_portal

    portal = make_portal(built_campaign, tmp_path_factory.mktemp("canary"))
    state = ServiceState(portal.state_dir)
    portal.tokens["restricted"] = state.add_user("restricted", Role.scientist, [CAMPAIGN], AccessLevel.restricted)
    portal.tokens["approver"] = state.add_user("approver", Role.approver, [CAMPAIGN], AccessLevel.restricted)
    until = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
    admin = {"Authorization": f"Bearer {portal.tokens['admin']}"}
    with TestClient(portal.app()) as c:
        sheet = c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv", headers=admin).content
        table = pd.read_csv(io.BytesIO(sheet)).iloc[:1].copy()
        table[PROP] = CANARY_VALUE
        table["confirm"] = "yes"  # far outside the model's interval: meant, not a typo
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", headers=admin,
                   files={"file": ("canary.csv", table.to_csv(index=False).encode(), "text/csv")},
                   data={"access_level": "embargoed", "embargo_until": until})
        assert r.status_code == 200, r.text
        rid = r.json()["record_ids"][0]
        # the admin's annotated copy holds the canary: another user must not fetch it by its token
        ANNOTATED_TOKENS[:] = [r.json()["annotated"].rsplit("/", 1)[1].removesuffix(".xlsx")]
        # the lab (clearance public) sends the other sample far outside the model's interval: held,
        # its why journalled; the canary's sample again with another value: refused
        from dm_hpc.campaign import journal as jn
        from dm_hpc.campaign.holds import interval

        rest = pd.read_csv(io.BytesIO(sheet)).iloc[1:2].copy()
        rest[PROP] = 0.7312468
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", data={"access_level": "public"},
                   headers={"Authorization": f"Bearer {portal.tokens['lab']}"},
                   files={"file": ("held.csv", rest.to_csv(index=False).encode(), "text/csv")})
        assert r.status_code == 200 and len(r.json()["held"]) == 1, r.text
        entry = jn.replay(portal.campaigns.parent / "run" / "journal.jsonl").lab[rest["sample_id"].iloc[0]]
        bounds = interval(entry.predicted, PROP.split(":")[1].split(" ")[0])
        HELD.clear()
        HELD.update({"held_why": {entry.held.encode()}, "held value": {b"0.731247", b"0.7312468"},
                     "interval": {f"{x:.{k}g}".encode() for x in bounds for k in range(5, 10)}})
        RESEND[:] = [table.assign(**{PROP: CANARY_VALUE / 2}).to_csv(index=False).encode()]
        # request 1 (an admin's, naming the canary) and 2 (a scientist's): the export pages list them
        assert c.post(f"/api/v1/campaigns/{CAMPAIGN}/exports", headers=admin,
                      json={"record_ids": [rid], "reason": "partner"}).status_code == 200
        assert c.post(f"/api/v1/campaigns/{CAMPAIGN}/exports", json={"reason": "paper"},
                      headers={"Authorization": f"Bearer {portal.tokens['scientist']}"}).status_code == 200
    comp = {col.split(":")[1].split(" ")[0]: float(table[col].iloc[0])
            for col in table.columns if col.startswith("composition:")}
    return portal, rid, {el: x for el, x in comp.items() if x > 0}


def _bodies(composition: dict[str, float], upload: bytes | None = None) -> dict[str, dict]:
    """Request bodies by route path; a route not named here is called with an empty JSON body.
    ``upload``: the sheet every upload sends (a refused one), by default one naming no sample."""
    bad_sheet = {"files": {"file": ("bad.csv", upload or b"sample_id\nno-such-sample\n", "text/csv")}}
    return {
        "/api/v1/campaigns/{name}/predict": {"json": {"compositions": [composition]}},
        "/api/v1/campaigns/{name}/design": {"json": {"targets": ["mixing_energy<=-0.5 eV/atom"], "n": 5}},
        "/api/v1/campaigns/{name}/lab/results": bad_sheet,
        "/campaigns/{name}/lab": bad_sheet,
        "/api/v1/campaigns/{name}/records/{record_id}/access": {"json": {"level": "public"}},
        "/api/v1/campaigns/{name}/exports": {"json": {"reason": "canary test"}},
        "/campaigns/{name}/exports": {"data": {"reason": "canary test"}},
        "/api/v1/exports/{request_id}/approve": {"json": {"days": 1}},
        "/api/v1/exports/{request_id}/deny": {"json": {}},
        "/exports/{request_id}/approve": {"data": {"days": "1"}},
        "/exports/{request_id}/deny": {"data": {}},
    }


#: Query variants of routes whose answer changes with the query.
QUERIES = {
    "/api/v1/campaigns/{name}/records": ["?format=json", "?format=csv"],
    "/api/v1/campaigns/{name}/lab/sheet": ["?format=csv", "?format=xlsx"],
}


def app_routes(routes, prefix: str = ""):
    """(path, methods) of every route, routers included (walked, not listed by hand)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from app_routes(included.routes, prefix + route.include_context.prefix)
        elif hasattr(route, "path"):
            yield prefix + route.path, getattr(route, "methods", None) or {"GET"}


#: the annotated copies' tokens the canary test tries (the canary upload's own, set by the fixture)
ANNOTATED_TOKENS: list[str] = []


def route_requests(app, record_id: str, composition: dict[str, float], upload: bytes | None = None):
    """(method, url, request kwargs) for every route of ``app`` (so a new route is covered without
    being listed), every value of its path parameters and every query variant."""
    import itertools
    import string

    values = {"name": [CAMPAIGN], "plot": PLOTS, "fmt": ["csv", "xlsx"], "record_id": [record_id],
              "request_id": ["1", "2"], "token": ANNOTATED_TOKENS or ["0" * 16]}
    bodies = _bodies(composition, upload)
    for path, methods in app_routes(app.routes):
        fields = [f for _, f, _, _ in string.Formatter().parse(path) if f]
        missing = [f for f in fields if f not in values]
        assert not missing, f"route {path}: give the canary test values for {missing}"
        for method in sorted(methods - {"HEAD"}):
            for combo in itertools.product(*(values[f] for f in fields)):
                url = path.format(**dict(zip(fields, combo)))
                for query in QUERIES.get(path, [""]):
                    kwargs = bodies.get(path, {"json": {}} if method in ("POST", "PUT") else {})
                    yield method, url + query, kwargs


def _client_for(portal, caller: str) -> TestClient:
    from dm_hpc.service.auth import COOKIE

    token = portal.tokens[caller]
    return TestClient(portal.app(), cookies={COOKIE: token}, headers={"Authorization": f"Bearer {token}"},
                      follow_redirects=False)


def _with_form_token(kwargs: dict, url: str, method: str, token: str) -> dict:
    """Page form posts carry the CSRF token, so they reach the handler instead of the forgery check."""
    if method != "POST" or url.startswith("/api/"):
        return kwargs
    data = {**kwargs.get("data", {}), "csrf_token": token}
    return {"files": kwargs["files"], "data": data} if "files" in kwargs else {"data": data}


def sweep(portal, callers: list[str], record_id: str, composition: dict[str, float],
          secrets: dict[str, set[bytes]], allowed=lambda caller, url: set(),
          upload: bytes | None = None) -> tuple[int, list[str]]:
    """Call every route (``route_requests``) as each of ``callers`` (signed in by token and
    cookie, form posts with their CSRF token; a caller without a token anonymously); returns how
    many calls and the leaks: each response (and what it holds compressed) that carries a way of
    writing one of ``secrets`` (name -> ways), but for the names ``allowed(caller, url)``.
    ``upload``: the (refused) sheet of every upload route (``_bodies``)."""
    from dm_hpc.service.auth import COOKIE

    leaks, calls = [], 0
    for caller in callers:
        token = portal.tokens.get(caller)
        auth = {"cookies": {COOKIE: token}, "headers": {"Authorization": f"Bearer {token}"}} if token else {}
        with TestClient(portal.app(), follow_redirects=False, **auth) as c:
            form = csrf_of(c)
            for method, url, kwargs in route_requests(c.app, record_id, composition, upload):
                r = c.request(method, url, **_with_form_token(kwargs, url, method, form))
                calls += 1
                mine = allowed(caller, url)
                for part in readable_bytes(r.content):
                    found = [k for k, ways in secrets.items() if k not in mine and any(w in part for w in ways)]
                    if found:
                        leaks.append(f"{caller} {method} {url} -> {r.status_code}: {found}")
                        break
    return calls, leaks


def test_canary_reaches_no_caller_without_clearance(canary):
    """The canary, the held value's why and the model's interval it fell outside (``canary``)."""
    portal, record_id, composition = canary
    calls, leaks = sweep(portal, UNCLEARED, record_id, composition, {"canary": set(canary_strings(record_id)), **HELD},
                         upload=RESEND[0])
    assert calls > 4 * 20, calls
    assert not leaks, "canary leaked:\n" + "\n".join(leaks)


def test_canary_is_what_a_cleared_caller_sees(canary):
    """The control: with clearance the canary is the best record, in the report, and the model
    predicts it at its composition; without, the model was never trained on it."""
    portal, record_id, composition = canary
    with _client_for(portal, "admin") as c:
        best = c.get(f"/api/v1/campaigns/{CAMPAIGN}").json()["best"]
        assert best[0]["record_id"] == record_id and best[0]["value"] == pytest.approx(CANARY_VALUE)
        assert record_id in c.get(f"/api/v1/campaigns/{CAMPAIGN}/report").json()["summary_markdown"]
        p = c.post(f"/api/v1/campaigns/{CAMPAIGN}/predict", json={"compositions": [composition]}).json()[0]
        assert abs(p["mean"]["mixing_energy"] - CANARY_VALUE) < 0.3
    with _client_for(portal, "scientist") as c:
        p = c.post(f"/api/v1/campaigns/{CAMPAIGN}/predict", json={"compositions": [composition]}).json()[0]
        assert abs(p["mean"]["mixing_energy"] - CANARY_VALUE) > 0.5
        assert c.get(f"/api/v1/campaigns/{CAMPAIGN}").json()["best"][0]["record_id"] != record_id


@pytest.mark.parametrize("composition", [{"Cu": "Infinity"}, {"Cu": 1e308, "Ni": 1e308}, {"Cu": "NaN"}])
def test_predict_refuses_non_finite_compositions_naming_the_field(client, portal, composition):
    import json

    body = json.dumps({"compositions": [composition]}).replace('"Infinity"', "Infinity").replace('"NaN"', "NaN")
    r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/predict", content=body,
                    headers={"Authorization": f"Bearer {portal.tokens['scientist']}", "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert "compositions" in r.text and ("Cu" in r.text or "finite" in r.text)
