"""The portal's campaign status as the reader sees it: the best value in the unit the campaign file
writes, chosen by the constraint rule every other door uses, from the caller's own view. Real portal
(the session's campaign: real EMT records in a real HDF5 store), its file given a unit and a
constraint; the status read through the API and the campaign page."""
from __future__ import annotations

import pytest
import yaml
from fastapi.testclient import TestClient

from dm_hpc.data import Store
from dm_hpc.data.access import AccessMap, new_rule
from dm_hpc.service.auth import COOKIE

from .conftest import CAMPAIGN, Portal, make_portal


@pytest.fixture(scope="module")
def portal(built_campaign, tmp_path_factory) -> Portal:
    return make_portal(built_campaign, tmp_path_factory.mktemp("reader"))


def _store(portal: Portal):
    return portal.campaigns.parent / "store"


def _energies(portal: Portal) -> list[tuple[float, str]]:
    """(mixing energy in eV/atom, record id) of the campaign's records, lowest first."""
    with Store.open(_store(portal), "r") as store:
        df = store.to_dataframe(campaign=CAMPAIGN)
    df = df.dropna(subset=["mixing_energy"])
    return sorted(zip(df["mixing_energy"].astype(float), df["record_id"]))


def _rewrite(portal: Portal, **changes) -> None:
    path = portal.campaigns / f"{CAMPAIGN}.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))


def _client(portal: Portal, who: str) -> TestClient:
    token = portal.tokens[who]
    return TestClient(portal.app(), cookies={COOKIE: token}, headers={"Authorization": f"Bearer {token}"})


def test_best_so_far_is_in_the_files_unit_meets_the_constraints_and_is_the_readers_own(portal):
    """The status computed its own best: the lowest mixing energy of every record, constraints
    ignored, in eV/atom with no unit, beside a report, a lab sheet and `dm-hpc run` in meV/atom.
    Now: the rule of Campaign.best (``dataset.best_rows``), value + unit in the file's unit, from
    the records the caller reads."""
    energies = _energies(portal)
    assert len(energies) >= 4, energies
    # the lowest record breaks a constraint; of the rest, the lowest is restricted (the
    # scientist, clearance consortium, does not read it)
    bound = (energies[0][0] + energies[1][0]) / 2
    _rewrite(portal, objectives=[{"property": "mixing_energy", "goal": "min", "unit": "meV/atom"}],
             constraints=[f"mixing_energy >= {bound * 1000:.6f} meV/atom"])
    AccessMap(_store(portal)).set([energies[1][1]], new_rule("restricted"))
    expected = {"admin": energies[1], "scientist": energies[2]}
    hidden = {"admin": set(), "scientist": {energies[1][1]}}
    for who, (value, _) in expected.items():
        with _client(portal, who) as c:
            r = c.get(f"/api/v1/campaigns/{CAMPAIGN}")
            assert r.status_code == 200, r.text
            [best] = r.json()["best"]
            # records of equal value (pure elements all mix at 0) are equally the best
            tied = {rid for v, rid in energies if v == value} - hidden[who]
            assert best["record_id"] in tied, (who, best, energies[:4])
            assert best["unit"] == "meV/atom" and best["value"] == pytest.approx(1000 * value), (who, best)
            page = c.get(f"/campaigns/{CAMPAIGN}")
            assert page.status_code == 200
            table = page.text.split('<table id="best">')[1].split("</table>")[0]
            assert f"{1000 * value:.5g} meV/atom" in table and best["record_id"] in table, (who, table)
    schema = TestClient(portal.app()).get("/openapi.json").json()["components"]["schemas"]["Best"]
    assert "unit" in schema["required"] and "unit" in schema["properties"]["value"]["description"]


