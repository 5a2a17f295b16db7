"""The jobflow Makers run the same steps as calculate() and give the same properties."""
from __future__ import annotations

import json

from jobflow import Flow, run_locally
from monty.json import MontyDecoder, MontyEncoder

from dm_hpc.compute import calculate
from workflows import AlloyPropertiesMaker, RelaxMaker


def test_flow_matches_calculate(tmp_path):
    flow = AlloyPropertiesMaker(method="emt", seed=0).make("Al0.25Cu0.25Ni0.25Pd0.25")
    responses = run_locally(flow, ensure_success=True, log=False, root_dir=tmp_path)
    props = responses[flow.jobs[-1].uuid][1].output["properties"]
    assert props == calculate("Al0.25Cu0.25Ni0.25Pd0.25", "emt", seed=0).property_dict()


def test_makers_are_data_and_round_trip_json():
    maker = RelaxMaker(method="emt", settings={"relax_fmax": 0.05})
    assert maker.name == "relax" and maker.update_kwargs({"settings": {"relax_fmax": 0.1}}).settings["relax_fmax"] == 0.1
    flow = AlloyPropertiesMaker(method="emt").make({"Cu": 1.0})
    back = json.loads(json.dumps(flow.as_dict(), cls=MontyEncoder), cls=MontyDecoder)
    assert isinstance(back, Flow) and [j.name for j in back.jobs] == ["alloy structure", "relax", "static", "properties"]


def test_a_step_is_swapped_by_giving_its_sub_maker(tmp_path):
    """atomate2 style: sub-Makers are fields; a given one is used as it is (its own settings)."""
    capped = RelaxMaker(name="capped relax", method="emt", settings={"n_atoms": 4, "relax_steps": 1})
    maker = AlloyPropertiesMaker(method="emt", seed=1, settings={"n_atoms": 4}, relax_maker=capped,
                                 properties=("energy_per_atom",))
    back = json.loads(json.dumps(maker.as_dict(), cls=MontyEncoder), cls=MontyDecoder)
    assert back.relax_maker.settings["relax_steps"] == 1  # the recipe with its sub-Makers is data
    flow = back.make({"Cu": 0.5, "Ni": 0.5})
    assert [j.name for j in flow.jobs] == ["alloy structure", "capped relax", "static", "properties"]
    responses = run_locally(flow, ensure_success=False, log=False, root_dir=tmp_path)
    # this cell needs more than one relax step (the recipe's own relax of it succeeds:
    # tests/compute/test_makers.py), so the swapped-in step's own cap is what stopped it
    assert flow.jobs[0].uuid in responses and flow.jobs[1].uuid not in responses
    assert calculate({"Cu": 0.5, "Ni": 0.5}, "emt", {"n_atoms": 4}, ["energy_per_atom"], seed=1).relax_steps > 1
