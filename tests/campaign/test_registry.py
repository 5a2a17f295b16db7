"""The model registry of the periodic retraining job: versions, snapshot, metrics, rollback."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dm_hpc.campaign import load_campaign
from dm_hpc.campaign import registry
from dm_hpc.data import MaterialRecord, Store

from .helpers import write_campaign


def _records(n: int, seed: int) -> list[MaterialRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.dirichlet(np.ones(3))
        comp = {"Cu": x[0], "Ni": x[1], "Pd": x[2]}
        energy = -0.1 * x[0] * x[2] + 0.02 * x[1] * x[0]  # a smooth mixing-energy surface
        out.append(MaterialRecord.model_validate({
            "composition": comp, "properties": [{"name": "mixing_energy", "value": energy}],
            "provenance": {"source": "computed", "method": "emt"}}))
    return out


def test_train_registers_versions_with_snapshot_and_rollback(tmp_path):
    campaign = load_campaign(write_campaign(tmp_path, lab=False))
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(20, 0))
    with pytest.raises(registry.RegistryError, match="no model registered"):
        registry.load(campaign)
    v1 = registry.train(campaign)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(15, 1))
    v2 = registry.train(campaign)
    assert (v1.version, v2.version) == ("v0001", "v0002")
    assert (v1.meta["records"], v2.meta["records"]) == (20, 35)
    assert v1.meta["records_sha256"] != v2.meta["records_sha256"]
    assert v2.meta["cv_r2"]["mixing_energy"] > 0.5  # a smooth surface is learned
    assert registry.current(campaign) == "v0002"
    registry.rollback(campaign, "v0001")
    assert registry.current(campaign) == "v0001"
    model = registry.load(campaign).model  # a learn.fitted.FittedSurrogate
    assert model.train_inputs[0].shape[0] == 20  # the rolled-back model saw the first snapshot
    with torch.no_grad():
        assert model.posterior(model.train_inputs[0][:2]).mean.shape == (2, 1)
    with pytest.raises(registry.RegistryError, match="no model version 'v0007'"):
        registry.rollback(campaign, "v0007")
