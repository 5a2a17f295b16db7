"""Issue 19, item 8: small commands import only what they need.

``status`` took ~3.5 s of CPU and ``validate`` 1.4-4.4 s, mostly importing torch, BoTorch, pint
(with dask), pandas and ASE's builders that neither uses. Timings live in
``benchmarks/small_commands.py``; this checks the behaviour behind them: which libraries a
command imports.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

HEAVY = ("torch", "botorch", "gpytorch", "matplotlib", "pint", "pandas", "h5py", "scipy", "ase.build")

PROBE = """
import json, sys
from typer.testing import CliRunner
from dm_hpc.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print(json.dumps({"code": result.exit_code, "output": result.output,
                  "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def _imports(*args: str) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture
def process_campaign(tmp_path):
    """A lab-only process campaign whose units need converting (degC, min)."""
    data = {"name": "light", "store": "store", "seed": 1,
            "space": {"elements": {"Cu": [0.5, 1], "Ni": [0, 0.5]},
                      "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"}}},
            "objectives": [{"property": "hardness", "goal": "max", "unit": "GPa"}],
            "constraints": ["density <= 9 g/cm3"],
            "fidelities": [{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2}],
            "budget": {"lab_experiments": 4}}
    path = tmp_path / "light.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("command", ["status", "validate"])
def test_status_and_validate_import_no_heavy_library(command):
    out = _imports(command, str(REPO / "campaigns" / "hea-demo.yaml"))
    assert out["code"] == 0, out["output"]
    assert out["heavy"] == [], f"{command} imported {out['heavy']}"


def test_listing_pending_experiments_imports_no_model(process_campaign, tmp_path):
    out = _imports("suggest", str(process_campaign), "--out", str(tmp_path / "pending.csv"))
    assert out["code"] == 0, out["output"]
    assert "wrote 0 suggested experiments" in out["output"]
    assert not {"torch", "botorch", "gpytorch", "matplotlib"} & set(out["heavy"]), out["heavy"]


def test_a_unit_that_needs_converting_still_validates(process_campaign):
    out = _imports("validate", str(process_campaign))
    assert out["code"] == 0, out["output"]
    assert "torch" not in out["heavy"]
