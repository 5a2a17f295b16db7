"""A material class's range holds every measurement that comes in (``MaterialRecord``), and the
doors that make a record from one already stored, or from a table standing in for a lab, answer
without a traceback (found by review of the change that made the range hold at ``Store.ingest``)."""
from __future__ import annotations

from pathlib import Path

from dm_hpc.campaign.emulated_lab import EmulatedLab
from dm_hpc.data import Store
from dm_hpc.data.corrections import retract
from dm_hpc.data.records import STORED, MaterialRecord

SIC = "sample_id,material_class,source,method,composition:Si [at_frac],composition:C [at_frac],property:hardness [GPa]\n"


def test_an_emulated_lab_answers_as_the_campaigns_class(tmp_path: Path):
    """A ceramic table's 35 GPa answered a ceramic campaign as a metal's measurement and raised;
    now it is the campaign's class, and a value its class refuses is named, not a traceback."""
    table = tmp_path / "sic.csv"
    table.write_text(SIC + "a,ceramic,experimental,vickers,0.5,0.5,35\n")
    sample = [{"sample_id": "s1", "composition": {"Si": 0.5, "C": 0.5}}]
    [rec] = EmulatedLab("lab", "camp", table, material_class="ceramic").answer(sample)
    assert rec.material_class.value == "ceramic" and rec.get_property("hardness").value == 35.0
    metal = EmulatedLab("lab", "camp", table)
    assert metal.answer(sample) == []
    assert "sample 's1' not answered" in metal.refused[0] and "30 GPa for a metal" in metal.refused[0]


def test_a_record_stored_before_its_range_tightened_can_be_retracted(tmp_path: Path):
    rec = MaterialRecord.model_validate({"composition": {"Si": 0.5, "C": 0.5},
                                         "properties": [{"name": "hardness", "value": 35.0}],
                                         "provenance": {"source": "experimental", "method": "lab"}}, context=STORED)
    with Store.open(tmp_path / "s", "a") as store:
        store.ingest([rec])
        retract(store, rec.record_id, "wrong sample")
        assert rec.record_id in store.superseded_ids()
