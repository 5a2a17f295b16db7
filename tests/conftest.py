"""Shared test settings: one torch thread (2-core machines), and the shared datasets folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"benchmark datasets not found at {DATASETS}")
    return DATASETS


# The whole suite once passed every test and then died with SIGSEGV while the interpreter shut
# down (after pytest's summary, no Python frame left: a native library's finaliser, libhdf5 or
# torch's thread pools, after ~480 tests in one process). The result is known by then, so the
# session ends with pytest's own exit status and skips the finalisers. DM_HPC_CLEAN_EXIT=1 keeps
# the normal shutdown (to hunt the crash).
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session, exitstatus) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    if _EXIT_STATUS and os.environ.get("DM_HPC_CLEAN_EXIT") != "1" and not hasattr(config, "workerinput"):
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


def _open_hdf5_files() -> set[str]:
    import h5py

    return {os.fsdecode(i.name) for i in h5py.h5f.get_obj_ids(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)}


@pytest.fixture(autouse=True)
def no_hdf5_file_left_open():
    """A test that leaves an HDF5 file open fails, naming the file.

    Why: a ``Store`` left open inside a reference cycle (a traceback kept by ``pytest.raises``
    is enough) is closed later by Python's garbage collector, during whatever h5py call runs
    then. Twice a fresh-clone CI run died with SIGSEGV inside h5py's ``File.close``, in the
    first heavy HDF5 work after the data tests (the service tests' campaign fixture), and the
    one test that left a store open was among those data tests.
    """
    before = _open_hdf5_files()
    yield
    left = _open_hdf5_files() - before
    if left:
        import gc

        gc.collect()  # close what is unreachable now, not at a random moment of a later test
        pytest.fail(f"HDF5 file(s) left open by this test: {sorted(left)}")
