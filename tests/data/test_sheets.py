"""Lab sheets: all-or-nothing import with line-numbered errors, unchanged round trips."""
from __future__ import annotations

import pytest

from dm_hpc.data import Store
from dm_hpc.data.sheets import SheetError, read_sheet, read_sheet_columns, write_sheet

GOOD = """sample_id,composition:Fe [wt%],composition:Cr [wt%],composition:Ni [wt%],process:anneal:annealing_temperature [degC],property:yield_strength [MPa],uncertainty:yield_strength [MPa],property:density [kg/m^3]
S1,bal,18,8,1050,210,5,7900
S2,bal,17,12,1100,205,,7950
"""


def test_template_sheet_reads_with_units_converted(tmp_path):
    path = tmp_path / "lab.csv"
    path.write_text(GOOD)
    recs = read_sheet(path)
    assert [r.sample_id for r in recs] == ["S1", "S2"]
    s1 = recs[0]
    assert s1.composition.amounts("weight_percent")["Fe"] == pytest.approx(74)
    assert s1.get_property("density").value == pytest.approx(7.9)
    assert s1.get_property("yield_strength").uncertainty == 5
    assert s1.process[0].parameters["annealing_temperature"] == pytest.approx(1323.15)
    assert s1.source.value == "experimental"


def test_bad_rows_are_all_reported_and_nothing_stored(tmp_path):
    bad = GOOD + "\n".join([
        "S3,bal,18,-8,1050,210,5,7900",          # line 4: negative amount
        "S4,bal,18,8,1050,,5,7900",              # line 5: uncertainty without value
        "S1,bal,18,8,1050,210,5,7900",           # line 6: duplicate id
        "S6,bal,18,8,1050,abc,5,7900",           # line 7: not a number
    ]) + "\n"
    path = tmp_path / "lab.csv"
    path.write_text(bad)
    with pytest.raises(SheetError) as info:
        read_sheet(path)
    lines = [line for line, _ in info.value.problems]
    assert lines == [4, 5, 6, 7]
    text = str(info.value)
    assert "negative amount of Ni" in text and "duplicate sample_id 'S1'" in text and "not a number" in text


def test_wrong_units_unknown_columns_and_unknown_ids(tmp_path):
    path = tmp_path / "lab.csv"
    path.write_text("sample_id,composition:Cu [at_frac],composition:Ni [at_frac],property:density [MPa],property:colour [nm]\nA,0.5,0.5,1,2\n")
    with pytest.raises(SheetError) as info:
        read_sheet(path)
    assert "unknown property 'colour'" in str(info.value)
    path.write_text("sample_id,composition:Cu [at_frac],composition:Ni [at_frac],property:density [MPa]\nA,0.5,0.5,1\n")
    with pytest.raises(SheetError, match="line 1: .*'MPa' cannot be converted"):
        read_sheet(path)
    path.write_text("sample_id,composition:Cu [at_frac],composition:Xy [at_frac],property:density [g/cm^3]\nA,0.5,0.5,1\n")
    with pytest.raises(SheetError, match="unknown element 'Xy'"):
        read_sheet(path)
    path.write_text(GOOD)
    with pytest.raises(SheetError, match="unknown sample_id 'S2'"):
        read_sheet(path, known_ids={"S1"})


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_export_import_round_trip_is_unchanged(tmp_path, suffix):
    path = tmp_path / "lab.csv"
    path.write_text(GOOD)
    recs = read_sheet(path)
    out = write_sheet(recs, tmp_path / f"out{suffix}", basis="weight_percent")
    back = read_sheet(out)
    assert [r.record_id for r in back] == [r.record_id for r in recs]


@pytest.mark.parametrize("name, n", [("steel_strength", 312), ("oer_plate_3496", 2121), ("bandgap_dft_vs_expt", 300),
                                     ("p3ht_conductivity", 233)])
def test_shared_datasets_import_and_come_back_unchanged(tmp_path, datasets, name, n):
    from tests.conftest import REPO

    recs = read_sheet(datasets / f"{name}.csv", column_map=REPO / "configs" / "sheets" / f"{name}.yaml")
    assert len(recs) == n
    columns = read_sheet_columns(datasets / f"{name}.csv", column_map=REPO / "configs" / "sheets" / f"{name}.yaml")
    assert columns.columns.ids == [r.record_id for r in recs]  # `store import` reads the same records
    with Store.open(tmp_path / "s", "a") as store:
        assert store.ingest(recs).new == len({r.record_id for r in recs})
    exported = write_sheet(list(Store.open(tmp_path / "s").records()), tmp_path / "out.csv")
    assert {r.record_id for r in read_sheet(exported)} == {r.record_id for r in recs}
    if name == "bandgap_dft_vs_expt":  # computed and experimental rows are kept apart
        assert {r.source.value for r in recs} == {"computed", "experimental"}
        assert len(Store.open(tmp_path / "s").to_dataframe(source="computed")) == 150


def test_raw_material_records_need_no_elemental_composition(tmp_path):
    """A blend by raw material (the plan's raw material -> composition stage), P3HT-like."""
    path = tmp_path / "blend.csv"
    path.write_text("sample_id,raw:P3HT [%],raw:D2 [%],property:conductivity [S/cm]\nB1,45,55,12.77\nB2,-1,101,3\n")
    with pytest.raises(SheetError, match="line 3: .*'raw:P3HT .*negative"):
        read_sheet(path)
    path.write_text("sample_id,raw:P3HT [%],raw:D2 [%],property:conductivity [S/cm]\nB1,45,55,12.77\n")
    (rec,) = read_sheet(path)
    assert rec.composition is None and [rm.name for rm in rec.raw_materials] == ["D2", "P3HT"]
    with Store.open(tmp_path / "s", "a") as store:
        store.ingest([rec])
    df = Store.open(tmp_path / "s").to_dataframe()
    assert df.loc[0, "raw.P3HT [%]"] == 45 and df.loc[0, "conductivity"] == pytest.approx(12.77)
    assert len(Store.open(tmp_path / "s").to_dataframe(elements=["C"])) == 0
