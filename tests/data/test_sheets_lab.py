"""The lab hand-off through the real CLI: a formula-named lab, not-made rows, --sheet, --replace.

A real campaign file, journal, store and XLSX workbook; the suggestions are journalled directly
(what the manager writes) so no calculation has to run first.
"""
from __future__ import annotations

import pytest

import zipfile

import openpyxl
import yaml

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.lab import write_suggestions
from dm_hpc.data import Store
from tests.campaign.helpers import dm, write_campaign

LAB = "=cmd|' /C calc'!A0"
PROP = "property:mixing_energy [eV/atom]"


def lab_campaign(tmp_path, unit: str | None = None):
    """A campaign with three suggestions journalled, predicted -0.1 +- 0.02 eV/atom; ``unit``: the
    unit its file writes the mixing energy in (its sheets ask for that unit)."""
    path = write_campaign(tmp_path, name="labsheet")
    data = yaml.safe_load(path.read_text())
    data["fidelities"][1]["name"] = LAB
    if unit is not None:
        data["objectives"][0]["unit"] = unit
    path.write_text(yaml.safe_dump(data))
    campaign = load_campaign(path)
    journal = jn.Journal(campaign.run_dir / "journal.jsonl")
    journal.write("start")
    journal.write("lab_suggested", batch=1, samples=[
        {"sample_id": f"L1-{i}", "composition": comp, "process": {},
         "predicted": {"mean": {"mixing_energy": -0.1}, "std": {"mixing_energy": 0.02}}}
        for i, comp in enumerate([{"Cu": 0.5, "Ni": 0.5}, {"Cu": 0.25, "Ni": 0.75}, {"Ni": 0.6, "Pd": 0.4}])
    ])
    journal.close()
    return path, campaign


def fill(path, out, values: dict[str, float | str | None], sheet_title: str | None = None, column: str = PROP):
    """What a lab does in Excel: type values in the property column, save (maybe renaming the sheet)."""
    wb = openpyxl.load_workbook(path)
    ws = wb.worksheets[0]  # the samples; the workbook opens on its Instructions
    header = [c.value for c in ws[1]]
    col = header.index(column) + 1
    for row in range(2, ws.max_row + 1):
        sid = ws.cell(row, 1).value
        if sid in values:
            ws.cell(row, col).value = values[sid]
    if sheet_title:
        ws.title = sheet_title
        wb.create_sheet("cover", 0)
    wb.save(out)
    return out


def test_lab_sheet_round_trip_through_the_cli(tmp_path):
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    res = dm("suggest", str(path), "--out", str(sheet))
    assert res.returncode == 0 and "wrote 3 suggested experiments" in res.stdout, res.stderr
    with zipfile.ZipFile(sheet) as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml and "<f " not in xml  # the lab name is text, not a formula
    ws = openpyxl.load_workbook(sheet).worksheets[0]
    methods = {ws.cell(r, 3).value for r in range(2, ws.max_row + 1)}
    assert methods == {"'" + LAB}

    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -0.05, "L1-1": -0.07, "L1-2": "not made"},
                  sheet_title="results")
    res = dm("ingest", str(path), str(filled))  # the first sheet is now the cover
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = dm("ingest", str(path), str(filled), "--sheet", "results")
    assert res.returncode == 0, res.stderr
    assert "ingested 2 records (2 new)" in res.stdout and "not made (marked so): L1-2" in res.stdout
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    assert state.lab["L1-2"].not_made and state.lab["L1-2"].record_id is None
    assert all(state.lab[s].record_id for s in ("L1-0", "L1-1"))
    df = Store.open(campaign.store).to_dataframe()
    assert set(df["method"]) == {LAB} and sorted(df["sample_id"]) == ["L1-0", "L1-1"]
    res = dm("status", str(path))
    assert "lab experiments not made" in res.stdout
    assert write_suggestions(campaign, tmp_path / "again.csv") == 0  # nothing left to suggest

    corrected = fill(sheet, tmp_path / "corrected.xlsx", {"L1-0": -0.06})
    res = dm("ingest", str(path), str(corrected))
    assert res.returncode == 2 and "line 2: sample 'L1-0': mixing_energy is already stored as -0.05" in res.stderr
    assert "Traceback" not in res.stderr and len(Store.open(campaign.store)) == 2
    res = dm("ingest", str(path), str(corrected), "--replace")
    assert res.returncode == 0 and "1 correcting stored value)" in res.stdout, res.stderr
    store = Store.open(campaign.store)
    assert len(store) == 3
    current = store.to_dataframe(sample_id="L1-0")
    assert current["mixing_energy"].tolist() == [-0.06]
    assert sorted(store.to_dataframe(sample_id="L1-0", superseded=True)["mixing_energy"]) == [-0.06, -0.05]
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    assert state.lab["L1-0"].record_id == current["record_id"].item()


