"""The restart window: a batch that has a manifest but no line in the submissions journal (its
sbatch reply was lost, or the manager died between sbatch and the line) is looked up by its job
name at re-attach, in every source that may know it: squeue, then sacct where accounting is on,
else the job-completion log. A job that finished while the manager was away used to be looked
for in squeue only: not found, its task went back to the backlog and ran a second time (its
finished result cleared at the relaunch). A batch no source knows is left to the manager, as a
journalled job no source knows is (LOST: it takes a result file, else submits again).

FAKES: the fake ``sbatch``/``squeue``/``sacct``/``scontrol`` of ``test_slurm_outages``; a job
"purged" there left slurmctld (MinJobAge) and only sacct (or the job-completion log) knows it.
The last test runs on the local Slurm, with an empty ``squeue`` standing in for a slurmctld that
forgot the job (its MinJobAge is a day), so that the real sacct is asked by name."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from dm_hpc.runners import JobState, slurmcli
from dm_hpc.runners.slurm import SlurmRunner
from tests.runners.conftest import fake_commands
from tests.runners.test_slurm_outages import fake_slurm, queued, site, task  # noqa: F401 -- a fixture


def purge(folder: Path, state: str = "COMPLETED") -> None:
    """Every job of the fake queue ends in ``state`` and leaves slurmctld (MinJobAge)."""
    lines = (folder / "queue").read_text().split("\n")
    (folder / "purged").write_text("".join(f"{ln.rsplit(' ', 1)[0]} {state}\n" for ln in lines if ln.strip()))
    (folder / "queue").write_text("")


def died_before_the_journal_line(tmp_path: Path) -> Path:
    """One task submitted by a manager that died between sbatch and its submissions line (the
    files it leaves: the batch folder with manifest and script, no journal line)."""
    state = tmp_path / "slurm"
    SlurmRunner(site(), state, own_folder=True).submit([task(tmp_path)])
    (state / "submissions.jsonl").unlink()
    return state


def finish(tmp_path: Path) -> None:
    """What the task's run left in its folder: a result and its times file."""
    (tmp_path / "t1" / "result.json").write_text('{"ok": true}')
    (tmp_path / "t1" / "dm-task.times").write_text("started 100.0\nended 160.0 0\n")


def restarted_and_followed(state: Path, fake_slurm: Path) -> None:
    """A restarted runner follows t1's job 1001, found by its name, to its end: never queued again."""
    again = SlurmRunner(site(), state, own_folder=True)
    assert again.reattach("c") == ["t1"] and again.job_ids() == {"t1": "1001"}
    time.sleep(0.25)
    [out] = again.poll()
    assert (out.state, out.job_id) == (JobState.COMPLETED, "1001") and queued(fake_slurm) == []


def test_a_job_that_left_the_queue_while_the_manager_was_away_is_found_in_sacct(fake_slurm, tmp_path: Path):
    (fake_slurm / "accounting").touch()
    state = died_before_the_journal_line(tmp_path)
    finish(tmp_path)
    purge(fake_slurm)
    again = SlurmRunner(site(), state, own_folder=True)
    assert again.reattach("c") == ["t1"] and again.job_ids() == {"t1": "1001"}
    assert "--name dm-c-t1--" in (fake_slurm / "sacct.log").read_text()
    time.sleep(0.25)
    [out] = again.poll()
    assert (out.state, out.job_id, out.attempts) == (JobState.COMPLETED, "1001", 1)
    assert queued(fake_slurm) == [] and (fake_slurm / "purged").read_text().split()[0] == "1001"
    assert (tmp_path / "t1" / "result.json").exists()  # not cleared by a second launch


def test_without_accounting_the_job_completion_log_knows_it(fake_slurm, tmp_path: Path):
    state = died_before_the_journal_line(tmp_path)
    name = slurmcli.unique_job_name(next((state / "batches").glob("*/job.sbatch")))
    (fake_slurm / "jobcomp.log").write_text(
        f"JobId=1001 UserId=me(1000) GroupId=me(1000) Name={name} JobState=COMPLETED Partition=debug "
        f"ExitCode=0:0\n")
    purge(fake_slurm)
    restarted_and_followed(state, fake_slurm)


def test_a_batch_no_source_knows_is_left_to_the_manager_not_queued_again(fake_slurm, tmp_path: Path):
    """No accounting, no job-completion log, the job purged: as for a journalled job no source
    knows, the runner neither follows it nor queues it again; the campaign manager takes the
    result file it finds (``_resume``), else submits the task again."""
    state = died_before_the_journal_line(tmp_path)
    finish(tmp_path)
    purge(fake_slurm)
    again = SlurmRunner(site(), state, own_folder=True)
    assert again.reattach("c") == [] and again.in_flight() == 0
    time.sleep(0.25)
    assert again.poll() == [] and queued(fake_slurm) == []  # no second sbatch
    assert (tmp_path / "t1" / "result.json").exists()


