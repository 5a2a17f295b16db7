"""`dm-hpc bench pool` on inputs it cannot benchmark: each is one line on stderr (an error before
any work, or a warning where the run still means something), never a traceback or a silent
change. The tables are small real CSVs; the CLI is the real entry point."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dm_hpc.bench import PoolWarning, bench_pool, run_pool, top_set
from dm_hpc.cli import app


@pytest.fixture()
def table(tmp_path):
    """30 rows, columns a, b, y (y distinct everywhere)."""
    X = np.random.default_rng(0).random((30, 2))
    p = tmp_path / "t.csv"
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "y": X.sum(1)}).to_csv(p, index=False)
    return p


def bench(*args: str):
    return CliRunner().invoke(app, ["bench", "pool", "--budget", "4", "--seeds", "1", *args])


def assert_one_line_error(res, *phrases: str) -> None:
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), res.output  # not an uncaught error
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for p in phrases:
        assert p in lines[0], res.output


@pytest.mark.parametrize(("inputs", "phrases"), [
    ("a,a", ["duplicate input column 'a'"]),
    ("a,y", ["'y' is the objective", "cannot also be an input"]),
    ("", ["no input columns"]),
    (" , ", ["no input columns"]),
])
def test_bad_input_columns_are_one_line_errors(table, tmp_path, inputs, phrases):
    out = tmp_path / "o"
    res = bench("--data", str(table), "--inputs", inputs, "--objective", "y", "--strategy", "random", "--out", str(out))
    assert_one_line_error(res, *phrases)
    assert not out.exists()


def test_multiobjective_with_one_objective_says_it_needs_two(table, tmp_path):
    res = bench("--data", str(table), "--inputs", "a,b", "--objective", "y", "--mode", "multiobjective",
                "--strategy", "random", "--out", str(tmp_path / "o"))
    assert_one_line_error(res, "at least two objectives", "comma-separated")
    res = bench("--data", str(table), "--inputs", "a", "--objective", "y,y", "--mode", "multiobjective",
                "--strategy", "random", "--out", str(tmp_path / "o"))
    assert_one_line_error(res, "duplicate objective column 'y'")


def test_an_out_path_that_is_a_file_is_refused_before_any_work(table, tmp_path):
    victim = tmp_path / "victim.csv"
    victim.write_text("keep me\n")
    for mode in (["--mode", "single"], ["--mode", "multiobjective", "--objective", "y,b"]):
        res = bench("--data", str(table), "--inputs", "a,b", "--objective", "y", "--strategy", "random", *mode,
                    "--out", str(victim))
        assert_one_line_error(res, "victim.csv", "not a folder")
        assert victim.read_text() == "keep me\n"
    steps: list[int] = []
    with pytest.raises(ValueError, match="not a folder"):
        bench_pool(table, ["a", "b"], "y", "max", 4, 1, "random", victim / "sub", progress=lambda: steps.append(1))
    assert steps == []


def test_an_objective_without_a_well_defined_top_set_is_refused(table, tmp_path):
    flat = tmp_path / "flat.csv"
    pd.read_csv(table).assign(y=3.0).to_csv(flat, index=False)
    res = bench("--data", str(flat), "--inputs", "a,b", "--objective", "y", "--out", str(tmp_path / "o"))
    assert_one_line_error(res, "fewer than 2 distinct values")
    assert not (tmp_path / "o").exists()
    # the 2 best rows (ceil 5 % of 30) tied with a third: both places a pick among 3
    tied = tmp_path / "tied.csv"
    pd.read_csv(table).assign(y=[30.0, 30.0, 30.0] + list(range(27))).to_csv(tied, index=False)
    res = bench("--data", str(tied), "--inputs", "a,b", "--objective", "y", "--out", str(tmp_path / "o"))
    assert_one_line_error(res, "top 5 %", "cannot be told apart")
    with pytest.raises(ValueError, match="fewer than 2 distinct values"):
        top_set(np.ones(3))


def test_a_top_set_with_a_tie_at_its_boundary_is_a_warning():
    # 40 rows, top set of 2: the best is distinct, the second tied with 2 rows outside
    rest = np.linspace(-10.0, -1.0, 36)
    with pytest.warns(PoolWarning, match="1 of the 2 top-set places is a pick among 3 rows"):
        top = top_set(np.array([10.0, 5.0, 5.0, 5.0, *rest]))
    assert top[0] == 0 and len(top) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", PoolWarning)
        top_set(np.array([10.0, 9.0, 5.0, 5.0, *rest]))  # ties below the top set: no word
        top_set(np.array([9.0, 9.0, 5.0, 5.0, *rest]))  # ties inside it: none either


def test_a_source_that_holds_the_target_rows_is_a_warning(table, tmp_path):
    base = ["--data", str(table), "--inputs", "a,b", "--objective", "y"]
    res = bench(*base, "--source", str(table), "--out", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warn) == 1 and "every one of the 30 target rows" in warn[0] and "overstate" in warn[0], res.output
    assert "n_pool" in json.loads(res.stdout.strip().splitlines()[-1])
    part = tmp_path / "part.csv"  # 12 target rows (other y) and 20 rows of its own
    X = np.random.default_rng(5).random((20, 2))
    pd.concat([pd.read_csv(table).head(12).assign(y=0.0), pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "y": 1.0})]) \
        .to_csv(part, index=False)
    res = bench(*base, "--source", str(part), "--out", str(tmp_path / "p"))
    assert res.exit_code == 0, res.output
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warn) == 1 and "12 of the 30 target rows" in warn[0] and "part.csv: 12" in warn[0], res.output
    other = tmp_path / "other.csv"
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "y": X[:, 0]}).to_csv(other, index=False)
    res = bench(*base, "--source", str(other), "--out", str(tmp_path / "q"))
    assert res.exit_code == 0 and "warning:" not in res.stderr, res.output


@pytest.mark.parametrize("ratio", ["-1", "0", "nan", "inf"])
def test_cost_ratio_must_be_finite_and_positive(table, tmp_path, ratio):
    fid = tmp_path / "fid.csv"
    df = pd.read_csv(table)
    pd.concat([df.assign(expt=1), df.assign(expt=0, y=df["y"] + 0.1)]).to_csv(fid, index=False)
    res = bench("--data", str(fid), "--inputs", "a,b", "--objective", "y", "--mode", "multifidelity",
                "--fidelity-column", "expt", "--cost-ratio", ratio, "--out", str(tmp_path / "o"))
    assert_one_line_error(res, "cost ratio", "finite positive number")


def test_a_budget_over_the_pool_size_is_cut_with_a_warning(table, tmp_path):
    small = tmp_path / "small.csv"
    pd.read_csv(table).head(3).to_csv(small, index=False)
    res = CliRunner().invoke(app, ["bench", "pool", "--data", str(small), "--inputs", "a,b", "--objective", "y",
                                   "--budget", "5", "--seeds", "1", "--strategy", "random", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "warning: budget 5 is more than the 3 points of the pool: cut to 3" in res.stderr, res.output
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["budget"] == 3
    with pytest.warns(PoolWarning, match="cut to 3"):
        orders, _ = run_pool(np.eye(3), np.arange(3.0), "random", 5, 1)
    assert orders.shape == (1, 3)


def test_multiobjective_needs_objectives_that_vary_and_a_goal_for_each(table, tmp_path):
    flat = tmp_path / "flat.csv"
    pd.read_csv(table).assign(z=1.0).to_csv(flat, index=False)
    base = ["--data", str(flat), "--inputs", "a,b", "--mode", "multiobjective", "--strategy", "random", "--out", str(tmp_path / "o")]
    assert_one_line_error(bench(*base, "--objective", "y,z"), "objective 'z' has fewer than 2 distinct values")
    assert_one_line_error(bench(*base, "--objective", "y,b", "--goal", "max,min,max"), "one goal for all objectives or one per")


def test_the_fidelity_column_cannot_also_be_an_input(table, tmp_path):
    fid = tmp_path / "fid.csv"
    df = pd.read_csv(table)
    pd.concat([df.assign(expt=1), df.assign(expt=0)]).to_csv(fid, index=False)
    res = bench("--data", str(fid), "--inputs", "a,expt", "--objective", "y", "--mode", "multifidelity",
                "--fidelity-column", "expt", "--out", str(tmp_path / "o"))
    assert_one_line_error(res, "'expt' is the fidelity column")


def test_a_benchmark_in_a_log_says_it_is_alive(capsys):
    """Off a terminal the progress bar is off, and `dm-hpc bench pool` on the README's OER line was
    minutes of nothing in a batch log. Its progress callback now writes a line every interval there
    (and none on a terminal, where the bar moves)."""
    from dm_hpc.cli.bench import _Heartbeat

    moved = []
    beat = _Heartbeat(lambda: moved.append(1), quiet=False, seeds=3, every=0.0)
    beat()
    beat()
    lines = capsys.readouterr().err.splitlines()
    assert len(moved) == 2 and len(lines) == 2
    assert lines[-1].startswith("bench pool: 2 proposals over 3 seed(s)")
    _Heartbeat(lambda: None, quiet=True, seeds=3, every=0.0)()
    assert capsys.readouterr().err == ""
