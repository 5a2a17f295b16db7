"""What an export wrote lossily before, now read back as the records it names (same ids): two
process steps or two raw materials of one name in a record, texts with spaces around them, and a
raw material stored in other units by different records. Real stores, real files, the CLI."""
from __future__ import annotations

import json

import pytest

from dm_hpc.data import MaterialRecord, Store
from dm_hpc.data.records import STORED
from dm_hpc.data.sheets import read_sheet, read_sheet_columns
from tests.data.test_export_round_trip import PROVENANCE, _cli, _made_of, _record, _refused, _same_records_back

TWICE = [
    # two anneals at other temperatures, the second one's equipment and settings its own
    _record("T1", [{"name": "anneal", "order": 1, "parameters": {"annealing_temperature": 900.0}},
                   {"name": "anneal", "order": 2, "equipment": "furnace 2", "settings": {"atmosphere": "Ar"},
                    "parameters": {"annealing_temperature": 1100.0}}],
            [{"name": "hardness", "value": 2.5}]),
    # three steps of one name at one order (the Python API's list order is the route), one without parameters
    _record("T2", [{"name": "anneal", "parameters": {"annealing_temperature": 1000.0}}, {"name": "anneal"},
                   {"name": "anneal", "parameters": {"annealing_temperature": 800.0, "annealing_time": 2.0}}],
            [{"name": "hardness", "value": 2.6}]),
    # one anneal: still written without an occurrence
    _record("T3", [{"name": "anneal", "parameters": {"annealing_temperature": 950.0}}],
            [{"name": "hardness", "value": 2.7}]),
    # one powder from two makers (another amount, another purity), and a name given twice without amounts
    _made_of("T4", [{"name": "Fe powder", "amount": {"value": 1.0, "unit": "g"}, "manufacturer": "Acme", "purity": 99.5},
                    {"name": "Fe powder", "amount": {"value": 2.0, "unit": "g"}, "manufacturer": "Bolt"},
                    {"name": "talc"}, {"name": "talc"}], composition={"Cu": 0.5, "Ni": 0.5}),
]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_two_steps_or_raw_materials_of_one_name_survive_an_export_under_the_same_ids(tmp_path, suffix):
    """Before: one column set per name, so the second anneal (or Fe powder) overwrote the first
    in the row, and T1, T2 and T4 came back as other records ('edited since it was exported?')."""
    _same_records_back(tmp_path, TWICE, suffix)
    head = (tmp_path / f"export{suffix}").read_text(encoding="utf-8").splitlines()[0] if suffix == ".csv" else ""
    if head:  # the occurrence is a segment of its own: the second anneal, the second Fe powder
        assert "process:anneal:2:annealing_temperature [K]" in head and "raw:Fe powder:2 [g]" in head, head


def test_a_lab_sheet_gives_a_second_step_of_one_name_by_its_occurrence(tmp_path):
    """Without order columns (the column door's fast path) a second anneal is a step of its
    own, at its place among the row's steps, read alike by both doors."""
    sheet = tmp_path / "lab.csv"
    sheet.write_text("sample_id,composition:Cu [at_frac],process:anneal:annealing_temperature [K],"
                     "process:anneal:2:annealing_temperature [K],raw:PLA [g],raw:PLA:2 [g],property:hardness [GPa]\n"
                     "L1,1,900,1100,1,2,2.5\nL2,1,950,,3,,2.5\n")
    want = {
        "L1": _made_of("L1", [{"name": "PLA", "amount": {"value": 1.0, "unit": "g"}},
                              {"name": "PLA", "amount": {"value": 2.0, "unit": "g"}}], {"Cu": 1.0}),
        "L2": _made_of("L2", [{"name": "PLA", "amount": {"value": 3.0, "unit": "g"}}], {"Cu": 1.0}),
    }
    want = {sid: MaterialRecord.model_validate({**json.loads(r.content_json), "process": steps})
            for (sid, r), steps in zip(want.items(), [
                [{"name": "anneal", "order": 0, "parameters": {"annealing_temperature": 900.0}},
                 {"name": "anneal", "order": 1, "parameters": {"annealing_temperature": 1100.0}}],
                [{"name": "anneal", "parameters": {"annealing_temperature": 950.0}}]])}
    assert {r.sample_id: r.record_id for r in read_sheet(sheet)} == {s: r.record_id for s, r in want.items()}
    assert sorted(read_sheet_columns(sheet).columns.ids) == sorted(r.record_id for r in want.values())


@pytest.mark.parametrize(("header", "why"), [
    ("process:anneal:0:annealing_temperature [K]", "expected"),
    ("process:anneal:1:annealing_temperature [K]", "both give"),  # the first anneal, named twice
])
def test_an_occurrence_is_a_whole_number_from_1(tmp_path, header, why):
    _refused(tmp_path, [["sample_id", "composition:Cu [at_frac]", "process:anneal:annealing_temperature [K]",
                         header, "property:hardness [GPa]"], ["S1", "1", "900", "1000", "2.5"]], header, why)


