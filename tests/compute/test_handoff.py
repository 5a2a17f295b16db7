"""Result hand-off: task file -> worker process -> result.json -> computed record -> store."""
from __future__ import annotations

import json
import subprocess
import sys

from dm_hpc.compute import (
    CalcFailure, CalcResult, FailureKind, read_result, result_to_record, worker_argv, write_task,
)
from dm_hpc.data import Source, Store


def _run_worker(task_path):
    return subprocess.run(worker_argv(task_path), cwd=task_path.parent, capture_output=True, text=True, timeout=120)


def test_worker_writes_result_that_the_store_ingests_once(tmp_path):
    ids = []
    for run in ("a", "b"):  # two separate processes, same task -> the same record id
        task = write_task(tmp_path / run, "Al0.25Cu0.25Ni0.25Pd0.25", "emt", seed=3, task_id=f"t-{run}",
                          campaign="test")
        proc = _run_worker(task)
        assert proc.returncode == 0, proc.stderr
        result = read_result(tmp_path / run)
        assert isinstance(result, CalcResult) and result.task_id == f"t-{run}"
        record = result_to_record(result)
        assert record.source is Source.computed and record.provenance.task_id == f"t-{run}"
        assert record.provenance.code == "ase-emt" and record.provenance.input_hash == result.input_hash
        assert record.structure["@class"] == "Structure"
        ids.append(record)
    assert ids[0].record_id == ids[1].record_id
    with Store.open(tmp_path / "store.h5", mode="a") as store:
        first = store.ingest([ids[0]])
        again = store.ingest([ids[1]])
    assert first.new == 1 and again.new == 0


def test_worker_failure_is_written_and_exit_code_is_opt_in(tmp_path):
    task = write_task(tmp_path / "fe", {"Fe": 0.5, "Ni": 0.5}, "emt", task_id="t-fe")
    proc = _run_worker(task)
    assert proc.returncode == 0  # an outcome, in the file: a runner must not retry it
    coded = subprocess.run(worker_argv(task) + ["--exit-codes"], cwd=task.parent, capture_output=True, timeout=120)
    assert coded.returncode == FailureKind.unsupported_element.exit_code == 10
    data = json.loads((tmp_path / "fe" / "result.json").read_text())
    assert data["status"] == "failed"
    failure = read_result(tmp_path / "fe" / "result.json")
    assert isinstance(failure, CalcFailure) and failure.kind is FailureKind.unsupported_element
    assert failure.task_id == "t-fe"


def test_unreadable_task_and_missing_result_are_failures(tmp_path):
    bad = tmp_path / "bad" / "task.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    proc = _run_worker(bad)
    assert proc.returncode == 0
    assert read_result(bad.parent).kind is FailureKind.invalid_task
    missing = read_result(tmp_path / "nowhere")
    assert not missing.ok and missing.kind is FailureKind.code_died


def test_worker_argv_is_an_argv_list(tmp_path):
    argv = worker_argv(tmp_path / "task.json")
    assert argv[0] == sys.executable and argv[1:3] == ["-m", "dm_hpc.compute.worker"]
