"""A Slurm controller that answers late or not at all: an sbatch whose reply was lost is found by
its job name instead of being submitted twice; a poll during an outage is "no news", not the end
of the campaign; missing Slurm commands are named, not a traceback.

FAKES: ``sbatch`` and ``squeue`` below are bash scripts put first on PATH (written by
:func:`fake_slurm`), standing in for a busy or restarting slurmctld, which the local Slurm cannot
be made to be on demand. They keep their "queue" in a file: one line ``ID NAME STATE`` per job
that the fake controller accepted. A ``down`` file beside them makes every call fail as an
unreachable controller does; ``sbatch-timeouts`` holds how many of the next sbatch calls get
no reply (the job is queued all the same unless ``sbatch-drops`` exists); ``name-hidden`` holds
how many of the next look-ups by job name (``squeue -n``) see nothing, as while slurmctld is still
processing a submission; ``squeue-fails`` how many of the next squeue calls fail. ``scontrol``
says accounting is on when an ``accounting`` file exists; ``sacct`` then knows the queue's jobs
and those in ``purged`` (same lines: jobs slurmctld forgot after MinJobAge, which squeue no
longer shows); a ``jobcomp.log`` file makes it the job-completion log (``jobcomp/filetxt``).
The look-up window after a lost sbatch reply is shortened to 0.15 s."""
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
id=$(( 1001 + $(cat "$here/queue" "$here/purged" 2>/dev/null | wc -l) ))
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
fails=$(cat "$here/squeue-fails" 2>/dev/null || echo 0)
if [ "$fails" -gt 0 ]; then
  echo $((fails - 1)) > "$here/squeue-fails"
  echo "squeue: error: slurm_load_jobs error: Unexpected message received" >&2
  exit 1
fi
name=""; format=""
while [ $# -gt 0 ]; do
  case "$1" in -n) name="$2"; shift;; -o) format="$2"; shift;; esac
  shift
done
hidden=$(cat "$here/name-hidden" 2>/dev/null || echo 0)
if [ -n "$name" ] && [ "$hidden" -gt 0 ]; then
  echo $((hidden - 1)) > "$here/name-hidden"
  exit 0
fi
while read -r id jobname state; do
  if [ -n "$name" ]; then  # -o %i: the id; -o %i|%j: the id and the name
    case ",$name," in *",$jobname,"*) if [ "$format" = "%i|%j" ]; then echo "$id|$jobname"; else echo "$id"; fi;; esac
  else
    echo "$id|$state|0|"
  fi
done < "$here/queue"
"""


FAKE_SCONTROL = """#!/bin/bash
here=$(dirname "$0")
if [ -e "$here/accounting" ]; then echo "AccountingStorageType = accounting_storage/slurmdbd"
else echo "AccountingStorageType = accounting_storage/none"; fi
if [ -e "$here/jobcomp.log" ]; then echo "JobCompType = jobcomp/filetxt"; echo "JobCompLoc = $here/jobcomp.log"; fi
"""

FAKE_SACCT = """#!/bin/bash
here=$(dirname "$0")
echo "sacct $*" >> "$here/sacct.log"
name=""; jobs=""; fields=""
while [ $# -gt 0 ]; do
  case "$1" in --name) name="$2"; shift;; -j) jobs="$2"; shift;; -o) fields="$2"; shift;; esac
  shift
done
touch "$here/purged"
cat "$here/queue" "$here/purged" | while read -r id jobname state; do
  if [ -n "$name" ]; then  # -o JobID or -o JobID,JobName
    case ",$name," in *",$jobname,"*) if [ "$fields" = JobID ]; then echo "$id"; else echo "$id|$jobname"; fi;; esac
  else
    case ",$jobs," in *",$id,"*) echo "$id|$state|0:0";; esac
  fi
