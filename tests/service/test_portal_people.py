"""What a user-edge pass on the portal and its shell commands found (stop 34); each test fails on
the code before its fix. Real portal state (SQLite), real store, the real CLI in-process."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dm_hpc.cli import app as cli
from dm_hpc.data import Store
from dm_hpc.data.access import AccessError, AccessLevel, AccessMap, new_rule
from dm_hpc.service import Role, ServiceState

from .conftest import CAMPAIGN, Portal, make_portal


@pytest.fixture(scope="module")
def portal(built_campaign, tmp_path_factory) -> Portal:
    return make_portal(built_campaign, tmp_path_factory.mktemp("people"))


def _store(portal: Portal):
    return portal.campaigns.parent / "store"


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_an_embargo_that_has_already_ended_is_refused_at_every_door(portal):
    """An embargo set with last year's date published the record at once, with nothing said."""
    store = _store(portal)
    rid = sorted(r.record_id for r in Store.open(store).records())[0]
    AccessMap(store).set([rid], new_rule("restricted"))
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    res = run("access", "set", "--store", store, "--level", "embargoed", "--until", yesterday, rid)
    assert res.exit_code != 0 and "is in the past" in res.output and "public at once" in res.output, res.output
    assert AccessMap(store).rule(rid).level is AccessLevel.restricted  # nothing changed
    with TestClient(portal.app()) as c:
        r = c.put(f"/api/v1/campaigns/{CAMPAIGN}/records/{rid}/access", json={"level": "embargoed", "until": "2001-01-01"},
                  headers={"Authorization": f"Bearer {portal.tokens['admin']}"})
        assert r.status_code == 400 and "in the past" in r.json()["detail"]
    assert AccessMap(store).rule(rid).level is AccessLevel.restricted
    # today (the last day, inclusive) is a valid end; a stored embargo that has since ended still loads
    assert new_rule("embargoed", datetime.now(UTC).date()).until == datetime.now(UTC).date()
    with pytest.raises(AccessError):
        new_rule("embargoed", date(2001, 1, 1))


def test_every_access_change_is_logged_with_who_made_it_from_the_shell_or_the_portal(portal):
    """Changes made with `dm-hpc access set` were in no log (only the portal's were audited)."""
    store = _store(portal)
    ids = sorted(r.record_id for r in Store.open(store).records())
    assert run("access", "set", "--store", store, "--level", "public", ids[1]).exit_code == 0
    with TestClient(portal.app()) as c:
        r = c.put(f"/api/v1/campaigns/{CAMPAIGN}/records/{ids[2]}/access", json={"level": "restricted"},
                  headers={"Authorization": f"Bearer {portal.tokens['admin']}"})
        assert r.status_code == 200
    res = run("access", "history", "--store", store, "--json")
    assert res.exit_code == 0, res.output
    changes = [json.loads(line) for line in res.output.splitlines()]
    assert any(c["record_ids"] == [ids[1]] and c["level"] == "public" and not c["by"].startswith("portal:")
               for c in changes), changes
    assert any(c["record_ids"] == [ids[2]] and c["level"] == "restricted" and c["by"] == "portal:admin" for c in changes)
    only = run("access", "history", "--store", store, ids[1], "--json")
    assert all(ids[1] in json.loads(line)["record_ids"] for line in only.output.splitlines())
    # a campaign with no records is an error, not "0 record(s) now public"
    res = run("access", "set", "--store", store, "--level", "public", "--campaign", "nosuch")
    assert res.exit_code != 0 and "no records" in res.output


def test_text_typed_by_partners_is_shown_literally_and_never_ends_a_command(portal, monkeypatch):
    """A reason "for the paper [/] draft" ended `access requests` and `audit` with a MarkupError
    traceback; "[internal review]" was shown to the approver as nothing."""
    ServiceState(portal.state_dir).add_user("grantee", Role.scientist, ["[/]"])
    with TestClient(portal.app()) as c:
        for reason in ("for the paper [/] draft", "needed for [internal review] only"):
            r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/exports", json={"reason": reason},
                       headers={"Authorization": f"Bearer {portal.tokens['scientist']}"})
            assert r.status_code == 200, r.text
    for args in (("access", "requests"), ("audit",), ("users", "list")):
        res = run(*args, "--state-dir", portal.state_dir)
        assert res.exit_code == 0 and res.exception is None, (args, res.output)
    from dm_hpc.cli import access

    monkeypatch.setattr(access.console, "width", 400)  # one line per request, nothing folded
    listed = run("access", "requests", "--state-dir", portal.state_dir).output
    assert "needed for [internal review] only" in listed and "for the paper [/] draft" in listed
    assert "[/]" in run("users", "list", "--state-dir", portal.state_dir).output


