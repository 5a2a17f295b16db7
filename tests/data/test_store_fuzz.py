"""Fuzz corpus of store corruptions (issue 11 §6): bit flips in shards' data blocks and anywhere
in the file, truncations, zeroed and deleted ranges.

For every corruption: ``check`` must report it (missed: 0), and every read (the Python API and
the CLI) must either return exactly the original values or fail with a ``StoreCorruptError``
naming the file; never a silently changed number, never a traceback. One small store is reused
(the bit flips: one copy of it per isolated worker); each corruption is undone before the next.
Damaged files are opened only in a separate process (``isolated``): libhdf5 is C, and a crafted file may corrupt its memory; a crash there is then a
broken pool (counted as a failure here) instead of a segfault of the test session later on. ``DM_HPC_FUZZ_FLIPS`` sets the number of flips in
data blocks (default 1,000). The counts are printed (``pytest -s``) for docs/measurements/store.md.
"""
from __future__ import annotations

import multiprocessing
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dm_hpc.cli import app
from dm_hpc.data import Store, StoreCorruptError

from .test_store import make

FLIPS_IN_DATA = int(os.environ.get("DM_HPC_FUZZ_FLIPS", "1000"))
FLIPS_ANYWHERE = 300
CLI_EVERY = 40  # every 40th corruption also goes through the CLI (in-process)


#: Isolated worker processes the bit flips are shared between, each on its own copy of the store
#: (the machine's two cores: the flips are independent, each undone before the next).
WORKERS = 2


@pytest.fixture(scope="module")
def isolated():
    """Worker processes (fresh interpreters) that open the damaged stores."""
    with ProcessPoolExecutor(max_workers=WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "s"
    with Store.open(root, "a") as store:
        store.ingest([make(i) for i in range(30)])
        store.ingest([make(i, "experimental", "lab-x", ("Al", "Ni")) for i in range(30, 40)])
    return root


def snapshot(root: Path) -> tuple[pd.DataFrame, list[str]]:
    with Store.open(root) as store:
        return store.to_dataframe(), [r.to_json() for r in store.records()]


def data_blocks(path: Path) -> list[tuple[int, int]]:
    """(file offset, size) of every stored chunk of every dataset: where the numbers live."""
    blocks = []
    with h5py.File(path, "r") as f:
        for ds in f["records"].values():
            if ds.chunks is None:  # contiguous (shards written before checksums)
                if ds.id.get_offset() is not None and ds.id.get_storage_size():
                    blocks.append((ds.id.get_offset(), ds.id.get_storage_size()))
                continue
            for i in range(ds.id.get_num_chunks()):
                info = ds.id.get_chunk_info(i)
                blocks.append((info.byte_offset, info.size))
    return blocks


class Tally:
    def __init__(self) -> None:
        self.runs = self.missed = self.silent = self.crashes = self.loud = self.intact_reads = 0
        self.check_crashes = 0
        self.cli_runs = self.cli_tracebacks = 0
        self.examples: list[str] = []

    def merge(self, other: "Tally") -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    def line(self, kind: str) -> str:
        return (f"{kind}: {self.runs} corruptions, check missed {self.missed}, check crashed {self.check_crashes}; "
                f"reads: {self.loud} failed loudly, {self.intact_reads} returned the original values, "
                f"{self.silent} returned changed values, {self.crashes - self.check_crashes} crashed; "
                f"CLI runs {self.cli_runs}, tracebacks {self.cli_tracebacks}")


def judge(root: Path, original: tuple[pd.DataFrame, list[str]], tally: Tally, cli: bool, label: str) -> None:
    tally.runs += 1
    try:
        with Store.open(root) as store:
            report = store.check()
    except StoreCorruptError:
        report = None  # refusing to open is a report too
    except Exception as exc:  # noqa: BLE001 - any other exception is the failure being counted
        tally.crashes += 1
        tally.check_crashes += 1
        tally.examples.append(f"{label}: check crashed: {exc!r}")
        report = None
    if report is not None and report.ok:
        tally.missed += 1
        tally.examples.append(f"{label}: check said ok")
    try:
        got = snapshot(root)
    except StoreCorruptError:
        tally.loud += 1
    except Exception as exc:  # noqa: BLE001
        tally.crashes += 1
        tally.examples.append(f"{label}: read crashed: {exc!r}")
    else:
        if got[0].equals(original[0]) and got[1] == original[1]:
            tally.intact_reads += 1
        else:
            tally.silent += 1
            tally.examples.append(f"{label}: read returned changed values")
    if cli:
        for args in (["store", "query", "--store", str(root)], ["store", "check", "--store", str(root)],
                     ["store", "info", "--store", str(root)]):
            result = CliRunner().invoke(app, args)
            tally.cli_runs += 1
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                tally.cli_tracebacks += 1
                tally.examples.append(f"{label}: {' '.join(args[:2])} raised {result.exception!r}")


def judged(root: Path, original, cli: bool, label: str) -> Tally:
    """``judge`` on a fresh tally (runs in the isolated worker)."""
    tally = Tally()
    judge(root, original, tally, cli, label)
    return tally


def flip_and_judge(root: Path, path: Path, offset: int, bit: int, original, tally: Tally, cli: bool) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ (1 << bit)]))
    try:
        judge(root, original, tally, cli, f"{path.name}@{offset}.{bit}")
    finally:
        with open(path, "r+b") as fh:
            fh.seek(offset)
            fh.write(bytes([byte]))


