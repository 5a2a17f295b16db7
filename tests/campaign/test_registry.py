"""The model registry of the periodic retraining job: versions, snapshot, metrics, rollback."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dm_hpc.campaign import load_campaign
from dm_hpc.campaign import registry
from dm_hpc.data import MaterialRecord, Store

from .helpers import write_campaign


def _records(n: int, seed: int, wavy: bool = False, varying_noise: bool = False) -> list[MaterialRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.dirichlet(np.ones(3))
        comp = {"Cu": x[0], "Ni": x[1], "Pd": x[2]}
        energy = -0.1 * x[0] * x[2] + 0.02 * x[1] * x[0]  # a smooth mixing-energy surface
        if wavy:  # structure that a GP learns from 60 points and a briefly trained ensemble does not
            energy += 0.05 * np.sin(9 * x[0]) * np.cos(7 * x[1])
        if varying_noise:  # measurements 20 times more precise near pure Ni/Pd than near pure Cu
            energy += (0.0002 + 0.004 * x[0] ** 2) * rng.standard_normal()
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
    held = v2.meta["held_out"]
    assert held["n"] >= 3 and held["n"] + v2.meta["trained_on"] == 35
    assert held["rmse"]["mixing_energy"] < 0.02  # a smooth surface (range ~0.03) is learned
    assert 0.0 <= held["coverage90"] <= 1.0
    assert (v2.meta["world_size"], v2.meta["device"], v2.meta["surrogate"]) == (1, "cpu", "subset-gp")
    assert v2.meta["code_version"].startswith("0.")
    assert registry.current(campaign) == "v0002"
    registry.rollback(campaign, "v0001")
    assert registry.current(campaign) == "v0001"
    model, space, _ = registry.load(campaign)
    assert model.train_inputs[0].shape[0] == v1.meta["trained_on"]  # the rolled-back model saw the first snapshot
    with torch.no_grad():
        assert model.posterior(model.train_inputs[0][:2]).mean.shape == (2, 1)
    with pytest.raises(registry.RegistryError, match="no model version 'v0007'"):
        registry.rollback(campaign, "v0007")
    # a version written by the old registry (a pickled BoTorch model) is refused with a reason
    torch.save(model, v2.path / "model.pt")
    with pytest.raises(registry.RegistryError, match="pickled models"):
        registry.load(campaign, "v0002")


def _lab_records(n: int, seed: int) -> list[MaterialRecord]:
    out = []
    for r in _records(n, seed):
        d = r.model_dump(mode="json")
        d["provenance"] = {"source": "experimental", "method": "lab-sheet"}
        d["properties"][0]["value"] += 0.01  # the lab differs from EMT by an offset
        out.append(MaterialRecord.model_validate(d))
    return out


def test_train_with_lab_data_registers_and_reloads(tmp_path):
    """Issue 9: `dm-hpc train` crashed once lab data was in (pickling a multi-task GP)."""
    campaign = load_campaign(write_campaign(tmp_path, lab=True))
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(20, 0) + _lab_records(8, 5))
    version = registry.train(campaign)
    assert version.meta["multi_fidelity"] is True
    model, space, multi = registry.load(campaign)
    assert multi is True
    with torch.no_grad():
        assert model.posterior(model.train_inputs[0][:2, :-1]).mean.shape[-2:] == (2, 1)


def _posterior_mean_in_fresh_process(campaign_file, X) -> list[float]:
    """Load the current version in a new interpreter (nothing cached) and predict at X."""
    import json
    import subprocess
    import sys

    code = ("import json, sys, torch\n"
            "from dm_hpc.campaign import load_campaign, registry\n"
            "model, _, _ = registry.load(load_campaign(sys.argv[1]))\n"
            "X = torch.tensor(json.loads(sys.argv[2]), dtype=torch.double)\n"
            "with torch.no_grad(): print(json.dumps(model.posterior(X).mean.reshape(-1).tolist()))\n")
    out = subprocess.run([sys.executable, "-c", code, str(campaign_file), json.dumps(X.tolist())],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_multi_fidelity_model_reloads_in_a_fresh_process(tmp_path):
    path = write_campaign(tmp_path, lab=True)
    campaign = load_campaign(path)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(20, 0) + _lab_records(8, 5))
    registry.train(campaign)
    model, space, _ = registry.load(campaign)
    X = space.featurize(np.array([[0.5, 0.3, 0.2], [0.2, 0.7, 0.1]]))
    with torch.no_grad():
        here = model.posterior(X).mean.reshape(-1).tolist()
    assert np.allclose(_posterior_mean_in_fresh_process(path, X), here, atol=1e-9)


def test_cli_train_models_json_promote_and_if_new_data(tmp_path):
    import json

    from .helpers import dm

    path = write_campaign(tmp_path, lab=False)
    campaign = load_campaign(path)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(20, 0))
    first = dm("train", str(path))
    assert first.returncode == 0, first.stderr
    assert "90 %-interval coverage" in first.stdout and "registered v0001" in first.stdout
    same = dm("train", str(path), "--if-new-data")
    assert same.returncode == 0 and "nothing trained" in same.stdout
    assert [v.version for v in registry.versions(campaign)] == ["v0001"]
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(6, 9))
    assert "registered v0002" in dm("train", str(path), "--if-new-data").stdout
    listed = json.loads(dm("models", str(path), "--json").stdout)
    assert [(v["version"], v["current"], v["world_size"]) for v in listed] == [("v0001", False, 1), ("v0002", True, 1)]
    assert {"records_sha256", "held_out", "device", "code_version"} <= set(listed[0])
    # the table says how many records each version was trained on, beside how many it had (an export
    # names the trained rows; a user review met 875 listed and 701 exported without a word)
    shown = dm("models", str(path)).stdout
    assert f"{listed[1]['records']} ({listed[1]['trained_on']})" in shown, shown
    assert dm("models", str(path), "--promote", "v0001").returncode == 0
    assert registry.current(campaign) == "v0001"
    bad = dm("models", str(path), "--rollback", "v0009")
    assert bad.returncode != 0 and "no model version 'v0009'" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr
    assert registry.current(campaign) == "v0001"  # a refused switch changes nothing
    wrong = dm("train", str(path), "--surrogate", "nosuch")
    assert wrong.returncode != 0 and "--surrogate must be one of" in wrong.stderr + wrong.stdout
    assert "Traceback" not in wrong.stderr and len(registry.versions(campaign)) == 2


def test_cli_trains_the_ensemble_on_two_local_ranks(tmp_path):
    import json

    from .helpers import dm

    path = write_campaign(tmp_path, lab=False)
    campaign = load_campaign(path)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(60, 2))
    out = dm("train", str(path), "--ranks", "2", "--surrogate", "ensemble", "--epochs", "2")
    assert out.returncode == 0, out.stderr
    assert "2 rank(s) on cpu" in out.stdout
    meta = json.loads(dm("models", str(path), "--json").stdout)[-1]
    assert (meta["world_size"], meta["surrogate"], meta["device"]) == (2, "ensemble", "cpu")
    assert meta["held_out"]["n"] > 0 and 0.0 <= meta["held_out"]["coverage90"] <= 1.0
    model, space, _ = registry.load(campaign)
    with torch.no_grad():
        assert model.posterior(space.featurize(np.array([[0.3, 0.3, 0.4]]))).mean.shape == (1, 1)


@pytest.mark.slurm
def test_retraining_through_slurm_runs_two_ranks_with_srun(tmp_path):
    """`sbatch slurm/retrain.sbatch` on the real local Slurm: srun starts two ranks of `dm-hpc train`."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    from .helpers import dm

    up = subprocess.run(["bash", str(REPO / "slurm" / "start-local.sh")], capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    path = write_campaign(tmp_path, lab=False)
    campaign = load_campaign(path)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(60, 4))
    log = tmp_path / "retrain.out"
    env = {**os.environ, "DM_HPC_PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    job = subprocess.run(["sbatch", "--wait", "--ntasks=2", "--time=00:10:00", f"--output={log}",
                          f"--chdir={REPO}", str(REPO / "slurm" / "retrain.sbatch"), str(path), "--surrogate", "ensemble",
                          "--epochs", "2"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert job.returncode == 0, job.stdout + job.stderr + (log.read_text() if log.exists() else "")
    text = log.read_text()
    assert "2 rank(s) on cpu" in text and "90 %-interval coverage" in text
    meta = json.loads(dm("models", str(path), "--json").stdout)
    assert [(m["version"], m["world_size"], m["surrogate"]) for m in meta] == [("v0001", 2, "ensemble")]
    # the nightly line: nothing new, nothing trained
    again = subprocess.run(["sbatch", "--wait", "--ntasks=2", "--time=00:10:00", f"--output={log}",
                            f"--chdir={REPO}", str(REPO / "slurm" / "retrain.sbatch"), str(path), "--if-new-data"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "nothing trained" in log.read_text()
    assert len(registry.versions(campaign)) == 1


def test_training_ranks_leave_without_interpreter_finalisation(tmp_path):
    """Two `dm-hpc train` ranks (torchrun's variables) end by `exit_rank`, not by Python's finalisation.

    DDP keeps gloo's threads alive after `destroy_process_group`; finalising the interpreter
    beside them aborted rank 1 under `srun` in CI ("terminate called without an active
    exception") after rank 0 had registered the model. The atexit marker shows which way each
    rank left: it runs only when the interpreter is finalised.
    """
    import os
    import socket
    import subprocess
    import sys

    from tests.conftest import REPO

    path = write_campaign(tmp_path, lab=False)
    with Store.open(load_campaign(path).store, "a") as store:
        store.ingest(_records(60, 4))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("import atexit, runpy, sys; atexit.register(print, 'interpreter finalised', flush=True); "
            f"sys.argv = ['dm-hpc', 'train', {str(path)!r}, '--surrogate', 'ensemble', '--epochs', '2']; "
            "runpy.run_module('dm_hpc', run_name='__main__')")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RANK": str(r),
                                   "WORLD_SIZE": "2", "LOCAL_RANK": str(r), "MASTER_ADDR": "127.0.0.1",
                                   "MASTER_PORT": str(port)})
             for r in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "2 rank(s) on cpu" in outs[0] and "registered v0001" in outs[0]
    assert not any("interpreter finalised" in out for out in outs), outs


def test_a_worse_retraining_is_registered_as_a_candidate_and_says_why(tmp_path):
    """Issue 20: a 2-rank retraining replaced the current GP by a worse ensemble, automatically."""
    import json

    from .helpers import dm

    path = write_campaign(tmp_path, lab=False)
    campaign = load_campaign(path)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(80, 2, wavy=True))
    assert dm("train", str(path)).returncode == 0  # v0001: the exact GP, current
    # an ensemble trained for one pass over 60-odd rows: far worse than the GP on a wavy surface
    worse = dm("train", str(path), "--surrogate", "ensemble", "--epochs", "1", "--if-new-data")
    assert "nothing trained" in worse.stdout  # same records: the nightly job does nothing
    worse = dm("train", str(path), "--surrogate", "ensemble", "--epochs", "1")
    assert worse.returncode == 0, worse.stderr  # the scheduled job did not fail: it declined
    text = " ".join(worse.stdout.split())
    assert "NOT PROMOTED: v0002 is a candidate; the current model stays v0001" in text, text
    assert "worse than current v0001 beyond noise in RMSE of mixing_energy" in text
    assert "change of kind from the current subset-gp" in text and "paired bootstrap" in text
    assert registry.current(campaign) == "v0001"
    listed = json.loads(dm("models", str(path), "--json").stdout)
    decision = listed[1]["promotion"]
    assert decision["promoted"] is False and decision["compared_with"] == "v0001"
    assert decision["comparison"]["rmse_interval"][0][0] > 0  # the whole interval above zero
    assert decision["comparison"]["n"] == listed[0]["held_out"]["n"]  # the same held-out points
    # a person may still promote it, and is told what happened
    said = dm("models", str(path), "--promote", "v0002")
    assert "v0002 is now the current model version, was v0001" in " ".join(said.stdout.split())
    assert registry.current(campaign) == "v0002"


