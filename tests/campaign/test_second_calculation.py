"""A campaign with two calculation fidelities (an interatomic potential and a second method, as
``campaigns/hea-turbine.yaml`` pairs CHGNet with DFT): before any record of the second exists the
model is single-fidelity, and only the first listed was ever planned, to the end of the budget
(found by review). Real EMT and CHGNet calculations, real store, real BoTorch."""
from __future__ import annotations

from collections import Counter

import pytest

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.manager import CampaignManager

from .helpers import write_campaign

pytest.importorskip("chgnet", reason="chgnet not installed (pip install 'dm-hpc[mlip]')")


def test_the_second_calculation_fidelity_gets_a_first_batch(tmp_path):
    fids = [{"name": "cheap", "kind": "calculation", "method": "emt", "cores": 1, "walltime": "5m"},
            {"name": "fine", "kind": "calculation", "method": "chgnet", "cores": 1, "walltime": "5m",
             "cost": 4, "settings": {"n_atoms": 4}}]
    path = write_campaign(tmp_path, name="two", calculations=16, lab=False, fidelities=fids,
                          space={"elements": {"Cu": [0, 1], "Ni": [0, 1], "Pd": [0, 0.5]}, "max_elements": 3},
                          learning={"initial_points": 4, "refit_every": 2, "batch_size": 2})
    campaign = load_campaign(path)
    CampaignManager(campaign, quiet=True).run()
    planned = Counter(ev["fidelity"] for ev in jn.Journal.events(campaign.run_dir / "journal.jsonl")
                      if ev["event"] == "planned")
    assert planned["fine"] >= 1 and planned["cheap"] >= 4, planned
