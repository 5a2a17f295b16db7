"""dm-hpc: an HPC-native computation and active-learning engine for materials development.

Packages (dependencies point one way: campaign -> learn, acquire, runners, compute -> data):
``data`` (standard and HDF5 store), ``compute`` (calculators), ``runners`` (local, Slurm, pilots),
``learn`` (surrogates), ``acquire`` (BoTorch acquisition, inverse design), ``bench`` (pool
benchmarks), ``campaign`` (the loop), ``cli``.
"""
__version__ = "0.1.0"

__all__ = ["BudgetExhausted", "Campaign", "CampaignMoved", "InputError", "NoModel", "RandomSuggestions", "__version__"]


def __getattr__(name: str):
    # ``from dm_hpc import Campaign`` without importing the engine on ``import dm_hpc``
    if name in ("Campaign", "BudgetExhausted", "CampaignMoved", "InputError", "NoModel", "RandomSuggestions"):
        from dm_hpc import api

        return getattr(api, name)
    raise AttributeError(f"module 'dm_hpc' has no attribute {name!r}")
