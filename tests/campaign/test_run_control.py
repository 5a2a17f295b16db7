"""Run control people expect (issue 19 item 4): stop applies to a running campaign only, the
wall-time budget holds for the final steps and says limit, elapsed time and field, plain progress
lines in a log file, tables that fit 80 columns. Real CLI, real EMT, real journal."""
from __future__ import annotations

import io
import re
import time

from rich.console import Console
from rich.table import Table

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.manager import STOP_FILE, CampaignManager
from dm_hpc.campaign.stopping import budget_reason
from dm_hpc.cli.tables import fitted

from .helpers import dm, write_campaign

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def test_stop_on_a_campaign_that_is_not_running_leaves_no_stop_file(tmp_path):
    """Issue 19: `dm-hpc stop` on a finished campaign left a STOP file that ended every later run."""
    c = load_campaign(write_campaign(tmp_path, name="idle", lab=False))
    res = dm("stop", str(tmp_path / "idle.yaml"))
    assert res.returncode == 0 and "idle is not started; nothing to stop" in res.stdout, res.stdout
    assert not (c.run_dir / STOP_FILE).exists()
    journal = jn.Journal(c.run_dir / "journal.jsonl")  # a campaign that ran and ended
    journal.write("start", campaign="idle")
    journal.write("stop", reason="calculation budget reached (8)")
    journal.close()
    res = dm("stop", str(tmp_path / "idle.yaml"))
    assert "not running (last run ended: calculation budget reached (8)); nothing to stop" in res.stdout
    assert not (c.run_dir / STOP_FILE).exists()


def test_a_stale_stop_request_is_explained_served_once_and_clearable(tmp_path):
    path = write_campaign(tmp_path, name="stale", lab=False, calculations=2)
    c = load_campaign(path)
    c.run_dir.mkdir(parents=True)
    (c.run_dir / STOP_FILE).write_text("stop requested\n")  # left by a run killed before serving it
    res = dm("run", str(path))
    assert res.returncode == 0, res.stderr
    assert "a stop request is pending" in res.stdout and f"`dm-hpc resume {path}` drops it" in res.stdout
    assert "stopped by request" in res.stdout and f"`dm-hpc resume {path}` continues it" in res.stdout
    assert not (c.run_dir / STOP_FILE).exists()  # served: the next run is not ended by it
    (c.run_dir / STOP_FILE).write_text("stop requested\n")
    res = dm("run", str(path), "--clear-stop")
    assert res.returncode == 0 and "cleared the pending stop request" in res.stdout, res.stdout
    assert "calculation budget reached (2)" in res.stdout, res.stdout
    # output was a pipe, not a terminal: plain timestamped lines, never cut at 80 columns
    lines = [ln for ln in res.stdout.splitlines() if STAMP.match(ln)]
    assert lines and all(" stale: " in ln for ln in lines), res.stdout
    assert "stale: stopped: calculation budget reached (2) | in flight 0 | done 2 | failed 0" in lines[-1]
    assert "best mixing_energy=" in lines[-1] and len(lines[-1]) > 80  # a long line stays whole
    assert f"  HDF5 store:  {tmp_path / 'store'}" in res.stdout.splitlines()


def test_wall_time_message_gives_elapsed_limit_and_field(tmp_path):
    """Issue 19: on resume it printed `wall-time budget reached (725 s)`: the elapsed time only."""
    c = load_campaign(write_campaign(tmp_path, name="w", lab=False, budget={"wall_time": "170s"}))
    state = jn.State(started_at=1000.0)
    assert budget_reason(c, state, 1000.0 + 169) is None
    why = budget_reason(c, state, 1000.0 + 725)
    assert why == ("wall-time budget reached: 725 s since the first start, limit 170 s "
                   "(raise budget.wall_time to go on)")


