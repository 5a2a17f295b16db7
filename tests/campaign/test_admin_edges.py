"""What a user-edge pass as a cluster admin and operator found (stop 34): cancelled jobs, a
resumed campaign's status, the retraining cron job, models switches, runners cancel. Each test
fails on the code before its fix. Real journal, store and campaign files."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.cli import app
from tests.campaign.helpers import write_campaign


def _journal(path, events):
    c = load_campaign(path)
    c.run_dir.mkdir(parents=True, exist_ok=True)
    journal = jn.Journal(c.run_dir / "journal.jsonl")
    for event, data in events:
        journal.write(event, **data)
    journal.close()
    return c


def _failed(i: int, kind: str):
    task = f"t-{i}"
    return [("planned", {"task_id": task, "fidelity": "emt", "composition": {"Cu": 0.5, "Ni": 0.5}}),
            ("submitted", {"task_id": task}),
            ("failed", {"task_id": task, "error": f"{kind} (exit 0): ", "kind": kind})]


def test_jobs_an_admin_cancels_do_not_trip_the_circuit_breaker(tmp_path):
    """One `scancel` of a campaign's job array (or `runners cancel`) failed its last three tasks
    as CANCELLED: the breaker stopped the fidelity, and every later `resume` stopped at once."""
    from dm_hpc.campaign.stopping import stopped_fidelities

    path = write_campaign(tmp_path, lab=False)
    cancelled = _journal(path, [("start", {"campaign": "t"})] + [e for i in range(4) for e in _failed(i, "CANCELLED")])
    state = jn.replay(cancelled.run_dir / "journal.jsonl")
    assert stopped_fidelities(cancelled, state) == {}
    (tmp_path / "b").mkdir()
    path2 = write_campaign(tmp_path / "b", lab=False)
    timeouts = _journal(path2, [("start", {"campaign": "t"})] + [e for i in range(3) for e in _failed(i, "TIMEOUT")])
    assert "TIMEOUT" in stopped_fidelities(timeouts, jn.replay(timeouts.run_dir / "journal.jsonl"))["emt"]


def test_a_resumed_campaign_is_not_shown_as_stopped(tmp_path):
    """`status` said "stopped by request (dm-hpc stop)" through the whole of a resumed run."""
    path = write_campaign(tmp_path, lab=False)
    c = _journal(path, [("start", {"campaign": "t"}), ("stop", {"reason": "stopped by request (dm-hpc stop)"}),
                        ("resume", {"campaign": "t"})])
    state = jn.replay(c.run_dir / "journal.jsonl")
    assert state.stopped is None and "stopped" not in state.phase


@pytest.mark.slurm
@pytest.mark.parametrize(("field", "value"), [("partition", "gpu-debug"), ("account", "nosuchacct"), ("qos", "nosuchqos")])
def test_a_site_name_the_cluster_does_not_know_is_refused_before_anything_runs(tmp_path, field, value):
    """A misspelt partition: `validate` said ok and `run` ended in a SlurmError traceback; a
    misspelt account or QoS ran every job under another account (real local Slurm)."""
    import yaml

    from tests.conftest import REPO

    site = yaml.safe_load((REPO / "configs/sites/local.yaml").read_text())
    site[field] = value
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(site))
    path = write_campaign(tmp_path, lab=False, runner={"kind": "slurm", "site": str(tmp_path / "bad.yaml")})
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code != 0 and f"{field} '{value}' does not exist on this cluster" in " ".join(res.output.split())
    assert res.exception is None or isinstance(res.exception, SystemExit)
    if field == "partition":
        assert "debug" in res.output  # the partitions it does have


def test_store_check_on_a_store_being_written_does_not_send_the_admin_to_repair_it(tmp_path):
    """`store check` on a running campaign's store said store.h5 was missing because "a writer died"
    and advised `--repair`, which the live writer's lock then refused."""
    from dm_hpc.data import Store

    store = Store.open(tmp_path / "s", "a")  # a writer holds it open; its view is written on close
    try:
        (tmp_path / "s" / "store.h5").unlink(missing_ok=True)
        res = CliRunner().invoke(app, ["store", "check", "--store", str(tmp_path / "s")])
        out = " ".join(res.output.split())
        assert "written when the store's writer closes it" in out and "--repair" not in out, out
    finally:
        store.close()
    (tmp_path / "s" / "store.h5").unlink(missing_ok=True)  # now a dead writer's leftover: repair it
    res = CliRunner().invoke(app, ["store", "check", "--store", str(tmp_path / "s")])
    assert "--repair" in " ".join(res.output.split())


def test_the_retraining_job_before_any_data_has_nothing_to_do_and_says_so(tmp_path):
    """`train --if-new-data` (the cron job) on a campaign without records exited 2 every night."""
    path = write_campaign(tmp_path)
    res = CliRunner().invoke(app, ["train", str(path), "--if-new-data"])
    assert res.exit_code == 0 and "nothing to train yet" in res.output, res.output
    res = CliRunner().invoke(app, ["train", str(path)])  # asked for by hand: an error
    assert res.exit_code != 0 and "no store" in res.output


