"""Element symbols and masses: the one list every part of dm-hpc validates against.

Taken from ASE's tables (``ase.data``), which are light to import, so the data layer needs
neither pymatgen nor a calculator to check a composition.
"""
from __future__ import annotations

from ase.data import atomic_masses, atomic_numbers, chemical_symbols

#: Real element symbols H..Og (ASE's index 0 is the placeholder "X").
ELEMENTS: tuple[str, ...] = tuple(chemical_symbols[1:119])
_ELEMENT_SET = frozenset(ELEMENTS)


def is_element(symbol: str) -> bool:
    """True when ``symbol`` is a chemical element symbol (case-sensitive, e.g. "Fe")."""
    return symbol in _ELEMENT_SET


#: lower-cased symbol -> symbol: a symbol typed in the wrong case (pt, PT) is one to suggest
_BY_LOWER = {el.lower(): el for el in ELEMENTS}


def meant_element(symbol: object) -> str | None:
    """The element symbol ``symbol`` spells but for letter case and spaces ('pt' -> 'Pt'), or None."""
    return _BY_LOWER.get(str(symbol).strip().lower())


def unknown_element(symbol: object) -> str:
    """What every refusal of a symbol that is no element says: the symbol, and the element it
    spells but for letter case ('pt' -> "unknown element 'pt' (did you mean 'Pt'?)")."""
    meant = meant_element(symbol)
    return f"unknown element {symbol!r}" + (f" (did you mean {meant!r}?)" if meant else "")


def atomic_number(symbol: str) -> int:
    """Atomic number Z of ``symbol`` (raises KeyError for an unknown symbol)."""
    if symbol not in _ELEMENT_SET:
        raise KeyError(unknown_element(symbol))
    return int(atomic_numbers[symbol])


def atomic_mass(symbol: str) -> float:
    """Standard atomic mass of ``symbol`` in g/mol."""
    return float(atomic_masses[atomic_number(symbol)])