def test_a_sheet_into_a_missing_folder_is_refused_by_its_name(tmp_path):
    """Found by a user-edge pass: the error named a temporary file ('nodir/.a.xlsx.tmp.xlsx')."""
    path, _ = lab_campaign(tmp_path)
    res = dm("suggest", str(path), "--out", str(tmp_path / "nodir" / "a.xlsx"))
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert f"cannot write {tmp_path / 'nodir' / 'a.xlsx'}: there is no folder {tmp_path / 'nodir'}" in res.stderr
    assert ".tmp" not in res.stderr and not (tmp_path / "nodir").exists()


def rename(path, out, old: str, new: str):
    """What a lab does to a header in Excel: type over it."""
    wb = openpyxl.load_workbook(path)
    ws = wb.worksheets[0]
    next(c for c in ws[1] if c.value == old).value = new
    wb.save(out)
    return out


def density_campaign(tmp_path):
    """A lab that measures mixing energy and density (a constraint), with one sheet suggested."""
    path = write_campaign(tmp_path, name="dens", constraints=["density <= 9 g/cm3"])
    campaign = load_campaign(path)
    journal = jn.Journal(campaign.run_dir / "journal.jsonl")
    journal.write("start")
    journal.write("lab_suggested", batch=1, samples=[
        {"sample_id": f"D-{i}", "composition": {"Cu": 0.5, "Ni": 0.5}, "process": {},
         "predicted": {"mean": {"mixing_energy": -0.1, "density": 8.9}, "std": {"mixing_energy": 0.02, "density": 0.2}}}
        for i in range(2)])
    journal.close()
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    wb = openpyxl.load_workbook(sheet)
    ws = wb.worksheets[0]
    header = [c.value for c in ws[1]]
    for row in (2, 3):
        ws.cell(row, header.index(PROP) + 1).value = -0.09
        ws.cell(row, header.index("property:density [g/cm^3]") + 1).value = 8.8
    wb.save(tmp_path / "filled.xlsx")
    return path, campaign, tmp_path / "filled.xlsx"


