"""Fixtures for the runner tests; `slurm` tests use the real local Slurm (slurm/start-local.sh)."""
from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from dm_hpc.runners import SiteProfile, TaskSpec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def slurm_site() -> SiteProfile:
    """The local cluster, started (idempotently) if it is not up yet."""
    proc = subprocess.run(["bash", str(REPO / "slurm" / "start-local.sh")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return SiteProfile.load("local")


def fake_commands(folder: Path, monkeypatch: pytest.MonkeyPatch, scripts: dict[str, str]) -> Path:
    """Fake Slurm commands (``name -> bash script``) in ``folder``, first on PATH: for what a real
    controller cannot be made to do on demand (time out after queueing, refuse another user's job)."""
    import os

    folder.mkdir()
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def task_maker(tmp_path: Path) -> Callable[..., TaskSpec]:
    """``make(i, argv, **fields)``: a task in its own run folder under ``tmp_path``."""
    campaign = f"test-{uuid.uuid4().hex[:10]}"  # unique: finished jobs stay in squeue for a day

    def make(i: int | str, argv: list[str], **fields: object) -> TaskSpec:
        fields.setdefault("walltime_s", 120)
        fields.setdefault("campaign", campaign)
        return TaskSpec(task_id=f"t{i}", name=f"task {i}", argv=argv,
                        workdir=tmp_path / "runs" / f"t{i}", **fields)

    return make


@pytest.fixture
def make_task(tmp_path: Path) -> Callable[..., TaskSpec]:
    """``make_task(i, argv, **fields)``: a task in its own run folder under tmp_path."""
    return task_maker(tmp_path)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "head_start(run): the test asserts on what ``run(slurm_site, tmp_path, make_task)``"
        " returns; run in a thread together with every other selected test's head-start run"
        " (fixture ``head_start``)")


@pytest.fixture(scope="session")
def _head_starts(slurm_site: SiteProfile, request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory):
    """Slurm runs that only wait on the scheduler (a TIMEOUT: Slurm's shortest limit is a minute,
    enforced by a check every ~30 s, so 60-90 s), all started together when the first test
    marked ``head_start`` needs its own: their waits overlap instead of adding up. Each run is
    exactly what its test did before, on its own runner, state and run folders and campaign;
    only its start moves. Only selected tests' runs start."""
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="head-start")
    runs: dict[str, Future] = {}
    for item in request.session.items:
        marker = item.get_closest_marker("head_start")
        if marker is not None and item.nodeid not in runs:
            tmp = tmp_path_factory.mktemp(item.name[:30], numbered=True)
            runs[item.nodeid] = pool.submit(marker.args[0], slurm_site, tmp, task_maker(tmp))
    yield runs
    pool.shutdown(wait=True)  # a run's own timeout bounds this


@pytest.fixture
def head_start(request: pytest.FixtureRequest, _head_starts: dict[str, Future]):
    """What this test's ``head_start`` run returned (its exception, if it raised)."""
    return _head_starts[request.node.nodeid].result()


@pytest.fixture(scope="session")
def slurm_node(slurm_site: SiteProfile) -> str:
    """Name of the local cluster's (only) node."""
    return subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True,
                          check=True).stdout.split()[0]
