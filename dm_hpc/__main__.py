"""`python -m dm_hpc` is the `dm-hpc` command."""
from dm_hpc.cli import main

main()