def test_a_renamed_property_column_with_values_refuses_the_sheet(tmp_path):
    """Found by QA (r2-renA2.xlsx): 'property:density [g/cm^3]' typed over as 'Density (g/cm3)' was
    warned as 'not a template column; ignored' and the densities were lost while the rest was stored."""
    path, campaign, filled = density_campaign(tmp_path)
    renamed = rename(filled, tmp_path / "renamed.xlsx", "property:density [g/cm^3]", "Density (g/cm3)")
    wb = openpyxl.load_workbook(renamed)
    ws = wb.worksheets[0]
    ws.delete_cols([c.value for c in ws[1]].index("uncertainty:density [g/cm^3]") + 1)  # as QA's sheet
    wb.save(tmp_path / "alone.xlsx")
    # the unit the renamed column states is kept (a review: kg/m3 relabelled g/cm**3 would be 1000x off)
    told = "column 'Density (g/cm3)' is not a template column; did you mean 'property:density [g/cm3]'?"
    res = dm("ingest", str(path), str(tmp_path / "alone.xlsx"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and told in res.stderr, res.stdout + res.stderr
    assert not campaign.store.exists()  # all or nothing: the mixing energies wait too
    assert all(e.record_id is None for e in jn.replay(campaign.run_dir / "journal.jsonl").lab.values())

    # beside its uncertainty column, the error names the renamed column, not only the orphan uncertainty
    res = dm("ingest", str(path), str(renamed))
    assert res.returncode == 2 and told in res.stderr, res.stderr

    # left empty, the renamed column still explains the orphan uncertainty
    wb = openpyxl.load_workbook(renamed)
    ws = wb.worksheets[0]
    col = [c.value for c in ws[1]].index("Density (g/cm3)") + 1
    for row in (2, 3):
        ws.cell(row, col).value = None
    wb.save(tmp_path / "empty.xlsx")
    res = dm("ingest", str(path), str(tmp_path / "empty.xlsx"))
    assert res.returncode == 2 and "an uncertainty without a property:density column" in res.stderr
    assert "'Density (g/cm3)'" in res.stderr and "'property:density [g/cm^3]'" in res.stderr, res.stderr  # its uncertainty's unit
    assert not campaign.store.exists()


def test_a_column_named_after_a_property_keeps_its_unit_and_a_note_is_not_a_measurement():
    """Review of the renamed-column refusal: the suggestion named the canonical unit whatever the
    column said ('Formation energy (meV/atom)' -> [eV/atom]: values 1000x off if followed), and a
    note column ('Density method' = 'pycnometer') refused the whole sheet."""
    import pandas as pd

    from dm_hpc.data.sheets import SheetDefaults, SheetError, names_property, records_from_table

    assert names_property("Formation energy (meV/atom)", ["formation_energy"]) == "property:formation_energy [meV/atom]"
    assert names_property("Density [kg/m3]", ["density"]) == "property:density [kg/m3]"
    assert names_property("Density", ["density"]) == "property:density [g/cm^3]"
    base = {"sample_id": ["S1"], "material_class": ["metal"], "source": ["experimental"], "method": ["lab"],
            "composition:Cu [at_frac]": [0.5], "composition:Ni [at_frac]": [0.5],
            "property:mixing_energy [eV/atom]": [-0.02]}
    got = records_from_table(pd.DataFrame({**base, "Density method": ["pycnometer"]}), "s.csv", SheetDefaults(),
                             properties=["density"])
    assert len(got.records) == 1 and any("Density method" in w for w in got.warnings)
    with pytest.raises(SheetError, match="did you mean 'property:density"):
        records_from_table(pd.DataFrame({**base, "Density (g/cm3)": ["8.9"]}), "s.csv", SheetDefaults(),
                           properties=["density"])


def test_a_renamed_sample_id_header_is_one_error(tmp_path):
    """Found by QA (r2-renD.xlsx): 'Sample ID' for sample_id gave 'sample_id is empty' on every row."""
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -0.05, "L1-1": -0.07})
    res = dm("ingest", str(path), str(rename(filled, tmp_path / "renamed.xlsx", "sample_id", "Sample ID")))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "1 problem(s)" in res.stderr and "no sample_id column; did you mean 'Sample ID'?" in res.stderr, res.stderr
    assert "sample_id is empty" not in res.stderr and not campaign.store.exists()


def test_a_sheet_refused_before_its_cells_are_read_does_not_point_at_an_older_annotated_copy(tmp_path):
    """Found by the lab trial: a sheet whose formula had no saved result was refused before any
    copy was written, yet the reply ended 'annotated copy: checked.xlsx', the copy of the sheet
    ingested before, every cell green. Now the reply says no copy was written and that the file
    at that path is an older one; a copy written by this ingest is named as before. (A formula
    without a saved result is now refused with the sheet's other cells, which get their copy.)"""
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    checked = tmp_path / "checked.xlsx"
    res = dm("ingest", str(path), str(fill(sheet, tmp_path / "good.xlsx", {"L1-0": -0.09})), "--annotated", str(checked))
    assert res.returncode == 0 and "annotated copy:" in res.stdout, res.stdout + res.stderr
    earlier = checked.read_bytes()
    damaged = tmp_path / "damaged.xlsx"
    damaged.write_bytes(fill(sheet, tmp_path / "whole.xlsx", {"L1-1": -0.07}).read_bytes()[:900])  # cut short
    res = dm("ingest", str(path), str(damaged), "--annotated", str(checked))
    said = " ".join(res.stderr.split())
    assert res.returncode == 2 and "not a readable XLSX workbook" in said and "Traceback" not in said, said
    assert "annotated copy:" not in said and "no annotated copy written" in said, said
    assert "from an earlier" in said and checked.read_bytes() == earlier, said
    formula = fill(sheet, tmp_path / "formula.xlsx", {"L1-0": -0.09, "L1-1": "=-0.05-0.02"})
    res = dm("ingest", str(path), str(formula), "--annotated", str(checked))
    said = " ".join(res.stderr.split())
    assert res.returncode == 2 and "without a saved result" in said and "annotated copy:" in said, said
    copy = openpyxl.load_workbook(checked).worksheets[0]
    notes = [copy.cell(r, copy.max_column).comment for r in range(2, copy.max_row + 1)]
    assert any(n is not None and "without a saved result" in n.text for n in notes)  # L1-1's verdict says why
    earlier = checked.read_bytes()
    res = dm("ingest", str(path), str(fill(sheet, tmp_path / "bad.xlsx", {"L1-1": "lots"})), "--annotated", str(checked))
    assert res.returncode == 2 and "annotated copy:" in res.stderr and checked.read_bytes() != earlier


