"""The journal (issue 11 §2, issue 18 §5): torn tails cut, the hash chain, task ids never planned twice,
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


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000), junk=st.binary(max_size=40).filter(lambda b: b"\n" not in b))
def test_a_torn_last_line_is_cut_and_nothing_acknowledged_is(tmp_path_factory, cut, junk):
    path = tmp_path_factory.mktemp("j") / "journal.jsonl"
    _write(path, 12)
    full = path.read_bytes()
    torn = jn._encode({"t": 1.0, "event": "planned", "task_id": "t12"}, "0" * 32)[0].encode()
    path.write_bytes(full + (torn[:cut % len(torn)] + junk)[:len(torn) - 1])  # a crash during an append
    assert [e.get("task_id") for e in jn.Journal.events(path)][1:] == [f"t{k}" for k in range(12)]
    j = jn.Journal(path)  # the writer cuts the torn tail
    j.write("stop", reason="x")
    j.close()
    replayed = list(jn.Journal.events(path))
    assert replayed[-1]["event"] == "stop" and len(replayed) == 14


def test_a_line_that_parses_but_fails_its_checksum_stops_the_journal_naming_it(tmp_path):
    path = tmp_path / "journal.jsonl"
    _write(path, 3)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2].replace('"t1"', '"forged"') + "".join(lines[3:]))
    with pytest.raises(jn.JournalDamage, match="line 3: checksum does not match"):
        jn.replay(path)
    with pytest.raises(jn.JournalDamage, match="line 3"):
        jn.Journal(path)  # the writer refuses: nothing is cut
    assert "forged" in path.read_text()


def test_old_journals_without_checksums_still_replay_with_a_warning_and_are_not_appended_to(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"t":1,"event":"start"}\n{"t":2,"event":"planned","task_id":"a","fidelity":"emt",'
                    '"composition":{"Cu":1.0}}\n')
    with pytest.warns(jn.LegacyJournalWarning, match="journal repair"):
        state = jn.replay(path)
    assert state.started_at == 1 and list(state.tasks) == ["a"]
    with pytest.raises(jn.JournalDamage, match="old format"):
        jn.Journal(path)


def test_a_format_1_journal_with_one_line_without_its_crc_is_damaged(tmp_path):
    path = tmp_path / "journal.jsonl"
    crc = jn._check_legacy  # format 1 lines as that version wrote them
    import zlib
    body = '{"t":1,"event":"start"}'
    line = f'{body[:-1]},"crc":"{zlib.crc32(body.encode()):08x}"}}'
    assert crc(line)[1] is None
    path.write_text(line + "\n" + '{"t":2,"event":"stop","reason":"forged"}\n')
    with pytest.raises(jn.JournalDamage, match="line 2: no checksum among lines that have one"):
        jn.replay(path)


def test_a_task_id_is_never_planned_twice(tmp_path):
    path = tmp_path / "journal.jsonl"
    _write(path, 2)
    j = jn.Journal(path)
    j.write("planned", task_id="t1", fidelity="emt", composition={"Ni": 1.0}, process={})
    j.close()
    with pytest.raises(jn.JournalDamage, match="line 4: planned event cannot apply: task 't1' planned twice"):
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
