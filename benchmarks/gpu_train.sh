#!/usr/bin/env bash
# Distributed training of the large-data surrogate on a lent GPU machine (issue 12 §4).
#
#   bash benchmarks/gpu_train.sh            (from the repository root; ~5 minutes on one GPU)
#
# Installs dm-hpc from this checkout (no downloads: the machine's torch/BoTorch are used), checks
# CUDA and NCCL, then runs benchmarks/train_bench.py on CUDA with NCCL (one GPU per rank; ranks
# 1 and 2 when two GPUs are visible, else a world of one — still a real NCCL process group and
# DDP), at the default global batch and at a GPU-sized one, and the CPU/gloo rows on the same
# machine for comparison. Figures are printed and, when $OUT is set, written to $OUT/gpu_train.md.
# Settings: RECORDS (default 100000), EPOCHS (20), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RECORDS=${RECORDS:-100000}
EPOCHS=${EPOCHS:-20}
REPORT=${OUT:-/tmp}/gpu_train.md

if ! "$PY" -m pip install --no-deps --no-build-isolation --quiet -e . >/dev/null 2>&1; then
  echo "note: pip install -e . failed; using the checkout through PYTHONPATH"
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

"$PY" - <<'PYEOF'
import importlib.util, sys
missing = [m for m in ("torch", "botorch", "gpytorch", "numpy", "pandas") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit("missing Python packages: " + ", ".join(missing) + " (install dm-hpc's dependencies first)")
import torch, torch.distributed as dist
print(f"torch {torch.__version__}; CUDA available: {torch.cuda.is_available()}; "
      f"GPUs: {torch.cuda.device_count()}; NCCL available: {dist.is_nccl_available()}")
if not torch.cuda.is_available() or not dist.is_nccl_available():
    sys.exit("this script needs a CUDA GPU and NCCL")
print("GPU 0:", torch.cuda.get_device_name(0))
PYEOF

NGPU=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
RANKS=1
if [ "$NGPU" -ge 2 ]; then RANKS=1,2; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
{
  echo "## CUDA + NCCL, default global batch ($RECORDS records, $EPOCHS epochs)"
  "$PY" benchmarks/train_bench.py --records "$RECORDS" --ranks "$RANKS" --epochs "$EPOCHS"
  echo
  echo "## CUDA + NCCL, global batch 8192 per member"
  "$PY" benchmarks/train_bench.py --records "$RECORDS" --ranks "$RANKS" --epochs "$EPOCHS" --batch 8192
  echo
  echo "## CPU + gloo on the same machine (OMP_NUM_THREADS=1 per rank), 2 epochs"
  CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=1 "$PY" benchmarks/train_bench.py --records "$RECORDS" --ranks 1,2 --epochs 2
} 2>&1 | tee "$REPORT"
echo "figures written to $REPORT"