def test_a_sheet_of_another_campaign_is_named_as_such(tmp_path):
    """Found by the lab trial: a sheet of campaign 'other' sent to this one was refused row by row,
    'unknown sample_id 'other-L001-01': not a suggested experiment', never saying whose sheet it
    is. Now the refusal says first that its sample ids are campaign 'other''s, not this one's,
    and to ingest it with that campaign's file; nothing is stored, as before. A typo in one id
    of this campaign's own sheet is refused without that line."""
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -0.09, "L1-1": -0.08, "L1-2": -0.07})
    wb = openpyxl.load_workbook(filled)
    for k, row in enumerate(range(2, 5), start=1):
        wb.worksheets[0].cell(row, 1).value = f"other-L001-{k:02d}"
    wb.save(tmp_path / "other.xlsx")
    res = dm("ingest", str(path), str(tmp_path / "other.xlsx"))
    said = " ".join(res.stderr.split())
    assert res.returncode == 2 and "Traceback" not in said, said
    assert "campaign 'other'" in said and "not of campaign 'labsheet'" in said, said
    assert said.index("campaign 'other'") < said.index("unknown sample_id"), said
    assert not campaign.store.exists()
    wb.worksheets[0].cell(2, 1).value, wb.worksheets[0].cell(3, 1).value = "L1-0", "L1-1"
    wb.worksheets[0].cell(4, 1).value = "L1-9"
    wb.save(tmp_path / "typo.xlsx")
    said = " ".join(dm("ingest", str(path), str(tmp_path / "typo.xlsx")).stderr.split())
    assert "unknown sample_id 'L1-9'" in said and "campaign '" not in said, said


def test_a_sample_id_in_other_case_is_offered_and_a_folder_is_named_as_one(tmp_path):
    """Found by the lab trial: 'l1-1' for the sheet's 'L1-1' got 'unknown sample_id' with no hint,
    and `ingest CAMPAIGN run/` (a folder) got "unsupported sheet type '(none)'"."""
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -0.09, "L1-1": -0.08})
    wb = openpyxl.load_workbook(filled)
    wb.worksheets[0].cell(3, 1).value = "l1-1"
    wb.save(tmp_path / "case.xlsx")
    res = dm("ingest", str(path), str(tmp_path / "case.xlsx"))
    said = " ".join(res.stderr.split())
    assert res.returncode == 2 and "unknown sample_id 'l1-1'" in said and "did you mean 'L1-1'?" in said, said
    assert not campaign.store.exists()
    res = dm("ingest", str(path), str(tmp_path))
    said = " ".join(res.stderr.split())
    assert res.returncode == 2 and "is a folder, not a sheet" in said and "Traceback" not in said, said


def test_a_value_cell_merged_over_two_rows_is_refused_not_read_as_blank(tmp_path):
    """Found by the lab trial: a value merged over the rows of L1-0 and L1-1 (one measurement typed
    once for two samples) stored L1-0 and left L1-1 pending with 'blank', while the lab saw a value
    in both rows. Now the covered cell is refused, naming the merge, and nothing is stored; a note
    merged into an empty row below the table adds no row."""
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -0.09, "L1-2": -0.07})
    wb = openpyxl.load_workbook(filled)
    ws = wb.worksheets[0]
    col = [c.value for c in ws[1]].index(PROP) + 1
    letter = openpyxl.utils.get_column_letter(col)
    ws.merge_cells(f"{letter}2:{letter}3")
    wb.save(tmp_path / "merged.xlsx")
    res = dm("ingest", str(path), str(tmp_path / "merged.xlsx"))
    said = " ".join(res.stderr.split())
    assert res.returncode == 2 and "Traceback" not in said, said
    assert f"merged into the cell {letter}2" in said and "unmerge the cells" in said and "L1-1" in said, said
    assert not campaign.store.exists()
    wb = openpyxl.load_workbook(fill(sheet, tmp_path / "noted.xlsx", {"L1-0": -0.09, "L1-1": -0.08, "L1-2": -0.07}))
    ws = wb.worksheets[0]
    ws.cell(4, ws.max_column + 1).value = "all three from one furnace run"
    ws.merge_cells(start_row=4, start_column=ws.max_column, end_row=6, end_column=ws.max_column)
    wb.save(tmp_path / "noted.xlsx")
    res = dm("ingest", str(path), str(tmp_path / "noted.xlsx"))
    assert res.returncode == 0, res.stderr


