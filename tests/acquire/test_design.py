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


def _two_source_frame(methods=("dft-camd", "expt-literature"), sources=("computed", "experimental"), seed=1):
    """Each composition measured by every (source, method) with an offset between them."""
    df = _frame(n=30, seed=seed)
    parts = []
    for k, (src, meth) in enumerate(zip(sources, methods)):
        part = df.copy()
        part["bulk_modulus"] = part["bulk_modulus"] + 25.0 * k
        part["source"], part["method"] = src, meth
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_design_with_computed_and_experimental_values_of_one_property():
    """Issue 9: `TypeError: fit_multitask() got an unexpected keyword argument 'seed'`."""
    cands, _ = design_from_dataframe(_two_source_frame(), ["bulk_modulus>=190 GPa"], n=3, n_candidates=2000, seed=4)
    assert len(cands) == 3
    # predictions are of the experimental fidelity (offset +25 GPa), not of the computed one
    assert all(c.mean["bulk_modulus"] > 170 for c in cands)


def test_design_treats_each_computed_method_as_its_own_fidelity():
    """Issue 9: EMT and GPAW values of one property were pooled into one model without a marker."""
    from botorch.models import MultiTaskGP

    from dm_hpc.acquire.design import fit_design_models

    df = _two_source_frame(methods=("emt", "gpaw"), sources=("computed", "computed"))
    fitted = fit_design_models(df, ["bulk_modulus"], target_fidelity="computed:gpaw")
    model = fitted.models["bulk_modulus"]
    assert isinstance(model, MultiTaskGP)
    assert fitted.fidelities == ["computed:emt", "computed:gpaw"] and fitted.target == "computed:gpaw"


def test_design_cli_on_the_bandgap_dft_vs_expt_store(tmp_path, datasets):
    from dm_hpc.cli import app
    from tests.conftest import REPO

    runner = CliRunner()
    store = tmp_path / "store"
    res = runner.invoke(app, ["store", "import", str(datasets / "bandgap_dft_vs_expt.csv"), "--store", str(store),
                              "--map", str(REPO / "configs/sheets/bandgap_dft_vs_expt.yaml")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["design", "--store", str(store), "--target", "bandgap>=2 eV", "-n", "3"])
    assert res.exit_code == 0, res.output
    assert "probability" in res.output and "experimental:expt-literature" in res.output
