"""What the ingest reply says about a row with a property blank, and about a value sent again in
another unit (a user-tester's lab loop over a hardness [HV] + density campaign). Real campaign
file, journal, store and sheets."""
from __future__ import annotations

import pandas as pd
import pytest

from dm_hpc.api import Campaign
from dm_hpc.data import Store
from dm_hpc.data.sheetfiles import SheetError
from tests.campaign.helpers import hardness_density_lab

HV = "property:hardness [HV]"
DENSITY = "property:density [g/cm^3]"


def _campaign(tmp_path, predicted: dict | None = None) -> Campaign:
    """Hardness in HV and density, samples S1 and S2 suggested (``predicted``: canonical)."""
    return hardness_density_lab(tmp_path, ["S1", "S2"], name="hv", unit="HV", lab_experiments=4, predicted=predicted)


def _row(sid: str, hardness, density, unit: str = "HV") -> pd.DataFrame:
    return pd.DataFrame({"sample_id": [sid], "composition:Cu [at_frac]": [0.5], "composition:Ni [at_frac]": [0.5],
                         f"property:hardness [{unit}]": [hardness], DENSITY: [density]})


def test_a_held_sample_with_a_blank_property_is_not_said_to_be_stored(tmp_path):
    """A row with hardness far outside the model's interval and density blank was answered both
    'held' (not stored) and 'density blank: stored without it': the sample was not stored at all.
    The blank is said when the row is stored, i.e. once the held value is confirmed."""
    api = _campaign(tmp_path, {"mean": {"hardness": 2.0, "density": 8.5}, "std": {"hardness": 0.05, "density": 0.1}})
    held = api.add_measurements(_row("S1", 400.0, None))  # 3.92 GPa: far outside 2.0 +- 0.13
    assert held.attrs["held"] and held.empty
    assert not any("stored without" in w for w in held.attrs["warnings"]), held.attrs["warnings"]
    assert not Store.open(api.spec.store).to_dataframe().shape[0]
    confirmed = api.add_measurements(_row("S1", 400.0, None), confirm=["S1"])
    assert list(confirmed["sample_id"]) == ["S1"]
    assert any("sample S1: density blank: stored without it" in w for w in confirmed.attrs["warnings"])


def test_a_no_value_word_beside_a_measured_value_is_not_said_to_leave_the_row_pending(tmp_path):
    """'n/a' in the density cell of a row whose hardness is filled was refused with 'leave the cell
    blank ... (the row stays pending)': a blank there stores the row without density (a partial
    record), so the advice would have the lab expect nothing stored."""
    api = _campaign(tmp_path)
    with pytest.raises(SheetError) as err:
        api.add_measurements(_row("S1", 210.0, "n/a"))
    text = str(err.value)
    assert "'n/a': not a value: leave the cell blank while it is not measured" in text
    assert "the row stays pending" not in text
    assert "not made" in text


def test_a_value_sent_again_in_another_unit_is_compared_in_the_sheets_unit(tmp_path):
    """Hardness sent as 1900 MPa, then the row sent again from the campaign's HV sheet with density
    filled in and a hardness that is not 1900 MPa (195 HV): refused as a change, rightly, but told as
    'already stored as 1.9 GPa ..., this sheet says 1.9' (no unit, digits that did not differ). Both
    values are now said in the unit of the sheet's column, with the digits that tell them apart, the
    stored one in the store's unit too, and what 'unchanged' means for a value typed in another unit."""
    api = _campaign(tmp_path)
    api.add_measurements(_row("S1", 1900.0, None, unit="MPa"))
    with pytest.raises(SheetError) as err:
        api.add_measurements(_row("S1", 195.0, 8.4))
    text = str(err.value)
    assert "hardness is already stored as 193.746 HV (1.9 GPa; record dm-" in text, text
    assert "this sheet says 195 HV" in text
    assert "rounds to it at the last digit typed" in text, text
    with pytest.raises(SheetError) as err:
        api.add_measurements(_row("S1", 193.8, 8.4))  # 0.054 HV off: more than half its last digit
    text = str(err.value)
    assert "this sheet says 193.8 HV" in text and "already stored as 193.746 HV" in text, text
    # the same unit as the stored value: said as before
    api.add_measurements(_row("S2", 2.5, None, unit="GPa"))
    with pytest.raises(SheetError) as err:
        api.add_measurements(_row("S2", 2.7, 8.4, unit="GPa"))
    assert "hardness is already stored as 2.5 GPa (record dm-" in str(err.value)
    assert "this sheet says 2.7 GPa" in str(err.value)
    assert "last digit typed" not in str(err.value)  # in the store's unit a value is compared as stored


