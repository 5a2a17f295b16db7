"""Held and confirmed lab values seen through the portal by callers of every kind (a QA pass after
the journal began keeping ``held_why``, which holds the model's 99 % interval).

The scenario (real app, real HDF5 store, the session's real campaign): the record the
campaign's model found best is embargoed (core data: the journalled predictions were learnt from
it), then the campaign's lab user, at the default lab clearance (public), sends both pending
samples at the public level, the first far outside the model's interval (held), the second as
far out and confirmed (stored, stamped with the interval it fell outside). Then every route is
called by an anonymous caller, a scientist of clearance public (a reader), a partner scientist
of clearance consortium, the lab, a lab and a scientist of another campaign.
"""
from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.holds import interval
from dm_hpc.data import Store
from dm_hpc.data.access import AccessLevel, AccessMap, AccessRule
from dm_hpc.service.auth import COOKIE
from dm_hpc.service.state import Role, ServiceState

from .conftest import CAMPAIGN, PROP, make_portal
from .test_authorisation import ANNOTATED_TOKENS, csrf_of, readable_bytes, sweep

#: eV/atom, distinctive (EMT mixing energies here lie within about +-0.1)
HELD_VALUE, CONFIRMED_VALUE = 0.7312468, 0.6427153
CALLERS = ["anonymous", "reader", "partner", "lab", "lab_other", "scientist_other"]


def _written(x: float, digits: int = 4) -> set[str]:
    """The ways ``x`` may be written, from ``digits`` significant digits up (5 for the real
    values of the campaign, so that no other number of a response matches by chance)."""
    return {f"{x:.{k}g}" for k in range(digits, 10)} | {repr(x)}


@pytest.fixture(scope="module")
def held(built_campaign, tmp_path_factory):
    """The portal after the lab round; returns the portal, its campaign and the secrets by name
    (each a set of the ways it may be written)."""
    portal = make_portal(built_campaign, tmp_path_factory.mktemp("held-values"))
    state = ServiceState(portal.state_dir)
    portal.tokens["reader"] = state.add_user("reader", Role.scientist, [CAMPAIGN], AccessLevel.public)
    portal.tokens["partner"] = state.add_user("partner", Role.scientist, [CAMPAIGN], AccessLevel.consortium)
    campaign = load_campaign(portal.campaigns / f"{CAMPAIGN}.yaml")
    lab = jn.replay(campaign.run_dir / "journal.jsonl").lab
    held_sid, confirmed_sid = list(lab)
    frame = Store.open(campaign.store).to_dataframe()
    core = frame.sort_values("mixing_energy").iloc[0]
    AccessMap(campaign.store).set([core["record_id"]], AccessRule(AccessLevel.embargoed,
                                                                  datetime.now(UTC).date() + timedelta(days=365)))
    with TestClient(portal.app()) as client:
        sheet = client.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv",
                           headers={"Authorization": f"Bearer {portal.tokens['admin']}"})
        table = pd.read_csv(io.BytesIO(sheet.content))
        table[PROP] = [HELD_VALUE, CONFIRMED_VALUE]
        table["confirm"] = ["", "yes"]
        r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", data={"access_level": "public"},
                        headers={"Authorization": f"Bearer {portal.tokens['lab']}"},
                        files={"file": ("round.csv", table.to_csv(index=False).encode())})
    assert r.status_code == 200, r.text
    assert [h["sample_id"] for h in r.json()["held"]] == [held_sid] and r.json()["confirmed"] == [confirmed_sid]
    why = jn.replay(campaign.run_dir / "journal.jsonl").lab[held_sid].held
    assert why and "99 % interval [" in why  # the journal keeps the interval, for the owner's CLI
    secrets = {"core record id": {core["record_id"]}, "core value": _written(float(core["mixing_energy"]), 5),
               "held_why": {why}, "held value": _written(HELD_VALUE)}
    for sid in (held_sid, confirmed_sid):
        low, high = interval(lab[sid].predicted, "mixing_energy")
        secrets[f"interval of {sid}"] = _written(low, 5) | _written(high, 5)
    return portal, campaign, secrets, (held_sid, confirmed_sid), r.json()


