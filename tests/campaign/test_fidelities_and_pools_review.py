"""Review findings: two calculation fidelities of one method were silently merged, and a candidate
pool whose rows carry no measured value gave no candidates at all."""
from __future__ import annotations

import pytest

from dm_hpc.campaign import CampaignError, load_campaign
from dm_hpc.campaign.candidates import pool_compositions
from dm_hpc.campaign.preflight import problems

from .helpers import dm, write_campaign

HEADER = "composition:Cu [at_frac],composition:Ni [at_frac],composition:Au [at_frac]"
PROPERTY = ",property:mixing_energy [eV/atom]"
ROWS = ["0.5,0.5,0", "0.25,0.5,0.25", "0,0.5,0.5"]


def _two_emt(tmp_path, second: dict | None = None):
    cheap = {"name": "cheap", "kind": "calculation", "method": "emt", "cost": 0.001}
    fine = {"name": "fine", "kind": "calculation", "method": "emt", "settings": {"relax_fmax": 0.005},
            "cost": 0.1, "target": True, **(second or {})}
    return write_campaign(tmp_path, name="two", lab=False, fidelities=[cheap, fine])


def test_two_calculation_fidelities_whose_records_are_alike_are_refused(tmp_path):
    """Both wrote provenance.method = emt: the run computed only `cheap`, and ``fidelity_of`` read
    every record of either as `cheap`'s (the first match), so `fine` was never the target."""
    with pytest.raises(CampaignError) as exc:
        load_campaign(_two_emt(tmp_path))
    said = str(exc.value)
    assert "'cheap' and 'fine'" in said and "method emt" in said and "told apart" in said, said
    res = dm("validate", str(_two_emt(tmp_path)))
    assert res.returncode != 0 and "'cheap' and 'fine'" in res.stdout + res.stderr


def test_two_calculation_fidelities_of_different_methods_still_validate(tmp_path):
    c = load_campaign(_two_emt(tmp_path, {"method": "chgnet"}))
    assert [f.record_method for f in c.calculations] == ["emt", "chgnet"]


def _pool_campaign(tmp_path, lines: list[str], name: str = "pool"):
    (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return write_campaign(tmp_path, name=name, lab=False, space={"pool": str(tmp_path / f"{name}.csv")})


def test_a_pool_with_an_empty_property_column_gives_every_row_as_a_candidate(tmp_path):
    """It validated ("candidates from pool.csv") and the run found no point: the pool was read as
    measurements, and rows without a value were left out."""
    c = load_campaign(_pool_campaign(tmp_path, [HEADER + PROPERTY] + [r + "," for r in ROWS]))
    assert problems(c) == []
    assert pool_compositions(c) == [{"Cu": 0.5, "Ni": 0.5}, {"Au": 0.25, "Cu": 0.25, "Ni": 0.5},
                                    {"Au": 0.5, "Ni": 0.5}]


def test_a_pool_without_a_property_column_is_a_candidate_list(tmp_path):
    """Refused at validate with "no property:<name> [unit] column, so no measurement can be read",
    though a pool is a list of candidate compositions (docs/guide/campaign-file.md)."""
    path = _pool_campaign(tmp_path, [HEADER] + ROWS)
    c = load_campaign(path)
    assert problems(c) == []
    assert len(pool_compositions(c)) == 3
    res = dm("validate", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 candidates from pool.csv" in res.stdout, res.stdout


def test_a_pool_with_values_keeps_its_rows_and_ignores_the_values(tmp_path):
    """Measured rows are candidates as before; their values are not read (nor refused)."""
    lines = [HEADER + PROPERTY, ROWS[0] + ",-0.02", ROWS[1] + ",", ROWS[0] + ",-0.03"]
    c = load_campaign(_pool_campaign(tmp_path, lines))
    assert problems(c) == []
    assert pool_compositions(c) == [{"Cu": 0.5, "Ni": 0.5}, {"Au": 0.25, "Cu": 0.25, "Ni": 0.5}]


def test_a_pool_without_a_candidate_is_refused_at_validate(tmp_path):
    c = load_campaign(_pool_campaign(tmp_path, [HEADER + PROPERTY, ",,,-0.02", ",,,-0.01"], name="empty"))
    [why] = problems(c)
    assert why.startswith("space.pool: ") and "no candidate" in why, why


def test_a_pool_with_a_bad_composition_is_still_refused(tmp_path):
    c = load_campaign(_pool_campaign(tmp_path, [HEADER, "0.5,0.6,0", "0.5,0.5,0"], name="bad"))
    [why] = problems(c)
    assert why.startswith("space.pool: ") and "sums to 1.1" in why, why


def _xlsx_pool(tmp_path, formula_column: int):
    """A pool workbook written by a program (openpyxl saves a formula without its result)."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append((HEADER + PROPERTY).split(","))
    for row in ROWS:
        ws.append([float(v) for v in row.split(",")] + [None])
    ws.cell(2, formula_column).value = "=-0.05-0.02"
    path = tmp_path / "pool.xlsx"
    wb.save(path)
    return write_campaign(tmp_path, name="xpool", lab=False, space={"pool": str(path)})


def test_a_formula_in_a_pools_property_column_is_not_read_so_not_refused(tmp_path):
    """A pool's property column is not read (a candidate is where to look), yet an unsaved formula
    there refused the whole pool at validate; in a composition column it still is refused."""
    c = load_campaign(_xlsx_pool(tmp_path, formula_column=4))
    assert problems(c) == []
    assert len(pool_compositions(c)) == 3
    c = load_campaign(_xlsx_pool(tmp_path, formula_column=1))
    [why] = problems(c)
    assert "without a saved result" in why and "composition:Cu" in why, why
