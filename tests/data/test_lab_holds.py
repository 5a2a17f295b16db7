"""The model check at the lab boundary (issue 21, 3b and 4): a value far outside the campaign
model's 99 % interval is held, shown with the interval in the annotated copy, and stored only
when confirmed (audited). Real campaign file, journal, store and XLSX workbooks."""
from __future__ import annotations

import openpyxl
import pytest

from dm_hpc.api import Campaign
from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.annotate import take_and_annotate
from dm_hpc.campaign.holds import Z_99
from dm_hpc.data import Store, sheetfiles
from dm_hpc.data.workbook import FILLS
from tests.campaign.helpers import dm
from tests.data.test_sheets_lab import PROP, fill, lab_campaign


def _cells(path, sid, header):
    ws = openpyxl.load_workbook(path)["annotated"]
    head = [c.value for c in ws[1]]
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == sid)
    return {h: ws.cell(row, head.index(h) + 1) for h in header}


def test_an_implausible_value_is_held_with_its_interval_then_confirmed(tmp_path):
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -0.09, "L1-1": 1.7})
    out = tmp_path / "annotated.xlsx"
    res = dm("ingest", str(path), str(filled), "--annotated", str(out))
    assert res.returncode == 0, res.stderr
    lo, hi = -0.1 - Z_99 * 0.02, -0.1 + Z_99 * 0.02
    assert f"sample 'L1-1': mixing_energy = 1.7 eV/atom held: outside the model's 99 % interval [{lo:.4g}, {hi:.4g}]" \
        in res.stdout
    assert "--confirm L1-1" in res.stdout and "ingested 1 records" in res.stdout
    assert Store.open(campaign.store).to_dataframe()["sample_id"].tolist() == ["L1-0"]  # not stored silently
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    assert state.lab["L1-1"].record_id is None and not state.lab["L1-1"].not_made  # still pending
    # the reply was the only place the hold was seen (a QA pass): the status and the summary keep it
    assert state.lab["L1-1"].held.startswith("mixing_energy 1.7 eV/atom held: outside") and not state.lab["L1-0"].held
    status = dm("status", str(path))
    assert "lab values held (not stored)" in status.stdout and "L1-1: mixing_energy 1.7 eV/atom held" in status.stdout
    assert "--confirm L1-1" in status.stdout
    assert Campaign.load(path).summary()["lab values held"] == 1

    cells = _cells(out, "L1-1", [PROP, "predicted:mixing_energy [eV/atom]", "99 % interval:mixing_energy [eV/atom]",
                                 "verdict"])
    assert cells[PROP].fill.start_color.rgb == FILLS["held"]
    assert "outside the model's 99 % interval" in cells[PROP].comment.text
    assert cells["predicted:mixing_energy [eV/atom]"].value == -0.1
    assert cells["99 % interval:mixing_energy [eV/atom]"].value == f"[{lo:.4g}, {hi:.4g}]"
    assert cells["verdict"].value == "held for confirmation"
    ok = _cells(out, "L1-0", [PROP, "verdict"])
    assert ok[PROP].fill.start_color.rgb == FILLS["accepted"] and ok["verdict"].value == "stored"

    res = dm("ingest", str(path), str(filled), "--confirm", "L1-1")
    assert res.returncode == 0 and "confirmed despite the model: L1-1" in res.stdout, res.stderr
    rec = next(Store.open(campaign.store).records(sample_id="L1-1"))
    stamp = rec.provenance.extra["confirmed"]
    assert stamp["by"] and stamp["at"] and stamp["outside"]["mixing_energy"] == [lo, hi]
    event = [e for e in jn.Journal.events(campaign.run_dir / "journal.jsonl") if e["event"] == "lab_ingested"][-1]
    assert event["confirmed"] == ["L1-1"]
    assert "held" not in dm("status", str(path)).stdout