def test_a_pending_sheet_of_a_lab_named_like_a_formula_is_not_taken_for_typed(tmp_path):
    """A lab named '=cmd...' is written with a leading quote (no cell a formula); the check for
    values typed into the pending sheet compared the quoted cell with the name and took every row
    for typed by the lab, so `dm-hpc suggest`/`run` never wrote that campaign's sheet again. Now
    a sheet as written holds nothing typed; a value typed into it still keeps it."""
    from dm_hpc.campaign.labsheet import SuggestionSheet, sample_ids_of

    path, campaign = lab_campaign(tmp_path)
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    sheet = SuggestionSheet(campaign)
    assert write_suggestions(campaign, sheet.prepared(), state) == 3
    assert openpyxl.load_workbook(sheet.path())["samples"].cell(2, 3).value == "'" + LAB  # still escaped
    assert sheet.typed(state) == [] and sample_ids_of(sheet.path()) == ["L1-0", "L1-1", "L1-2"]
    res = dm("suggest", str(path))
    assert res.returncode == 0 and "wrote 3 suggested experiments" in res.stdout, res.stdout + res.stderr
    fill(sheet.path(), sheet.path(), {"L1-1": -0.07})
    assert sheet.typed(state) == ["L1-1"]


def test_a_text_cell_merged_over_two_rows_is_each_rows_and_the_marker_is_never_stored(tmp_path):
    """A note (or method) merged over the rows of L1-0 and L1-1 was stored for L1-1 as
    '(merged into the cell ...)', the reader's marker for a covered cell. A lab sees the note in
    both rows: it is now stored for both. A merge over cells that name or measure a sample (a
    sample id, a formula) is refused naming the merge, as a value cell is."""
    from dm_hpc.data.sheets import SheetError, read_sheet_contents

    note = "-furnace B, one run"  # escaped as written, like the lab's name
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["sample_id", "method", "composition:Cu [at_frac]", "composition:Ni [at_frac]", PROP, "notes"])
    for sid, cu in (("L1-0", 0.5), ("L1-1", 0.25), ("L1-2", 0.4)):
        ws.append([sid, "'" + LAB, cu, 1 - cu, -0.05, None])
    ws["F2"].value = "'" + note
    ws.merge_cells("F2:F3")
    ws.merge_cells("B3:B4")
    wb.save(tmp_path / "noted.xlsx")
    records = read_sheet_contents(tmp_path / "noted.xlsx").records
    assert [r.provenance.method for r in records] == [LAB] * 3
    assert [r.provenance.extra.get("notes") for r in records] == [note, note, None]
    ws.unmerge_cells("F2:F3")
    ws.merge_cells("A3:A4")
    wb.save(tmp_path / "ids.xlsx")
    with pytest.raises(SheetError) as err:
        read_sheet_contents(tmp_path / "ids.xlsx")
    said = " ".join(str(err.value).split())
    assert "merged into the cell A3" in said and "unmerge the cells" in said, said
    assert [v.column for v in err.value.verdicts] == ["sample_id"], said