def test_ranks_on_too_little_data_fall_back_and_keep_the_kind(tmp_path):
    """Issue 20: `--ranks 2` on 20 records ended in a traceback, and switched GP -> ensemble unsaid."""
    from .helpers import dm

    path = write_campaign(tmp_path, lab=False)
    campaign = load_campaign(path)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(20, 0))
    gp = dm("train", str(path), "--ranks", "2")
    assert gp.returncode == 0 and "Traceback" not in gp.stderr, gp.stderr
    text = " ".join(gp.stdout.split())
    assert "subset-gp is an exact GP, which does not split across ranks: trained on 1 of 2 ranks" in text
    assert registry.latest(campaign).meta["surrogate"] == "subset-gp"
    ens = dm("train", str(path), "--ranks", "2", "--surrogate", "ensemble", "--epochs", "2")
    assert ens.returncode == 0 and "Traceback" not in ens.stderr, ens.stderr
    text = " ".join(ens.stdout.split())
    assert "training rows are too few for 2 ranks (at least 16 per rank): trained on 1 rank(s)" in text
    meta = registry.latest(campaign).meta
    assert (meta["surrogate"], meta["world_size"], meta["requested_ranks"]) == ("ensemble", 1, 2)
    # a change of kind with too few held-out records to compare is not promoted
    assert "NOT PROMOTED" in text and "without evidence that it is no worse" in text
    assert registry.current(campaign) == "v0001"
    again = dm("models", str(path), "--rollback", "v0001")
    assert again.returncode == 0 and "v0001 is already the current model version; nothing changed" in \
        " ".join(again.stdout.split())


