"""A lab returns a sheet with one implausible value, in a real browser (Debian's chromium driven
by Playwright) against a real ``dm-hpc serve`` on a real campaign (EMT, HDF5 store, BoTorch).

The value is held (not stored, shown with the model's 99 % interval), the annotated copy says why
in the cell's comment, the lab confirms it with the checkbox, and the record appears, audited with
the lab user's name. Screenshots go to the test's tmp folder, and to ``$LAB_SCREENSHOTS`` when set
(``docs/img/`` holds the ones the lab guide shows).
"""
from __future__ import annotations

import os
import shutil

import openpyxl
import pandas as pd

from dm_hpc.data import Store

from dm_hpc.data.access import AccessLevel
from dm_hpc.service.state import Role, ServiceState

from .conftest import CAMPAIGN, PROP
from .test_browser import ARGS, CHROMIUM, pytestmark, server  # noqa: F401 -- the fixture and the skip

PREDICTED = "predicted:mixing_energy [eV/atom]"
STD = "predicted_std:mixing_energy [eV/atom]"


def test_lab_held_value_annotated_confirmed_stored(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, portal = server
    # A lab cleared for the campaign's (consortium) records: the queue's predictions and the hold
    # come from a model of those records, which a lab of the default clearance (public) may not see.
    token = ServiceState(portal.state_dir).add_user("lab_cleared", Role.lab, [CAMPAIGN], AccessLevel.consortium)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(accept_downloads=True, viewport={"width": 1200, "height": 900})
        page.goto(url + "/")
        page.fill("#token", token)
        page.click("#signin")
        page.goto(f"{url}/campaigns/{CAMPAIGN}/lab")
        expect(page.locator("#pending")).to_contain_text("eV/atom")  # predictions with their unit
        with page.expect_download() as info:
            page.click("#sheet-csv")
        sheet = tmp_path / "sheet.csv"
        info.value.save_as(sheet)
        table = pd.read_csv(sheet)
        assert PREDICTED in table.columns and len(table) >= 2
        table[PROP] = table[PREDICTED]  # what the model expects
        odd = table.loc[0, "sample_id"]
        implausible = min(4.5, float(table.loc[0, PREDICTED] + max(30 * table.loc[0, STD], 1.0)))
        table.loc[0, PROP] = implausible  # inside the physical range, far outside the model's interval
        filled = tmp_path / "filled.csv"
        table.to_csv(filled, index=False)

        page.set_input_files("#file", str(filled))
        page.click("#upload")
        held = page.locator("#held tr.held")
        expect(held).to_have_count(1)
        expect(held.first).to_contain_text(odd)
        expect(page.locator("#held")).to_contain_text("99 % interval")
        others = table["sample_id"].iloc[1:].tolist()
        expect(page.locator("#stored-samples")).to_contain_text(others[0])
        expect(page.locator("#stored-samples")).to_contain_text("mixing_energy = ")
        page.screenshot(path=shots / "lab-held.png", full_page=True)
        with Store.open(portal.campaigns.parent / "store") as s:
            assert odd not in set(s.to_dataframe(source="experimental")["sample_id"])  # not stored silently

        with page.expect_download() as info:
            page.click("#annotated")
        annotated = tmp_path / "annotated.xlsx"
        info.value.save_as(annotated)
        ws = openpyxl.load_workbook(annotated)["annotated"]
        head = [c.value for c in ws[1]]
        row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == odd)
        cell = ws.cell(row, head.index(PROP) + 1)
        assert "outside the model's 99 % interval" in cell.comment.text
        assert ws.cell(row, head.index("verdict") + 1).value == "held for confirmation"

        page.set_input_files("#file", str(filled))
        page.check("#confirm_held")
        page.click("#upload")
        expect(page.locator("#stored-samples")).to_contain_text(odd)
        expect(page.locator("#stored-samples")).to_contain_text("(confirmed)")
        expect(page.locator("#held")).to_have_count(0)
        expect(page.locator("#pending")).to_contain_text("nothing pending")
        page.screenshot(path=shots / "lab-confirmed.png", full_page=True)
        browser.close()
    with Store.open(portal.campaigns.parent / "store") as s:
        rec = next(s.records(sample_id=odd))
    assert rec.get_property("mixing_energy").value == implausible
    assert rec.provenance.extra["confirmed"]["by"] == "lab_cleared"
    if os.environ.get("LAB_SCREENSHOTS"):
        shutil.copytree(shots, os.environ["LAB_SCREENSHOTS"], dirs_exist_ok=True)