def test_the_annotated_copy_can_be_sent_back(tmp_path):
    """Found by QA (r1-checked.xlsx): labs fix the red cells of the annotated copy and send it back,
    which was refused: "column 'predicted:mixing_energy [eV/atom]' appears twice"."""
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -0.09, "L1-1": 1.7})  # L1-1: a typo, held
    checked = tmp_path / "checked.xlsx"
    res = dm("ingest", str(path), str(filled), "--annotated", str(checked))
    assert res.returncode == 0 and "ingested 1 records" in res.stdout, res.stderr
    header = [c.value for c in openpyxl.load_workbook(checked).worksheets[0][1]]
    assert len(header) == len(set(header)) and "99 % interval:mixing_energy [eV/atom]" in header
    wb = openpyxl.load_workbook(checked)
    ws = wb.worksheets[0]
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == "L1-1")
    ws.cell(row, header.index(PROP) + 1).value = -0.08  # the red cell, corrected
    wb.save(tmp_path / "fixed.xlsx")
    again = tmp_path / "checked-again.xlsx"
    res = dm("ingest", str(path), str(tmp_path / "fixed.xlsx"), "--annotated", str(again))
    assert res.returncode == 0 and "ingested 2 records (1 new)" in res.stdout, res.stdout + res.stderr
    assert "not a template column" not in res.stdout
    assert sorted(Store.open(campaign.store).to_dataframe()["mixing_energy"]) == [-0.09, -0.08]
    # the copy of a copy: annotated once, not twice, and it reads back too
    header = [c.value for c in openpyxl.load_workbook(again).worksheets[0][1]]
    assert len(header) == len(set(header)), header
    res = dm("ingest", str(path), str(again))
    assert res.returncode == 0 and "ingested 2 records (0 new)" in res.stdout, res.stdout + res.stderr


def test_a_formula_without_a_saved_result_is_said_with_the_sheets_other_problems(tmp_path):
    """A formula without a saved result refused the sheet before its cells were checked: the lab
    fixed the formula, sent the sheet back and only then learnt of the impossible value and the
    mistyped sample id beside it. Now one refusal names every problem, the formula among them (its
    column by name), in the form of the other problems; nothing is stored. A header whose unit
    does not convert is said together with the formula and the mistyped id as well (the value
    under that header is not read: no unit to read it in)."""
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": "=-0.05-0.02", "L1-1": 50.0, "L1-2": -0.07})
    wb = openpyxl.load_workbook(filled)
    wb.worksheets[0].cell(4, 1).value = "L1-9"  # L1-2 mistyped
    wb.save(filled)
    res = dm("ingest", str(path), str(filled))
    said = " ".join(res.stderr.split())
    assert res.returncode == 2 and "Traceback" not in said, said
    assert "3 problem(s), nothing imported" in said, said
    assert (f"line 2: sample 'L1-0', column '{PROP}', value '=-0.05-0.02': a formula without a saved result"
            in said), said
    assert "line 3: sample 'L1-1'" in said and "outside the physical range" in said, said
    assert "line 4: sample 'L1-9'" in said and "unknown sample_id 'L1-9'" in said, said
    assert not campaign.store.exists()
    unit = rename(filled, tmp_path / "unit.xlsx", PROP, "property:mixing_energy [eV/furlong]")
    said = " ".join(dm("ingest", str(path), str(unit)).stderr.split())
    assert "3 problem(s), nothing imported" in said and "eV/furlong" in said, said
    assert "value '=-0.05-0.02': a formula without a saved result" in said, said
    assert "unknown sample_id 'L1-9'" in said and "outside the physical range" not in said, said
    assert not campaign.store.exists()


def test_a_sheet_with_compositions_or_notes_but_no_value_says_nothing_was_stored(tmp_path):
    """A lab typed the composition it made (or a note) and no measured value: the sheet counts as
    typed by the lab (``typed_by_the_lab``), yet the ingest's reply was 'ingested 0 records (0 new)'
    after a warning about blank rows that advised writing 'not made', as if the samples had
    failed. Now the reply says plainly that no measured value was found, in which column(s),
    that nothing was stored and that the rows stay pending."""
    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    assert dm("suggest", str(path), "--out", str(sheet)).returncode == 0
    made = fill(sheet, tmp_path / "made.xlsx", {"L1-0": 0.45}, column="composition:Cu [at_frac]")
    made = fill(made, made, {"L1-0": 0.55}, column="composition:Ni [at_frac]")
    noted = openpyxl.load_workbook(sheet)
    ws = noted.worksheets[0]
    ws.cell(1, ws.max_column + 1).value = "notes"
    ws.cell(3, ws.max_column).value = "furnace down until Monday"
    noted.save(tmp_path / "noted.xlsx")
    for filled in (made, tmp_path / "noted.xlsx"):
        res = dm("ingest", str(path), str(filled))
        said = " ".join(res.stdout.split())
        assert res.returncode == 0 and "Traceback" not in said + res.stderr, said + res.stderr
        assert f"no measured value was found in the sheet: the column '{PROP}' is blank in every row" in said, said
        assert "nothing was stored" in said and "3 row(s) stay pending" in said, said
        assert "write 'not made' in a measurement cell" not in said, said  # the samples may well be made
        assert all(e.awaited for e in jn.replay(campaign.run_dir / "journal.jsonl").lab.values())


