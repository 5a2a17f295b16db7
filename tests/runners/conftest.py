"""Fixtures for the runner tests; `slurm` tests use the real local Slurm (slurm/start-local.sh)."""
from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
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


@pytest.fixture
def make_task(tmp_path: Path) -> Callable[..., TaskSpec]:
    """``make_task(i, argv, **fields)``: a task in its own run folder under tmp_path."""
    campaign = f"test-{uuid.uuid4().hex[:10]}"  # unique: finished jobs stay in squeue for a day

    def make(i: int | str, argv: list[str], **fields: object) -> TaskSpec:
        fields.setdefault("walltime_s", 120)
        fields.setdefault("campaign", campaign)
        return TaskSpec(task_id=f"t{i}", name=f"task {i}", argv=argv,
                        workdir=tmp_path / "runs" / f"t{i}", **fields)

    return make


@pytest.fixture(scope="session")
def slurm_node(slurm_site: SiteProfile) -> str:
    """Name of the local cluster's (only) node."""
    return subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True,
                          check=True).stdout.split()[0]
