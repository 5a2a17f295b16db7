"""A simulated cluster and lab for the real campaign manager (no calculator runs).

``EmulatedCluster`` plays a batch system that outlives managers (as Slurm does): jobs take a
few polls, then write ``result.json`` from a seeded synthetic function of the cell (or fail,
typed or by exit code). It can kill the manager at a chosen transition: ``Killed`` is raised
from ``submit`` (before or after the job reached the queue) or ``poll``, between two journal
writes, which is where a ``kill -9`` leaves a real manager. ``EmulatedLab`` fills lab sheets
from a seeded synthetic table, in any order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dm_hpc.compute import CalcFailure, CalcResult, FailureKind, read_task, write_result
from dm_hpc.compute.structures import atom_counts
from dm_hpc.data import PropertyValue
from dm_hpc.runners.spec import Outcome, TaskSpec
from dm_hpc.runners.states import JobState


class Killed(BaseException):
    """The manager process died here (BaseException: nothing in the manager catches it)."""


def synthetic(composition: dict[str, float], seed: int, offset: float = 0.0) -> float:
    """A smooth seeded function of the composition (eV/atom): linear + pairwise terms."""
    rng = np.random.default_rng(seed)
    els = sorted(["Cu", "Ni", "Pd", "Ag", "Au", "Al", "Pt"])
    lin = dict(zip(els, rng.normal(0, 0.05, len(els))))
    pair = rng.normal(0, 0.1, (len(els), len(els)))
    x = np.array([composition.get(e, 0.0) for e in els])
    return float(sum(lin[e] * composition.get(e, 0.0) for e in els) + x @ pair @ x * 0.5 + offset)


@dataclass
class _Job:
    spec: TaskSpec
    polls_left: int
    fate: str  # ok | typed | crash
    attempts: int = 1


@dataclass
class EmulatedCluster:
    """Jobs that survive manager lives; failures at ``fail_rate``; a kill at call ``kill_at``."""

    seed: int
    fail_rate: float = 0.0
    kill_at: int | None = None
    kill_after_queueing: bool = False
    calls: int = 0
    jobs: dict[str, _Job] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)  # every submission, in order
    rng: np.random.Generator = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def _tick(self) -> None:
        self.calls += 1
        if self.kill_at is not None and self.calls >= self.kill_at:
            self.kill_at = None
            raise Killed()

    # -- the runner protocol the manager uses ------------------------------------------------
    def submit(self, specs: list[TaskSpec]) -> list[str]:
        if not self.kill_after_queueing:
            self._tick()
        for spec in specs:
            if spec.task_id in self.jobs:
                raise ValueError(f"task {spec.task_id!r} is already in flight")
            fate = "ok"
            if self.rng.random() < self.fail_rate:
                fate = "typed" if self.rng.random() < 0.5 else "crash"
            self.jobs[spec.task_id] = _Job(spec, int(self.rng.integers(0, 4)), fate)
            self.submitted.append(spec.task_id)
        if self.kill_after_queueing:
            self._tick()
        return [s.task_id for s in specs]

    def poll(self) -> list[Outcome]:
        self._tick()
        out = []
        for task_id, job in list(self.jobs.items()):
            if job.polls_left > 0:
                job.polls_left -= 1
                continue
            del self.jobs[task_id]
            out.append(self._finish(job))
        return out

    def _finish(self, job: _Job) -> Outcome:
        workdir = Path(job.spec.workdir)
        task = read_task(workdir / "task.json")
        if job.fate == "crash":
            return Outcome(job.spec.task_id, JobState.FAILED, 1, f"emu-{job.spec.task_id}", job.attempts, workdir,
                           stderr_tail="Segmentation fault (emulated)", started=0.0, ended=1.0)
        if job.fate == "typed":
            write_result(workdir, CalcFailure(kind=FailureKind.scf_not_converged, reason="emulated",
                                              method=task.method, composition=task.composition))
        else:
            counts = atom_counts(task.composition, 4)
            cell = {el: c / 4 for el, c in counts.items() if c}
            props = [PropertyValue(name=p, value=synthetic(cell, self.seed)) for p in task.properties]
            write_result(workdir, CalcResult(
                method=task.method, fidelity="emulated", code="synthetic", code_version="0", composition=task.composition,
                cell_composition=cell, properties=props, settings=dict(task.settings), input_hash=job.spec.task_id,
                seed=task.seed, lattice="fcc", n_atoms=4, structure={}, energy_total_ev=0.0, relax_steps=0,
                task_id=job.spec.task_id, campaign=task.campaign, host="emulated", cores=1, wall_time_s=1.0))
        return Outcome(job.spec.task_id, JobState.COMPLETED, 0, f"emu-{job.spec.task_id}", job.attempts, workdir,
                       started=0.0, ended=1.0)

    def reattach(self, campaign: str) -> list[str]:
        return [t for t, j in self.jobs.items() if j.spec.campaign == campaign]

    def in_flight(self) -> int:
        return len(self.jobs)

    def close(self) -> None:
        """Jobs outlive the manager, as on a batch system."""


def fill_lab_sheet(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The lab's answer to a suggestion sheet: each sample measured (synthetic, offset)."""
    filled = table.copy()
    comp_cols = [c for c in filled.columns if c.startswith("composition:")]
    prop_cols = [c for c in filled.columns if c.startswith("property:")]
    for i, row in filled.iterrows():
        comp = {c.split(":")[1].split(" ")[0]: float(row[c]) for c in comp_cols if row[c] and row[c] > 0}
        for col in prop_cols:
            filled.loc[i, col] = synthetic(comp, seed, offset=0.02)
    # the emulated lab knows its values are right: far from the model they are confirmed, not held
    filled["confirm"] = "yes"
    return filled
