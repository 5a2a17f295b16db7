"""Sheets for people (issue 21, 6): rounded values in the author's units, no doubled prefix, only
what the lab measures, an Instructions worksheet, frozen header, number validation; a filled
sheet in those units reads back. Real campaign file, journal, workbook and store."""
from __future__ import annotations

import openpyxl
import pytest
import yaml

from dm_hpc.campaign import CampaignError, journal as jn, load_campaign
from dm_hpc.campaign.lab import take_lab_sheet, write_suggestions
from dm_hpc.campaign.labsheet import instructions
from dm_hpc.data import Store
from tests.campaign.helpers import dm, write_campaign


def _campaign(tmp_path, **lab):
    path = write_campaign(tmp_path, name="people", objectives=[{"property": "mixing_energy", "goal": "min"},
                                                               {"property": "raw_material_cost", "goal": "min"}],
                          space={"elements": {"Cu": [0, 1], "Ni": [0, 1]},
                                 "process": {"annealing_temperature": {"low": 400, "high": 600, "unit": "degC"}}})
    data = yaml.safe_load(path.read_text())
    data["fidelities"][1].update(precision=0.02, **lab)
    path.write_text(yaml.safe_dump(data))
    campaign = load_campaign(path)
    journal = jn.Journal(campaign.run_dir / "journal.jsonl")
    journal.write("lab_suggested", batch=1, samples=[
        {"sample_id": "P-1", "composition": {"Cu": 0.9199999999999999, "Ni": 0.08000000000000002},
         "process": {"annealing_temperature": 753.72084618629153},
         "predicted": {"mean": {"mixing_energy": -0.0312345678, "raw_material_cost": 9.87654},
                       "std": {"mixing_energy": 0.0123456, "raw_material_cost": 0.1}}}])
    journal.close()
    return campaign


def test_the_suggestion_sheet_reads_like_a_lab_sheet(tmp_path):
    campaign = _campaign(tmp_path)
    out = tmp_path / "s.xlsx"
    assert write_suggestions(campaign, out) == 1
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["samples", "Instructions"] and wb.active.title == "Instructions"
    ws = wb["samples"]
    header = [c.value for c in ws[1]]
    row = dict(zip(header, [c.value for c in ws[2]]))
    assert row["composition:Cu [at_frac]"] == 0.92 and row["composition:Ni [at_frac]"] == 0.08
    assert row["process:treatment:annealing_temperature [degC]"] == 480.6  # as the author wrote it
    assert not any(h.startswith("process:process:") for h in header)
    assert "property:mixing_energy [eV/atom]" in header
    assert not any("raw_material_cost" in h for h in header)  # computed, never asked of a lab
    assert row["predicted:mixing_energy [eV/atom]"] == -0.0312
    assert ws.freeze_panes == "B2" and ws.column_dimensions["B"].width >= 10
    ranges = {str(dv.sqref): dv.type for dv in ws.data_validations.dataValidation}
    col = openpyxl.utils.get_column_letter(header.index("property:mixing_energy [eV/atom]") + 1)
    assert ranges[f"{col}2"] == "custom"
    text = " ".join(str(c.value) for r in wb["Instructions"].iter_rows() for c in r)
    assert "not made" in text and "eV/atom" in text and "confirm" in text and "Ask" in text
    res = dm("suggest", str(tmp_path / "people.yaml"), "--out", str(tmp_path / "s.csv"))
    assert res.returncode == 0 and "wrote 1 suggested experiment to" in res.stdout, res.stdout + res.stderr


def test_a_sheet_filled_in_the_authors_units_reads_back(tmp_path):
    campaign = _campaign(tmp_path)
    out = tmp_path / "s.xlsx"
    write_suggestions(campaign, out)
    wb = openpyxl.load_workbook(out)
    ws = wb["samples"]
    header = [c.value for c in ws[1]]
    ws.cell(2, header.index("property:mixing_energy [eV/atom]") + 1).value = -0.03
    wb.save(out)
    result = take_lab_sheet(campaign, out)
    assert result.new == 1 and not result.held
    rec = next(Store.open(campaign.store).records())
    assert rec.process[0].parameters["annealing_temperature"] == pytest.approx(753.75)  # 480.6 degC in K


