"""Quantum ESPRESSO pw.x runs (real code, 1-atom Cu cells) and its typed failures."""
from __future__ import annotations

import shutil

import pytest

from dm_hpc.compute import FailureKind, calculate, read_result, worker_argv, write_task


pytestmark = [pytest.mark.dft, pytest.mark.skipif(shutil.which("pw.x") is None,
              reason="pw.x not installed (apt install quantum-espresso)")]
QUICK = ["energy_per_atom", "lattice_parameter"]


def test_qe_pbe_cu_lattice_within_two_percent(tmp_path):
    """Physics only: its wall time is a figure in benchmarks/calc_bench.py, not an assertion."""
    r = calculate("Cu", "qe", workdir=tmp_path)
    assert r.ok, (r.reason, r.output_tail)
    a = r.property_dict()["lattice_parameter"]
    assert abs(a - 3.63) / 3.63 < 0.02
    assert r.code == "quantum-espresso" and r.code_version.startswith("6.")
    assert r.property_dict()["mixing_energy"] == 0.0  # the run itself is the Cu reference


@pytest.mark.slow
def test_qe_two_mpi_ranks_through_the_worker(tmp_path):
    task = write_task(tmp_path, "Cu", "qe", properties=QUICK, cores=2, task_id="qe-2")
    import subprocess
    proc = subprocess.run(worker_argv(task), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    result = read_result(tmp_path)
    assert proc.returncode == 0 and result.ok, (proc.stderr, getattr(result, "output_tail", ""))
    assert result.cores == 2 and abs(result.property_dict()["lattice_parameter"] - 3.63) / 3.63 < 0.02
    assert "K-points division:     npool     =       2" in (tmp_path / "calc" / "relax" / "espresso.pwo").read_text()


@pytest.mark.parametrize("settings, kind, words", [
    ({"scf_max_iter": 2}, FailureKind.scf_not_converged, "convergence NOT achieved"),
    ({"relax_steps": 1}, FailureKind.relax_step_limit, "nstep=1"),
    ({"ecutrho_ry": 10}, FailureKind.code_died, "Error in routine"),
])
def test_qe_failures_are_typed_with_output_tail(tmp_path, settings, kind, words):
    out = calculate("Cu", "qe", settings, QUICK, workdir=tmp_path)
    assert not out.ok and out.kind is kind, (out.reason if not out.ok else out)
    assert words in out.reason + out.output_tail
    assert out.output_tail  # pw.x's last words are kept


def test_missing_pseudopotential_file_and_element(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_HPC_PSEUDO_DIR", str(tmp_path))  # an empty folder
    out = calculate("Cu", "qe", properties=QUICK, workdir=tmp_path)
    assert not out.ok and out.kind is FailureKind.missing_pseudopotential and "Cu.pbe-kjpaw.UPF" in out.reason
    monkeypatch.delenv("DM_HPC_PSEUDO_DIR")
    co = calculate("Co0.5Cu0.5", "qe", properties=QUICK)  # only a PBEsol Co potential ships
    assert not co.ok and co.kind is FailureKind.missing_pseudopotential and "Co" in co.reason