def test_the_final_lab_batch_is_not_started_when_it_cannot_finish_in_the_wall_time(tmp_path):
    """Issue 19: a 170 s budget stopped at 297 s; the final lab suggestion alone took 93 s."""
    c = load_campaign(write_campaign(tmp_path, name="late", budget={"wall_time": "1h", "lab_experiments": 4,
                                                                    "core_hours_per_lab_day": 0.5}))
    journal = jn.Journal(c.run_dir / "journal.jsonl")
    journal.write("start", campaign="late")
    journal.write("lab_suggested", batch=1, samples=[], seconds=4000.0)  # a lab batch that took 4000 s
    journal.write("stop", reason="interrupted")
    journal.close()
    (c.run_dir / STOP_FILE).write_text("stop requested\n")
    summary = CampaignManager(c, quiet=True).run()
    assert summary.reason == "stopped by request (dm-hpc stop)"
    [note] = summary.notes
    assert note.startswith("final lab batch not planned: it takes about 4000 s and 3")
    assert "budget.wall_time = 3600 s" in note and "dm-hpc suggest" in note
    assert not jn.replay(c.run_dir / "journal.jsonl").lab  # nothing sent to the lab
    # with time enough, the same stop plans the batch, and it is timed in the journal
    (tmp_path / "b").mkdir()
    c2 = load_campaign(write_campaign(tmp_path / "b", name="intime", budget={"wall_time": "1h", "lab_experiments": 4,
                                                                       "core_hours_per_lab_day": 0.5}))
    c2.run_dir.mkdir(parents=True)
    (c2.run_dir / STOP_FILE).write_text("stop requested\n")
    t = time.time()
    summary = CampaignManager(c2, quiet=True).run()
    assert summary.notes == [] and len(jn.replay(c2.run_dir / "journal.jsonl").lab) == 2
    [ev] = [e for e in jn.Journal.events(c2.run_dir / "journal.jsonl") if e["event"] == "lab_suggested"]
    assert 0 <= ev["seconds"] <= time.time() - t


def test_a_run_whose_wall_time_was_spent_before_it_began_shows_no_negative_utilisation(tmp_path):
    """User trial: `worker utilisation: -0%` when the wall-time budget was already spent at start.
    A task found finished on resume was counted busy from a clock read after the collect's own
    (a few microseconds below zero), over a run that gave the workers no time at all."""
    from dm_hpc.compute import CalcFailure, FailureKind, write_result

    from .simulation import EmulatedCluster

    path = write_campaign(tmp_path, name="spent", lab=False, budget={"calculations": 8, "wall_time": "170s"})
    c = load_campaign(path)
    journal = jn.Journal(c.run_dir / "journal.jsonl")
    t = time.time() - 3600  # started an hour ago: the 170 s are long spent
    task = {"task_id": "spent-c00001", "fidelity": "emt", "composition": {"Cu": 0.5, "Ni": 0.5}, "process": {}}
    journal.write_many([{"t": t, "event": "start", "campaign": "spent"}, {"t": t + 1, "event": "planned", **task},
                        {"t": t + 2, "event": "submitted", "task_id": "spent-c00001"}])
    journal.close()
    # the killed manager's task finished meanwhile: this run collects it without having seen it start
    (c.run_dir / "tasks" / "spent-c00001").mkdir(parents=True)
    write_result(c.run_dir / "tasks" / "spent-c00001", CalcFailure(kind=FailureKind.scf_not_converged, reason="test",
                                                                  method="emt", composition=task["composition"]))
    summary = CampaignManager(c, quiet=True, runner=EmulatedCluster(seed=0)).run()
    assert summary.reason.startswith("wall-time budget reached") and summary.failed == 1
    assert summary.utilisation is None  # no slot was open and nothing ran: no share to give
    res = dm("run", str(path))  # again, on the CLI: it says so rather than a number
    assert "wall-time budget reached" in res.stdout, res.stdout + res.stderr
    assert "  worker utilisation: none (the run stopped as it started: no time for calculations)" in \
        res.stdout.splitlines(), res.stdout
    assert "-0%" not in res.stdout


def _console(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, color_system=None)