def _client(portal, caller: str) -> TestClient:
    token = portal.tokens.get(caller)
    auth = {"cookies": {COOKIE: token}, "headers": {"Authorization": f"Bearer {token}"}} if token else {}
    return TestClient(portal.app(), follow_redirects=False, **auth)


def test_no_route_hands_a_caller_the_models_interval_a_held_value_or_core_data(held):
    """Every route (walked from the app), every caller but admins; the uploads are the
    authorisation matrix's refused sheet, so nothing changes between callers."""
    portal, _, secrets, _, upload = held
    ANNOTATED_TOKENS[:] = [upload["annotated"].rsplit("/", 1)[1].removesuffix(".xlsx")]
    # the lab's own annotated copy holds the values it sent, and only those
    calls, leaks = sweep(portal, CALLERS, next(iter(secrets["core record id"])), {"Cu": 0.8, "Pd": 0.2},
                         {k: {w.encode() for w in ways} for k, ways in secrets.items()},
                         allowed=lambda caller, url: {"held value"} if caller == "lab" and "/annotated/" in url else set())
    assert calls > 6 * 40, calls
    assert not leaks, "leaked:\n" + "\n".join(leaks)


def test_a_confirmed_value_leaves_in_exports_without_the_interval_unless_the_reader_reads_every_record(held):
    """The confirmation stamp records the interval the value fell outside: the model's output,
    learnt from the embargoed record. A reader of the public record gets who confirmed and when."""
    portal, _, secrets, (_, confirmed_sid), _ = held
    ways = secrets[f"interval of {confirmed_sid}"]
    for caller in ("reader", "partner"):
        with _client(portal, caller) as c:
            body = c.get(f"/api/v1/campaigns/{CAMPAIGN}/records").json()
            mine = [row for row in body["records"] if row["record"]["content"].get("sample_id") == confirmed_sid]
            assert mine, caller
            stamp = mine[0]["record"]["circumstances"]["provenance"]["extra"]["confirmed"]
            assert stamp["by"] == "lab" and stamp["at"] and "outside" not in stamp, (caller, stamp)
            assert not any(w in c.get(f"/api/v1/campaigns/{CAMPAIGN}/records?format=csv").text for w in ways)
    with _client(portal, "admin") as c:  # the control: the stamp is whole for a reader of every record
        rows = c.get(f"/api/v1/campaigns/{CAMPAIGN}/records").json()["records"]
        stamp = next(r for r in rows if r["record"]["content"].get("sample_id") == confirmed_sid)
        assert "outside" in stamp["record"]["circumstances"]["provenance"]["extra"]["confirmed"]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_lab_queue_says_a_sample_is_held_and_what_to_do_without_the_interval(held):
    """After the upload's reply the held sample was a plain pending row (API, page): the lab
    learnt nothing on its next visit. Now it is marked held, with what to do; the interval only
    for a reader of every record the model learnt from."""
    portal, campaign, secrets, (held_sid, confirmed_sid), _ = held
    with _client(portal, "lab") as c:
        pending = c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/pending").json()
        assert [p["sample_id"] for p in pending] == [held_sid]
        note = pending[0]["held"]
        assert "mixing_energy" in note and "confirm" in note and "send" in note and "correct" in note
        assert "[" not in note and not any(w in note for w in secrets[f"interval of {held_sid}"] | secrets["held value"])
        page = _text(c.get(f"/campaigns/{CAMPAIGN}/lab").text)
        assert f"{held_sid} mixing_energy held" in page and "confirm" in page
    low, high = interval(jn.replay(campaign.run_dir / "journal.jsonl").lab[held_sid].predicted, "mixing_energy")
    with _client(portal, "admin") as c:  # reads every record: the interval the value fell outside
        note = c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/pending").json()[0]["held"]
        assert f"[{low:.4g}, {high:.4g}] eV/atom" in note


