"""The portal in a real browser (Debian's chromium driven by Playwright) against a real uvicorn.

Sign in, open the campaign, download the lab sheet, upload it filled with one bad row (the page
lists that row and its reason, nothing is stored), fix it, upload again (the records are stored).
Screenshots go to the test's tmp folder, and to ``$PORTAL_SCREENSHOTS`` when set.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dm_hpc.data import Store
from tests.conftest import REPO

from .conftest import CAMPAIGN, PROP

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (.ci/run installs the `chromium` package)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(built_campaign, tmp_path):
    from .conftest import make_portal

    portal = make_portal(built_campaign, tmp_path / "portal")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dm_hpc", "serve", "--campaigns", str(portal.campaigns),
                             "--state-dir", str(portal.state_dir), "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"dm-hpc serve exited: {proc.stdout.read()}")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}", portal
    proc.terminate()
    proc.wait(timeout=20)


def test_sign_in_open_campaign_download_upload_fix_upload(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, portal = server
    shots = tmp_path / "screenshots"
    shots.mkdir()
    store_before = len(Store.open(portal.campaigns.parent / "store"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(accept_downloads=True)
        page.goto(url + "/")
        page.fill("#token", "wrong-token")
        page.click("#signin")
        expect(page.locator("#error")).to_contain_text("unknown or revoked token")
        page.fill("#token", portal.tokens["scientist"])
        page.click("#signin")
        expect(page.locator("#who")).to_have_text("scientist")
        page.screenshot(path=shots / "1-campaigns.png", full_page=True)

        page.click(f"a[href='/campaigns/{CAMPAIGN}']")
        expect(page.locator("#campaign")).to_have_text(CAMPAIGN)
        expect(page.locator("#best")).to_contain_text("min mixing_energy")
        assert page.locator("img").count() >= 1  # the report's plots
        page.screenshot(path=shots / "2-campaign.png", full_page=True)

        page.click(f"a[href='/campaigns/{CAMPAIGN}/lab']")
        pending = page.locator("#pending tr").count() - 1
        assert pending >= 2
        with page.expect_download() as info:
            page.click("#sheet-csv")
        sheet = tmp_path / "downloaded.csv"
        info.value.save_as(sheet)
        table = pd.read_csv(sheet)
        assert len(table) == pending and PROP in table.columns

        bad = table.copy()
        # the model's own predictions: plausible values (a value far outside its interval is held)
        bad[PROP] = table["predicted:mixing_energy [eV/atom]"].astype(object)
        bad.loc[1, PROP] = "not measured"
        bad.to_csv(tmp_path / "filled-bad.csv", index=False)
        page.set_input_files("#file", str(tmp_path / "filled-bad.csv"))
        page.click("#upload")
        expect(page.locator("#rejected")).to_contain_text("nothing stored")
        problems = page.locator("#rejected tr.problem")
        expect(problems).to_have_count(1)
        expect(problems.first).to_contain_text("3")  # line 3: the second data row
        expect(problems.first).to_contain_text("not measured")
        page.screenshot(path=shots / "3-rejected.png", full_page=True)
        assert len(Store.open(portal.campaigns.parent / "store")) == store_before

        bad.loc[1, PROP] = table.loc[1, "predicted:mixing_energy [eV/atom]"]
        bad.to_csv(tmp_path / "filled-good.csv", index=False)
        page.set_input_files("#file", str(tmp_path / "filled-good.csv"))
        page.click("#upload")
        expect(page.locator("#stored")).to_contain_text(f"Stored {pending} measurement(s) ({pending} new")
        expect(page.locator("#stored-samples tr")).to_have_count(pending + 1)  # sample ids and values
        expect(page.locator("#pending")).to_contain_text("nothing pending")
        page.screenshot(path=shots / "4-stored.png", full_page=True)
        browser.close()
    with Store.open(portal.campaigns.parent / "store") as s:
        exp = s.to_dataframe(source="experimental")
    assert len(exp) == pending and sorted(exp["sample_id"]) == sorted(table["sample_id"])
    if os.environ.get("PORTAL_SCREENSHOTS"):
        shutil.copytree(shots, os.environ["PORTAL_SCREENSHOTS"], dirs_exist_ok=True)
