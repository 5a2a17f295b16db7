"""dm-hpc: an HPC-native computation and active-learning engine for materials development.

Packages (dependencies point one way: campaign -> learn, acquire, runners, compute -> data):
``data`` (standard and HDF5 store), ``compute`` (calculators), ``runners`` (local, Slurm, pilots),
``learn`` (surrogates), ``acquire`` (BoTorch acquisition, inverse design), ``bench`` (pool
benchmarks), ``campaign`` (the loop), ``cli``.
"""
import os as _os
import sys as _sys

__version__ = "0.1.0"

# BoTorch JIT-compiles a fused qLogNEHVI kernel on first use (~17 s; see acquire/kernels.py). torch
# caches the build in one folder per user, keyed by flags that include the environment's paths, so
# two environments (a CI clone's venv, the project's) evict each other's build and the next
# multi-objective plan stalls on a rebuild. One folder per environment keeps each build.
if _os.access(_sys.prefix, _os.W_OK):
    _os.environ.setdefault("TORCH_EXTENSIONS_DIR", _os.path.join(_sys.prefix, "torch_extensions"))

__all__ = ["Campaign", "__version__"]


def __getattr__(name: str):
    # ``from dm_hpc import Campaign`` without importing the engine on ``import dm_hpc``
    if name == "Campaign":
        from dm_hpc.api import Campaign

        return Campaign
    raise AttributeError(f"module 'dm_hpc' has no attribute {name!r}")
