"""The campaign report on a tiny real campaign (EMT, local runner), on an empty one, and its parts."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import parse_campaign
from dm_hpc.campaign.calibration import COVERAGE_RANGE, calibration, calibration_lines
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
    # the 90 %-interval coverage of the cross-validated predictions, one row per property
    # with the cross-validated R² of the objectives (issue 19: R² < 0 was "ok")
    assert "## Surrogate quality" in text
    # no lab measurement yet: the measured-value model's choice says what it needs (issue 23 §2)
    assert "## Measured values from computed ones" in text
    assert "mixing_energy from emt: 0 composition(s) with both values; the choice needs 10." in text
    for prop in campaign.properties:
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| {prop} | ") and ln.count("|") == 6)
        r2, share, n, verdict = (c.strip() for c in row.split("|")[2:6])
        assert 0 <= int(share.rstrip("%")) <= 100 and int(n) >= 3
        if r2 != "-" and float(r2) < 0:
            assert verdict.startswith("poor"), row
            continue
        inside = COVERAGE_RANGE[0] <= int(share.rstrip("%")) / 100 <= COVERAGE_RANGE[1]
        assert (verdict == "ok") == inside, row
        assert inside or verdict in ("coverage far off", f"outside the range, but {n} points are too few to tell")


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


def test_report_and_lab_sheet_show_objectives_in_the_campaign_files_unit(tiny_run, tmp_path):
    """An objective written in meV/atom is read in meV/atom: the report's objectives line and
    best-records table and the lab sheet's predictions and headers (they were eV/atom with the
    eV/atom values, beside a target the author wrote in meV/atom). The store stays canonical."""
    from dm_hpc.campaign.labsheet import suggestion_rows

    campaign, summary = tiny_run
    run = tmp_path / "run"
    shutil.copytree(campaign.run_dir, run, ignore=shutil.ignore_patterns("tasks", "report", "*.lock"))
    objectives = [{"property": "mixing_energy", "goal": "min", "unit": "meV/atom"}, TINY["objectives"][1]]
    c = _campaign(tmp_path, store=str(campaign.store), workdir=str(run), objectives=objectives)
    text = write_report(c).read_text()
    assert "objectives: min mixing_energy [meV/atom], min raw_material_cost [USD/kg]" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| mixing_energy (min) | emt |"))
    assert line.endswith(f"| {summary.best['mixing_energy'] * 1000:.6g} meV/atom |"), line
    assert "eV/atom" not in text.replace("meV/atom", "")

    state = jn.replay(run / "journal.jsonl")
    ev, mev = suggestion_rows(campaign, state), suggestion_rows(c, state)
    assert mev and all("predicted:mixing_energy [eV/atom]" not in row for row in mev)
    for a, b in zip(ev, mev):
        assert b["predicted:mixing_energy [meV/atom]"] == pytest.approx(1000 * a["predicted:mixing_energy [eV/atom]"], rel=0.01)
        assert b["predicted_std:mixing_energy [meV/atom]"] == pytest.approx(
            1000 * a["predicted_std:mixing_energy [eV/atom]"], rel=0.05)
        assert "property:mixing_energy [meV/atom]" in b and "uncertainty:mixing_energy [meV/atom]" in b


def test_a_runs_summary_gives_best_values_in_the_files_unit_and_names_it(tiny_run, tmp_path):
    """``run``'s Summary gave the best mixing energy in eV/atom (canonical) for a campaign whose
    file writes meV/atom, as the summary line, records() and the report do not; its values are now
    in ``best_unit``, which says so."""
    from dm_hpc.campaign.manager import CampaignManager
    from dm_hpc.data import Store

    campaign, _ = tiny_run
    shutil.copytree(campaign.run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("tasks", "report", "*.lock"))
    shutil.copytree(campaign.store, tmp_path / "store")
    objectives = [{"property": "mixing_energy", "goal": "min", "unit": "meV/atom"}, TINY["objectives"][1]]
    c = _campaign(tmp_path, objectives=objectives)
    summary = CampaignManager(c, quiet=True).run(max_seconds=30)  # the budget is spent: it stops at once
    assert summary.best_unit == {"mixing_energy": "meV/atom", "raw_material_cost": "USD/kg"}
    with Store.open(c.store, "r") as store:
        lowest = store.to_dataframe(campaign=c.name)["mixing_energy"].min()
    assert summary.best["mixing_energy"] == pytest.approx(1000 * lowest)


def test_report_on_empty_campaign(tmp_path):
    c = _campaign(tmp_path)
    text = write_report(c).read_text()
    assert "state: not started" in text
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


def _gaussian_predictions(n: int = 400, seed: int = 0):
    """Outcomes drawn from N(mean, std^2): intervals of ``std`` are calibrated by construction."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=(n, 2))
    std = np.exp(rng.normal(size=(n, 2)) * 0.3)
    return mean + std * rng.standard_normal((n, 2)), mean, std


