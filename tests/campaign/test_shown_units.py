"""Everything people read of a campaign is in the units its file writes, as the lab sheet is: a
lab-only process campaign whose objective is in HV and whose ageing temperature is in degC,
measured through the public API into a real HDF5 store (which keeps GPa and K)."""
from __future__ import annotations

import pytest

from dm_hpc import Campaign
from dm_hpc.campaign.report import write_report
from dm_hpc.data import to_canonical

HV = [120.0, 180.0, 150.0, 90.0]
CAMPAIGN = {
    "name": "aged",
    "seed": 1,
    "space": {"elements": {"Cu": [0.8, 1.0], "Ni": [0.0, 0.2]},
              "process": {"ageing_temperature": {"low": 350, "high": 550, "unit": "degC"}}},
    "objectives": [{"property": "hardness", "goal": "max", "unit": "HV"}],
    "constraints": ["hardness >= 100 HV"],
    "fidelities": [{"name": "lab", "kind": "experiment", "batch_size": 4}],
    "budget": {"lab_experiments": 4},
}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The campaign with four samples measured in HV (one of them below the 100 HV constraint)."""
    camp = Campaign.from_dict(CAMPAIGN, base_dir=tmp_path_factory.mktemp("aged"))
    sheet = camp.suggest(4)
    sheet["property:hardness [HV]"] = HV
    camp.add_measurements(sheet)
    return camp, sheet


def test_the_summary_gives_the_best_value_in_the_files_unit_and_names_it(measured):
    """The summary said ``best hardness [GPa] 1.77`` beside records() and best() in HV."""
    camp, _ = measured
    summary = camp.summary()
    assert summary["best hardness [HV]"] == pytest.approx(max(HV))
    assert not [k for k in summary.index if "[GPa]" in k], summary
    assert camp.best()["property:hardness [HV]"].iloc[0] == pytest.approx(summary["best hardness [HV]"])


def test_the_report_quotes_the_constraint_in_the_files_unit(measured):
    """'1 record(s) left out: ... hardness >= 0.980665 GPa' beside best values in HV."""
    camp, _ = measured
    text = write_report(camp.spec).read_text()
    assert "1 record(s) left out: they do not meet, or have no value for, hardness >= 100 HV." in text, text


def test_the_report_shows_process_parameters_in_the_sheets_unit(measured):
    """The best-records table headed the ageing temperature [K] with kelvin values while the lab
    sheet (and records()) gave it in degC."""
    camp, sheet = measured
    text = write_report(camp.spec).read_text()
    [head] = [ln for ln in text.splitlines() if ln.startswith("| objective | fidelity |")]
    assert "| ageing_temperature [degC] |" in head and "[K]" not in head
    best = sheet.loc[sheet["property:hardness [HV]"].idxmax()]
    [row] = [ln for ln in text.splitlines() if ln.startswith("| hardness (max) | lab |")]
    cells = [c.strip() for c in row.split("|")]
    celsius = best["process:treatment:ageing_temperature [degC]"]
    assert float(cells[5]) == pytest.approx(celsius, abs=0.01), row
    assert to_canonical("hardness", max(HV), "HV") < 2 and cells[6] == f"{max(HV):.6g} HV", row


#: a constraint on a property that is no objective, written in kg/m3 (the store keeps g/cm3)
DENSE = {**CAMPAIGN, "name": "dense", "constraints": ["density <= 7000 kg/m3"]}
KG = [8000.0, 6000.0, 6500.0, 8900.0]


def test_a_constraint_on_another_property_reads_in_the_unit_the_file_wrote(tmp_path):
    """'density <= 7000 kg/m3' read back as 'density <= 7 g/cm**3' in the report, and the lab
    sheet asked for density in g/cm**3: the shown-unit rule knew only objectives. Now the rule
    (CampaignSpec.shown_unit) gives a property that no objective names the unit its constraint
    was written in, and everything that reads the rule follows it."""
    camp = Campaign.from_dict(DENSE, base_dir=tmp_path)
    assert camp.spec.shown_unit("density") == "kg/m3"
    assert camp.spec.constraints[0].value == pytest.approx(7.0)  # the bound is canonical
    sheet = camp.suggest(4)
    assert "property:density [kg/m3]" in sheet.columns, list(sheet.columns)
    sheet["property:hardness [HV]"] = HV
    sheet["property:density [kg/m3]"] = KG
    camp.add_measurements(sheet)
    text = write_report(camp.spec).read_text()
    assert "2 record(s) left out: they do not meet, or have no value for, density <= 7000 kg/m3." in text, text
    assert "g/cm" not in text, text
    records = camp.records()
    assert sorted(records["property:density [kg/m3]"]) == pytest.approx(sorted(KG))
    # a constraint written in the store's unit keeps the store's spelling everywhere (no churn)
    plain = Campaign.from_dict({**DENSE, "name": "plain", "constraints": ["density <= 7 g/cm3"]}, base_dir=tmp_path)
    assert plain.spec.shown_unit("density") == "g/cm^3" and plain.spec.constraints[0].written_unit is None


@pytest.mark.parametrize("unit", ["eV", "parsec", "]"])
def test_a_written_unit_that_is_no_unit_of_the_property_is_refused_by_the_file(tmp_path, unit):
    """``written_unit`` is a field of a constraint's mapping form: a unit of another dimension or
    none pint knows passed validation and every reader of the rule (report, lab sheet, records)
    then failed with a UnitError. Refused where the file is read, as an objective's unit is."""
    from dm_hpc.campaign.spec import CampaignError

    bad = {**CAMPAIGN, "constraints": [{"property": "density", "op": "<=", "value": 9, "written_unit": unit}]}
    with pytest.raises(CampaignError, match=r"constraints\.0") as info:
        Campaign.from_dict(bad, base_dir=tmp_path)
    assert "Traceback" not in str(info.value)
    ok = {**CAMPAIGN, "constraints": [{"property": "density", "op": "<=", "value": 9, "written_unit": "kg/m3"}]}
    assert Campaign.from_dict(ok, base_dir=tmp_path).spec.shown("density", 9.0) == pytest.approx(9000.0)