def planned_flips(small_store: Path) -> list[tuple[str, str, int, int, bool]]:
    """Every flip of the test, in order: (kind, shard file name, offset, bit, through the CLI too);
    kind ``data`` (inside a data block) or ``anywhere`` (anywhere in the shard)."""
    shards = sorted((small_store / "shards").glob("*.h5"))
    rng = random.Random(2026)
    flips = []
    blocks = [(path, off, size) for path in shards for off, size in data_blocks(path)]
    weights = [size for _, _, size in blocks]
    for k in range(FLIPS_IN_DATA):
        path, off, size = rng.choices(blocks, weights)[0]
        flips.append(("data", path.name, off + rng.randrange(size), rng.randrange(8), k % CLI_EVERY == 0))
    for k in range(FLIPS_ANYWHERE):
        path = rng.choice(shards)
        flips.append(("anywhere", path.name, rng.randrange(path.stat().st_size), rng.randrange(8),
                      k % CLI_EVERY == 0))
    return flips


def flip_campaign(store: Path, flips, original) -> tuple[Tally, Tally]:
    """``flips`` on ``store``, each judged and undone (runs in an isolated worker)."""
    in_data, anywhere = Tally(), Tally()
    for kind, name, offset, bit, cli in flips:
        flip_and_judge(store, store / "shards" / name, offset, bit, original,
                       in_data if kind == "data" else anywhere, cli)
    return in_data, anywhere


def test_bit_flips_in_data_blocks_and_anywhere_are_all_caught(small_store, isolated, tmp_path):
    original = snapshot(small_store)
    flips = planned_flips(small_store)
    assert len(flips) == FLIPS_IN_DATA + FLIPS_ANYWHERE
    copies = [shutil.copytree(small_store, tmp_path / f"copy{w}" / small_store.name) for w in range(WORKERS)]
    for copy in copies:
        got = snapshot(copy)
        assert got[0].equals(original[0]) and got[1] == original[1]  # a copy is the same store
    runs = [isolated.submit(flip_campaign, copy, flips[w::WORKERS], original) for w, copy in enumerate(copies)]
    in_data, anywhere = Tally(), Tally()
    for run in runs:
        part_in_data, part_anywhere = run.result()
        in_data.merge(part_in_data)
        anywhere.merge(part_anywhere)
    assert (in_data.runs, anywhere.runs) == (FLIPS_IN_DATA, FLIPS_ANYWHERE)
    print("\n" + in_data.line("bit flips in data blocks") + "\n" + anywhere.line("bit flips anywhere in a shard"))
    for tally in (in_data, anywhere):
        assert (tally.missed, tally.silent, tally.crashes, tally.cli_tracebacks) == (0, 0, 0, 0), tally.examples[:10]
    assert in_data.loud == in_data.runs  # a flip in the numbers is never read back as a number
    for copy in copies:  # every flip was undone
        assert snapshot(copy)[0].equals(original[0])
        with Store.open(copy) as store:
            assert store.check().ok


_CUT_TALLY = Tally()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["truncate", "zero", "delete-range", "append"]),
       where=st.floats(0.0, 1.0), length=st.integers(1, 4096), which=st.integers(0, 1))
def test_truncated_zeroed_and_cut_shards_are_caught(small_store, isolated, kind, where, length, which):
    original = snapshot(small_store)
    path = sorted((small_store / "shards").glob("*.h5"))[which]
    backup = path.with_name("backup.bin")
    shutil.copyfile(path, backup)
    try:
        data = path.read_bytes()
        at = int(where * (len(data) - 1))
        if kind == "truncate":
            damaged = data[:at]
        elif kind == "zero":
            damaged = data[:at] + bytes(min(length, len(data) - at)) + data[at + length:]
        elif kind == "delete-range":
            damaged = data[:at] + data[at + length:]
        else:
            damaged = data + bytes(length)
        if damaged == data:
            return  # zeroing bytes that were zero already is no corruption
        path.write_bytes(damaged)
        _CUT_TALLY.merge(isolated.submit(judged, small_store, original, _CUT_TALLY.runs % CLI_EVERY == 0,
                                         f"{kind}@{at}+{length}").result())
    finally:
        shutil.copyfile(backup, path)
        backup.unlink()
    assert (_CUT_TALLY.missed, _CUT_TALLY.silent, _CUT_TALLY.crashes, _CUT_TALLY.cli_tracebacks) == (0, 0, 0, 0), \
        _CUT_TALLY.examples[-3:]


def test_cut_tally_printed():
    print("\n" + _CUT_TALLY.line("truncations, zeroed, deleted and appended ranges (hypothesis)"))


def test_no_shard_metadata_lives_in_hdf5s_unchecksummed_global_heap(small_store):
    """Saved case from the fuzz run: a damaged global heap (where h5py puts variable-length
    strings) made reading a column-name attribute spin in HDF5 instead of failing. Shards keep
    every string fixed-length, inside checksummed object headers."""
    for path in (small_store / "shards").glob("*.h5"):
        with h5py.File(path, "r") as f:
            objects = [f, *f["records"].values()]
            for obj in objects:
                for name in obj.attrs:
                    dtype = obj.attrs.get_id(name).dtype
                    assert h5py.check_string_dtype(dtype) is None or h5py.check_string_dtype(dtype).length, \
                        (path.name, obj.name, name)
            for ds in f["records"].values():
                assert h5py.check_vlen_dtype(ds.dtype) is None and (h5py.check_string_dtype(ds.dtype) is None
                                                                  or h5py.check_string_dtype(ds.dtype).length)
