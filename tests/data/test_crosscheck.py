"""Cross-checks between sources (issue 21, 8) through the real CLI on a real store: two labs
that disagree beyond their uncertainties, a calculation against a lab, and agreement."""
from __future__ import annotations

from dm_hpc.data import MaterialRecord, Store
from dm_hpc.data.crosscheck import find_disagreements
from tests.campaign.helpers import dm


def rec(comp, value, method, source="experimental", u=None, sid=None, prop="hardness"):
    p = {"name": prop, "value": value, "unit": "GPa"}
    if u is not None:
        p["uncertainty"] = u
    return MaterialRecord.model_validate({"composition": comp, "properties": [p], "sample_id": sid,
                                         "provenance": {"source": source, "method": method}})


def _store(tmp_path):
    with Store.open(tmp_path / "store", "a") as s:
        s.ingest([
            rec({"Al": 0.9, "Cu": 0.1}, 1.00, "=lab-A", u=0.05, sid="a1"),
            rec({"Al": 0.9, "Cu": 0.1}, 1.02, "=lab-A", u=0.05, sid="a2"),
            rec({"Al": 0.9, "Cu": 0.1}, 1.60, "lab-B", u=0.05, sid="b1"),   # disagrees with lab A
            rec({"Al": 0.8, "Cu": 0.2}, 1.30, "=lab-A", u=0.05, sid="a3"),
            rec({"Al": 0.8, "Cu": 0.2}, 1.35, "lab-B", u=0.05, sid="b2"),   # agrees (z < 1)
            rec({"Al": 0.7, "Cu": 0.3}, 2.50, "emt", source="computed"),     # computed vs measured
            rec({"Al": 0.7, "Cu": 0.3}, 1.40, "lab-B", u=0.05, sid="b3"),
        ])
    return tmp_path / "store"


def test_disagreements_beyond_the_uncertainties(tmp_path):
    with Store.open(_store(tmp_path)) as s:
        found = find_disagreements(s.to_dataframe())
    assert len(found) == 2
    labs = found[found["origin_a"].str.contains("lab-A")].iloc[0]
    assert labs["material"] == "Al0.900 Cu0.100" and labs["n_a"] == 2 and labs["difference"] > 0.5
    assert "third lab" in labs["settle"]
    calc = found[found["origin_a"].str.startswith("computed")].iloc[0]
    assert "higher fidelity" in calc["settle"] and "experimental:lab-B" in calc["settle"]
    assert not (found["material"] == "Al0.800 Cu0.200").any()


def test_crosscheck_cli_table_map_and_csv(tmp_path):
    store = _store(tmp_path)
    png, csv = tmp_path / "map.png", tmp_path / "found.csv"
    res = dm("store", "crosscheck", "--store", str(store), "--png", str(png), "--out", str(csv))
    assert res.returncode == 0, res.stderr
    assert "2 disagreement(s)" in res.stdout and "=lab-A" in res.stdout
    assert "bias: experimental:lab-B minus experimental:=lab-A on hardness: mean +0.59" in res.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    import csv as csvlib

    cells = [c for row in csvlib.reader(csv.open()) for c in row]
    assert "experimental:=lab-A" in cells and not any(c.startswith(("=", "+", "@")) for c in cells)
    res = dm("store", "crosscheck", "--store", str(store), "--z", "50")
    assert res.returncode == 0 and "no disagreements beyond 50" in res.stdout
