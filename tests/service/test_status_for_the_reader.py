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
    for who, (value, record_id) in expected.items():
        with _client(portal, who) as c:
            r = c.get(f"/api/v1/campaigns/{CAMPAIGN}")
            assert r.status_code == 200, r.text
            [best] = r.json()["best"]
            assert best["record_id"] == record_id, (who, best, energies[:3])
            assert best["unit"] == "meV/atom" and best["value"] == pytest.approx(1000 * value), (who, best)
            page = c.get(f"/campaigns/{CAMPAIGN}")
            assert page.status_code == 200
            table = page.text.split('<table id="best">')[1].split("</table>")[0]
            assert f"{1000 * value:.5g} meV/atom" in table and record_id in table, (who, table)
    schema = TestClient(portal.app()).get("/openapi.json").json()["components"]["schemas"]["Best"]
    assert "unit" in schema["required"] and "unit" in schema["properties"]["value"]["description"]
