"""Issue 19, item 5: a report that answers, and a status that tells the portal's story.

Reproduced on main with a lab-only process campaign driven by ``suggest``/``ingest``: best
records showed composition only (no annealing temperature or time), no plot against a process
parameter, ``best raw_material_cost: 22755.8`` without a unit, a parity plot with R² = -0.56
next to a calibration verdict "ok", "surrogate refits: 0" while the sheet carried predictions,
and ``status`` printed "not started" while the portal showed 4 suggested, 4 measured.
"""
from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from dm_hpc import Campaign
from dm_hpc.campaign.calibration import PropertyCalibration
from dm_hpc.campaign.report import write_report
from tests.conftest import REPO

ANNEAL = {
    "name": "anneal",
    "store": "store",
    "workdir": "run",
    "seed": 2,
    "space": {"elements": {"Cu": [0.5, 1.0], "Ni": [0.0, 0.5]},
              "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"},
                          "annealing_time": {"low": 30, "high": 480, "unit": "min"}}},
    "objectives": [{"property": "hardness", "goal": "max", "unit": "GPa"}],
    "fidelities": [{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 4}],
    "budget": {"lab_experiments": 12},
    "learning": {"initial_points": 4},
}
HARDNESS = "property:hardness [GPa]"


def _canonical(sheet: pd.DataFrame, column: str, name: str) -> pd.Series:
    from dm_hpc.data.vocabulary import to_canonical

    unit = column.rsplit("[", 1)[1].rstrip("]")
    return sheet[column].astype(float).map(lambda v: to_canonical(name, v, unit, kind="process_parameter"))


def _measure(sheet: pd.DataFrame) -> pd.DataFrame:
    """A made-up but smooth hardness law: harder with Ni, softer when annealed hot and long."""
    col = {k: next(c for c in sheet.columns if k in c) for k in ("Ni", "annealing_temperature", "annealing_time")}
    ni = sheet[col["Ni"]].astype(float)
    # the sheet shows process values in the unit the campaign file wrote (here degC and min)
    t_k = _canonical(sheet, col["annealing_temperature"], "annealing_temperature")
    hours = _canonical(sheet, col["annealing_time"], "annealing_time")
    out = sheet.copy()
    out[HARDNESS] = 1.0 + 2.0 * ni - 0.001 * (t_k - 673) - 0.05 * hours
    return out


@pytest.fixture(scope="module")
def lab_only(tmp_path_factory):
    """Two suggest/ingest rounds of 4 experiments, as a lab would drive it (no `run`)."""
    folder = tmp_path_factory.mktemp("anneal")
    path = folder / "anneal.yaml"
    path.write_text(yaml.safe_dump(ANNEAL))
    camp = Campaign.load(path)
    for _ in range(2):
        camp.add_measurements(_measure(camp.suggest(4)))
    return path, camp


def test_status_tells_the_portals_story(lab_only):
    from dm_hpc.service.campaigns import CampaignDesk
    from dm_hpc.data.access import AccessLevel

    path, camp = lab_only
    res = subprocess.run([sys.executable, "-m", "dm_hpc", "status", str(path)], capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    portal = CampaignDesk(path.parent).status("anneal", AccessLevel.embargoed)  # a reader of every record
    assert portal["lab_suggested"] == 8 and portal["lab_measured"] == 8
    assert "not started" not in res.stdout and "not started" != portal["state"]
    assert portal["state"] in " ".join(res.stdout.split())
    assert re.search(r"lab experiments suggested\W+8\b", res.stdout)
    assert re.search(r"lab experiments measured\W+8\b", res.stdout)


def test_report_names_process_parameters_with_units(lab_only):
    path, camp = lab_only
    text = write_report(camp.spec).read_text()
    # in the units the campaign file wrote, as the lab sheet gives them (they were K and h)
    assert "annealing_temperature [degC]" in text and "annealing_time [min]" in text
    assert "annealing_temperature [K]" not in text and "annealing_time [h]" not in text
    best = [line for line in text.splitlines() if line.startswith("| hardness (max)")]
    assert best and all(line.rstrip(" |").endswith("GPa") for line in best), best
    assert "not started" not in text
    plots = camp.spec.run_dir / "report"
    assert (plots / "objectives_vs_process.png").exists()
    assert "objectives_vs_process.png" in text


def test_report_counts_the_fits_behind_the_predictions(lab_only):
    _, camp = lab_only
    text = write_report(camp.spec).read_text()
    sheet_predictions = [e for e in camp_state(camp).lab.values() if e.predicted.get("mean")]
    assert sheet_predictions, "the second batch was chosen by a fitted model"
    assert "lab batches suggested with model predictions: 1 of 2" in text
    assert "surrogate refits: 0" not in text


def test_poor_models_are_flagged_next_to_their_r2(lab_only):
    _, camp = lab_only
    text = write_report(camp.spec).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| hardness |")]
    assert rows, text
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        r2 = float(cells[1]) if cells[1] not in ("-", "nan") else math.nan
        if r2 < 0:
            assert cells[-1].startswith("poor"), row


def test_quality_verdict():
    from dm_hpc.campaign.calibration import quality_verdict

    ok = PropertyCalibration("hardness", 0.9, 40, 1.0)
    assert quality_verdict(ok, 0.8) == "ok"
    assert quality_verdict(ok, -0.56).startswith("poor")  # was "ok" beside R² = -0.56
    far = PropertyCalibration("hardness", 0.4, 40, 1e-9)
    assert "coverage far off" in quality_verdict(far, 0.8)
    assert quality_verdict(PropertyCalibration("hardness", math.nan, 0), math.nan) == "-"


def test_run_prints_best_values_with_units(tmp_path):
    from tests.campaign.helpers import write_campaign

    path = write_campaign(tmp_path, name="units", calculations=3, lab=False,
                          objectives=[{"property": "raw_material_cost", "goal": "min", "unit": "USD/kg"}],
                          learning={"initial_points": 3, "refit_every": 3, "batch_size": 1})
    res = subprocess.run([sys.executable, "-m", "dm_hpc", "run", str(path), "--quiet"], capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"best raw_material_cost: [0-9.e+]+ USD/kg", res.stdout), res.stdout


def camp_state(camp):
    from dm_hpc.campaign import journal as jn

    return jn.replay(camp.spec.run_dir / "journal.jsonl")