def test_a_refused_resend_names_no_record_the_sender_may_not_read(built_campaign, tmp_path_factory):
    """A sample already measured and embargoed by another user, sent again with another value by
    a lab of clearance public: the refusal named the record's id. The id is a hash of the
    record's content, of which the lab knows all but the value (the sheet gave the rest): a few
    thousand guesses give the embargoed value back."""
    from dm_hpc.data import MaterialRecord

    portal = make_portal(built_campaign, tmp_path_factory.mktemp("held-resend"))
    until = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
    with _client(portal, "admin") as c:
        table = pd.read_csv(io.BytesIO(c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv").content)).iloc[:1]
        first = table.assign(**{PROP: -0.0123})
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", data={"access_level": "embargoed", "embargo_until": until},
                   files={"file": ("first.csv", first.to_csv(index=False).encode())})
        assert r.status_code == 200, r.text
        rid = r.json()["record_ids"][0]
    stored = json.loads(next(x for x in Store.open(portal.campaigns.parent / "store").records()
                             if x.record_id == rid).to_json())

    def id_if(value: float) -> str:
        stored["content"]["properties"][0]["value"] = value
        return MaterialRecord.from_json(json.dumps(stored)).record_id

    guessed = [v / 10_000 for v in range(-1000, 1000) if id_if(v / 10_000) == rid]
    assert guessed == [-0.0123]  # what the id gives away, when the refusal names it
    with _client(portal, "lab") as c:
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results",
                   files={"file": ("mine.csv", table.assign(**{PROP: -0.0111}).to_csv(index=False).encode())})
        assert r.status_code == 400 and "already measured" in r.text
        assert rid not in r.text
        annotated = c.get(r.json()["annotated"])
        assert annotated.status_code == 200 and not any(rid.encode() in part for part in readable_bytes(annotated.content))
        page = c.post(f"/campaigns/{CAMPAIGN}/lab", data={"csrf_token": csrf_of(c)},
                      files={"file": ("mine.csv", table.assign(**{PROP: -0.0111}).to_csv(index=False).encode())})
        assert page.status_code == 400 and "already measured" in page.text and rid not in page.text
    with _client(portal, "admin") as c:  # who reads the record is told which one
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results",
                   files={"file": ("again.csv", table.assign(**{PROP: -0.0111}).to_csv(index=False).encode())})
        assert r.status_code == 400 and rid in r.text


def test_the_lab_state_the_portal_builds_passes_only_named_fields(held):
    """``_lab_state`` is the portal's one door to the journal's lab entries: an allow-list, so a
    field the journal gains later is not shown until someone decides what a reader may see of it
    (as ``held``'s why, with the value sent and the interval, was shown by no view but could have been)."""
    from dataclasses import fields

    from dm_hpc.service.campaigns import LAB_FIELDS, CampaignDesk

    portal, campaign, secrets, (held_sid, _), _ = held
    # held_units (the unit the sheet typed a held value in) is read by held_note, never copied
    assert {f.name for f in fields(jn.LabEntry)} == {*LAB_FIELDS, "predicted", "held", "held_units"}, \
        "a new journal field: decide what the portal may show of it (LAB_FIELDS, or rebuilt in _lab_state)"
    desk = CampaignDesk(portal.campaigns)
    for clearance in AccessLevel:
        state = desk._lab_state(CAMPAIGN, clearance)
        assert not state.tasks and not state.best and state.stopped is None  # the lab queue only
        entry = state.lab[held_sid]
        assert not entry.held_units
        assert entry.held and entry.held not in secrets["held_why"] and "0.731" not in entry.held
        assert all(set(e.predicted) <= {"mean", "std"} for e in state.lab.values())  # no acquisition scores
