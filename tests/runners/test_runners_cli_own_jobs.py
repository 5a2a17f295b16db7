"""`dm-hpc runners jobs` and `runners cancel` act on the user's own jobs only: another user running
the same shipped campaign file has jobs with the same comment. A refused scancel is one clear
line, not a traceback.

FAKES: ``squeue`` and ``scancel`` are bash scripts first on PATH (the local Slurm has one user,
so another user's job cannot be made there). Without ``--me`` the fake squeue also lists job 202
of user bob, with the same campaign comment as ours (101); the fake scancel refuses 202, and
refuses every job while a ``refuse`` file exists beside it. Every call is logged."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dm_hpc.cli import app
from tests.runners.conftest import fake_commands

FAKE_SQUEUE = """#!/bin/bash
echo "squeue $*" >> "$(dirname "$0")/calls.log"
echo "101|RUNNING|0|dm-hpc:campaign=hea-turbine:batch=b1"
[[ " $* " == *" --me "* ]] || echo "202|RUNNING|0|dm-hpc:campaign=hea-turbine:batch=b9"
"""

FAKE_SCANCEL = """#!/bin/bash
here=$(dirname "$0")
echo "scancel $*" >> "$here/calls.log"
for j in "$@"; do
  if [ "$j" = 202 ] || [ -e "$here/refuse" ]; then
    echo "scancel: error: Kill job error on job id $j: Access/permission denied" >&2; rc=1
  fi
done
exit ${rc:-0}
"""


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = fake_commands(tmp_path / "bin", monkeypatch, {"squeue": FAKE_SQUEUE, "scancel": FAKE_SCANCEL})
    monkeypatch.chdir(tmp_path)
    return folder


def calls(folder: Path) -> list[str]:
    return (folder / "calls.log").read_text().splitlines()


def test_runners_jobs_lists_only_the_users_own_jobs(fake_bin: Path):
    result = CliRunner().invoke(app, ["runners", "jobs", "hea-turbine"])
    assert result.exit_code == 0, result.output
    assert "101" in result.output and "202" not in result.output
    assert all(" --me " in f" {line} " for line in calls(fake_bin) if line.startswith("squeue"))


def test_runners_cancel_cancels_only_the_users_own_jobs(fake_bin: Path):
    result = CliRunner().invoke(app, ["runners", "cancel", "hea-turbine", "--yes"])
    assert result.exit_code == 0, result.output
    assert "cancelled 1 job(s) of hea-turbine: 101" in result.output
    assert [line for line in calls(fake_bin) if line.startswith("scancel")] == ["scancel 101"]


def test_a_refused_scancel_is_one_clear_line(fake_bin: Path):
    (fake_bin / "refuse").touch()
    result = CliRunner().invoke(app, ["runners", "cancel", "hea-turbine", "--yes"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot cancel the jobs of hea-turbine (101)")
    assert "Access/permission denied" in lines[0]
