"""Rendering of sbatch scripts from slurm/templates with a site profile (no Slurm needed)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from dm_hpc.runners import SiteProfile, TaskSpec
from dm_hpc.runners.sbatch import render_farm, render_tasks, slurm_time


def test_cluster_profile_renders_an_admin_readable_header(tmp_path: Path):
    site = SiteProfile.load("cluster")
    spec = TaskSpec(task_id="a1", name="x", argv=["pw.x", "-in", "in.pwi"], workdir=tmp_path,
                    cores=4, memory_mb=8000, walltime_s=5400, gpus=1, campaign="hea")
    text = render_tasks(site, [spec], job_name="dm-hea-x", job_comment="dm-hpc:campaign=hea:batch=b",
                        array=None)
    for line in ["#SBATCH --partition=compute", "#SBATCH --account=matsci-dm", "#SBATCH --qos=normal",
                 "#SBATCH --time=01:30:00", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8000M",
                 "#SBATCH --gres=gpu:1", "#SBATCH --comment=dm-hpc:campaign=hea:batch=b",
                 "module load gcc/12.2.0", "export OMP_NUM_THREADS=4", "#SBATCH --mail-type=FAIL"]:
        assert line in text
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)  # valid bash
    farm = render_farm(site, spec, ranks=8, walltime_s=100_000, job_name="f", job_comment="c",
                       manifest="/a b/tasks.json", results="/a b/r.jsonl")
    assert "#SBATCH --ntasks=8" in farm and "#SBATCH --time=1-03:47:00" in farm
    assert "'/a b/tasks.json'" in farm


def test_walltime_rounds_up_to_minutes():
    assert slurm_time(1) == "00:01:00" and slurm_time(61) == "00:02:00"
    assert slurm_time(86400 + 3600) == "1-01:00:00"


def test_profiles_reject_shell_text():
    with pytest.raises(ValidationError):
        SiteProfile(partition="debug; rm -rf /")
    with pytest.raises(ValidationError):
        SiteProfile(modules=["gcc && curl x"])
    with pytest.raises(ValidationError):
        TaskSpec(task_id="a", argv=["x"], workdir=Path("/tmp"), env={"A;B": "1"})
