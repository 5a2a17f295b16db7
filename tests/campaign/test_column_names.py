"""One column naming scheme (issue 19 item 7, issue 21 item 6): the Python API's frames, the lab
sheets, ``dm-hpc store export`` and the portal's lab queue name columns alike
(``dm_hpc.data.columns``). ``records()`` said ``x_Cu``, ``hardness`` and
``process.treatment:annealing_temperature`` in K while the sheet it answered said
``composition:Cu [at_frac]``, ``property:hardness [GPa]`` and ``... [degC]``. Real store, real CLI."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from dm_hpc import Campaign
from dm_hpc.data.access import AccessLevel
from dm_hpc.service.campaigns import CampaignDesk

from .helpers import dm

CAMPAIGN = {"name": "names", "store": "store", "seed": 4,
            "space": {"elements": {"Cu": [0.5, 1], "Ni": [0, 0.5]},
                      "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"}}},
            "objectives": [{"property": "hardness", "goal": "max", "unit": "GPa"}],
            "fidelities": [{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 3}],
            "budget": {"lab_experiments": 6}}
MEASURED = ("composition:", "process:", "property:")
STORE_NAMES = ("x_", "process.", "hardness")  # how Store.to_dataframe names them


@pytest.fixture
def measured(tmp_path):
    """Three suggested experiments measured through ``add_measurements``, three more pending."""
    path = tmp_path / "names.yaml"
    path.write_text(yaml.safe_dump(CAMPAIGN))
    camp = Campaign.load(path)
    sheet = camp.suggest(3)
    sheet["property:hardness [GPa]"] = [2.0, 2.5, 3.0]
    stored = camp.add_measurements(sheet)
    camp.second = camp.suggest(3)  # from the model now: with predicted:* columns
    return camp, sheet, stored


def test_a_suggested_sheet_comes_back_from_records_under_its_own_columns(measured):
    camp, sheet, stored = measured
    shared = [c for c in sheet.columns if c.startswith(MEASURED)]
    assert "process:treatment:annealing_temperature [degC]" in shared
    records = camp.records()
    for frame in (records, stored, camp.best(3)):
        assert set(shared) <= set(frame.columns), sorted(set(shared) - set(frame.columns))
        assert not [c for c in frame.columns if c.startswith(STORE_NAMES)], list(frame.columns)
    # the values too: what went out (in degC) is what comes back
    back = records.set_index("sample_id").loc[sheet["sample_id"], shared].reset_index(drop=True)
    pd.testing.assert_frame_equal(back.astype(float), sheet[shared].astype(float), check_exact=False, atol=1e-9)
    # so a records() frame goes back in as a sheet unchanged (a correction of one value)
    again = records[["sample_id", *shared]].head(1).copy()
    again["property:hardness [GPa]"] = 2.2
    assert camp.add_measurements(again, replace=True)["property:hardness [GPa]"].tolist() == [2.2]


def test_pending_and_suggest_share_the_sheets_columns(measured):
    camp, sheet, _ = measured
    assert list(camp.pending().columns) == list(camp.second.columns)
    assert set(sheet.columns) < set(camp.second.columns)  # the model's columns added, none renamed


def test_store_export_and_the_portal_queue_use_the_same_names(measured, tmp_path):
    camp, sheet, _ = measured
    out = tmp_path / "export.csv"
    res = dm("store", "export", str(out), "--store", str(camp.spec.store))
    assert res.returncode == 0, res.stderr
    exported = pd.read_csv(out)
    assert {"composition:Cu [at_frac]", "composition:Ni [at_frac]", "property:hardness [GPa]"} <= set(exported)
    assert "process:treatment:annealing_temperature [K]" in exported.columns  # an export is canonical
    res = dm("store", "query", "--store", str(camp.spec.store), "--out", str(tmp_path / "query.csv"))
    assert res.returncode == 0, res.stderr
    queried = pd.read_csv(tmp_path / "query.csv")
    assert set(exported.columns) - {"material_class"} <= set(queried.columns), sorted(queried.columns)
    header, rows = CampaignDesk(Path(camp.origin).parent).lab_queue("names", AccessLevel.embargoed)
    assert header == [c for c in camp.pending().columns if not c.startswith(("property:", "uncertainty:", "confirm"))]
    assert len(rows) == 3 and "process:treatment:annealing_temperature [degC]" in header


def test_a_frame_with_a_column_twice_is_refused_as_a_file_is(tmp_path):
    """A review: the notebook's ``pd.concat([sheet, results], axis=1)`` gives two ``sample_id``
    columns; ``add_measurements`` ended in AttributeError where a CSV with them is refused by name."""
    from dm_hpc.data.sheetfiles import SheetError

    path = tmp_path / "names.yaml"
    path.write_text(yaml.safe_dump(CAMPAIGN))
    camp = Campaign.load(path)
    sheet = camp.suggest(2)
    measured = pd.DataFrame({"sample_id": sheet["sample_id"], "property:hardness [GPa]": [2.0, 2.5]})
    filled = pd.concat([sheet.drop(columns=["property:hardness [GPa]"]), measured], axis=1)
    with pytest.raises(SheetError, match="column 'sample_id' appears twice"):
        camp.add_measurements(filled)
    assert camp.records().empty  # nothing stored
