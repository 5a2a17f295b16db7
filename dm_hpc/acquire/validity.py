"""Which proposed compositions are new and valid for their class (``dm-hpc design``).

- *Known*: a composition within ``tol`` (largest atomic-fraction difference) of one in the store
  is a material already made or computed; it is reported apart with its measured values, never
  ranked as a new candidate.
- *Charge balance*: for ionic compounds (halides, oxides, chalcogenides) a candidate must be an
  integer formula of a few atoms with at least one charge-balanced assignment of common
  oxidation states (pymatgen's ``Composition.oxi_state_guesses``). The rule applies only when
  the store's own compositions are mostly balanced, so metallic alloys are not judged by it.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from math import gcd

import numpy as np

#: largest atom count of a candidate formula unit (CdI2: 3, Y2O3: 5, Cu2ZnSnS4: 8)
MAX_FORMULA_ATOMS = 8
#: largest atomic-fraction difference at which a candidate is the store's composition
KNOWN_TOLERANCE = 0.02
#: share of the store's compositions with a balanced guess above which the rule applies
IONIC_SHARE = 0.5


def integer_formulas(fractions: np.ndarray, max_atoms: int = MAX_FORMULA_ATOMS) -> np.ndarray:
    """``n x E`` atomic fractions -> ``n x E`` integer atom counts of the nearest formula unit.

    For each row the unit of ``2..max_atoms`` atoms whose rounded counts are closest (largest
    fraction difference) wins, smaller units first on ties; every element present keeps at
    least one atom. Rows of zeros stay zero.
    """
    fractions = np.asarray(fractions, float)
    present = fractions > 0
    best = np.zeros(fractions.shape, dtype=int)
    best_err = np.full(len(fractions), np.inf)
    for atoms in range(1, max_atoms + 1):
        counts = np.where(present, np.maximum(np.rint(fractions * atoms), 1), 0).astype(int)
        total = counts.sum(1, keepdims=True)
        err = np.abs(counts / np.maximum(total, 1) - fractions).max(1) if fractions.size else best_err
        better = err < best_err - 1e-12
        best[better], best_err[better] = counts[better], err[better]
    return best


def formula(counts: Sequence[int], elements: Sequence[str]) -> str:
    """Reduced formula of integer counts, elements in the given order (``CdI2``, ``Y2O3``)."""
    nz = [(e, int(c)) for e, c in zip(elements, counts) if c > 0]
    g = 0
    for _, c in nz:
        g = gcd(g, c)
    return "".join(f"{e}{c // g if c // g > 1 else ''}" for e, c in nz)


@lru_cache(maxsize=65536)
def charge_balanced(reduced_formula: str) -> bool:
    """Whether a formula has a charge-balanced guess of common oxidation states.

    The same question as ``bool(Composition.oxi_state_guesses(max_sites=-1))``, with the same
    states per element (its ICSD states, else its common ones) and mixed valence allowed, but
    asked of the set of reachable charge sums instead of every combination of them: pymatgen
    enumerates the product of each element's possible sums to rank the guesses, which on an alloy
    of 13 elements (a steel's 24-atom formula unit) takes seconds to minutes per formula, and
    ``design`` asks it of every distinct composition in the store. One element alone is neutral by
    definition (an elemental solid).
    """
    from pymatgen.core import Composition, Element

    comp = Composition(reduced_formula)
    if len(comp.elements) <= 1:
        return True
    amounts = comp.reduced_composition.get_el_amt_dict()
    if any(a != int(a) for a in amounts.values()):  # as pymatgen: a formula unit has whole atoms
        raise ValueError(f"charge balance needs whole atom counts: {reduced_formula}")
    reachable = {0}
    for symbol, amount in amounts.items():
        el = Element(symbol)
        states = set(el.icsd_oxidation_states or el.common_oxidation_states)
        sums = {0}  # charges ``amount`` atoms of this element can carry together
        for _ in range(int(amount)):
            sums = {s + o for s in sums for o in states}
        reachable = {r + s for r in reachable for s in sums}
    return 0 in reachable


def mostly_balanced(formulas: Sequence[str], share: float = IONIC_SHARE) -> bool:
    """Whether more than ``share`` of the (distinct, multi-element) formulas are charge-balanced."""
    from pymatgen.core import Composition

    multi = sorted({f for f in formulas if len(Composition(f).elements) > 1})
    if not multi:
        return False
    return sum(charge_balanced(f) for f in multi) > share * len(multi)


def known_index(fraction: np.ndarray, store_fractions: np.ndarray, tol: float = KNOWN_TOLERANCE) -> int:
    """Row of the store composition within ``tol`` of ``fraction`` (``E``), or -1 if none."""
    if not len(store_fractions):
        return -1
    diff = np.abs(store_fractions - fraction[None, :]).max(1)
    i = int(np.argmin(diff))
    return i if diff[i] < tol else -1
