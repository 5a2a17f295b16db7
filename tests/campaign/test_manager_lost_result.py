"""A job that left the queue before the runner saw how it ended (no accounting, or sacct lagging)
comes back LOST; its run folder still says how the calculation ended, and the manager reads it
as resume does: a good result is ingested, not journalled as a failure.

The LOST outcomes are built here (a job that vanishes from every Slurm source cannot be made on
demand); the result files are real EMT calculations."""
from __future__ import annotations

from pathlib import Path

import pytest

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.manager import CampaignManager
from dm_hpc.compute import calculate, write_result
from dm_hpc.data import Store
from dm_hpc.runners import JobState, Outcome
from dm_hpc.runners.spec import write_ended, write_started
from tests.campaign.helpers import write_campaign


@pytest.fixture
def manager(tmp_path: Path):
    c = load_campaign(write_campaign(tmp_path, name="lost", lab=False))
    c.run_dir.mkdir(parents=True, exist_ok=True)
    m = CampaignManager(c, quiet=True)
    m.journal = jn.Journal(c.run_dir / "journal.jsonl")
    m.store = Store.open(c.store, "a")
    try:
        yield m
    finally:
        m.store.close()
        m.journal.close()


def lost_task(m: CampaignManager, n: int, result: bool, exit_code: int | None = None):
    """A submitted task whose job came back LOST, its run folder as the worker left it."""
    task_id = f"lost-c{n:05d}"
    m._log("planned", task_id=task_id, fidelity="emt", composition={"Cu": 0.5, "Ni": 0.5},
           process={}, predicted=None)
    m._log("submitted", task_id=task_id)
    workdir = m.task_dir(task_id)
    workdir.mkdir(parents=True)
    if exit_code is not None:  # the job wrapper's times file
        write_started(workdir)
        write_ended(workdir, exit_code)
    if result:
        write_result(workdir, calculate({"Cu": 0.5, "Ni": 0.5}, "emt", properties=["mixing_energy"]))
    m._collect(m.state.tasks[task_id], Outcome(task_id, JobState.LOST, None, "2070", 1, workdir))
    return m.state.tasks[task_id]


def test_a_lost_job_with_a_good_result_is_ingested(manager):
    task = lost_task(manager, 1, result=True)
    assert task.status == jn.INGESTED, task.error
    assert len(manager.store.to_dataframe(campaign="lost")) == 1


def test_a_lost_job_whose_wrapper_saw_exit_0_is_ingested(manager):
    assert lost_task(manager, 1, result=True, exit_code=0).status == jn.INGESTED


def test_a_lost_job_that_exited_badly_or_left_no_result_stays_failed(manager):
    bad_exit = lost_task(manager, 1, result=True, exit_code=1)
    assert bad_exit.status == jn.FAILED and bad_exit.error.startswith("LOST")
    nothing = lost_task(manager, 2, result=False)
    assert nothing.status == jn.FAILED and nothing.error.startswith("LOST")
    assert len(manager.store.to_dataframe(campaign="lost")) == 0
