import numpy as np
import pandas as pd
from typer.testing import CliRunner

from dm_hpc.acquire.design import design_from_dataframe


def _frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.dirichlet(np.ones(3), size=n)
    df = pd.DataFrame({"x_Fe": f[:, 0], "x_Ni": f[:, 1], "x_Al": f[:, 2]})
    df["density"] = 7.9 * f[:, 0] + 8.9 * f[:, 1] + 2.7 * f[:, 2]
    df["bulk_modulus"] = 170 * f[:, 0] + 180 * f[:, 1] + 76 * f[:, 2]
    df["source"] = "computed"
    return df


def test_design_from_dataframe_meets_targets():
    cands, space = design_from_dataframe(_frame(), ["bulk_modulus>=150 GPa", "density<=7 g/cm3"], n=5, n_candidates=3000)
    assert len(cands) == 5
    for c in cands:
        assert c.mean["bulk_modulus"] >= 150 and c.mean["density"] <= 7.0
        assert abs(sum(c.composition.values()) - 1) < 1e-6


def test_design_cli_reads_store(tmp_path):
    from dm_hpc.cli import app
    from dm_hpc.data import Store

    df = _frame()
    recs = []
    for i, r in df.iterrows():
        recs.append({
            "composition": {"Fe": r.x_Fe, "Ni": r.x_Ni, "Al": r.x_Al},
            "properties": [{"name": "density", "value": r.density, "unit": "g/cm^3"},
                           {"name": "bulk_modulus", "value": r.bulk_modulus, "unit": "GPa"}],
            "provenance": {"source": "computed", "method": "emt"},
        })
    path = tmp_path / "store"
    with Store.open(path, mode="a") as st:
        st.ingest(recs)
    out = tmp_path / "c.csv"
    res = CliRunner().invoke(app, ["design", "--store", str(path), "--target", "bulk_modulus>=150 GPa",
                                   "--target", "density<=7 g/cm3", "-n", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out)
    assert len(got) == 3 and (got["bulk_modulus_pred"] >= 150).all()
    bad = CliRunner().invoke(app, ["design", "--store", str(path), "--target", "bulk_modulus>>3"])
    assert bad.exit_code == 2 and "error:" in bad.output