def test_measures_names_what_the_lab_measures_and_refuses_computed_only(tmp_path):
    campaign = _campaign(tmp_path, measures=["mixing_energy"])
    assert campaign.lab.measures == ["mixing_energy"]
    (tmp_path / "b").mkdir()
    with pytest.raises(CampaignError, match="computed from the composition"):
        _campaign(tmp_path / "b", measures=["raw_material_cost"])


def test_the_instructions_keep_the_description_apart_from_whom_to_ask(tmp_path):
    """On main: 'Ask the campaign's owner: Low mixing energy, light and cheap alloys' -- the
    description's first line where a person belongs. A campaign file names no owner, so the
    sheet names none; the description has its own row, whole, and as text (never a formula)."""
    path = write_campaign(tmp_path, name="described", description="=HYPERLINK(\"http://x\")\nFind light, hard alloys.")
    campaign = load_campaign(path)
    journal = jn.Journal(campaign.run_dir / "journal.jsonl")
    journal.write("lab_suggested", batch=1, samples=[{"sample_id": "D-1", "composition": {"Cu": 0.5, "Ni": 0.5},
                                                      "process": {}, "predicted": {}}])
    journal.close()
    out = tmp_path / "s.xlsx"
    write_suggestions(campaign, out)
    ws = openpyxl.load_workbook(out)["Instructions"]
    rows = {row[0].value: row[1] for row in ws.iter_rows()}
    assert rows["Description"].value == "'=HYPERLINK(\"http://x\") Find light, hard alloys."
    assert rows["Description"].data_type == "s"
    questions = rows["Questions"].value
    assert "owner" not in questions and "HYPERLINK" not in questions and "alloys" not in questions, questions
    assert "whoever sent you this sheet" in questions, questions
    # without a description there is no empty row for one
    (tmp_path / "p").mkdir()
    plain = load_campaign(write_campaign(tmp_path / "p", name="plain"))
    assert "Description" not in dict(instructions(plain, ["mixing_energy"]))


def test_the_instructions_say_how_a_spread_a_blank_and_a_partly_measured_row_are_taken(tmp_path):
    """A user trial: the sheet refuses '1.2 ± 0.1' and 'n/a' and stores a partly measured row, and
    its Instructions said none of it; the lab learnt each rule from a refusal."""
    plain = load_campaign(write_campaign(tmp_path, name="plain"))
    said = dict(instructions(plain, ["mixing_energy"]))
    assert "uncertainty:<name>" in said["One number a cell"] and "'n/a'" in said["One number a cell"]
    assert "learns from those" in said["Partly measured"] and "--replace" in said["Partly measured"]
    # Units invites another unit in the header; "Do not change" had forbidden every header change
    assert "change the header" in said["Units"] and "only a unit in [..] may change" in said["Do not change"]


def test_suggest_without_out_writes_into_the_run_folder_where_the_report_finds_it(tmp_path):
    """`dm-hpc suggest FILE` ended with "Missing option '--out'", while the report's "lab sheets:
    none yet (`dm-hpc suggest` writes RUN/lab-suggestions.xlsx)" promised that file."""
    from typer.testing import CliRunner

    from dm_hpc.campaign.report import write_report
    from dm_hpc.cli import app
    from tests.campaign.helpers import hardness_density_lab

    api = hardness_density_lab(tmp_path, ["S0"])
    path, run = str(tmp_path / "two.yaml"), api.spec.run_dir

    def said(*args: str) -> str:
        res = CliRunner().invoke(app, ["suggest", path, *args], env={"COLUMNS": "300"})
        assert res.exit_code == 0, res.output
        return " ".join(res.output.split())

    pending = run / "lab-suggestions.xlsx"  # what `dm-hpc run` writes for the lab, and the report names
    assert f"wrote 1 suggested experiment to {pending}" in said()
    assert [r[0] for r in openpyxl.load_workbook(pending)["samples"].iter_rows(min_row=2, values_only=True)] == ["S0"]
    batch = run / "lab-batch-002.xlsx"  # the new batch on its own, named by its number (its sample ids' L002)
    assert f"wrote 2 new suggested experiments to {batch}" in said("-n", "2")
    ids = [r[0] for r in openpyxl.load_workbook(batch)["samples"].iter_rows(min_row=2, values_only=True)]
    assert len(ids) == 2 and all("-L002-" in i for i in ids), ids
    assert "wrote 3 suggested experiments to" in said()  # the pending sheet now holds both batches
    elsewhere = tmp_path / "mine.csv"
    assert f"wrote 3 suggested experiments to {elsewhere}" in said("--out", str(elsewhere)) and elsewhere.exists()
    line = next(ln for ln in write_report(api.spec).read_text().splitlines() if ln.startswith("- lab sheets:"))
    assert f"`{batch}`" in line and f"`{pending}`" in line, line