def test_a_version_records_its_clearance_and_is_served_only_at_or_above_it(tmp_path):
    """Issue 18: a model trained at clearance consortium never saw the embargoed record, says so
    in meta.json, lists what it was trained on, and a public caller may not load it."""
    from datetime import date

    from dm_hpc.data.access import AccessLevel, AccessMap, AccessRule

    campaign = load_campaign(write_campaign(tmp_path, lab=False))
    records = _records(12, 3)
    with Store.open(campaign.store, "a") as store:
        store.ingest(records)
    hidden = records[0].record_id
    AccessMap(campaign.store).set([hidden], AccessRule(AccessLevel.embargoed, date(2999, 1, 1)))
    v = registry.train(campaign, registry.TrainOptions(clearance=AccessLevel.consortium))
    assert v.meta["clearance"] == "consortium" and v.meta["records"] == 11
    trained = registry.trained_on(v)
    assert hidden not in trained and len(trained) == v.meta["trained_on"]
    registry.load(campaign, clearance=AccessLevel.consortium)
    with pytest.raises(registry.RegistryError, match="clearance public may not use it"):
        registry.load(campaign, clearance=AccessLevel.public)
    everything = registry.train(campaign)
    assert everything.meta["clearance"] == "embargoed" and everything.meta["records"] == 12
    with pytest.raises(registry.RegistryError, match="up to embargoed"):
        registry.load(campaign, clearance=AccessLevel.restricted)


