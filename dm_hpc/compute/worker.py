"""Worker entry point: ``python -m dm_hpc.compute.worker TASK.json [--workdir DIR]``.

Runs the one calculation described by the task file in its run folder (the task file's folder
unless ``--workdir`` is given) and writes ``result.json`` there -- a result or a typed failure.
Exit status: 0 whenever ``result.json`` was written -- a typed failure is an outcome, read from
the file, and a runner must not resubmit a deterministic failure (an unsupported element fails
again). Non-zero only when no result could be written (the worker itself crashed or was killed),
which is exactly when a retry may help. ``--exit-codes`` makes a typed failure exit with its
kind's code instead (``FailureKind.exit_code``: 10 unsupported element, 20 SCF, ...), for sites
that read outcomes from ``sacct``.

Parallel runs follow the job's layout (the site profile's ``layout``, rendered by
dm_hpc.runners.sbatch): GPAW runs MPI in-process, so the job script starts the worker itself as
its ranks (``srun --mpi=pmix --ntasks=N python -m dm_hpc.compute.worker ...``) and every rank
computes, rank 0 writes; pw.x is started by the QE backend with the job's launcher
(``DM_HPC_MPI_LAUNCHER``, one worker process). Inside a Slurm job the worker never starts MPI
ranks the script did not ask for. Outside Slurm (``dm-hpc calc``, the local runner) a GPAW task
with several cores re-launches the worker as ``mpiexec -n N python -m ...``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dm_hpc.compute.failures import CalcFailure, FailureKind


def _mpi_rank_size() -> tuple[int, int]:
    for rank, size in (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE"),
                       ("SLURM_PROCID", "SLURM_NTASKS")):
        if size in os.environ:
            return int(os.environ.get(rank, 0)), int(os.environ[size])
    return 0, 1


#: GPAW (>= 24) uses MPI only when started by `gpaw python` or with this backend chosen in the
#: environment before Python starts (ASE's plugin loading imports gpaw early): site profiles set
#: it in the gpaw method's ``env``.
GPAW_MPI_ENV = {"GPAW_MPI_BACKEND": "cgpaw"}


def _relaunch_gpaw_under_mpi(task_path: Path, workdir: Path, cores: int, exit_codes: bool) -> int:
    """Outside Slurm: run this worker again as ``mpiexec -n cores python -m ...``."""
    import subprocess

    from dm_hpc.compute.backends import mpi_command

    argv = mpi_command(["mpiexec", "-n", "{cores}"], cores) + [
        sys.executable, "-m", "dm_hpc.compute.worker", str(task_path), "--workdir", str(workdir)]
    argv += ["--exit-codes"] if exit_codes else []
    return subprocess.call(argv, cwd=workdir, env={**os.environ, **GPAW_MPI_ENV})


def _gpaw_ranks(task_cores: int) -> int:
    """MPI ranks GPAW computes on (its own world: the job's srun ranks, or 1)."""
    from gpaw.mpi import world

    if world.size == 1 and task_cores > 1:
        print(f"dm-hpc: GPAW task asks for {task_cores} cores but runs on 1 MPI rank: give the "
              "method a layout (ranks) in the site profile", file=sys.stderr)
    return world.size


def _code_ranks(task_cores: int) -> int:
    """Ranks the job's launcher starts the code's binary on (``DM_HPC_MPI_LAUNCHER``)."""
    if os.environ.get("DM_HPC_MPI_LAUNCHER"):
        return int(os.environ.get("SLURM_NTASKS", task_cores))
    return task_cores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dm_hpc.compute.worker", description=__doc__.split("\n")[0])
    parser.add_argument("task", type=Path, help="task.json written by dm_hpc.compute.write_task")
    parser.add_argument("--workdir", type=Path, default=None, help="run folder (default: the task file's folder)")
    parser.add_argument("--exit-codes", action="store_true", help="exit with the failure kind's code on a typed failure")
    args = parser.parse_args(argv)
    workdir = (args.workdir or args.task.resolve().parent).resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    from dm_hpc.compute.calculation import calculate
    from dm_hpc.compute.results import read_task, write_result

    rank, size = _mpi_rank_size()
    try:
        task = read_task(args.task)
    except Exception as exc:  # unreadable task: still a typed result for the campaign
        outcome = CalcFailure(kind=FailureKind.invalid_task, reason=f"cannot read task {args.task}: {exc}")
        if rank == 0:
            write_result(workdir, outcome)
        return outcome.exit_code if args.exit_codes else 0
    if task.maker is not None:  # a jobflow Maker in place of the built-in recipe
        from dm_hpc.compute.makers import run_maker

        outcome = run_maker(task, workdir / "calc")
    elif task.method == "gpaw" and task.cores > 1 and size == 1 and "SLURM_JOB_ID" not in os.environ:
        return _relaunch_gpaw_under_mpi(args.task.resolve(), workdir, task.cores, args.exit_codes)
    else:
        cores = _gpaw_ranks(task.cores) if task.method == "gpaw" else _code_ranks(task.cores)
        outcome = calculate(task.composition, task.method, task.settings, task.properties, seed=task.seed,
                            workdir=workdir / "calc", cores=cores, task_id=task.task_id, campaign=task.campaign)
    if rank == 0:  # under MPI every rank computes; one writes
        write_result(workdir, outcome)
        print(f"{'ok' if outcome.ok else 'failed: ' + outcome.kind.value}: {workdir / 'result.json'}")
    return outcome.exit_code if (args.exit_codes and not outcome.ok) else 0


if __name__ == "__main__":
    sys.exit(main())
