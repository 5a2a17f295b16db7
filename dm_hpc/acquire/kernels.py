"""Build BoTorch's compiled acquisition kernels once, when the environment is made.

The first ``qLogNoisyExpectedHypervolumeImprovement`` of a process makes BoTorch JIT-compile its
fused C++ kernel (``torch.utils.cpp_extension``, ~17 s on 2 cores). Left to the first campaign,
that happens in its planner thread, and the calculation slots sit idle meanwhile (measured: an
18-21 s stall in the demo, issue 9). ``python -m dm_hpc.acquire.kernels`` (run by ``make venv`` and
``make demo``) constructs one through the public API, so the build lands in the environment's
cache folder (``TORCH_EXTENSIONS_DIR``, per environment: ``use_environment_cache``) beforehand.
Without a compiler BoTorch falls back to its Python path; that is reported, not an error.
"""
from __future__ import annotations

import os
import sys
import time
import warnings


def use_environment_cache() -> None:
    """Keep torch's extension builds in a folder of this environment (unless the user chose one).

    torch caches a build in one folder per user, keyed by flags that include the environment's
    paths, so two environments (a CI clone's venv, the project's) evict each other's build and
    the next multi-objective plan stalls on a rebuild. Called where the kernel is built: here
    and before every qLogNEHVI (``acquisition.build_acquisition``); torch reads the variable
    when it builds, not when it is imported.
    """
    if "TORCH_EXTENSIONS_DIR" not in os.environ and os.access(sys.prefix, os.W_OK):
        os.environ["TORCH_EXTENSIONS_DIR"] = os.path.join(sys.prefix, "torch_extensions")


def build() -> tuple[float, list[str]]:
    """Construct a tiny qLogNEHVI; returns the seconds it took and BoTorch's warnings."""
    use_environment_cache()
    import torch
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.models import SingleTaskGP

    X = torch.rand(4, 2, dtype=torch.double, generator=torch.Generator().manual_seed(0))
    model = SingleTaskGP(X, torch.stack([X.sum(-1), X[:, 0] - X[:, 1]], dim=-1))
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        qLogNoisyExpectedHypervolumeImprovement(model, ref_point=[-1.0, -1.0], X_baseline=X)
    return time.perf_counter() - t, [str(w.message) for w in caught if "C++" in str(w.message)]


if __name__ == "__main__":
    seconds, problems = build()
    print(f"BoTorch kernels ready in {seconds:.1f} s" + (f" (Python fallback: {problems[0][:200]})" if problems else ""))
