"""Journal fuzz (issue 18 §5): bit flips, deletions, insertions, forged lines and reorderings at
every line of a real journal, made by the real manager on the simulated cluster and lab
(``simulation.py``): 0 tracebacks, 0 acknowledged events lost without a message, 0 forged
events counted, 0 ids reused."""
from __future__ import annotations

import json
import random
import shutil
import warnings
from pathlib import Path

import pytest

import dm_hpc.campaign.manager as manager_module
from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import parse_campaign
from dm_hpc.campaign.journal_repair import ids_in_text, repair
from dm_hpc.campaign.lab import ingest_lab_sheet, suggestion_table
from dm_hpc.campaign.manager import CampaignManager
from dm_hpc.data import Store

from .simulation import EmulatedCluster, Killed, fill_lab_sheet
from .test_simulation import _spec


@pytest.fixture(scope="module")
def real_journal(tmp_path_factory):
    """A journal of several manager lives: kills, typed failures, two lab batches, one measured."""
    root = tmp_path_factory.mktemp("sim")
    data = _spec(root, budget=6, lab_budget=4, seed=5, initial=1000)
    c = parse_campaign(data, "sim")
    cluster = EmulatedCluster(5, fail_rate=0.3)
    old_poll, manager_module.POLL_S = manager_module.POLL_S, 0.005
    try:
        for kill_at in (7, None, None):
            cluster.kill_at = kill_at
            try:
                CampaignManager(c, quiet=True, runner=cluster).run(max_seconds=3)
            except Killed:
                pass
            state = jn.replay(c.run_dir / "journal.jsonl")
            batches = sorted({e.batch for e in state.lab.values() if e.awaited})
            if batches:  # the lab returns the first unmeasured batch
                table = suggestion_table(c, state)
                table = table[table["sample_id"].str.contains(f"-L{batches[0]:03d}-")]
                sheet = root / f"sheet-{batches[0]}.csv"
                fill_lab_sheet(table, 5).to_csv(sheet, index=False)
                ingest_lab_sheet(c, sheet)
    finally:
        manager_module.POLL_S = old_poll
    path = c.run_dir / "journal.jsonl"
    state = jn.replay(path)
    assert any(t.status == jn.INGESTED for t in state.tasks.values())
    assert any(e.record_id for e in state.lab.values()), "the fuzzed journal should hold a measured lab sample"
    return data, path, state


def _summary(state: jn.State) -> dict:
    return {"tasks": {k: (t.status, t.record_id, t.submissions) for k, t in state.tasks.items()},
            "lab": {k: (e.record_id, e.not_made, e.batch) for k, e in state.lab.items()},
            "refits": state.refits, "stopped": state.stopped}


def _forged(lines: list[bytes], k: int, rng: random.Random) -> list[bytes]:
    """Lines a forger might insert: no checksum, another line's checksum, a copied line."""
    planned = next(json.loads(x) for x in lines if b'"event":"planned"' in x)
    ingested = {"t": 1.0, "event": "ingested", "task_id": planned["task_id"], "record_id": "forged"}
    out = [json.dumps(ingested, separators=(",", ":")).encode() + b"\n"]
    donor = json.loads(lines[rng.randrange(len(lines))])
    out.append(json.dumps({**ingested, "prev": donor["prev"], "sha": donor["sha"]}, separators=(",", ":")).encode() + b"\n")
    out.append(lines[max(k - 1, 0)])
    return out


def _mutations(lines: list[bytes], seed: int):
    """(name, bytes) for each kind of damage at every line."""
    rng = random.Random(seed)
    whole = b"".join(lines)
    for k, line in enumerate(lines):
        for pos in (rng.randrange(len(line) - 1), len(line) - 1):  # inside the line, its newline
            flipped = bytearray(line)
            flipped[pos] ^= 1 << rng.randrange(8)
            yield f"flip line {k + 1} byte {pos}", b"".join(lines[:k]) + bytes(flipped) + b"".join(lines[k + 1:])
        yield f"delete line {k + 1}", b"".join(lines[:k] + lines[k + 1:])
        for j, forged in enumerate(_forged(lines, k, rng)):
            yield f"insert forged {j} at {k + 1}", b"".join(lines[:k]) + forged + b"".join(lines[k:])
        if k + 1 < len(lines):
            yield f"swap lines {k + 1},{k + 2}", b"".join(lines[:k] + [lines[k + 1], line] + lines[k + 2:])
            yield f"cut after line {k + 1}", b"".join(lines[:k + 1])
    yield "forged line appended", whole + _forged(lines, len(lines), rng)[0]


def test_fuzzed_journals_are_refused_by_line_or_read_whole_and_repair_keeps_ids_unique(real_journal, tmp_path):
    data, path, original = real_journal
    lines = path.read_bytes().splitlines(keepends=True)
    head = path.with_name(jn.HEAD_NAME).read_bytes()
    want = _summary(original)
    max_task, max_batch = ids_in_text(parse_campaign(data, "sim"), path.read_text())
    ingested = {k for k, t in original.tasks.items() if t.status == jn.INGESTED}
    measured = {k for k, e in original.lab.items() if e.record_id}
    cases = list(_mutations(lines, seed=18))
    with Store.open(data["store"]) as store:
        records = store.to_dataframe(campaign="sim")
    assert len(cases) > 6 * len(lines)
    detected = 0
    for i, (name, damaged) in enumerate(cases):
        run = tmp_path / str(i)
        run.mkdir()
        (run / "tasks").symlink_to(path.parent / "tasks")
        (run / "journal.jsonl").write_bytes(damaged)
        (run / jn.HEAD_NAME).write_bytes(head)
        c = parse_campaign({**data, "workdir": str(run)}, "sim")
        try:
            got = _summary(jn.replay(run / "journal.jsonl"))
        except jn.JournalDamage as exc:  # refused: the message names a line
            assert " line " in str(exc) and exc.problems, name
            detected += 1
            with pytest.raises(jn.JournalDamage):  # the writer refuses too, and cuts nothing
                jn.Journal(run / "journal.jsonl")
            assert (run / "journal.jsonl").read_bytes() == damaged, name
        else:
            assert got == want, f"{name}: read without a message but not as written"
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            report = repair(c, records)  # the store's rows, read once for all cases (speed)
        assert report.dropped or report.rebuilt, name
        assert report.backup is not None and report.backup.read_bytes() == damaged
        state = jn.replay(run / "journal.jsonl")  # repaired: whole again
        got_ingested = {k for k, t in state.tasks.items() if t.status == jn.INGESTED}
        assert got_ingested == ingested, f"{name}: ingested {got_ingested ^ ingested} differ after repair"
        assert all(t.record_id == original.tasks[t.task_id].record_id for t in state.tasks.values()
                   if t.task_id in ingested), f"{name}: a forged record id counted"
        assert measured <= {k for k, e in state.lab.items() if e.record_id}, f"{name}: a measurement lost"
        assert set(state.lab) <= set(original.lab), f"{name}: a forged lab sample counted"
        assert max(state.task_floor, len(state.tasks)) >= max_task, f"{name}: a task id could be reused"
        assert state.lab_batches >= max_batch, f"{name}: a lab batch id could be reused"
        shutil.rmtree(run)
    assert detected == len(cases)  # every mutation here changes an acknowledged line
