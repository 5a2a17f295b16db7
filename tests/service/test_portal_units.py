"""The portal speaks of a lab's values in the unit the lab typed them in, as `dm-hpc ingest` does:
a held value and its interval (the upload's reply, the lab queue's note), and the columns stored
in another unit than the sheet's. Real app, real HDF5 store, the session's campaign (eV/atom); the
lab types its column in meV/atom. The model's interval still reaches only a reader of every record
the model learnt from."""
from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.holds import interval
from dm_hpc.service.auth import COOKIE

from .conftest import CAMPAIGN, PROP, make_portal

MEV = "property:mixing_energy [meV/atom]"
CONVERTED = "mixing_energy: meV/atom converted to eV/atom for the store"


def _client(portal, who: str) -> TestClient:
    token = portal.tokens[who]
    return TestClient(portal.app(), cookies={COOKIE: token}, headers={"Authorization": f"Bearer {token}"})


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture(scope="module")
def typed(built_campaign, tmp_path_factory):
    """The portal, the held sample, its interval in meV/atom, and the sheet in meV/atom: the first
    sample far outside its interval, the others at the model's prediction."""
    portal = make_portal(built_campaign, tmp_path_factory.mktemp("portal-units"))
    with _client(portal, "admin") as c:
        table = pd.read_csv(io.BytesIO(c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv").content))
    campaign = load_campaign(portal.campaigns / f"{CAMPAIGN}.yaml")
    lab = jn.replay(campaign.run_dir / "journal.jsonl").lab
    odd = table.loc[0, "sample_id"]
    low, high = interval(lab[odd].predicted, "mixing_energy")
    values = [1000 * lab[s].predicted["mean"]["mixing_energy"] for s in table["sample_id"]]
    values[0] = 1000 * min(4.5, high + 30 * (high - low) + 1.0)
    table = table.rename(columns={PROP: MEV, PROP.replace("property:", "uncertainty:"):
                                  "uncertainty:mixing_energy [meV/atom]"})
    table[MEV] = [round(v, 1) for v in values]
    return portal, odd, (1000 * low, 1000 * high), round(values[0], 1), table.to_csv(index=False).encode()


def _upload(portal, who: str, content: bytes):
    with _client(portal, who) as c:
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", files={"file": ("mev.csv", content)})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_lab_queue_quotes_a_held_values_interval_in_the_unit_the_sheet_typed(typed):
    """The note gave '(99 % interval [-0.1515, -0.04848] eV/atom)' for a value the lab typed in
    meV/atom, where `dm-hpc status` and the ingest reply say meV/atom."""
    portal, odd, (low, high), _, content = typed
    _upload(portal, "lab", content)
    with _client(portal, "admin") as c:
        [note] = [p["held"] for p in c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/pending").json() if p["sample_id"] == odd]
        assert f"[{low:.4g}, {high:.4g}] meV/atom" in note, note
        assert "eV/atom" not in note.replace("meV/atom", ""), note
        assert f"[{low:.4g}, {high:.4g}] meV/atom" in _text(c.get(f"/campaigns/{CAMPAIGN}/lab").text)
    with _client(portal, "lab") as c:  # a lab of the default clearance: still no interval
        [note] = [p["held"] for p in c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/pending").json() if p["sample_id"] == odd]
        assert "mixing_energy" in note and "[" not in note and f"{low:.4g}" not in note, note


def test_the_upload_reply_names_the_conversions_and_says_each_held_value_as_the_cli_does(typed):
    """The reply listed record ids but not 'mixing_energy: meV/atom converted to eV/atom for the
    store', and a held value only as numbers in eV/atom with a message that never gave the interval.
    Now each held value has the CLI's line, in the unit typed; the interval only for a reader of
    every record the model learnt from."""
    from .test_authorisation import csrf_of

    portal, odd, (low, high), value, content = typed
    said = f"mixing_energy = {value:g} meV/atom held: outside the model's 99 % interval"
    cleared = f"[{low:.4g}, {high:.4g}] meV/atom"
    body = _upload(portal, "lab", content)  # the default lab clearance: public
    assert body["conversions"] == [CONVERTED], body
    [held] = body["held"]
    assert held["sample_id"] == odd and held["typed"] == f"{value:g} meV/atom" and held["interval"] is None, held
    assert said + "; confirm it if it is right, or correct it" in held["message"] and "[" not in held["message"], held
    assert held["unit"] == "eV/atom" and held["value"] == pytest.approx(value / 1000)  # the numbers stay canonical
    body = _upload(portal, "admin", content)
    [held] = body["held"]
    assert held["interval"] == cleared and f"{said} {cleared}; confirm" in held["message"], held
    with _client(portal, "admin") as c:
        page = _text(c.post(f"/campaigns/{CAMPAIGN}/lab", data={"csrf_token": csrf_of(c)},
                            files={"file": ("mev.csv", content)}).text)
    assert CONVERTED in page and f"{odd} mixing_energy {value:g} meV/atom {cleared}" in page, page
    with _client(portal, "lab") as c:
        page = _text(c.post(f"/campaigns/{CAMPAIGN}/lab", data={"csrf_token": csrf_of(c)},
                            files={"file": ("mev.csv", content)}).text)
    assert CONVERTED in page and f"{odd} mixing_energy {value:g} meV/atom not shown at your clearance" in page, page
    assert f"{low:.4g}" not in page and f"{high:.4g}" not in page
    # a sheet that only repeats stored values stores nothing new, and still says what it converted
    again = pd.read_csv(io.BytesIO(content))
    again = again[again["sample_id"] != odd].to_csv(index=False).encode()
    body = _upload(portal, "lab", again)
    assert body["new"] == 0 and body["conversions"] == [CONVERTED], body


def test_a_value_sent_again_in_another_unit_is_unchanged_at_the_digits_typed_and_still_refused_unread(
        built_campaign, tmp_path):
    """The portal refused a sample stored from eV/atom and sent again in meV/atom as 'already
    measured ...; a different value needs a new suggestion', however the digits typed agreed. A
    value typed in another unit is now the stored one when the stored value rounds to it at the
    last digit typed. A sender who neither reads the stored record nor contributed it is refused
    whatever value it sends, equal or not: the tolerance answers no guess."""
    from datetime import UTC, datetime, timedelta

    from .conftest import PREDICTED

    portal = make_portal(built_campaign, tmp_path)
    with _client(portal, "admin") as c:
        sheet = pd.read_csv(io.BytesIO(c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv").content))
    stored = [round(v, 4) + 0.00002 for v in sheet[PREDICTED][:2]]  # -0.01228 eV/atom, say
    first, second = (sheet.iloc[[i]].assign(**{PROP: stored[i]}) for i in range(2))

    def in_mev(row, value):
        out = row.rename(columns={PROP: MEV}).drop(columns=[PROP.replace("property:", "uncertainty:")])
        return out.assign(**{MEV: [f"{value:.1f}"]}).to_csv(index=False).encode()

    [rid] = _upload(portal, "lab", first.to_csv(index=False).encode())["record_ids"]
    again = _upload(portal, "lab", in_mev(first, 1000 * stored[0]))  # e.g. -12.3 for -12.28
    assert again["new"] == 0 and again["record_ids"] == [rid] and again["conversions"] == [CONVERTED], again
    assert any("at the digits typed" in w and "unchanged" in w for w in again["warnings"]), again["warnings"]
    with _client(portal, "lab") as c:
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results",
                   files={"file": ("mev.csv", in_mev(first, 1000 * stored[0] + 1.0))})
    assert r.status_code == 400 and "already measured" in r.text, r.text
    # stored by an admin, embargoed: the lab may not read it, and an equal value tells it nothing
    until = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
    with _client(portal, "admin") as c:
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", data={"access_level": "embargoed", "embargo_until": until},
                   files={"file": ("second.csv", second.to_csv(index=False).encode())})
        assert r.status_code == 200, r.text
    answers = []
    for value in (1000 * stored[1], 1000 * stored[1] + 1.0):
        with _client(portal, "lab") as c:
            r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", files={"file": ("mev.csv", in_mev(second, value))})
        answers.append((r.status_code, [p["message"] for p in r.json()["problems"]]))
    assert answers[0] == answers[1] and answers[0][0] == 400, answers
    assert "a record you may not read" in answers[0][1][0], answers


def test_predict_gives_each_value_with_the_unit_the_campaign_shows_it_in(built_campaign, tmp_path_factory):
    """A partner's /predict returned bare `mean` and `std` numbers, while `best` in the status carries
    its unit. Now both are in the unit the campaign file writes (here an objective in meV/atom,
    the store canonical eV/atom) and `units` names it; an element outside the space is refused in
    plain words (it read "campaign 'alloy''s design space")."""
    import yaml

    from dm_hpc.data.access import AccessLevel
    from dm_hpc.service.campaigns import CampaignDesk

    portal = make_portal(built_campaign, tmp_path_factory.mktemp("portal-predict"))
    path = portal.campaigns / f"{CAMPAIGN}.yaml"
    data = yaml.safe_load(path.read_text())
    data["objectives"] = [{"property": "mixing_energy", "goal": "min", "unit": "meV/atom"}]
    path.write_text(yaml.safe_dump(data))
    comp = {"Cu": 0.5, "Ni": 0.3, "Pd": 0.2}
    [canonical] = CampaignDesk(portal.campaigns).predict(CAMPAIGN, [comp], None, AccessLevel.embargoed)
    with _client(portal, "admin") as c:
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/predict", json={"compositions": [comp]})
        assert r.status_code == 200, r.text
        [got] = r.json()
        assert got["units"] == {"mixing_energy": "meV/atom"}, got
        assert got["mean"]["mixing_energy"] == pytest.approx(1000 * canonical["mean"]["mixing_energy"], rel=1e-6)
        assert got["std"]["mixing_energy"] == pytest.approx(1000 * canonical["std"]["mixing_energy"], rel=1e-6)
        [best] = c.get(f"/api/v1/campaigns/{CAMPAIGN}").json()["best"]
        assert best["unit"] == got["units"]["mixing_energy"]  # as the status's best carries it
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/predict", json={"compositions": [{"Fe": 0.5, "Cu": 0.5}]})
        assert r.status_code == 422, r.text
        [problem] = r.json()["detail"]
        assert problem["msg"].startswith("element Fe is outside the design space of campaign 'alloy' (Cu, Ni, Pd)"), r.text
        assert "''" not in problem["msg"]