done
"""


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The folder of the fake ``sbatch``/``squeue``/``scontrol``/``sacct`` (first on PATH) and
    their queue file."""
    folder = fake_commands(tmp_path / "fake-slurm", monkeypatch, {
        "sbatch": FAKE_SBATCH, "squeue": FAKE_SQUEUE, "scontrol": FAKE_SCONTROL, "sacct": FAKE_SACCT})
    (folder / "queue").write_text("")
    monkeypatch.setattr(slurmcli, "LOOKUP_PAUSES_S", (0.01, 0.02, 0.04, 0.08))
    slurmcli.config.cache_clear()  # the fake scontrol's, not a real cluster's read earlier
    yield folder
    slurmcli.config.cache_clear()


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
    """Not in the same breath: after the look-up window the batch waits, its job id unknown, and
    goes again only once the look-up at the next poll says that no such job is there."""
    (fake_slurm / "sbatch-timeouts").write_text("1")
    (fake_slurm / "sbatch-drops").touch()  # the timed-out call queued nothing
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    assert queued(fake_slurm) == [] and runner.job_ids() == {"t1": None}
    time.sleep(0.25)  # past the poll interval
    assert runner.poll() == []
    assert queued(fake_slurm) == ["1001"] and runner.job_ids() == {"t1": "1001"}
    assert lookups(fake_slurm) == len(slurmcli.LOOKUP_PAUSES_S) + 1


def test_sbatch_is_not_repeated_while_nobody_can_say_whether_it_was_queued(fake_slurm, tmp_path: Path):
    """The controller took the job, lost the reply, then stopped answering squeue too: sbatch is
    not called again (the job is there), one notice says that the job may be queued, the campaign
    goes on, and the job is followed once squeue answers again."""
    (fake_slurm / "sbatch-timeouts").write_text("1")
    squeue = fake_slurm / "squeue"
    squeue.write_text(f"#!/bin/bash\n{UNREACHABLE}\n")
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    [note] = runner.take_notices()
    assert "may have queued" in note and "squeue --me -n dm-c-t1--" in note
    for _ in range(2):
        time.sleep(0.25)
        assert runner.poll() == [] and runner.states() == {"t1": JobState.PENDING}
    assert queued(fake_slurm) == ["1001"] and runner.job_ids() == {"t1": None}  # no second sbatch
    squeue.write_text(FAKE_SQUEUE)
    time.sleep(0.25)
    runner.poll()
    assert runner.job_ids() == {"t1": "1001"} and journalled_jobs(tmp_path / "slurm") == ["1001"]


def lookups(folder: Path) -> int:
    """squeue calls that looked a job up by its name."""
    return sum(" -n " in line for line in (folder / "squeue.log").read_text().splitlines())


def test_a_job_slurmctld_shows_late_is_found_within_the_look_up_window(fake_slurm, tmp_path: Path):
    """A review: after a lost sbatch reply squeue was asked once, 0.5 s later; a job slurmctld was
    still processing was not there yet, so the task was queued twice. Now the look-up goes on over
    a window, backing off (``LOOKUP_PAUSES_S``): here the job shows at the third look-up."""
    (fake_slurm / "sbatch-timeouts").write_text("1")
    (fake_slurm / "name-hidden").write_text("2")
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    assert queued(fake_slurm) == ["1001"] and runner.job_ids() == {"t1": "1001"}
    assert journalled_jobs(tmp_path / "slurm") == ["1001"] and lookups(fake_slurm) == 3


def test_a_job_that_shows_only_after_the_window_is_adopted_not_queued_again(fake_slurm, tmp_path: Path):
    """Past the window the batch is not submitted again in the same breath: it stays in flight with
    no job id, and the look-up at the next poll (before any sbatch) finds the job and follows it."""
    (fake_slurm / "sbatch-timeouts").write_text("1")
    (fake_slurm / "name-hidden").write_text(str(len(slurmcli.LOOKUP_PAUSES_S)))
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    assert runner.job_ids() == {"t1": None} and runner.states() == {"t1": JobState.PENDING}
    time.sleep(0.25)
    assert runner.poll() == []
    assert queued(fake_slurm) == ["1001"] and runner.job_ids() == {"t1": "1001"}
    assert journalled_jobs(tmp_path / "slurm") == ["1001"]
    (fake_slurm / "queue").write_text("1001 x COMPLETED\n")
    time.sleep(0.25)
    [out] = runner.poll()
    assert (out.task_id, out.state, out.job_id, out.attempts) == ("t1", JobState.COMPLETED, "1001", 1)