def test_models_switches_refuse_contradictions_and_a_rollback_forward(tmp_path):
    """`--promote v3 --rollback v1` applied both (the last won); `--rollback` took a newer version,
    a NOT PROMOTED candidate included; `--promote ''` listed and exited 0."""
    from dm_hpc import Campaign
    from dm_hpc.campaign import registry

    path = write_campaign(tmp_path)
    api = Campaign.load(path)
    sheet = api.suggest(4)
    sheet["property:mixing_energy [eV/atom]"] = [-0.05, -0.02, -0.03, 0.01]
    api.add_measurements(sheet)
    registry.train(api.spec)
    registry.train(api.spec, registry.TrainOptions(force=True))  # the same records: a second version only when forced
    assert registry.promote(api.spec, "v0001").startswith(f"{api.name}: v0001 is now")
    for args, said in ((["--promote", "v0002", "--rollback", "v0001"], "give one"),
                       (["--rollback", "v0002"], "newer than the current v0001"),
                       (["--promote", ""], "needs a version")):
        res = CliRunner().invoke(app, ["models", str(path), *args])
        assert res.exit_code != 0 and said in " ".join(res.output.split()), (args, res.output)
    assert registry.current(api.spec) == "v0001"  # nothing switched
    res = CliRunner().invoke(app, ["models", str(path), "--promote", "v0002"])
    assert res.exit_code == 0 and registry.current(api.spec) == "v0002"


@pytest.mark.slurm
def test_runners_cancel_takes_the_campaign_file_as_runners_jobs_does(tmp_path):
    """`runners cancel c/x3.yaml` took the path for a campaign name and said "no pending or running
    job of campaign c/x3.yaml" while four of its jobs were pending (real local Slurm)."""
    path = write_campaign(tmp_path, name="qa-x3", lab=False)
    res = CliRunner().invoke(app, ["runners", "cancel", str(path)])
    assert res.exit_code == 0 and "of campaign qa-x3" in res.output and str(path) not in res.output, res.output


def test_the_retraining_scrontab_names_absolute_paths_and_a_valid_schedule(tmp_path, monkeypatch):
    """`runners scrontab` wrote `cd . && ... c/x7.yaml` (cron runs from the home folder, where
    neither means anything) and accepted minute 99."""
    path = write_campaign(tmp_path, lab=False)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["runners", "scrontab", path.name])
    assert res.exit_code == 0, res.output
    line = res.output.rstrip().splitlines()[-1]
    assert f"cd {tmp_path}" in line and str(path) in line and "cd ." not in line
    for bad, said in (("99 3 * * *", "minute '99' is outside 0-59"), ("0 24 * * *", "hour '24'"),
                      ("0 3 0 * *", "day of month '0'"), ("*/0 * * * *", "minute '*/0'")):
        res = CliRunner().invoke(app, ["runners", "scrontab", path.name, "--schedule", bad])
        assert res.exit_code == 2 and said in res.output, (bad, res.output)


def test_plan_shows_the_walltime_the_job_script_asks(tmp_path):
    """A 9999 h walltime: `plan` said `requests --time=416-15:00:00` while the script it printed
    asked `--time=02:00:00` (the site's max_walltime_s)."""
    import re

    path = write_campaign(tmp_path, lab=False, fidelities=[{"name": "emt", "kind": "calculation", "method": "emt",
                                                             "walltime": "9999h"}],
                          runner={"kind": "slurm", "site": "local"})
    res = CliRunner().invoke(app, ["plan", str(path), "--dry-run", "--tasks", "1"])
    assert res.exit_code == 0, res.output
    asked = re.search(r"requests --time=(\S+)", res.output).group(1)
    script = re.search(r"#SBATCH --time=(\S+)", res.output).group(1)
    assert asked == script and "capped at the site's max_walltime_s" in res.output, res.output


@pytest.mark.slurm
def test_a_submission_the_runner_cannot_journal_ends_the_run_with_its_words_not_a_traceback(tmp_path):
    """The runner's submissions journal cannot be written (here: a folder where the file goes; on a
    cluster a full disk): the job Slurm queued is followed, not submitted again, and `dm-hpc run`
    ends naming the journal file and how the run goes on (real local Slurm)."""
    import uuid

    from dm_hpc.runners import slurmcli
    from tests.conftest import REPO

    name = f"nojournal{uuid.uuid4().hex[:8]}"  # its own jobs only: the local Slurm is shared by earlier runs
    path = write_campaign(tmp_path, name=name, lab=False, calculations=2,
                          runner={"kind": "slurm", "site": str(REPO / "configs/sites/local.yaml")})
    c = load_campaign(path)
    (c.run_dir / "slurm" / "submissions.jsonl").mkdir(parents=True)
    try:
        res = CliRunner().invoke(app, ["run", str(path), "--quiet"])
        said = " ".join(res.output.split())
        assert res.exit_code == 1 and "Traceback" not in said, said
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
        assert "could not be written to the submissions journal" in said and "submissions.jsonl" in said, said
        assert "not submitted again" in said and "re-attaches it by its name" in said, said
        mine = [job for job in slurmcli.call(["squeue", "--me", "-h", "-t", "all", "-o", "%j"]).split()
                if job.startswith(f"dm-{name}-")]
        assert len(mine) == 1, mine  # one submission, queued once
    finally:
        slurmcli.call(["scancel", "--me", "-n", ",".join(
            n for n in slurmcli.call(["squeue", "--me", "-h", "-o", "%j"]).split() if n.startswith(f"dm-{name}-"))
            or f"dm-{name}-none"])
