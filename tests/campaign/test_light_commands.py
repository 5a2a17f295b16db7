"""Issue 19, item 8: small commands import only what they need.

``status`` took ~3.5 s of CPU and ``validate`` 1.4-4.4 s, mostly importing torch, BoTorch, pint
(with dask), pandas and ASE's builders that neither uses. Timings live in
``benchmarks/small_commands.py``; this checks the behaviour behind them: which libraries a
command imports.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

HEAVY = ("torch", "botorch", "gpytorch", "matplotlib", "pint", "pandas", "h5py", "scipy", "ase.build", "openpyxl",
         "sklearn", "pymatgen", "sympy")
#: What a model fit needs; a report drawn from the cross-validation a lab batch kept imports none.
MODEL = {"torch", "botorch", "gpytorch", "scipy", "sympy", "pymatgen"}

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


def _write_process_campaign(folder, name: str, seed: int, batch_size: int, experiments: int):
    """A lab-only process campaign whose units need converting (degC), constrained on density."""
    data = {"name": name, "store": "store", "seed": seed,
            "space": {"elements": {"Cu": [0.5, 1], "Ni": [0, 0.5]},
                      "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"}}},
            "objectives": [{"property": "hardness", "goal": "max", "unit": "GPa"}],
            "constraints": ["density <= 9 g/cm3"],
            "fidelities": [{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": batch_size}],
            "budget": {"lab_experiments": experiments}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def process_campaign(tmp_path):
    """A lab-only process campaign whose units need converting (degC, min)."""
    return _write_process_campaign(tmp_path, "light", seed=1, batch_size=2, experiments=4)


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


@pytest.fixture
def measured_campaign(process_campaign):
    """Two experiments measured without the constrained density (so no model can be fitted:
    ``status`` warns) and two more suggested, pending in degC."""
    from dm_hpc import Campaign

    camp = Campaign.load(process_campaign)
    sheet = camp.suggest(2)
    sheet["property:hardness [GPa]"] = [2.0, 2.5]
    camp.add_measurements(sheet)
    camp.suggest(2)
    return process_campaign


def test_listing_pending_experiments_imports_no_table_library(measured_campaign, tmp_path):
    """Issue 19 item 8: ``suggest`` answering with the pending experiments took 1.6 s of CPU:
    pandas, h5py, openpyxl and pint (for degC) for a few rows of CSV."""
    out = _imports("suggest", str(measured_campaign), "--out", str(tmp_path / "pending.csv"))
    assert out["code"] == 0, out["output"]
    assert "wrote 2 suggested experiments" in out["output"]
    assert out["heavy"] == [], out["heavy"]
    header = (tmp_path / "pending.csv").read_text().splitlines()[0]
    assert "process:treatment:annealing_temperature [degC]" in header  # converted, without pint


def test_status_warns_about_an_unfit_model_from_the_journal(measured_campaign):
    """Issue 19 item 8: ``status`` read the whole store (pandas, h5py: ~2 s of CPU) to say that
    no model can be fitted; the last lab ingest journals that fact."""
    out = _imports("status", str(measured_campaign))
    assert out["code"] == 0, out["output"]
    assert "warning: the model cannot be fitted: 0 usable records of 2 (needs 2); 2 lack density" in out["output"]
    assert out["heavy"] == [], out["heavy"]


def test_validating_a_pool_campaign_imports_no_model(tmp_path):
    """Issue 19 item 8: ``validate`` of a pool campaign imported BoTorch and torch (4.8 s of CPU)
    to list the pool's elements."""
    (tmp_path / "pool.csv").write_text("sample_id,composition:Ni [at_frac],composition:Fe [at_frac],"
                                       "property:hardness [GPa]\np1,0.5,0.5,2.0\np2,0.25,0.75,3.0\n")
    data = {"name": "pooled", "store": "store", "space": {"pool": "pool.csv"},
            "objectives": [{"property": "hardness", "goal": "max"}],
            "fidelities": [{"name": "lab", "kind": "experiment", "batch_size": 1}], "budget": {"lab_experiments": 2}}
    (tmp_path / "pooled.yaml").write_text(yaml.safe_dump(data))
    out = _imports("validate", str(tmp_path / "pooled.yaml"))
    assert out["code"] == 0, out["output"]
    assert not {"torch", "botorch", "gpytorch", "scipy"} & set(out["heavy"]), out["heavy"]


