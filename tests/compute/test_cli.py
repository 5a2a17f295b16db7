"""`dm-hpc calc run` and `dm-hpc calc methods`."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from dm_hpc.cli import app
from dm_hpc.data import Store

runner = CliRunner()


def test_calc_run_prints_properties_and_record_id_and_stores(tmp_path):
    store = tmp_path / "s.h5"
    args = ["calc", "run", "--composition", "Al0.25Cu0.25Ni0.25Pd0.25", "--method", "emt", "--store", str(store)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "mixing_energy" in first.output and "record id: dm-" in first.output and "new record" in first.output
    second = runner.invoke(app, args)
    assert "already present" in second.output
    rid = first.output.split("record id: ")[1].split()[0]
    assert rid == second.output.split("record id: ")[1].split()[0]
    with Store.open(store, mode="r") as s:
        assert len(s) == 1


def test_calc_run_json():
    out = runner.invoke(app, ["calc", "run", "-c", "Cu", "--json", "--properties", "lattice_parameter"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["record_id"].startswith("dm-") and data["properties"][0]["name"] == "lattice_parameter"


def test_calc_run_errors_exit_without_traceback():
    bad = runner.invoke(app, ["calc", "run", "-c", "Xx1"])
    assert bad.exit_code == 2 and "error:" in bad.output and "Traceback" not in bad.output
    unknown = runner.invoke(app, ["calc", "run", "-c", "Cu", "-m", "vasp"])
    assert unknown.exit_code == 2 and "unknown method" in unknown.output
    unsupported = runner.invoke(app, ["calc", "run", "-c", "Fe0.5Ni0.5"])
    assert unsupported.exit_code == 10 and "unsupported_element" in unsupported.output


def test_calc_methods_lists_registry():
    out = runner.invoke(app, ["calc", "methods"])
    assert out.exit_code == 0 and "emt" in out.output and "qe" in out.output


def test_calc_run_into_what_is_not_a_store_folder_fails_before_calculating(tmp_path, monkeypatch):
    """``--store runs/x/store/store.h5`` (the store's table view, a file), a CSV or a folder of
    other files: the calculation ran, then a StoreError traceback ('could not open it for
    writing: File exists') lost its result. Now it is refused first, naming what to give."""
    import dm_hpc.compute

    def no_calculation(*args, **kwargs):
        raise AssertionError("the calculation ran although its result could not be stored")

    monkeypatch.setattr(dm_hpc.compute, "calculate", no_calculation)
    store = tmp_path / "store"
    with Store.open(store, mode="a"):
        pass  # a real store: its folder holds store.h5
    (tmp_path / "table.csv").write_text("a,b\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    for given, words in ((store / "store.h5", f"name the store's folder, {store}"),
                         (tmp_path / "table.csv", "is a file, not a store folder"),
                         (tmp_path / "other", "holds other files and no store")):
        out = runner.invoke(app, ["calc", "run", "-c", "Cu", "--store", str(given)])
        assert out.exit_code == 2 and words in out.output, (out.exception, out.output)