def test_calibrated_predictions_are_not_flagged():
    y, mean, std = _gaussian_predictions()
    cals = calibration(["a", "b"], y, mean, std)
    assert [c.property for c in cals] == ["a", "b"] and all(c.n == 400 for c in cals)
    assert all(0.85 < c.coverage90 < 0.95 and not c.far_off for c in cals), cals
    assert "coverage far off" not in "\n".join(calibration_lines(cals))


@pytest.mark.parametrize("factor, word", [(0.4, "over-confident"), (3.0, "under-confident")])
def test_miscalibrated_predictions_are_flagged(factor, word):
    y, mean, std = _gaussian_predictions()
    std = std.copy()
    std[:, 1] *= factor  # only the second property's intervals are shrunk / widened
    ok, off = calibration(["a", "b"], y, mean, std)
    assert not ok.far_off and off.far_off
    assert (off.coverage90 < COVERAGE_RANGE[0]) if factor < 1 else (off.coverage90 > COVERAGE_RANGE[1])
    text = "\n".join(calibration_lines([ok, off]))
    assert "| b |" in text and "coverage far off" in text and word in text and "acquisition" in text
    assert "**a:" not in text  # the calibrated property gets no warning


def test_missing_values_are_left_out_of_the_coverage():
    y, mean, std = _gaussian_predictions(n=50)
    y[:10, 0] = np.nan
    a, b = calibration(["a", "b"], y, mean, std)
    assert (a.n, b.n) == (40, 50)
    empty = calibration(["a"], np.full((3, 1), np.nan), np.zeros((3, 1)), np.ones((3, 1)))[0]
    assert empty.n == 0 and not empty.far_off and "| a | - | - | 0 | - |" in calibration_lines([empty])


def test_few_points_outside_the_range_are_not_flagged():
    """10 of 10 inside happens one time in three with calibrated intervals: not a finding."""
    y, mean, std = _gaussian_predictions(n=10, seed=4)
    (c,) = calibration(["a"], y[:, :1], mean[:, :1], 10 * std[:, :1])
    assert c.coverage90 == 1.0 and c.outside and not c.far_off and c.p_value > 0.05
    assert "too few to tell" in "\n".join(calibration_lines([c]))
    (c,) = calibration(["a"], y[:, :1], mean[:, :1], 1e-3 * std[:, :1])  # 0 of 10 inside: flagged
    assert c.coverage90 == 0.0 and c.far_off


def test_a_calculation_does_not_dominate_a_measurement_on_the_pareto_front(tmp_path):
    """One front over every record let an EMT energy push a lab measurement off the front (a
    computed value and a measured one are different quantities); each fidelity now has its own."""
    import pandas as pd

    from dm_hpc.campaign.report import plot_pareto

    c = _campaign(tmp_path)
    df = pd.DataFrame({
        "source": ["computed", "computed", "experimental"],
        "method": ["emt", "emt", "lab"],
        "mixing_energy": [-0.05, 0.02, 0.01],
        "raw_material_cost": [10.0, 5.0, 12.0],  # the lab record is dominated by the first calculation
    })
    png, fronts = plot_pareto(c, df, tmp_path / "pareto.png")
    assert png.is_file()
    assert set(fronts) == {"emt", "lab"}
    assert fronts["emt"].tolist() == [True, True] and fronts["lab"].tolist() == [True]


