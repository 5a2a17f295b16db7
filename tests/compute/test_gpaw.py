"""GPAW plane-wave PBE runs (real code, 1-atom Cu cells), serial and with 2 MPI ranks."""
from __future__ import annotations

import subprocess

import pytest

from dm_hpc.compute import FailureKind, calculate, read_result, worker_argv, write_task


pytest.importorskip("gpaw", reason="gpaw not installed (pip install 'dm-hpc[dft]')")
pytestmark = [pytest.mark.dft]
QUICK = ["energy_per_atom", "lattice_parameter"]


def test_gpaw_pbe_cu_lattice_within_two_percent(tmp_path):
    """Physics only: its wall time is a figure in benchmarks/calc_bench.py, not an assertion."""
    r = calculate("Cu", "gpaw", workdir=tmp_path)
    assert r.ok, (r.reason, r.output_tail)
    assert abs(r.property_dict()["lattice_parameter"] - 3.63) / 3.63 < 0.02
    assert r.code == "gpaw"


def test_gpaw_scf_not_converged_is_typed(tmp_path):
    out = calculate("Cu", "gpaw", {"scf_max_iter": 2}, QUICK, workdir=tmp_path)
    assert not out.ok and out.kind is FailureKind.scf_not_converged and out.output_tail


@pytest.mark.slow
def test_gpaw_two_mpi_ranks_through_the_worker(tmp_path):
    task = write_task(tmp_path, "Cu", "gpaw", properties=QUICK, cores=2, task_id="gpaw-2")
    proc = subprocess.run(worker_argv(task), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    result = read_result(tmp_path)
    assert proc.returncode == 0 and result.ok, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert result.cores == 2 and abs(result.property_dict()["lattice_parameter"] - 3.63) / 3.63 < 0.02
