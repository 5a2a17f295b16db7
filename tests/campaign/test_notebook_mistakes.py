"""A notebook's first hour, the mistakes: a campaign object whose folder was moved, arguments of
the wrong kind. Each is a typed error from dm-hpc that names the problem, before anything is
read, written or started. Real store, real journal, lab-only campaigns (no calculations)."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from dm_hpc import Campaign
from dm_hpc.campaign import CampaignError
from dm_hpc.data.sheets import SheetError

from .helpers import lab_project, write_campaign


def test_a_campaign_whose_folder_was_moved_says_so_and_starts_nothing_at_the_old_place(tmp_path):
    """The object kept the old absolute paths: records() and best() were empty, summary() said
    'not started', suggest() journalled a new batch L001 in a new run folder at the old place and
    run() started the campaign again there, whose workers then died in a FileNotFoundError."""
    path, camp = lab_project(tmp_path / "project")
    assert len(camp.records()) == 1 and len(camp.pending()) == 1
    shutil.move(tmp_path / "project", tmp_path / "elsewhere")
    calls = {"records": camp.records, "pending": camp.pending, "summary": camp.summary, "best": camp.best,
             "suggest": lambda: camp.suggest(1), "run": lambda: camp.run(max_seconds=1),
             "add_measurements": lambda: camp.add_measurements(pd.DataFrame({"sample_id": ["x"]})),
             "retract": lambda: camp.retract("dm-0", "wrong"), "predict": lambda: camp.predict(["CuNi"]),
             "train": camp.train, "report": camp.report}
    for name, call in calls.items():
        with pytest.raises(CampaignError) as caught:
            call()
        said = str(caught.value)
        assert str(tmp_path / "project" / "run" / "journal.jsonl") in said, (name, said)
        assert "moved or deleted" in said and "Campaign.load" in said, (name, said)
        assert not (tmp_path / "project").exists(), f"{name} wrote at the old place"
    again = Campaign.load(tmp_path / "elsewhere" / path.name)  # where it is now: as it was
    assert len(again.records()) == 1 and len(again.pending()) == 1


def test_measurements_by_sample_id_alone_are_the_suggested_samples_and_an_unknown_id_is_named(tmp_path):
    """User trial: a table of sample_id and hardness with an id no suggestion has was refused with
    'no composition:<El> columns, no raw:<name> columns and no formula column' (a known id too):
    the id, which a lab sheet answers by, was never read."""
    lab = {"name": "lab", "kind": "experiment", "batch_size": 2, "precision": 0.01}
    space = {"elements": {"Cu": [0.8, 1], "Ni": [0, 0.2]},
             "process": {"ageing_temperature": {"low": 350, "high": 550, "unit": "degC"}}}
    camp = Campaign.load(write_campaign(tmp_path, name="byid", fidelities=[lab], space=space, budget={"lab_experiments": 8},
                                        objectives=[{"property": "hardness", "goal": "max"}]))
    with pytest.warns(UserWarning, match="random start"):
        sheet = camp.suggest(2)
    first, second = sheet["sample_id"]
    slip = first[:-2] + first[-1]  # 'byid-L001-1'
    for table in ({"sample_id": [slip]}, {"sample_id": [first, slip]}):  # alone, and beside a known id
        with pytest.raises(SheetError) as caught:
            camp.add_measurements(pd.DataFrame({**table, "property:hardness [GPa]": [2.0] * len(table["sample_id"])}))
        said = str(caught.value)
        assert f"unknown sample_id {slip!r}: not a suggested experiment (did you mean {first!r}?)" in said, said
        assert "1 problem(s)" in said and "composition" not in said, said
    assert camp.records().empty  # all or nothing
    # a known id is enough: the sample is stored as suggested (composition and process), the same
    # record the full sheet row gives
    stored = camp.add_measurements(pd.DataFrame({"sample_id": [first], "property:hardness [GPa]": [2.0]}))
    temperature = "process:treatment:ageing_temperature [degC]"  # stored in K, given back in degC
    assert stored[temperature].tolist() == pytest.approx(sheet[temperature].iloc[:1].tolist())
    again = camp.add_measurements(sheet.iloc[:1].assign(**{"property:hardness [GPa]": [2.0]}))
    assert again["record_id"].tolist() == stored["record_id"].tolist()
    # a file of ids and values too (the lab sheet's door)
    (tmp_path / "second.csv").write_text(f"sample_id,property:hardness [GPa]\n{second},2.5\n")
    assert camp.add_measurements(tmp_path / "second.csv")["sample_id"].tolist() == [second]
    assert len(camp.records()) == 2 and camp.pending().empty
