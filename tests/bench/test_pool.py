import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dm_hpc.bench import bench_pool, load_pool, metrics, top_set


def test_metrics_definitions():
    # pool of 40, top set = 2 (ceil 0.05*40); one seed finds both at evaluations 2 and 4
    top = np.array([0, 1])
    orders = np.array([[5, 0, 7, 1, 9]])
    m = metrics(orders, top, 40)
    assert m["top_pct"] == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    assert m["ef"][0] is None
    assert m["ef"][2] == pytest.approx(0.5 / (2 / 40))
    assert m["af"]["0.5"] == pytest.approx(0.5 * 40 / 2)
    assert m["af"]["0.9"] == pytest.approx(0.9 * 40 / 4)


def test_pool_averages_replicates(tmp_path):
    df = pd.DataFrame({"a": [0, 0, 1], "b": [1, 1, 2], "y": [1.0, 3.0, 5.0]})
    p = tmp_path / "d.csv"
    df.to_csv(p, index=False)
    pool = load_pool(p, ["a", "b"], ["y"])
    assert len(pool) == 2 and sorted(pool["y"]) == [2.0, 5.0]
    assert list(top_set(np.array([1.0, 9.0, 3.0]))) == [1]


@pytest.fixture()
def synthetic_csv(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((120, 3))
    y = -((X - 0.7) ** 2).sum(1)
    p = tmp_path / "syn.csv"
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": y}).to_csv(p, index=False)
    return p


def test_default_strategy_beats_random(synthetic_csv, tmp_path):
    r = bench_pool(synthetic_csv, ["a", "b", "c"], "y", "max", 25, 2, "random", tmp_path / "r")
    d = bench_pool(synthetic_csv, ["a", "b", "c"], "y", "max", 25, 2, "default", tmp_path / "d")
    assert d["top_pct"][-1] > r["top_pct"][-1]
    assert d["n_pool"] == 120 and d["n_top"] == 6


def test_cli_writes_summary_and_png(synthetic_csv, tmp_path):
    from dm_hpc.cli import app

    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["bench", "pool", "--data", str(synthetic_csv), "--inputs", "a,b,c", "--objective", "y",
                                   "--goal", "min", "--budget", "8", "--seeds", "2", "--strategy", "gp-ei", "--out", str(out)])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    for key in ("n_pool", "n_top", "top_pct", "ef", "af", "seconds_per_step"):
        assert key in s
    assert set(s["af"]) == {"0.5", "0.8", "0.9"} and len(s["top_pct"]) == 9
    assert (out / "top_pct.png").stat().st_size > 0


