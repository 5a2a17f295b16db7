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
