"""What a benchmark result depends on besides the code: library versions, the CPU, thread count and
the maths library's settings.

The engine's default caps its hyper-parameter fits (30/60 L-BFGS iterations), so a different
GPyTorch, linear_operator, SciPy or NumPy, a second thread, or another MKL code path
(``MKL_CBWR``) moves its decisions while the code stays the same; the dev suite's steels-150 and
Griewank-8 rows moved that way between two builds of one commit (``benchmarks/README.md``). Every
saved run therefore records ``environment()``, and a comparison names the rows whose environments
differ, because only rows run in one environment compare.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata

#: the distributions whose versions decide the engine's and the references' numbers
PACKAGES = ("numpy", "scipy", "torch", "gpytorch", "linear_operator", "botorch")
#: environment variables that change the floating-point path of the same code
VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_CBWR")


def _cpu() -> str:
    """The CPU model as the kernel names it (``platform.processor()`` is empty on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, str]:
    """``{name: value}``: Python, each of ``PACKAGES`` (``"absent"`` when not installed), the CPU,
    the cores this process may use and each of ``VARIABLES`` (``"unset"``)."""
    env = {"python": platform.python_version(), "cpu": _cpu(), "cores": str(len(os.sched_getaffinity(0)))}
    for name in PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "absent"
    for name in VARIABLES:
        env[name] = os.environ.get(name, "unset")
    return env


def differences(a: dict[str, str] | None, b: dict[str, str] | None) -> list[str]:
    """``"name: A vs B"`` for every entry in which two recorded environments differ (none when
    either was not recorded: older result files carry none)."""
    if not a or not b:
        return []
    return [f"{k}: {a.get(k, '?')} vs {b.get(k, '?')}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


__all__ = ["PACKAGES", "VARIABLES", "differences", "environment"]