def test_a_lost_reply_then_a_restart_finds_the_job_by_name(fake_slurm, tmp_path: Path):
    """The sbatch reply was lost and the job did not show within the look-up window; the manager
    died; the job ran and left slurmctld meanwhile: sacct finds it by its name."""
    (fake_slurm / "accounting").touch()
    (fake_slurm / "sbatch-timeouts").write_text("1")
    (fake_slurm / "name-hidden").write_text(str(len(slurmcli.LOOKUP_PAUSES_S)))
    (fake_slurm / "sacct").write_text("#!/bin/bash\nexit 0\n")  # sacct lags: nothing yet
    state = tmp_path / "slurm"
    first = SlurmRunner(site(), state, own_folder=True)
    first.submit([task(tmp_path)])
    assert first.job_ids() == {"t1": None} and not (state / "submissions.jsonl").exists()
    from tests.runners.test_slurm_outages import FAKE_SACCT

    (fake_slurm / "sacct").write_text(FAKE_SACCT)
    purge(fake_slurm)
    restarted_and_followed(state, fake_slurm)


def test_a_retry_no_source_knows_is_not_mistaken_for_its_earlier_attempt(fake_slurm, tmp_path: Path):
    """Attempt 1 (journalled) failed and was retried; attempt 2's line is missing and its job is
    gone: the restart must not follow attempt 1's FAILED job, whose retry would run the task a
    third time. The task is LOST, for the manager to decide."""
    from dm_hpc.runners import RetryPolicy

    state = tmp_path / "slurm"
    first = SlurmRunner(site(), state, own_folder=True, retry=RetryPolicy(max_failed=2))
    first.submit([task(tmp_path)])
    (fake_slurm / "queue").write_text((fake_slurm / "queue").read_text().replace("PENDING", "FAILED"))
    time.sleep(0.25)
    assert first.poll() == [] and first.job_ids() == {"t1": "1002"}  # retried
    journal = state / "submissions.jsonl"
    journal.write_text(journal.read_text().splitlines()[0] + "\n")  # died before attempt 2's line
    finish(tmp_path)
    attempt1, attempt2 = (fake_slurm / "queue").read_text().splitlines()
    (fake_slurm / "queue").write_text(attempt1 + "\n")  # squeue still shows attempt 1's job, FAILED
    (fake_slurm / "purged").write_text(attempt2.replace("PENDING", "COMPLETED") + "\n")  # no accounting
    again = SlurmRunner(site(), state, own_folder=True, retry=RetryPolicy(max_failed=2))
    assert again.reattach("c") == [] and again.in_flight() == 0
    time.sleep(0.25)
    assert again.poll() == [] and queued(fake_slurm) == ["1001"]  # no third sbatch


@pytest.mark.slurm
def test_on_the_local_slurm_a_finished_unjournalled_job_is_found_by_sacct(slurm_site, make_task, tmp_path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    import json

    state = tmp_path / "state"
    spec = make_task(0, ["true"])
    SlurmRunner(slurm_site, state).submit([spec])  # the manager dies after sbatch
    [journal] = state.rglob("submissions.jsonl")
    job = json.loads(journal.read_text())["job"]
    [script] = state.rglob("job.sbatch")
    name = slurmcli.unique_job_name(script)
    deadline = time.monotonic() + 120
    # done, and findable by its name: slurmdbd answers a query by name some seconds after one by id
    while slurmcli.sacct([job]).get(job, (JobState.PENDING,))[0] is not JobState.COMPLETED or job not in \
            slurmcli.call(["sacct", "-X", "-n", "-P", "--name", name, "-S", "now-1hours", "-o", "JobID"]).split():
        assert time.monotonic() < deadline, f"job {job} did not complete in sacct"
        time.sleep(0.5)
    journal.unlink()  # ... before its journal line
    fake_commands(tmp_path / "bin", monkeypatch, {"squeue": "#!/bin/bash\nexit 0\n"})  # slurmctld forgot it
    again = SlurmRunner(slurm_site, state)
    assert again.reattach(spec.campaign) == ["t0"] and again.job_ids() == {"t0": job}
    [out] = _poll_one(again)
    assert (out.state, out.job_id, out.attempts) == (JobState.COMPLETED, job, 1)


def _poll_one(runner: SlurmRunner) -> list:
    """The first outcomes a runner reports within a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = runner.poll()
        if got:
            return got
        time.sleep(0.2)
    return []
