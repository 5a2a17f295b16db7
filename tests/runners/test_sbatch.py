"""Rendering of sbatch scripts from slurm/templates with a site profile (no Slurm needed):
per-method resources, modules, environment and containers, asserted line by line."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from dm_hpc.runners import SiteProfile, TaskSpec
from dm_hpc.runners.sbatch import comment, render_farm, render_tasks, slurm_time

WORKER = ["/opt/venv/bin/python", "-m", "dm_hpc.compute.worker"]


def lines(text: str) -> list[str]:
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)  # valid bash
    return text.splitlines()


def render(site: SiteProfile, spec: TaskSpec) -> list[str]:
    return lines(render_tasks(site, [spec], job_name=f"dm-hea-{spec.task_id}",
                              job_comment=comment("hea", "b", site.site_comment()), array=None))


def calc(tmp_path: Path, method: str, **fields) -> TaskSpec:
    """A calculation task as the campaign manager makes it (method named in task.json)."""
    workdir = tmp_path / method
    workdir.mkdir()
    (workdir / "task.json").write_text(json.dumps({"method": method}))
    fields.setdefault("env", {"OMP_NUM_THREADS": "1"})
    return TaskSpec(task_id=f"{method}1", argv=[*WORKER, str(workdir / "task.json")],
                    workdir=workdir, walltime_s=1800, campaign="hea", **fields)


def test_cluster_profile_renders_an_admin_readable_header(tmp_path: Path):
    site = SiteProfile.load("cluster")
    spec = TaskSpec(task_id="a1", name="x", argv=["pw.x", "-in", "in.pwi"], workdir=tmp_path,
                    cores=4, memory_mb=8000, walltime_s=5400, gpus=1, campaign="hea")
    text = render(site, spec)
    for line in ["#SBATCH --partition=compute", "#SBATCH --account=matsci-dm", "#SBATCH --qos=normal",
                 "#SBATCH --time=01:30:00", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8000M",
                 "#SBATCH --gres=gpu:1", "#SBATCH --comment=matsci-dm-hea;dm-hpc:campaign=hea:batch=b",
                 "export OMP_NUM_THREADS=4", "#SBATCH --mail-type=FAIL"]:
        assert line in text
    assert sum(x.startswith("#SBATCH --comment=") for x in text) == 1  # merged, not repeated
    farm = lines(render_farm(site, spec, ranks=8, walltime_s=100_000, job_name="f", job_comment="c",
                             manifest="/a b/tasks.json", results="/a b/r.jsonl"))
    assert "#SBATCH --ntasks=8" in farm and "#SBATCH --time=1-03:47:00" in farm
    assert farm[-1].endswith("-m dm_hpc.runners.mpi_farm '/a b/tasks.json' '/a b/r.jsonl'")


def test_modules_only_for_the_methods_that_need_them(tmp_path: Path):
    site = SiteProfile.load("cluster")
    emt = render(site, calc(tmp_path, "emt"))
    assert not [x for x in emt if x.startswith("module load")]
    assert "#SBATCH --cpus-per-task=1" in emt and "export OMP_NUM_THREADS=1" in emt
    gpaw = render(site, calc(tmp_path, "gpaw", cores=32))
    assert [x for x in gpaw if x.startswith("module load")] == [
        "module load gcc/12.2.0", "module load openmpi/4.1.5", "module load libxc/6.2.2"]
    qe = render(site, calc(tmp_path, "qe"))
    assert "export ESPRESSO_PSEUDO=/apps/espresso/pseudo" in qe
    assert "module load quantum-espresso/7.2" in qe and "module load libxc/6.2.2" not in qe


def test_dft_layout_shows_ranks_threads_and_srun(tmp_path: Path):
    """Issue 20 item 1: the DFT job asked for --ntasks=1 --cpus-per-task=32 and the worker
    relaunched itself under mpiexec, out of the admin's sight."""
    site = SiteProfile.load("cluster")
    gpaw = render(site, calc(tmp_path, "gpaw", cores=32))
    assert "#SBATCH --ntasks=32" in gpaw and "#SBATCH --cpus-per-task=1" in gpaw
    assert "#SBATCH --mem=64000M" in gpaw  # per calculation (all ranks), not per rank
    assert "export OMP_NUM_THREADS=1" in gpaw  # threads per rank
    task = next(x for x in gpaw if "dm_run " in x and x.lstrip().startswith("0)"))
    assert "dm_run " in task and " srun --mpi=pmix --ntasks=32 --cpus-per-task=1 " \
        "/opt/venv/bin/python -m dm_hpc.compute.worker " in task
    # QE: one worker; pw.x gets the launcher from the job's environment
    qe = render(site, calc(tmp_path, "qe", cores=32))
    assert "#SBATCH --ntasks=32" in qe
    assert "export 'DM_HPC_MPI_LAUNCHER=srun --mpi=pmix --ntasks=32 --cpus-per-task=1'" in qe
    assert not any(" srun " in x for x in qe if "dm_run " in x)


