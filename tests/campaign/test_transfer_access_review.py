"""Review of transfer sources (access, answers, units): a model file holding embargoed records is
said to hold them (validate, and the top level of a file that nests it); a campaign whose store does
not exist yet has store sources that match nothing, not a traceback; the replay says its best value in
the objective's unit; a table source holding the campaign's own answers is refused as a model file
trained on its records is, and a source mixing computed and measured records is said to.
Real stores, real fits, the CLI as users call it."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dm_hpc.campaign import load_campaign, registry, standard
from dm_hpc.campaign.dataset import training_set
from dm_hpc.cli import app
from dm_hpc.data import Store
from dm_hpc.data.access import AccessMap, parse_rule
from tests.campaign.test_transfer_standard import _campaign, _records
from tests.conftest import DATASETS, REPO

OWN_ANSWERS = "the campaign's own answers"  # ``dataset.OWN_ANSWERS``: the reason rows are left out
TABLE = DATASETS / "bandgap_dft_vs_expt.csv"
TABLE_MAP = REPO / "configs" / "sheets" / "bandgap_dft_vs_expt.yaml"


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    """Campaign ``secret``: 30 computed records embargoed until 2099, trained, exported by the CLI."""
    tmp = tmp_path_factory.mktemp("secret")
    path, secret = _campaign(tmp, "secret", lab=False)
    with Store.open(secret.store, "a") as store:
        store.ingest(_records(30, 0, "computed", "emt"))
        ids = list(store.to_dataframe()["record_id"])
    AccessMap(secret.store).set(ids, parse_rule("embargoed", "2099-01-01"))
    registry.train(secret)
    res = CliRunner().invoke(app, ["models", str(path), "--export", str(tmp / "secret.pt")])
    assert res.exit_code == 0, res.output
    assert "embargoed" in res.output and "warning" in res.output
    return tmp / "secret.pt"


def _pub(tmp_path, secret_file, **extra):
    """Campaign ``pub`` (its own store, 8 public lab records) naming the secret model file as a source."""
    path, pub = _campaign(tmp_path, "pub", lab=True, transfer={"from": [{"model": str(secret_file),
                                                                          "label": "secret-model"}]}, **extra)
    with Store.open(pub.store, "a") as store:
        store.ingest(_records(8, 5, "experimental", "lab-sheet", scale=1.3, offset=0.01))
        ids = list(store.to_dataframe()["record_id"])
    AccessMap(pub.store).set(ids, parse_rule("public"))
    return path, pub


def test_validate_warns_that_a_model_source_holds_embargoed_records(tmp_path, secret_file):
    path, _ = _pub(tmp_path, secret_file)
    held = standard.load_model_file(secret_file).provenance["access_levels"]["embargoed"]
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    assert f"holds {held} embargoed record(s)" in res.output and "transfer.from.0 (secret-model)" in res.output


def test_an_export_with_transfer_counts_the_records_inside_its_model_sources(tmp_path, secret_file):
    path, pub = _pub(tmp_path, secret_file)
    nested = standard.load_model_file(secret_file).provenance["access_levels"]["embargoed"]
    res = CliRunner().invoke(app, ["models", str(path), "--export", str(tmp_path / "pub.pt"), "--with-transfer"])
    assert res.exit_code == 0, res.output
    p = standard.load_model_file(tmp_path / "pub.pt").provenance
    assert p["model_kind"] != "transfer:cold"  # the secret model is inside the file
    assert p["derived_from"][0]["access_levels"] == {"embargoed": nested}
    assert p["access_levels"] == {"public": 8, "embargoed": nested}
    assert f"warning: it holds {nested} embargoed record(s)" in " ".join(res.output.split())
    assert f"{nested} inside its model sources" in res.output
    # and a file nesting that one is known to hold them too
    assert standard.held_levels(p) == {"public": 8, "embargoed": nested}


def test_a_store_source_before_the_store_exists_matches_nothing(tmp_path):
    path, c = _campaign(tmp_path, "bg", lab=True, transfer={"from": [{"campaign": "other"}]})
    assert not (tmp_path / "bg" / "store").exists()
    res = CliRunner().invoke(app, ["transfer", "gain", str(path)])
    assert "Traceback" not in res.output and not isinstance(res.exception, KeyError), res.output
    assert "matched no records holding their property" in res.output
    from dm_hpc.campaign.report import write_report

    text = write_report(c).read_text()
    assert "Source(s) that matched no records holding their property: campaign=other (mixing_energy)" in text


def test_the_replay_line_says_the_best_value_in_the_objectives_unit(tmp_path):
    from dm_hpc.campaign.transfer import replay_lines

    _, c = _campaign(tmp_path, "bg", lab=True, objectives=[{"property": "bandgap", "goal": "max", "unit": "meV"}])
    line = replay_lines(c, {"cold": np.array([3.0, 8.0, 10.5]), "transfer": np.array([3.0, 10.5, 10.5])})[0]
    assert "the best of them (1.05e+04 meV)" in line or "the best of them (10500 meV)" in line, line


def _lab_table(tmp_path, transfer, **extra):
    """A band-gap campaign whose lab emulates from the shared table, with ``transfer``."""
    data = yaml.safe_load((REPO / "campaigns" / "bandgap-transfer.yaml").read_text())
    data["space"].update(pool=str(TABLE), pool_map=str(TABLE_MAP))
    data["fidelities"][0].update(emulate_from=str(TABLE), emulate_map=str(TABLE_MAP))
    data.update(store=str(tmp_path / "store"), workdir=str(tmp_path / "run"), transfer=transfer, **extra)
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, load_campaign(path)


def test_a_table_source_holding_the_labs_own_answers_is_refused(tmp_path, datasets):
    path, c = _lab_table(tmp_path, {"from": [{"table": str(TABLE), "table_map": str(TABLE_MAP),
                                              "source": "experimental", "label": "lab-answers"}]})
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code != 0
    out = " ".join(res.output.split())
    assert "150 of the rows of" in out and "are this campaign's own answers" in out
    assert "fidelities.lab.emulate_from answers the lab from the same table" in out
    # a run that went on anyway learns nothing from those rows, and the report says why
    data = training_set(c, Store.open(c.store, "a").to_dataframe())
    assert data.transfer[0].skipped[OWN_ANSWERS] == 150 and len(data.transfer[0].y) == 0


def test_computed_rows_of_the_labs_table_are_a_source_and_own_records_are_not(tmp_path, datasets):
    from dm_hpc.data.sheets import read_sheet

    path, c = _lab_table(tmp_path, {"from": [{"table": str(TABLE), "table_map": str(TABLE_MAP),
                                              "source": "computed", "label": "dft-screen"}]})
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    assert "own answers" not in res.output and "mix computed and experimental" not in res.output
    # a store source holding copies of the campaign's own records (same compositions and values)
    measured = [r for r in read_sheet(TABLE, column_map=TABLE_MAP) if r.provenance.source.value == "experimental"]
    own = [{"composition": r.composition.fractions, "properties": [{"name": "bandgap", "value": r.properties[0].value}],
            "provenance": {"source": "experimental", "method": "lab", "campaign": c.name}} for r in measured[:8]]
    copies = [{**o, "provenance": {"source": "experimental", "method": "copied", "campaign": "copy"}} for o in own]
    with Store.open(c.store, "a") as store:
        store.ingest(own)
        store.ingest(copies)
    path, c = _lab_table(tmp_path, {"from": [{"campaign": "copy", "label": "copy"}]})
    res = CliRunner().invoke(app, ["validate", str(path)])
    out = " ".join(res.output.split())
    assert res.exit_code != 0 and "8 of the rows of the store records it selects" in out
    data = training_set(c, Store.open(c.store).to_dataframe())
    assert data.transfer[0].skipped[OWN_ANSWERS] == 8


def test_a_source_mixing_computed_and_measured_records_is_said(tmp_path, datasets):
    # the whole table, computed and measured rows, as one source; the lab emulates from another
    # table (its measured rows only), so these rows are not its answers
    lab = tmp_path / "lab.csv"
    import pandas as pd

    table = pd.read_csv(TABLE)
    table[table.expt_data == 1].head(60).to_csv(lab, index=False)
    rest = tmp_path / "rest.csv"
    pd.concat([table[table.expt_data == 0], table[table.expt_data == 1].iloc[60:]]).to_csv(rest, index=False)
    path, c = _lab_table(tmp_path, {"from": [{"table": str(rest), "table_map": str(TABLE_MAP), "label": "whole"}]})
    data = yaml.safe_load(path.read_text())
    data["fidelities"][0].update(emulate_from=str(lab))
    data["space"].update(pool=str(lab))
    path.write_text(yaml.safe_dump(data))
    c = load_campaign(path)
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "transfer.from (whole): its rows mix computed and experimental records in one source task" in out
    from dm_hpc.campaign.transfer import transfer_lines

    d = training_set(c, Store.open(c.store, "a").to_dataframe())
    assert d.transfer[0].kinds == ("computed", "experimental")
    text = "\n".join(transfer_lines(c, d, None))
    assert "mixing computed and experimental records in one task: whole" in text
