"""The learning cost model (dm_hpc.runners.costs): fits, ranges, censored TIMEOUT/OOM attempts
and the requests that follow them. Observations are written as the runner writes them."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from dm_hpc.runners import NO_RETRY, JobState, SiteProfile, TaskSpec, costs
from dm_hpc.runners.slurm import SlurmRunner


def obs(seconds: float, atoms: int = 16, memory_mb: float | None = 900.0, state: str = "COMPLETED",
        censored: str = "", method: str = "gpaw", cores: int = 32) -> costs.Observation:
    return costs.Observation(method=method, atoms=atoms, cores=cores, seconds=seconds,
                             memory_mb=memory_mb, state=state, censored=censored)


def test_prior_before_any_run_then_learned_with_the_runs_behind_it(tmp_path: Path):
    book = costs.CostBook(tmp_path / "costs.jsonl")
    prior = costs.runtime(book, "gpaw", 32, 16)
    assert prior.source == "prior" and prior.runs == 0
    assert prior.low < prior.median < prior.high
    for s in (300, 360, 420):
        book.add(obs(s))
    learned = costs.runtime(book, "gpaw", 32, 16)
    assert learned.source == "learned" and learned.runs == 3
    assert 300 < learned.median < 420 and learned.low < 300 and learned.high > 420
    # more runs that agree: the range narrows
    for s in (330, 390, 350, 370):
        book.add(obs(s))
    more = costs.runtime(book, "gpaw", 32, 16)
    assert more.runs == 7 and (more.high / more.low) < (learned.high / learned.low)


def test_size_exponent_is_fitted_once_two_sizes_ran(tmp_path: Path):
    book = costs.CostBook(tmp_path / "costs.jsonl")
    for atoms in (4, 8, 16, 4, 8, 16):
        book.add(obs(10.0 * atoms ** 3, atoms=atoms))  # a cubic code
    est = costs.runtime(book, "gpaw", 32, 32)
    assert math.isclose(est.median, 10.0 * 32 ** 3, rel_tol=0.05)


def test_runs_on_other_core_counts_keep_their_core_seconds(tmp_path: Path):
    book = costs.CostBook(tmp_path / "costs.jsonl")
    book.add(obs(400.0, cores=8))
    assert math.isclose(costs.runtime(book, "gpaw", 32, 16).median, 100.0, rel_tol=1e-6)


def test_a_timeout_moves_the_estimate_and_the_next_request_up(tmp_path: Path):
    runner = SlurmRunner(SiteProfile(max_walltime_s=48 * 3600), tmp_path / "state")
    spec = TaskSpec(task_id="t1", argv=["x"], workdir=tmp_path / "t1", walltime_s=3600,
                    campaign="c", method="gpaw", cores=32)
    book = runner.costs("c")
    assert runner.sized(spec).walltime_s == 3600  # the prior alone changes nothing
    for s in (200, 240, 220):
        book.add(obs(s))
    before = runner.sized(spec)
    assert 240 < before.walltime_s < 3600 and before.expected_s and before.memory_mb
    book.add(obs(1200, state="TIMEOUT", censored="time"))  # needed more than 20 min
    after = runner.sized(spec)
    assert after.walltime_s > 1200 > before.walltime_s


def test_out_of_memory_raises_the_memory_request(tmp_path: Path):
    book = costs.CostBook(tmp_path / "costs.jsonl")
    for m in (900, 1000, 950):
        book.add(obs(300, memory_mb=m))
    before = costs.memory(book, "gpaw", 16, 4000).request()
    book.add(obs(100, memory_mb=4000, state="OUT_OF_MEMORY", censored="memory"))
    assert costs.memory(book, "gpaw", 16, 4000).request() > max(before, 4000)


def test_a_torn_last_line_is_skipped(tmp_path: Path):
    book = costs.CostBook(tmp_path / "costs.jsonl")
    book.add(obs(300))
    with open(book.path, "a") as fh:
        fh.write('{"method": "gpaw", "ato')
    assert len(book.read()) == 1


def real_timeout(slurm_site, tmp_path: Path, make_task):
    """The run of the test below (started with the other TIMEOUT waits: conftest ``head_start``)."""
    runner = SlurmRunner(slurm_site, tmp_path / "state", retry=NO_RETRY, use_arrays=False)
    slow = TaskSpec(task_id="slow", argv=["sleep", "300"], workdir=tmp_path / "slow", walltime_s=60,
                    campaign="timeouts", method="emt")
    (out,) = runner.run([slow], poll_s=1, timeout_s=240, progress=False)
    return runner, slow, out


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.head_start.with_args(real_timeout)
def test_a_real_timeout_is_recorded_and_the_next_request_asks_for_more(head_start):
    """A task that outlives its 1-minute walltime on the real local Slurm (TIMEOUT after
    ~70-85 s): the cost book gets a censored observation and the next task of the method asks
    for more than the minute that was too short."""
    runner, slow, out = head_start
    assert out.state is JobState.TIMEOUT
    (seen,) = runner.costs("timeouts").read("emt")
    assert seen.censored == "time" and seen.state == "TIMEOUT" and seen.seconds >= 60
    nxt = runner.sized(slow.model_copy(update={"task_id": "next"}))
    assert nxt.walltime_s > 60
