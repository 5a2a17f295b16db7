"""Bring your own Maker: a calculation fidelity run by any jobflow ``Maker`` (atomate2's or a site's).

A campaign fidelity names the Maker by import path, its keyword arguments, and where each
property sits in the output document::

    fidelities:
      - name: chgnet-relax
        kind: calculation
        method: chgnet              # the cell recipe (lattice, atoms per cell), elements and cost
        maker:
          maker: "atomate2.forcefields.jobs:ForceFieldRelaxMaker"
          kwargs: {force_field_name: CHGNet, relax_kwargs: {fmax: 0.05, steps: 200}}
          outputs:                  # property -> path in the output document (and its unit)
            energy_per_atom: {path: output.energy_per_atom, unit: eV/atom}
            volume_per_atom: {path: structure.lattice.volume, unit: angstrom**3, per_atom: true}

The worker builds the cell exactly as the built-in recipe does (``build_structure`` with the
method's settings and the task's seed), calls ``maker.make(structure)``, runs the Job or Flow
with ``jobflow.run_locally`` in the task's run folder, and reads the properties from the output
document (serialised to plain JSON first, so a path is keys and list indices joined by dots).
Values are converted to the vocabulary's canonical units. The result goes through the same
runners, journal and store as every calculation; its record says which Maker made it:
``provenance.method`` is ``record_method`` (``maker:<Class>@<method>``, so its records never mix
with the built-in recipe's), ``code`` the import path, ``code_version`` its package's version,
and ``provenance.extra["versions"]`` the versions of the Maker's package, jobflow and the
packages its keyword arguments name (e.g. chgnet).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import math
import re
import socket
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dm_hpc.compute.failures import CalcFailure, FailureKind

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


class OutputPath(BaseModel):
    """Where a property is in the output document, in which unit (default: the canonical one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    unit: str | None = None
    #: divide by the number of atoms of the cell first (a cell volume read as volume_per_atom);
    #: ``unit`` is then the unit of the value per atom
    per_atom: bool = False


class MakerSpec(BaseModel):
    """A jobflow Maker as a calculation: import path, keyword arguments, property paths."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    maker: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, OutputPath]
    #: path of the total energy (eV) and of the final structure in the output document (atomate2's)
    energy: str | None = "output.energy"
    structure: str | None = "structure"

    @field_validator("maker")
    @classmethod
    def _import_path(cls, v: str) -> str:
        if not _IMPORT_PATH.match(v):
            raise ValueError(f"maker must be 'package.module:ClassName', not {v!r}")
        return v

    @field_validator("outputs", mode="before")
    @classmethod
    def _plain_paths(cls, v: Any) -> Any:
        if isinstance(v, dict):  # `energy_per_atom: output.energy_per_atom` means the canonical unit
            return {k: {"path": p} if isinstance(p, str) else p for k, p in v.items()}
        return v

    @field_validator("outputs")
    @classmethod
    def _known_properties(cls, v: dict[str, OutputPath]) -> dict[str, OutputPath]:
        from dm_hpc.data import canonical_unit, to_canonical

        if not v:
            raise ValueError("outputs must name at least one property and its path")
        for name, out in v.items():
            canonical_unit(name)  # an unknown property is named by the vocabulary's error
            if out.unit is not None:
                to_canonical(name, 1.0, out.unit)  # a unit that does not convert is named here
        return v

    @property
    def class_name(self) -> str:
        return self.maker.rsplit(":", 1)[1]

    def record_method(self, method: str) -> str:
        """The ``provenance.method`` of this Maker's records (the cell recipe ``method`` included)."""
        return f"maker:{self.class_name}@{method}"


def load_maker(spec: MakerSpec):
    """The Maker instance ``spec`` names (raises ``ValueError`` that says what is wrong)."""
    module_name, class_name = spec.maker.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name} for maker {spec.maker}: {exc}") from None
    except AttributeError:
        raise ValueError(f"{module_name} has no {class_name} (maker {spec.maker})") from None
    from monty.json import MontyDecoder

    # kwargs are JSON; a dict with "@module"/"@class" is an object (e.g. a VASP input set generator)
    kwargs = MontyDecoder().process_decoded(dict(spec.kwargs))
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"maker {spec.maker}: bad keyword arguments {sorted(spec.kwargs)}: {exc}") from None


def versions(spec: MakerSpec) -> dict[str, str]:
    """Installed versions of the Maker's package, jobflow, and packages named in its kwargs.

    A kwargs string that is an installed distribution's name counts (``force_field_name:
    CHGNet`` -> chgnet): the force field's version is what decides its numbers.
    """
    names = {spec.maker.split(".")[0].split(":")[0], "jobflow"}
    names |= {str(v).lower() for v in spec.kwargs.values() if isinstance(v, str)}
    out = {}
    for name in sorted(names):
        try:
            out[name] = importlib.metadata.version(name)
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
    return out