def _merged(path, out, cells: dict[str, object], merges: list[str]):
    """What a lab does in Excel: type into cells (by coordinate), merge ranges, save."""
    wb = openpyxl.load_workbook(path)
    ws = wb.worksheets[0]
    for at, value in cells.items():
        ws[at].value = value
    for span in merges:
        ws.merge_cells(span)
    wb.save(out)
    return out


def test_a_confirm_cell_merged_over_two_held_rows_confirms_both(tmp_path):
    """A lab confirmed two held values with one 'yes' merged over both rows' confirm cells: the
    first was stored, the second stayed held with "its confirm cell says '(merged into the cell
    K2)', which is not a yes" (the reader's stand-in, in words the lab never typed). The lab sees
    yes in both rows, as it sees a merged note: it confirms both (``SHARED_WHEN_MERGED``). A
    confirm cell covered by a merge from another column is no yes of its own: said, naming the
    merge and the sample; the value stays held."""
    from dm_hpc.campaign.annotate import take_and_annotate

    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    write_suggestions(campaign, sheet)
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": 1.7, "L1-1": 1.8, "L1-2": -0.1})
    at = [c.value for c in openpyxl.load_workbook(filled).worksheets[0][1]].index("confirm") + 1
    confirm = openpyxl.utils.get_column_letter(at)
    down = _merged(filled, tmp_path / "down.xlsx", {f"{confirm}2": "yes"}, [f"{confirm}2:{confirm}3"])
    wb = openpyxl.load_workbook(filled)
    wb.worksheets[0].insert_cols(at)  # a notes column typed in before the confirm column
    wb.save(tmp_path / "across.xlsx")
    notes, moved = confirm, openpyxl.utils.get_column_letter(at + 1)
    # L1-1's confirm cell under a note merged from the left of it
    across = _merged(tmp_path / "across.xlsx", tmp_path / "across.xlsx",
                     {f"{notes}1": "notes", f"{notes}3": "checked twice", f"{moved}2": "yes"}, [f"{notes}3:{moved}3"])

    result = take_and_annotate(campaign, down, tmp_path / "annotated.xlsx")
    assert sorted(result.confirmed) == ["L1-0", "L1-1"] and not result.held, result.warnings
    assert not any("confirm cell" in w for w in result.warnings), result.warnings
    assert sorted(Store.open(campaign.store).to_dataframe()["sample_id"]) == ["L1-0", "L1-1", "L1-2"]
    ws = openpyxl.load_workbook(tmp_path / "annotated.xlsx")["annotated"]
    head = [c.value for c in ws[1]]
    assert [ws.cell(r, head.index("confirm") + 1).value for r in (2, 3)] == ["yes", "yes"]

    (tmp_path / "fresh").mkdir()
    _, campaign = lab_campaign(tmp_path / "fresh")  # nothing stored: both values held again
    result = take_and_annotate(campaign, across, None)
    assert result.confirmed == ["L1-0"] and [h.sample_id for h in result.held] == ["L1-1"]
    said = " ".join(result.warnings)
    assert f"sample L1-1: its confirm cell is merged into the cell {notes}3" in said, said
    assert "unmerge the cells" in said and "(merged" not in said, said


