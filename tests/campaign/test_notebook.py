"""The notebook example (issue 19 items 1, 7), executed with nbclient in a real kernel: a lab-only
process campaign driven through the Python API (suggest, add measurements, best, summary)."""
from __future__ import annotations

import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOK = REPO / "examples" / "campaign.ipynb"


def _text(cell) -> str:
    """Everything a cell showed: printed streams and the text form of its results."""
    out = []
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream":
            out.append(o["text"])
        elif o["output_type"] in ("execute_result", "display_data"):
            out.append(o["data"].get("text/plain", ""))
    return "".join(out)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook")
    # the kernel imports this checkout's dm_hpc, and runs in a folder of its own (runs/ goes there)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return folder, {i: _text(c) for i, c in enumerate(nb.cells) if c.cell_type == "code"}


def test_the_notebook_runs_a_lab_only_process_campaign(executed):
    folder, outputs = executed
    text = "\n".join(outputs.values())
    assert "stored 4 measurements" in text
    # round 2 comes from the model, headed in the unit the campaign writes (the store keeps GPa)
    assert "predicted: ['predicted:hardness [HV]']" in text
    assert "pending before measuring: 4" in text and "pending after measuring: 0" in text
    assert (folder / "runs" / "ageing-demo" / "store").is_dir()  # no store named: the default


def test_best_names_composition_process_and_property_with_units(executed):
    _, outputs = executed
    [line] = [ln for out in outputs.values() for ln in out.splitlines() if ln.startswith("columns:")]
    for column in ("composition:Ni [at_frac]", "process:treatment:ageing_temperature [degC]",
                   "process:treatment:ageing_time [h]", "property:hardness [HV]"):
        assert repr(column) in line, line


def test_records_come_back_under_the_sheets_columns(executed):
    """Issue 19 item 7: ``records()`` named columns ``x_Cu``, ``hardness``, ``process.treatment:...``
    (canonical K) while the sheets and ``best()`` said ``composition:Cu [at_frac]``, ... [degC]."""
    _, outputs = executed
    assert "sheet columns in records(): True" in "\n".join(outputs.values())


def test_summary_counts_and_the_best_value_in_the_campaign_files_unit(executed):
    _, outputs = executed
    [summary] = [out for out in outputs.values() if "lab experiments measured" in out]
    assert re.search(r"lab experiments measured\s+8\b", summary), summary
    assert re.search(r"lab budget left\s+0\b", summary) and re.search(r"model\s+can be fitted", summary)
    # in HV, as the sheets, records() and best() give it (it said [GPa]: the store's unit)
    best = float(re.search(r"best hardness \[HV\]\s+([0-9.]+)", summary).group(1))
    assert 50 < best < 500 and "[GPa]" not in summary


def test_an_exhausted_budget_is_said_not_hidden(executed):
    _, outputs = executed
    assert ("budget: campaign 'ageing-demo': no new experiment: the lab budget is used up (8 of 8 "
            "experiments suggested); raise budget.lab_experiments") in "\n".join(outputs.values())


def test_the_notebook_predicts_where_nobody_measured_and_shows_the_report(executed):
    """The notebook had no call to predict at chosen compositions or to read the report."""
    folder, outputs = executed
    text = "\n".join(outputs.values())
    assert "model: fitted now on 8 records" in text, text
    assert "outside: ['', '', 'Cu 0.7 outside 0.8-1; Ni 0.3 outside 0-0.15']" in text, text
    assert "plots: ['best_vs_evaluations.png'" in text, text
    assert (folder / "runs" / "ageing-demo" / "report" / "summary.md").is_file()
