"""Issue 18 x 21: a value held against the model reaches a lab without clearance for the model's
records as "held", never with the model's interval or predictions (they are derived from records
that lab may not read: the one gate holds for the hold too)."""
from __future__ import annotations

import io

import openpyxl
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.holds import interval
from dm_hpc.data.access import AccessLevel
from dm_hpc.service.state import Role, ServiceState

from .conftest import CAMPAIGN, PREDICTED, PROP, make_portal


@pytest.fixture(scope="module")
def portal(built_campaign, tmp_path_factory):
    return make_portal(built_campaign, tmp_path_factory.mktemp("hold-clearance"))


def _implausible_sheet(client, portal, token) -> tuple[pd.DataFrame, str, tuple[float, float]]:
    """The lab sheet as ``token`` downloads it, every row at the campaign's own prediction and the
    first far outside its 99 % interval (read from the journal, as the engine's hold does)."""
    r = client.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    table = pd.read_csv(io.BytesIO(r.content))
    campaign = load_campaign(portal.campaigns / f"{CAMPAIGN}.yaml")
    lab = jn.replay(campaign.run_dir / "journal.jsonl").lab
    name = PROP.split(":")[1].split(" ")[0]
    table[PROP] = [lab[s].predicted["mean"][name] for s in table["sample_id"]]
    odd = table.loc[0, "sample_id"]
    low, high = interval(lab[odd].predicted, name)
    table.loc[0, PROP] = min(4.5, high + 30 * (high - low) + 1.0)
    return table, odd, (low, high)


def _annotated_cells(portal, url: str) -> list[str]:
    campaign = load_campaign(portal.campaigns / f"{CAMPAIGN}.yaml")
    ws = openpyxl.load_workbook(campaign.run_dir / "annotated" / url.rsplit("/", 1)[1])["annotated"]
    return [str(c.value) for row in ws.iter_rows() for c in row if c.value is not None] + \
        [c.comment.text for row in ws.iter_rows() for c in row if c.comment is not None]


def test_a_lab_without_clearance_is_told_held_without_the_models_interval(portal):
    with TestClient(portal.app()) as client:
        public = portal.tokens["lab"]  # a lab's default clearance: public; the campaign's records: consortium
        table, odd, (low, high) = _implausible_sheet(client, portal, public)
        assert PREDICTED not in table or table[PREDICTED].isna().all()  # the sheet already holds none back
        r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", headers={"Authorization": f"Bearer {public}"},
                        files={"file": ("filled.csv", table.to_csv(index=False).encode())})
        assert r.status_code == 200, r.text
        body = r.json()
        held = [h for h in body["held"] if h["sample_id"] == odd]
        assert held and held[0]["low"] is None and held[0]["high"] is None  # held, interval withheld
        words = " ".join(_annotated_cells(portal, body["annotated"]))
        assert "held" in words and f"{low:.4g}" not in words and f"{high:.4g}" not in words

        # a lab cleared for the records sees the interval: the redaction follows clearance, not role
        cleared = ServiceState(portal.state_dir).add_user("lab_cleared", Role.lab, [CAMPAIGN], AccessLevel.consortium)
        r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", headers={"Authorization": f"Bearer {cleared}"},
                        files={"file": ("filled.csv", table.to_csv(index=False).encode())})
        assert r.status_code == 200, r.text
        held = [h for h in r.json()["held"] if h["sample_id"] == odd]
        assert held and held[0]["low"] == pytest.approx(low) and held[0]["high"] == pytest.approx(high)
