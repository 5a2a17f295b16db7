"""Issue 22: a campaign learns from related data (campaigns/bandgap-transfer.yaml: computed band gaps
of a shared table as the source for measured ones), runs end to end with an emulated lab, and its
report shows each source's weight. Bad transfer settings are refused with the field named."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from dm_hpc.campaign import CampaignError, load_campaign
from dm_hpc.campaign.dataset import training_set
from dm_hpc.campaign.manager import CampaignManager
from dm_hpc.data import Store
from tests.conftest import REPO, load_benchmark


def _campaign(tmp_path, **changes):
    data = yaml.safe_load((REPO / "campaigns" / "bandgap-transfer.yaml").read_text())
    shared = lambda p: str((REPO / "campaigns" / p).resolve()) if (REPO / "campaigns" / p).exists() else p  # noqa: E731
    from tests.conftest import DATASETS

    table = str(DATASETS / "bandgap_dft_vs_expt.csv")
    sheet_map = str(REPO / "configs" / "sheets" / "bandgap_dft_vs_expt.yaml")
    data["space"].update(pool=table, pool_map=sheet_map)
    data["fidelities"][0].update(emulate_from=table, emulate_map=sheet_map)
    data["transfer"]["from"][0].update(table=table, table_map=sheet_map)
    data.update(store=str(tmp_path / "store"), workdir=str(tmp_path / "run"), **changes)
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    del shared
    return load_campaign(path)


def test_bandgap_campaign_transfers_from_the_computed_screen(tmp_path, datasets):
    campaign = _campaign(tmp_path, budget={"lab_experiments": 8})
    summary = CampaignManager(campaign, quiet=True).run()
    assert summary.reason.startswith("lab budget reached")
    exp = Store.open(campaign.store).to_dataframe(source="experimental", campaign=campaign.name)
    assert len(exp) >= 6
    # the emulated lab answers with measured values only (the table also has DFT rows)
    table = pd.read_csv(datasets / "bandgap_dft_vs_expt.csv")
    measured = set(table.loc[table.expt_data == 1, "bandgap"].round(6))
    assert set(exp["bandgap"].round(6)) <= measured
    data = training_set(campaign, Store.open(campaign.store).to_dataframe())
    assert [(s.name, len(s.y)) for s in data.transfer] == [("dft-screen", 150)]
    # the run planned with the model with sources: each refit journals its kind and the source's weight
    import json

    refits = [json.loads(line) for line in (campaign.run_dir / "journal.jsonl").read_text().splitlines()
              if '"refit"' in line]
    refits = [r for r in refits if r["event"] == "refit"]
    assert refits and all(set(r["transfer"]["weights"]) == {"dft-screen"} for r in refits)
    from dm_hpc.campaign.report import write_report

    text = write_report(campaign).read_text()
    assert "## Transfer" in text and "| dft-screen (bandgap) | 150 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| dft-screen"))
    float(row.rstrip(" |").rsplit("|", 1)[1])  # a weight, a number
    assert "Leave-one-out log predictive density" in text
    assert "| without sources (cold) |" in text and "Gain: the cold model's LOO RMSE is" in text
    assert (campaign.run_dir / "report" / "transfer_replay.png").stat().st_size > 0
    assert "leave-one-out predictions of the model in use" in text  # the parity plot judges that model


def test_store_query_sources_take_their_records_out_of_the_campaigns_own(tmp_path, datasets):
    from dm_hpc.data.sheets import read_sheet

    campaign = _campaign(tmp_path, transfer={"from": [{"source": "experimental", "method": "expt-literature",
                                                        "label": "literature"}]})
    store = Store.open(campaign.store, "a")
    store.ingest(read_sheet(datasets / "bandgap_dft_vs_expt.csv", column_map=REPO / "configs/sheets/bandgap_dft_vs_expt.yaml"))
    data = training_set(campaign, store.to_dataframe())
    # the 150 literature measurements would count as the lab's: they are the source's instead
    assert len(data) == 0 and data.skipped["taken by a transfer source"] == 150
    assert [(s.name, len(s.y)) for s in data.transfer] == [("literature", 150)]


@pytest.mark.parametrize("transfer, message", [
    ({"from": []}, "transfer.from"),
    ({"from": [{"label": "x"}]}, "needs campaign, method, source, elements, table or model"),
    ({"from": [{"elements": ["Xx"]}]}, "unknown element 'Xx'"),
    ({"from": [{"method": "a", "property": "bandgapp"}]}, "bandgapp"),
    ({"from": [{"method": "a"}, {"method": "a"}]}, "transfer sources must differ"),
    ({"to": []}, "transfer.to"),
])
def test_bad_transfer_settings_name_the_field(tmp_path, datasets, transfer, message):
    with pytest.raises(CampaignError, match=message):
        _campaign(tmp_path, transfer=transfer)


def test_transfer_suggest_lists_store_sources_with_their_overlap(tmp_path, datasets, monkeypatch):
    """Band gaps of two methods share the campaign's elements; OER plates and steels hold no band gap."""
    from typer.testing import CliRunner

    from dm_hpc.cli import app
    from dm_hpc.data.sheets import read_sheet

    campaign = _campaign(tmp_path, transfer=None)
    store = Store.open(campaign.store, "a")
    store.ingest(read_sheet(datasets / "bandgap_dft_vs_expt.csv", column_map=REPO / "configs/sheets/bandgap_dft_vs_expt.yaml"))
    store.ingest(read_sheet(datasets / "oer_plate_3496.csv", column_map=REPO / "configs/sheets/oer_plate_3496.yaml")[:50])
    store.close()
    res = CliRunner().invoke(app, ["transfer", "suggest", str(tmp_path / "campaign.yaml")], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "method: dft-camd" in res.output and "method: expt-literature" in res.output
    assert "jcap" not in res.output  # no band gaps there
    assert "75 of 75" in res.output  # every pool element is shared
    # piped or in a narrow terminal the line to copy under `transfer: from:` stays whole (it was cut
    # to "method: d…"); the other columns fold
    import dm_hpc.cli.transfer as transfer_cli

    monkeypatch.setattr(transfer_cli.console, "width", 60)
    res = CliRunner().invoke(app, ["transfer", "suggest", str(tmp_path / "campaign.yaml")])
    assert res.exit_code == 0, res.output
    assert "method: dft-camd" in res.output and "method: expt-literature" in res.output
    res = CliRunner().invoke(app, ["transfer", "suggest", str(tmp_path / "campaign.yaml"), "--limit", "0"])
    assert res.exit_code == 0 and "first 0 of 2" in res.output, res.output  # was a TypeError (review)


def test_source_records_with_an_element_the_campaign_lacks_enter_its_model(tmp_path, datasets):
    """Item 1, "different element sets are normal": the source's plates with Ce (an element outside
    the campaign's space) were left out before; its model is now fitted on its own elements, all
    plates, and reads a campaign plate with La left out and the rest renormalised (as the benchmark's
    ``Source.simplex`` reading and a model file do). Its GP and reading survive a saved model."""
    import torch

    from dm_hpc.campaign.model_export import _source_state
    from dm_hpc.campaign.report import write_report
    from dm_hpc.campaign.standard import RecordsOnOwnElements, _nested_source
    from dm_hpc.campaign.strategy import design_space, fit_model
    from dm_hpc.learn.features import featurize

    campaign = load_benchmark("transfer_elements").campaign_on(
        tmp_path, budget={"lab_experiments": 8}, learning={"initial_points": 4, "refit_every": 4, "batch_size": 4})
    df = pd.read_csv(datasets / "oer_plate_3496.csv")
    source = df[df.la_load == 0]
    CampaignManager(campaign, quiet=True).run()
    data = training_set(campaign, Store.open(campaign.store).to_dataframe())
    n_ce = int((source.ce_load > 0).sum())
    assert n_ce > 0 and [(s.name, len(s.y)) for s in data.transfer] == [("no-la", len(source))]
    fitted = fit_model(campaign, data)
    info = fitted.transfer
    assert info["outside_space"] == {"no-la": n_ce}
    model = info["tables"][0].model
    assert isinstance(model, RecordsOnOwnElements)
    assert model.features["elements"] == ["Co", "Fe", "Mn", "Ni", "Ce"]  # the campaign's it holds, then its own
    assert len(model.X) == len(source)  # every plate, those with Ce too
    assert info["kind"] == "prior" and info["source_points"] == {"no-la": len(source)}
    # a campaign plate with La is read as its Ni-Fe-Co-Mn part, renormalised, Ce 0
    space = design_space(campaign)
    assert list(space.element_names) == ["Co", "Fe", "La", "Mn", "Ni"]
    plate = {"Co": 0.3, "Fe": 0.2, "La": 0.4, "Mn": 0.1}
    X = space.featurize(np.array([[plate.get(e, 0.0) for e in space.element_names]]))
    read = {"Co": 0.5, "Fe": 1 / 3, "Mn": 1 / 6}
    by_hand = featurize([read], model.features["elements"])
    with torch.no_grad():
        got = model.posterior(X)
        want = model.gp.posterior(by_hand)
    torch.testing.assert_close(got.mean, want.mean)
    torch.testing.assert_close(got.variance, want.variance)
    # a refit on the same source records reuses its GP; a source whose records changed gets its own
    import dataclasses

    assert fit_model(campaign, data).transfer["tables"][0].model.gp is model.gp
    changed = dataclasses.replace(data.transfer[0], y=data.transfer[0].y + 0.01)
    other = fit_model(campaign, dataclasses.replace(data, transfer=[changed])).transfer["tables"][0].model
    assert other.gp is not model.gp and torch.allclose(other.y, model.y + 0.01)
    # saved as plain values (what a model file holds) and rebuilt: the same predictions
    saved = _source_state(model)
    path = tmp_path / "source.pt"
    torch.save(saved, path)
    again = _nested_source(torch.load(path, weights_only=True), "source.pt")
    pool = space.featurize(space.pool[0][:50])
    with torch.no_grad():
        torch.testing.assert_close(again.posterior(pool).mean, model.posterior(pool).mean)
    # the report counts the Ce plates as used unless the multi-task GP (campaign features) was chosen
    text = write_report(campaign).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| no-la"))
    used = len(source) - n_ce if info["kind"] == "multitask" else len(source)
    assert row.startswith(f"| no-la (overpotential) | {used} |")


def test_a_property_the_emulated_lab_and_the_source_lack_is_refused_before_anything_is_spent(tmp_path):
    """Found by a user-edge pass: the band-gap campaign with its objective changed to density
    validated, suggested its whole lab budget, stored nothing (the emulation table has no density)
    and then failed with a KeyError traceback in the source's rows; `report` failed the same way.
    Now `validate` and `run` name both files and what they hold; nothing is stored."""
    from tests.campaign.helpers import dm

    campaign = _campaign(tmp_path, objectives=[{"property": "density", "goal": "max", "unit": "g/cm3"}])
    for cmd in ("validate", "run"):
        res = dm(cmd, str(tmp_path / "campaign.yaml"))
        assert res.returncode == 2, (cmd, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr
        assert "transfer.from.0.table:" in res.stderr and "holds no density value" in res.stderr
        assert ("fidelities.lab.emulate_from:" in res.stderr
                and "holds no density (objective; its measurements: bandgap)" in res.stderr)
    assert not campaign.store.exists()
    # the source's rows of a property it lacks are no rows (no KeyError where preflight is not asked)
    from dm_hpc.campaign.dataset import source_rows

    [rows] = source_rows(campaign, pd.DataFrame())
    assert rows.y.size == 0 and rows.record_ids == [] and rows.skipped["no density"] > 100


def test_an_emulation_table_without_its_column_map_is_refused_at_validate(tmp_path):
    """Found by a user-edge pass: emulate_from without emulate_map validated, then `run` failed with
    a SheetError traceback."""
    from tests.campaign.helpers import dm

    _campaign(tmp_path)
    data = yaml.safe_load((tmp_path / "campaign.yaml").read_text())
    del data["fidelities"][0]["emulate_map"]
    (tmp_path / "campaign.yaml").write_text(yaml.safe_dump(data))
    res = dm("validate", str(tmp_path / "campaign.yaml"))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "fidelities.lab.emulate_from:" in res.stderr and "no emulate_map given" in res.stderr


def test_a_pool_campaign_leaves_out_store_records_with_elements_outside_its_pool(tmp_path):
    """Found by a transfer review: a pool campaign sharing its store with another campaign took
    that campaign's records as its own whatever their elements, and its model failed on the first
    element its pool lacks (``ValueError: element 'Ce' ... is not in [...]``, a traceback in
    ``run``). Such records are now left out of its own data, as an element campaign's are."""
    campaign = _campaign(tmp_path, transfer=None)
    with Store.open(campaign.store, mode="a") as st:
        st.ingest([{"composition": {"Pu": 0.5, "O": 0.5}, "properties": [{"name": "bandgap", "value": 2.1}],
                    "provenance": {"source": "experimental", "method": "other-lab", "campaign": "other"}},
                   {"composition": {"Zn": 0.5, "O": 0.5}, "properties": [{"name": "bandgap", "value": 3.3}],
                    "provenance": {"source": "experimental", "method": "other-lab", "campaign": "other"}}])
    data = training_set(campaign, Store.open(campaign.store).to_dataframe())
    assert [sorted(c) for c in data.compositions] == [["O", "Zn"]]
    assert data.skipped["elements outside the design space"] == 1
    from dm_hpc.api import Campaign

    picks = Campaign(campaign).suggest(2)  # the model fits on what is left
    assert len(picks) == 2


def test_an_emulated_lab_is_not_asked_for_a_computed_property(tmp_path):
    """Review: the emulation check required every campaign property of the table, also a cost the
    engine computes from the composition, which no lab measures."""
    from dm_hpc.campaign.preflight import problems

    campaign = _campaign(tmp_path, transfer=None, constraints=["raw_material_cost <= 1000 USD/kg"])
    assert not [p for p in problems(campaign) if "emulate_from" in p]


def test_a_pool_campaign_whose_pool_file_is_gone_still_reads_its_records(tmp_path):
    """Review: the element filter read the pool at every training set, so a report or an export
    failed once the pool file had moved; without it the records are read unfiltered, as before."""
    import shutil

    table = tmp_path / "pool.csv"
    shutil.copy(REPO.parent / "shared/datasets/bandgap_dft_vs_expt.csv", table)
    campaign = _campaign(tmp_path, transfer=None)
    campaign = campaign.model_copy(update={"space": campaign.space.model_copy(update={"pool": table})})
    with Store.open(campaign.store, mode="a") as st:
        st.ingest([{"composition": {"Zn": 0.5, "O": 0.5}, "properties": [{"name": "bandgap", "value": 3.3}],
                    "provenance": {"source": "experimental", "method": "lab", "campaign": campaign.name}}])
    table.unlink()
    data = training_set(campaign, Store.open(campaign.store).to_dataframe())
    assert len(data.compositions) == 1


def test_design_for_a_pool_campaign_without_sources_proposes_from_its_pool(tmp_path, datasets):
    """Found by a review of the transfer items as a user: `design --campaign` on a pool campaign
    without a transfer block fitted on the store's elements and proposed compositions outside the
    pool (Fe0.171...), while with sources it stayed on the pool. Now both use the campaign's space."""
    import re

    from typer.testing import CliRunner

    from dm_hpc.campaign.candidates import pool_compositions
    from dm_hpc.cli import app
    from dm_hpc.data.sheets import read_sheet

    campaign = _campaign(tmp_path, transfer=None)
    measured = [r for r in read_sheet(datasets / "bandgap_dft_vs_expt.csv",
                                      column_map=REPO / "configs/sheets/bandgap_dft_vs_expt.yaml")
                if r.provenance.source.value == "experimental"][:40]
    with Store.open(campaign.store, mode="a") as st:
        st.ingest(measured)
    out = tmp_path / "cands.csv"
    res = CliRunner().invoke(app, ["design", "--campaign", str(tmp_path / "campaign.yaml"), "--target",
                                   "bandgap>=3 eV", "-n", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(out)
    new = rows[rows["status"] == "new"]["composition"]
    assert len(new)
    pool = {tuple(sorted((el, round(v, 3)) for el, v in c.items())) for c in pool_compositions(campaign)}
    for text in new:
        comp = tuple(sorted((m[0], round(float(m[1]), 3)) for m in re.findall(r"([A-Z][a-z]?)([0-9.]+)", text)))
        assert comp in pool, text


def test_a_source_never_takes_the_campaigns_own_records(tmp_path):
    """A user pass: a source `{campaign: <itself>}` validated, and with `{elements: [...]}` matching
    its own records it took them away from its training data (12 of 12: every suggestion random)."""
    from dm_hpc.campaign.dataset import source_rows, taken_by_sources
    from tests.campaign.helpers import write_campaign

    path = write_campaign(tmp_path, name="me", transfer={"from": [{"campaign": "me"}]})
    with pytest.raises(CampaignError, match=r"transfer.from\[0\]: campaign 'me' is this campaign"):
        load_campaign(path)
    data = yaml.safe_load(path.read_text())
    data["transfer"] = {"from": [{"elements": ["Cu"], "label": "copper"}]}
    path.write_text(yaml.safe_dump(data))
    c = load_campaign(path)
    df = pd.DataFrame({"record_id": ["a", "b"], "campaign": ["me", "other"], "source": ["computed"] * 2,
                       "method": ["emt"] * 2, "x_Cu": [0.5, 0.5], "x_Ni": [0.5, 0.5], "mixing_energy": [-0.1, -0.2]})
    assert list(taken_by_sources(c, df)) == [False, True]
    assert source_rows(c, df)[0].record_ids == ["b"]


def test_a_store_source_that_matches_nothing_is_named_at_validate_and_in_the_report(tmp_path):
    """A store query that selects no record (a misspelt campaign name) validated silently, and the
    report then blamed the campaign ("transfer needs one property measured at one fidelity", which
    it was). Validate warns, naming the source; the report says it matched no records."""
    from typer.testing import CliRunner

    from dm_hpc.campaign.dataset import training_set
    from dm_hpc.campaign.transfer import transfer_lines
    from dm_hpc.cli import app
    from dm_hpc.data import MaterialRecord
    from tests.campaign.helpers import write_campaign

    path = write_campaign(tmp_path, name="me", lab=False,
                          transfer={"from": [{"campaign": "hea-old", "label": "old-screen"}]})
    c = load_campaign(path)
    res = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert "warning: transfer.from.0 (old-screen): matches no record with mixing_energy" in res.output
    assert "it holds no records yet" in res.output

    def record(campaign: str, cu: float, value: float) -> MaterialRecord:
        return MaterialRecord.model_validate({
            "composition": {"Cu": cu, "Ni": 1 - cu}, "material_class": "metal",
            "properties": [{"name": "mixing_energy", "value": value}],
            "provenance": {"source": "computed", "method": "emt", "campaign": campaign}})

    with Store.open(c.store, "a") as store:
        store.ingest([record("me", 0.2 + 0.1 * k, -0.01 * k) for k in range(4)])
    res = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "300"})
    assert "old-screen): matches no record with mixing_energy" in res.output and "none of its 4 records" in res.output
    df = Store.open(c.store, "r").to_dataframe()
    text = "\n".join(transfer_lines(c, training_set(c, df), fitted=None))
    assert "matched no records holding their property: old-screen (mixing_energy)" in text
    assert "one property measured at one fidelity" not in text  # the campaign has that; the source has nothing

    with Store.open(c.store, "a") as store:  # the source's records arrive: no warning
        store.ingest([record("hea-old", 0.5, -0.02)])
    res = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "warning" not in res.output, res.output