def test_a_value_sent_again_in_another_unit_is_unchanged_at_the_digits_it_was_typed_with(tmp_path):
    """Stored from 5.0 GPa, the row sent again from the campaign's HV sheet as 510 HV (5 GPa is
    509.858 HV): refused as a change ('already stored as 509.858 HV, this sheet says 510 HV; use
    --replace'), since the conversion never matches to 1e-9. A value typed in another unit than
    the store's is now the stored one when the stored value, in that unit, rounds to it at the
    last digit typed (within half a unit of it): nothing new is stored, the record keeps its id,
    and the reply says so. The same holds for a row that completes a stored sample."""
    from tests.campaign.helpers import dm

    api = _campaign(tmp_path)
    [rid] = api.add_measurements(_row("S1", 5.0, 8.4, unit="GPa"))["record_id"]
    again = api.add_measurements(_row("S1", 510.0, 8.4))
    assert again["record_id"].tolist() == [rid]
    assert len(Store.open(api.spec.store).to_dataframe()) == 1
    said = "sample 'S1': hardness 510 HV is the stored 509.9 HV (5 GPa) at the digits typed (510 +- 0.5 HV): unchanged"
    assert said in again.attrs["warnings"], again.attrs["warnings"]
    # through the CLI, from a sheet's text cells: the same
    sheet = tmp_path / "again.csv"
    _row("S1", "510", "8.4").to_csv(sheet, index=False)
    res = dm("ingest", str(tmp_path / "hv.yaml"), str(sheet))
    assert res.returncode == 0, res.stderr
    assert "ingested 1 records (0 new)" in res.stdout and f"S1 -> {rid}" in res.stdout and said in res.stdout, res.stdout
    # a stored sample completed from the HV sheet: its hardness re-typed, its density new
    api.add_measurements(_row("S2", 2.5, None, unit="GPa"))  # 254.929 HV
    done = api.add_measurements(_row("S2", 254.9, 8.9))
    df = Store.open(api.spec.store).to_dataframe()
    assert len(df) == 2 and df.set_index("sample_id").loc["S2", "hardness"] == 2.5, df
    assert done["property:density [g/cm^3]"].tolist() == [8.9]


def test_the_reply_counts_one_completion_in_the_singular(tmp_path):
    """A user trial read 'ingested 1 records (1 new, 1 completing stored samples)'."""
    from tests.campaign.helpers import dm

    api = hardness_density_lab(tmp_path, ["S0"])
    sheet = tmp_path / "first.csv"
    pd.DataFrame({"sample_id": ["S0"], "composition:Cu [at_frac]": [0.5], "composition:Ni [at_frac]": [0.5],
                  "property:hardness [GPa]": [2.5], "property:density [g/cm3]": [None]}).to_csv(sheet, index=False)
    assert dm("ingest", str(tmp_path / "two.yaml"), str(sheet)).returncode == 0
    pd.DataFrame({"sample_id": ["S0"], "composition:Cu [at_frac]": [0.5], "composition:Ni [at_frac]": [0.5],
                  "property:hardness [GPa]": [2.5], "property:density [g/cm3]": [8.9]}).to_csv(sheet, index=False)
    res = dm("ingest", str(tmp_path / "two.yaml"), str(sheet))
    assert res.returncode == 0 and "1 completing a stored sample)" in res.stdout, res.stdout + res.stderr
    records = api.records()
    (density,) = [c for c in records.columns if c.startswith("property:density")]
    assert len(records) == 1 and records[density].notna().sum() == 1  # the completion replaced the partial one