def test_layout_width_gpus_and_mpirun(tmp_path: Path):
    site = SiteProfile.model_validate({
        "mpi_launcher": "mpirun",
        "methods": {"gpaw": {"layout": {"ranks": 2, "threads_per_rank": 4, "gpus_per_rank": 1}}}})
    text = render(site, calc(tmp_path, "gpaw", cores=16))  # 16 cores: 4 ranks of 4 threads
    assert "#SBATCH --ntasks=4" in text and "#SBATCH --cpus-per-task=4" in text
    assert "#SBATCH --gres=gpu:4" in text and "export OMP_NUM_THREADS=4" in text
    assert any(" mpirun -n 4 /opt/venv/bin/python " in x for x in text if "dm_run " in x)
    small = render(site, TaskSpec(task_id="g", argv=["x"], workdir=tmp_path, walltime_s=60,
                                  method="gpaw"))
    assert "#SBATCH --ntasks=2" in small  # the layout's ranks are a minimum
    with pytest.raises(ValidationError, match="threads_per_rank"):
        SiteProfile.model_validate({"methods": {"gpaw": {"layout": {"threads_per_rank": 0}}}})
    with pytest.raises(ValidationError, match="mpi_plugin"):
        SiteProfile.model_validate({"mpi_plugin": "pmix; rm -rf /"})


def test_gpu_type_and_container_for_an_mlip(tmp_path: Path):
    site = SiteProfile.load("cluster")
    spec = calc(tmp_path, "chgnet")
    text = render(site, spec)
    assert "#SBATCH --gres=gpu:a100:1" in text and "#SBATCH --cpus-per-task=4" in text
    assert "#SBATCH --mem=16000M" in text
    task = tmp_path / "chgnet"
    assert (f"  0) dm_run {task} apptainer exec --nv --bind {task} /apps/containers/dm-hpc-cuda.sif "
            f"python3 -m dm_hpc.compute.worker {task}/task.json ;;") in text
    gpus = render(site.model_copy(update={"gpu_option": "gpus"}), spec)
    assert "#SBATCH --gpus=a100:1" in gpus and not any("--gres" in x for x in gpus)


def test_pyxis_container_and_quoted_image(tmp_path: Path):
    site = SiteProfile.model_validate({"container": {"image": "nvcr.io#nvidia/dm hpc:24.1",
                                                     "runtime": "pyxis"}})
    spec = calc(tmp_path, "emt")
    task = tmp_path / "emt"
    assert (f"  0) dm_run {task} srun --ntasks=1 '--container-image=nvcr.io#nvidia/dm hpc:24.1' "
            f"--container-mounts={task} --container-workdir={task} python3 -m "
            f"dm_hpc.compute.worker {task}/task.json ;;") in render(site, spec)


def test_walltime_rounds_up_to_minutes():
    assert slurm_time(1) == "00:01:00" and slurm_time(61) == "00:02:00"
    assert slurm_time(86400 + 3600) == "1-01:00:00"


def test_profiles_reject_shell_text():
    with pytest.raises(ValidationError):
        SiteProfile(partition="debug; rm -rf /")
    with pytest.raises(ValidationError):
        SiteProfile(modules=["gcc && curl x"])
    with pytest.raises(ValidationError):
        SiteProfile.model_validate({"methods": {"qe": {"modules": ["qe; id"]}}})
    with pytest.raises(ValidationError):
        SiteProfile.model_validate({"methods": {"qe": {"gpus": {"count": 1, "type": "a100 --x"}}}})
    with pytest.raises(ValidationError):
        TaskSpec(task_id="a", argv=["x"], workdir=Path("/tmp"), env={"A;B": "1"})