def test_read_commands_on_a_mistyped_state_folder_say_so_and_create_nothing(portal, tmp_path):
    """`audit --state-dir <typo>` printed an empty log and made a new portal state there."""
    typo = tmp_path / "stat"
    for args in (("audit",), ("users", "list"), ("access", "requests"), ("users", "revoke", "x")):
        res = run(*args, "--state-dir", typo)
        assert res.exit_code != 0 and "no portal state there" in res.output, (args, res.output)
    assert not typo.exists()
    res = run("audit", "--state-dir", portal.state_dir, "--action", "nosuch")
    assert res.exit_code != 0 and "no such action" in res.output and "signin" not in res.output.split("holds")[0]
    assert run("audit", "--state-dir", portal.state_dir, "--limit", "-1").exit_code != 0


def test_a_revoked_name_is_not_given_again_and_the_message_says_so(portal):
    state = ServiceState(portal.state_dir)
    state.add_user("temp", Role.scientist, [CAMPAIGN])
    state.revoke("temp")
    res = run("users", "add", "temp", "--role", "scientist", "--state-dir", portal.state_dir)
    assert res.exit_code != 0 and "was revoked" in res.output and "revoke it" not in res.output


def test_the_report_a_partner_reads_names_no_server_folder_and_counts_only_what_they_read(portal):
    """The portal's report showed a public partner `HDF5 store: /srv/...`, the journal's path, and
    "ingested 16" beside the 8 records they may read (so: 8 withheld)."""
    store = _store(portal)
    ids = sorted(r.record_id for r in Store.open(store).records())
    AccessMap(store).set(ids[: len(ids) // 2], new_rule("restricted"))
    AccessMap(store).set(ids[len(ids) // 2:], new_rule("public"))
    token = ServiceState(portal.state_dir).add_user("partner", Role.scientist, [CAMPAIGN], AccessLevel.public)
    with TestClient(portal.app()) as c:
        r = c.get(f"/api/v1/campaigns/{CAMPAIGN}/report", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    text = r.json()["summary_markdown"]
    assert str(store) not in text and "journal.jsonl" not in text and str(portal.campaigns.parent) not in text
    readable = len(ids) - len(ids) // 2
    assert f"ingested, readable at your clearance | {readable} |" in text, text[:2000]


def test_serve_names_a_missing_or_wrong_tls_file_before_it_says_serving(portal, tmp_path):
    """A missing certificate printed "serving ... at https://" and then a 21-frame traceback."""
    res = run("serve", "--campaigns", portal.campaigns, "--state-dir", portal.state_dir, "--port", "1",
              "--tls-cert", tmp_path / "none.pem", "--tls-key", tmp_path / "none.key")
    assert res.exit_code != 0 and "none.pem: no such file" in res.output and "serving" not in res.output
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    res = run("serve", "--campaigns", portal.campaigns, "--state-dir", portal.state_dir, "--port", "1",
              "--tls-cert", bad, "--tls-key", bad)
    assert res.exit_code != 0 and "not a PEM certificate" in res.output and "serving" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


@pytest.mark.parametrize("damage", ['{"dm-x": {"level": "Restricted"}}', '{"dm-x": {"lev', '["dm-x"]'])
def test_a_damaged_access_file_is_a_clear_503_and_a_named_cli_error(portal, damage):
    """A level written "Restricted" (or a truncated file) made every request an unexplained 500."""
    from .conftest import filled_sheet

    sidecar = AccessMap(_store(portal)).path
    kept = sidecar.read_text() if sidecar.exists() else None
    with TestClient(portal.app()) as c:  # a good sheet, taken before the damage
        sheet = filled_sheet(c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv",
                                   headers={"Authorization": f"Bearer {portal.tokens['admin']}"}).content)
    sidecar.write_text(damage)
    try:
        with TestClient(portal.app(), raise_server_exceptions=False) as c:
            r = c.get(f"/api/v1/campaigns/{CAMPAIGN}/records", headers={"Authorization": f"Bearer {portal.tokens['admin']}"})
            assert r.status_code == 503 and "access.json is damaged" in r.json()["detail"], r.text
            assert str(sidecar.parent) not in r.text  # the server's folders stay in the server's log
            up = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", headers={"Authorization": f"Bearer {portal.tokens['lab']}"},
                        files={"file": ("s.csv", sheet.to_csv(index=False).encode())})
            assert up.status_code == 503 and str(sidecar.parent) not in up.text, up.text  # the server's, not the sheet's
        res = run("store", "export", sidecar.parent.parent / "x.csv", "--store", sidecar.parent, "--access-level", "public")
        assert res.exit_code != 0 and "access.json" in res.output and "Traceback" not in res.output, res.output
        logged = len(AccessMap(sidecar.parent).history())
        res = run("access", "set", "--store", sidecar.parent, "--level", "public", "--campaign", CAMPAIGN)
        assert res.exit_code != 0 and "access.json" in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)
        assert len(AccessMap(sidecar.parent).history()) == logged  # a change that did not happen is not logged
    finally:
        if kept is None:
            sidecar.unlink()
        else:
            sidecar.write_text(kept)


def test_a_lab_upload_with_an_element_outside_the_space_is_stored_with_a_warning(portal):
    """A sample that gained Fe was stored without a word (the model leaves it out), and the
    portal's reply carried none of the warnings `dm-hpc ingest` prints."""
    from .conftest import filled_sheet

    auth = {"Authorization": f"Bearer {portal.tokens['lab']}"}
    with TestClient(portal.app()) as c:
        sheet = c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv",
                      headers={"Authorization": f"Bearer {portal.tokens['admin']}"}).content
        table = filled_sheet(sheet)
        comp = [col for col in table.columns if col.startswith("composition:")]
        big = max(comp, key=lambda col: table.loc[0, col])
        table["composition:Fe [at_frac]"] = 0.0
        table.loc[0, "composition:Fe [at_frac]"] = 0.1
        table.loc[0, big] -= 0.1
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", headers=auth,
                   files={"file": ("fe.csv", table.to_csv(index=False).encode())})
        assert r.status_code == 200, r.text
        warnings = r.json()["warnings"]
        sid = table.loc[0, "sample_id"]
        assert any(w.startswith(f"sample {sid}: Fe is outside the campaign's design space") for w in warnings), warnings
        assert len([w for w in warnings if "outside the campaign's design space" in w]) == 1


