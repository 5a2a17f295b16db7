"""A lab sheet sent again through the portal: what the reply says of the stored record's access
level, and what it tells a sender who may not read that record. Real portal, real store, the
session's campaign copied per test."""
from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from dm_hpc.data.access import AccessLevel, AccessMap
from dm_hpc.service.auth import COOKIE

from .conftest import CAMPAIGN, PROP, PREDICTED, Portal, make_portal

UNTIL = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()


@pytest.fixture
def portal(built_campaign, tmp_path) -> Portal:
    return make_portal(built_campaign, tmp_path)


def _client(portal: Portal, who: str) -> TestClient:
    token = portal.tokens[who]
    return TestClient(portal.app(), cookies={COOKIE: token}, headers={"Authorization": f"Bearer {token}"})


def _one_sample(portal: Portal) -> pd.DataFrame:
    """The first pending sample of the lab sheet, filled with the model's prediction."""
    with _client(portal, "admin") as c:
        sheet = c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv").content
    table = pd.read_csv(io.BytesIO(sheet)).iloc[:1].copy()
    table[PROP] = table[PREDICTED].round(4)
    return table


def _send(c: TestClient, table: pd.DataFrame, **form):
    return c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", data=form,
                  files={"file": ("sheet.csv", table.to_csv(index=False).encode(), "text/csv")})


def test_an_identical_value_sent_again_is_answered_with_the_records_own_level(portal):
    """Sent again with the form's default (consortium), an embargoed record's sheet was answered
    'access level consortium' while the record stayed embargoed: the lab believed it shared."""
    table = _one_sample(portal)
    with _client(portal, "lab") as c:  # the lab embargoes its own measurement
        first = _send(c, table, access_level="embargoed", embargo_until=UNTIL)
        assert first.status_code == 200 and first.json()["new"] == 1, first.text
        [rid] = first.json()["record_ids"]
        again = _send(c, table)  # the form's default level
        assert again.status_code == 200, again.text
        body = again.json()
        assert body["new"] == 0 and body["access_level"] is None, body
        [stored] = body["stored"]
        assert (stored["access_level"], stored["embargo_until"]) == ("embargoed", UNTIL), stored
        assert any("embargoed" in w and "unchanged" in w for w in body["warnings"]), body["warnings"]
        assert AccessMap(portal.campaigns.parent / "store").rule(rid).level is AccessLevel.embargoed
        # the lab page says the same
        html = c.get(f"/campaigns/{CAMPAIGN}/lab").text
        token = html.split('name="csrf_token" value="')[1].split('"')[0]
        page = c.post(f"/campaigns/{CAMPAIGN}/lab", data={"csrf_token": token},
                      files={"file": ("sheet.csv", table.to_csv(index=False).encode(), "text/csv")})
        assert page.status_code == 200, page.text
        stored_html = page.text.split('id="stored"')[1].split("</table>")[0]
        assert "embargoed" in stored_html and "access level consortium" not in stored_html, stored_html


def test_a_sender_who_may_not_read_the_record_cannot_guess_its_value_by_sending_it_again(portal):
    """The admin embargoes a measurement; another lab user (clearance public) sends the sample
    again. A wrong value was refused and the right one accepted with 'new: 0' (and the record's
    id): guessing values until one is accepted gave the embargoed value back. Both are now
    refused alike, naming no record."""
    from dm_hpc.service import Role, ServiceState

    table = _one_sample(portal)
    with _client(portal, "admin") as c:
        r = _send(c, table, access_level="embargoed", embargo_until=UNTIL)
        assert r.status_code == 200 and r.json()["new"] == 1, r.text
        [rid] = r.json()["record_ids"]
    portal.tokens["lab2"] = ServiceState(portal.state_dir).add_user("lab2", Role.lab, [CAMPAIGN])
    answers = []
    with _client(portal, "lab2") as c:
        for value in (table[PROP].iloc[0] + 0.05, table[PROP].iloc[0]):  # a wrong guess, the right one
            r = _send(c, table.assign(**{PROP: value}))
            answers.append((r.status_code, [p["message"] for p in r.json().get("problems", [])]))
    assert answers[0] == answers[1] and answers[0][0] == 400, answers
    assert rid not in str(answers)
    # a reader of the record (the admin) sending it again is answered as before: nothing new
    with _client(portal, "admin") as c:
        r = _send(c, table)
        assert r.status_code == 200 and r.json()["new"] == 0 and r.json()["record_ids"] == [rid], r.text
