"""dm-hpc: an HPC-native computation and active-learning engine for materials development.

Packages (dependencies point one way: campaign -> learn, acquire, runners, compute -> data):
``data`` (standard and HDF5 store), ``compute`` (calculators), ``runners`` (local, Slurm, pilots),
``learn`` (surrogates), ``acquire`` (BoTorch acquisition, inverse design), ``bench`` (pool
benchmarks), ``campaign`` (the loop), ``cli``.
"""
__version__ = "0.1.0"