def test_the_confirm_column_and_the_api_confirm(tmp_path, monkeypatch):
    path, campaign = lab_campaign(tmp_path)
    api = Campaign.load(path)
    rows = {"sample_id": ["L1-0", "L1-1"], "composition:Cu [at_frac]": [0.5, 0.25],
            "composition:Ni [at_frac]": [0.5, 0.75], PROP: [2.0, 3.0]}
    import pandas as pd

    got = api.add_measurements(pd.DataFrame(rows))
    assert got.empty and len(got.attrs["held"]) == 2 and "L1-0" in got.attrs["held"][0]
    got = api.add_measurements(pd.DataFrame(rows), confirm=["L1-0"])
    assert got["sample_id"].tolist() == ["L1-0"] and len(got.attrs["held"]) == 1
    sheet = tmp_path / "confirmed.csv"
    pd.DataFrame({**rows, "confirm": ["", "yes"]}).to_csv(sheet, index=False)
    reads = []
    real = sheetfiles.check_file  # every read of a sheet file passes it first: counted, not replaced
    monkeypatch.setattr(sheetfiles, "check_file", lambda path, shown=None: reads.append(path) or real(path, shown))
    result = take_and_annotate(campaign, sheet, tmp_path / "a.xlsx")
    assert result.confirmed == ["L1-1"] and not result.held
    assert reads == [sheet]  # one reading serves the checks and the annotated copy
    assert (tmp_path / "a.xlsx").is_file()


def test_a_refused_sheet_is_annotated_with_why(tmp_path):
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "bad.csv"
    sheet.write_text("sample_id,composition:Cu [at_frac],composition:Ni [at_frac],property:mixing_energy [eV/atom]\n"
                     "L1-0,0.5,0.5,-0.1\nL1-1,0.3,0.9,-0.1\n")
    out = tmp_path / "why.xlsx"
    res = dm("ingest", str(path), str(sheet), "--annotated", str(out))
    assert res.returncode == 2 and "annotated copy" in res.stderr
    bad = _cells(out, "L1-1", [PROP, "verdict", "ordered:Ni [at_frac]"])
    assert bad["verdict"].value == "refused" and "composition sums to 1.2" in bad["verdict"].comment.text
    assert bad["ordered:Ni [at_frac]"].value == 0.75 and "made 0.9" in bad["ordered:Ni [at_frac]"].comment.text
    fine = _cells(out, "L1-0", [PROP])
    assert "nothing of it is stored" in fine[PROP].comment.text


def test_a_confirmation_that_confirms_nothing_is_said(tmp_path):
    """Found by a user-edge pass: ``--confirm`` with a mistyped sample id, and a confirm cell that
    says "maybe", were ignored without a word while the value stayed held. Then (QA) the mistyped
    id was only a warning among others, exit 0, the rest stored: now it refuses the sheet."""
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -0.09, "L1-1": 1.7})
    res = dm("ingest", str(path), str(filled), "--confirm", "L1-1", "--confirm", "L1-7")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stdout
    assert "--confirm L1-7: no row of this sheet has that sample id" in res.stderr and "L1-1:" not in res.stderr
    assert not campaign.store.exists()  # nothing stored, not even the confirmed or the plausible row
    assert all(e.record_id is None for e in jn.replay(campaign.run_dir / "journal.jsonl").lab.values())
    res = dm("ingest", str(path), str(filled), "--confirm", "L1-1")
    assert res.returncode == 0 and "confirmed despite the model: L1-1" in res.stdout, res.stderr
    (tmp_path / "fresh").mkdir()
    path, campaign = lab_campaign(tmp_path / "fresh")  # the 'maybe' below on a sample not yet confirmed
    import pandas as pd

    rows = {"sample_id": ["L1-0", "L1-1"], "composition:Cu [at_frac]": [0.5, 0.25],
            "composition:Ni [at_frac]": [0.5, 0.75], PROP: [-0.09, 1.7], "confirm": ["", "maybe"]}
    pd.DataFrame(rows).to_csv(tmp_path / "maybe.csv", index=False)
    res = dm("ingest", str(path), str(tmp_path / "maybe.csv"))
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "sample L1-1: its confirm cell says 'maybe', which is not a yes" in out, out
    assert "L1-0: its confirm cell" not in out
    from dm_hpc.campaign.holds import confirmed_in_sheet

    # a spreadsheet's TRUE and 1 are yes (read as True and 1.0); FALSE and 0 are no, without a warning
    assert confirmed_in_sheet({"a": True, "b": 1.0, "c": "yes", "d": False, "e": 0.0, "f": "maybe"}) == {"a", "b", "c"}


