"""``budget.core_hours`` charges a task for the cores its job holds, for every attempt.

It charged the run time times the fidelity's ``cores`` (default 1), while a method with an MPI
layout holds ranks x threads (32 for gpaw on configs/sites/cluster.yaml, what ``dm-hpc plan``
charges); and attempts the runner retried itself were not charged at all (only the last
attempt's started/ended reached the manager).

The Slurm outcomes are built here (gpaw does not run on this machine and a one-hour job cannot be
waited for); the retried attempts come from a real LocalRunner in the manager's run folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.manager import CampaignManager
from dm_hpc.runners import JobState, LocalRunner, Outcome, RetryPolicy, SiteProfile, TaskSpec
from tests.campaign.helpers import write_campaign
from tests.conftest import REPO

CLUSTER = REPO / "configs" / "sites" / "cluster.yaml"
HOUR = 3600.0


def manager(tmp_path: Path, fidelity: dict, runner: dict) -> CampaignManager:
    c = load_campaign(write_campaign(tmp_path, name="cores", lab=False, runner=runner,
                                     fidelities=[{"name": "calc", "kind": "calculation", **fidelity}]))
    c.run_dir.mkdir(parents=True, exist_ok=True)
    m = CampaignManager(c, quiet=True)
    m.journal = jn.Journal(c.run_dir / "journal.jsonl")
    return m


def charged(m: CampaignManager, n: int, outcome: Outcome | None = None, **times) -> float:
    """Core-hours journalled for task ``n`` collected with ``outcome`` (else one built from ``times``)."""
    task_id = f"cores-c{n:05d}"
    m._log("planned", task_id=task_id, fidelity="calc", composition={"Cu": 0.5, "Ni": 0.5},
           process={}, predicted=None)
    m._log("submitted", task_id=task_id)
    m._collect(m.state.tasks[task_id], outcome or Outcome(
        task_id, JobState.FAILED, 1, "123", 1, m.task_dir(task_id), **times))
    return m.state.tasks[task_id].core_hours


def plan_cores(m: CampaignManager) -> int:
    """The cores ``dm-hpc plan`` charges one task of the campaign's only fidelity for."""
    from dm_hpc.cli.plan import _cost, _spec
    from dm_hpc.runners.slurm import SlurmRunner

    site = SiteProfile.load(m.c.runner.site)
    fid = m.c.fidelities[0]
    return _cost(site, fid, _spec(m.c, fid, "cores-c00001"), SlurmRunner(site, m.run_dir / "plan"))[3]


@pytest.mark.parametrize("method", ["gpaw", "qe"])  # the worker as the ranks / the worker starting them
def test_a_layout_is_charged_its_ranks_times_threads_as_plan_charges(tmp_path: Path, method: str):
    m = manager(tmp_path, {"method": method, "walltime": "2h"},
                {"kind": "slurm", "site": str(CLUSTER), "max_in_flight": 4})
    assert m.c.fidelities[0].cores == 1 and plan_cores(m) == 32
    assert charged(m, 1, started=1000.0, ended=1000.0 + HOUR) == pytest.approx(32.0)
    assert m.state.core_hours == pytest.approx(32.0)


def test_earlier_attempts_are_charged_too(tmp_path: Path):
    m = manager(tmp_path, {"method": "gpaw", "walltime": "2h"},
                {"kind": "slurm", "site": str(CLUSTER), "max_in_flight": 4})
    # the last attempt ran an hour; the two the runner retried before it another half hour
    assert charged(m, 1, started=1000.0, ended=1000.0 + HOUR, earlier_s=HOUR / 2) == pytest.approx(48.0)


def test_the_local_runner_charges_the_fidelity_cores_for_every_attempt(tmp_path: Path):
    """A real LocalRunner retries a task that failed once (after sleeping), in the manager's run
    folder; the manager charges both attempts at the fidelity's 2 cores."""
    m = manager(tmp_path, {"method": "emt", "walltime": "5m", "cores": 2},
                {"kind": "local", "cores": 2, "max_in_flight": 1})
    workdir = m.task_dir("cores-c00001")
    script = ("import os, time; first = not os.path.exists('tried'); open('tried', 'a').close(); "
              "time.sleep(0.5 if first else 0); raise SystemExit(1 if first else 0)")
    spec = TaskSpec(task_id="cores-c00001", argv=["python3", "-c", script], workdir=workdir, cores=2,
                    walltime_s=300, campaign="cores", method="emt")
    [out] = LocalRunner(cores=2, retry=RetryPolicy(max_failed=1)).run([spec], poll_s=0.05, progress=False)
    assert out.state is JobState.COMPLETED and out.attempts == 2 and out.workdir == workdir
    assert out.earlier_s >= 0.5  # the first attempt slept that long before it failed
    last = out.ended - out.started
    assert charged(m, 1, out) == pytest.approx((last + out.earlier_s) * 2 / HOUR)
