"""Notebook calls with arguments of the wrong kind: a ``TypeError`` or ``ValueError`` naming the
argument, raised at the call before anything is read, written or started (not an error from deep
inside the manager or the store). Real store, real journal, a lab-only campaign."""
from __future__ import annotations

import pytest

from dm_hpc import Campaign

from .helpers import lab_project


def test_notebook_arguments_of_the_wrong_kind_are_named_before_anything_starts(tmp_path):
    """run(max_seconds="5") started the manager, journalled a resume and failed inside its loop
    with "'>' not supported between instances of 'float' and 'str'"; run(max_seconds=-1) ran;
    retract(None) was an AttributeError from the store; Campaign.load(3) a TypeError from pathlib."""
    path, camp = lab_project(tmp_path / "p")
    journal = camp.spec.run_dir / "journal.jsonl"
    before = journal.read_bytes()
    for bad, error in (("5", TypeError), (float("nan"), ValueError), (-1, ValueError), (0, ValueError)):
        with pytest.raises(error, match="max_seconds"):
            camp.run(max_seconds=bad)
    assert journal.read_bytes() == before  # nothing started
    for bad in (None, 3):
        with pytest.raises(TypeError, match="record_id"):
            camp.retract(bad, "wrong")
    with pytest.raises(TypeError, match="reason"):
        camp.retract(camp.records()["record_id"][0], None)
    for bad in (3, None, ["a.yaml"]):
        with pytest.raises(TypeError, match=r"Campaign.load takes the path of a campaign file"):
            Campaign.load(bad)
