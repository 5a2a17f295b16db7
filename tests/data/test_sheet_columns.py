"""The columnar import path (``read_sheet_columns`` -> ``Store.ingest_columns``, what ``dm-hpc
store import`` runs) stores exactly what the record path (``read_sheet_contents`` ->
``Store.ingest``) stores: the same record ids, JSON, columns and values, for random template
sheets with every feature of the template (bases, balance elements, converted units,
uncertainties, process steps, raw materials, material classes, per-row methods and notes,
rows not made and pending, rows without a sample id). Real CSV and XLSX files, real stores.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from dm_hpc.data import Store
from dm_hpc.data.composition import Basis, atomic_fractions_table, to_atomic_fractions
from dm_hpc.data.resend import resolve_resends, resolve_resent_columns
from dm_hpc.data.shards import columns_from_records
from dm_hpc.data.sheets import SheetDefaults, SheetError, read_sheet_columns, read_sheet_contents

ELEMENTS = ["Ni", "Al", "Co", "Cr", "Fe", "Ti"]  # not alphabetical: the sheet's order is the summing order
BASES = {"at_frac": 1.0, "at%": 100.0, "wt%": 100.0, "wt_frac": 1.0}
TIMESTAMP = re.compile(rb'"timestamp":"[^"]*"')


def random_sheet(path: Path, rng: np.random.Generator, n: int, basis: str) -> Path:
    """A template sheet of ``n`` random rows using every kind of column."""
    header = (["sample_id", "material_class", "method", "notes", "contributor"]
              + [f"composition:{el} [{basis}]" for el in ELEMENTS]
              + ["raw:PLA [wt%]", "raw:talc []", "process:anneal:annealing_temperature [degC]",
                 "process:anneal:annealing_time [h]", "process:age:ageing_time [h]",
                 "property:hardness [HV]", "uncertainty:hardness [HV]", "property:density [kg/m**3]",
                 "property:bandgap [eV]", "uncertainty:bandgap [eV]"])
    scale = BASES[basis]
    rows = []
    for i in range(n):
        picks = rng.choice(len(ELEMENTS), size=int(rng.integers(1, 5)), replace=False)
        amounts = rng.dirichlet(np.ones(len(picks))) * scale
        comp = [""] * len(ELEMENTS)
        for j, x in zip(picks, amounts):
            comp[j] = repr(round(float(x), int(rng.integers(2, 9))))
        last = int(picks[-1])
        if rng.random() < 0.3:
            comp[last] = "bal"
        else:  # the last picked element takes the remainder of the rounding
            comp[last] = repr(round(scale - sum(float(comp[j]) for j in picks[:-1]), 9))
        kind = rng.random()
        hardness = repr(round(float(rng.uniform(80, 600)), 2)) if kind > 0.1 else ("not made" if kind > 0.05 else "")
        measured = hardness not in ("", "not made")
        rows.append([
            rng.choice([f"S{i}", f"Probe-ä{i}", ""], p=[0.7, 0.2, 0.1]),
            rng.choice(["", "metal", "ceramic", "polymer"]),
            rng.choice(["", "lab-a", "lab b"]),
            rng.choice(["", "first batch", "zweite Charge, 5 °C"]),
            rng.choice(["", "A. Person"]),
            *comp,
            rng.choice(["", "0", repr(round(float(rng.uniform(0, 30)), 3))]),
            rng.choice(["", repr(round(float(rng.uniform(0.5, 3)), 4))]),
            rng.choice(["", repr(round(float(rng.uniform(300, 1200)), 1))]),
            rng.choice(["", repr(round(float(rng.uniform(0.5, 10)), 2))]),
            rng.choice(["", repr(round(float(rng.uniform(1, 48)), 3))]),
            hardness,
            repr(round(float(rng.uniform(0, 20)), 3)) if measured and rng.random() < 0.7 else "",
            repr(round(float(rng.uniform(2000, 9000)), 1)) if measured and rng.random() < 0.5 else "",
            repr(float(rng.uniform(0, 1e-3))) if measured and rng.random() < 0.3 else "",
            "",
        ])
    first = next(r for r in rows if r[16] not in ("", "not made"))
    rows += [["", *first[1:]], ["", *first[1:]]]  # the same content twice without a sample id: one record
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


def without_time(data: list[bytes]) -> list[bytes]:
    return [TIMESTAMP.sub(b'"timestamp":""', j) for j in data]


def stored(store: Store) -> tuple[pd.DataFrame, list[dict]]:
    frame = store.to_dataframe(superseded=True).drop(columns="time")
    dumps = [r.model_dump(mode="json", exclude={"provenance": {"timestamp"}}) for r in store.records(superseded=True)]
    return frame, dumps


@pytest.mark.parametrize("seed,basis", [(0, "at_frac"), (1, "at%"), (2, "wt%"), (3, "wt_frac")])
def test_columns_store_what_records_store(tmp_path, seed, basis):
    sheet = random_sheet(tmp_path / "lab.csv", np.random.default_rng(seed), 150, basis)
    defaults = SheetDefaults(method="lab", campaign="hea", contributor="me")
    contents = read_sheet_contents(sheet, defaults)
    columns = read_sheet_columns(sheet, defaults)
    records = contents.records
    assert len(records) > 100 and contents.pending and contents.not_made  # the sheet has every kind of row
    assert columns.lines == contents.lines
    assert (columns.not_made, columns.pending, columns.warnings) == (contents.not_made, contents.pending, contents.warnings)
    assert columns.columns.ids == [r.record_id for r in records]
    by_records = columns_from_records(records, [r.record_id for r in records], [r.to_json() for r in records])
    assert without_time(columns.columns.json) == without_time(by_records.json)

    with Store.open(tmp_path / "a", "a") as a, Store.open(tmp_path / "b", "a") as b:
        ra = a.ingest(records)
        rb = b.ingest_columns(columns.columns)
        assert (ra.n, ra.new, ra.ids) == (rb.n, rb.new, rb.ids)
        assert ra.new == ra.n - 1  # the row repeated without a sample id is one record
    with Store.open(tmp_path / "a") as a, Store.open(tmp_path / "b") as b:
        (frame_a, dumps_a), (frame_b, dumps_b) = stored(a), stored(b)
        assert b.check().ok
    pd.testing.assert_frame_equal(frame_a, frame_b)
    assert dumps_a == dumps_b


def test_xlsx_and_resent_rows_match(tmp_path):
    """A workbook (numbers as numbers) and a second import of the same samples with changed
    values: both paths refuse it alike, and with ``replace`` store the same corrections."""
    sheet = random_sheet(tmp_path / "lab.csv", np.random.default_rng(7), 40, "at%")
    table = list(csv.reader(sheet.open(encoding="utf-8")))
    wb = openpyxl.Workbook()
    for row in table:
        wb.active.append([float(v) if re.fullmatch(r"[0-9.e+-]+", v) else (v or None) for v in row])
    wb.save(tmp_path / "lab.xlsx")
    contents = read_sheet_contents(tmp_path / "lab.xlsx")
    columns = read_sheet_columns(tmp_path / "lab.xlsx")
    assert columns.columns.ids == [r.record_id for r in contents.records]

    for row in table[1:]:  # every hardness one HV higher: re-sent values
        if re.fullmatch(r"[0-9.]+", row[16]):
            row[16] = repr(float(row[16]) + 1)
    with (tmp_path / "again.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(table)
    again_records = read_sheet_contents(tmp_path / "again.csv")
    again_columns = read_sheet_columns(tmp_path / "again.csv")
    results = []
    for name, first, resolve, ingest, again in (
        ("a", contents.records, resolve_resends, "ingest", again_records.records),
        ("b", columns.columns, resolve_resent_columns, "ingest_columns", again_columns.columns),
    ):
        with Store.open(tmp_path / name, "a") as s:
            getattr(s, ingest)(first)
            with pytest.raises(SheetError) as refused:
                resolve(s, again, again_records.lines, "again.csv")
            results.append(refused.value.problems)
            getattr(s, ingest)(resolve(s, again, again_records.lines, "again.csv", replace=True))
        with Store.open(tmp_path / name) as s:
            results.append(stored(s))
    assert results[0] == results[2]
    pd.testing.assert_frame_equal(results[1][0], results[3][0])
    assert results[1][1] == results[3][1]
    assert any(d["provenance"].get("supersedes") for d in results[3][1])


def test_formula_rows_take_the_record_path(tmp_path):
    sheet = tmp_path / "f.csv"
    sheet.write_text("sample_id,formula,property:bandgap [eV]\nA,NiAl,1.5\nB,Al2O3,6.2\n")
    contents = read_sheet_contents(sheet)
    columns = read_sheet_columns(sheet)
    assert columns.columns.ids == [r.record_id for r in contents.records] and len(columns.columns.ids) == 2


def test_a_refused_sheet_is_refused_alike(tmp_path):
    sheet = random_sheet(tmp_path / "lab.csv", np.random.default_rng(3), 30, "at_frac")
    text = sheet.read_text(encoding="utf-8").splitlines()
    text[5] = text[5].replace("S4", "S3") if "S4," in text[5] else text[5]
    text[9] = re.sub(r",[0-9.]+,", ",1e308,", text[9], count=1)
    sheet.write_text("\n".join(text) + "\n", encoding="utf-8")
    with pytest.raises(SheetError) as by_records:
        read_sheet_contents(sheet)
    with pytest.raises(SheetError) as by_columns:
        read_sheet_columns(sheet)
    assert by_records.value.problems == by_columns.value.problems and by_columns.value.problems


def test_two_columns_for_one_quantity_are_refused(tmp_path):
    sheet = tmp_path / "d.csv"
    sheet.write_text("sample_id,composition:Cu [at_frac],composition:Cu [at. frac],property:hardness [GPa],"
                     "property:hardness [HV]\nA,0.5,0.5,2,187\n")
    with pytest.raises(SheetError) as refused:
        read_sheet_columns(sheet)
    text = str(refused.value)
    assert "both give composition Cu" in text and "both give property hardness" in text


def test_table_fractions_are_to_atomic_fractions_to_the_last_bit():
    rng = np.random.default_rng(11)
    elements = ["Zr", "Al", "Nb", "Cu", "H"]
    for basis in Basis:
        amounts = rng.uniform(0, 1, (400, 5)) * rng.choice([1e-6, 1, 1e3], (400, 1))
        amounts[rng.random((400, 5)) < 0.3] = np.nan
        amounts[:, 0] = np.where(np.isnan(amounts).all(axis=1), 0.3, amounts[:, 0])
        balance = np.zeros_like(amounts, dtype=bool)
        balance[::3, 4] = True
        amounts[balance] = np.nan
        fractions, present, problems = atomic_fractions_table(amounts, balance, elements, basis)
        for i in range(len(amounts)):
            row = {el: ("bal" if balance[i, j] else amounts[i, j]) for j, el in enumerate(elements)
                   if balance[i, j] or not np.isnan(amounts[i, j])}
            try:
                expected = to_atomic_fractions(row, basis)
            except ValueError as exc:
                assert problems[i] == str(exc)
                continue
            got = {el: fractions[i, j] for j, el in enumerate(elements) if present[i, j]}
            assert got == expected and list(sorted(got)) == list(expected)


PLAIN_CASES = {
    "plain": "sample_id,composition:Cu [at_frac],property:hardness [GPa]\nA,1,2\nB,1,3\n",
    "crlf": "sample_id,composition:Cu [at_frac],property:hardness [GPa]\r\nA,1,2\r\nB,1,3\r\n",
    "spaces": "sample_id,method,composition:Cu [at_frac],property:hardness [GPa]\n A ,lab b,1, \nB,\t,1,3\n",
    "unicode space": "sample_id,method,composition:Cu [at_frac],property:hardness [GPa]\nA,\u00a0,1,2\nB,lab ä,1,\u2003\n",
    "neutralised": "sample_id,method,composition:Cu [at_frac],property:hardness [GPa]\n'=A,'@lab,1,2\n'',x,1,3\n",
    "row of separators": "sample_id,composition:Cu [at_frac],property:hardness [GPa]\nA,1,2\n,,\n , ,\nB,1,3",
    "semicolon decimal comma": "sample_id;composition:Cu [at_frac];property:hardness [GPa]\nA;1;2,5\nB;1;3\n",
    "trailing separators": "sample_id,composition:Cu [at_frac],property:hardness [GPa],,\nA,1,2,,\nB,1,3,,\n",
    "short row": "sample_id,composition:Cu [at_frac],property:hardness [GPa]\nA,1,2\nB,1\n",
    "long row": "sample_id,composition:Cu [at_frac],property:hardness [GPa]\nA,1,2\nB,1,3,4\n",
    "duplicate header": "sample_id,composition:Cu [at_frac],sample_id,property:hardness [GPa]\nA,1,A,2\n",
    "quoted": 'sample_id,composition:Cu [at_frac],property:hardness [GPa]\n"A,1",1,2\n',
    "blank line": "sample_id,composition:Cu [at_frac],property:hardness [GPa]\nA,1,2\n\nB,1,3\n",
    "lone cr": "sample_id,composition:Cu [at_frac],property:hardness [GPa]\rA,1,2\rB,1,3\r",
    "header only": "sample_id,composition:Cu [at_frac],property:hardness [GPa]\n",
    "leading separators line": ",,\nsample_id,composition:Cu [at_frac],property:hardness [GPa]\nA,1,2\n",
}


@pytest.mark.parametrize("case", sorted(PLAIN_CASES))
def test_plain_csv_reader_reads_what_the_row_reader_reads(tmp_path, monkeypatch, case):
    """Real CSV files read by pandas' parser (the plain-file path) and by the csv-module reader
    (forced): the same cells, lines and decimal mark, or the same refusal."""
    from dm_hpc.data import sheetfiles

    path = tmp_path / "s.csv"
    path.write_bytes(PLAIN_CASES[case].encode())

    def read():
        try:
            loaded = sheetfiles.load_table(path)
            return loaded.frame, loaded.decimal
        except SheetError as exc:
            return exc.problems

    fast = read()
    monkeypatch.setattr(sheetfiles, "plain_csv_frame", lambda *a: None)
    slow = read()
    if isinstance(slow, list):
        assert fast == slow
    else:
        pd.testing.assert_frame_equal(fast[0], slow[0])
        assert fast[1] == slow[1]


def test_a_large_batch_is_several_shards_in_one_commit(tmp_path, monkeypatch):
    """A batch of columns larger than ``SHARD_ROWS`` is written shard by shard and committed by
    one manifest; the disk filling up on its second shard (fault injection: ENOSPC where a shard
    is made durable) leaves the store as it was, without files, and the same batch goes in later."""
    import errno
    import os

    from dm_hpc.data import store as store_module
    from dm_hpc.data.integrity import StoreError

    monkeypatch.setattr(store_module, "SHARD_ROWS", 40)
    sheet = random_sheet(tmp_path / "lab.csv", np.random.default_rng(5), 150, "at_frac")
    columns = read_sheet_columns(sheet).columns
    path = tmp_path / "s"
    store = Store.open(path, "a")
    calls = []
    real = os.fdatasync

    def full_on_second_shard(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr("dm_hpc.data.integrity.os.fdatasync", full_on_second_shard)
    with pytest.raises(StoreError, match="disk is full"):
        store.ingest_columns(columns)
    monkeypatch.setattr("dm_hpc.data.integrity.os.fdatasync", real)
    assert len(store) == 0 and not list((path / "shards").iterdir())
    result = store.ingest_columns(columns)
    assert result.new == columns.n - 1 and store.info()["generation"] == 1  # one commit
    assert store.info()["shards"] == -(-result.new // 40)
    store.close()
    with Store.open(path) as s:
        assert s.check().ok and sorted(s.to_dataframe()["record_id"]) == sorted(set(columns.ids))


def test_column_rounding_is_pythons_to_the_bit():
    """``rounding`` against ``round(x, 12)`` and ``format(x, '.12g')`` value by value: random
    magnitudes, exact halves (where a product rounding would go wrong), zeros of both signs."""
    from dm_hpc.data.rounding import round_decimals, round_significant

    rng = np.random.default_rng(2)
    n = 20_000
    values = np.concatenate([
        rng.random(n),
        rng.random(n) * 10.0 ** rng.integers(-25, 25, n) * rng.choice([-1, 1], n),
        (rng.integers(0, 10**12, n) + 0.5) / 1e12,
        (rng.integers(10**11, 10**12, n) + 0.5) * 10.0 ** rng.integers(-15, 5, n),
        [0.0, -0.0, 5e-13, -5e-13, 2.5e-12, 1e22, 1e23, 1 / 3, 999999999999.5, 0.9999999999995],
    ])
    as_python = np.array([round(v, 12) for v in values.tolist()])
    assert (round_decimals(values, 12).view(np.int64) == as_python.view(np.int64)).all()
    as_python = np.array([float(f"{v:.12g}") for v in values.tolist()])
    assert (round_significant(values, 12).view(np.int64) == as_python.view(np.int64)).all()
