"""A DFT calculation inside the MPI layout its job script asks for, on the real local Slurm:
GPAW as 2 ranks started by ``srun --mpi=pmix`` (the site profile's layout), not a worker that
relaunches itself under mpiexec behind the script's back."""
from __future__ import annotations

import re

import pytest

from dm_hpc.compute import read_result, worker_argv, write_task
from dm_hpc.runners import JobState, TaskSpec
from dm_hpc.runners.slurm import SlurmRunner

pytest.importorskip("gpaw", reason="gpaw not installed (pip install 'dm-hpc[dft]')")
pytestmark = [pytest.mark.slurm, pytest.mark.dft, pytest.mark.slow]


def test_gpaw_runs_as_the_two_srun_ranks_of_its_job(slurm_site, tmp_path):
    workdir = tmp_path / "runs" / "cu"
    task = write_task(workdir, "Cu", "gpaw", properties=["energy_per_atom", "lattice_parameter"],
                      cores=2, task_id="gpaw-layout")
    spec = TaskSpec(task_id="gpaw-layout", argv=worker_argv(task), workdir=workdir, cores=2,
                    walltime_s=600, method="gpaw", campaign="layout-test")
    runner = SlurmRunner(slurm_site, tmp_path / "state", use_arrays=False)
    script = runner.script([spec], "preview")[0]
    assert "#SBATCH --ntasks=2" in script and "#SBATCH --cpus-per-task=1" in script
    assert "srun --mpi=pmix --ntasks=2 --cpus-per-task=1 " in script
    out = runner.run([spec], poll_s=0.5, timeout_s=600, progress=False)[0]
    result = read_result(workdir)
    assert out.state is JobState.COMPLETED, (out.stdout_tail, out.stderr_tail)
    assert result.ok, result
    assert result.cores == 2  # GPAW's own MPI world: the job's two srun ranks
    assert abs(result.property_dict()["lattice_parameter"] - 3.63) / 3.63 < 0.02
    gpaw_log = next(workdir.glob("calc/**/gpaw.txt")).read_text()
    assert re.search(r"^\s*cores:\s+2\s*$", gpaw_log, re.M)  # GPAW's own account of its ranks
    assert "mpiexec" not in (out.stdout_tail + out.stderr_tail)


def test_qe_worker_starts_pw_x_with_the_jobs_own_srun(slurm_site, tmp_path):
    """launch: code -- one worker process; pw.x runs as the job's 2 srun ranks."""
    import shutil

    if not shutil.which("pw.x"):
        pytest.skip("pw.x not installed (Debian: quantum-espresso)")
    workdir = tmp_path / "runs" / "cu"
    task = write_task(workdir, "Cu", "qe", properties=["energy_per_atom", "lattice_parameter"],
                      cores=2, task_id="qe-layout")
    spec = TaskSpec(task_id="qe-layout", argv=worker_argv(task), workdir=workdir, cores=2,
                    walltime_s=900, method="qe", campaign="layout-test")
    runner = SlurmRunner(slurm_site, tmp_path / "state", use_arrays=False)
    script = runner.script([spec], "preview")[0]
    assert "#SBATCH --ntasks=2" in script
    assert "export 'DM_HPC_MPI_LAUNCHER=srun --mpi=pmix --ntasks=2 --cpus-per-task=1'" in script
    out = runner.run([spec], poll_s=0.5, timeout_s=900, progress=False)[0]
    result = read_result(workdir)
    assert out.state is JobState.COMPLETED and result.ok, (out.stderr_tail, result)
    assert result.cores == 2
    pw_out = "\n".join(p.read_text(errors="replace") for p in workdir.glob("calc/**/*.pwo"))
    assert re.search(r"running on\s+2 processors", pw_out), pw_out[-2000:]
