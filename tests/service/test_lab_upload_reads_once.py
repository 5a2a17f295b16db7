"""An uploaded sheet is read from disk once: its checks and its annotated copy use the same parsed
cells (the portal used to parse it a second time to annotate it). Real portal, campaign, store and
workbook; only ``check_file``, which every read of a sheet file passes first, is wrapped to count."""
from __future__ import annotations

import io

import openpyxl
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from dm_hpc.campaign import load_campaign
from dm_hpc.data import sheetfiles

from .conftest import CAMPAIGN, PROP, filled_sheet, make_portal


@pytest.fixture(scope="module")
def portal(built_campaign, tmp_path_factory):
    return make_portal(built_campaign, tmp_path_factory.mktemp("reads-once"))


def _annotated(portal, url: str) -> dict[str, list]:
    """The annotated copy's columns (header -> cells, comments as ``(value, comment)``)."""
    campaign = load_campaign(portal.campaigns / f"{CAMPAIGN}.yaml")
    ws = openpyxl.load_workbook(campaign.run_dir / "annotated" / url.rsplit("/", 1)[1])["annotated"]
    head = [c.value for c in ws[1]]
    return {h: [(c.value, c.comment.text if c.comment else None) for c in col[1:]]
            for h, col in zip(head, ws.iter_cols())}


def test_an_upload_is_read_once_for_its_checks_and_its_annotated_copy(portal, monkeypatch):
    reads: list[str | None] = []
    real = sheetfiles.check_file

    def counted(path, shown=None):
        reads.append(shown)
        return real(path, shown)

    monkeypatch.setattr(sheetfiles, "check_file", counted)
    auth = {"Authorization": f"Bearer {portal.tokens['admin']}"}
    with TestClient(portal.app()) as client:
        r = client.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv", headers=auth)
        assert r.status_code == 200
        table = filled_sheet(r.content)
        assert len(table) >= 2

        # refused: the annotated copy still says why, from the one reading
        bad = table.copy()
        bad.loc[1, "sample_id"] = "not-a-suggestion"
        reads.clear()
        r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", headers=auth,
                        files={"file": ("bad.csv", bad.to_csv(index=False).encode())})
        assert r.status_code == 400 and r.json()["annotated"], r.text
        assert reads == ["bad.csv"]
        copy = _annotated(portal, r.json()["annotated"])
        assert [v for v, _ in copy["sample_id"]] == bad["sample_id"].tolist()
        assert copy["verdict"][1][0] == "refused" and "not-a-suggestion" in copy["verdict"][1][1]

        # stored: one reading again, and the copy shows the values as sent
        reads.clear()
        r = client.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", headers=auth,
                        files={"file": ("good.xlsx", _xlsx(table))})
        assert r.status_code == 200 and r.json()["new"] == len(table), r.text
        assert reads == ["good.xlsx"]
        copy = _annotated(portal, r.json()["annotated"])
        assert [v for v, _ in copy[PROP]] == pytest.approx(table[PROP].tolist())
        assert {v for v, _ in copy["verdict"]} == {"stored"}


def _xlsx(table: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    table.to_excel(buf, index=False)
    return buf.getvalue()