@pytest.fixture
def withheld(built_campaign, tmp_path):
    """A fresh portal where the admin measured one sample, embargoed for a year, below every
    computed energy and below the objective's target (nothing else meets it); one computed record
    is restricted; the campaign stopped with 'objective targets met' (journalled as a run does).
    Returns the portal, the embargoed value and the restricted record's id."""
    import io
    from datetime import UTC, datetime, timedelta

    import pandas as pd

    from dm_hpc.campaign import journal as jn
    from dm_hpc.campaign.stopping import TARGETS_MET

    from .conftest import PROP

    portal = make_portal(built_campaign, tmp_path)
    energies = _energies(portal)
    value = round(energies[0][0] - 0.31, 6)
    _rewrite(portal, objectives=[{"property": "mixing_energy", "goal": "min", "target": energies[0][0] - 0.3}])
    AccessMap(_store(portal)).set([energies[-1][1]], new_rule("restricted"))
    until = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
    with _client(portal, "admin") as c:
        sheet = c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv").content
        table = pd.read_csv(io.BytesIO(sheet)).iloc[:1].copy()
        table[PROP], table["confirm"] = value, "yes"
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", data={"access_level": "embargoed", "embargo_until": until},
                   files={"file": ("embargoed.csv", table.to_csv(index=False).encode(), "text/csv")})
        assert r.status_code == 200 and r.json()["new"] == 1, r.text
    journal = jn.Journal(portal.campaigns.parent / "run" / "journal.jsonl")
    journal.write("stop", reason=TARGETS_MET)
    journal.close()
    return portal, value, energies[-1][1]


def test_counts_and_the_stop_reason_tell_a_reader_nothing_of_records_above_their_clearance(withheld):
    """The status told a scientist (clearance consortium) 'lab experiments measured 1', 'tasks
    ingested' with the restricted record's task, and 'objective targets met' (met only by the
    embargoed measurement); the report 'experiments measured: 1' and that state. Now the counts
    are those of the records they read and the stop is said without what it was judged on."""
    from dm_hpc.campaign import journal as jn
    from dm_hpc.campaign.stopping import TARGETS_MET, WITHHELD_STOP

    portal, value, restricted = withheld
    state = jn.replay(portal.campaigns.parent / "run" / "journal.jsonl")
    ingested = sum(t.status == jn.INGESTED for t in state.tasks.values())
    assert restricted in {t.record_id for t in state.tasks.values()}
    seen = {}
    for who in ("admin", "scientist"):
        with _client(portal, who) as c:
            status = c.get(f"/api/v1/campaigns/{CAMPAIGN}").json()
            page = c.get(f"/campaigns/{CAMPAIGN}").text
            report = c.get(f"/api/v1/campaigns/{CAMPAIGN}/report").json()["summary_markdown"]
        seen[who] = status, page, report
    status, page, report = seen["admin"]  # the control: a reader of every record is told it all
    assert (status["state"], status["lab_measured"], status["tasks"]["ingested"]) == (TARGETS_MET, 1, ingested)
    assert f"- state: {TARGETS_MET}" in report and "experiments measured, readable at your clearance: 1" in report
    status, page, report = seen["scientist"]
    assert status["state"] == WITHHELD_STOP and "targets" not in status["state"], status
    assert status["lab_measured"] == 0 and status["tasks"]["ingested"] == ingested - 1, status
    assert '<td id="measured">0</td>' in page and TARGETS_MET not in page
    assert f"- state: {WITHHELD_STOP}" in report and TARGETS_MET not in report, report[:1500]
    assert "experiments measured, readable at your clearance: 0" in report
    assert f"| ingested, readable at your clearance | {ingested - 1} |" in report
    tasks = [t for t in state.tasks.values() if t.record_id != restricted]
    assert f"| submitted (distinct tasks) | {sum(t.submissions > 0 for t in tasks)} |" in report, report[:2500]
    assert f"{value:.6g}" not in report and f"{value:.6g}" not in page


def test_a_campaign_counts_only_its_own_records_and_none_without_a_store(built_campaign, tmp_path):
    """The status's records and best are the campaign's own (``dataset.own_records``, the rule the
    manager and the suggestions use): a campaign sharing the store with another counts none of the
    other's, and one whose store does not exist yet (a frame without a campaign column) none at all."""
    portal = make_portal(built_campaign, tmp_path)
    data = yaml.safe_load((portal.campaigns / f"{CAMPAIGN}.yaml").read_text())
    (portal.campaigns / "beside.yaml").write_text(yaml.safe_dump({**data, "name": "beside"}))
    (portal.campaigns / "unstarted.yaml").write_text(yaml.safe_dump(
        {**data, "name": "unstarted", "store": str(tmp_path / "no-store"), "workdir": str(tmp_path / "no-run")}))
    with TestClient(portal.app(), headers={"Authorization": f"Bearer {portal.tokens['admin']}"}) as c:
        own = c.get(f"/api/v1/campaigns/{CAMPAIGN}").json()
        assert own["records"] > 0 and own["best"], own
        for name in ("beside", "unstarted"):
            r = c.get(f"/api/v1/campaigns/{name}")
            assert r.status_code == 200 and r.json()["records"] == 0 and r.json()["best"] == [], r.text
