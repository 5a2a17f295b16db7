"""What a partner who only wants predictions meets at ``/predict``: every answer names the model
that made it, a registered version is served on request only to a caller who reads every record it
was trained on, and a field the API does not know is refused instead of ignored. Real app, real
HDF5 store, the session's campaign, real registry trainings."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from dm_hpc.campaign import load_campaign, registry
from dm_hpc.data.access import AccessLevel, AccessMap, AccessRule

from .conftest import CAMPAIGN, make_portal

URL = f"/api/v1/campaigns/{CAMPAIGN}/predict"
COMP = {"Cu": 0.5, "Ni": 0.3, "Pd": 0.2}


def _client(portal, who: str) -> TestClient:
    return TestClient(portal.app(), headers={"Authorization": f"Bearer {portal.tokens[who]}"})


@pytest.fixture(scope="module")
def versions(built_campaign, tmp_path_factory):
    """The portal with two registered versions: v0001 trained on every record (clearance
    embargoed, the default), v0002 on what a consortium reader reads (here the same records)."""
    portal = make_portal(built_campaign, tmp_path_factory.mktemp("portal-versions"))
    campaign = load_campaign(portal.campaigns / f"{CAMPAIGN}.yaml")
    first = registry.train(campaign)
    second = registry.train(campaign, registry.TrainOptions(clearance=AccessLevel.consortium))
    assert (first.version, second.version) == ("v0001", "v0002")
    return portal, campaign


def test_every_prediction_names_the_model_that_made_it(versions):
    """Two identical requests, answered minutes apart while a campaign ran, gave different numbers
    and nothing said that a newer model answered the second."""
    portal, _ = versions
    with _client(portal, "scientist") as c:
        r = c.post(URL, json={"compositions": [COMP, {"Cu": 1.0}]})
        assert r.status_code == 200, r.text
        first, second = r.json()
        assert first["model"] == second["model"]
        model = first["model"]
        assert model["registered"] is False and model["name"].startswith("fit-") and len(model["name"]) == 16
        assert model["records"] >= 3
        # the same records, the same name
        assert c.post(URL, json={"compositions": [COMP]}).json()[0]["model"] == model


def test_a_registered_version_is_served_on_request_and_named(versions):
    portal, _ = versions
    with _client(portal, "admin") as c:
        r = c.post(URL, json={"compositions": [COMP], "model": "v0001"})
        assert r.status_code == 200, r.text
        [got] = r.json()
        assert got["model"]["name"] == "v0001" and got["model"]["registered"] is True
        assert got["model"]["records"] >= 3
        assert got["std"]["mixing_energy"] > 0 and got["units"]["mixing_energy"] == "eV/atom"


def test_a_version_that_does_not_exist_is_a_404_naming_those_that_do(versions):
    portal, _ = versions
    with _client(portal, "scientist") as c:
        r = c.post(URL, json={"compositions": [COMP], "model": "v0099"})
        assert r.status_code == 404, r.text
        detail = r.json()["detail"]
        assert "v0099" in detail and "v0001" in detail and "v0002" in detail
        r = c.post(URL, json={"compositions": [COMP], "model": "../../models/v0001"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "model"], r.text


def test_a_version_trained_on_records_the_caller_may_not_read_is_refused(versions):
    """v0001 was trained at clearance embargoed; v0002 at consortium, but one of its records has
    since been embargoed: neither may answer a consortium reader (its predictions carry the record)."""
    portal, campaign = versions
    with _client(portal, "scientist") as c:
        r = c.post(URL, json={"compositions": [COMP], "model": "v0001"})
        assert r.status_code == 403, r.text
        assert "v0001" in r.json()["detail"] and "mean" not in r.text
        r = c.post(URL, json={"compositions": [COMP], "model": "v0002"})
        assert r.status_code == 200 and r.json()[0]["model"]["name"] == "v0002", r.text
        [v2] = [v for v in registry.versions(campaign) if v.version == "v0002"]
        one = sorted(registry.trained_on(v2))[0]
        access = AccessMap(campaign.store)
        before = access.rules().get(one, AccessRule())
        access.set([one], AccessRule(AccessLevel.restricted))
        try:
            r = c.post(URL, json={"compositions": [COMP], "model": "v0002"})
            assert r.status_code == 403, r.text
            assert "v0002" in r.json()["detail"] and "mean" not in r.text
        finally:
            access.set([one], before)


@pytest.mark.parametrize("extra", [{"model_version": "v0001"}, {"units": "wt_frac"}, {"properties": ["hardness"]}])
def test_a_field_the_api_does_not_know_is_refused_not_ignored(versions, extra):
    """`{"units": "wt_frac"}` was ignored: weight fractions were read as atomic fractions and
    answered with 200; `model_version` answered from another model than the one asked for."""
    portal, _ = versions
    with _client(portal, "scientist") as c:
        r = c.post(URL, json={"compositions": [COMP], **extra})
        assert r.status_code == 422, r.text
        [problem] = r.json()["detail"]
        assert problem["loc"] == ["body", next(iter(extra))] and problem["type"] == "extra_forbidden"
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/design", json={"targets": ["mixing_energy<=0 eV/atom"], **extra})
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "extra_forbidden", r.text


def _problems(r) -> list[dict]:
    assert r.status_code == 422, r.text
    return r.json()["detail"]


def test_a_composition_the_campaign_cannot_read_is_a_422_naming_where_not_a_409(versions):
    """An unknown element, a lowercase symbol or a stray process parameter was answered 409
    Conflict ("try again when the state changes") with the whole list of names echoed back (a
    body of 20,000 made-up symbols came back whole), and only after a model was fitted: a caller
    whose clearance reads too few records was told to wait for data instead of to fix the request."""
    from dm_hpc.service import Role, ServiceState

    portal, _ = versions
    portal.tokens["outsider"] = ServiceState(portal.state_dir).add_user("outsider", Role.scientist, [CAMPAIGN],
                                                                       AccessLevel.public)
    with _client(portal, "scientist") as c:
        [p] = _problems(c.post(URL, json={"compositions": [COMP, {"Fe": 0.5, "Cu": 0.5}]}))
        assert p["loc"] == ["body", "compositions", 1] and p["type"] == "value_error"
        assert p["msg"].startswith("element Fe is outside the design space of campaign 'alloy' (Cu, Ni, Pd)"), p
        [p] = _problems(c.post(URL, json={"compositions": [{"cu": 0.5, "ni": 0.5}]}))
        assert "cu, ni are not element symbols" in p["msg"] and "did you mean Cu, Ni?" in p["msg"], p
        [p] = _problems(c.post(URL, json={"compositions": [{"Xx": 1}]}))
        assert "Xx is not an element symbol" in p["msg"], p
        r = c.post(URL, json={"compositions": [{f"E{i}": 1 for i in range(20_000)}]})
        [p] = _problems(r)
        assert len(r.text) < 2000 and "and 19990 more" in p["msg"], r.text[:300]
        [p] = _problems(c.post(URL, json={"compositions": [COMP], "process": [{"foo": 3}]}))
        assert p["loc"] == ["body", "process", 0, "foo"] and "foo is not a process parameter" in p["msg"], p
        [p] = _problems(c.post(URL, json={"compositions": [COMP, COMP], "process": [{}]}))
        assert p["loc"] == ["body", "process"] and "1 entries for 2 compositions" in p["msg"], p
    with _client(portal, "outsider") as c:  # reads no record: no model, but the request is wrong first
        assert c.post(URL, json={"compositions": [COMP]}).status_code == 409
        [p] = _problems(c.post(URL, json={"compositions": [{"Fe": 1}]}))
        assert p["msg"].startswith("element Fe is outside"), p


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_a_body_that_is_not_json_is_a_415_saying_so(versions, content_type):
    """JSON sent as text/plain was refused with 'Input should be a valid dictionary or object to
    extract fields from' (422), which sends a partner looking for a fault in a body that is right."""
    import json

    portal, _ = versions
    with _client(portal, "scientist") as c:
        r = c.post(URL, content=json.dumps({"compositions": [COMP]}), headers={"Content-Type": content_type})
        assert r.status_code == 415, r.text
        assert "application/json" in r.json()["detail"] and content_type in r.json()["detail"]
        # a JSON media type with a charset, or a +json one, is JSON
        r = c.post(URL, content=json.dumps({"compositions": [COMP]}),
                   headers={"Content-Type": "application/json; charset=utf-8"})
        assert r.status_code == 200, r.text
