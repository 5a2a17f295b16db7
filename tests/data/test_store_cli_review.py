"""`dm-hpc store query / crosscheck / export / import` at the edges a review found (stop 46):
embargoed values shown by query and crosscheck, an uncertainty that overflows on conversion
stored and then unreadable, a misspelt --property that exported nothing with exit 0, a
crosscheck --out that ended in a traceback. Real CLI in a subprocess, real HDF5 store."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dm_hpc.data import Store
from dm_hpc.data.access import AccessMap, new_rule
from tests.conftest import REPO


def dm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dm_hpc", *args], capture_output=True, text=True, cwd=REPO)


def _store(tmp_path, rows: str, header: str = "sample_id,composition:Cu [at_frac],composition:Ni [at_frac],property:hardness [GPa]"):
    sheet = tmp_path / "s.csv"
    sheet.write_text(header + "\n" + rows)
    store = tmp_path / "store"
    res = dm("store", "import", str(sheet), "--store", str(store))
    assert res.returncode == 0, res.stderr
    return store


def _embargo(store, ids=None):
    ids = ids or list(Store.open(store).to_dataframe()["record_id"])
    AccessMap(store).set(ids, new_rule("embargoed", "2099-01-01"))


def test_query_withholds_what_the_clearance_may_not_read(tmp_path):
    store = _store(tmp_path, "SECRET1,0.5,0.5,7.77\nOPEN1,0.4,0.6,3.33\n")
    secret = Store.open(store).to_dataframe().set_index("sample_id").loc["SECRET1", "record_id"]
    _embargo(store, [secret])
    out = tmp_path / "q.csv"
    res = dm("store", "query", "--store", str(store), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "7.77" not in out.read_text() and "3.33" in out.read_text()
    assert "1 above access level restricted withheld" in res.stdout
    res = dm("store", "query", "--store", str(store))
    assert "7.77" not in res.stdout and "3.33" in res.stdout
    res = dm("store", "query", "--store", str(store), "--access-level", "embargoed", "--out", str(out))
    assert "7.77" in out.read_text()
    res = dm("store", "query", "--store", str(store), "--access-level", "secret")
    assert res.returncode == 2 and "--access-level must be one of" in res.stderr and "Traceback" not in res.stderr


def test_crosscheck_leaves_out_embargoed_values_and_names_a_bad_out_path(tmp_path):
    store = _store(tmp_path, "A,0.5,0.5,7.77,labA,experimental\nB,0.5,0.5,1.11,emt,computed\n",
                   "sample_id,composition:Cu [at_frac],composition:Ni [at_frac],property:hardness [GPa],method,source")
    res = dm("store", "crosscheck", "--store", str(store), "--access-level", "embargoed")
    assert res.returncode == 0 and "7.77" in res.stdout  # the two disagree: shown with full clearance
    _embargo(store)
    res = dm("store", "crosscheck", "--store", str(store))
    assert res.returncode == 0 and "7.77" not in res.stdout and "1.11" not in res.stdout
    assert "2 record(s) above access level restricted left out" in res.stdout
    for bad in (tmp_path / "report.txt", tmp_path / "nofolder" / "r.csv"):
        res = dm("store", "crosscheck", "--store", str(store), "--access-level", "embargoed", "--out", str(bad))
        assert res.returncode == 2 and "Traceback" not in res.stderr and str(bad.name) in res.stderr


def test_a_misspelt_property_filter_is_named_and_a_negative_limit_refused(tmp_path):
    store = _store(tmp_path, "A,0.5,0.5,7.77\n")
    for command in (("export", str(tmp_path / "x.csv")), ("query",)):
        res = dm("store", *command, "--store", str(store), "--property", "hardnes")
        assert res.returncode == 2 and "'hardnes': no such property (did you mean 'hardness'?)" in res.stderr
    assert not (tmp_path / "x.csv").exists()
    res = dm("store", "export", str(tmp_path / "x.csv"), "--store", str(store), "--property", "hardness")
    assert res.returncode == 0 and "exported 1 records" in res.stdout
    res = dm("store", "query", "--store", str(store), "--limit", "-1")
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_an_uncertainty_that_overflows_once_converted_is_refused_and_the_store_stays_readable(tmp_path):
    sheet = tmp_path / "s.csv"
    sheet.write_text("sample_id,composition:Cu [at_frac],composition:Ni [at_frac],property:yield_strength [GPa],"
                     "uncertainty:yield_strength [GPa]\nA,0.5,0.5,1.0,1e306\nB,0.4,0.6,1.0,0.1\n")
    store = tmp_path / "store"
    res = dm("store", "import", str(sheet), "--store", str(store))
    assert res.returncode == 2 and "Traceback" not in res.stderr and "nothing imported" in res.stderr
    assert "'1e306': the uncertainty of yield_strength is out of range once converted to MPa" in res.stderr
    sheet.write_text(sheet.read_text().replace("1e306", "0.2"))  # the lab's correction goes in
    assert dm("store", "import", str(sheet), "--store", str(store)).returncode == 0
    s = Store.open(store)
    assert s.check().ok and sorted(r.sample_id for r in s.records()) == ["A", "B"]
    assert dm("store", "export", str(tmp_path / "x.csv"), "--store", str(store)).returncode == 0


def test_absolute_zero_is_no_process_temperature(tmp_path):
    """-273.15 degC (0 K) typed for 0 degC was stored: process temperatures are > 0 K."""
    sheet = tmp_path / "s.csv"
    sheet.write_text("sample_id,composition:Cu [at_frac],process:a:annealing_temperature [degC],"
                     "process:a:annealing_time [h],property:hardness [GPa]\nA,1,-273.15,1,1\n")
    res = dm("store", "import", str(sheet), "--store", str(tmp_path / "store"))
    assert res.returncode == 2 and "annealing_temperature 0 K (converted from [degC]) is outside the physical range (> 0" in res.stderr
    sheet.write_text(sheet.read_text().replace("-273.15", "0"))  # 0 degC is a temperature
    assert dm("store", "import", str(sheet), "--store", str(tmp_path / "store")).returncode == 0


def test_a_dot_group_in_a_decimal_comma_sheet_is_asked_about_not_read_as_a_decimal(tmp_path):
    """In a sheet whose decimal mark is ',', "1.234,5" is 1234.5, and "1.234" was read as 1.234:
    a thousands group or a decimal point, one reading is off by 1000; refused with both named."""
    header = "sample_id;composition:Cu [at_frac];composition:Ni [at_frac];property:yield_strength [MPa]\n"
    sheet = tmp_path / "s.csv"
    sheet.write_text(header + "A;0,5;0,5;1.234\nB;0,6;0,4;987,5\n")
    res = dm("store", "import", str(sheet), "--store", str(tmp_path / "store"))
    assert res.returncode == 2 and "nothing imported" in res.stderr
    assert "'1.234' in a sheet that writes ',' as its decimal mark: is it 1234 (a thousands mark) or 1,234?" in res.stderr
    sheet.write_text(header + "A;0,5;0,5;1.234,5\nB;0,6;0,4;987,5\n")
    assert dm("store", "import", str(sheet), "--store", str(tmp_path / "store")).returncode == 0
    got = Store.open(tmp_path / "store").to_dataframe().set_index("sample_id")["yield_strength"]
    assert got.to_dict() == {"A": 1234.5, "B": 987.5}


def test_raw_material_amounts_need_a_unit_of_amount_and_shares_of_one_sample_at_most(tmp_path):
    """``raw:`` columns had no unit check and no bounds: PLA 80 wt% + PBAT 70 wt%, talc 3.5 wt_frac
    and "12 bananas" of dye were stored (review, stop 46)."""
    head = "sample_id,material_class,raw:PLA [wt%],raw:PBAT [wt%],raw:talc [wt_frac],raw:dye [{dye}],property:tensile_strength [MPa]\n"
    sheet, store = tmp_path / "s.csv", str(tmp_path / "store")
    for unit, why in (("bananas", "'bananas' is not a unit"), ("MPa", "[MPa] is not an amount")):
        sheet.write_text(head.format(dye=unit) + "F1,fibre,80,10,0.05,12,55\n")
        res = dm("store", "import", str(sheet), "--store", store)
        assert res.returncode == 2 and f"column 'raw:dye [{unit}]': {why}" in res.stderr
    sheet.write_text(head.format(dye="g") + "F1,fibre,80,70,0.05,12,55\nF2,fibre,80,21,0.01,12,55\nF3,fibre,20,10,3.5,12,55\n")
    res = dm("store", "import", str(sheet), "--store", store)
    assert res.returncode == 2 and "3 problem(s), nothing imported" in res.stderr
    assert "sample 'F1': raw-material shares (raw:PLA [wt%], raw:PBAT [wt%], raw:talc [wt_frac]) make 155 % of the sample" in res.stderr
    assert "sample 'F2': raw-material shares" in res.stderr and "make 102 % of the sample" in res.stderr
    assert "value '3.5': talc is more than the whole sample (1 wt_frac)" in res.stderr
    sheet.write_text(head.format(dye="g") + "F1,fibre,80,19.5,0.005,12,55\nF2,fibre,,,,0.4,40\n")  # a dopant alone: fine
    res = dm("store", "import", str(sheet), "--store", store)
    assert res.returncode == 0, res.stderr
    amounts = {r.sample_id: {m.name: (m.amount.value, m.amount.unit) for m in r.raw_materials} for r in Store.open(store).records()}
    assert amounts["F1"]["talc"] == (0.005, "wt_frac") and amounts["F2"] == {"dye": (0.4, "g")}


def test_an_exported_calculation_read_back_into_its_store_is_the_same_record(tmp_path):
    """Every calculation the engine stores has an ``input_hash``, part of its record id; the export
    left it out, so an unedited export imported into its own store added each calculation again
    under a new id, and the user was told the rows had been edited (review, stop 46)."""
    from dm_hpc.data import MaterialRecord

    store = tmp_path / "s"
    recs = [MaterialRecord.model_validate({"composition": {"Cu": x, "Ni": 1 - x},
                                           "properties": [{"name": "mixing_energy", "value": -0.01 * (i + 1)}],
                                           "provenance": {"source": "computed", "method": "emt", "input_hash": f"h{i}abc"}})
            for i, x in enumerate((0.25, 0.5))]
    with Store.open(store, "a") as s:
        s.ingest(recs)
    out = tmp_path / "x.csv"
    assert dm("store", "export", str(out), "--store", str(store)).returncode == 0
    assert "input_hash" in out.read_text().splitlines()[0]
    res = dm("store", "import", str(out), "--store", str(store))
    assert res.returncode == 0 and res.stdout.strip() == "ingested 2 records (0 new)", res.stdout + res.stderr
    assert "edited since it was exported" not in res.stderr
    assert sorted(Store.open(store).to_dataframe()["record_id"]) == sorted(r.record_id for r in recs)


def test_a_sample_id_with_an_invisible_character_is_refused(tmp_path):
    """A right-to-left override or a zero-width space in a sample id makes it look like another
    (review, stop 46): refused on the sheet, with the character named."""
    sheet = tmp_path / "s.csv"
    for ch, name in (("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"), ("\u200b", "U+200B ZERO WIDTH SPACE")):
        sheet.write_text(f"sample_id,composition:Cu [at_frac],composition:Ni [at_frac],property:hardness [GPa]\nS1{ch}2,0.5,0.5,1\n",
                         encoding="utf-8")
        res = dm("store", "import", str(sheet), "--store", str(tmp_path / "store"))
        assert res.returncode == 2 and f"a sample id must not contain invisible characters ({name})" in res.stderr
    sheet.write_text("sample_id,composition:Cu [at_frac],composition:Ni [at_frac],property:hardness [GPa]\nProbe-Ä1,0.5,0.5,1\n",
                     encoding="utf-8")
    assert dm("store", "import", str(sheet), "--store", str(tmp_path / "store")).returncode == 0  # letters are fine


def test_a_record_stored_before_a_range_was_tightened_still_reads_back(tmp_path, monkeypatch):
    """Ranges are rules of intake, and a store is never rewritten: a 0 K annealing temperature
    stored before process temperatures had to be > 0 K (stop 46) must not make the store's
    records, export or check fail. Stored under the old range, read under the new one."""
    import dataclasses

    from dm_hpc.data import MaterialRecord, vocabulary

    table = vocabulary._vocabulary()[1]
    old = dataclasses.replace(table["annealing_temperature"], positive=False, minimum=0.0)
    record = {"composition": {"Cu": 1.0}, "process": [{"name": "a", "parameters": {"annealing_temperature": 0.0}}],
              "properties": [{"name": "hardness", "value": 1.0}], "provenance": {"source": "experimental", "method": "lab"}}
    with monkeypatch.context() as m:
        m.setitem(table, "annealing_temperature", old)
        with Store.open(tmp_path / "s", "a") as s:
            s.ingest([MaterialRecord.model_validate(record)])
    s = Store.open(tmp_path / "s")
    assert [r.process[0].parameters for r in s.records()] == [{"annealing_temperature": 0.0}]
    assert s.check().ok
    assert dm("store", "export", str(tmp_path / "x.csv"), "--store", str(tmp_path / "s")).returncode == 0
    with pytest.raises(ValueError, match="annealing_temperature 0 K"):  # a new record of it is still refused
        MaterialRecord.model_validate(record)


def test_todays_checks_leave_what_they_should_alone(tmp_path):
    """Today's own review: the overflow check refused an uncertainty beside 'not made' in a
    converted unit; the dot-group rule refused 0.125; string fractions raised a TypeError; any
    frame column passed as a --property; ``dm-hpc predict --from`` read '1.050' as 1.05."""
    from dm_hpc.data import MaterialRecord
    from dm_hpc.data.sheetfiles import parse_number

    sheet = tmp_path / "s.csv"
    sheet.write_text("sample_id;composition:Cu [at_frac];composition:Ni [at_frac];property:yield_strength [GPa];"
                     "uncertainty:yield_strength [GPa]\nS1;0,5;0,5;not made;0,01\nS2;0,125;0,875;0,3;0,01\n")
    res = dm("store", "import", str(sheet), "--store", str(tmp_path / "store"))
    assert res.returncode == 0, res.stderr
    assert sorted(r.sample_id for r in Store.open(tmp_path / "store").records()) == ["S2"]
    with pytest.raises(ValueError, match="is it 1050 \\(a thousands mark\\) or 1,050"):
        parse_number("1.050", ",")
    assert parse_number("0.125", ",") == 0.125
    from dm_hpc.data.sheets import _numbers_in  # a column named after a property holds numbers: "1.234" is one
    import pandas as pd

    assert _numbers_in(pd.DataFrame({"h": ["1.234"]}), "h") and not _numbers_in(pd.DataFrame({"h": ["pycnometer"]}), "h")
    with pytest.raises(ValueError, match="fractions sum to 0.6, not 1"):
        MaterialRecord.model_validate({"composition": {"fractions": {"Cu": "0.3", "Ni": "0.3"}},
                                       "properties": [{"name": "hardness", "value": 1}],
                                       "provenance": {"source": "experimental", "method": "lab"}})
    for column in ("x_Cu", "method", "yield_strength_std"):
        res = dm("store", "query", "--store", str(tmp_path / "store"), "--property", column)
        assert res.returncode == 2 and "no such property" in res.stderr
