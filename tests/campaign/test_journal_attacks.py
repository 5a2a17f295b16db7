"""The journal attacks of issue 18 replayed through the command line: a forged line, an unknown
task, a task planned twice, and one flipped bit in a lab-only campaign's journal. Each ends in a
message naming the line (never a traceback), nothing is cut, and after ``dm-hpc journal repair``
the next lab batch gets ids never issued before."""
from __future__ import annotations

import json

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.journal_repair import repair, verify_campaign
from dm_hpc.campaign.suggest import request_lab_batch
from dm_hpc.data import Composition, MaterialRecord, PropertyValue, Provenance, Source, Store

from .helpers import dm, write_campaign


def _lab_only(tmp_path):
    path = write_campaign(tmp_path, name="pol", fidelities=[
        {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2}],
        budget={"lab_experiments": 12})
    return path, load_campaign(path)


def _measured(sample_id: str, cu: float) -> MaterialRecord:
    return MaterialRecord(
        composition=Composition({"Cu": cu, "Ni": 1 - cu}), sample_id=sample_id,
        properties=[PropertyValue(name="mixing_energy", value=-0.1 * cu)],
        provenance=Provenance(source=Source.experimental, method="lab", campaign="pol"))


def _history(c) -> None:
    """Two lab batches, both measured, as a lab-only campaign journals them."""
    j = jn.Journal(c.run_dir / "journal.jsonl")
    j.write("start", campaign="pol")
    ids = {}
    with Store.open(c.store, "a") as store:
        for batch, cus in ((1, (0.2, 0.4)), (2, (0.6, 0.8))):
            samples = [{"sample_id": f"pol-L{batch:03d}-{k + 1:02d}", "composition": {"Cu": cu, "Ni": 1 - cu},
                        "process": {}} for k, cu in enumerate(cus)]
            j.write("lab_suggested", batch=batch, samples=samples)
            records = [_measured(s["sample_id"], s["composition"]["Cu"]) for s in samples]
            result = store.ingest(records)
            ids.update({r.sample_id: rid for r, rid in zip(records, result.ids)})
            j.write("lab_ingested", records={r.sample_id: ids[r.sample_id] for r in records}, sheet="s.csv")
    j.close()


def _no_traceback(proc) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr


def test_a_forged_line_without_checksum_is_refused_by_status_and_not_counted(tmp_path):
    path, c = _lab_only(tmp_path)
    _history(c)
    j = c.run_dir / "journal.jsonl"
    forged = {"t": 1.0, "event": "planned", "task_id": "x", "fidelity": "emt", "composition": {"Cu": 1.0}}
    j.write_text(j.read_text() + json.dumps(forged) + "\n" + json.dumps({"t": 2.0, "event": "ingested", "task_id": "x"}) + "\n")
    proc = dm("status", str(path))
    _no_traceback(proc)
    assert proc.returncode == 2 and "line 7: no checksum" in proc.stderr and "ingested" not in proc.stdout
    assert [str(p) for p in verify_campaign(c).problems][:2] == [
        "line 7: no checksum (not a line dm-hpc wrote: forged, or damaged at its end)",
        "line 8: no checksum (not a line dm-hpc wrote: forged, or damaged at its end)"]


def test_an_unknown_task_and_a_repeated_plan_are_damage_by_line_in_status_and_run(tmp_path):
    path = write_campaign(tmp_path, lab=False)
    c = load_campaign(path)
    j = jn.Journal(c.run_dir / "journal.jsonl")
    j.write("start", campaign="t")
    j.write("planned", task_id="t-c00001", fidelity="emt", composition={"Cu": 1.0}, process={})
    j.write("planned", task_id="t-c00001", fidelity="emt", composition={"Ni": 1.0}, process={})
    j.write("ingested", task_id="t-c00009", record_id="r")
    j.close()
    before = (c.run_dir / "journal.jsonl").read_bytes()
    for args in (("status", str(path)), ("run", str(path), "-q", "--max-seconds", "5")):
        proc = dm(*args)
        _no_traceback(proc)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "line 4: planned event cannot apply: task 't-c00001' planned twice" in proc.stderr
        assert "line 5: ingested event cannot apply: task 't-c00009' was never planned" in proc.stderr
    assert (c.run_dir / "journal.jsonl").read_bytes() == before  # nothing cut, nothing added


def test_a_flipped_bit_stops_the_lab_only_campaign_and_repair_keeps_ids_unique(tmp_path):
    path, c = _lab_only(tmp_path)
    _history(c)
    j = c.run_dir / "journal.jsonl"
    data = bytearray(j.read_bytes())
    lines = data.split(b"\n")
    at = len(lines[0]) + len(lines[1]) + len(lines[2]) + 3 + 40  # inside line 4: batch 1's results
    data[at] ^= 0x04
    j.write_bytes(bytes(data))
    run = dm("run", str(path), "-q", "--max-seconds", "5")
    _no_traceback(run)
    assert run.returncode == 2 and "line 4: checksum does not match" in run.stderr
    assert j.read_bytes() == bytes(data)  # not cut: every acknowledged line is still there
    fixed = dm("journal", "repair", str(path))
    _no_traceback(fixed)
    assert fixed.returncode == 0, fixed.stderr
    assert "dropped line 4: checksum does not match" in fixed.stdout
    assert "lab sample pol-L001-01 measured" in fixed.stdout and "kept as" in fixed.stdout
    assert verify_campaign(c).problems == []
    state = jn.replay(j)
    assert {s for s, e in state.lab.items() if e.record_id} == {"pol-L001-01", "pol-L001-02", "pol-L002-01",
                                                                  "pol-L002-02"}
    new = {s["sample_id"] for s in request_lab_batch(c, 2).samples}  # what `dm-hpc suggest -n 2` asks
    assert new and all(s.startswith("pol-L003-") for s in new), new


def test_ids_are_never_reused_when_the_lines_that_issued_them_are_lost(tmp_path):  # in-process: fast
    path, c = _lab_only(tmp_path)
    _history(c)
    j = c.run_dir / "journal.jsonl"
    lines = j.read_bytes().splitlines(keepends=True)
    j.write_bytes(b"".join(lines[:4]))  # batch 2 gone, head file kept: seen as removed lines
    assert [str(p) for p in verify_campaign(c).problems] == [
        "line 5: missing: the head records 6 lines, the journal has 4 (acknowledged lines removed or cut at the end)"]
    (c.run_dir / jn.HEAD_NAME).unlink()  # and with the head gone too: the store still tells
    report = repair(c)
    assert any("pol-L002-01" in line for line in report.lines()), report.lines()
    assert jn.replay(j).lab_batches == 2