def test_suggest_without_out_keeps_a_pending_sheet_the_lab_has_typed_values_into(tmp_path):
    """`dm-hpc suggest FILE` wrote RUN/lab-suggestions.xlsx over the copy the lab was filling in
    (the report points the lab at that file): hardness typed for S0, not yet ingested, was gone,
    the sheet blank again. Now the sheet is kept and the reply says why and what to do; once its
    values are ingested (or with --out) a sheet is written as before."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app
    from tests.campaign.helpers import hardness_density_lab

    api = hardness_density_lab(tmp_path, ["S0", "S1"])
    path, pending = str(tmp_path / "two.yaml"), api.spec.run_dir / "lab-suggestions.xlsx"

    def suggest(*args: str):
        res = CliRunner().invoke(app, ["suggest", path, *args], env={"COLUMNS": "300"})
        return res.exit_code, " ".join(res.output.split())

    assert suggest()[0] == 0
    book = openpyxl.load_workbook(pending)
    rows = book["samples"]
    header = [c.value for c in rows[1]]
    rows.cell(row=2, column=header.index("property:hardness [GPa]") + 1, value=5.1)  # S0, typed by the lab
    book.save(pending)
    code, said = suggest()
    assert code != 0 and "S0" in said and "not yet ingested" in said and "--out" in said, said
    kept = openpyxl.load_workbook(pending)["samples"]
    assert kept.cell(row=2, column=header.index("property:hardness [GPa]") + 1).value == 5.1
    code, said = suggest("--out", str(tmp_path / "mine.xlsx"))
    assert code == 0 and "wrote 2 suggested experiments" in said, said


def test_a_batch_from_a_manager_that_does_not_give_its_number_goes_to_its_own_sheet(tmp_path, monkeypatch):
    """A manager started before `suggest` wrote RUN/lab-batch-NNN.xlsx answers without the batch's
    number; `dm-hpc suggest -n 1` then wrote the new batch alone to RUN/lab-suggestions.xlsx, over
    the sheet of every pending experiment (S0 gone from it). Now the number is read from the
    journal the manager wrote: RUN/lab-batch-002.xlsx, the pending sheet untouched."""
    import contextlib
    import json

    from typer.testing import CliRunner

    from dm_hpc.campaign import ownership
    from dm_hpc.cli import app
    from tests.campaign.helpers import hardness_density_lab

    api = hardness_density_lab(tmp_path, ["S0"])
    path, run = str(tmp_path / "two.yaml"), api.spec.run_dir
    assert CliRunner().invoke(app, ["suggest", path]).exit_code == 0
    pending = (run / "lab-suggestions.xlsx").read_bytes()

    def old_manager(run_dir, text, name=None):  # journals batch 2 and answers as before the change
        request = json.loads(text)
        sample = {"sample_id": "two-L002-01", "composition": {"Cu": 0.3, "Ni": 0.7}, "process": {}, "predicted": {}}
        journal = jn.Journal(run_dir / "journal.jsonl")
        journal.write("lab_suggested", batch=2, samples=[sample])
        journal.close()
        (run_dir / "inbox").mkdir(exist_ok=True)
        (run_dir / "inbox" / request["reply"]).write_text(json.dumps({"samples": [sample], "why_empty": None}))

    monkeypatch.setattr(ownership, "exclusive", lambda c: contextlib.nullcontext(None))  # a manager holds it
    monkeypatch.setattr(ownership, "drop_in_inbox", old_manager)
    res = CliRunner().invoke(app, ["suggest", path, "-n", "1"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert "lab-batch-002.xlsx" in " ".join(res.output.split()), res.output
    assert (run / "lab-suggestions.xlsx").read_bytes() == pending


def test_suggest_n_checks_the_batch_sheet_it_will_write_before_journalling_it(tmp_path):
    """`dm-hpc suggest -n N` without --out checked RUN/lab-suggestions.xlsx, the pending sheet, before
    journalling the batch, not RUN/lab-batch-NNN.xlsx, the file it writes: a folder by the pending
    sheet's name refused the batch ('is a folder'), and one by the batch sheet's name was found
    only after the batch was journalled (the lab budget spent, no sheet). Now the batch's own
    sheet is checked: the first writes lab-batch-002.xlsx, the second is refused, nothing journalled."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app
    from tests.campaign.helpers import hardness_density_lab

    api = hardness_density_lab(tmp_path, ["S0"])
    path, run = str(tmp_path / "two.yaml"), api.spec.run_dir

    def suggest(*args: str):
        res = CliRunner().invoke(app, ["suggest", path, *args], env={"COLUMNS": "300"})
        return res.exit_code, " ".join(res.output.split())

    (run / "lab-suggestions.xlsx").mkdir()
    code, said = suggest("-n", "1")
    assert code == 0 and f"to {run / 'lab-batch-002.xlsx'}" in said, said
    (run / "lab-batch-003.xlsx").mkdir()
    code, said = suggest("-n", "1")
    assert code != 0 and "lab-batch-003.xlsx: is a folder" in said, said
    assert jn.replay(run / "journal.jsonl").lab_batches == 2  # batch 3 not journalled


