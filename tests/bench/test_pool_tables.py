"""`dm-hpc bench pool` on tables as they come from outside (review, stop 46): judges run it on
public tables the project has never seen. Each misreading found is replayed here: rows dropped
without a word, a repeated header read as another column, "inf" taken for a number, XLSX and
non-UTF-8 files, a separator other than ',', a trailing comma, a source whose columns match
nothing or carry a saved index, a multi-objective pool with no volume, an EF peak made by the
random starting points. Real CSV/XLSX files, the real CLI."""
import json

import numpy as np
import pandas as pd
import pytest

from dm_hpc.bench.pool import EF_FROM, ef_peak
from tests.bench.test_pool_checks import assert_one_line_error, bench


@pytest.fixture()
def frame():
    X = np.random.default_rng(1).random((30, 3))
    return pd.DataFrame({"x0": X[:, 0], "x1": X[:, 1], "x2": X[:, 2], "y": X.sum(1)})


def run(tmp_path, *args):
    return bench("--out", str(tmp_path / "out"), *args)


def summary(tmp_path):
    return json.loads((tmp_path / "out" / "summary.json").read_text())


def test_rows_with_an_empty_cell_are_counted_and_named(tmp_path, frame):
    frame.loc[:9, "x2"] = np.nan  # a composition table that writes 0 as a blank
    frame.to_csv(tmp_path / "t.csv", index=False)
    res = run(tmp_path, "--data", str(tmp_path / "t.csv"), "--inputs", "x0,x1,x2", "--objective", "y")
    assert res.exit_code == 0, res.output
    assert "warning:" in res.stderr and "10 of 30 rows left out for an empty cell in 'x2' (10)" in res.stderr
    assert summary(tmp_path)["n_pool"] == 20


@pytest.mark.parametrize(("text", "phrases"), [
    ("x0,x1,y,y\n1,2,3,4\n2,3,4,5\n", ["the header names 'y' more than once"]),
    ("x0,x1,y\n1,inf,3\n2,3,4\n3,4,5\n", ["column 'x1' holds inf on line 2, not a finite number"]),
    ("x0,x1,y\n1,2,3\n2,3,-inf\n3,4,5\n", ["column 'y' holds -inf on line 3, not a finite number"]),
    ("x0;x1;y\n1,5;2;3\n2;3;4\n", ["separates its columns with ';'", "save it with commas"]),
])
def test_a_table_that_would_be_misread_is_one_line_error(tmp_path, text, phrases):
    (tmp_path / "t.csv").write_text(text)
    assert_one_line_error(run(tmp_path, "--data", str(tmp_path / "t.csv"), "--inputs", "x0,x1", "--objective", "y"), *phrases)


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "t.csv").write_bytes("x0,x1,y\n1,2,3\n".replace("x1", "x\xb51").encode("latin-1"))
    assert_one_line_error(run(tmp_path, "--data", str(tmp_path / "t.csv"), "--inputs", "x0", "--objective", "y"),
                          "not UTF-8 text", "save the table as CSV UTF-8 or as .xlsx")


def test_a_byte_that_is_not_utf8_is_placed_in_the_file(tmp_path):
    """Past pandas' first chunk of text its error counts bytes from the chunk, not the file: the
    message named byte 0 for a bad byte on line 3,001 (found by review)."""
    rows = "".join(f"{i},{i + 1},{i + 2}\n" for i in range(3000))
    (tmp_path / "t.csv").write_bytes(("x0,x1,y\n" + rows + "1,2,\xb53\n").encode("latin-1"))
    where = f"(line 3002, byte {len(('x0,x1,y' + chr(10) + rows + '1,2,').encode())})"
    assert_one_line_error(run(tmp_path, "--data", str(tmp_path / "t.csv"), "--inputs", "x0", "--objective", "y"),
                          "not UTF-8 text", where)


def test_xlsx_tables_and_trailing_commas_are_read_as_written(tmp_path, frame):
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    res = run(tmp_path, "--data", str(tmp_path / "t.xlsx"), "--inputs", "x0,x1,x2", "--objective", "y")
    assert res.exit_code == 0, res.output
    assert summary(tmp_path)["n_pool"] == 30
    text = frame.to_csv(index=False).splitlines()
    (tmp_path / "t.csv").write_text("\n".join([text[0], *(line + "," for line in text[1:])]) + "\n")
    res = run(tmp_path, "--data", str(tmp_path / "t.csv"), "--inputs", "x0,x1,x2", "--objective", "y")
    assert res.exit_code == 0 and "left out" not in res.stderr, res.output
    assert summary(tmp_path)["n_pool"] == 30 and summary(tmp_path)["n_top"] == 2


