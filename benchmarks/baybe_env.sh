#!/usr/bin/env bash
# The BayBE reference environment for benchmarks/transfer_bench.py: BayBE 0.15.0 from the package
# index in its OWN virtual environment (never the engine's .venv: BayBE brings its own pins), with
# torch pinned to the CPU build 2.13.0 so that both sides run the same torch.
# Usage: bash benchmarks/baybe_env.sh [DIR]   (default benchmarks/baybe-env; ~3-5 min on 2 cores)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
env="${1:-$here/baybe-env}"
BAYBE_VERSION=0.15.0
TORCH_VERSION=2.13.0
if [ -x "$env/bin/python" ] && "$env/bin/python" -c "import baybe, sys; sys.exit(baybe.__version__ != '$BAYBE_VERSION')" 2>/dev/null; then
  echo "$env: baybe $BAYBE_VERSION present"; exit 0
fi
python3 -m venv "$env"
"$env/bin/pip" install -q "torch==$TORCH_VERSION"
echo "torch==$TORCH_VERSION" > "$env/constraints.txt"
"$env/bin/pip" install -q -c "$env/constraints.txt" "baybe==$BAYBE_VERSION"
"$env/bin/python" -c "import baybe, torch; print('baybe', baybe.__version__, 'torch', torch.__version__)" | tee "$env/VERSION"
