"""The optional pyslurm backend: used only where pyslurm imports and matches the site's Slurm."""
from __future__ import annotations

import pytest

from dm_hpc.runners import JobState
from dm_hpc.runners.pyslurm_backend import PyslurmRunner, pyslurm_status

pytestmark = pytest.mark.slurm


def test_pyslurm_runner_completes_a_task(slurm_site, make_task, tmp_path):
    ok, reason = pyslurm_status()
    if not ok:
        pytest.skip(reason)
    out = PyslurmRunner(slurm_site, tmp_path / "state").run(
        [make_task(0, ["echo", "hi"])], poll_s=0.2, timeout_s=60, progress=False)[0]
    assert out.state is JobState.COMPLETED and out.stdout_tail == "hi\n"


def test_pyslurm_runner_refuses_when_unusable(slurm_site, tmp_path):
    ok, reason = pyslurm_status()
    if ok:
        pytest.skip("pyslurm is usable here")
    with pytest.raises(RuntimeError, match="pyslurm"):
        PyslurmRunner(slurm_site, tmp_path / "state")
