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


def test_the_current_version_is_asked_for_by_that_name_as_a_notebook_asks_it(versions):
    """The portal served a registered version only by its number, so a partner who wanted the model
    an admin promoted had to learn its name first; `Campaign.predict(model="current")` took it."""
    portal, campaign = versions
    with _client(portal, "admin") as c:
        r = c.post(URL, json={"compositions": [COMP], "model": "current"})
        assert r.status_code == 200, r.text
        assert r.json()[0]["model"]["name"] == registry.current(campaign) and r.json()[0]["model"]["registered"]
        same = c.post(URL, json={"compositions": [COMP], "model": registry.current(campaign)}).json()
        assert same[0]["mean"] == r.json()[0]["mean"]


def test_a_version_that_does_not_exist_is_a_404_naming_those_that_do(versions):
    portal, _ = versions
    with _client(portal, "scientist") as c:
        r = c.post(URL, json={"compositions": [COMP], "model": "v0099"})
        assert r.status_code == 404, r.text
        detail = r.json()["detail"]
        assert "v0099" in detail and "v0001" in detail and "v0002" in detail
        r = c.post(URL, json={"compositions": [COMP], "model": "../../models/v0001"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "model"], r.text


def test_a_version_loaded_for_a_cleared_caller_is_still_refused_to_one_below(versions):
    """The portal keeps a registered version it loaded (``_registered``): the clearance of each
    caller is judged on every request, so one served to an embargoed reader is not then served, from
    the same process's cache, to a consortium reader."""
    portal, _ = versions
    auth = {who: {"Authorization": f"Bearer {portal.tokens[who]}"} for who in ("admin", "scientist")}
    with TestClient(portal.app()) as c:  # one app: one desk and its cache for both callers
        for _ in range(2):
            r = c.post(URL, json={"compositions": [COMP], "model": "v0001"}, headers=auth["admin"])
            assert r.status_code == 200 and r.json()[0]["model"]["name"] == "v0001", r.text
            r = c.post(URL, json={"compositions": [COMP], "model": "v0001"}, headers=auth["scientist"])
            assert r.status_code == 403 and "mean" not in r.text, r.text


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
        r = c.post(URL, json={"compositions": [{f"E{i}": 1 / 20_000 for i in range(20_000)}]})
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


@pytest.mark.parametrize("composition, total", [({"Cu": 0.8, "Ni": 0.5}, "1.3"), ({"Cu": 0.25, "Ni": 0.25}, "0.5"),
                                                ({"Cu": 1, "Ni": 1}, "2"), ({"Cu": 0.51, "Ni": 0.51}, "1.02"),
                                                ({"Cu": 50, "Ni": 50}, "100")])
def test_fractions_that_do_not_sum_to_one_are_refused_not_rescaled(versions, composition, total):
    """A partner trial: {"Cu": 0.25, "Ni": 0.25} was answered 200 as Cu0.5Ni0.5, {"Cu": 0.8, "Ni":
    0.5} as Cu0.615Ni0.385 and {"Cu": 50, "Ni": 50} as fractions, without a word: an answer for
    another alloy than the one typed. The lab sheet refuses such sums (``COMPOSITION_TOLERANCE``:
    1.47 is a typing error, not something to rescale); so does /predict now, naming the sum, the
    composition (``loc``) and what to send. A sheet says percent in its header; a request cannot,
    so 100 is refused as the sheet's at_frac columns refuse it, with the fix named."""
    portal, _ = versions
    with _client(portal, "scientist") as c:
        [p] = _problems(c.post(URL, json={"compositions": [COMP, composition]}))
        assert p["loc"] == ["body", "compositions", 1] and p["type"] == "value_error", p
        assert f"fractions sum to {total}, not 1 (tolerance 0.01)" in p["msg"], p
        assert "send atomic fractions that sum to 1" in p["msg"], p
        assert ("divide each by 100" in p["msg"]) == (total == "100"), p
        assert "mean" not in c.post(URL, json={"compositions": [composition]}).text


def test_fractions_that_sum_to_one_within_the_sheet_tolerance_are_taken_normalised(versions):
    """0.333 x 3 (0.999) and 0.505 + 0.505 (1.01, the bound, inclusive as on a sheet) are rounding:
    taken, and answered at the composition normalised to sum to 1 exactly."""
    portal, _ = versions
    with _client(portal, "scientist") as c:
        r = c.post(URL, json={"compositions": [{"Cu": 0.333, "Ni": 0.333, "Pd": 0.333}, {"Cu": 0.505, "Ni": 0.505}]})
        assert r.status_code == 200, r.text
        thirds, halves = (got["composition"] for got in r.json())
        assert thirds == pytest.approx({"Cu": 1 / 3, "Ni": 1 / 3, "Pd": 1 / 3})
        assert sum(thirds.values()) == pytest.approx(1, abs=1e-12)
        assert halves == pytest.approx({"Cu": 0.5, "Ni": 0.5})


@pytest.mark.parametrize("amounts", [(0.333, 0.333), (0.495, 0.495), (0.505, 0.505), (0.51, 0.51), (0.6, 0.4),
                                     (0.25, 0.25), (0.8, 0.5), (50, 50), (1.47, 0)])
def test_predict_takes_a_composition_exactly_when_a_lab_sheet_would(tmp_path, amounts):
    """One rule for the two doors that take compositions: a sheet's at_frac columns and /predict's
    body accept and refuse the same sums (the tolerance is the sheet's, not a copy of it)."""
    from pydantic import ValidationError

    from dm_hpc.data.sheets import SheetError, read_sheet
    from dm_hpc.service.schemas import PredictRequest

    path = tmp_path / "lab.csv"
    path.write_text("sample_id,composition:Cu [at_frac],composition:Ni [at_frac],property:density [g/cm^3]\n"
                    f"A,{amounts[0]},{amounts[1]},8.9\n")
    try:
        read_sheet(path)
        sheet_takes = True
    except SheetError:
        sheet_takes = False
    try:
        PredictRequest.model_validate({"compositions": [{"Cu": amounts[0], "Ni": amounts[1]}]})
        api_takes = True
    except ValidationError:
        api_takes = False
    assert api_takes == sheet_takes, (amounts, sheet_takes)


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


def test_a_direct_call_of_the_desk_refuses_the_sums_the_route_refuses(versions):
    """``CampaignDesk.predict`` (what the lab queue and any Python caller use) still answered
    {"Cu": 0.25, "Ni": 0.25} as Cu0.5Ni0.5 after the route had stopped rescaling: the rule lived in
    the request schema only. Now both doors apply one rule (``fractions_problem``), with one message."""
    from dm_hpc.service.campaigns import BadInput, CampaignDesk

    portal, _ = versions
    desk = CampaignDesk(portal.campaigns)
    with _client(portal, "admin") as c:
        for composition in ({"Cu": 0.25, "Ni": 0.25}, {"Cu": 50, "Ni": 50}, {"Cu": 1.2, "Ni": -0.2}):
            [route] = _problems(c.post(URL, json={"compositions": [COMP, composition]}))
            for call in (desk.predict, desk.shown_predictions):
                with pytest.raises(BadInput) as refused:
                    call(CAMPAIGN, [COMP, composition], None, AccessLevel.embargoed)
                [(where, why)] = refused.value.problems
                assert where == ("compositions", 1) and why in route["msg"], (why, route)
    [row] = desk.predict(CAMPAIGN, [{"Cu": 0.505, "Ni": 0.505}], None, AccessLevel.embargoed)
    assert row["composition"] == pytest.approx({"Cu": 0.5, "Ni": 0.5})  # rounding: taken, normalised


@pytest.mark.parametrize(("targets", "where", "said"), [
    (["mixing_energy<= banana"], ["body", "targets", 0], "cannot parse target"),
    (["mixing_energy<=0 eV/atom", "mixing_energy<=0 furlongs"], ["body", "targets", 1], "furlongs"),
    (["mixing_energy<=-1 eV/atom", "mixing_energy>=0 eV/atom"], ["body", "targets"], "cannot all be met"),
])
def test_design_refuses_a_target_it_cannot_read_as_predict_refuses_a_composition(versions, targets, where, said):
    """/design answered a target it could not read with a 400 and a bare string, /predict a
    composition it could not read with a 422 naming where: now both are 422s in the shape of the
    schema's own refusals (``loc``, ``msg``, ``type``), checked before any record is read, so a
    caller whose clearance reads nothing is told to fix the request first."""
    from dm_hpc.service import Role, ServiceState

    portal, _ = versions
    if "outsider" not in portal.tokens:  # reads no record (added by an earlier test of the module, or here)
        portal.tokens["outsider"] = ServiceState(portal.state_dir).add_user("outsider", Role.scientist, [CAMPAIGN],
                                                                           AccessLevel.public)
    for who in ("scientist", "outsider"):
        with _client(portal, who) as c:
            [p] = _problems(c.post(f"/api/v1/campaigns/{CAMPAIGN}/design", json={"targets": targets}))
            [q] = _problems(c.post(URL, json={"compositions": [{"Fe": 1}]}))
            assert set(p) == set(q) == {"loc", "msg", "type"} and p["type"] == q["type"] == "value_error", (p, q)
            assert p["loc"] == where and said in p["msg"], p


def test_a_target_too_long_to_be_one_is_refused_without_quoting_it_back(versions):
    """A refusal quotes the target it cannot read: a target of 100,000 characters came back whole."""
    portal, _ = versions
    with _client(portal, "scientist") as c:
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/design", json={"targets": ["density<=" + "9" * 100_000]})
        [p] = _problems(r)
        assert p["loc"] == ["body", "targets", 0] and "200 characters" in p["msg"], p
        assert len(r.content) < 2000, len(r.content)


def test_design_on_a_property_the_readers_records_do_not_hold_is_a_409_as_predict_says_it(versions):
    """What the caller's records cannot answer is not the request's fault: a 409 saying why, as
    /predict says it of too few records (it was a 400, as a typing error is)."""
    portal, _ = versions
    with _client(portal, "scientist") as c:
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/design", json={"targets": ["hardness>=1 GPa"]})
        assert r.status_code == 409, r.text
        assert "hardness" in r.json()["detail"] and "consortium" in r.json()["detail"], r.text


def _pool_campaign(portal, name: str = "pooled"):
    """A pool campaign beside the session's (no store yet), its pool of Cu-Ni-Pd compositions."""
    import yaml

    pool = portal.campaigns.parent / f"{name}-pool.csv"
    pool.write_text("composition:Cu [at_frac],composition:Ni [at_frac],composition:Pd [at_frac],"
                    "property:mixing_energy [eV/atom]\n0.5,0.5,0,0\n0.2,0.3,0.5,0\n0.7,0.1,0.2,0\n")
    data = yaml.safe_load((portal.campaigns / f"{CAMPAIGN}.yaml").read_text())
    data.update(name=name, space={"pool": str(pool)}, store=str(portal.campaigns.parent / f"{name}-store"),
                workdir=str(portal.campaigns.parent / f"{name}-run"))
    (portal.campaigns / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return pool


def test_a_pool_campaign_whose_pool_cannot_be_read_is_not_ready_not_a_server_error(built_campaign, tmp_path):
    """/predict built the campaign's whole design space on every request for its element names; a
    pool file gone or damaged since the portal started made that a 500. The elements now come from
    ``dataset.design_elements``, and a pool it cannot read is a 409 that names no server path."""
    portal = make_portal(built_campaign, tmp_path)
    pool = _pool_campaign(portal)
    url = "/api/v1/campaigns/pooled/predict"
    with _client(portal, "admin") as c:
        [p] = _problems(c.post(url, json={"compositions": [{"Fe": 1}]}))
        assert "outside the design space of campaign 'pooled' (Cu, Ni, Pd)" in p["msg"], p
        r = c.post(url, json={"compositions": [{"Cu": 0.5, "Ni": 0.5}]})
        assert r.status_code == 409 and "usable records" in r.json()["detail"], r.text  # no store yet
        for damage in (lambda: pool.write_bytes(b"\xff\xfe\x00garbage"), pool.unlink):
            damage()
            r = c.post(url, json={"compositions": [{"Cu": 0.5, "Ni": 0.5}]})
            assert r.status_code == 409, r.text
            assert "candidate pool" in r.json()["detail"] and str(tmp_path) not in r.text, r.text


def test_a_registered_version_is_looked_up_without_reading_the_registry_again(built_campaign, tmp_path):
    """Every request for a registered version read every version's meta.json and its record ids,
    even with the model loaded. Now what was read is kept while the registry is unchanged (counted
    here with an audit hook on every file the process opens), and a version registered, promoted or
    moved aside is seen by the next request."""
    import shutil
    import sys

    portal = make_portal(built_campaign, tmp_path)
    campaign = load_campaign(portal.campaigns / f"{CAMPAIGN}.yaml")
    registry.train(campaign)
    models = registry.registry_dir(campaign)
    opened: list[str] = []
    watching = [False]
    sys.addaudithook(lambda event, args: opened.append(str(args[0])) if watching[0] and event == "open" else None)

    def ask(c, version: str):
        opened.clear()
        watching[0] = True
        try:
            r = c.post(URL, json={"compositions": [COMP], "model": version})
        finally:
            watching[0] = False
        return r, [p for p in opened if p.startswith(str(models))]

    with _client(portal, "admin") as c:
        r, read = ask(c, "v0001")
        assert r.status_code == 200 and any(p.endswith("meta.json") for p in read), (r.text, read)
        first = r.json()
        r, read = ask(c, "v0001")
        assert r.status_code == 200 and r.json() == first and read == [], read  # nothing of the registry read
        registry.train(campaign, registry.TrainOptions(force=True))  # v0002, current
        r, _ = ask(c, "v0002")
        assert r.status_code == 200 and r.json()[0]["model"]["name"] == "v0002", r.text
        registry.promote(campaign, "v0001")
        assert registry.current(campaign) == "v0001"
        r, _ = ask(c, "v0001")
        assert r.status_code == 200 and r.json()[0]["model"]["name"] == "v0001", r.text
        shutil.move(models / "v0002", tmp_path / "v0002-aside")
        r, _ = ask(c, "v0002")
        assert r.status_code == 404 and "registered: v0001)" in r.json()["detail"], r.text
