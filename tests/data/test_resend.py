"""``data.resend``: a sample's values sent again, changed (refused unless --replace) or completed."""
import pytest

from dm_hpc.data import MaterialRecord, Store
from dm_hpc.data.resend import resolve_resends
from dm_hpc.data.sheetfiles import SheetError


def _rec(**props):
    return MaterialRecord.model_validate({
        "composition": {"Cu": 0.5, "Ni": 0.5}, "sample_id": "S1",
        "properties": [{"name": k, "value": v} for k, v in props.items()],
        "provenance": {"source": "experimental", "method": "lab", "campaign": "c"}})


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s", mode="a") as st:
        st.ingest([_rec(hardness=2.5)])
    with Store.open(tmp_path / "s") as st:
        yield st


def test_a_property_measured_later_completes_the_sample_without_replace(store):
    """Found by a user-edge pass: the lab sent hardness with density blank, then the same row with
    density filled in; it was refused ("hardness is already stored as 2.5 ..., this sheet says 2.5;
    use --replace"). Now the fuller record replaces the one it extends."""
    [first] = store.to_dataframe()["record_id"]
    [done] = resolve_resends(store, [_rec(hardness=2.5, density=8.9)], [2], "sheet.csv")
    assert done.provenance.supersedes == [first] and done.get_property("density").value == 8.9


def test_a_changed_value_is_still_refused_and_only_it_is_named(store):
    with pytest.raises(SheetError) as err:
        resolve_resends(store, [_rec(hardness=2.7, density=8.9)], [3], "sheet.csv")
    assert "line 3: sample 'S1': hardness is already stored as 2.5" in str(err.value) and "says 2.7" in str(err.value)
    assert "density" not in str(err.value)
    [fixed] = resolve_resends(store, [_rec(hardness=2.7, density=8.9)], [3], "sheet.csv", replace=True)
    assert fixed.provenance.supersedes


def test_a_completion_must_still_carry_every_stored_value(tmp_path):
    with Store.open(tmp_path / "s", mode="a") as st:
        st.ingest([_rec(hardness=2.5, density=8.9)])
    with pytest.raises(SheetError, match="also holds density"), Store.open(tmp_path / "s") as st:
        resolve_resends(st, [_rec(hardness=2.5, bulk_modulus=120.0)], [2], "sheet.csv")


def test_only_a_pure_completion_passes_without_replace(tmp_path):
    """Review of the completion rule: the same values with another composition, another
    uncertainty, or against two current records of the sample are changes, refused without --replace."""
    def rec(unc, **props):
        r = _rec(**props)
        return r.model_copy(update={"properties": [p.model_copy(update={"uncertainty": unc}) if p.name == "hardness"
                                                   else p for p in r.properties]})

    with Store.open(tmp_path / "s", mode="a") as st:
        st.ingest([_rec(hardness=2.5)])
    other = MaterialRecord.model_validate({**_rec(hardness=2.5, density=8.9).model_dump(mode="json"),
                                           "composition": {"Cu": 0.4, "Ni": 0.6}})
    with Store.open(tmp_path / "s") as st:
        with pytest.raises(SheetError, match="differs from this row in composition"):
            resolve_resends(st, [other], [2], "sheet.csv")
        with pytest.raises(SheetError, match="differs from this row"):
            resolve_resends(st, [rec(0.5, hardness=2.5, density=8.9)], [2], "sheet.csv")
    with Store.open(tmp_path / "s", mode="a") as st:  # a second current record of the sample (a replicate)
        st.ingest([MaterialRecord.model_validate({**_rec(hardness=2.7).model_dump(mode="json"),
                                                  "provenance": {"source": "experimental", "method": "lab2",
                                                                 "campaign": "c"}})])
    with Store.open(tmp_path / "s") as st:
        with pytest.raises(SheetError):
            resolve_resends(st, [_rec(hardness=2.5, density=8.9)], [2], "sheet.csv")


@pytest.mark.parametrize("cell, typed", [
    ("193.7", (193.7, 0.1)), ("510", (510.0, 1.0)), (" 12.30 ", (12.3, 0.01)), ("1.2e3", (1200.0, 100.0)),
    ("1,25", (1.25, 0.01)), ("1.234,5", (1234.5, 0.1)), ("\u22120.05", (-0.05, 0.01)),
    (510.0, (510.0, 1.0)), (193.7, (193.7, 0.1)),  # a workbook's number: its shortest form
    ("n/a", None), ("nan", None), (float("inf"), None), (True, None), (None, None),
])
def test_a_cell_says_its_value_and_the_place_of_its_last_digit(cell, typed):
    from dm_hpc.data.sheetfiles import typed_number

    assert typed_number(cell) == typed


def test_a_value_retyped_in_another_unit_is_the_stored_one_within_half_its_last_digit():
    """2.5 GPa is 254.929 HV: 254.9 and 255 say it, 254.8 and 256 do not; a value in the store's
    own unit is not judged here (compared as stored)."""
    from dm_hpc.data import to_canonical
    from dm_hpc.data.resend import retyped_as_stored
    from dm_hpc.data.verdicts import Decision, Verdict

    stored = _rec(hardness=2.5)
    column = "property:hardness [HV]"
    for cell, alike in (("254.9", True), ("255", True), ("254.8", False), ("256", False), ("254.929", True)):
        sent = _rec(hardness=to_canonical("hardness", float(cell), "HV"))
        converted = Verdict(Decision.accepted, 2, "converted from [HV]", "S1", column, cell, "HV")
        [out], said = retyped_as_stored([sent], [2], [converted], {"S1": stored})
        assert (out.record_id == stored.record_id) is alike and bool(said) is alike, cell
    # the store's unit: no converted verdict, nothing taken
    [out], said = retyped_as_stored([_rec(hardness=2.49)], [2], [], {"S1": stored})
    assert out.get_property("hardness").value == 2.49 and not said


def test_an_uncertainty_retyped_in_another_unit_is_judged_by_the_same_rule():
    """0.05 GPa is 5.099 HV (a difference: scale only): 5.1 and 5 say it, 5.2 and 5.09 do not."""
    from dm_hpc.data import to_canonical
    from dm_hpc.data.resend import retyped_as_stored
    from dm_hpc.data.verdicts import converted_cell

    def with_unc(rec, unc):
        return MaterialRecord.model_validate({**rec.model_dump(mode="json"), "properties": [
            {**p.model_dump(mode="json"), "uncertainty": unc} for p in rec.properties]})

    stored = with_unc(_rec(hardness=2.5), 0.05)
    scale = to_canonical("hardness", 1.0, "HV")
    for cell, alike in (("5.1", True), ("5", True), ("5.2", False), ("5.09", False)):
        sent = with_unc(_rec(hardness=2.5), float(cell) * scale)
        cells = [converted_cell(2, "S1", "uncertainty:hardness [HV]", cell, "HV")]
        [out], said = retyped_as_stored([sent], [2], cells, {"S1": stored})
        assert (out.record_id == stored.record_id) is alike and bool(said) is alike, cell
        assert not said or said[0].startswith(f"sample 'S1': uncertainty of hardness {cell} HV is the stored 5.1")
