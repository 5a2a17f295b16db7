# Two entry points (see README): `make demo` and `make test`. Each first checks the Debian
# packages it needs (.ci/debian-packages.txt: installed when run as root, else the exact
# apt-get line is printed and make stops), then builds .venv when missing.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.base-installed
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1
export PYTHONDONTWRITEBYTECODE :=

.PHONY: venv demo demo-slurm test test-fast slurm-up slurm-down bench clean deps-demo deps-test

deps-demo:
	bash .ci/debian-deps.sh demo

deps-test:
	bash .ci/debian-deps.sh test

# The engine (enough for the demo: EMT needs no compiled code).
$(BASE): pyproject.toml constraints.txt | deps-demo
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# torch first, from the CPU build on disk: anything else would pull a CUDA build.
	$(BIN)/pip install -q -c constraints.txt torch
	# the numerical stack at the versions the benchmark tables were measured with
	$(BIN)/pip install -q -c constraints.txt -e .
	$(BIN)/python -m compileall -q $(VENV)/lib > /dev/null || true
	# BoTorch's compiled qLogNEHVI kernel, built now rather than in a campaign's first plan
	$(BIN)/python -m dm_hpc.acquire.kernels
	touch $(BASE)

# Plus the test tools, GPAW, which compiles against Debian's libxc, OpenBLAS and Open MPI
# (deps-test installs them), and CHGNet, whose weights ship in its wheel (the atomate2
# force-field Maker tests run it on the local Slurm instead of skipping).
$(STAMP): $(BASE) | deps-test
	$(BIN)/pip install -q -c constraints.txt -e '.[test,dft,mlip]'
	$(BIN)/python -m compileall -q $(VENV)/lib > /dev/null || true
	touch $(STAMP)

venv: $(STAMP)

demo: $(BASE)
	$(BIN)/dm-hpc run campaigns/hea-demo.yaml

demo-slurm: $(BASE) slurm-up
	$(BIN)/dm-hpc run campaigns/hea-demo-slurm.yaml

slurm-up:
	bash slurm/start-local.sh

slurm-down:
	bash slurm/stop-local.sh

test: deps-test $(STAMP) slurm-up
	$(BIN)/python -m pytest -q

test-fast: deps-test $(STAMP)
	$(BIN)/python -m pytest -q -m "not slurm and not dft and not slow"

bench: $(BASE)
	$(BIN)/python benchmarks/store_bench.py

clean:
	rm -rf $(VENV) build *.egg-info