def test_a_report_fits_the_model_once_and_draws_without_pyplot(process_campaign, monkeypatch):
    """Issue 19 item 8: ``report`` on a few records took 10-18 s of CPU: six GP fits for a
    5-fold cross-validation (each fold refitted), pyplot, and scipy.stats for one p-value."""
    import sys

    import botorch.fit

    from dm_hpc import Campaign
    from dm_hpc.campaign.report import write_report

    camp = Campaign.load(process_campaign)
    sheet = camp.suggest(4)
    sheet["property:hardness [GPa]"] = [2.0, 2.5, 3.0, 3.5]
    sheet[next(c for c in sheet.columns if c.startswith("property:density"))] = [8.5, 8.6, 8.7, 8.8]
    camp.add_measurements(sheet)
    fits = []
    real = botorch.fit.fit_gpytorch_mll
    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", lambda *a, **k: fits.append(1) or real(*a, **k))
    for name in ("matplotlib.pyplot", "scipy.stats"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    summary = write_report(camp.spec).read_text()
    assert "surrogate parity (5-fold cross-validated" in summary  # the folds are still there
    assert len(fits) == 1, f"{len(fits)} fits for one cross-validated report"
    assert "matplotlib.pyplot" not in sys.modules and "scipy.stats" not in sys.modules


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (3, 5), (9, 10), (10, 10), (80, 100), (95, 100), (0, 300)])
def test_the_coverage_p_value_is_scipys_binomial_test(k, n):
    from scipy.stats import binomtest

    from dm_hpc.campaign.calibration import binomial_p_value

    assert binomial_p_value(k, n, 0.9) == pytest.approx(binomtest(k, n, 0.9).pvalue, rel=1e-9, abs=1e-300)


def test_status_reads_the_store_when_records_changed_since_the_last_check(measured_campaign):
    """The journalled check holds until records change another way (here a retraction): then
    ``status`` reads the store again rather than repeat a stale answer."""
    from dm_hpc import Campaign

    camp = Campaign.load(measured_campaign)
    camp.retract(camp.records()["record_id"].iloc[0], reason="furnace failed")
    out = _imports("status", str(measured_campaign))
    assert out["code"] == 0, out["output"]
    # of 1, not the journalled "of 2": read from the store as it is now
    assert "warning: the model cannot be fitted: 0 usable records of 1 (needs 2); 1 lack density" in out["output"]


@pytest.fixture
def batched_campaign(tmp_path):
    """Two lab rounds measured (hardness and the constrained density), then a third batch suggested
    from the model fitted on all 6 records: the scientist's day ends with ``report``."""
    from dm_hpc import Campaign

    path = _write_process_campaign(tmp_path, "batched", seed=3, batch_size=3, experiments=12)
    camp = Campaign.load(path)
    for _ in range(2):
        sheet = camp.suggest(3)
        ni = sheet[next(c for c in sheet.columns if "Ni" in c)].astype(float)
        sheet["property:hardness [GPa]"] = 2 + 3 * ni
        sheet[next(c for c in sheet.columns if c.startswith("property:density"))] = 8.5 + ni
        camp.add_measurements(sheet)
    camp.suggest(3)
    return path


def _quality_table(summary: str) -> list[str]:
    return [line for line in summary.splitlines() if line.startswith("| hardness |")]


def _measure_the_pending_batch(camp) -> None:
    """The lab sends back the pending batch (3 samples): the training set changes."""
    sheet = camp.pending()
    ni = sheet[next(c for c in sheet.columns if "Ni" in c)].astype(float)
    sheet["property:hardness [GPa]"] = 2 + 3 * ni
    sheet[next(c for c in sheet.columns if c.startswith("property:density"))] = 8.5 + ni
    assert len(camp.add_measurements(sheet)) == 3