def test_the_annotated_copy_of_a_refused_sheet_shows_what_the_lab_saw_never_a_stand_in(tmp_path):
    """The annotated copy of a refused sheet showed '(merged into the cell L2)' in a notes cell a
    merge covered, though the note itself is what is stored; likewise '(number cell without a
    value)' and '(the formula =1/0 without a saved result)': the reader's stand-ins, which keep a
    cell from reading as blank. The copy now shows each cell as the lab's spreadsheet showed it
    (the merged text, a blank, the formula typed), with the refusal in the comments."""
    from dm_hpc.campaign.annotate import take_and_annotate
    from dm_hpc.data.sheets import SheetError

    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    write_suggestions(campaign, sheet)
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -0.09, "L1-1": -0.08, "L1-2": -0.07})
    header = [c.value for c in openpyxl.load_workbook(filled).worksheets[0][1]]
    letter = {h: openpyxl.utils.get_column_letter(header.index(h) + 1) for h in header}
    unc = letter["uncertainty:mixing_energy [eV/atom]"]
    notes = openpyxl.utils.get_column_letter(len(header) + 1)
    _merged(filled, filled, {f"{notes}1": "notes", f"{notes}2": "furnace B", f"{unc}2": float("nan"),
                             f"{unc}3": "=1/0"}, [f"{notes}2:{notes}3", f"{letter[PROP]}3:{letter[PROP]}4"])
    out = tmp_path / "annotated.xlsx"
    with pytest.raises(SheetError) as err:
        take_and_annotate(campaign, filled, out)
    said = " ".join(str(err.value).split())
    assert f"merged into the cell {letter[PROP]}3" in said and "without a saved result" in said, said
    ws = openpyxl.load_workbook(out)["annotated"]
    shown = [[c.value for c in row] for row in ws.iter_rows()]
    head = shown[0]
    cells = [str(v) for row in shown for v in row if v is not None]
    assert not [v for v in cells if v.startswith("(")], cells  # no stand-in text anywhere
    by_sid = {row[0]: dict(zip(head, row)) for row in shown[1:]}
    assert by_sid["L1-0"]["notes"] == by_sid["L1-1"]["notes"] == "furnace B"  # what is stored for both
    assert by_sid["L1-2"][PROP] == -0.08  # the merged value, as the lab saw it, refused
    assert by_sid["L1-0"]["uncertainty:mixing_energy [eV/atom]"] is None
    assert by_sid["L1-1"]["uncertainty:mixing_energy [eV/atom]"] == "'=1/0"  # the formula, as text
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == "L1-2")
    comment = ws.cell(row, head.index(PROP) + 1).comment.text
    assert comment.startswith("refused") and f"merged into the cell {letter[PROP]}3" in comment, comment


def test_a_header_problem_is_said_with_the_rows_problems_where_the_rows_can_be_read(tmp_path):
    """A sheet with a header problem (a column named 'Hardness' holding numbers, a sample_id header
    typed over) was refused for the header alone; once the lab had fixed it, the bad value and the
    composition that does not sum beside it came back in a second refusal. Now one refusal says
    them all; a header whose composition cannot be read (a unit no basis has) still stops there,
    as its rows' sums would be judged on the wrong basis."""
    from dm_hpc.campaign.lab import read_lab_sheet
    from dm_hpc.data.sheets import SheetError

    path, campaign = lab_campaign(tmp_path)
    sheet = tmp_path / "suggest.xlsx"
    write_suggestions(campaign, sheet)
    filled = fill(sheet, tmp_path / "filled.xlsx", {"L1-0": -0.09, "L1-1": "abc", "L1-2": -0.07})
    filled = fill(filled, filled, {"L1-2": 0.9}, column="composition:Ni [at_frac]")  # 0.9 + 0.4
    wb = openpyxl.load_workbook(filled)
    ws = wb.worksheets[0]
    ws.cell(1, ws.max_column + 1).value = "Hardness"
    ws.cell(2, ws.max_column).value = 2.5
    wb.save(tmp_path / "hardness.xlsx")

    def refusal(sheet_file) -> list[tuple[int, str]]:
        with pytest.raises(SheetError) as err:
            read_lab_sheet(campaign, sheet_file)
        return err.value.problems

    said = refusal(tmp_path / "hardness.xlsx")
    assert said[0] == (1, "column 'Hardness' is not a template column; did you mean 'property:hardness [GPa]'?"), said
    assert [line for line, _ in said] == [1, 3, 4], said
    assert "not a number" in said[1][1] and "composition sums to 1.3" in said[2][1], said
    said = refusal(rename(tmp_path / "hardness.xlsx", tmp_path / "ids.xlsx", "sample_id", "Sample ID"))
    assert said[:2] == [(1, "column 'Hardness' is not a template column; did you mean 'property:hardness [GPa]'?"),
                        (1, "no sample_id column; did you mean 'Sample ID'?")], said
    assert [line for line, _ in said[2:]] == [3, 4] and "sample_id" not in " ".join(m for _, m in said[2:]), said
    said = refusal(rename(filled, tmp_path / "basis.xlsx", "composition:Cu [at_frac]", "composition:Cu [ppm]"))
    assert [line for line, _ in said] == [1], said