def test_a_campaign_with_fewer_records_than_a_held_out_set_trains(tmp_path):
    """Below MIN_RECORDS_FOR_TEST nothing is held out; the empty test set once crashed the
    training (a reshape of zero rows to an unknown width)."""
    campaign = load_campaign(write_campaign(tmp_path, lab=False))
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(registry.MIN_RECORDS_FOR_TEST - 4, 5))
    v = registry.train(campaign)
    assert v.meta["held_out"]["n"] == 0 and v.meta["trained_on"] == registry.MIN_RECORDS_FOR_TEST - 4
    # nothing held out: the table shows no figure, not 'mixing_energy nan' and 'nan%' (a user trial)
    from .helpers import dm

    shown = dm("models", str(tmp_path / "t.yaml")).stdout
    assert "v0001" in shown and "nan" not in shown.lower(), shown


def test_auto_trains_what_fit_surrogate_auto_fits_above_gp_max_points(tmp_path):
    """Issue 23: above GP_MAX_POINTS rows `dm-hpc train` still trained the calibrated ensemble, whose
    latent intervals cover the truth half as often as they claim, while fit_surrogate(kind="auto")
    (what proposals use) had moved to the subset GP: two size rules. There is one now, auto_kind."""
    from botorch.models import SingleTaskGP

    from dm_hpc.learn import GP_MAX_POINTS, auto_kind

    campaign = load_campaign(write_campaign(tmp_path, lab=False))
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(GP_MAX_POINTS * 5 // 4 + 300, 0))  # a fifth is held out
    version = registry.train(campaign)
    assert version.meta["trained_on"] > GP_MAX_POINTS
    assert version.meta["surrogate"] == auto_kind(version.meta["trained_on"]) == "subset-gp"
    model, _, _ = registry.load(campaign)
    assert isinstance(model, SingleTaskGP) and model.train_inputs[0].shape[-2] == GP_MAX_POINTS
    held = version.meta["held_out"]
    assert held["rmse"]["mixing_energy"] < 0.005 and 0.5 <= held["coverage90"] <= 1.0


def test_a_model_with_a_noise_level_per_row_is_registered_and_reloaded(tmp_path):
    """Issue 23: above GP_MAX_POINTS rows the subset GP models noise that varies over the inputs
    (``learn.hetero``); the registry saves it and serves the same model back."""
    from dm_hpc.learn import GP_MAX_POINTS
    from dm_hpc.learn.hetero import is_heteroscedastic

    campaign = load_campaign(write_campaign(tmp_path, lab=False))
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(GP_MAX_POINTS * 5 // 4 + 600, 3, varying_noise=True))  # a fifth is held out
    version = registry.train(campaign)
    assert version.meta["surrogate"] == "subset-gp"
    first, _, _ = registry.load(campaign)
    again, _, _ = registry.load(campaign)
    assert is_heteroscedastic(first) and first.train_inputs[0].shape[-2] == GP_MAX_POINTS
    X = first.train_inputs[0][:200]  # transformed inputs: the posterior's own; any 200 points will do
    X = first.input_transform.untransform(X)
    with torch.no_grad():
        for noise in (False, True):
            a, b = first.posterior(X, observation_noise=noise), again.posterior(X, observation_noise=noise)
            assert torch.allclose(a.mean, b.mean) and torch.allclose(a.variance, b.variance)
        noise_sd = first.noise_variance(X)[:, 0].sqrt()
    cu = X[:, 0]  # the Cu fraction is the first feature (write_campaign's elements, in order)
    assert np.corrcoef(noise_sd.numpy(), (0.0002 + 0.004 * cu ** 2).numpy())[0, 1] > 0.8


def test_held_out_errors_carry_their_unit(tmp_path):
    """A user trial: `train` and `models` printed 'RMSE bulk_modulus 0.372, density 0.01994' and the
    promotion '0.1285 vs 0.372', numbers a reader had to guess the unit of."""
    import re

    from .helpers import dm

    path = write_campaign(tmp_path, lab=False)
    campaign = load_campaign(path)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(80, 2))
    first = " ".join(dm("train", str(path)).stdout.split())
    assert re.search(r"RMSE mixing_energy [0-9.e-]+ eV/atom;", first), first
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(10, 5))
    second = " ".join(dm("train", str(path), "--if-new-data").stdout.split())
    assert re.search(r"RMSE mixing_energy [0-9.e-]+ eV/atom vs [0-9.e-]+ eV/atom \(difference 90 % interval "
                     r"\[[-+0-9.e]+ eV/atom, [-+0-9.e]+ eV/atom\]\)", second), second
    listed = " ".join(dm("models", str(path)).stdout.split())
    assert len(re.findall(r"mixing_energy [0-9.e-]+ eV/atom", listed)) == 2, listed


