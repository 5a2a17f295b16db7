"""The report's section on how computed values predict measured ones (issue 23 §2)."""
from __future__ import annotations

import numpy as np
import pytest

from dm_hpc.campaign import parse_campaign
from dm_hpc.campaign.dataset import TrainingSet
from dm_hpc.campaign.fidelity_choice import fidelity_choice_lines, paired_items
from dm_hpc.learn.multifidelity import JOIN, KINDS

SPEC = {
    "name": "mf-report",
    "space": {"elements": {"Cu": [0.0, 1.0], "Ni": [0.0, 1.0], "Pd": [0.0, 1.0]}},
    "objectives": [{"property": "mixing_energy", "goal": "min", "unit": "eV/atom"}],
    "fidelities": [
        {"name": "emt", "kind": "calculation", "method": "emt"},
        {"name": "lab", "kind": "experiment", "cost": 2},
    ],
    "budget": {"calculations": 10, "lab_experiments": 10},
}


def _training_set(n_computed: int, n_measured: int, seed: int = 0) -> TrainingSet:
    """``n_computed`` compositions with a computed value; the first ``n_measured`` also measured
    (twice: replicates average), measured = computed + 0.02 + noise."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(3), n_computed)
    comps = [dict(zip(("Cu", "Ni", "Pd"), map(float, r))) for r in w]
    computed = np.sin(6 * w[:, 0]) * w[:, 1] - 0.3 * w[:, 2]
    rows_c = [(c, y, 0) for c, y in zip(comps, computed)]
    rows_m = [(comps[i], computed[i] + 0.02 + 0.01 * rng.standard_normal(), 1)
              for i in range(n_measured) for _ in range(2)]
    rows = rows_c + rows_m
    return TrainingSet([r[0] for r in rows], np.zeros((len(rows), 0)), np.array([[r[1]] for r in rows]),
                       np.array([r[2] for r in rows]), [f"r{i}" for i in range(len(rows))],
                       ["computed"] * len(rows_c) + ["experimental"] * len(rows_m))


def test_measured_pair_with_computed_by_composition_and_replicates_average():
    data = _training_set(12, 4)
    comps, process, cheap, measured = paired_items(data, 0, calc=0, lab=1)
    assert len(comps) == 12 and process.shape == (12, 0)
    assert np.isfinite(measured).sum() == 4
    lab = data.Y[data.fidelity == 1, 0]
    assert np.isclose(measured[0], lab[:2].mean())


def test_report_section_names_the_choice_and_its_cv_evidence(tmp_path):
    campaign = parse_campaign({**SPEC, "store": str(tmp_path / "s"), "workdir": str(tmp_path / "w")}, "mf.yaml")
    md = "\n".join(fidelity_choice_lines(campaign, _training_set(30, 20)))
    assert "## Measured values from computed ones" in md
    assert "mixing_energy [eV/atom] from emt (30 computed, 20 also measured): chosen **" in md
    chosen = md.split("chosen **")[1].split("**")[0].split(JOIN)
    assert set(chosen) <= set(KINDS) and chosen != ["measured"]  # measured = computed + a small offset: the computed value helps
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and ln.split("|")[1].strip() in KINDS]
    assert [r.split("|")[1].strip() for r in rows] == list(KINDS)
    marked = [r.split("|")[1].strip() for r in rows if "chosen" in r.split("|")[4]]
    assert marked == chosen
    assert "proposals come from the campaign's multi-task GP" in md


def test_report_section_says_how_many_measurements_the_choice_needs(tmp_path):
    campaign = parse_campaign({**SPEC, "store": str(tmp_path / "s"), "workdir": str(tmp_path / "w")}, "mf.yaml")
    md = "\n".join(fidelity_choice_lines(campaign, _training_set(30, 4)))
    assert "mixing_energy from emt: 4 composition(s) with both values; the choice needs 10." in md


def test_report_quotes_the_cv_rmse_in_the_unit_the_campaign_file_writes(tmp_path):
    """A campaign whose file writes meV/atom got 'mixing_energy [eV/atom] from emt' and 'CV RMSE
    [eV/atom]' (0.01 for a 10 meV/atom offset) in a report whose every other value is in meV/atom.
    Twelve compositions computed and measured (10 meV/atom apart), written into a real store."""
    from dm_hpc.campaign.report import write_report
    from dm_hpc.data import MaterialRecord, Store

    spec = {**SPEC, "objectives": [{"property": "mixing_energy", "goal": "min", "unit": "meV/atom"}],
            "store": str(tmp_path / "s"), "workdir": str(tmp_path / "w")}
    campaign = parse_campaign(spec, "mf.yaml")
    w = np.random.default_rng(1).dirichlet(np.ones(3), 12)
    records = []
    for x in w:
        computed = float(np.sin(6 * x[0]) * x[1] - 0.3 * x[2])  # eV/atom
        for source, method, value in (("computed", "emt", computed), ("experimental", "lab-sheet", computed + 0.01)):
            records.append(MaterialRecord.model_validate({
                "composition": dict(zip(("Cu", "Ni", "Pd"), map(float, x))),
                "properties": [{"name": "mixing_energy", "value": value}],
                "provenance": {"source": source, "method": method, "campaign": campaign.name}}))
    with Store.open(campaign.store, "a") as store:
        store.ingest(records)
    md = write_report(campaign).read_text()
    section = md.split("## Measured values from computed ones")[1]
    assert "mixing_energy [meV/atom] from emt (12 computed, 12 also measured)" in section, section[:1500]
    assert "| candidate | CV RMSE [meV/atom] |" in section and "eV/atom]" not in section.replace("meV/atom]", "")
    # measured = computed is off by the offset alone: 10 meV/atom, not 0.01
    computed_row = next(ln for ln in section.splitlines() if ln.startswith("| computed |"))
    assert float(computed_row.split("|")[2]) == pytest.approx(10, rel=1e-3), computed_row


@pytest.mark.parametrize("measures", [None, ["mixing_energy"]])
def test_the_section_leaves_out_a_property_the_lab_never_measures(tmp_path, measures):
    """'raw_material_cost from emt: 0 composition(s) with both values; the choice needs 10' stood in
    the section, though a cost is calculated from the composition and never measured: no number
    of lab samples would ever pair with it. The section lists what the lab measures."""
    lab = {"name": "lab", "kind": "experiment", "cost": 2, **({"measures": measures} if measures else {})}
    spec = {**SPEC, "objectives": [*SPEC["objectives"], {"property": "raw_material_cost", "goal": "min"}],
            "fidelities": [SPEC["fidelities"][0], lab], "store": str(tmp_path / "s"), "workdir": str(tmp_path / "w")}
    campaign = parse_campaign(spec, "mf.yaml")
    data = _training_set(6, 0)
    data = TrainingSet(data.compositions, data.process, np.hstack([data.Y, data.Y]), data.fidelity, data.record_ids,
                       data.sources)
    md = "\n".join(fidelity_choice_lines(campaign, data))
    assert "mixing_energy from emt: 0 composition(s) with both values" in md and "raw_material_cost" not in md, md