def test_the_look_up_asks_sacct_where_accounting_is_on(fake_slurm, tmp_path: Path):
    """A short job may have left slurmctld (MinJobAge) before the look-up: sacct still knows it."""
    (fake_slurm / "accounting").touch()
    (fake_slurm / "sbatch-timeouts").write_text("1")
    (fake_slurm / "name-hidden").write_text("100")  # squeue never shows it
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    assert queued(fake_slurm) == ["1001"] and runner.job_ids() == {"t1": "1001"}
    assert "--name dm-c-t1--" in (fake_slurm / "sacct.log").read_text()


def test_a_task_cancelled_while_its_job_is_unknown_is_cancelled_when_the_job_shows(fake_slurm, tmp_path: Path):
    """Its job id unknown, there is nothing to scancel: the job the look-up then finds is."""
    (fake_slurm / "sbatch-timeouts").write_text("1")
    (fake_slurm / "name-hidden").write_text(str(len(slurmcli.LOOKUP_PAUSES_S)))
    (fake_slurm / "scancel").write_text('#!/bin/bash\necho "$*" >> "$(dirname "$0")/scancel.log"\n')
    (fake_slurm / "scancel").chmod(0o755)
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    runner.cancel(["t1"])  # nothing to scancel yet
    assert not (fake_slurm / "scancel.log").exists()
    time.sleep(0.25)
    assert runner.poll() == []
    assert (fake_slurm / "scancel.log").read_text().split() == ["1001"]
    (fake_slurm / "queue").write_text("1001 x CANCELLED\n")
    time.sleep(0.25)
    [out] = runner.poll()
    assert (out.state, out.job_id) == (JobState.CANCELLED, "1001") and queued(fake_slurm) == ["1001"]


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


def squeue_calls(folder: Path) -> int:
    return len((folder / "squeue.log").read_text().splitlines()) if (folder / "squeue.log").exists() else 0


@pytest.mark.parametrize("backend", ["slurm", "farm"])
def test_polls_back_off_alike_while_squeue_fails(fake_slurm, tmp_path: Path, backend: str):
    """A review: the MPI farm runner asked squeue at every poll while its new farm's state was
    unknown, so during an outage it asked with no back-off. Both runners now ask when their poll
    clock says (a fake clock here: 20 polls 0.5 s apart, an interval of 1 s doubling to 8 s):
    at 0.5, 2.5 and 6.5 s, and the farm's task is no news (PENDING, not LOST) meanwhile."""
    from dm_hpc.runners.mpi_farm import MpiFarmRunner
    from dm_hpc.runners.polling import PollClock

    now = [0.0]
    runner = (SlurmRunner(site(), tmp_path / "slurm", own_folder=True) if backend == "slurm"
              else MpiFarmRunner(site(), tmp_path / "farm"))
    runner.clock = PollClock(1.0, 2.0, 8.0, clock=lambda: now[0])
    runner.submit([task(tmp_path)])
    (fake_slurm / "squeue-fails").write_text("100")
    for _ in range(20):
        now[0] += 0.5
        assert runner.poll() == [] and runner.states() == {"t1": JobState.PENDING}
    assert squeue_calls(fake_slurm) == 3
    assert [n.split(" (")[0] for n in runner.take_notices()] == ["warning: Slurm does not answer"]
    (fake_slurm / "squeue-fails").write_text("0")
    now[0] += 8
    runner.poll()
    assert squeue_calls(fake_slurm) == 4 and runner.states() == {"t1": JobState.PENDING}


def test_a_lost_reply_is_told_as_such_not_as_a_silent_controller(fake_slurm, tmp_path: Path):
    """A review: after a lost sbatch reply the notice said "Slurm does not answer", though sbatch
    may well have queued the job. It says what happened now, and what the look-up then found."""
    (fake_slurm / "sbatch-timeouts").write_text("1")
    (fake_slurm / "name-hidden").write_text(str(len(slurmcli.LOOKUP_PAUSES_S)))
    runner = SlurmRunner(site(), tmp_path / "slurm", own_folder=True)
    runner.submit([task(tmp_path)])
    [note] = runner.take_notices()
    assert note.startswith("warning: the reply to a submission was lost (") and "does not answer" not in note
    assert "looked up by its name" in note and "never submitted again on a guess" in note
    assert "Socket timed out" in note and "squeue --me -n dm-c-t1--" in note
    time.sleep(0.25)
    runner.poll()
    assert [n.split(":")[0] for n in runner.take_notices()] == [
        "the submission whose reply was lost did queue job 1001"]  # not "Slurm answers again"
