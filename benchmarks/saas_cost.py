"""What a fully Bayesian GP (SAAS prior, NUTS) would cost the dev suite here (issue 22 item 6).

The last of item 6's "worth trying" directions not measured: hyper-parameters integrated out by
MCMC rather than around the MAP (``hyper_bma_ablation.py``). BoTorch's
``SaasFullyBayesianSingleTaskGP`` fitted by ``fit_fully_bayesian_model_nuts`` (NumPyro), at the
sizes a pool campaign refits at (10, 25 and 40 points) in 6 and 13 inputs (Hartmann-6; the steels),
with BoTorch's default chain (256 warm-up, 128 samples, thinning 16) and a shortened one (64, 64, 8).
Prints seconds per fit and what one evaluation of a variant on the dev suite would take: 12 sets x
10 seeds x 38 refits (budget 40 from 2 random points), on one core.

Usage: bash benchmarks/saas_env.sh && OMP_NUM_THREADS=1 PYTHONPATH=benchmarks/saas-env \\
       .venv/bin/python benchmarks/saas_cost.py
"""
from __future__ import annotations

import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch

torch.set_num_threads(1)
warnings.filterwarnings("ignore")

REFITS = 12 * 10 * 38  # sets x seeds x refits per campaign
CHAINS = {"default": (256, 128, 16), "short": (64, 64, 8)}


def main() -> None:
    from botorch.fit import fit_fully_bayesian_model_nuts
    from botorch.models.fully_bayesian import SaasFullyBayesianSingleTaskGP
    from botorch.test_functions import Hartmann

    rng = torch.Generator().manual_seed(0)
    per_fit: dict[str, list[float]] = {name: [] for name in CHAINS}
    print("inputs points chain seconds/fit", flush=True)
    for d in (6, 13):
        f = Hartmann(dim=6)
        for n in (10, 25, 40):
            X = torch.rand(n, d, generator=rng, dtype=torch.double)
            Y = -f(X[:, :6]).unsqueeze(-1)
            Y = (Y - Y.mean()) / Y.std()
            for name, (warmup, samples, thinning) in CHAINS.items():
                model = SaasFullyBayesianSingleTaskGP(X, Y)
                t = time.perf_counter()
                fit_fully_bayesian_model_nuts(model, warmup_steps=warmup, num_samples=samples,
                                              thinning=thinning, disable_progbar=True)
                per_fit[name].append(time.perf_counter() - t)
                print(f"{d:6d} {n:6d} {name:7s} {per_fit[name][-1]:8.1f}", flush=True)
    for name, times in per_fit.items():
        mean = sum(times) / len(times)
        print(f"chain {name}: mean {mean:.1f} s per fit -> one dev-suite evaluation ({REFITS} refits) "
              f"{mean * REFITS / 3600:.1f} core-hours", flush=True)


if __name__ == "__main__":
    main()