def test_cli_bad_input_is_one_line_error(synthetic_csv, tmp_path):
    from dm_hpc.cli import app

    res = CliRunner().invoke(app, ["bench", "pool", "--data", str(synthetic_csv), "--inputs", "a,zz", "--objective", "y",
                                   "--budget", "5", "--seeds", "1", "--strategy", "random", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output


def test_cli_source_transfers_on_the_union_of_columns(synthetic_csv, tmp_path):
    """A related source on partly other columns (a, b shared; d its own) is read by name, the model
    works on a, b, c, d (d = 0 in the target, c = 0 in the source), and it is weighted."""
    from dm_hpc.cli import app

    rng = np.random.default_rng(1)
    S = rng.random((200, 3))
    src = tmp_path / "related.csv"
    pd.DataFrame({"d": S[:, 2], "a": S[:, 0], "b": S[:, 1], "y": 10 - 3 * ((S[:, :2] - 0.7) ** 2).sum(1)}).to_csv(src, index=False)
    args = ["bench", "pool", "--data", str(synthetic_csv), "--inputs", "a,b,c", "--objective", "y", "--budget", "8", "--seeds", "1"]
    res = CliRunner().invoke(app, [*args, "--source", str(src), "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    t = json.loads((tmp_path / "t" / "summary.json").read_text())["transfer"]
    assert t["columns"] == ["a", "b", "c", "d"] and t["sources"] == {"related.csv": 200}
    assert sum(t["kind_share"].values()) == pytest.approx(1.0)
    assert t["final_weight"]["related.csv"] > 0.2
    cold = bench_pool(synthetic_csv, ["a", "b", "c"], "y", "max", 8, 1, "default", tmp_path / "c")
    warm = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert warm["top_pct"][-1] >= cold["top_pct"][-1]


def test_a_source_of_compositions_is_read_as_one(tmp_path):
    """A source table whose inputs are fractions summing to 1 is a composition (its model will read a
    target row renormalised over its elements); one with a process column, or of loose values, is not."""
    from dm_hpc.bench.pool import load_sources

    rng = np.random.default_rng(0)
    frac = rng.dirichlet(np.ones(3), 30)
    tables = {"comp.csv": pd.DataFrame({"b": frac[:, 0], "c": frac[:, 1], "d": frac[:, 2]}),
              "process.csv": pd.DataFrame({"b": frac[:, 0], "c": frac[:, 1], "d": frac[:, 2], "t": rng.random(30)}),
              "loose.csv": pd.DataFrame({"b": rng.random(30), "c": rng.random(30)})}
    for name, df in tables.items():
        df.assign(y=rng.random(30)).to_csv(tmp_path / name, index=False)
    columns, sources = load_sources([tmp_path / n for n in tables], ["a", "b", "c"], "y", "max")
    assert columns == ["a", "b", "c", "d", "t"]
    assert [s.simplex for s in sources] == [(1, 2, 3), (), ()]


def test_a_source_composition_is_held_to_the_lab_sheets_tolerance(tmp_path):
    """Whether a source's rows sum to 1 (or 100) is ``data.composition.sums_to_total``'s rule, a lab
    sheet's: fractions rounded to 3 decimals (rows 0.9985 to 1.0015) and percent to 1 decimal are a
    composition, with no word on the elements they add; rows summing to 1.05 are not."""
    from dm_hpc.bench.pool import PoolWarning, load_sources

    rng = np.random.default_rng(3)
    frac = rng.dirichlet(np.ones(3), 30)
    tables = {"rounded.csv": np.round(frac, 3), "percent.csv": np.round(100 * frac, 1), "off.csv": 1.05 * frac}
    assert not np.allclose(tables["rounded.csv"].sum(1), 1.0, atol=1e-6)  # what the tolerance is for
    for name, X in tables.items():
        pd.DataFrame(X, columns=["b", "c", "d"]).assign(y=rng.random(30)).to_csv(tmp_path / name, index=False)
    with pytest.warns(PoolWarning) as said:
        _, sources = load_sources([tmp_path / n for n in tables], ["a", "b", "c"], "y", "max")
    assert sources[0].simplex == (1, 2, 3) and sources[2].simplex == ()
    added = [str(w.message) for w in said if "enter as inputs" in str(w.message)]
    assert len(added) == 1 and "off.csv" in added[0]

def test_cli_source_without_the_objective_is_one_line_error(synthetic_csv, tmp_path):
    from dm_hpc.cli import app

    src = tmp_path / "other.csv"
    pd.DataFrame({"a": [0.1, 0.2], "strength": [1.0, 2.0]}).to_csv(src, index=False)
    base = ["bench", "pool", "--data", str(synthetic_csv), "--inputs", "a,b,c", "--objective", "y", "--budget", "5",
            "--seeds", "1", "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(app, [*base, "--source", str(src)])
    assert res.exit_code == 2 and "other.csv: no column 'y'" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, [*base, "--source", str(src), "--strategy", "gp-ei"])
    assert res.exit_code == 2 and "--strategy default" in res.output
    res = CliRunner().invoke(app, [*base, "--source", str(tmp_path / "missing.csv")])
    assert res.exit_code == 2 and "missing.csv not found" in res.output


def test_a_cell_that_is_not_a_number_is_one_line_error_naming_it(synthetic_csv, tmp_path):
    """A word in the objective (before: a pandas traceback from the replicate average), a letter in
    an input, a sample-name column in a source, a word in a multi-fidelity table: each names the
    file, column, line and value, and nothing is written."""
    from dm_hpc.cli import app

    df = pd.read_csv(synthetic_csv)
    bad_y = tmp_path / "bad_y.csv"
    df.astype({"y": object}).assign(y=lambda d: d["y"].where(d.index != 3, "high")).to_csv(bad_y, index=False)
    bad_x = tmp_path / "bad_x.csv"
    df.astype({"b": object}).assign(b=lambda d: d["b"].where(d.index != 0, "0.5a")).to_csv(bad_x, index=False)
    named = tmp_path / "named.csv"
    df.assign(sample=[f"s{i}" for i in range(len(df))]).to_csv(named, index=False)
    blank = tmp_path / "blank.csv"  # blank lines count: the bad cell is on line 7 of the file
    text = bad_y.read_text().splitlines()
    blank.write_text("\n".join([text[0], text[1], "", "", *text[2:]]) + "\n")
    bad_source_y = tmp_path / "bad_source_y.csv"
    df.astype({"y": object}).assign(y=lambda d: d["y"].where(d.index != 1, "n.d.")).to_csv(bad_source_y, index=False)
    runs = {"bad_y.csv": ["--data", str(bad_y)], "bad_x.csv": ["--data", str(bad_x)], "blank.csv": ["--data", str(blank)],
            "named.csv": ["--data", str(synthetic_csv), "--source", str(named)],
            "bad_source_y.csv": ["--data", str(synthetic_csv), "--source", str(bad_source_y)]}
    expect = {"bad_y.csv": "column 'y' holds 'high' on line 5", "bad_x.csv": "column 'b' holds '0.5a' on line 2",
              "blank.csv": "column 'y' holds 'high' on line 7", "named.csv": "column 'sample' holds 's0' on line 2",
              "bad_source_y.csv": "column 'y' holds 'n.d.' on line 3"}
    for name, data in runs.items():
        out = tmp_path / f"out-{name}"
        res = CliRunner().invoke(app, ["bench", "pool", *data, "--inputs", "a,b,c", "--objective", "y", "--budget", "5",
                                       "--seeds", "1", "--out", str(out)])
        assert res.exit_code == 2, res.output
        assert f"{name}: {expect[name]}, not a number" in res.output and "Traceback" not in res.output
        assert not out.exists()
        # the source's hint is about its inputs, not about its objective
        assert ("leave a column that is not one" in res.output) == (name == "named.csv")
    empty = tmp_path / "empty_y.csv"
    df.assign(y=np.nan).to_csv(empty, index=False)
    res = CliRunner().invoke(app, ["bench", "pool", "--data", str(empty), "--inputs", "a,b,c", "--objective", "y",
                                   "--budget", "5", "--seeds", "1", "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and "empty_y.csv: no row has a number in every one of" in res.output, res.output
    fid = tmp_path / "fid.csv"
    df.assign(expt=[1, 0] * (len(df) // 2) + [1] * (len(df) % 2)).astype({"expt": object}) \
        .assign(expt=lambda d: d["expt"].where(d.index != 2, "yes")).to_csv(fid, index=False)
    res = CliRunner().invoke(app, ["bench", "pool", "--data", str(fid), "--inputs", "a,b,c", "--objective", "y", "--mode",
                                   "multifidelity", "--fidelity-column", "expt", "--budget", "5", "--seeds", "1",
                                   "--out", str(tmp_path / "mf")])
    assert res.exit_code == 2 and "column 'expt' holds 'yes' on line 4, not a number" in res.output, res.output


def test_run_pool_hands_over_each_finished_seed():
    from dm_hpc.bench.pool import run_pool

    X = np.random.default_rng(0).random((30, 2))
    seen = []
    orders, _ = run_pool(X, -X.sum(1), "random", 6, 3, on_seed=lambda done: seen.append(done.copy()))
    assert [s.shape for s in seen] == [(1, 6), (2, 6), (3, 6)]
    assert (seen[-1] == orders).all()


def test_run_pool_in_chunks_repeats_the_seeds_of_one_run():
    from dm_hpc.bench.pool import run_pool

    X = np.random.default_rng(1).random((30, 2))
    whole, _ = run_pool(X, -X.sum(1), "random", 6, 4)
    tail, _ = run_pool(X, -X.sum(1), "random", 6, 2, first_seed=2)
    assert (tail == whole[2:]).all() and not (tail == whole[:2]).all()


@pytest.mark.parametrize("mode, objective", [("single", "y"), ("multiobjective", "y,c")])
def test_cli_refuses_multifidelity_only_columns_in_other_modes(synthetic_csv, tmp_path, mode, objective):
    """--composition-column (and --fidelity-column) outside --mode multifidelity were dropped without a
    word: the benchmark ran on --inputs and exited 0, even for a column the table lacks."""
    from dm_hpc.cli import app

    base = ["bench", "pool", "--data", str(synthetic_csv), "--inputs", "a,b", "--objective", objective,
            "--mode", mode, "--budget", "5", "--seeds", "1", "--strategy", "random", "--out", str(tmp_path / "o")]
    for flag in ("--composition-column", "--fidelity-column"):
        res = CliRunner().invoke(app, [*base, flag, "formula"])
        assert res.exit_code == 2, res.output
        assert f"{flag} is read by --mode multifidelity only" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()  # refused before anything ran
