"""Shared fixtures: a private reference-energy cache per test session, one thread per process."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _private_reference_cache(tmp_path_factory):
    # references are cached on disk between processes; tests must not read a user's cache
    os.environ["DM_HPC_CACHE"] = str(tmp_path_factory.mktemp("dm-cache"))
    yield
