"""Build BoTorch's compiled acquisition kernels once, when the environment is made.

The first ``qLogNoisyExpectedHypervolumeImprovement`` of a process makes BoTorch JIT-compile its
fused C++ kernel (``torch.utils.cpp_extension``, ~17 s on 2 cores). Left to the first campaign,
that happens in its planner thread, and the calculation slots sit idle meanwhile (measured: an
18-21 s stall in the demo, issue 9). ``python -m dm_hpc.acquire.kernels`` (run by ``make venv`` and
``make demo``) constructs one through the public API, so the build lands in the environment's
cache folder (``TORCH_EXTENSIONS_DIR``, per environment: ``use_environment_cache``) beforehand.
Without a compiler BoTorch falls back to its Python path; that is reported, not an error.

The build is kept only if the next process runs the same ``ninja`` (torch runs the one PATH
finds): Debian's ninja 1.11 and the 1.13 of the ``ninja`` wheel BoTorch requires (in the
environment's scripts folder) hash command lines differently, so each takes the other's build
for a changed command and compiles it again. ``make venv`` (venv not on PATH: Debian's ninja)
built it; the first demo run from an activated venv rebuilt it in its planner thread for 35 s,
and no calculation ran for the last 27 s of its 40 s (utilisation 29 %); the next ``make demo``
would have rebuilt it back. ``use_environment_ninja`` gives every process the environment's.
"""
from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import time
import warnings

#: The folder, inside the extensions cache, whose only file is a link to the environment's ninja.
NINJA_FOLDER = ".ninja"


def use_environment_cache() -> None:
    """Keep torch's extension builds in a folder of this environment (unless the user chose one).

    torch caches a build in one folder per user, keyed by flags that include the environment's
    paths, so two environments (a CI clone's venv, the project's) evict each other's build and
    the next multi-objective plan stalls on a rebuild. Called where the kernel is built: here
    and before every qLogNEHVI (``acquisition.build_acquisition``); torch reads the variable
    when it builds, not when it is imported. The ninja that builds there is the environment's
    (``use_environment_ninja``).
    """
    if "TORCH_EXTENSIONS_DIR" not in os.environ and os.access(sys.prefix, os.W_OK):
        os.environ["TORCH_EXTENSIONS_DIR"] = os.path.join(sys.prefix, "torch_extensions")
    use_environment_ninja()


def use_environment_ninja() -> None:
    """Make ``ninja`` on PATH the environment's own (the ``ninja`` wheel's, in its scripts folder),
    whether the environment is activated or not, so that no process rebuilds another's kernel.

    torch runs ``ninja`` from PATH. PATH gets one folder in front, in the extensions cache
    (``TORCH_EXTENSIONS_DIR``), holding only a link named ``ninja``: which ``python``, ``mpirun``
    or anything else a task starts is unchanged. Nothing is done when the environment has no
    ninja, when PATH finds it first already, or when no cache folder is set.
    """
    own = os.path.join(sysconfig.get_path("scripts"), "ninja")
    cache = os.environ.get("TORCH_EXTENSIONS_DIR")
    if not cache or not os.access(own, os.X_OK):
        return
    found = shutil.which("ninja")
    if found is not None and os.path.realpath(found) == os.path.realpath(own):
        return
    folder = os.path.join(cache, NINJA_FOLDER)
    link = os.path.join(folder, "ninja")
    try:
        if not (os.path.islink(link) and os.readlink(link) == own):
            os.makedirs(folder, exist_ok=True)
            tmp = f"{link}.{os.getpid()}"  # another process may be writing the same link
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(own, tmp)
            os.replace(tmp, link)
    except OSError:
        return  # a read-only cache: PATH's ninja it is, as before
    os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")


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
