"""`dm-hpc run` of a cluster campaign where the Slurm commands are not on PATH (a login node
without the Slurm module loaded) stops before anything is planned, naming what is missing;
`dm-hpc validate` (which may run on a laptop, away from the cluster) does not ask for them."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.preflight import problems
from dm_hpc.cli import app
from tests.campaign.helpers import write_campaign


@pytest.fixture
def no_slurm_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def slurm_campaign(tmp_path: Path) -> Path:
    return write_campaign(tmp_path, name="nosbatch", lab=False, runner={"kind": "slurm", "site": "local"})


def test_run_names_the_missing_slurm_commands(tmp_path: Path, no_slurm_on_path):
    path = slurm_campaign(tmp_path)
    found = [p for p in problems(load_campaign(path), check_codes=True) if "sbatch" in p]
    assert found == ["runner.kind: slurm needs the Slurm commands, and sbatch and squeue are not on PATH "
                     "here (load the site's Slurm module, or run where `sbatch --version` works)"]
    result = CliRunner().invoke(app, ["run", str(path), "-q", "--max-seconds", "30"])
    assert result.exit_code == 2, result.output
    assert "sbatch and squeue are not on PATH" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run" / "journal.jsonl").exists()  # nothing planned or journalled


def test_validate_does_not_ask_for_the_slurm_commands(tmp_path: Path, no_slurm_on_path):
    c = load_campaign(slurm_campaign(tmp_path))
    assert not [p for p in problems(c, check_codes=False) if "sbatch" in p]