def test_a_report_after_a_lab_batch_fits_no_model(batched_campaign):
    """Issue 19 item 8: ``report`` on a small campaign took over 5 s, 3 s of it importing torch,
    BoTorch and sympy and fitting the cross-validation's GP. The lab batch fitted a model on the
    same records moments before; its cross-validation is kept, and the report reuses it."""
    from dm_hpc import Campaign
    from dm_hpc.campaign.report import write_report

    spec = Campaign.load(batched_campaign).spec
    out = _imports("report", str(batched_campaign))
    assert out["code"] == 0, out["output"]
    assert not MODEL & set(out["heavy"]), out["heavy"]
    summary = (spec.run_dir / "report" / "summary.md").read_text()
    assert "surrogate parity (5-fold cross-validated" in summary
    kept = _quality_table(summary)
    assert kept and kept[0].split("|")[4].strip() == "6", kept  # R², coverage, 6 points, verdict
    # the same figures as a report that cross-validates anew
    (spec.run_dir / "cross-validation.json").unlink()
    assert _quality_table(write_report(spec).read_text()) == kept


def test_a_kept_cross_validation_is_not_reused_once_the_records_change(batched_campaign, monkeypatch):
    """A measurement after the lab batch (or a retraction, an edited campaign file) changes the
    training set: the report cross-validates anew rather than show figures of the old records."""
    import botorch.fit

    from dm_hpc import Campaign
    from dm_hpc.campaign.report import write_report

    camp = Campaign.load(batched_campaign)
    _measure_the_pending_batch(camp)
    fits = []
    real = botorch.fit.fit_gpytorch_mll
    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", lambda *a, **k: fits.append(1) or real(*a, **k))
    summary = write_report(camp.spec).read_text()
    assert len(fits) == 1, "the report reused a cross-validation of other records"
    assert _quality_table(summary)[0].split("|")[4].strip() == "9"


def test_a_report_that_must_cross_validate_does_it_beside_its_plots(batched_campaign):
    """Issue 19 item 8: a report after new measurements refits (~5.5 s of CPU, 3 s of it torch and
    the GP). In a fresh single-threaded process with a second core it cross-validates in a forked
    worker while it draws the other plots; the figures are those of an in-process cross-validation,
    and the parity plot keeps its place in the list."""
    from dm_hpc import Campaign
    from dm_hpc.campaign.crossval import FILE_NAME
    from dm_hpc.campaign.report import write_report

    camp = Campaign.load(batched_campaign)
    _measure_the_pending_batch(camp)
    out = _imports("report", str(batched_campaign))
    assert out["code"] == 0, out["output"]
    if len(os.sched_getaffinity(0)) > 1:  # the worker fitted: the report's own process loaded no model library
        assert not MODEL & set(out["heavy"]), out["heavy"]
    summary = (camp.spec.run_dir / "report" / "summary.md").read_text()
    forked = _quality_table(summary)
    assert forked and forked[0].split("|")[4].strip() == "9", forked
    plots = [line for line in summary.splitlines() if line.startswith("- ") and line.endswith(".png`")]
    assert plots[0].endswith("`best_vs_evaluations.png`") and plots[1].endswith("`parity.png`"), plots
    (camp.spec.run_dir / FILE_NAME).unlink()
    assert _quality_table(write_report(camp.spec).read_text()) == forked


def test_listing_pending_experiments_replays_the_journal_once(tmp_path, monkeypatch):
    """`dm-hpc suggest` with nothing pending replayed the whole journal twice: once to write the
    (empty) sheet, once more to say whether the lab budget was used up."""
    from typer.testing import CliRunner

    from dm_hpc.campaign import journal as jn
    from dm_hpc.cli import app
    from tests.campaign.helpers import hardness_density_lab

    api = hardness_density_lab(tmp_path, ["S0"])
    journal = jn.Journal(api.spec.run_dir / "journal.jsonl")
    journal.write("lab_ingested", records={}, not_made=["S0"])
    journal.close()
    replays = []
    replay = jn.replay
    monkeypatch.setattr(jn, "replay", lambda path: replays.append(path) or replay(path))
    res = CliRunner().invoke(app, ["suggest", str(tmp_path / "two.yaml"), "--out", str(tmp_path / "pending.csv")])
    assert res.exit_code == 0 and "wrote 0 suggested experiments" in res.output, res.output
    assert "every suggested experiment is measured" in " ".join(res.output.split())
    assert len(replays) == 1, replays