def test_a_wide_table_becomes_a_list_at_80_columns():
    """Issue 19: `models` and `status` tables were unreadable at 80 columns."""
    table = Table(title="alloys: model versions")
    for col in ("version", "created", "records", "surrogate", "held-out RMSE", "coverage 90 %", "status"):
        table.add_column(col)
    table.add_row("v0003", "2026-12-01T10:00:00Z", "120", "multitask",
                  "mixing_energy 0.01234, density 0.05678, raw_material_cost 123.4", "88%", "current")
    narrow = _console(80)
    narrow.print(fitted(table, narrow))
    text = narrow.file.getvalue()
    assert "version v0003" in text and "  held-out RMSE: mixing_energy 0.01234, density 0.05678" in text
    assert max(len(ln) for ln in text.splitlines()) <= 80
    wide = _console(200)
    assert fitted(table, wide) is table  # it fits: the table itself


def test_status_fits_80_columns(tmp_path):
    path = write_campaign(tmp_path, name="st", lab=False)
    c = load_campaign(path)
    journal = jn.Journal(c.run_dir / "journal.jsonl")
    journal.write("start", campaign="st")
    journal.write("stop", reason="wall-time budget reached: 725 s since the first start, limit 170 s "
                                 "(raise budget.wall_time to go on)")
    journal.close()
    res = dm("status", str(path))
    assert res.returncode == 0, res.stderr
    assert "tasks ingested" in res.stdout
    table = [ln for ln in res.stdout.splitlines() if ln[:1] in "┏┃┡│└"]
    assert table and all(len(ln) <= 80 for ln in table), res.stdout
    # the reason reads as a sentence, not folded into a narrow table's title, and in a log file
    # it stays one line
    assert ("  wall-time budget reached: 725 s since the first start, limit 170 s "
            "(raise budget.wall_time to go on)") in res.stdout.splitlines(), res.stdout


def test_resume_drops_a_stop_request_and_continues(tmp_path):
    """Issue 19 item 4: `run` on a stopped campaign should say how to go on, and `dm-hpc resume`
    should do it (the same as `run --clear-stop`)."""
    path = write_campaign(tmp_path, name="again", lab=False, calculations=2)
    c = load_campaign(path)
    c.run_dir.mkdir(parents=True)
    (c.run_dir / STOP_FILE).write_text("stop requested\n")
    res = dm("resume", str(path), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "cleared the pending stop request" in res.stdout, res.stdout
    assert "calculation budget reached (2)" in res.stdout and "stopped by request" not in res.stdout, res.stdout
    assert not (c.run_dir / STOP_FILE).exists()


def test_a_log_file_hears_from_a_quiet_run_at_least_once_a_minute(tmp_path, monkeypatch):
    """Issue 19: with output redirected to a file, `run` logged nothing for 4 minutes. Plain
    progress lines come at most every ``LOG_EVERY_S`` while something changes, and a heartbeat
    line at least every ``LOG_HEARTBEAT_S`` while nothing does."""
    from dm_hpc.campaign import manager

    out = io.StringIO()
    m = CampaignManager(load_campaign(write_campaign(tmp_path, name="quiet", lab=False)),
                        console=Console(file=out, width=80))
    clock = [1000.0]
    monkeypatch.setattr(manager.time, "time", lambda: clock[0])
    beat, same, new = manager.LOG_HEARTBEAT_S, "in flight 2 | done 0", "in flight 1 | done 1"
    # printed, unchanged (quiet), unchanged for a minute (heartbeat), changed too soon, changed
    for t, text in [(0, same), (30, same), (beat + 1, same), (beat + 2, new), (beat + 2 + manager.LOG_EVERY_S, new)]:
        clock[0] = 1000.0 + t
        m._log_line(text)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and all(STAMP.match(ln) for ln in lines), lines
    assert [ln.split(": ", 1)[1] for ln in lines] == [same, same, new]


def test_prose_lines_stay_whole_in_a_log_file(tmp_path):
    """First-hour review: with output to a file or a Slurm log rich wrapped every message at 80
    columns, mid-phrase (the `validate` ok line, `train`'s held-out RMSE line)."""
    name = "a-campaign-name-long-enough-to-pass-80-columns"
    res = dm("validate", str(write_campaign(tmp_path, name=name)))
    assert res.returncode == 0, res.stderr
    [line] = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert line.startswith(f"ok: {name}: 3 elements") and line.endswith("runner local"), res.stdout
