"""Issue 19, item 1: the user guide cannot drift, and its examples run as written.

The campaign-file and vocabulary pages are generated from the code; the YAML examples of the
guide (blocks that begin ``# campaign: FILE``) are written out and run from another working
folder: the lab-only process campaign through suggest/ingest rounds, the calculation + lab
campaign with real EMT calculations on the local runner, then its lab batch. Each report must
name the process parameters with their units.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dm_hpc.campaign import schema_doc
from tests.conftest import REPO

GUIDE = REPO / "docs" / "guide"
EXAMPLE = re.compile(r"```yaml\n(# campaign: (\S+)\n.*?)```", re.S)


def examples() -> dict[str, str]:
    """``{file name: YAML text}`` of every runnable campaign example in the guide."""
    found = {}
    for page in sorted(GUIDE.glob("*.md")):
        for m in EXAMPLE.finditer(page.read_text()):
            found[m.group(2)] = m.group(1)
    return found


def dm(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "dm_hpc", *args], capture_output=True, text=True, cwd=cwd,
                         timeout=timeout, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                               "OMP_NUM_THREADS": "1", "HOME": str(cwd), "COLUMNS": "200"})
    assert res.returncode == 0, f"dm-hpc {' '.join(args)}:\n{res.stdout}{res.stderr}"
    return res


def measure(sheet: Path, law) -> None:
    """Fill a lab sheet's empty property columns, as a lab would."""
    df = pd.read_csv(sheet) if sheet.suffix == ".csv" else pd.read_excel(sheet)
    for col in [c for c in df.columns if c.startswith("property:")]:
        df[col] = law(df)
    df.to_csv(sheet.with_suffix(".csv"), index=False)


def column(df: pd.DataFrame, word: str) -> pd.Series:
    """The sheet's column naming ``word``; a process parameter in its canonical unit (the sheet
    shows it in the unit the campaign file wrote, e.g. degC or min)."""
    from dm_hpc.data.vocabulary import to_canonical

    name = next(c for c in df.columns if word in c and not c.startswith(("predicted", "property")))
    values = df[name].astype(float)
    if name.startswith("process:"):
        unit = name.rsplit("[", 1)[1].rstrip("]")
        values = values.map(lambda v: to_canonical(word, v, unit, kind="process_parameter"))
    return values


def test_generated_pages_are_current():
    from dm_hpc.data import vocabulary

    # A campaign loaded earlier in the same process declared its own term: the guide still shows
    # the standard vocabulary alone (this once failed when the test suite ran in one process).
    vocabulary.declare("guide_probe_intensity", "mm", kind="process_parameter")
    assert schema_doc.undocumented() == ([], []), "give each new campaign field a meaning in schema_doc.MEANING"
    for name, page in schema_doc.PAGES.items():
        assert (GUIDE / name).read_text() == page(), f"run: python -m dm_hpc.campaign.schema_doc ({name})"


def test_guide_links_and_machine_paths():
    index = (GUIDE / "README.md").read_text()
    for page in GUIDE.glob("*.md"):
        assert page.name == "README.md" or f"]({page.name})" in index, f"{page.name} is not in the index"
    for path in [REPO / "README.md", *(REPO / "docs").rglob("*.md")]:
        text = path.read_text()
        assert not re.search(r"(?<![\w.])/(work|root|home|tmp)/", text), f"a machine path in {path.name}"
    assert "dm-hpc init" in (REPO / "README.md").read_text()


def test_init_keeps_the_templates_comments(tmp_path):
    dm(tmp_path, "init", "alloys", "--out", "projects/alloys/campaign.yaml")
    text = (tmp_path / "projects" / "alloys" / "campaign.yaml").read_text()
    template = (REPO / "campaigns" / "hea-demo.yaml").read_text()
    comments = [ln.strip() for ln in template.splitlines() if ln.lstrip().startswith("#")]
    assert comments and all(c in text for c in comments)
    data = yaml.safe_load(text)
    assert data["name"] == "alloys" and data["store"] == "../../runs/alloys/store"
    dm(tmp_path / "projects", "validate", "alloys/campaign.yaml")


