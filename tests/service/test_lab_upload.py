"""Lab uploads through the API: all or nothing, row-by-row errors, idempotent, bounded; the CLI side."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from dm_hpc.campaign import journal as jn
from dm_hpc.data import Store
from dm_hpc.data.access import AccessLevel, AccessMap, AccessRule
from tests.conftest import REPO

from .conftest import CAMPAIGN, PROP, filled_sheet


@pytest.fixture(scope="module")
def client(portal):
    with TestClient(portal.app()) as c:
        yield c


def _auth(portal, who="lab"):
    return {"Authorization": f"Bearer {portal.tokens[who]}"}


def _sheet(client, portal, fmt="csv", who="admin") -> bytes:
    """The lab sheet as ``who`` downloads it. By default as an admin: a lab of the default
    clearance (public) gets no predictions made from the campaign's consortium records, and the
    tests fill in the model's own predictions as plausible values (uploads are still the lab's)."""
    r = client.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format={fmt}", headers=_auth(portal, who))
    assert r.status_code == 200
    return r.content


def _upload(client, portal, name: str, content: bytes, **form):
    return client.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", headers=_auth(portal),
                       files={"file": (name, content)}, data=form)


def _store_len(portal) -> int:
    with Store.open(portal.campaigns.parent / "store") as s:
        return len(s)


def test_bad_rows_are_listed_and_nothing_is_stored_then_the_fixed_sheet_is_stored_once(client, portal):
    table = filled_sheet(_sheet(client, portal))
    before = _store_len(portal)
    bad = table.copy()
    bad[PROP] = bad[PROP].astype(object)
    bad.loc[0, PROP] = "n/a"
    bad.loc[1, "sample_id"] = "not-a-suggestion"
    r = _upload(client, portal, "bad.csv", bad.to_csv(index=False).encode())
    assert r.status_code == 400
    problems = r.json()["problems"]
    lines = {p["line"] for p in problems}
    assert {2, 3} <= lines, problems  # header is line 1
    assert any("not-a-suggestion" in p["message"] for p in problems)
    assert _store_len(portal) == before  # all or nothing

    good = table.to_csv(index=False).encode()
    r = _upload(client, portal, "good.csv", good, access_level="restricted")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["records"] == len(table) == body["new"] and not body["queued"]
    assert _store_len(portal) == before + len(table)
    rules = AccessMap(portal.campaigns.parent / "store").rules()
    assert all(rules[rid] == AccessRule(AccessLevel.restricted) for rid in body["record_ids"])
    # the same sheet again: accepted, nothing new (content-hash ids)
    again = _upload(client, portal, "good.csv", good, access_level="restricted")
    assert again.status_code == 200 and again.json()["new"] == 0
    assert _store_len(portal) == before + len(table)
    # a different value for a sample already measured is refused, naming the sample
    changed = filled_sheet(_sheet(client, portal, "csv"), value=-0.07)
    assert changed.empty  # nothing is pending any more...
    state = jn.replay(portal.campaigns.parent / "run" / "journal.jsonl")
    assert all(e.record_id for e in state.lab.values())
    other = table.copy()
    other[PROP] = -0.07
    r = _upload(client, portal, "other.csv", other.to_csv(index=False).encode())
    assert r.status_code == 400 and "already measured" in r.json()["problems"][0]["message"]
    assert _store_len(portal) == before + len(table)


def test_xlsx_round_trip_and_hostile_files(client, portal):
    xlsx = _sheet(client, portal, "xlsx")
    table = pd.read_excel(io.BytesIO(xlsx))
    assert "sample_id" in table.columns
    # not a workbook, a macro workbook, a formula-looking cell, unsupported type, too large
    assert _upload(client, portal, "x.xlsx", b"PK not a zip").status_code == 400
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("xl/vbaProject.bin", b"\0" * 10)
    r = _upload(client, portal, "macro.xlsx", buf.getvalue())
    assert r.status_code == 400 and "macros" in r.json()["problems"][0]["message"]
    r = _upload(client, portal, "sheet.exe", b"MZ")
    assert r.status_code == 400 and "unsupported" in r.json()["problems"][0]["message"]
    r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", headers=_auth(portal),
                    files={"file": ("big.csv", b"x" * (6 * 2**20))})
    assert r.status_code == 413
    # a body streamed without Content-Length is cut off at the same limit
    chunks = (b"x" * 2**20 for _ in range(8))
    r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/predict", headers={**_auth(portal, "scientist"),
                    "Content-Type": "application/json"}, content=chunks)
    assert r.status_code == 413


def test_embargo_needs_a_date(client, portal):
    r = _upload(client, portal, "e.csv", b"sample_id\n", access_level="embargoed")
    assert r.status_code == 400 and "end date" in r.json()["detail"]


def test_predictions_and_design_answer_with_uncertainty(client, portal):
    h = _auth(portal, "scientist")
    r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/predict", headers=h,
                    json={"compositions": [{"Cu": 0.5, "Ni": 0.5}, {"Ni": 0.2, "Pd": 0.8}]})
    assert r.status_code == 200
    out = r.json()
    assert out[0]["composition"] == {"Cu": 0.5, "Ni": 0.5}
    assert all(p["std"]["mixing_energy"] > 0 for p in out)
    r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/predict", headers=h, json={"compositions": [{"Fe": 1}]})
    assert r.status_code == 422 and "Fe" in r.json()["detail"][0]["msg"]
    r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/design", headers=h, json={"targets": ["mixing_energy<= banana"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "targets", 0], r.text
    r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/design", headers=h,
                    json={"targets": ["mixing_energy<=0.5 eV/atom"], "n": 3})
    assert r.status_code == 200 and 1 <= len(r.json()) <= 3


def dm(*args):
    return subprocess.run([sys.executable, "-m", "dm_hpc", *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_cli_users_audit_and_store_export_by_access_level(client, portal, tmp_path):
    state = str(tmp_path / "state")
    add = dm("users", "add", "ana", "--role", "scientist", "--campaign", CAMPAIGN, "--state-dir", state)
    assert add.returncode == 0, add.stderr
    token = add.stdout.strip().splitlines()[-1]
    assert len(token) >= 40 and token.encode() not in (tmp_path / "state" / "service.sqlite").read_bytes()
    assert dm("users", "add", "ana", "--role", "lab", "--state-dir", state).returncode == 2  # duplicate, no traceback
    bad = dm("users", "add", "bob", "--role", "boss", "--state-dir", state)
    assert bad.returncode == 2 and "--role" in bad.stderr and "Traceback" not in bad.stderr
    listed = dm("users", "list", "--state-dir", state).stdout
    assert "ana" in listed and "scientist" in listed and CAMPAIGN in listed
    assert dm("users", "revoke", "ana", "--state-dir", state).returncode == 0
    assert "revoked" in dm("users", "list", "--state-dir", state).stdout
    _sheet(client, portal, who="lab")
    audit = dm("audit", "--state-dir", str(portal.state_dir), "--json", "--action", "lab_sheet")
    assert audit.returncode == 0
    entry = json.loads(audit.stdout.splitlines()[0])
    assert entry["user"] == "lab" and entry["campaign"] == CAMPAIGN and entry["detail"] == {"format": "csv"}

    store = portal.campaigns.parent / "store"
    ids = sorted(r.record_id for r in Store.open(store).records())
    AccessMap(store).set(ids[:1], AccessRule(AccessLevel.restricted))
    AccessMap(store).set(ids[1:3], AccessRule(AccessLevel.public))
    out = tmp_path / "pub.csv"
    r = dm("store", "export", str(out), "--store", str(store), "--access-level", "public")
    assert r.returncode == 0, r.stderr
    exported = pd.read_csv(out)
    assert len(exported) == 2 and f"{len(ids) - 2} above access level public withheld" in " ".join(r.stdout.split())
    full = tmp_path / "all.csv"
    assert dm("store", "export", str(full), "--store", str(store), "--access-level", "embargoed").returncode == 0
    assert len(pd.read_csv(full)) > len(exported)
    assert dm("store", "export", str(full), "--store", str(store), "--access-level", "secret").returncode == 2


def test_contributor_report_credits_uploaders_with_data_mileage(built_campaign, tmp_path):
    from .conftest import make_portal

    portal = make_portal(built_campaign, tmp_path)
    with TestClient(portal.app()) as c:
        table = filled_sheet(_sheet(c, portal))
        assert _upload(c, portal, "good.csv", table.to_csv(index=False).encode()).status_code == 200
        admin = _auth(portal, "admin")
        c.get(f"/api/v1/campaigns/{CAMPAIGN}/records", headers=admin)
        rows = {r["contributor"]: r for r in c.get("/api/v1/contributors", headers=admin).json()}
        assert c.get("/api/v1/contributors", headers=_auth(portal, "scientist")).status_code == 403
    n_computed = len(Store.open(portal.campaigns.parent / "store").to_dataframe(source="computed"))
    # uploads are credited to the uploading user; computed records to their method
    assert rows["lab"]["records"] == len(table) and rows["emt"]["records"] == n_computed
    # the campaign learns from every record of both (its training set), and one export carried them
    assert rows["lab"]["campaign_uses"] == len(table) and rows["emt"]["campaign_uses"] == n_computed
    assert rows["lab"]["exports"] == len(table) and rows["emt"]["exports"] == n_computed
    out = dm("contributors", "--campaigns", str(portal.campaigns), "--state-dir", str(portal.state_dir))
    assert out.returncode == 0 and "lab" in out.stdout and "emt" in out.stdout


def test_cli_access_set_labels_records_and_refuses_bad_input(portal):
    store = portal.campaigns.parent / "store"
    ids = sorted(r.record_id for r in Store.open(store).records())
    ok = dm("access", "set", "--store", str(store), "--level", "embargoed", "--until", "2999-01-01", ids[0])
    assert ok.returncode == 0, ok.stderr
    rule = AccessMap(store).rule(ids[0])
    assert rule.level is AccessLevel.embargoed and str(rule.until) == "2999-01-01"
    for args, words in ((["--level", "embargoed", ids[0]], "end date"), (["--level", "secret", ids[0]], "secret"),
                        (["--level", "public", "dm-nope"], "dm-nope"), (["--level", "public", "--until", "soon", ids[0]], "soon")):
        bad = dm("access", "set", "--store", str(store), *args)
        assert bad.returncode == 2 and words in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert AccessMap(store).rule(ids[0]).level is AccessLevel.embargoed  # refused changes changed nothing
    every = dm("access", "set", "--store", str(store), "--level", "public", "--campaign", CAMPAIGN)
    assert every.returncode == 0 and all(r.level is AccessLevel.public for r in AccessMap(store).rules().values())
