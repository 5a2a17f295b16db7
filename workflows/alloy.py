"""Makers for an alloy composition: build a cell, relax it, run a static, derive properties.

Structures travel between jobs as pymatgen ``Structure`` objects (MSONable); energies in eV.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobflow import Flow, Maker, job

from dm_hpc.compute.backends import Relaxed, backend_for
from dm_hpc.compute.calculation import DEFAULT_PROPERTIES, derive_properties
from dm_hpc.compute.failures import CalcError
from dm_hpc.compute.methods import get_method, round_sig
from dm_hpc.compute.structures import StructurePlan, build_structure
from dm_hpc.data import Composition


def _to_atoms(structure):
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_atoms(structure)


def _to_structure(atoms):
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_structure(atoms)


def _workdir(workdir: str | None) -> Path:
    return Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dm-flow-"))


def _settings(method: str, settings: dict[str, Any]) -> dict[str, Any]:
    return get_method(method).merged_settings(settings)


@dataclass
class AlloyStructureMaker(Maker):
    """fcc/bcc supercell with a seeded random occupation (``dm_hpc.compute.build_structure``)."""

    name: str = "alloy structure"
    method: str = "emt"
    settings: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @job
    def make(self, composition: dict[str, float]) -> dict[str, Any]:
        atoms, plan = build_structure(Composition(composition), _settings(self.method, self.settings), self.seed)
        return {"structure": _to_structure(atoms), "lattice": plan.lattice, "n_atoms": plan.n_atoms,
                "a_guess": plan.a_guess, "counts": plan.counts}


def _step(kind: str, method: str, settings: dict[str, Any], structure, workdir: str | None, cores: int):
    """Run the backend's ``relax`` or ``static`` on ``structure`` in ``workdir/kind``."""
    backend = backend_for(get_method(method))
    try:
        return getattr(backend, kind)(_to_atoms(structure), _settings(method, settings),
                                      _workdir(workdir) / kind, cores)
    except CalcError as exc:  # a failed job that says why (jobflow records the message)
        raise RuntimeError(f"{exc.kind.value}: {exc.reason}\n{exc.output_tail}") from None


@dataclass
class CalculatorStepMaker(Maker):
    """What every calculator step shares: ``method`` (settings override configs/calculators.yaml),
    the folder the step runs in (a fresh temporary one when None) and the cores it may use.
    Subclasses name the step and say what ``make`` returns (atomate2's base-Maker habit)."""

    name: str = "calculator step"
    method: str = "emt"
    settings: dict[str, Any] = field(default_factory=dict)
    workdir: str | None = None
    cores: int = 1


@dataclass
class RelaxMaker(CalculatorStepMaker):
    """Relax positions and cell with ``method``."""

    name: str = "relax"

    @job
    def make(self, structure) -> dict[str, Any]:
        relaxed = _step("relax", self.method, self.settings, structure, self.workdir, self.cores)
        return {"structure": _to_structure(relaxed.atoms), "energy": relaxed.energy, "steps": relaxed.steps}


@dataclass
class StaticMaker(CalculatorStepMaker):
    """Total energy (eV) of a structure with ``method``: a fresh basis at the final cell."""

    name: str = "static"

    @job
    def make(self, structure) -> dict[str, Any]:
        energy = _step("static", self.method, self.settings, structure, self.workdir, self.cores)
        return {"structure": structure, "energy": energy}


@dataclass
class PropertiesMaker(CalculatorStepMaker):
    """Energy per atom, mixing energy (references with the same method and settings, cached),
    lattice parameter, volume, density, optional bulk modulus, and the analytic descriptors."""

    name: str = "properties"
    properties: tuple[str, ...] = DEFAULT_PROPERTIES

    @job
    def make(self, cell: dict[str, Any], static: dict[str, Any], steps: int = 0) -> dict[str, Any]:
        m = get_method(self.method)
        settings = {**_settings(self.method, self.settings), "lattice": cell["lattice"], "n_atoms": cell["n_atoms"]}
        plan = StructurePlan(cell["lattice"], cell["n_atoms"], cell["a_guess"], dict(cell["counts"]))
        relaxed = Relaxed(_to_atoms(static["structure"]), static["energy"], steps)
        values, refs = derive_properties(m, relaxed, plan, settings, list(self.properties),
                                         _workdir(self.workdir), self.cores)
        digits = int(settings.get("round_digits", 8))
        return {"properties": {k: round_sig(v, digits) for k, v in values.items()},
                "references_ev_per_atom": refs, "method": m.name, "fidelity": m.fidelity}


@dataclass
class AlloyPropertiesMaker(Maker):
    """The whole recipe as a Flow: structure -> relax -> static -> properties.

    The steps are sub-Makers (atomate2's habit): left None, each is the recipe's own with this
    Maker's ``method``, ``settings``, ``workdir`` and ``cores``; given, it is used as it is, so a
    step is swapped without subclassing — e.g. ``relax_maker=RelaxMaker(method="chgnet")`` for a
    cheap pre-relaxation before a DFT static, or any other jobflow Maker whose ``make(structure)``
    returns ``{"structure", "energy", "steps"}`` (relax) or ``{"structure", "energy"}`` (static).
    """

    name: str = "alloy properties"
    method: str = "emt"
    settings: dict[str, Any] = field(default_factory=dict)
    properties: tuple[str, ...] = DEFAULT_PROPERTIES
    seed: int = 0
    workdir: str | None = None
    cores: int = 1
    structure_maker: Maker | None = None
    relax_maker: Maker | None = None
    static_maker: Maker | None = None
    properties_maker: Maker | None = None

    def make(self, composition: dict[str, float] | str) -> Flow:
        fractions = Composition(composition).fractions
        common = {"method": self.method, "settings": dict(self.settings)}
        run = {"workdir": self.workdir, "cores": self.cores}
        cell = (self.structure_maker or AlloyStructureMaker(seed=self.seed, **common)).make(fractions)
        relax = (self.relax_maker or RelaxMaker(**common, **run)).make(cell.output["structure"])
        static = (self.static_maker or StaticMaker(**common, **run)).make(relax.output["structure"])
        props = (self.properties_maker or PropertiesMaker(properties=tuple(self.properties), **common, **run)).make(
            cell.output, static.output, relax.output["steps"])
        return Flow([cell, relax, static, props], output=props.output, name=self.name)
