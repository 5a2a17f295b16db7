"""Composition -> crystal structure: an fcc or bcc supercell with a seeded random occupation.

The lattice parameter is guessed from the elements' ground-state volumes (Vegard's law on the
volume per atom, from ASE's reference states); the relaxation then finds the real one.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii, reference_states

from dm_hpc.data import Composition

#: Cell sizes (atoms) per lattice: primitive cell, conventional cube, then n x n x n cubes.
CELL_SIZES = {"fcc": (1, 4, 32, 108, 256), "bcc": (1, 2, 16, 54, 128)}
_ATOMS_PER_CUBE = {"fcc": 4, "bcc": 2}


class StructureError(ValueError):
    """A composition that cannot be placed on the requested cell."""


def reference_volume(element: str) -> float:
    """Ground-state volume per atom of ``element`` in angstrom**3 (ASE's reference states)."""
    ref = reference_states[atomic_numbers[element]] or {}
    sym, a = ref.get("symmetry"), ref.get("a")
    if sym == "fcc":
        return a**3 / 4
    if sym == "bcc":
        return a**3 / 2
    if sym == "hcp":
        return math.sqrt(3) / 4 * a**2 * a * ref.get("c/a", math.sqrt(8 / 3))
    if sym == "diamond":
        return a**3 / 8
    # anything else: a close-packed sphere of the covalent radius (packing fraction 0.74)
    r = covalent_radii[atomic_numbers[element]]
    return 4 / 3 * math.pi * r**3 / 0.74


def cell_count(n: Any) -> Any:
    """A settings' ``n_atoms`` as an int where it is a whole number (16, 16.0, "16"), else as given
    (text, an infinite count: the caller names it as no cell size)."""
    try:
        return int(n) if float(n) == int(float(n)) else n
    except (TypeError, ValueError, OverflowError):
        return n


def ground_state_lattice(element: str) -> str:
    """'fcc' or 'bcc' for ``element``: bcc where ASE's reference state is bcc, else fcc."""
    ref = reference_states[atomic_numbers[element]] or {}
    return "bcc" if ref.get("symmetry") == "bcc" else "fcc"


def choose_lattice(composition: Composition) -> str:
    """The lattice most of the composition (by atomic fraction) prefers; fcc on a tie."""
    bcc = sum(x for el, x in composition.fractions.items() if ground_state_lattice(el) == "bcc")
    return "bcc" if bcc > 0.5 else "fcc"


def lattice_guess(composition: Composition, lattice: str) -> float:
    """Cubic lattice parameter in angstrom from the mean volume per atom (Vegard's law)."""
    volume = sum(x * reference_volume(el) for el, x in composition.fractions.items())
    return float((_ATOMS_PER_CUBE[lattice] * volume) ** (1 / 3))


def atom_counts(fractions: Mapping[str, float], n_atoms: int) -> dict[str, int]:
    """Integer atom counts for ``n_atoms`` sites (largest remainder; ties broken by name)."""
    counts = bounded_counts(fractions, n_atoms, {})
    assert counts is not None  # without bounds every element has room from 0 to n_atoms
    return counts


def step_range(low: float, high: float, n: int) -> tuple[int, int]:
    """The counts of ``n`` steps a fraction bound ``[low, high]`` allows, rounded inward
    (``ceil(low n)``, ``floor(high n)``, forgiving float error): empty when the first exceeds the
    second. The one rule for a lab's steps, used to make a point and to validate the space."""
    eps = 1e-9
    return math.ceil(low * n - eps), math.floor(high * n + eps)


def bounded_counts(fractions: Mapping[str, float], n: int, bounds: Mapping[str, tuple[float, float]]
                   ) -> dict[str, int] | None:
    """Counts of ``n`` steps (sites of a cell, or a lab's weighing steps; summing to ``n``) nearest
    ``n x fraction`` by largest remainder (ties broken by name), each within its element's bounds
    rounded inward to the step (``[ceil(lo n), floor(hi n)]``; an element the proposal lacks and the
    bounds do not require stays absent); None when no counts fit. Plain rounding took Au at most
    0.35 to 0.5 at a step of 0.5 (a sheet outside the space), and a refusal of every such point
    threw away most draws on a bound (the sampler and the optimiser put many there): a proposal on
    a bound is made at the nearest step inside it."""
    eps = 1e-9
    names = sorted(set(fractions) | {el for el, (lo, _) in bounds.items() if lo > 0})
    raw = {el: fractions.get(el, 0.0) * n for el in names}
    steps = {el: step_range(*bounds.get(el, (0.0, 1.0)), n) for el in names}
    low = {el: steps[el][0] for el in names}
    high = {el: steps[el][1] if raw[el] > 0 or low[el] > 0 else 0 for el in names}
    if any(low[el] > high[el] for el in names):
        return None
    counts = {el: min(max(math.floor(raw[el] + eps), low[el]), high[el]) for el in names}
    left = n - sum(counts.values())
    while left:
        up = left > 0  # add to the largest remainder with room, or take from the most over
        room = [el for el in names if (counts[el] < high[el] if up else counts[el] > low[el])]
        if not room:
            return None
        el = min(room, key=lambda e: (-(raw[e] - counts[e] if up else counts[e] - raw[e]), e))
        counts[el] += 1 if up else -1
        left += -1 if up else 1
    return counts


def _fits(fractions: Mapping[str, float], counts: Mapping[str, int], n: int, tol: float) -> bool:
    return all(counts[el] >= 1 and abs(counts[el] / n - x) <= tol for el, x in fractions.items())


def choose_n_atoms(composition: Composition, lattice: str, tolerance: float) -> int:
    """Smallest cell of ``lattice`` whose atom counts match the composition within ``tolerance``
    (largest cell when none does)."""
    sizes = CELL_SIZES[lattice]
    for n in sizes:
        if _fits(composition.fractions, atom_counts(composition.fractions, n), n, tolerance):
            return n
    return sizes[-1]


@dataclass(frozen=True)
class StructurePlan:
    """What ``build_structure`` made: lattice, cell size and the cell's own composition."""

    lattice: str
    n_atoms: int
    a_guess: float
    counts: dict[str, int]

    @property
    def cell_composition(self) -> Composition:
        return Composition(dict(self.counts))


def plan_structure(composition: Composition, settings: Mapping[str, Any]) -> StructurePlan:
    """Resolve ``lattice: auto`` and ``n_atoms: auto`` to concrete values for ``composition``."""
    lattice = str(settings.get("lattice", "auto"))
    if lattice == "auto":
        lattice = choose_lattice(composition)
    if lattice not in CELL_SIZES:
        raise StructureError(f"lattice must be fcc, bcc or auto, not {lattice!r}")
    n = settings.get("n_atoms", "auto")
    if n == "auto":
        n = choose_n_atoms(composition, lattice, float(settings.get("composition_tolerance", 0.02)))
    n = cell_count(n)
    if n not in CELL_SIZES[lattice]:
        raise StructureError(f"n_atoms for {lattice} must be one of {CELL_SIZES[lattice]}, not {n}")
    counts = atom_counts(composition.fractions, n)
    missing = [el for el, c in counts.items() if c == 0]
    if missing:
        larger = [k for k in CELL_SIZES[lattice] if k > n]
        raise StructureError(f"a {n}-atom cell has no site for {', '.join(missing)}; "
                             + (f"use a larger n_atoms ({', '.join(map(str, larger))})" if larger else
                                f"{n} atoms is the largest {lattice} cell, so fractions below about 1/{n} "
                                f"cannot be represented: raise {', '.join(missing)} or leave it out"))
    return StructurePlan(lattice, n, lattice_guess(composition, lattice), {k: v for k, v in counts.items() if v})


def build_structure(composition: Composition, settings: Mapping[str, Any], seed: int = 0) -> tuple[Atoms, StructurePlan]:
    """An fcc/bcc supercell holding ``composition``, sites occupied by a seeded random permutation.

    Same composition, settings and seed -> the same structure, atom for atom.
    """
    from ase.build import bulk  # here: preflight reads CELL_SIZES, and validate imports no ASE builder

    plan = plan_structure(composition, settings)
    if plan.n_atoms == 1:
        atoms = bulk("X", plan.lattice, a=plan.a_guess)
    else:
        cube = bulk("X", plan.lattice, a=plan.a_guess, cubic=True)
        reps = round((plan.n_atoms / _ATOMS_PER_CUBE[plan.lattice]) ** (1 / 3))
        atoms = cube.repeat((reps, reps, reps))
    symbols = [el for el, c in sorted(plan.counts.items()) for _ in range(c)]
    order = np.random.default_rng(seed).permutation(len(symbols))
    atoms.set_chemical_symbols([symbols[i] for i in order])
    return atoms, plan


def element_structure(element: str, settings: Mapping[str, Any]) -> Atoms:
    """The one-atom primitive cell of ``element`` in its preferred lattice (mixing-energy reference)."""
    from ase.build import bulk

    lattice = ground_state_lattice(element)
    comp = Composition({element: 1.0})
    return bulk(element, lattice, a=lattice_guess(comp, lattice))


def cubic_lattice_parameter(volume_per_atom: float, lattice: str) -> float:
    """Volume-equivalent cubic lattice parameter in angstrom (a sheared cell keeps its volume)."""
    return (_ATOMS_PER_CUBE[lattice] * volume_per_atom) ** (1 / 3)
