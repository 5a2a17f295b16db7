"""Issue 22 item 3, the "standard model" round trip: a registered model of one campaign (the
standard data) is exported with its training provenance, a partner campaign names the file as a
transfer source, its gain is reported, and its improved model goes back with provenance that
chains to the standard model's. Real stores, real BoTorch, the CLI as users call it.
A damaged or foreign model file is refused with the file and the problem named, never unpickled."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from dm_hpc.campaign import CampaignError, load_campaign, registry, standard
from dm_hpc.campaign.dataset import training_set
from dm_hpc.campaign.strategy import fit_model
from dm_hpc.cli import app
from dm_hpc.data import MaterialRecord, Store
from dm_hpc.learn import auto_kind

ELEMENTS = ("Cu", "Ni", "Pd")


def _surface(x: np.ndarray) -> float:
    """A mixing-energy-like surface with structure a GP needs many points to learn (eV/atom)."""
    return float(-0.1 * x[0] * x[2] + 0.02 * x[1] * x[0] + 0.05 * np.sin(6 * x[0]) * x[1])


def _records(n: int, seed: int, source: str, method: str, scale: float = 1.0, offset: float = 0.0,
             contributor: str | None = None) -> list[MaterialRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.dirichlet(np.ones(3))
        out.append(MaterialRecord.model_validate({
            "composition": dict(zip(ELEMENTS, x)),
            "properties": [{"name": "mixing_energy", "value": scale * _surface(x) + offset}],
            "provenance": {"source": source, "method": method, "contributor": contributor, "institution": "KIMS"}}))
    return out


def _campaign(tmp_path, name: str, lab: bool, **extra):
    fid = ({"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2} if lab else
           {"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m"})
    data = {"name": name, "store": f"{name}/store", "workdir": f"{name}/run", "seed": 3,
            "space": {"elements": {el: [0, 1] for el in ELEMENTS}, "max_elements": 3},
            "objectives": [{"property": "mixing_energy", "goal": "min"}], "fidelities": [fid],
            "budget": {"calculations": 8, "lab_experiments": 12}, "learning": {"initial_points": 4}, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, load_campaign(path)


@pytest.fixture(scope="module")
def standard_file(tmp_path_factory):
    """The standard campaign: 60 computed records, trained, registered and exported by the CLI."""
    tmp = tmp_path_factory.mktemp("standard")
    path, std = _campaign(tmp, "national", lab=False)
    with Store.open(std.store, "a") as store:
        store.ingest(_records(60, 0, "computed", "emt", contributor="alice"))
    version = registry.train(std)
    res = CliRunner().invoke(app, ["models", str(path), "--export", str(tmp / "national-v1.pt"),
                                   "--contributor", "National Materials Data Centre"])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "registered version of national v0001" in res.output
    return tmp / "national-v1.pt", version


def test_exported_file_carries_the_training_provenance(standard_file):
    out, version = standard_file
    file = standard.load_model_file(out)
    p = file.provenance
    # the registered version's kind: the size rule's exact GP (``learn.auto_kind``) on 60 records
    assert (p["campaign"], p["version"], p["model_kind"]) == ("national", "v0001", version.meta["surrogate"])
    assert p["model_kind"] == auto_kind(len(p["records"]["ids"]))
    assert p["records"]["sha256"] == version.meta["records_sha256"]
    assert sorted(p["records"]["ids"]) == sorted(registry.trained_on(version))
    assert len(p["records"]["ids"]) == version.meta["trained_on"]
    assert p["store"]["generation"] == version.meta["store_generation"]
    assert p["metrics"]["held_out"] == version.meta["held_out"]
    assert p["engine_version"] == version.meta["code_version"]
    credit = {c["contributor"]: c["records"] for c in p["contributors"]}
    assert credit == {"alice": version.meta["trained_on"], "National Materials Data Centre": 0}
    assert p["hyper_parameters"] and all(isinstance(v, list) for v in p["hyper_parameters"].values())
    assert p["derived_from"] == []
    assert file.features["elements"] == list(ELEMENTS) and file.properties == ["mixing_energy"]
    # the file predicts what the registered version predicts
    model, space, _ = registry.load(load_campaign(out.parent / "national.yaml"))
    X = space.featurize(np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]]))
    with torch.no_grad():
        assert torch.allclose(file.model.posterior(X).mean, model.posterior(X).mean)


def test_round_trip_partner_gains_and_exports_the_improved_model(tmp_path, standard_file):
    out, _ = standard_file
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "national.pt").write_bytes(out.read_bytes())
    # the partner's lab: the same chemistry on its own scale and offset, 8 measurements
    path, partner = _campaign(tmp_path, "partner", lab=True,
                              transfer={"from": [{"model": "models/national.pt", "label": "national"}]})
    assert partner.transfer.from_[0].model == tmp_path / "models" / "national.pt"  # relative to the file
    with Store.open(partner.store, "a") as store:
        store.ingest(_records(8, 5, "experimental", "lab-sheet", scale=1.3, offset=0.01, contributor="bob"))
    data = training_set(partner, Store.open(partner.store).to_dataframe())
    assert len(data) == 8 and data.transfer[0].model is not None  # no store record is taken by a model source
    fitted = fit_model(partner, data)
    info = fitted.transfer
    assert info["kind"] != "cold" and info["weights"]["national"] > 0.3
    assert info["loo_rmse"][info["kind"]] < 0.5 * info["loo_rmse"]["cold"]  # the standard model helps

    # the gain, as the CLI and the report say it
    res = CliRunner().invoke(app, ["transfer", "gain", str(path)])
    assert res.exit_code == 0, res.output
    assert "without sources (cold)" in res.output and f"used ({info['kind']})" in res.output
    assert "national: model file `national.pt`" in res.output and "registered version of campaign national v0001" in res.output
    ratio = float(res.output.split("LOO RMSE is ")[1].split("x")[0])
    assert ratio == pytest.approx(info["loo_rmse"]["cold"] / info["loo_rmse"][info["kind"]], rel=0.01)

    # the improved model back, with provenance chained to the standard model's
    res = CliRunner().invoke(app, ["models", str(path), "--export", str(tmp_path / "improved.pt"), "--with-transfer"])
    assert res.exit_code == 0, res.output
    assert "derived from national.pt" in res.output
    improved = standard.load_model_file(tmp_path / "improved.pt")
    national = standard.load_model_file(out)
    chain = improved.provenance["derived_from"]
    assert [(d["sha256"], d["campaign"], d["version"]) for d in chain] == [(national.sha256, "national", "v0001")]
    assert chain[0]["records"]["sha256"] == national.provenance["records"]["sha256"]
    assert improved.provenance["model_kind"] == f"transfer:{info['kind']}"
    assert improved.provenance["weights"] == pytest.approx(info["weights"])
    assert {c["contributor"] for c in improved.provenance["contributors"]} == {"bob"}
    X = fitted.space.featurize(np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3], [0.1, 0.8, 0.1]]))
    with torch.no_grad():  # the file predicts what the partner's campaign model predicts
        assert torch.allclose(improved.model.posterior(X).mean, fitted.model.posterior(X).mean, atol=1e-9)

    # ... and the improved model is a source in turn: the chain goes two deep
    path3, third = _campaign(tmp_path, "third", lab=True, transfer={"from": [{"model": "improved.pt"}]})
    with Store.open(third.store, "a") as store:
        store.ingest(_records(5, 9, "experimental", "lab-sheet", scale=1.3, offset=0.01))
    fit3 = fit_model(third, training_set(third, Store.open(third.store).to_dataframe()))
    assert set(fit3.transfer["weights"]) == {"model=improved.pt"}
    res = CliRunner().invoke(app, ["models", str(path3), "--export", str(tmp_path / "third.pt"), "--with-transfer"])
    assert res.exit_code == 0, res.output
    deep = standard.load_model_file(tmp_path / "third.pt").provenance["derived_from"][0]
    assert deep["sha256"] == improved.sha256 and deep["derived_from"][0]["sha256"] == national.sha256


def test_suggest_uses_the_transferred_model(tmp_path, standard_file):
    """`dm-hpc suggest`, `Campaign.suggest` and a run plan with ``fit_model``: the predictions a lab
    batch carries are the transfer model's, not a cold GP's."""
    from dm_hpc.api import Campaign
    from dm_hpc.learn import predict

    out, _ = standard_file
    path, partner = _campaign(tmp_path, "partner", lab=True, transfer={"from": [{"model": str(out), "label": "national"}]})
    with Store.open(partner.store, "a") as store:
        store.ingest(_records(8, 5, "experimental", "lab-sheet", scale=1.3, offset=0.01))
    table = Campaign.load(path).suggest(2)
    fitted = fit_model(partner, training_set(partner, Store.open(partner.store).to_dataframe()))
    assert fitted.transfer["kind"] != "cold" and len(table) == 2
    state = json.loads((partner.run_dir / "journal.jsonl").read_text().splitlines()[-1])
    samples = state["samples"]
    assert len(samples) == 2
    frac = np.array([[s["composition"].get(el, 0.0) for el in ELEMENTS] for s in samples])
    mean, _ = predict(fitted.model, fitted.space.featurize(frac))
    predicted = [s["predicted"]["mean"]["mixing_energy"] for s in samples]
    assert np.allclose(predicted, np.asarray(mean)[:, 0], rtol=1e-4, atol=1e-6)


class _Payload:
    """Would write a file when unpickled (what a hostile model file could do)."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_damaged_or_foreign_model_files_are_refused(tmp_path, standard_file):
    out, _ = standard_file
    good = out.read_bytes()
    cases = {
        "truncated.pt": good[: len(good) // 2],
        "text.pt": b"composition,mixing_energy\nCu,0.1\n",
        "empty.pt": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")  # a tensor file of someone else's
    with open(tmp_path / "hostile.pt", "wb") as fh:
        pickle.dump({"format": standard.FORMAT, "x": _Payload(tmp_path / "pwned")}, fh)
    torch.save({"format": standard.FORMAT, "format_version": 99}, tmp_path / "future.pt")
    expected = {"truncated.pt": "cannot be read", "text.pt": "cannot be read", "empty.pt": "cannot be read",
                "foreign.pt": "not a dm-hpc model file", "hostile.pt": "cannot be read",
                "future.pt": "format 99"}
    for name, message in expected.items():
        with pytest.raises(standard.ModelFileError, match=message) as err:
            standard.load_model_file(tmp_path / name)
        assert name in str(err.value)
    assert not (tmp_path / "pwned").exists()  # nothing of the file was run
    # PyTorch's advice to load such a file with weights_only=False (run its code) is not passed on,
    # nor its terminal escapes; the message names what the file holds
    with pytest.raises(standard.ModelFileError) as err:
        standard.load_model_file(tmp_path / "hostile.pt")
    assert "weights_only" not in str(err.value) and "\x1b" not in str(err.value)
    assert "which is never unpickled" in str(err.value)
    with pytest.raises(standard.ModelFileError, match="not found"):
        standard.load_model_file(tmp_path / "absent.pt")
    # a campaign naming such a file: `dm-hpc validate` names the field and the file
    path, _ = _campaign(tmp_path, "partner", lab=True, transfer={"from": [{"model": "hostile.pt"}]})
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code != 0 and "transfer.from.0.model" in res.output and "hostile.pt" in res.output
    assert "Traceback" not in res.output


def test_model_source_settings_are_checked(tmp_path, standard_file):
    out, _ = standard_file
    with pytest.raises(CampaignError, match="a model source takes no record filters"):
        _campaign(tmp_path, "p", lab=True, transfer={"from": [{"model": str(out), "method": "emt"}]})
    path, _ = _campaign(tmp_path, "p", lab=True, transfer={"from": [{"model": str(out), "property": "bandgap"}]})
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code != 0 and "predicts mixing_energy, not bandgap" in res.output
    res = CliRunner().invoke(app, ["models", str(out.parent / "national.yaml"), "--export", str(tmp_path / "x.pt"),
                                   "--version", "v0009"])
    assert res.exit_code != 0 and "no model version 'v0009'" in res.output


def test_each_source_alone_is_reported_beside_the_standard_model(tmp_path, standard_file):
    """Two sources: the standard model and unrelated records of the store (random values on the same
    elements). The report says what each is worth alone; the standard model alone beats cold."""
    from dm_hpc.campaign.transfer import gain, source_worth, transfer_lines

    out, _ = standard_file
    _, partner = _campaign(tmp_path, "partner", lab=True, transfer={"from": [
        {"model": str(out), "label": "national"}, {"method": "noise", "label": "unrelated"}]})
    rng = np.random.default_rng(11)
    noise = [MaterialRecord.model_validate({
        "composition": dict(zip(ELEMENTS, rng.dirichlet(np.ones(3)))),
        "properties": [{"name": "mixing_energy", "value": float(rng.normal(0, 0.05))}],
        "provenance": {"source": "computed", "method": "noise"}}) for _ in range(40)]
    with Store.open(partner.store, "a") as store:
        store.ingest(_records(8, 5, "experimental", "lab-sheet", scale=1.3, offset=0.01) + noise)
    data = training_set(partner, Store.open(partner.store).to_dataframe())
    assert len(data) == 8 and [(s.name, len(s.y)) for s in data.transfer] == [("national", 0), ("unrelated", 40)]
    fitted = fit_model(partner, data)
    alone = source_worth(fitted.transfer, partner.seed)
    cold = gain(fitted.transfer)["cold_rmse"]
    assert set(alone) == {"national", "unrelated"}
    assert alone["national"][0] != "cold" and alone["national"][1] < 0.5 * cold
    assert alone["national"][1] < alone["unrelated"][1]
    text = "\n".join(transfer_lines(partner, data, fitted))
    assert "Each source alone" in text and "| national |" in text and "| unrelated |" in text


def test_an_exported_file_says_which_access_levels_its_training_records_hold(tmp_path):
    """A user review: `models --export` shipped embargoed and restricted values inside the file
    (its training data) with nothing said, while `store export` leaves them out by default."""
    from dm_hpc.data.access import AccessLevel, AccessMap, AccessRule

    path, std = _campaign(tmp_path, "guarded", lab=False)
    with Store.open(std.store, "a") as store:
        store.ingest(_records(12, 0, "computed", "emt", contributor="alice"))
        ids = sorted(r.record_id for r in store.records())
    AccessMap(std.store).set(ids[:6], AccessRule(AccessLevel.restricted))
    AccessMap(std.store).set(ids[6:], AccessRule(AccessLevel.public))
    registry.train(std)
    res = CliRunner().invoke(app, ["models", str(path), "--export", str(tmp_path / "g.pt")])
    assert res.exit_code == 0, res.output
    levels = standard.load_model_file(tmp_path / "g.pt").provenance["access_levels"]
    trained = standard.load_model_file(tmp_path / "g.pt").provenance["records"]["ids"]
    assert levels == {k: n for k, n in (("restricted", len(set(ids[:6]) & set(trained))),
                                          ("public", len(set(ids[6:]) & set(trained)))) if n}
    assert levels["restricted"] >= 1  # at most a fifth is held out
    assert "warning" in res.output and "restricted" in res.output
    out = " ".join(res.output.split())
    assert "by access level" in out


def test_an_exported_version_says_its_clearance_and_is_refused_on_other_inputs(tmp_path):
    """The exported file copied ``clearance`` from meta.json raw: a version from before clearances
    were recorded went out as ``None``, which the registry reads as trained on every record
    (``registry.trained_clearance``). And a version trained before an element was excluded was
    exported with today's elements as its inputs, so the partner's campaign fed it a column short."""
    import json

    path, std = _campaign(tmp_path, "older", lab=False)
    with Store.open(std.store, "a") as store:
        store.ingest(_records(12, 0, "computed", "emt"))
    v = registry.train(std)
    assert v.meta["clearance"] == "embargoed"
    meta = json.loads((v.path / "meta.json").read_text())
    meta.pop("clearance")  # as versions registered before clearances were recorded
    (v.path / "meta.json").write_text(json.dumps(meta))
    res = CliRunner().invoke(app, ["models", str(path), "--export", str(tmp_path / "o.pt")])
    assert res.exit_code == 0, res.output
    assert standard.load_model_file(tmp_path / "o.pt").provenance["clearance"] == "embargoed"
    data = yaml.safe_load(path.read_text())
    data["space"]["excluded"] = ["Pd"]
    path.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(app, ["models", str(path), "--export", str(tmp_path / "p.pt")])
    assert res.exit_code == 2, res.output
    assert ("model version v0001 was trained on inputs Cu, Ni, Pd; the campaign's design space is now Cu, Ni"
            in " ".join(res.output.split())), res.output
    assert not (tmp_path / "p.pt").exists()
