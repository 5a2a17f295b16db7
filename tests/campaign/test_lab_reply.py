"""What the lab is told after `dm-hpc ingest` (s36): the unit conversions the store made (only the
annotated copy said them) and the record id each sample was stored under (traceable ids: the
plan's M-DOI). Real campaign file, journal, sheet, store; the CLI as the console script runs it."""
from __future__ import annotations

import re

import pytest
import yaml
from typer.testing import CliRunner

from dm_hpc import Campaign
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.lab import take_lab_sheet
from dm_hpc.cli import app
from dm_hpc.data import Store

HV = "property:hardness [HV]"
CAMPAIGN = {"name": "reply", "store": "store", "seed": 5,
            "space": {"elements": {"Cu": [0.5, 1], "Ni": [0, 0.5]}},
            "objectives": [{"property": "hardness", "goal": "max", "unit": "HV"}],
            "fidelities": [{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 30}],
            "budget": {"lab_experiments": 60}}


def _suggested(tmp_path, n: int):
    path = tmp_path / "reply.yaml"
    path.write_text(yaml.safe_dump(CAMPAIGN))
    camp = Campaign.load(path)
    sheet = camp.suggest(n)
    assert HV in sheet.columns  # the objective's unit, as the campaign file writes it
    sheet[HV] = [150.0 + i for i in range(n)]
    return path, camp, sheet


def _ingest(path, sheet_file):
    result = CliRunner().invoke(app, ["ingest", str(path), str(sheet_file)])
    assert result.exit_code == 0, result.output
    return result.output


def _stored_ids(path) -> dict[str, str]:
    with Store.open(load_campaign(path).store) as s:
        df = s.to_dataframe()
    return dict(zip(df["sample_id"], df["record_id"]))


def test_the_reply_says_each_unit_conversion_once_and_each_record_id(tmp_path):
    """On main: 'ingested 3 records (3 new)' and nothing on HV becoming GPa or on the ids."""
    path, _, sheet = _suggested(tmp_path, 3)
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    out = _ingest(path, tmp_path / "filled.csv")
    assert out.count("hardness: HV converted to GPa for the store") == 1, out
    ids = _stored_ids(path)
    assert len(ids) == 3
    for sid, rid in ids.items():
        assert f"  {sid} -> {rid}\n" in out, out
    assert "ingested 3 records (3 new)" in out


def test_a_long_reply_names_the_first_ids_and_how_to_list_them_all(tmp_path):
    path, _, sheet = _suggested(tmp_path, 25)
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    out = _ingest(path, tmp_path / "filled.csv")
    listed = re.findall(r"^  (\S+) -> (dm-\w+)$", out, flags=re.M)
    ids = _stored_ids(path)
    assert len(listed) == 10 and all(ids[sid] == rid for sid, rid in listed), out
    assert "... and 15 more: dm-hpc store query --store" in out and "--campaign reply --out" in out, out


def test_the_python_api_result_carries_the_conversions_and_the_ids(tmp_path):
    path, camp, sheet = _suggested(tmp_path, 2)
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    result = take_lab_sheet(load_campaign(path), tmp_path / "filled.csv")
    assert result.conversions == ["hardness: HV converted to GPa for the store"]
    assert result.record_ids == _stored_ids(path)
    # a sheet in the canonical unit converts nothing, and says nothing of it
    more = camp.suggest(2)
    more = more.rename(columns={HV: "property:hardness [GPa]"}).drop(columns=["uncertainty:hardness [HV]"])
    more["property:hardness [GPa]"] = [1.5, 1.6]
    frame = camp.add_measurements(more, confirm=more["sample_id"])  # a model now: no value held
    assert frame.attrs["conversions"] == [] and len(frame) == 2
    again = camp.suggest(1)
    again[HV] = [160.0]
    frame = camp.add_measurements(again, confirm=again["sample_id"])
    assert frame.attrs["conversions"] == ["hardness: HV converted to GPa for the store"]
    assert frame["record_id"].tolist() == [_stored_ids(path)[again["sample_id"][0]]]


@pytest.mark.parametrize("unit, expect", [("meV/atom", "mixing_energy: meV/atom converted to eV/atom for the store")])
def test_a_campaign_written_in_mev_per_atom_is_told_so(tmp_path, unit, expect):
    data = {**CAMPAIGN, "name": "mev", "objectives": [{"property": "mixing_energy", "goal": "min", "unit": unit}]}
    path = tmp_path / "mev.yaml"
    path.write_text(yaml.safe_dump(data))
    camp = Campaign.load(path)
    sheet = camp.suggest(2)
    sheet[f"property:mixing_energy [{unit}]"] = [-50.0, -20.0]
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    out = _ingest(path, tmp_path / "filled.csv")
    assert out.count(expect) == 1, out
