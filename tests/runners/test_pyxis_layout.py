"""A pyxis container with an MPI layout (``launch: worker``): the task line nested one srun in
another (``srun --mpi=pmix --ntasks=32 ... srun --ntasks=1 --container-image=...``). On a real
Slurm the inner srun waits for a step ("step creation temporarily disabled") while the outer
step holds every CPU of the job, until the walltime. One srun must start the ranks and enter the
image.

pyxis (the srun plugin that reads ``--container-image``) is not installed here, so these tests
check the rendered job script: exactly one ``srun`` per task line, carrying both the MPI and the
container options, and the script is valid bash."""
from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from dm_hpc.runners import SiteProfile, TaskSpec
from dm_hpc.runners.sbatch import render_tasks

IMAGE = "/apps/dm-hpc.sqsh"


def task_words(site: SiteProfile, spec: TaskSpec) -> list[str]:
    """The words of the task's line in its job script (after ``dm_run RUN_FOLDER``)."""
    text = render_tasks(site, [spec], job_name="dm-x-dft--b", job_comment="c", array=None)
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    [line] = [x for x in text.splitlines() if x.lstrip().startswith("0) ")]
    words = shlex.split(line.strip().removeprefix("0) ").removesuffix(";;"))
    assert words[:2] == ["dm_run", str(spec.workdir)], words
    return words[2:]


def gpaw_site(**top) -> SiteProfile:
    return SiteProfile.model_validate({**top, "methods": {"gpaw": {
        "layout": {"ranks": 32, "threads_per_rank": 1},
        "container": {"image": IMAGE, "runtime": "pyxis", "binds": ["/apps/pseudo"]}}}})


def gpaw_task(tmp_path: Path) -> TaskSpec:
    return TaskSpec(task_id="t1", argv=["python3", "-m", "dm_hpc.compute.worker", "task.json"],
                    workdir=tmp_path / "t1", walltime_s=3600, method="gpaw", cores=32)


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_one_srun_starts_the_ranks_inside_the_pyxis_image(tmp_path: Path, launcher: str):
    workdir = str(tmp_path / "t1")
    words = task_words(gpaw_site(mpi_launcher=launcher), gpaw_task(tmp_path))
    assert words.count("srun") == 1 and words[0] == "srun", words  # never an srun inside an srun
    assert "mpirun" not in words  # pyxis is an srun option: mpirun cannot enter the image
    options = words[1:words.index("python3")]
    assert options == ["--mpi=pmix", "--ntasks=32", "--cpus-per-task=1", f"--container-image={IMAGE}",
                       f"--container-mounts={workdir},/apps/pseudo", f"--container-workdir={workdir}"]
    assert words[words.index("python3"):] == ["python3", "-m", "dm_hpc.compute.worker", "task.json"]


def test_a_single_rank_still_enters_the_image_by_one_srun(tmp_path: Path):
    site = SiteProfile.model_validate({"methods": {"emt": {
        "container": {"image": IMAGE, "runtime": "pyxis"}}}})
    spec = gpaw_task(tmp_path).model_copy(update={"method": "emt", "cores": 1})
    words = task_words(site, spec)
    assert words[:3] == ["srun", "--ntasks=1", f"--container-image={IMAGE}"] and words.count("srun") == 1


def test_apptainer_keeps_the_mpi_launcher_outside_the_image(tmp_path: Path):
    site = SiteProfile.model_validate({"methods": {"gpaw": {
        "layout": {"ranks": 4}, "container": {"image": "/apps/x.sif"}}}})
    words = task_words(site, gpaw_task(tmp_path))
    assert words[:5] == ["srun", "--mpi=pmix", "--ntasks=32", "--cpus-per-task=1", "apptainer"], words
    assert words.count("srun") == 1