def test_best_values_and_the_best_records_table_keep_to_the_constraints(tmp_path):
    """The report's best records and the run's best lines (which stopping on a target reads) took an
    alloy over the density limit as the best, where Campaign.best did not; a lab record's derived
    price was shown as a lab result. All now share one constraint rule and the table says which
    value was derived."""
    import pandas as pd

    from dm_hpc.campaign.dataset import best_records, best_values
    from dm_hpc.campaign.report import _best_rows

    c = _campaign(tmp_path, constraints=["density <= 9 g/cm3"])
    df = pd.DataFrame({
        "record_id": ["dm-a", "dm-b", "dm-c"], "campaign": c.name,
        "source": ["computed", "computed", "experimental"], "method": ["emt", "emt", "lab"],
        "x_Cu": [0.5, 0.8, 0.6], "x_Ni": [0.5, 0.2, 0.4],
        "mixing_energy": [-0.09, -0.01, -0.02],
        "raw_material_cost": [9.0, 8.0, float("nan")],
        "density": [12.5, 8.9, 8.8],  # the lowest energy is over the limit
    })
    assert best_values(c, df)["mixing_energy"] == -0.02
    assert best_records(c, df)["mixing_energy"] == (-0.02, "lab")
    from dm_hpc.campaign.dataset import with_analytic

    text = "\n".join(_best_rows(c, with_analytic(c, df)))  # as write_report passes it
    assert "dm-a" not in text
    assert "1 record(s) left out" in text and "density <= 9" in text
    lab_cost = [ln for ln in text.splitlines() if ln.startswith("| raw_material_cost") and "lab" in ln]
    assert lab_cost and "derived from the composition" in lab_cost[0]


def test_a_reader_of_every_record_is_told_the_journals_counts_as_they_are(tmp_path):
    """``write_report(frame, whole_store=True)`` (the portal, for a reader of every record) counts
    tasks as the journal has them, as the portal's status and ``dm-hpc report`` do: it filtered
    them by the frame's record ids all the same, so a task whose record a correction or retraction
    has since replaced vanished from the admin's 'ingested' (and the report disagreed with the
    status beside it)."""
    c = _campaign(tmp_path)
    journal = jn.Journal(c.run_dir / "journal.jsonl")
    journal.write("start")
    journal.write("planned", task_id="t1", fidelity="emt", composition={"Cu": 0.5, "Ni": 0.5})
    journal.write("submitted", task_id="t1")
    journal.write("ingested", task_id="t1", record_id="dm-since-retracted", core_hours=0.01)
    journal.close()
    frame = pd.DataFrame({"record_id": pd.Series([], dtype=str)})
    whole = write_report(c, frame=frame, out_dir=tmp_path / "whole", whole_store=True).read_text()
    assert "| ingested, readable at your clearance | 1 |" in whole or "| ingested | 1 |" in whole, whole
    scoped = write_report(c, frame=frame, out_dir=tmp_path / "scoped").read_text()
    assert "| ingested, readable at your clearance | 0 |" in scoped