def test_predict_names_stray_process_inputs_and_says_where_it_extrapolates(portal):
    """`/predict` ignored a process parameter the campaign lacks and a process list of another
    length, and answered outside the design space with no word."""
    from dm_hpc.campaign import load_campaign

    spec = load_campaign(portal.campaigns / f"{CAMPAIGN}.yaml")
    el, (low, high) = next((e, b) for e, b in spec.space.elements.items() if b[1] < 1)
    other = next(e for e in spec.space.elements if e != el)
    auth = {"Authorization": f"Bearer {portal.tokens['admin']}"}
    url = f"/api/v1/campaigns/{CAMPAIGN}/predict"
    with TestClient(portal.app()) as c:
        inside = {el: high / 2, other: 1 - high / 2}
        r = c.post(url, json={"compositions": [inside], "process": [{"foo": 3}]}, headers=auth)
        assert r.status_code == 422 and "foo is not a process parameter" in r.json()["detail"][0]["msg"], r.text
        r = c.post(url, json={"compositions": [inside, inside], "process": [{}]}, headers=auth)
        assert r.status_code == 422 and "1 entries for 2 compositions" in r.json()["detail"][0]["msg"], r.text
        beyond = {el: min(1.0, high + 0.1), other: 1 - min(1.0, high + 0.1)}
        r = c.post(url, json={"compositions": [inside, beyond]}, headers=auth)
        assert r.status_code == 200, r.text
        first, second = r.json()
        assert first["outside"] == [] and second["outside"] and second["outside"][0].startswith(f"{el} ")


def test_the_api_pages_load_nothing_from_another_site(portal):
    """/docs and /redoc loaded Swagger UI and ReDoc from cdn.jsdelivr.net: blank on a cluster's
    intranet, and a third-party script on the portal's origin."""
    import re

    with TestClient(portal.app()) as c:
        for page in ("/docs", "/redoc"):
            html = c.get(page).text
            urls = re.findall(r'(?:src|href)\s*[=:]\s*["\']([^"\']+)', html)
            assert urls and all(not u.startswith(("http:", "https:", "//")) for u in urls), (page, urls)
            for u in urls:
                if u.endswith((".js", ".css")):
                    assert c.get(u).status_code == 200, u