def test_suggest_keeps_a_pending_sheet_whose_composition_notes_or_renamed_columns_the_lab_filled(tmp_path):
    """The pending sheet was kept only for a value under a template property or uncertainty
    header: `dm-hpc suggest` wrote it again over the composition the lab made (the Instructions
    say to overwrite it), over a notes column, and over values typed under a header the lab
    renamed ('Hardness (GPa)'), all blank again. Now any cell of a sample still awaited that
    differs from what the engine wrote keeps the sheet; a sheet opened and saved unchanged, or
    one whose samples are all answered, is written as before."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app
    from tests.campaign.helpers import hardness_density_lab

    api = hardness_density_lab(tmp_path, ["S0", "S1"])
    path, pending = str(tmp_path / "two.yaml"), api.spec.run_dir / "lab-suggestions.xlsx"

    def suggest():
        res = CliRunner().invoke(app, ["suggest", path], env={"COLUMNS": "300"})
        return res.exit_code, " ".join(res.output.split())

    assert suggest()[0] == 0
    written = openpyxl.load_workbook(pending)
    header = [c.value for c in written["samples"][1]]
    written.save(pending)  # opened and saved, nothing typed: written again
    assert suggest()[0] == 0
    edits = {"made": lambda ws: ws.cell(row=3, column=header.index("composition:Cu [at_frac]") + 1, value=0.52),
             "notes": lambda ws: ws.cell(row=2, column=len(header) + 1, value="furnace booked for Monday"),
             "renamed": lambda ws: (ws.cell(row=1, column=header.index("property:hardness [GPa]") + 1, value="Hardness (GPa)"),
                                    ws.cell(row=2, column=header.index("property:hardness [GPa]") + 1, value=5.1))}
    for what, edit in edits.items():
        assert suggest()[0] == 0, what
        book = openpyxl.load_workbook(pending)
        edit(book["samples"])
        book.save(pending)
        typed = [[c.value for c in row] for row in openpyxl.load_workbook(pending)["samples"].iter_rows()]
        code, said = suggest()
        assert code != 0 and "not yet ingested" in said and ("S1" if what == "made" else "S0") in said, (what, said)
        assert [[c.value for c in row] for row in openpyxl.load_workbook(pending)["samples"].iter_rows()] == typed, what
        pending.unlink()


def test_a_process_step_keeps_the_sheet_inside_the_box(tmp_path):
    """A review: a box of 425-875 degC on a 50-degree step wrote a suggestion at 425 as 400 on the
    sheet (round half to even), and 400 came back and was stored; a step wider than the box
    validated and put 0 or 1000 on the sheets."""
    from dm_hpc.campaign.labsheet import shown_process

    path = write_campaign(tmp_path, name="step", space={"elements": {"Cu": [0, 1], "Ni": [0, 1]},
                          "process": {"annealing_temperature": {"low": 425, "high": 875, "unit": "degC",
                                                                "precision": 50}}})
    campaign = load_campaign(path)
    for written, shown in ((425, 450), (875, 850), (600, 600), (612, 600), (440, 450)):
        assert shown_process(campaign, "annealing_temperature", written + 273.15)[1] == shown
    data = yaml.safe_load(path.read_text())
    data["space"]["process"]["annealing_temperature"]["precision"] = 1000
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CampaignError, match="precision 1000 leaves no value on its grid"):
        load_campaign(path)