def test_the_guides_lab_only_process_campaign_from_another_folder(tmp_path):
    text = examples()["cu-ni-anneal.yaml"]
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    path = project / "cu-ni-anneal.yaml"
    path.write_text(text)
    dm(elsewhere, "validate", str(path))

    def hardness(df):
        return 1.0 + 2.0 * column(df, "Ni") - 0.001 * (column(df, "annealing_temperature") - 673) \
            - 0.05 * column(df, "annealing_time")

    for batch in (1, 2):
        sheet = elsewhere / f"batch{batch}.xlsx"
        dm(elsewhere, "suggest", str(path), "-n", "4", "--out", sheet.name)
        measure(sheet, hardness)
        dm(elsewhere, "ingest", str(path), sheet.with_suffix(".csv").name)
    status = dm(elsewhere, "status", str(path)).stdout
    assert "not started" not in status and re.search(r"lab experiments measured\W+8\b", status)
    dm(elsewhere, "report", str(path))
    summary = (project / "runs" / "cu-ni-anneal" / "report" / "summary.md").read_text()
    # in the units the campaign file wrote, as the lab sheet gives them (17c4886: the report said K and h)
    assert "annealing_temperature [degC]" in summary and "annealing_time [min]" in summary
    assert re.search(r"\| hardness \(max\) \| lab \|.*\| [0-9.]+ \| [0-9.]+ \| [0-9.e+-]+ GPa \|", summary), summary
    assert (project / "runs" / "cu-ni-anneal" / "report" / "objectives_vs_process.png").exists()
    assert not (elsewhere / "runs").exists()


def test_the_guides_calculation_and_lab_campaign_from_another_folder(tmp_path):
    text = examples()["alloys-emt-lab.yaml"]
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    path = project / "alloys-emt-lab.yaml"
    path.write_text(text)
    out = dm(elsewhere, "run", str(path), "--quiet").stdout
    run_dir = project / "runs" / "alloys-emt-lab"
    assert (run_dir / "store").is_dir() and not (elsewhere / "runs").exists()
    sheet = run_dir / "lab-suggestions.xlsx"
    assert sheet.exists(), out

    def mixing(df):  # a made-up calorimetry law, in the sheet's unit (eV/atom)
        return -0.05 * column(df, "Pd") - 0.0001 * (column(df, "annealing_temperature") - 773)

    measure(sheet, mixing)
    dm(elsewhere, "ingest", str(path), str(sheet.with_suffix(".csv")))
    dm(elsewhere, "report", str(path))
    summary = (run_dir / "report" / "summary.md").read_text()
    assert "annealing_temperature [degC]" in summary
    rows = [ln for ln in summary.splitlines() if ln.startswith("| mixing_energy (min) |")]
    assert {r.split("|")[2].strip() for r in rows} == {"emt", "lab"}, rows
    lab = next(r for r in rows if r.split("|")[2].strip() == "lab")
    emt = next(r for r in rows if r.split("|")[2].strip() == "emt")
    assert re.search(r"\| [0-9.]+ \| -?[0-9.e+-]+ eV/atom \|$", lab), lab  # the lab's route, in K
    assert "| - | " in emt  # calculations have no process route


def test_the_readme_store_and_design_lines_run_as_written(tmp_path, monkeypatch):
    """The README's cheat sheet designed for ``bulk_modulus`` on a store where nothing held it
    ('no records of property ...', a newcomer's first try). Its ``store import`` and ``design`` lines
    run here as written, on a store in a temporary folder."""
    import shlex

    from typer.testing import CliRunner

    from dm_hpc.cli import app

    lines = [ln.split("  #")[0].strip() for ln in (REPO / "README.md").read_text().splitlines()]
    wanted = [ln for ln in lines if ln.startswith(("dm-hpc store import", "dm-hpc design"))]
    assert len(wanted) == 2, wanted
    monkeypatch.chdir(REPO)
    store = str(tmp_path / "s")
    for line in wanted:
        args = [store if a == "runs/s" else a for a in shlex.split(line)[1:]]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (line, result.output)
    assert "known" in result.output or "new" in result.output  # a table of designs
