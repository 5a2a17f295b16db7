"""Where BoTorch's compiled acquisition kernel is cached (issue 9: the 18 s planner stall)."""
from __future__ import annotations

import os
import subprocess
import sys

MULTI_OBJECTIVE = (
    "import os, sys, torch, dm_hpc; before = os.environ.get('TORCH_EXTENSIONS_DIR'); "
    "from botorch.models import SingleTaskGP; "
    "from dm_hpc.acquire.acquisition import Objective, build_acquisition; "
    "X = torch.rand(6, 2, dtype=torch.double); "
    "m = SingleTaskGP(X, torch.stack([X.sum(-1), X[:, 0] - X[:, 1]], -1)); "
    "build_acquisition(m, X, [Objective(0), Objective(1)], []); "
    "print(before, os.environ.get('TORCH_EXTENSIONS_DIR'), sys.prefix, sep='|')"
)


def _last_line(code: str, env: dict) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1].split("|")


def test_kernel_cache_folder_is_the_environments_and_set_only_where_the_kernel_is_built():
    """`import dm_hpc` changes no environment variable; a multi-objective acquisition puts torch's
    extension builds in this environment's folder; a folder the user chose is kept."""
    env = {k: v for k, v in os.environ.items() if k != "TORCH_EXTENSIONS_DIR"}
    before, after, prefix = _last_line(MULTI_OBJECTIVE, env)
    assert before == "None"
    assert after == os.path.join(prefix, "torch_extensions")
    kept = _last_line("import os; from dm_hpc.acquire.kernels import use_environment_cache; use_environment_cache(); "
                      "print(os.environ['TORCH_EXTENSIONS_DIR'])", {**env, "TORCH_EXTENSIONS_DIR": "/tmp/mine"})
    assert kept == ["/tmp/mine"]
