"""The journal (issue 11 §2): torn tails repaired, checksums, task ids never planned twice,
bad inbox files quarantined while the run goes on."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.manager import CampaignManager

from .helpers import write_campaign


def _write(path, n):
    j = jn.Journal(path)
    for k in range(n):
        j.write("planned", task_id=f"t{k}", fidelity="emt", composition={"Cu": 1.0}, process={})
    j.close()


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000), junk=st.binary(max_size=40))
def test_a_torn_tail_is_cut_back_to_the_last_checksummed_line(tmp_path_factory, cut, junk):
    path = tmp_path_factory.mktemp("j") / "journal.jsonl"
    _write(path, 12)
    full = path.read_bytes()
    cut = min(cut, len(full))
    path.write_bytes(full[:cut] + junk)
    complete = full[:cut].count(b"\n")
    events = list(jn.Journal.events(path))
    assert [e["task_id"] for e in events][:complete] == [f"t{k}" for k in range(complete)]
    assert len(events) <= complete + 1  # junk may complete no valid line but the one it extends
    j = jn.Journal(path)  # the writer repairs the tail
    j.write("stop", reason="x")
    j.close()
    replayed = list(jn.Journal.events(path))
    assert replayed[-1]["event"] == "stop" and len(replayed) == len(events) + 1


def test_a_line_that_parses_but_fails_its_checksum_ends_the_journal(tmp_path):
    path = tmp_path / "journal.jsonl"
    _write(path, 3)
    lines = path.read_text().splitlines(keepends=True)
    ev = json.loads(lines[2])
    ev["task_id"] = "forged"
    path.write_text("".join(lines[:2]) + json.dumps(ev, separators=(",", ":")) + "\n")
    assert [e["task_id"] for e in jn.Journal.events(path)] == ["t0", "t1"]


def test_old_journals_without_checksums_still_replay(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"t":1,"event":"start"}\n{"t":2,"event":"planned","task_id":"a","fidelity":"emt",'
                    '"composition":{"Cu":1.0}}\n')
    state = jn.replay(path)
    assert state.started_at == 1 and list(state.tasks) == ["a"]


def test_a_task_id_is_never_planned_twice(tmp_path):
    path = tmp_path / "journal.jsonl"
    _write(path, 2)
    j = jn.Journal(path)
    j.write("planned", task_id="t1", fidelity="emt", composition={"Ni": 1.0}, process={})
    j.close()
    with pytest.raises(jn.JournalError, match="t1 planned twice"):
        jn.replay(path)
    c = load_campaign(write_campaign(tmp_path, lab=False))
    m = CampaignManager(c, quiet=True)
    for tid in ("t-c00001", "t-c00003"):
        m.state.tasks[tid] = jn.TaskEntry(tid, "emt", {"Cu": 1.0}, {})
    assert m._new_task_id() not in m.state.tasks


def test_a_bad_inbox_file_is_quarantined_and_the_run_goes_on(tmp_path):
    c = load_campaign(write_campaign(tmp_path, lab=False, calculations=2))
    inbox = c.run_dir / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "1.json").write_text("[not json")
    summary = CampaignManager(c, quiet=True).run(max_seconds=200)
    assert summary.reason.startswith("calculation budget reached") and summary.ingested == 2
    assert not (inbox / "1.json").exists() and (inbox / "quarantine" / "1.json").exists()
    assert "JSONDecodeError" in (inbox / "quarantine" / "1.json.why.txt").read_text()
    events = [e["event"] for e in jn.Journal.events(c.run_dir / "journal.jsonl")]
    assert "inbox_quarantined" in events
