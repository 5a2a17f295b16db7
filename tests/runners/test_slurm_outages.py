"""A Slurm controller that answers late or not at all: an sbatch whose reply was lost is found by
its job name instead of being submitted twice; a poll during an outage is "no news", not the end
of the campaign; missing Slurm commands are named, not a traceback.

FAKES: ``sbatch`` and ``squeue`` below are bash scripts put first on PATH (written by
:func:`fake_slurm`), standing in for a busy or restarting slurmctld, which the local Slurm cannot
be made to be on demand. They keep their "queue" in a file: one line ``ID NAME STATE`` per job
that the fake controller accepted. A ``down`` file beside them makes every call fail as an
unreachable controller does; ``sbatch-timeouts`` holds how many of the next sbatch calls get
no reply (the job is queued all the same unless ``sbatch-drops`` exists)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from dm_hpc.runners import JobState, SiteProfile, TaskSpec, slurmcli
from dm_hpc.runners.slurm import SlurmRunner
from tests.runners.conftest import fake_commands

UNREACHABLE = 'echo "$(basename "$0"): error: Unable to contact slurm controller (connect failure)" >&2; exit 1'

FAKE_SBATCH = f"""#!/bin/bash
here=$(dirname "$0")
[ -e "$here/down" ] && {{ {UNREACHABLE}; }}
script="${{@: -1}}"
name=$(sed -n 's/^#SBATCH --job-name=//p' "$script" | head -1)
[ -n "$SBATCH_JOB_NAME" ] && name="$SBATCH_JOB_NAME"  # as Slurm: the command line, the environment, the script
for a in "$@"; do case "$a" in --job-name=*) name="${{a#--job-name=}}";; esac; done
id=$(( 1001 + $(wc -l < "$here/queue") ))
left=$(cat "$here/sbatch-timeouts" 2>/dev/null || echo 0)
if [ "$left" -gt 0 ]; then
  echo $((left - 1)) > "$here/sbatch-timeouts"
  [ -e "$here/sbatch-drops" ] || echo "$id $name PENDING" >> "$here/queue"
  echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation" >&2
  exit 1
fi
echo "$id $name PENDING" >> "$here/queue"
echo "$id"
"""

FAKE_SQUEUE = f"""#!/bin/bash
here=$(dirname "$0")
echo "squeue $*" >> "$here/squeue.log"
[ -e "$here/down" ] && {{ {UNREACHABLE}; }}
name=""
while [ $# -gt 0 ]; do
  case "$1" in -n) name="$2"; shift;; esac
  shift
done
while read -r id jobname state; do
  if [ -n "$name" ]; then
    [ "$jobname" = "$name" ] && echo "$id"
  else
    echo "$id|$state|0|"
  fi
done < "$here/queue"
"""


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder of the fake ``sbatch``/``squeue`` (first on PATH) and their queue file."""
    folder = fake_commands(tmp_path / "fake-slurm", monkeypatch, {"sbatch": FAKE_SBATCH, "squeue": FAKE_SQUEUE})
    (folder / "queue").write_text("")
    return folder


def queued(folder: Path) -> list[str]:
    return [line.split()[0] for line in (folder / "queue").read_text().splitlines()]


def site() -> SiteProfile:
    return SiteProfile.model_validate({"packing": "none", "poll_interval_s": 0.1, "poll_max_interval_s": 0.2})


def task(tmp_path: Path, i: int = 1) -> TaskSpec:
    return TaskSpec(task_id=f"t{i}", argv=["true"], workdir=tmp_path / f"t{i}", walltime_s=60, campaign="c")


def journalled_jobs(state_dir: Path) -> list[str]:
    import json

    return [json.loads(line)["job"] for line in (state_dir / "submissions.jsonl").read_text().splitlines()]


def test_an_sbatch_whose_reply_timed_out_is_found_by_its_name_not_queued_twice(fake_slurm, tmp_path: Path):
    (fake_slurm / "sbatch-timeouts").write_text("1")  # accepted, but the reply is lost
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    assert queued(fake_slurm) == ["1001"]  # one job, not a second copy of the task
    assert journalled_jobs(tmp_path / "slurm") == ["1001"] and runner.job_ids() == {"t1": "1001"}
    assert any(" -n dm-c-t1--" in line for line in (fake_slurm / "squeue.log").read_text().splitlines())


def test_a_job_name_in_the_users_environment_does_not_hide_the_job(fake_slurm, tmp_path: Path, monkeypatch):
    """SBATCH_JOB_NAME overrides a script's --job-name directive (the command line overrides both):
    the lookup by name after a lost reply found nothing and the task was queued twice (review)."""
    monkeypatch.setenv("SBATCH_JOB_NAME", "my-session")
    (fake_slurm / "sbatch-timeouts").write_text("1")
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    assert queued(fake_slurm) == ["1001"] and runner.job_ids() == {"t1": "1001"}


