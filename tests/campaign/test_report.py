"""The campaign report on a tiny real campaign (EMT, local runner), on an empty one, and its parts."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import parse_campaign
from dm_hpc.campaign.report import failure_type, non_dominated, write_report

TINY = {
    "name": "tiny-report",
    "seed": 3,
    "space": {"elements": {"Cu": [0.0, 0.8], "Ni": [0.0, 0.8], "Pd": [0.0, 0.8]}},
    "objectives": [
        {"property": "mixing_energy", "goal": "min", "unit": "eV/atom"},
        {"property": "raw_material_cost", "goal": "min", "unit": "USD/kg"},
    ],
    "fidelities": [
        {"name": "emt", "kind": "calculation", "method": "emt", "walltime": "2m"},
        {"name": "lab", "kind": "experiment", "cost": 2, "batch_size": 2},
    ],
    "budget": {"calculations": 10, "lab_experiments": 2, "wall_time": "100s", "core_hours_per_lab_day": 0.5},
    "runner": {"kind": "local", "cores": 2, "max_in_flight": 2},
    "learning": {"initial_points": 4, "refit_every": 3, "batch_size": 2},
}


def _campaign(root: Path, **over):
    data = {**TINY, "store": str(root / "store"), "workdir": str(root / "run"), **over}
    return parse_campaign(data, "tiny.yaml")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real 10-calculation campaign, run once for the module."""
    from dm_hpc.campaign.manager import CampaignManager

    root = tmp_path_factory.mktemp("tiny")
    campaign = _campaign(root)
    summary = CampaignManager(campaign, quiet=True).run(max_seconds=90)
    return campaign, summary


def test_report_on_real_campaign(tiny_run):
    campaign, summary = tiny_run
    assert summary.ingested >= 5
    path = write_report(campaign)
    text = path.read_text()
    assert path == campaign.run_dir / "report" / "summary.md"
    assert "# Campaign report: tiny-report" in text
    assert summary.reason.split(" (")[0] in text  # the stop reason
    assert f"| ingested | {summary.ingested} |" in text
    assert f"| failed | {summary.failed} |" in text
    assert "Core-hours used:" in text
    assert "experiments suggested:" in text and "experiments measured: 0" in text
    # best records: ids, compositions, values with units
    for prop, best in summary.best.items():
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {prop} (min) | emt |"))
        assert "`dm-" in line and ("eV/atom" in line or "USD/kg" in line)
        assert f"{best:.6g}" in line
    assert str(campaign.store) in text
    for png in ("best_vs_evaluations.png", "parity.png", "pareto.png"):
        f = path.parent / png
        assert f.exists() and f.stat().st_size > 5000, png
        assert f"`{png}`" in text
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_groups_failures_by_type(tiny_run, tmp_path):
    campaign, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(campaign.run_dir, run, ignore=shutil.ignore_patterns("tasks", "report", "*.lock"))
    c = _campaign(tmp_path, store=str(campaign.store), workdir=str(run))
    journal = jn.Journal(run / "journal.jsonl")
    for k, error in enumerate(["TIMEOUT (exit 0): walltime reached", "TIMEOUT (exit 0): again",
                               "scf_not_converged: 100 iterations"]):
        tid = f"tiny-report-x{k}"
        journal.write("planned", task_id=tid, fidelity="emt", composition={"Cu": 1.0}, process={})
        journal.write("submitted", task_id=tid)
        journal.write("failed", task_id=tid, error=error, core_hours=0.01)
    journal.close()
    text = write_report(c).read_text()
    assert "| TIMEOUT | 2 |" in text
    assert "| scf_not_converged | 1 |" in text


def test_report_on_empty_campaign(tmp_path):
    c = _campaign(tmp_path)
    text = write_report(c).read_text()
    assert "stop reason: not started" in text
    assert "no surrogate model yet" in text
    assert "| ingested | 0 |" in text
    assert "- none yet" in text  # no plots


def test_failure_type():
    assert failure_type("OUT_OF_MEMORY (exit 137): killed") == "OUT_OF_MEMORY"
    assert failure_type("scf_not_converged: x") == "scf_not_converged"
    assert failure_type(None) == "unknown"


def test_non_dominated_respects_goals():
    v = np.array([[1.0, 1.0], [2.0, 0.5], [3.0, 3.0], [0.5, 4.0], [np.nan, 0.0]])
    assert non_dominated(v, [False, False]).tolist() == [True, True, False, True, False]
    assert non_dominated(v, [True, True]).tolist() == [False, False, True, True, False]
    assert non_dominated(v, [True, False]).tolist() == [False, True, True, False, False]