def test_units_read_as_people_write_them_and_read_back(tmp_path):
    """A file wrote 'density <= 12 g/cm3' and the lab sheet's header, its Instructions and the
    report said g/cm**3 (pint's Python syntax). Everything shown says g/cm^3 (``readable_unit``);
    a sheet headed so reads back to the same unit, and an older sheet headed [g/cm**3] still reads."""
    from dm_hpc.campaign.lab import write_suggestions
    import openpyxl

    from dm_hpc.data import with_unit  # what the CLI prints a value in its canonical unit with

    camp = Campaign.from_dict({**CAMPAIGN, "name": "grams", "constraints": ["density <= 12 g/cm3"]}, base_dir=tmp_path)
    assert camp.spec.shown_unit("density") == "g/cm^3"
    sheet = camp.suggest(4)
    assert "property:density [g/cm^3]" in sheet.columns, list(sheet.columns)
    write_suggestions(camp.spec, tmp_path / "s.xlsx")
    book = openpyxl.load_workbook(tmp_path / "s.xlsx")
    instructions = " ".join(str(c.value) for r in book["Instructions"].iter_rows() for c in r)
    shown = [str(c.value) for c in book["samples"][1]] + [instructions]
    assert "density in g/cm^3" in instructions and not [s for s in shown if "**" in s], shown
    assert with_unit("density", 7.5, ".3g") == "7.5 g/cm^3"
    sheet["property:hardness [HV]"] = HV
    sheet["property:density [g/cm^3]"] = [8.0, 6.0, 6.5, 13.0]
    camp.add_measurements(sheet.iloc[:2])
    old = sheet.iloc[2:].rename(columns={"property:density [g/cm^3]": "property:density [g/cm**3]"})
    camp.add_measurements(old)  # a sheet written before: the header still reads as g/cm3
    assert sorted(camp.records()["property:density [g/cm^3]"]) == pytest.approx([6.0, 6.5, 8.0, 13.0])
    text = write_report(camp.spec).read_text()
    assert "they do not meet, or have no value for, density <= 12 g/cm^3." in text and "g/cm**" not in text, text


@pytest.mark.parametrize("unit,shown", [("J/(mol*K)", "J/(mol K)"), ("kg*m/s**2", "kg m/s^2"),
                                        ("angstrom**3/atom", "angstrom^3/atom")])
def test_a_product_of_units_is_shown_as_people_write_it_and_reads_back(unit, shown):
    """The mixing entropy was shown in J/(mol*K) (pint's Python syntax, as g/cm**3 was)."""
    from dm_hpc.data import with_unit
    from dm_hpc.data.units import parse_unit, readable_unit

    assert readable_unit(unit) == shown
    assert parse_unit(shown) == parse_unit(unit)
    if unit == "J/(mol*K)":
        assert with_unit("mixing_entropy", 11.5, ".3g") == "11.5 J/(mol K)"
