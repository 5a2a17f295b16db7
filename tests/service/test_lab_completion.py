"""A partly measured sample completed later (the sheet's instructions: "send the row again with the
blanks filled"), as a review found it: the portal refused the completion as a changed value, and a
completion through ``dm-hpc ingest`` gave the new record the default level, so an embargoed
hardness became readable to the consortium. Real portal, real store, the CLI as users call it."""
from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pandas as pd
from fastapi.testclient import TestClient

from dm_hpc.data import Store
from dm_hpc.data.access import AccessLevel, AccessMap
from dm_hpc.service import Role, ServiceState, create_app
from tests.campaign.helpers import dm, hardness_density_lab

UNTIL = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()


def _portal(tmp_path):
    hardness_density_lab(tmp_path, ["two-L001-01", "two-L001-02"], name="two", unit="HV")
    Store.open(tmp_path / "store", "a").close()  # as `dm-hpc suggest -n` leaves it
    state = ServiceState(tmp_path / "state")
    tokens = {n: state.add_user(n, r, ["two"], None) for n, r in (("sci", Role.scientist), ("lab", Role.lab))}
    app = create_app(tmp_path, tmp_path / "state")
    return {n: TestClient(app, headers={"Authorization": f"Bearer {t}"}) for n, t in tokens.items()}


def _send(client, table, **form):
    return client.post("/api/v1/campaigns/two/lab/results", data=form,
                       files={"file": ("s.csv", table.to_csv(index=False).encode(), "text/csv")})


def _first_row(client) -> pd.DataFrame:
    sheet = client.get("/api/v1/campaigns/two/lab/sheet", params={"format": "csv"}).content
    row = pd.read_csv(io.BytesIO(sheet)).iloc[:1].copy()
    row["property:hardness [HV]"] = 321.0  # density not measured yet
    return row


def _levels(tmp_path) -> dict:
    return {rid: rule.level for rid, rule in AccessMap(tmp_path / "store").rules().items()}


def test_the_portal_takes_a_completion_and_it_keeps_the_embargo(tmp_path):
    clients = _portal(tmp_path)
    row = _first_row(clients["lab"])
    first = _send(clients["lab"], row, access_level="embargoed", embargo_until=UNTIL)
    assert first.status_code == 200 and first.json()["new"] == 1, first.text
    row["property:density [g/cm^3]"] = 8.9
    done = _send(clients["lab"], row)  # the form's default level
    assert done.status_code == 200, done.text
    [stored] = done.json()["stored"]
    assert stored["values"]["density"] == 8.9 and stored["access_level"] == "embargoed"
    assert set(_levels(tmp_path).values()) == {AccessLevel.embargoed}
    assert clients["sci"].get("/api/v1/campaigns/two").json()["records"] == 0  # nothing readable
    # a changed value is still refused
    row["property:hardness [HV]"] = 300.0
    assert _send(clients["lab"], row).status_code == 400


def test_a_completion_through_the_cli_keeps_the_embargo(tmp_path):
    clients = _portal(tmp_path)
    row = _first_row(clients["lab"])
    assert _send(clients["lab"], row, access_level="embargoed", embargo_until=UNTIL).status_code == 200
    row["property:density [g/cm^3]"] = 8.9
    row.to_csv(tmp_path / "complete.csv", index=False)
    res = dm("ingest", str(tmp_path / "two.yaml"), str(tmp_path / "complete.csv"))
    assert res.returncode == 0 and "completing a stored sample" in res.stdout, res.stdout + res.stderr
    levels = _levels(tmp_path)
    assert len(levels) == 2 and set(levels.values()) == {AccessLevel.embargoed}
    status = clients["sci"].get("/api/v1/campaigns/two").json()
    assert status["records"] == 0 and not status["best"]


def test_a_first_upload_makes_the_store_before_its_labels(tmp_path):
    """A review: with no store folder yet (a moved store), the portal wrote the access labels first,
    answered 500, and the folder holding only them was refused by every later ingest."""
    hardness_density_lab(tmp_path, ["two-L001-01"], name="two", unit="HV")  # journal only, no store
    state = ServiceState(tmp_path / "state")
    token = state.add_user("lab", Role.lab, ["two"], None)
    client = TestClient(create_app(tmp_path, tmp_path / "state"), headers={"Authorization": f"Bearer {token}"},
                        raise_server_exceptions=False)
    row = _first_row(client)
    row["property:density [g/cm^3]"] = 8.9
    res = _send(client, row, access_level="embargoed", embargo_until=UNTIL)
    assert res.status_code == 200, res.text
    with Store.open(tmp_path / "store", "r") as store:
        assert len(store.to_dataframe()) == 1
    assert set(_levels(tmp_path).values()) == {AccessLevel.embargoed}


def test_a_completion_takes_the_level_the_form_asks_when_it_is_stricter(tmp_path):
    clients = _portal(tmp_path)
    row = _first_row(clients["lab"])
    assert _send(clients["lab"], row).status_code == 200  # the form's default: consortium
    row["property:density [g/cm^3]"] = 8.9
    done = _send(clients["lab"], row, access_level="embargoed", embargo_until=UNTIL)
    assert done.status_code == 200, done.text
    [stored] = done.json()["stored"]
    assert stored["access_level"] == "embargoed" and stored["values"]["density"] == 8.9


def test_an_empty_store_folder_is_made_a_store_before_the_labels(tmp_path):
    hardness_density_lab(tmp_path, ["two-L001-01"], name="two", unit="HV")
    (tmp_path / "store").mkdir()  # made by hand, or left empty by a move
    state = ServiceState(tmp_path / "state")
    token = state.add_user("lab", Role.lab, ["two"], None)
    client = TestClient(create_app(tmp_path, tmp_path / "state"), headers={"Authorization": f"Bearer {token}"},
                        raise_server_exceptions=False)
    row = _first_row(client)
    assert _send(client, row, access_level="embargoed", embargo_until=UNTIL).status_code == 200
    assert set(_levels(tmp_path).values()) == {AccessLevel.embargoed}
