"""A notebook's first hour, the mistakes: a campaign object whose folder was moved, arguments of
the wrong kind. Each is a typed error from dm-hpc that names the problem, before anything is
read, written or started. Real store, real journal, lab-only campaigns (no calculations)."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from dm_hpc import Campaign
from dm_hpc.campaign import CampaignError

from .helpers import lab_project


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
             "retract": lambda: camp.retract("dm-0", "wrong")}
    for name, call in calls.items():
        with pytest.raises(CampaignError) as caught:
            call()
        said = str(caught.value)
        assert str(tmp_path / "project" / "run" / "journal.jsonl") in said, (name, said)
        assert "moved or deleted" in said and "Campaign.load" in said, (name, said)
        assert not (tmp_path / "project").exists(), f"{name} wrote at the old place"
    again = Campaign.load(tmp_path / "elsewhere" / path.name)  # where it is now: as it was
    assert len(again.records()) == 1 and len(again.pending()) == 1