def test_training_again_on_the_same_records_and_settings_registers_no_duplicate(tmp_path):
    """`dm-hpc train` without --if-new-data registered v0002, v0003, ... of the same records with the
    same settings: identical versions filled the registry. Now nothing is registered, the reply
    names the version that holds that model (exit 0: a cron job running `train` has nothing to do);
    --force registers one anyway, and other settings are a new version."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app

    path = write_campaign(tmp_path, lab=False)
    campaign = load_campaign(path)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(20, 0))

    def train(*args: str) -> str:
        res = CliRunner().invoke(app, ["train", str(path), *args], env={"COLUMNS": "300"})
        assert res.exit_code == 0, res.output
        return " ".join(res.output.split())

    assert "registered v0001" in train()
    again = train()
    assert "unchanged: v0001 holds the model of these 20 records with the same settings" in again, again
    assert "nothing registered" in again and "--force" in again and "registered v0002" not in again
    assert [v.version for v in registry.versions(campaign)] == ["v0001"]
    assert isinstance(registry.train(campaign), registry.Unchanged)
    assert "registered v0002" in train("--force")
    assert "registered v0003" in train("--surrogate", "gp")  # other settings: another model
    assert "unchanged: v0003" in train("--surrogate", "gp")
    assert [v.version for v in registry.versions(campaign)] == ["v0001", "v0002", "v0003"]


def test_train_says_where_it_registered_relative_to_the_working_folder(tmp_path, monkeypatch):
    """`train` printed 'registered v0001 at /tmp/.../models/v0001' where run, suggest and report
    print paths relative to the working folder (``cli.output.shown``)."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app

    path = write_campaign(tmp_path, lab=False)
    campaign = load_campaign(path)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(20, 0))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["train", path.name], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    [version] = registry.versions(campaign)
    said = " ".join(res.output.split())
    assert f"registered v0001 at {version.path.relative_to(tmp_path)}" in said and str(tmp_path) not in said, said