def test_an_upload_while_another_command_holds_the_campaign_is_a_409_not_a_500(built_campaign, tmp_path, monkeypatch):
    """The review: a lab upload waiting behind a long `suggest -n` on the same campaign ended in an
    uncaught CommandWaitError (a 500) after the wait."""
    from dm_hpc.campaign import load_campaign, lock, ownership
    from tests.campaign.helpers import held_elsewhere

    from .conftest import filled_sheet

    portal = make_portal(built_campaign, tmp_path)  # its own copy: the lab queue still full
    monkeypatch.setattr(lock, "COMMAND_WAIT_S", 0.5)
    spec = load_campaign(portal.campaigns / f"{CAMPAIGN}.yaml")
    with held_elsewhere(lambda: ownership.exclusive(spec)), TestClient(portal.app()) as c:
        sheet = c.get(f"/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv",
                      headers={"Authorization": f"Bearer {portal.tokens['admin']}"}).content
        table = filled_sheet(sheet)
        r = c.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results",
                   headers={"Authorization": f"Bearer {portal.tokens['lab']}"},
                   files={"file": ("busy.csv", table.to_csv(index=False).encode())})
    assert r.status_code == 409 and "busy with another command" in r.json()["detail"], r.text


def test_a_plot_a_redrawn_report_leaves_out_is_neither_listed_nor_served(built_campaign, tmp_path):
    """A partner's report folder kept the parity plot drawn while the records were public: once they
    were restricted and the redraw had too few records for it, the old plot (every restricted value
    on it) was still listed and served."""
    from .conftest import make_portal

    portal = make_portal(built_campaign, tmp_path)
    store = _store(portal)
    ids = sorted(r.record_id for r in Store.open(store).records())
    AccessMap(store).set(ids[1:], new_rule("public"))
    AccessMap(store).set(ids[:1], new_rule("restricted"))  # the partner reads not all: a report of its own
    token = ServiceState(portal.state_dir).add_user("partner", Role.scientist, [CAMPAIGN], AccessLevel.public)
    auth = {"Authorization": f"Bearer {token}"}
    report, plot = f"/api/v1/campaigns/{CAMPAIGN}/report", f"/api/v1/campaigns/{CAMPAIGN}/report/parity.png"
    with TestClient(portal.app()) as c:
        assert "parity.png" in c.get(report, headers=auth).json()["plots"]
        assert c.get(plot, headers=auth).status_code == 200
        AccessMap(store).set(ids[2:], new_rule("restricted"))  # one record left to read: no parity plot
        r = c.get(report, headers=auth)
        assert r.status_code == 200 and "parity.png" not in r.json()["plots"], r.json()["plots"]
        assert "no surrogate model yet" in r.json()["summary_markdown"]
        assert c.get(plot, headers=auth).status_code == 404
        # a PNG the report did not draw (another tool's, or a plot name the report dropped) is not the reader's
        from dm_hpc.service.campaigns import CampaignDesk

        folder = CampaignDesk(portal.campaigns).report_dir(CAMPAIGN, AccessLevel.public)
        (folder / "parity_old.png").write_bytes((folder / "best_vs_evaluations.png").read_bytes())
        assert "parity_old.png" not in c.get(report, headers=auth).json()["plots"]
        assert c.get(f"/api/v1/campaigns/{CAMPAIGN}/report/parity_old.png", headers=auth).status_code == 404


def test_a_clearance_is_read_as_every_other_access_level(portal):
    """``users add --clearance`` parsed the level with its own code (one reading of a level:
    ``data.access.parse_level``); a bad value is refused naming the option, a good one is kept."""
    res = run("users", "add", "clr-bad", "--role", "scientist", "--clearance", "secret", "--state-dir", portal.state_dir)
    assert res.exit_code != 0 and "--clearance must be one of" in res.output and "'secret'" in res.output, res.output
    assert "Traceback" not in res.output
    res = run("users", "add", "clr-ok", "--role", "scientist", "--clearance", "consortium", "--state-dir", portal.state_dir)
    assert res.exit_code == 0, res.output
    user = next(u for u in ServiceState(portal.state_dir).users() if u.name == "clr-ok")
    assert user.clearance is AccessLevel.consortium