def test_a_sample_with_a_blank_property_is_stored_with_a_word_and_completed_later(tmp_path):
    """Found by a user-edge pass: a row with hardness filled and density blank was stored without a
    warning and the sample left the queue; sending density later was refused (same value stored)."""
    import pandas as pd
    import yaml

    from tests.campaign.helpers import write_campaign

    lab = {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2, "measures": ["hardness", "density"]}
    path = write_campaign(tmp_path, name="two", fidelities=[lab], constraints=["density <= 9 g/cm3"],
                          objectives=[{"property": "hardness", "goal": "max", "unit": "GPa"}],
                          budget={"lab_experiments": 4})
    assert yaml.safe_load(path.read_text())["fidelities"][0]["measures"] == ["hardness", "density"]
    api = Campaign.load(path)
    journal = jn.Journal(api.spec.run_dir / "journal.jsonl")
    journal.write("start")
    journal.write("lab_suggested", batch=1, samples=[{"sample_id": sid, "composition": {"Cu": 0.5, "Ni": 0.5},
                                                      "process": {}, "predicted": {}} for sid in ("S1", "S2")])
    journal.close()
    row = {"sample_id": ["S1"], "composition:Cu [at_frac]": [0.5], "composition:Ni [at_frac]": [0.5],
           "property:hardness [GPa]": [2.5], "property:density [g/cm3]": [None]}
    first = api.add_measurements(pd.DataFrame(row))
    assert any("sample S1: density blank: stored without it; send the row again with it filled in once measured"
               in w for w in first.attrs["warnings"]), first.attrs
    row["property:density [g/cm3]"] = [8.9]
    second = api.add_measurements(pd.DataFrame(row))  # the completion, no replace
    assert not any("blank" in w for w in second.attrs["warnings"])
    # the ingest summary calls it a completion, not a correction of stored values
    from dm_hpc.campaign.lab import take_lab_loaded
    from dm_hpc.data.sheetfiles import load_table

    row["sample_id"], row["property:hardness [GPa]"] = ["S2"], [3.0]
    row["property:density [g/cm3]"] = [None]
    pd.DataFrame(row).to_csv(tmp_path / "s2.csv", index=False)
    take_lab_loaded(api.spec, load_table(tmp_path / "s2.csv"), "s2.csv")
    row["property:density [g/cm3]"] = [8.7]
    pd.DataFrame(row).to_csv(tmp_path / "s2.csv", index=False)
    taken = take_lab_loaded(api.spec, load_table(tmp_path / "s2.csv"), "s2.csv")
    assert (taken.completed, taken.replaced, taken.new) == (1, 0, 1), taken
    df = Store.open(api.spec.store).to_dataframe()
    assert len(df) == 2 and set(df["density"]) == {8.9, 8.7} and set(df["hardness"]) == {2.5, 3.0}


def test_holds_of_a_sheet_queued_for_a_running_manager_reach_the_journal(tmp_path):
    """Review: a sheet taken while a manager held the campaign went to its inbox as records and
    not-made samples only, so `status` never showed its holds (nor the confirmations' audit). The
    inbox file carries them; every held property of a sample is kept."""
    import json

    from dm_hpc.campaign.holds import Hold
    from dm_hpc.campaign.lab import _audit, ingest_sheet_records

    path, campaign = lab_campaign(tmp_path)
    held = [Hold(2, "L1-1", "mixing_energy", 1.7, -0.15, -0.05, "eV/atom", "meV/atom"),
            Hold(2, "L1-1", "density", 30.0, 8.0, 9.0, "g/cm^3")]
    inbox = tmp_path / "inbox.json"
    inbox.write_text(json.dumps({"records": [], "not_made": [], **_audit(held, ["L1-0"])}))
    journal = jn.Journal(campaign.run_dir / "journal.jsonl")
    with Store.open(campaign.store, mode="a") as store:
        event = ingest_sheet_records(inbox, store, journal)
    journal.close()
    assert event["held"] == ["L1-1"] and event["confirmed"] == ["L1-0"]
    entry = jn.replay(campaign.run_dir / "journal.jsonl").lab["L1-1"]
    assert "mixing_energy 1700 meV/atom held" in entry.held and "density 30 g/cm^3 held" in entry.held
    # the units travel too: the portal's note rebuilds the interval in the unit typed
    assert entry.held_units == {"mixing_energy": "meV/atom", "density": "g/cm^3"}


MEV = "property:mixing_energy [meV/atom]"
#: lab_campaign's 99 % interval (-0.1 +- Z_99 * 0.02 eV/atom) in meV/atom
MEV_LO, MEV_HI = 1000 * (-0.1 - Z_99 * 0.02), 1000 * (-0.1 + Z_99 * 0.02)