def test_a_report_whose_transfer_source_file_is_gone_is_written_and_says_what_it_left_out(tmp_path):
    """A campaign ran with a transfer table that was removed afterwards: `dm-hpc report` refused the
    whole report ("campaign cannot be read: transfer.from.0.table: no such file"), though the
    journal and the store hold everything it reports but the source's part. Only the pool, which
    says which records are the campaign's, is a file the report cannot do without."""
    from typer.testing import CliRunner

    from dm_hpc.campaign import load_campaign
    from dm_hpc.cli import app
    from dm_hpc.data import Store

    from .helpers import write_campaign

    screen = tmp_path / "screen.csv"
    pd.DataFrame({"composition:Cu [at_frac]": [0.5, 0.3, 0.2], "composition:Ni [at_frac]": [0.5, 0.7, 0.8],
                  "property:mixing_energy [eV/atom]": [-0.01, -0.02, -0.03]}).to_csv(screen, index=False)
    path = write_campaign(tmp_path, lab=False, transfer={"from": [{"table": str(screen), "label": "screen"}]})
    c = load_campaign(path)
    with Store.open(c.store, "a") as store:
        store.ingest([{"composition": {"Cu": cu, "Ni": 1 - cu}, "properties": [{"name": "mixing_energy", "value": -v}],
                       "provenance": {"source": "computed", "method": "emt", "campaign": c.name}}
                      for cu, v in ((0.4, 0.02), (0.6, 0.01))])
    screen.unlink()
    res = CliRunner().invoke(app, ["report", str(path)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    said = " ".join(res.output.split())
    assert f"transfer.from.0.table: no such file: {screen}" in said, said
    assert "the report leaves out source screen" in said and "no transfer section" in said, said
    text = (c.run_dir / "report" / "summary.md").read_text()
    assert f"transfer.from.0.table: no such file: {screen}" in text and "no transfer section" in text, text
    assert "| mixing_energy (min) | emt |" in text  # the campaign's own records are reported
    # the pool is what the report cannot do without: it says which records are the campaign's
    pool = tmp_path / "pool.csv"
    pool.write_text("composition:Cu [at_frac],composition:Ni [at_frac]\n0.5,0.5\n")
    pooled = write_campaign(tmp_path, name="pooled", lab=False, space={"pool": str(pool)})
    pool.unlink()
    res = CliRunner().invoke(app, ["report", str(pooled)], env={"COLUMNS": "300"})
    assert res.exit_code != 0 and f"space.pool: no such file: {pool}" in res.output, res.output


def test_of_two_sources_the_report_leaves_out_only_the_one_it_cannot_read(tmp_path):
    from dm_hpc.campaign import load_campaign
    from dm_hpc.campaign.report import readable_sources

    from .helpers import write_campaign

    tables = [tmp_path / "a.csv", tmp_path / "b.csv"]
    for t in tables:
        pd.DataFrame({"composition:Cu [at_frac]": [0.5], "composition:Ni [at_frac]": [0.5],
                      "property:mixing_energy [eV/atom]": [-0.01]}).to_csv(t, index=False)
    c = load_campaign(write_campaign(tmp_path, lab=False, transfer={"from": [
        {"table": str(tables[0]), "label": "gone"}, {"table": str(tables[1]), "label": "kept"}]}))
    assert readable_sources(c) == (c, [])
    tables[0].unlink()
    read, lines = readable_sources(c)
    assert [s.name for s in read.transfer.from_] == ["kept"] and c.transfer is not None
    assert lines[0] == f"transfer.from.0.table: no such file: {tables[0]}: the report leaves out source gone"
    assert "of the other source(s) (kept), not the model the campaign ran with" in lines[1]


def test_the_reports_lab_section_counts_what_was_not_made_and_what_is_still_at_the_lab(tmp_path):
    """A lab trial: the report's Lab section gave suggested and measured only, while `dm-hpc
    status` also counted samples not made and the rest; a reader of the report could not tell a
    sample that failed from one still awaited."""
    from tests.campaign.helpers import hardness_density_lab

    api = hardness_density_lab(tmp_path, ["S1", "S2", "S3"], name="counts")
    rows = pd.DataFrame({"sample_id": ["S1", "S2"], "composition:Cu [at_frac]": [0.5, 0.5],
                         "composition:Ni [at_frac]": [0.5, 0.5], "property:hardness [GPa]": [2.1, "not made"],
                         "property:density [g/cm**3]": [8.6, None]})
    api.add_measurements(rows)
    text = write_report(api.spec).read_text()
    assert "experiments suggested: 3" in text and "experiments measured: 1" in text, text
    assert "- not made: 1; still at the lab: 1 (of which held for a confirmation: 0)" in text, text


def test_the_report_says_a_pending_lab_sheet_nobody_filled_is_waiting_at_the_lab(tmp_path):
    """The report's 'lab sheets:' listed the run folder's lab-suggestions.xlsx like any other
    file, the same whether the lab had returned it or not opened it yet: a reader looked for
    results in an empty sheet. Now a sheet of the campaign's suggestions says where it stands:
    waiting at the lab (rows, none returned yet), values typed into it not yet ingested, or how
    many of its rows came back."""
    import openpyxl
    from typer.testing import CliRunner

    from dm_hpc.cli import app
    from tests.campaign.helpers import hardness_density_lab

    api = hardness_density_lab(tmp_path, ["S0", "S1"])
    res = CliRunner().invoke(app, ["suggest", str(tmp_path / "two.yaml")], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    pending = api.spec.run_dir / "lab-suggestions.xlsx"

    def line() -> str:
        text = write_report(api.spec).read_text()
        return next(ln for ln in text.splitlines() if ln.startswith("- lab sheets:"))

    assert line() == f"- lab sheets: `{pending}`: waiting at the lab (2 rows, none returned yet)", line()
    wb = openpyxl.load_workbook(pending)
    ws = wb["samples"]
    header = [c.value for c in ws[1]]
    ws.cell(2, header.index("property:hardness [GPa]") + 1).value = 2.4  # S0, typed, not yet ingested
    wb.save(pending)
    assert "values typed for 1 of its 2 rows, not ingested yet (`dm-hpc ingest CAMPAIGN_FILE" in line(), line()
    assert api.add_measurements(pd.DataFrame({"sample_id": ["S0"], "composition:Cu [at_frac]": [0.5],
                                              "composition:Ni [at_frac]": [0.5],
                                              "property:hardness [GPa]": [2.4]})) is not None
    assert line() == f"- lab sheets: `{pending}`: 1 of its 2 rows returned, 1 still at the lab", line()


def test_the_report_reads_each_lab_sheet_once_and_what_the_engine_wrote_once(tmp_path, monkeypatch):
    """Where each run folder's lab sheet stands was found by reading the sheet twice (its sample
    ids, then what was typed) and by building what the engine wrote for every suggestion once per
    sheet. Now each sheet is read once, the written rows built once for all; the lines are as before."""
    import shutil

    import openpyxl
    from typer.testing import CliRunner

    import dm_hpc.campaign.labsheet as labsheet
    import dm_hpc.data.sheetfiles as sheetfiles
    from dm_hpc.cli import app
    from tests.campaign.helpers import hardness_density_lab

    api = hardness_density_lab(tmp_path, ["S0", "S1"])
    assert CliRunner().invoke(app, ["suggest", str(tmp_path / "two.yaml")]).exit_code == 0
    sheets = [api.spec.run_dir / "lab-suggestions.xlsx", api.spec.run_dir / "lab-copy.xlsx"]
    shutil.copy(sheets[0], sheets[1])
    for k, sheet in enumerate(sheets):  # S0 typed in one, S1 in the other
        wb = openpyxl.load_workbook(sheet)
        ws = wb["samples"]
        ws.cell(2 + k, [c.value for c in ws[1]].index("property:hardness [GPa]") + 1).value = 2.4
        wb.save(sheet)
    reads, builds = [], []
    cells, rows = sheetfiles.workbook_cells, labsheet.suggestion_rows
    monkeypatch.setattr(sheetfiles, "workbook_cells", lambda path: reads.append(path) or cells(path))
    monkeypatch.setattr(labsheet, "suggestion_rows", lambda *a, **k: builds.append(a) or rows(*a, **k))
    text = write_report(api.spec).read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("- lab sheets:"))
    assert line.count("values typed for 1 of its 2 rows, not ingested yet") == 2, line
    assert sorted(reads) == sorted(sheets) and len(builds) == 1, (reads, builds)
