"""composition -> structure -> relax -> static -> properties, for any registered method.

:func:`calculate` never raises for a calculation that goes wrong: it returns a typed
:class:`CalcFailure`. The steps are separate functions so the jobflow Makers in ``workflows/``
run exactly the same code, one job per step.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from ase import Atoms

from dm_hpc.compute.backends import Backend, Relaxed, backend_for
from dm_hpc.compute.descriptors import ANALYTIC_PROPERTIES, analytic_properties
from dm_hpc.compute.failures import CalcError, CalcFailure, FailureKind, tail_text
from dm_hpc.compute.methods import (
    CALCULATED_PROPERTIES,
    Method,
    UnknownMethodError,
    get_method,
    round_sig,
    settings_hash,
)
from dm_hpc.compute.results import CalcResult
from dm_hpc.compute.structures import (
    StructureError, StructurePlan, build_structure, cubic_lattice_parameter, element_structure,
    ground_state_lattice,
)
from dm_hpc.data import Composition, CompositionError, PropertyValue, atomic_mass

#: What a calculation derives unless told otherwise (bulk modulus costs eos_points statics).
DEFAULT_PROPERTIES = tuple(p for p in CALCULATED_PROPERTIES if p != "bulk_modulus") + ANALYTIC_PROPERTIES
#: Settings that shape the alloy cell only; an elemental reference does not depend on them.
_STRUCTURE_KEYS = ("lattice", "n_atoms", "composition_tolerance", "eos_points", "eos_strain", "round_digits",
                   "mpi_launcher")
_AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660


# --------------------------------------------------------------------------- steps
def relax_structure(backend: Backend, atoms: Atoms, settings: Mapping[str, Any], workdir: Path, cores: int) -> Relaxed:
    """Relax positions and cell; with a separate static energy at the end unless the code's
    relaxation already ends with one (plane-wave basis reset at the final cell)."""
    relaxed = backend.relax(atoms, settings, workdir / "relax", cores)
    if not backend.relax_ends_with_static:
        relaxed.energy = backend.static(relaxed.atoms, settings, workdir / "static", cores)
    return relaxed


def reference_cache_dir() -> Path:
    """Where elemental reference energies are kept between processes (``DM_HPC_CACHE``)."""
    base = os.environ.get("DM_HPC_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dm-hpc")
    return Path(base) / "references"


_REFERENCE_MEMO: dict[str, float] = {}


def reference_energy(method: Method, element: str, settings: Mapping[str, Any], workdir: Path,
                     cores: int = 1, cache_dir: Path | None = None) -> float:
    """Energy per atom (eV/atom) of ``element`` in its relaxed ground-state lattice, with the
    same method and settings as the alloy; cached in memory and on disk by a settings hash."""
    key, cache_file = _reference_key(method, element, settings, cache_dir)
    if key in _REFERENCE_MEMO:
        return _REFERENCE_MEMO[key]
    try:
        value = float(json.loads(cache_file.read_text())["energy_per_atom"])
    except (OSError, ValueError, KeyError):
        atoms = element_structure(element, settings)
        relaxed = relax_structure(backend_for(method), atoms, settings, workdir / f"ref-{element}", cores)
        value = relaxed.energy / len(relaxed.atoms)
        _store_reference(method, element, settings, value, cache_dir)
    _REFERENCE_MEMO[key] = value
    return value


def _reference_key(method: Method, element: str, settings: Mapping[str, Any],
                   cache_dir: Path | None) -> tuple[str, Path]:
    ref_settings = {k: v for k, v in settings.items() if k not in _STRUCTURE_KEYS}
    key = settings_hash({"method": method.name, "code": method.code, "element": element, "settings": ref_settings})
    return key, (cache_dir or reference_cache_dir()) / f"{method.name}-{element}-{key}.json"


def _store_reference(method: Method, element: str, settings: Mapping[str, Any], value: float,
                     cache_dir: Path | None) -> None:
    key, cache_file = _reference_key(method, element, settings, cache_dir)
    _REFERENCE_MEMO[key] = value
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"element": element, "method": method.name, "energy_per_atom": value}))
        os.replace(tmp, cache_file)  # concurrent workers: last writer wins, readers see whole files
    except OSError:
        pass  # a read-only cache only costs recomputation


def bulk_modulus(backend: Backend, atoms: Atoms, settings: Mapping[str, Any], workdir: Path, cores: int) -> float:
    """Bulk modulus in GPa from a Birch-Murnaghan fit of static energies at uniformly strained cells."""
    import numpy as np
    from ase.eos import EquationOfState
    from ase.units import GPa

    strains = np.linspace(-float(settings["eos_strain"]), float(settings["eos_strain"]), int(settings["eos_points"]))
    volumes, energies = [], []
    for i, s in enumerate(strains):
        strained = atoms.copy()
        strained.set_cell(atoms.cell * (1 + s), scale_atoms=True)
        volumes.append(strained.get_volume())
        energies.append(backend.static(strained, settings, workdir / f"eos-{i}", cores))
    _, _, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    return float(b / GPa)


def derive_properties(method: Method, relaxed: Relaxed, plan: StructurePlan, settings: Mapping[str, Any],
                      names: Sequence[str], workdir: Path, cores: int,
                      cache_dir: Path | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Properties (canonical units) of a relaxed cell, and the reference energies used."""
    atoms = relaxed.atoms
    n = len(atoms)
    cell_comp = plan.cell_composition
    volume = atoms.get_volume() / n
    out: dict[str, float] = {}
    refs: dict[str, float] = {}
    if "energy_per_atom" in names:
        out["energy_per_atom"] = relaxed.energy / n
    if plan.n_atoms == 1 and plan.lattice == ground_state_lattice(cell_comp.elements[0]):
        # an elemental calculation in the reference cell *is* the reference: never compute it twice
        _store_reference(method, cell_comp.elements[0], settings, relaxed.energy / n, cache_dir)
    if "mixing_energy" in names:
        refs = {el: reference_energy(method, el, settings, workdir, cores, cache_dir) for el in cell_comp.elements}
        out["mixing_energy"] = relaxed.energy / n - sum(x * refs[el] for el, x in cell_comp.fractions.items())
    if "lattice_parameter" in names:
        out["lattice_parameter"] = cubic_lattice_parameter(volume, plan.lattice)
    if "volume_per_atom" in names:
        out["volume_per_atom"] = volume
    if "density" in names:
        mass = sum(atomic_mass(s) for s in atoms.get_chemical_symbols())
        out["density"] = mass / atoms.get_volume() * _AMU_PER_A3_TO_G_PER_CM3
    if "bulk_modulus" in names:
        out["bulk_modulus"] = bulk_modulus(backend_for(method), atoms, settings, workdir / "eos", cores)
    out.update(analytic_properties(cell_comp, [p for p in names if p in ANALYTIC_PROPERTIES]))
    return out, refs


