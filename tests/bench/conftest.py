"""Fixtures of the benchmark tests."""
import importlib.util
from pathlib import Path

import pytest

POOL_BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "pool_bench.py"


@pytest.fixture
def pool_bench():
    """``benchmarks/pool_bench.py`` imported by path (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("pool_bench", POOL_BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
