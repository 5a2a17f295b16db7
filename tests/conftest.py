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