def structure_dict(atoms: Atoms) -> dict[str, Any]:
    """pymatgen ``Structure.as_dict()`` of ``atoms`` (the form atomate2 and Materials Project use)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_structure(atoms).as_dict()


# --------------------------------------------------------------------------- the whole recipe
def _validate(composition: Any, method: str | Method, settings: Mapping[str, Any] | None,
              properties: Sequence[str] | None) -> tuple[Composition, Method, dict[str, Any], tuple[str, ...]]:
    try:
        comp = composition if isinstance(composition, Composition) else Composition(composition)
    except (CompositionError, ValueError) as exc:
        raise CalcError(FailureKind.invalid_task, f"bad composition {composition!r}: {exc}") from None
    try:
        m = method if isinstance(method, Method) else get_method(method)
    except UnknownMethodError as exc:
        raise CalcError(FailureKind.invalid_task, str(exc.args[0])) from None
    try:
        merged = m.merged_settings(settings)
    except ValueError as exc:
        raise CalcError(FailureKind.invalid_task, str(exc)) from None
    names = tuple(properties) if properties is not None else DEFAULT_PROPERTIES
    unknown = [p for p in names if p not in CALCULATED_PROPERTIES + ANALYTIC_PROPERTIES]
    if unknown:
        raise CalcError(FailureKind.invalid_task, f"cannot derive {', '.join(unknown)} "
                        f"(known: {', '.join(CALCULATED_PROPERTIES + ANALYTIC_PROPERTIES)})")
    return comp, m, merged, names


#: Settings that say how to run, not what to compute: a site's MPI launcher must not change ids.
_EXECUTION_KEYS = ("mpi_launcher",)


def input_hash(method: Method, composition: Composition, settings: Mapping[str, Any], seed: int) -> str:
    """Hash of what determines the result: method, code, settings (resolved), composition, seed."""
    physics = {k: v for k, v in settings.items() if k not in _EXECUTION_KEYS}
    return settings_hash({"method": method.name, "code": method.code, "settings": physics,
                          "composition": composition.fractions, "seed": int(seed)})


def calculate(composition: Composition | Mapping[str, float] | str, method: str | Method = "emt",
              settings: Mapping[str, Any] | None = None, properties: Sequence[str] | None = None,
              seed: int = 0, workdir: str | Path | None = None, cores: int = 1,
              task_id: str | None = None, campaign: str | None = None,
              reference_cache: Path | None = None) -> CalcResult | CalcFailure:
    """Run the full recipe for ``composition`` with ``method``; a result or a typed failure.

    ``settings`` override the method's defaults (``configs/calculators.yaml``); ``properties``
    are vocabulary names (default :data:`DEFAULT_PROPERTIES`); ``seed`` fixes the site
    occupation; ``workdir`` receives the codes' files (a temporary folder when None); ``cores``
    is the MPI rank count handed to the code. Same inputs -> same properties (8 significant
    digits) -> same record id.
    """
    start = time.perf_counter()
    host = socket.gethostname()
    context: dict[str, Any] = {"task_id": task_id, "campaign": campaign, "host": host}
    try:
        comp, m, merged, names = _validate(composition, method, settings, properties)
        context.update(method=m.name, composition=comp.fractions)
        missing = m.unsupported(comp, merged)
        if missing:
            # a QE element without a pseudopotential in the map is a missing pseudopotential
            kind = (FailureKind.missing_pseudopotential if m.element_rule == "pseudopotentials"
                    else FailureKind.unsupported_element)
            what = "has no pseudopotential for" if kind is FailureKind.missing_pseudopotential else "does not support"
            raise CalcError(kind,
                            f"method {m.name} {what} {', '.join(missing)} "
                            f"(supported: {', '.join(sorted(m.elements_for(merged)))})")
        backend = backend_for(m)
        why = backend.unavailable_reason()
        if why:
            raise CalcError(FailureKind.code_unavailable, why)
        backend.preflight(comp.elements, merged)
        try:
            atoms, plan = build_structure(comp, merged, seed)
        except StructureError as exc:
            raise CalcError(FailureKind.invalid_task, str(exc)) from None
        resolved = {**merged, "lattice": plan.lattice, "n_atoms": plan.n_atoms}
        context["input_hash"] = ihash = input_hash(m, comp, resolved, seed)
        with (nullcontext(workdir) if workdir is not None else tempfile.TemporaryDirectory(prefix="dm-calc-")) as wd:
            wd = Path(wd)
            relaxed = relax_structure(backend, atoms, resolved, wd, cores)
            values, refs = derive_properties(m, relaxed, plan, resolved, names, wd, cores, reference_cache)
        digits = int(resolved.get("round_digits", 8))
        props = [PropertyValue(name=k, value=round_sig(v, digits)) for k, v in values.items()]
        return CalcResult(
            method=m.name, fidelity=m.fidelity, code=m.code, code_version=backend.version(),
            composition=comp.fractions, cell_composition=plan.cell_composition.fractions,
            properties=props, settings=resolved, input_hash=ihash, seed=seed, lattice=plan.lattice,
            n_atoms=plan.n_atoms, structure=structure_dict(relaxed.atoms),
            energy_total_ev=round_sig(relaxed.energy, 12), relax_steps=relaxed.steps,
            references_ev_per_atom={k: round_sig(v, 12) for k, v in refs.items()},
            task_id=task_id, campaign=campaign, host=host, cores=cores,
            wall_time_s=round(time.perf_counter() - start, 3),
        )
    except CalcError as exc:
        return CalcFailure(kind=exc.kind, reason=exc.reason, output_tail=exc.output_tail,
                           wall_time_s=round(time.perf_counter() - start, 3), **context)
    except Exception as exc:  # a bug, not a calculation outcome: still data, with the traceback
        return CalcFailure(kind=FailureKind.internal_error, reason=f"{type(exc).__name__}: {exc}",
                           output_tail=tail_text(traceback.format_exc()),
                           wall_time_s=round(time.perf_counter() - start, 3), **context)
