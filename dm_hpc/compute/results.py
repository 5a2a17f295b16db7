"""Hand-off between a calculation and the store: task files, result files, records.

A run folder holds ``task.json`` (what to compute, written by :func:`write_task`) and, after
``python -m dm_hpc.compute.worker task.json``, ``result.json`` (a :class:`CalcResult` or a
:class:`CalcFailure`, read back by :func:`read_result`). The campaign turns a result into a
``computed`` :class:`~dm_hpc.data.MaterialRecord` with :func:`result_to_record`.
"""
from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dm_hpc.compute.failures import CalcFailure, FailureKind
from dm_hpc.data import Composition, MaterialRecord, PropertyValue, Provenance, Source

TASK_FILE = "task.json"
RESULT_FILE = "result.json"
TASK_SCHEMA = "dm-hpc/calc-task/1"
RESULT_SCHEMA = "dm-hpc/calc-result/1"


class CalcTask(BaseModel):
    """What one worker run computes. ``composition`` in atomic fractions."""

    model_config = ConfigDict(frozen=True)
    schema_: str = Field(default=TASK_SCHEMA, alias="schema")
    composition: dict[str, float]
    method: str = "emt"
    settings: dict[str, Any] = Field(default_factory=dict)
    properties: list[str] | None = None
    seed: int = 0
    cores: int = Field(default=1, ge=1)
    task_id: str | None = None
    campaign: str | None = None
    #: a jobflow Maker that computes it instead of the built-in recipe (``dm_hpc.compute.makers``)
    maker: dict[str, Any] | None = None


class CalcResult(BaseModel):
    """A finished calculation: properties (canonical units) and everything needed for provenance.

    ``composition`` is what was asked for; ``cell_composition`` what the cell holds (they differ
    when a finite cell cannot hold the fractions exactly) and what the record carries.
    """

    model_config = ConfigDict(frozen=True)
    ok: bool = True
    method: str
    fidelity: str
    code: str
    code_version: str
    composition: dict[str, float]
    cell_composition: dict[str, float]
    properties: list[PropertyValue]
    settings: dict[str, Any]
    input_hash: str
    seed: int
    lattice: str
    n_atoms: int
    structure: dict[str, Any]
    energy_total_ev: float | None  # None: a Maker whose output document has no total energy
    relax_steps: int
    references_ev_per_atom: dict[str, float] = Field(default_factory=dict)
    task_id: str | None = None
    campaign: str | None = None
    #: package -> version of what computed it beyond ``code`` (a Maker's jobflow, force field, ...)
    versions: dict[str, str] = Field(default_factory=dict)
    host: str
    cores: int
    wall_time_s: float
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def property_dict(self) -> dict[str, float]:
        """``{name: value}`` in canonical units."""
        return {p.name: p.value for p in self.properties}


def result_to_record(result: CalcResult, campaign: str | None = None, task_id: str | None = None,
                     job_id: str | None = None, material_class: str | None = None) -> MaterialRecord:
    """The ``computed`` record of ``result`` (same result -> same ``record_id``), of the campaign's
    ``material_class`` (the record's default, metal, when not given)."""
    return MaterialRecord(
        **({"material_class": material_class} if material_class else {}),
        composition=Composition(result.cell_composition),
        properties=list(result.properties),
        structure=result.structure,
        provenance=Provenance(
            source=Source.computed, method=result.method, code=result.code,
            code_version=result.code_version, input_hash=result.input_hash,
            job_id=job_id, task_id=task_id or result.task_id, host=result.host,
            campaign=campaign or result.campaign, timestamp=result.timestamp,
            extra={"wall_time_s": result.wall_time_s, "cores": result.cores,
                   "fidelity": result.fidelity, "seed": result.seed, "n_atoms": result.n_atoms,
                   "lattice": result.lattice, "relax_steps": result.relax_steps,
                   "requested_composition": result.composition, "settings": result.settings,
                   "references_ev_per_atom": result.references_ev_per_atom,
                   **({"versions": result.versions} if result.versions else {})},
        ),
    )


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a reader never sees half a file


def write_task(workdir: str | Path, composition: Composition | dict[str, float] | str, method: str = "emt",
               settings: dict[str, Any] | None = None, properties: list[str] | None = None,
               seed: int = 0, cores: int = 1, task_id: str | None = None,
               campaign: str | None = None, maker: dict[str, Any] | None = None) -> Path:
    """Write ``task.json`` into ``workdir`` (created) and return its path (``maker``: a ``MakerSpec`` dict)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    comp = composition if isinstance(composition, Composition) else Composition(composition)
    task = CalcTask(composition=comp.fractions, method=method, settings=dict(settings or {}),
                    properties=properties, seed=seed, cores=cores, task_id=task_id, campaign=campaign,
                    maker=maker)
    path = workdir / TASK_FILE
    _atomic_write(path, task.model_dump_json(by_alias=True, indent=1))
    return path


def read_task(path: str | Path) -> CalcTask:
    """Read a task file."""
    return CalcTask.model_validate_json(Path(path).read_text())


def worker_argv(task_path: str | Path, python: str | None = None) -> list[str]:
    """The argv a runner executes (in the run folder) to compute ``task_path``."""
    return [python or sys.executable, "-m", "dm_hpc.compute.worker", str(task_path)]


def write_result(workdir: str | Path, outcome: CalcResult | CalcFailure) -> Path:
    """Write ``result.json`` (result or failure) atomically; returns its path."""
    status, key = ("ok", "result") if outcome.ok else ("failed", "failure")
    payload = {"schema": RESULT_SCHEMA, "status": status, key: json.loads(outcome.model_dump_json())}
    path = Path(workdir) / RESULT_FILE
    _atomic_write(path, json.dumps(payload, indent=1))
    return path


def read_result(path: str | Path) -> CalcResult | CalcFailure:
    """Read ``result.json`` (a file or its run folder). A missing or unreadable file is itself a
    typed failure (the worker died before writing): never an exception."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    try:
        data = json.loads(path.read_text())
        if data.get("status") == "ok":
            return CalcResult.model_validate(data["result"])
        return CalcFailure.model_validate(data["failure"])
    except FileNotFoundError:
        return CalcFailure(kind=FailureKind.code_died, reason=f"no result file at {path}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return CalcFailure(kind=FailureKind.internal_error, reason=f"unreadable result file {path}: {exc}")