def test_a_source_is_read_by_its_column_names_and_says_what_it_adds(tmp_path, frame):
    frame.to_csv(tmp_path / "t.csv", index=False)
    target = ["--data", str(tmp_path / "t.csv"), "--inputs", "x0,x1,x2", "--objective", "y"]
    frame.rename(columns=str.upper).rename(columns={"Y": "y"}).to_csv(tmp_path / "upper.csv", index=False)
    assert_one_line_error(run(tmp_path, *target, "--source", str(tmp_path / "upper.csv")),
                          "none of its columns ['X0', 'X1', 'X2'] is an input of the target")
    frame.assign(strength=frame.y * 2).to_csv(tmp_path / "src.csv")  # index saved, another output kept
    res = run(tmp_path, *target, "--source", str(tmp_path / "src.csv"))
    assert res.exit_code == 0, res.output
    assert "column(s) ['Unnamed: 0'] have no name (a saved row index?): left out" in res.stderr
    assert "1 column(s) the target does not have enter as inputs (0 on the target's rows): ['strength']" in res.stderr
    assert summary(tmp_path)["transfer"]["columns"] == ["x0", "x1", "x2", "strength"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in "ab":
        frame.to_csv(tmp_path / d / "src.csv", index=False)
    res = run(tmp_path, *target, "--source", str(tmp_path / "a" / "src.csv"), "--source", str(tmp_path / "b" / "src.csv"))
    assert res.exit_code == 0, res.output
    assert sorted(summary(tmp_path)["transfer"]["sources"]) == [str(tmp_path / d / "src.csv") for d in "ab"]


def test_a_multiobjective_pool_without_volume_and_two_goals_for_one_objective_are_named(tmp_path):
    (tmp_path / "t.csv").write_text("x0,y,y2\n0,1,0\n1,0,1\n")
    assert_one_line_error(run(tmp_path, "--data", str(tmp_path / "t.csv"), "--inputs", "x0", "--objective", "y,y2",
                              "--mode", "multiobjective"), "the pool's Pareto front has no volume")
    assert_one_line_error(run(tmp_path, "--data", str(tmp_path / "t.csv"), "--inputs", "x0", "--objective", "y",
                              "--goal", "min,max"), "one goal for --mode single")


def test_the_ef_peak_leaves_out_the_random_start():
    """A lucky random second point of 5,000 gave EF 10.0 whatever the strategy did after it."""
    lucky = [None, 0.0, 10.0] + [0.0] * 4
    assert ef_peak(lucky) == 0.0  # a short run: the picks after the two random points only
    long = [None, 0.0, 10.0] + [1.0] * (EF_FROM - 3) + [2.5, 3.0]
    assert ef_peak(long) == 3.0


def test_row_names_are_refused_and_a_percent_composition_source_adds_elements_quietly(tmp_path, frame):
    """Today's review: reading a trailing comma as written must not read R's row names (one field
    more than the header, not empty) by dropping the last field: every column moved one place.
    And a composition source in percent is a composition: its other elements are no slip."""
    (tmp_path / "r.csv").write_text('"x0","x1","y"\n"1",0.1,0.2,30\n"2",0.3,0.4,50\n"3",0.5,0.6,70\n')
    assert_one_line_error(run(tmp_path, "--data", str(tmp_path / "r.csv"), "--inputs", "x0,x1", "--objective", "y"),
                          "the data rows hold one field more than the header (row names")
    X = np.random.default_rng(2).dirichlet(np.ones(3), 30)
    target = pd.DataFrame({"Cu": X[:, 0] + X[:, 2], "Fe": X[:, 1], "y": X[:, 0]})
    target.to_csv(tmp_path / "t.csv", index=False)
    pd.DataFrame({"Cu": 100 * X[:, 0], "Fe": 100 * X[:, 1], "Ni": 100 * X[:, 2], "y": X[:, 0] + 0.1}).to_csv(
        tmp_path / "pct.csv", index=False)
    res = run(tmp_path, "--data", str(tmp_path / "t.csv"), "--inputs", "Cu,Fe", "--objective", "y",
              "--source", str(tmp_path / "pct.csv"))
    assert res.exit_code == 0 and "enter as inputs" not in res.stderr, res.output


def test_a_table_is_read_once_as_pandas_reads_its_path(tmp_path, frame):
    """``read_table`` reads the file once and parses the table and its header row from those
    bytes: a named pipe (which gives its text once) is read; a ``.csv.gz`` is decompressed as pandas
    does for a path; the row-names check takes each row's last field from the table's own parse
    (a probe that skipped the file's first line misread a header cell quoted over two lines)."""
    import gzip
    import io
    import os
    import threading

    from dm_hpc.bench.pool import read_table

    text = frame.to_csv(index=False)
    expected = pd.read_csv(io.StringIO(text))
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.csv")
        got: dict = {}

        def read():
            try:
                got["df"] = read_table(tmp_path / "pipe.csv")
            except Exception as exc:  # noqa: BLE001 -- said by the assertion below
                got["error"] = exc

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        (tmp_path / "pipe.csv").write_text(text)  # returns once the reader has opened the pipe and taken it
        reader.join(timeout=60)
        assert "df" in got, got.get("error", "read_table opened the pipe again after reading it")
        pd.testing.assert_frame_equal(got["df"], expected)
    with gzip.open(tmp_path / "t.csv.gz", "wt") as fh:
        fh.write(text)
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.csv.gz"), expected)
    (tmp_path / "q.csv").write_text('"x\n0",x1,y\n1,2,3,\n2,3,4,\n')
    table = read_table(tmp_path / "q.csv")
    assert list(table.columns) == ["x\n0", "x1", "y"] and table.to_numpy().tolist() == [[1, 2, 3], [2, 3, 4]]
