#!/usr/bin/env bash
# JAX and NumPyro for benchmarks/saas_cost.py, in a folder of their own put on PYTHONPATH beside
# the engine's .venv (never installed in it: BoTorch's fully Bayesian models need them, the engine
# does not). --no-deps keeps the engine's numpy, scipy and torch the ones that are imported.
# Usage: bash benchmarks/saas_env.sh [DIR]   (default benchmarks/saas-env)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here/saas-env}"
"$here/../.venv/bin/pip" install -q --target "$dir" --no-deps \
  "jax==0.10.2" "jaxlib==0.10.2" "numpyro==0.22.0" "ml_dtypes>=0.5" opt_einsum multipledispatch
echo "$dir: jax 0.10.2, numpyro 0.22.0 (run: PYTHONPATH=$dir .venv/bin/python benchmarks/saas_cost.py)"