def test_a_hold_quotes_the_value_and_its_interval_in_the_unit_the_sheet_gave_it(tmp_path):
    """The campaign file writes meV/atom and so does its sheet; a held 1700 meV/atom was said as
    'mixing_energy = 1.7 eV/atom held: outside ... [-0.1515, -0.04848] eV/atom' (the store's unit)
    at the ingest, in the journal and in `status`. A lab that heads its column in another unit is
    answered in that unit."""
    path, campaign = lab_campaign(tmp_path, unit="meV/atom")
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -90, "L1-1": 1700}, column=MEV)
    res = dm("ingest", str(path), str(filled))
    assert res.returncode == 0, res.stderr
    said = f"mixing_energy = 1700 meV/atom held: outside the model's 99 % interval [{MEV_LO:.4g}, {MEV_HI:.4g}] meV/atom"
    assert said in res.stdout, res.stdout
    status = dm("status", str(path)).stdout
    assert (f"L1-1: mixing_energy 1700 meV/atom held: outside the model's 99 % interval [{MEV_LO:.4g}, {MEV_HI:.4g}] "
            "meV/atom") in status, status
    import pandas as pd

    rows = {"sample_id": ["L1-2"], "composition:Ni [at_frac]": [0.6], "composition:Pd [at_frac]": [0.4],
            PROP: [1.7]}  # the lab typed eV/atom, and said so in the header
    held = Campaign.load(path).add_measurements(pd.DataFrame(rows)).attrs["held"]
    assert held == [f"line 2: sample 'L1-2': mixing_energy = 1.7 eV/atom held: outside the model's 99 % interval "
                    f"[{MEV_LO / 1000:.4g}, {MEV_HI / 1000:.4g}] eV/atom; confirm it if it is right, or correct it"]


def test_the_annotated_copy_gives_the_interval_in_the_unit_of_the_value_beside_it(tmp_path):
    """The annotated copy of a meV/atom sheet put '99 % interval:mixing_energy [eV/atom]' with
    eV/atom bounds beside the lab's meV/atom value and the sheet's meV/atom prediction."""
    path, campaign = lab_campaign(tmp_path, unit="meV/atom")
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -90, "L1-1": 1700}, column=MEV)
    out = tmp_path / "annotated.xlsx"
    assert dm("ingest", str(path), str(filled), "--annotated", str(out)).returncode == 0
    interval = "99 % interval:mixing_energy [meV/atom]"
    cells = _cells(out, "L1-1", [MEV, "predicted:mixing_energy [meV/atom]", interval])
    assert cells["predicted:mixing_energy [meV/atom]"].value == -100
    assert cells[interval].value == f"[{MEV_LO:.4g}, {MEV_HI:.4g}]"
    assert cells[MEV].comment.text.startswith(f"1700 meV/atom held: outside the model's 99 % interval "
                                              f"[{MEV_LO:.4g}, {MEV_HI:.4g}] meV/atom"), cells[MEV].comment.text
    # a sheet without the prediction gets one, in the unit of the lab's column too
    pd = __import__("pandas")
    pd.DataFrame({"sample_id": ["L1-2"], "composition:Ni [at_frac]": [0.6], "composition:Pd [at_frac]": [0.4],
                  MEV: [-95.0]}).to_csv(tmp_path / "plain.csv", index=False)
    assert dm("ingest", str(path), str(tmp_path / "plain.csv"), "--annotated", str(out)).returncode == 0
    cells = _cells(out, "L1-2", ["predicted:mixing_energy [meV/atom]", interval])
    assert cells["predicted:mixing_energy [meV/atom]"].value == pytest.approx(-100)
    assert cells[interval].value == f"[{MEV_LO:.4g}, {MEV_HI:.4g}]"
    # a unit that does not convert refuses the sheet; its copy still comes, the interval canonical
    pd.DataFrame({"sample_id": ["L1-2"], "composition:Ni [at_frac]": [0.6], "composition:Pd [at_frac]": [0.4],
                  "property:mixing_energy [blorp]": [-95.0]}).to_csv(tmp_path / "bad.csv", index=False)
    res = dm("ingest", str(path), str(tmp_path / "bad.csv"), "--annotated", str(out))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert _cells(out, "L1-2", ["99 % interval:mixing_energy [eV/atom]"])
