"""A job Slurm queued is followed by its id even when its line in the submissions journal cannot
be written (disk full, permission): before, the launch was undone in the runner (its tasks back
in the backlog, launched again later: a second run of each) and a bare OSError reached the
caller. Now the error names the journal file and says that the job is followed.

FAKES: the fake ``sbatch``/``squeue`` of ``test_slurm_outages``; the journal's append raises
ENOSPC, as on a full disk."""
from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest

from dm_hpc.runners import JobState, slurmcli
from dm_hpc.runners.core import UnrecordedLaunch
from dm_hpc.runners.slurm import SlurmRunner
from dm_hpc.runners.submissions import Submission, SubmissionLog
from tests.runners.test_slurm_outages import fake_slurm, queued, site, task  # noqa: F401 -- a fixture


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def append(self: SubmissionLog, sub: Submission) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SubmissionLog, "append", append)


def complete_and_poll(folder: Path, runner: SlurmRunner) -> list:
    (folder / "queue").write_text("1001 x COMPLETED\n")
    time.sleep(0.25)
    return runner.poll()


def test_a_journal_that_cannot_be_written_leaves_the_queued_job_followed(fake_slurm, full_disk, tmp_path: Path):
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    with pytest.raises(UnrecordedLaunch, match=r"queued job 1001 .*submissions journal \S*submissions\.jsonl "
                                               r"\(\[Errno 28\] No space left on device\)") as err:
        runner.submit([task(tmp_path)])
    assert "not submitted again" in str(err.value) and "dm-c-t1--" in str(err.value)  # its job name
    assert runner.job_ids() == {"t1": "1001"} and runner.in_flight() == 1
    time.sleep(0.25)
    assert runner.poll() == [] and queued(fake_slurm) == ["1001"]  # never launched again
    [out] = complete_and_poll(fake_slurm, runner)
    assert (out.state, out.job_id, out.attempts) == (JobState.COMPLETED, "1001", 1)
    assert queued(fake_slurm) == ["1001"]


def test_a_job_found_after_a_lost_reply_is_followed_though_its_line_cannot_be_written(
        fake_slurm, full_disk, tmp_path: Path):
    (fake_slurm / "sbatch-timeouts").write_text("1")
    (fake_slurm / "name-hidden").write_text(str(len(slurmcli.LOOKUP_PAUSES_S)))
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    assert runner.job_ids() == {"t1": None}
    time.sleep(0.25)
    with pytest.raises(UnrecordedLaunch, match="submissions.jsonl"):
        runner.poll()  # the look-up finds job 1001
    assert runner.job_ids() == {"t1": "1001"}
    time.sleep(0.25)
    assert runner.poll() == [] and queued(fake_slurm) == ["1001"]
    [out] = complete_and_poll(fake_slurm, runner)
    assert (out.state, out.job_id) == (JobState.COMPLETED, "1001") and queued(fake_slurm) == ["1001"]
