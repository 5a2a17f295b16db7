"""Fixtures of the benchmark tests."""
import pytest

from tests.conftest import load_benchmark


@pytest.fixture
def pool_bench():
    """``benchmarks/pool_bench.py`` imported by path (the benchmarks are scripts, not a package)."""
    return load_benchmark("pool_bench")
