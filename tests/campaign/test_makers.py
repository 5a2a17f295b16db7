"""Issue 20 item 5, "What must show": a campaign whose calculation fidelity is atomate2's own
force-field Maker (``ForceFieldRelaxMaker`` with CHGNet, weights shipped in its wheel) runs on the
real local Slurm, and its records carry the Maker's name and version."""
from __future__ import annotations

import importlib.metadata
import os
import subprocess

import pytest

from dm_hpc.campaign import load_campaign
from dm_hpc.campaign import journal as jn
from dm_hpc.data import Store
from tests.conftest import REPO

from .helpers import dm, write_campaign

pytest.importorskip("chgnet", reason="chgnet not installed (pip install 'dm-hpc[mlip]')")

CHGNET_RELAX = {
    "maker": "atomate2.forcefields.jobs:ForceFieldRelaxMaker",
    "kwargs": {"force_field_name": "CHGNet", "steps": 100, "relax_kwargs": {"fmax": 0.1}},
    "outputs": {"energy_per_atom": {"path": "output.energy_per_atom", "unit": "eV/atom"},
                "volume_per_atom": {"path": "structure.lattice.volume", "unit": "angstrom**3/atom",
                                    "per_atom": True}},
}


@pytest.mark.slurm
def test_campaign_with_an_atomate2_force_field_maker_runs_on_slurm(tmp_path):
    up = subprocess.run(["bash", str(REPO / "slurm" / "start-local.sh")], capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    path = write_campaign(
        tmp_path, name=f"ffmaker{os.getpid()}", calculations=3, lab=False,
        space={"elements": {"Cu": [0, 1], "Ni": [0, 1]}},  # 4-atom fcc cells: Cu4 ... Ni4
        objectives=[{"property": "energy_per_atom", "goal": "min"}],
        fidelities=[{"name": "chgnet-relax", "kind": "calculation", "method": "chgnet", "walltime": "10m",
                     "settings": {"n_atoms": 4}, "maker": CHGNET_RELAX}],
        runner={"kind": "slurm", "site": str(REPO / "configs/sites/local.yaml"), "max_in_flight": 2},
        learning={"initial_points": 3, "refit_every": 1, "batch_size": 1})
    campaign = load_campaign(path)
    res = dm("run", str(path), "--quiet", timeout=1500)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    with Store.open(campaign.store) as store:
        records = list(store.records(campaign=campaign.name))
    assert len(records) == 3, [ev for ev in jn.Journal.events(campaign.run_dir / "journal.jsonl")][-5:]
    want = {"atomate2": importlib.metadata.version("atomate2"), "chgnet": importlib.metadata.version("chgnet"),
            "jobflow": importlib.metadata.version("jobflow")}
    for r in records:
        p = r.provenance
        assert p.method == "maker:ForceFieldRelaxMaker@chgnet" and p.source.value == "computed"
        assert (p.code, p.code_version) == ("atomate2.forcefields.jobs:ForceFieldRelaxMaker", want["atomate2"])
        assert p.extra["versions"] == want and p.job_id  # a Slurm job id
        values = {v.name: v.value for v in r.properties}  # every mapped output, not only the objective
        # CHGNet on Cu-Ni cells: between Cu (~-4.1 eV/atom, 11.8 A^3) and Ni (~-5.6 eV/atom, 10.9 A^3)
        assert -6.0 < values["energy_per_atom"] < -3.5 and 10.0 < values["volume_per_atom"] < 12.5
    # the tasks were real Slurm jobs, named for the campaign and the fidelity
    out = subprocess.run(["squeue", "-t", "all", "-h", "-o", "%j"], capture_output=True, text=True).stdout
    assert campaign.name in out


def test_a_maker_fidelity_must_map_the_objectives_and_bad_fields_are_named(tmp_path):
    import yaml

    from dm_hpc.campaign import CampaignError, parse_campaign
    from dm_hpc.campaign.preflight import problems

    fid = {"name": "ff", "kind": "calculation", "method": "chgnet", "maker": CHGNET_RELAX}
    lab = {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2}
    path = write_campaign(tmp_path, fidelities=[fid, lab])  # objective: mixing_energy, not mapped
    found = problems(load_campaign(path))
    assert any(p.startswith("fidelities.ff.maker.outputs: no path for mixing_energy") for p in found), found
    data = yaml.safe_load(path.read_text())
    for maker, words in (({**CHGNET_RELAX, "maker": "atomate2 ForceFieldRelaxMaker"}, "package.module:ClassName"),
                         ({**CHGNET_RELAX, "outputs": {"energy_per_atom": {"path": "x", "unit": "kg"}}},
                          "unit 'kg' cannot be converted")):
        data["fidelities"] = [{**fid, "maker": maker}, lab]
        with pytest.raises(CampaignError, match="fidelities.0.maker") as err:
            parse_campaign(data)
        assert words in str(err.value)