def read_path(document: Any, path: str) -> Any:
    """``document["a"]["b"][0]`` for ``"a.b.0"`` (raises ``KeyError`` naming the missing step)."""
    node = document
    for i, step in enumerate(path.split(".")):
        if isinstance(node, list) and step.lstrip("-").isdigit() and -len(node) <= int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            have = sorted(node)[:12] if isinstance(node, dict) else type(node).__name__
            raise KeyError(f"no {step!r} at {'.'.join(path.split('.')[:i]) or 'the top'} of the output "
                           f"document (there: {have})")
    return node


#: Additional-store names atomate2's Makers write to (``additional_store`` in their task documents).
_EXTRA_STORES = ("data", "trajectory", "volumetric", "force_constants", "bandstructure", "dos")


def _output_document(job_or_flow, root: Path) -> dict[str, Any]:
    """Run ``job_or_flow`` locally in ``root`` and return its output as plain JSON."""
    from jobflow import JobStore, run_locally
    from maggma.stores import MemoryStore
    from monty.json import jsanitize

    # atomate2 puts large outputs (trajectories, volumetric data) in named extra stores; a store
    # must exist for each name or jobflow refuses the output. In memory: only the document is kept.
    store = JobStore(MemoryStore(), additional_stores={name: MemoryStore() for name in _EXTRA_STORES})
    root.mkdir(parents=True, exist_ok=True)
    run_locally(job_or_flow, store=store, root_dir=root, log=False, ensure_success=True, raise_immediately=True)
    output = job_or_flow.output.resolve(store=store)
    return jsanitize(output, strict=True, allow_bson=False, enum_values=True)


def run_maker(task, workdir: Path):
    """Run ``task`` (a ``CalcTask`` with ``maker``) and return a ``CalcResult`` or a typed failure."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from dm_hpc.compute.calculation import input_hash
    from dm_hpc.compute.methods import get_method, round_sig
    from dm_hpc.compute.results import CalcResult
    from dm_hpc.compute.structures import build_structure
    from dm_hpc.data import Composition, PropertyValue, to_canonical

    t0 = time.perf_counter()
    spec = MakerSpec.model_validate(task.maker)
    try:
        method = get_method(task.method)
        settings = method.merged_settings(task.settings)
        composition = Composition(task.composition)
        missing = method.unsupported(composition, settings)
        if missing:
            return CalcFailure(kind=FailureKind.unsupported_element,
                               reason=f"method {method.name} (the cell recipe) does not support {', '.join(missing)}")
        atoms, plan = build_structure(composition, settings, task.seed)  # StructureError is a ValueError
        maker = load_maker(spec)
    except (KeyError, ValueError) as exc:
        return CalcFailure(kind=FailureKind.invalid_task, reason=str(exc).strip('"'))
    structure = AseAtomsAdaptor.get_structure(atoms)
    settings = {**settings, "lattice": plan.lattice, "n_atoms": plan.n_atoms}
    try:
        document = _output_document(maker.make(structure), workdir / "maker")
    except Exception as exc:  # the Maker's own failure, whatever it is: a typed outcome with its words
        return CalcFailure(kind=FailureKind.code_died, reason=f"{spec.maker} failed: {type(exc).__name__}: {exc}"[:2000])
    try:
        values = {}
        for name, out in spec.outputs.items():
            value = float(read_path(document, out.path))
            if out.per_atom:
                value /= plan.n_atoms
            values[name] = to_canonical(name, value, out.unit)
        energy = float(read_path(document, spec.energy)) if spec.energy else math.nan
        final = read_path(document, spec.structure) if spec.structure else structure.as_dict()
    except (KeyError, TypeError, ValueError) as exc:
        return CalcFailure(kind=FailureKind.invalid_task, reason=f"maker {spec.maker}: {str(exc).strip(chr(34))}")
    physics = {**settings, "maker": spec.maker, "maker_kwargs": spec.kwargs}
    return CalcResult(
        method=spec.record_method(method.name), fidelity=method.fidelity, code=spec.maker,
        code_version=_own_version(spec), composition=composition.fractions,
        cell_composition=plan.cell_composition.fractions,
        # every mapped output is kept (the campaign file asked for each), not only the objectives
        properties=[PropertyValue(name=k, value=round_sig(v, 8)) for k, v in values.items()],
        settings=physics, input_hash=input_hash(method, composition, physics, task.seed), seed=task.seed,
        lattice=plan.lattice, n_atoms=plan.n_atoms, structure=final,
        energy_total_ev=energy if math.isfinite(energy) else None, relax_steps=0, task_id=task.task_id,
        campaign=task.campaign, host=socket.gethostname(), cores=task.cores,
        wall_time_s=round(time.perf_counter() - t0, 3), versions=versions(spec))


def _own_version(spec: MakerSpec) -> str:
    package = spec.maker.split(".")[0].split(":")[0]
    return versions(spec).get(package, "unknown")