def test_a_commit_that_does_not_touch_the_model_code_registers_no_duplicate(tmp_path, monkeypatch):
    """The settings fingerprint held the checkout's commit (``_code_version``: 0.x+abc1234), so a
    `dm-hpc train` cron job on a git checkout registered another version of the same records after
    every `git pull`, a docs or CLI commit too. Now it holds the code that builds the model (the
    learn package, the modules that shape its data, torch/gpytorch/botorch versions): a commit
    elsewhere is unchanged, a change to that code is a new model."""
    path = write_campaign(tmp_path, lab=False)
    campaign = load_campaign(path)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(20, 0))
    assert isinstance(registry.train(campaign), registry.ModelVersion)
    monkeypatch.setattr(registry, "_code_version", lambda: "9.9.9+0123abc")  # another commit, elsewhere
    assert isinstance(registry.train(campaign), registry.Unchanged)
    monkeypatch.setattr(registry, "model_code", lambda: "another learn package")
    assert isinstance(registry.train(campaign), registry.ModelVersion)


def test_a_training_builds_the_campaigns_design_space_once(tmp_path, monkeypatch):
    """Every feature matrix of a training (train, held-out, comparison rows), the recorded inputs
    and the current version's load for the comparison each built the design space anew: a pool
    campaign's from its pool (a 100,000-row pool is a candidate matrix each time), and a pool edited
    while a version trained gave its rows features on two pools. One space per training now."""
    pool = tmp_path / "pool.csv"
    pool.write_text("property:mixing_energy [eV/atom],composition:Cu [at_frac],composition:Ni [at_frac],"
                    "composition:Pd [at_frac]\n"
                    + "".join(f"0,{a:.2f},{b:.2f},{1 - a - b:.2f}\n" for a in (0.2, 0.4, 0.6) for b in (0.1, 0.3)))
    campaign = load_campaign(write_campaign(tmp_path, lab=False, space={"pool": str(pool)}))
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(20, 0))
    assert isinstance(registry.train(campaign), registry.ModelVersion)
    built = []
    real = registry.design_space
    monkeypatch.setattr(registry, "design_space", lambda c: built.append(c.name) or real(c))
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(6, 1))
    second = registry.train(campaign)  # compared with the current version: it is loaded too
    assert isinstance(second, registry.ModelVersion), second
    assert second.meta["inputs"]["elements"] == ["Cu", "Ni", "Pd"]
    assert built == [campaign.name], built


def test_an_edited_pool_file_is_a_new_model_version(tmp_path):
    """The settings fingerprint held the pool file's path, not its contents, so `dm-hpc train` after
    the pool was edited (a row with Ag: another feature) said 'unchanged' and registered nothing.
    Now it holds the bytes of the pool and its map (``model_files``): an edited pool is a new
    version, built on the edited pool; the same bytes written again are still unchanged."""
    pool = tmp_path / "pool.csv"
    header = "property:mixing_energy [eV/atom],composition:Cu [at_frac],composition:Ni [at_frac],composition:Pd [at_frac]\n"
    rows = "".join(f"0,{a:.2f},{b:.2f},{1 - a - b:.2f}\n" for a in (0.2, 0.4, 0.6) for b in (0.1, 0.3))
    pool.write_text(header + rows)
    campaign = load_campaign(write_campaign(tmp_path, lab=False, space={"pool": str(pool)}))
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(20, 0))
    first = registry.train(campaign)
    assert isinstance(first, registry.ModelVersion)
    pool.write_text(header + rows)  # written again, the same bytes
    assert isinstance(registry.train(campaign), registry.Unchanged)
    pool.write_text(header.replace("\n", ",composition:Ag [at_frac]\n")
                    + rows.replace("\n", ",0\n") + "0,0.40,0.30,0.20,0.10\n")
    second = registry.train(campaign)
    assert isinstance(second, registry.ModelVersion), second
    assert second.meta["files_sha256"]["space.pool"] != first.meta["files_sha256"]["space.pool"]
    model, space, _ = registry.load(campaign, second.version)
    assert "Ag" in space.element_names  # the edited pool's elements are the new model's features
    assert second.meta["inputs"]["elements"] == ["Ag", "Cu", "Ni", "Pd"] and first.meta["inputs"]["elements"] == ["Cu", "Ni", "Pd"]
    # the first version takes no Ag input: loaded on today's space it was fed a column too many
    with pytest.raises(registry.RegistryError, match=r"v0001 was trained on inputs Cu, Ni, Pd; the campaign's "
                                                     r"design space is now Ag, Cu, Ni, Pd"):
        registry.load(campaign, first.version)