def test_the_report_does_not_say_no_lab_sheet_after_batches_written_elsewhere(tmp_path):
    """A user trial: after two batches written with `suggest --out` the report said 'lab sheets:
    none yet (`dm-hpc suggest` writes ...)'."""
    from dm_hpc.campaign.report import write_report

    api = hardness_density_lab(tmp_path, ["S0", "S1"])
    text = write_report(api.spec).read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("- lab sheets:"))
    assert "none yet" not in line and "1 batch(es) were written where `dm-hpc suggest --out` was told" in line, line
    (tmp_path / "fresh").mkdir()
    from dm_hpc.campaign import load_campaign
    from tests.campaign.helpers import write_campaign

    fresh = write_report(load_campaign(write_campaign(tmp_path / "fresh"))).read_text()  # nothing suggested
    assert "lab sheets: none yet" in fresh


def test_the_annotated_copy_marks_a_stored_rows_blank_property_as_owed(tmp_path):
    """A user trial: a partly measured row's blank density was uncoloured with no comment and its
    verdict read 'stored'; only the command line said density was still owed."""
    import openpyxl

    from tests.campaign.helpers import dm

    hardness_density_lab(tmp_path, ["S0", "S1"])
    sheet, copy = tmp_path / "partly.csv", tmp_path / "partly-annotated.xlsx"
    pd.DataFrame({"sample_id": ["S0", "S1"], "composition:Cu [at_frac]": [0.5, 0.5], "composition:Ni [at_frac]": [0.5, 0.5],
                  "property:hardness [GPa]": [2.5, None], "property:density [g/cm3]": [None, None]}).to_csv(sheet, index=False)
    res = dm("ingest", str(tmp_path / "two.yaml"), str(sheet), "--annotated", str(copy))
    assert res.returncode == 0, res.stdout + res.stderr
    ws = openpyxl.load_workbook(copy)["annotated"]
    header = [c.value for c in ws[1]]
    s0, s1 = ws[2], ws[3]
    density = header.index("property:density [g/cm3]")
    assert s0[density].comment is not None and "stored without density" in s0[density].comment.text
    assert s0[header.index("verdict")].value == "stored without density (send it once measured)"
    assert s1[density].comment is None and s1[header.index("verdict")].value == "pending"  # nothing of it stored


def test_an_uncertainty_sent_again_in_another_unit_is_unchanged_at_the_digits_it_was_typed_with(tmp_path):
    """Stored from 5.0 +- 0.1 GPa, the row sent again from the campaign's HV sheet as 510 +- 10 HV
    (0.1 GPa is 10.197 HV): the value was taken at the digits typed, the uncertainty compared
    exactly, so the sheet was refused ('differs from this row in composition, process or an
    uncertainty'). The uncertainty is now judged by the same rule: nothing new is stored, the reply
    says so; 12 HV is still a change. A completion of a stored sample alike."""
    unc = "uncertainty:hardness [HV]"
    api = _campaign(tmp_path)
    [rid] = api.add_measurements(_row("S1", 5.0, 8.4, unit="GPa").assign(**{"uncertainty:hardness [GPa]": [0.1]}))[
        "record_id"]
    again = api.add_measurements(_row("S1", 510.0, 8.4).assign(**{unc: [10.0]}))
    assert again["record_id"].tolist() == [rid]
    assert len(Store.open(api.spec.store).to_dataframe()) == 1
    said = ("sample 'S1': uncertainty of hardness 10 HV is the stored 10.2 HV (0.1 GPa) at the digits typed "
            "(10 +- 0.5 HV): unchanged")
    assert said in again.attrs["warnings"], again.attrs["warnings"]
    with pytest.raises(SheetError, match="differs from this row in composition, process or an uncertainty"):
        api.add_measurements(_row("S1", 510.0, 8.4).assign(**{unc: [12.0]}))
    # a stored sample completed from the HV sheet, its uncertainty re-typed: no replace needed
    api.add_measurements(_row("S2", 2.5, None, unit="GPa").assign(**{"uncertainty:hardness [GPa]": [0.05]}))
    done = api.add_measurements(_row("S2", 254.9, 8.9).assign(**{unc: [5.1]}))  # 0.05 GPa is 5.099 HV
    df = Store.open(api.spec.store).to_dataframe()
    assert len(df) == 2 and df.set_index("sample_id").loc["S2", "density"] == 8.9, df
    assert done["property:density [g/cm^3]"].tolist() == [8.9]
    rec = Store.open(api.spec.store).get(df.set_index("sample_id").loc["S2", "record_id"]).get_property("hardness")
    assert (rec.value, rec.uncertainty) == (2.5, 0.05)
