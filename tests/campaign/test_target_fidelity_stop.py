"""An objective's ``target`` is met by the fidelity whose values are the answer: a review found a
campaign with EMT calculations and a lab flagged ``target: true`` stopped on "objective targets met"
by a computed energy while the lab had measured nothing. Real local runner, real EMT, real store."""
import pytest

from dm_hpc import Campaign
from dm_hpc.campaign.dataset import best_values, target_best_values
from dm_hpc.data import Store
from tests.campaign.helpers import write_campaign


def test_a_computed_value_does_not_meet_a_lab_target(tmp_path):
    path = write_campaign(tmp_path, name="tgt", calculations=8,
                          objectives=[{"property": "mixing_energy", "goal": "min", "target": 1.0, "unit": "eV/atom"}],
                          fidelities=[{"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m"},
                                      {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2, "target": True}],
                          budget={"calculations": 8, "lab_experiments": 4, "core_hours_per_lab_day": 0.5})
    c = Campaign.load(path)
    summary = c.run(max_seconds=300)
    records = Store.open(c.spec.store, "r").to_dataframe()
    assert len(records) and set(records["method"]) == {"emt"}  # every EMT value meets a target of 1 eV/atom
    assert best_values(c.spec, records)["mixing_energy"] < 1.0 and target_best_values(c.spec, records) == {}
    assert "target" not in summary.reason and "calculation budget" in summary.reason
    # summary() names whose value its best is: an EMT energy is not the lab's (review, stop 46)
    shown = c.summary()
    assert shown["best mixing_energy from"] == "emt"
    assert shown["best mixing_energy [eV/atom]"] == pytest.approx(best_values(c.spec, records)["mixing_energy"])


def test_the_lab_only_flow_stops_suggesting_once_the_targets_are_met(tmp_path):
    """A review: with 250 HV measured against a target of 200 HV, ``summary()`` said "open" and
    ``suggest`` journalled another batch; only the manager's run loop asked the stopping rules."""
    from dm_hpc.api import BudgetExhausted

    spec = {"name": "tg", "store": "store", "workdir": "run", "seed": 1,
            "space": {"elements": {"Cu": [0, 1], "Ni": [0, 1]}},
            "objectives": [{"property": "hardness", "goal": "max", "unit": "HV", "target": 200}],
            "fidelities": [{"name": "lab", "kind": "experiment", "batch_size": 2}], "budget": {"lab_experiments": 20}}
    c = Campaign.from_dict(spec, base_dir=tmp_path)
    sheet = c.suggest(2)
    sheet["property:hardness [HV]"] = [150, 180]
    c.add_measurements(sheet)
    assert c.summary()["state"] == "open" and len(c.suggest(2)) == 2  # below the target: on it goes
    off = Campaign.from_dict({**spec, "name": "tg2", "stopping": {"targets_met": False}}, base_dir=tmp_path / "b")
    for camp in (c, off):
        more = camp.pending() if camp is c else camp.suggest(2)
        more["property:hardness [HV]"] = [250.0] * len(more)
        camp.add_measurements(more, confirm=list(more["sample_id"]))  # far above the model: held unless confirmed
    assert c.summary()["state"].startswith("done: objective targets met (hardness 250 HV, target 200")
    with pytest.raises(BudgetExhausted, match="objective targets are met"):
        c.suggest(2)
    assert len(off.suggest(2)) == 2  # the rule switched off: suggestions go on


def test_a_reader_of_computed_values_is_not_told_an_embargoed_lab_value_met_the_target(tmp_path):
    """A second review: the stop is judged at the target fidelity, but the portal's status judged a
    reader's view over every fidelity, so a consortium reader whose EMT energies beat the target
    was told "objective targets met", which only the embargoed lab record had shown."""
    from datetime import date

    from dm_hpc.campaign import journal as jn
    from dm_hpc.campaign import load_campaign
    from dm_hpc.campaign.stopping import TARGETS_MET
    from dm_hpc.data import MaterialRecord
    from dm_hpc.data.access import AccessLevel, AccessMap, AccessRule
    from dm_hpc.service.campaigns import CampaignDesk

    path = write_campaign(tmp_path, name="tgt", calculations=8,
                          objectives=[{"property": "mixing_energy", "goal": "min", "target": 0.0, "unit": "eV/atom"}],
                          fidelities=[{"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m"},
                                      {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2, "target": True}],
                          budget={"calculations": 8, "lab_experiments": 4, "core_hours_per_lab_day": 0.5})
    c = load_campaign(path)

    def rec(v, source, method, x):
        return MaterialRecord.model_validate({"composition": {"Cu": x, "Ni": 1 - x},
                                              "properties": [{"name": "mixing_energy", "value": v}],
                                              "provenance": {"source": source, "method": method, "campaign": "tgt"}})

    with Store.open(c.store, "a") as s:
        s.ingest([rec(-0.05, "computed", "emt", 0.3), rec(-0.02, "computed", "emt", 0.6)])
        lab = s.ingest([rec(-0.01, "experimental", "lab", 0.5)]).ids
    AccessMap(c.store).set(lab, AccessRule(AccessLevel.embargoed, date(2099, 1, 1)))
    journal = jn.Journal(c.run_dir / "journal.jsonl")
    journal.write("start")
    journal.write("stop", reason=TARGETS_MET)
    journal.close()
    desk = CampaignDesk(tmp_path)
    reader = desk._status(c, AccessLevel.consortium)
    assert reader["records"] == 2 and TARGETS_MET not in reader["state"]
    assert TARGETS_MET in desk._status(c, AccessLevel.embargoed)["state"]