def test_a_training_that_holds_the_turn_looks_at_the_latest_version_once(tmp_path, monkeypatch):
    """A training in one process, and `train_local_ranks` (its ranks register in its turn), looked
    again at the latest version before registering, reading every version's meta.json once more,
    though it had held the registry's turn since its first look, so nothing could have changed.
    Now only a training that takes the turn after training (rank 0 of an srun job) looks again."""
    campaign = load_campaign(write_campaign(tmp_path, lab=False))
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(20, 0))
    looks, look = [], registry._unchanged

    def counted(*args, **kwargs):
        looks.append(1)
        return look(*args, **kwargs)

    monkeypatch.setattr(registry, "_unchanged", counted)
    assert isinstance(registry.train(campaign), registry.ModelVersion) and len(looks) == 1
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(6, 9))
    looks.clear()
    assert registry.train_local_ranks(campaign, 2).version == "v0002" and len(looks) == 1  # an exact GP: one rank


def test_the_model_fingerprint_holds_every_module_and_file_a_training_reads(tmp_path, monkeypatch):
    """``model_code`` fingerprinted the learn package and four modules named by hand. A training
    also derives analytic targets (a raw-material cost from ``compute/element_prices.yaml``) and
    builds features by ``strategy.design_space`` from the pool ``candidates`` reads: a new price
    table changed every cost-campaign's model while `dm-hpc train` said "unchanged". Every dm_hpc
    module a training has loaded is now fingerprinted or named as one that does not shape it."""
    import subprocess
    import sys

    from dm_hpc.compute import descriptors
    from tests.conftest import REPO

    assert not set(registry.MODEL_MODULES) & set(registry.NOT_MODEL_MODULES)

    script = (
        "import sys\n"
        "from tests.campaign.helpers import write_campaign\n"
        "from tests.campaign.test_registry import _records\n"
        "from dm_hpc.campaign import load_campaign, registry\n"
        "from dm_hpc.data import Store\n"
        "from pathlib import Path\n"
        f"tmp = Path({str(tmp_path)!r})\n"
        "pool = tmp / 'pool.csv'\n"
        "pool.write_text('property:mixing_energy [eV/atom],composition:Cu [at_frac],composition:Ni [at_frac],'\n"
        "                'composition:Pd [at_frac]\\n0,0.2,0.3,0.5\\n0,0.5,0.5,0\\n')\n"
        "for name, space in (('cont', None), ('pooled', {'pool': str(pool)})):\n"
        "    c = load_campaign(write_campaign(tmp, name=name, lab=False, store=str(tmp / name),\n"
        "                                     **({'space': space} if space else {})))\n"
        "    with Store.open(c.store, 'a') as s:\n"
        "        s.ingest(_records(20, 0))\n"
        "    registry.train(c)\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('dm_hpc.'))))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    loaded = set(out.stdout.split())
    assert "dm_hpc.campaign.candidates" in loaded  # the pool campaign trained too
    known = set(registry.MODEL_MODULES) | set(registry.NOT_MODEL_MODULES)
    stray = sorted(m for m in loaded - known if not m.startswith("dm_hpc.learn"))
    assert not stray, f"fingerprint these in MODEL_MODULES or name them in NOT_MODEL_MODULES: {stray}"
    assert "dm_hpc.compute.descriptors" in registry.MODEL_MODULES
    # the price table is data, not code: a new one is a new fingerprint
    before = registry.model_code()
    prices = tmp_path / "element_prices.yaml"
    prices.write_text(descriptors.PRICE_FILE.read_text().replace("source:", "source: (revised)", 1))
    monkeypatch.setattr(descriptors, "PRICE_FILE", prices)
    assert registry.model_code() != before