def test_an_sbatch_the_controller_never_queued_is_submitted_again(fake_slurm, tmp_path: Path):
    (fake_slurm / "sbatch-timeouts").write_text("1")
    (fake_slurm / "sbatch-drops").touch()  # the timed-out call queued nothing
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    assert queued(fake_slurm) == ["1001"] and runner.job_ids() == {"t1": "1001"}


def test_sbatch_is_not_repeated_while_nobody_can_say_whether_it_was_queued(fake_slurm, tmp_path: Path):
    """The controller took the job, lost the reply, then stopped answering squeue too: sbatch is
    not called again (the job is there), and the error says the job may be queued."""
    (fake_slurm / "sbatch-timeouts").write_text("1")
    squeue = fake_slurm / "squeue"
    squeue.write_text(f"#!/bin/bash\n{UNREACHABLE}\n")
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    with pytest.raises(slurmcli.SlurmError, match="may have queued") as err:
        runner.submit([task(tmp_path)])
    assert "squeue --me -n dm-c-t1--" in str(err.value)
    assert queued(fake_slurm) == ["1001"]  # still the one job: no second sbatch


def test_a_poll_during_a_controller_outage_is_no_news_and_warns_once(fake_slurm, tmp_path: Path):
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    assert runner.poll() == [] and runner.take_notices() == []
    (fake_slurm / "down").touch()  # slurmctld restarts
    for _ in range(2):
        time.sleep(0.25)  # past the poll interval: squeue is asked (and fails) each time
        assert runner.poll() == []
        assert runner.states() == {"t1": JobState.PENDING}
    notes = runner.take_notices()
    assert len(notes) == 1 and notes[0].startswith("warning: Slurm does not answer")
    assert "Unable to contact slurm controller" in notes[0]
    (fake_slurm / "down").unlink()
    (fake_slurm / "queue").write_text("1001 x COMPLETED\n")
    deadline = time.monotonic() + 30
    out = []
    while not out and time.monotonic() < deadline:
        time.sleep(0.1)
        out = runner.poll()
    assert [(o.task_id, o.state) for o in out] == [("t1", JobState.COMPLETED)]
    assert [n.split(" (")[0] for n in runner.take_notices()] == ["Slurm answers again"]


def test_a_hanging_squeue_is_no_news_either(fake_slurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """FAKE: ``slurmcli.states`` raises the timeout of a squeue that hangs (60 s in real life)."""
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])

    def hangs(ids):
        raise subprocess.TimeoutExpired(["squeue"], 60)

    monkeypatch.setattr(slurmcli, "states", hangs)
    assert runner.poll() == [] and runner.states() == {"t1": JobState.PENDING}
    assert len(runner.take_notices()) == 1


def test_missing_slurm_commands_are_named_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # a node without the Slurm module loaded
    script = tmp_path / "job.sbatch"
    script.write_text("#!/bin/bash\ntrue\n")
    with pytest.raises(slurmcli.SlurmError, match="sbatch not found on PATH"):
        slurmcli.sbatch(script, [])
    with pytest.raises(slurmcli.SlurmError, match="squeue not found on PATH"):
        slurmcli.squeue(["1"])


def test_a_task_waiting_for_its_launch_during_an_outage_stays_queued_and_goes_later(fake_slurm, tmp_path: Path):
    """A review (stop 46): squeue's outage was no news, but a task held back by the submit rate met
    the outage at its sbatch, and poll() raised: the run ended with "fix the site profile". A
    connect failure queued nothing (fake controller): the task stays queued, one notice says so,
    and it goes at the first poll after slurmctld answers again."""
    site = SiteProfile.model_validate({"packing": "none", "poll_interval_s": 0.1, "poll_max_interval_s": 0.2,
                                       "submit_rate_per_s": 1.0})
    runner = SlurmRunner(site, tmp_path / "slurm", own_folder=True)
    specs = [TaskSpec(task_id=f"t{i}", argv=["true"], workdir=tmp_path / f"t{i}", walltime_s=60 * i, campaign="c")
             for i in (1, 2)]
    runner.submit(specs)  # two shapes: t2 waits for the next submit-rate slot
    assert len(queued(fake_slurm)) == 1 and len(runner._backlog) == 1
    (fake_slurm / "down").touch()
    for _ in range(2):
        time.sleep(1.1)
        runner.poll()  # no SlurmError
    notes = runner.take_notices()
    assert sum("stay queued" in n for n in notes) == 1 and len(runner._backlog) == 1
    (fake_slurm / "down").unlink()
    time.sleep(1.1)
    runner.poll()
    assert len(queued(fake_slurm)) == 2 and not runner._backlog