def _spaced(sample_id: str) -> dict:
    return {"composition": {"Cu": 0.5, "Ni": 0.5}, "sample_id": sample_id, "properties": [{"name": "hardness", "value": 2.5}],
            "process": [{"name": "anneal", "equipment": " furnace 3 ", "settings": {"atmosphere": " Ar "},
                         "parameters": {"annealing_temperature": 900.0}}],
            "raw_materials": [{"name": " Fe ", "amount": {"value": 1.0, "unit": "g"}, "manufacturer": "Acme ",
                               "formula": " Fe", "material_class": "metal ", "purchase_date": " 2024-03-01"}],
            "provenance": {"source": "experimental", "method": " lab", "input_hash": "abc ",
                           "contributor": " A. Person", "institution": "KIMS "}}


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_spaces_around_a_text_are_no_part_of_a_new_record(tmp_path, suffix):
    """Before: a record made in Python with ' furnace 3 ' (or 'Acme ', ' lab') kept the spaces,
    which the sheet reader trims (a lab's typing noise), so its export came back as another
    record. Intake trims them now, as the reader does: the id no longer depends on them."""
    rec = MaterialRecord.model_validate(_spaced("W1"))
    assert rec.process[0].equipment == "furnace 3" and rec.raw_materials[0].manufacturer == "Acme"
    assert rec.process[0].settings == {"atmosphere": " Ar "}  # inside a JSON text: written and read as typed
    assert rec.provenance.method == "lab" and rec.provenance.contributor == "A. Person"
    trimmed = json.loads(json.dumps(_spaced("W1")).replace(' furnace 3 ', 'furnace 3').replace('Acme ', 'Acme')
                         .replace('" Fe "', '"Fe"').replace('" Fe"', '"Fe"').replace('metal ', 'metal')
                         .replace(' 2024', '2024').replace('" lab"', '"lab"').replace('abc ', 'abc'))
    assert MaterialRecord.model_validate(trimmed).record_id == rec.record_id
    _same_records_back(tmp_path, [rec], suffix)


#: A record stored with spaces around its texts (before intake trimmed them), as its shard holds
#: it, and the id it was stored under: reading it must not change that id.
STORED_SPACED = (
    '{"content":{"composition":{"fractions":{"Cu":0.5,"Ni":0.5}},"raw_materials":[{"name":"Fe","manufacturer":"Acme ",'
    '"amount":{"value":1.0,"unit":"g"}}],"process":[{"name":"anneal","equipment":" furnace ","parameters":'
    '{"annealing_temperature":900.0}}],"properties":[{"name":"hardness","value":2.5,"unit":"GPa"}],"sample_id":"C",'
    '"provenance":{"source":"experimental","method":"lab"}},"circumstances":{"provenance":'
    '{"timestamp":"2026-12-05T22:53:18Z","extra":{}}}}')
STORED_SPACED_ID = "dm-fc1e7ce095b05cc53470"


def test_a_record_stored_with_spaces_keeps_its_id_and_its_export_says_it_reads_back_as_another(tmp_path):
    """Trimming is a rule of intake: a stored record is read as it was stored (its id is the hash
    of that), and an export names the records whose spaces a re-import would trim."""
    old = MaterialRecord.from_json(STORED_SPACED)
    assert old.record_id == STORED_SPACED_ID and old.process[0].equipment == " furnace "
    new = _record("N1", [], [{"name": "hardness", "value": 2.0}])
    with Store.open(tmp_path / "s", "a") as s:
        s.ingest([old, new])
    with Store.open(tmp_path / "s") as s:
        assert sorted(r.record_id for r in s.records()) == sorted([STORED_SPACED_ID, new.record_id])
        assert s.check().ok
    res = _cli("store", "export", str(tmp_path / "e.csv"), "--store", str(tmp_path / "s"))
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert "warning: 1 record(s) were stored before intake trimmed texts" in said and STORED_SPACED_ID in said, said
    assert "equipment ' furnace ' (spaces around it)" in said, said
    assert new.record_id not in res.stderr


UNITS = [
    _made_of("U1", [{"name": "Fe powder", "amount": {"value": 1.5, "unit": "g"}}], {"Cu": 0.5, "Ni": 0.5}),
    _made_of("U2", [{"name": "Fe powder", "amount": {"value": 0.2, "unit": "kg"}, "manufacturer": "Acme"}],
             {"Cu": 0.5, "Ni": 0.5}),
    _made_of("U3", [{"name": "Fe powder", "amount": {"value": 10.0, "unit": "wt%"}}], {"Cu": 0.5, "Ni": 0.5}),
]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_raw_material_in_other_units_by_record_survives_an_export_under_the_same_ids(tmp_path, suffix):
    """Before: one column per unit, and the import refused the file ('columns 'raw:Fe powder [g]'
    and 'raw:Fe powder [kg]' both give raw Fe powder; keep one'). A raw material's amount is
    kept in the unit it was given (the unit is part of the id: 0.2 kg is not 200 g to the hash),
    so each record's row fills the column of its unit, and a row may fill only one."""
    _same_records_back(tmp_path, UNITS, suffix)


def test_a_row_that_gives_one_raw_material_in_two_units_is_refused(tmp_path):
    _refused(tmp_path, [["sample_id", "composition:Cu [at_frac]", "raw:Fe [g]", "raw:Fe [kg]", "property:hardness [GPa]"],
                        ["S1", "1", "5", "", "2.5"], ["S2", "1", "5", "0.005", "2.5"]],
             "line 3", "Fe is given in raw:Fe [g] and raw:Fe [kg]")
