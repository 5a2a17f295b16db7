"""Property names and process parameters with their canonical units (``properties.yaml``).

The standard names are the default; a campaign may declare its own term (a property or a process
parameter with a unit and a physical range) with ``declare``. A declared term is checked by pint
(its unit must parse) and may not redefine a standard name; from then on it is a term like any
other in this process (records, sheets and the store carry its canonical unit).
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import yaml

from dm_hpc.data.units import affine, readable_unit


class UnitError(ValueError):
    """A value's unit is unknown or not convertible to the canonical unit."""


class UnknownPropertyError(KeyError, ValueError):
    """A property or process-parameter name that is not in the vocabulary: ``name``, its
    ``kind`` (property, process_parameter) and ``close``, the known name it probably meant (or
    None), so a caller can word the hint in its own terms (a sheet names the column it meant)."""

    def __init__(self, message: str, name: str | None = None, kind: str = "property", close: str | None = None):
        super().__init__(message)
        self.name, self.kind, self.close = name, kind, close

    def __str__(self) -> str:  # KeyError quotes its message; say it plainly
        return str(self.args[0])


class RangeError(ValueError):
    """A value outside the physical range of its vocabulary term (e.g. a negative density)."""


@dataclass(frozen=True)
class Term:
    """One vocabulary entry: a name, its canonical unit, a description and the physical range
    of its values in that unit (``positive``: > 0; ``minimum``/``maximum``: inclusive).

    ``classes``: tighter ``(minimum, maximum)`` for a material class (None: the general bound);
    ``hint``: what a value outside the range usually is, for the refusal message;
    ``computed_only``: derived from the composition (a cost, a descriptor), never asked of a lab.
    """

    name: str
    unit: str
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    classes: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    hint: str = ""
    computed_only: bool = False

    def __post_init__(self) -> None:
        # the canonical unit is shown to people (headers, reports) and stored: in the readable
        # form (g/cm^3, not pint's g/cm**3), which every unit reader takes as the same unit
        object.__setattr__(self, "unit", readable_unit(self.unit))

    def bounds(self, material_class: str | None = None) -> tuple[float, float]:
        """``(low, high)`` inclusive bounds in the canonical unit (-inf/inf when open), for
        ``material_class`` when the vocabulary gives it a tighter range."""
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        lo, hi = self.classes.get(material_class or "", (None, None))
        return (low if lo is None else max(low, lo)), (high if hi is None else min(high, hi))

    def range_text(self, material_class: str | None = None) -> str:
        """The range in words, e.g. ``0 to 30 GPa for a metal``."""
        low, high = self.bounds(material_class)
        if self.positive and low <= 0:
            text = f"> 0 and <= {high:g} {self.unit}" if math.isfinite(high) else f"> 0 {self.unit}"
        elif not math.isfinite(high):
            text = f">= {low:g} {self.unit}"
        elif not math.isfinite(low):
            text = f"<= {high:g} {self.unit}"
        else:
            text = f"{low:g} to {high:g} {self.unit}"
        return text + (f" for a {material_class}" if material_class in self.classes else "")

    def check(self, value: float, material_class: str | None = None) -> float:
        """``value`` (canonical unit) when inside the range (``material_class``'s when given);
        raises RangeError naming it."""
        low, high = self.bounds(material_class)
        if (self.positive and not value > 0) or not low <= value <= high:
            raise RangeError(f"{self.name} {value:g} {self.unit} is outside the physical range "
                             f"({self.range_text(material_class)})" + self.hint_for(value, low, high))
        return value

    def hint_for(self, value: float, low: float, high: float) -> str:
        """``"; " + hint`` for a ``value`` outside ``[low, high]`` that a unit slip explains, else
        "": a slip (kg/m3 for g/cm3, HV for GPa) makes a number larger, never negative, so a value
        below a range that starts at or above 0 gets no hint."""
        slip = value > high or (low < 0 and value < low)
        return f"; {self.hint}" if self.hint and slip else ""


def _entry(name: str, v: dict) -> Term:
    classes = {cls: (b.get("min"), b.get("max")) for cls, b in (v.get("classes") or {}).items()}
    return Term(name, v["unit"], v.get("description", ""), v.get("min"), v.get("max"),
                bool(v.get("positive", False)), classes, v.get("hint", ""), bool(v.get("computed_only", False)))


#: Terms campaigns declared in this process, per kind (``declare``), beside the standard ones.
_DECLARED: dict[str, dict[str, Term]] = {"property": {}, "process_parameter": {}}


@lru_cache(maxsize=1)
def _vocabulary() -> tuple[dict[str, Term], dict[str, Term]]:
    text = resources.files("dm_hpc.data").joinpath("properties.yaml").read_text()
    raw = yaml.safe_load(text)
    props = {k: _entry(k, v) for k, v in raw["properties"].items()}
    params = {k: _entry(k, v) for k, v in raw["process_parameters"].items()}
    return props, params


def property_names(declared: bool = True) -> list[str]:
    """All known property names, in vocabulary order (declared ones last unless ``declared`` is
    False: the standard vocabulary alone, which does not depend on the campaigns loaded so far)."""
    return list(_vocabulary()[0]) + (list(_DECLARED["property"]) if declared else [])


def process_parameter_names(declared: bool = True) -> list[str]:
    """All known process-parameter names (declared ones last unless ``declared`` is False)."""
    return list(_vocabulary()[1]) + (list(_DECLARED["process_parameter"]) if declared else [])


def _term(name: str, kind: str) -> Term:
    table = _vocabulary()[0] if kind == "property" else _vocabulary()[1]
    try:
        return table[name]
    except KeyError:
        pass
    try:
        return _DECLARED[kind][name]
    except KeyError:
        known = ", ".join(sorted(table))
        close = closest_name(name, [*table, *_DECLARED[kind]], 0.75)
        meant = f" (did you mean {close!r}?)" if close else ""
        raise UnknownPropertyError(f"unknown {kind} {name!r}{meant}; known: {known} (or declare it in the "
                                   f"campaign's vocabulary with a unit)", name, kind, close) from None


def term(name: str, kind: str = "property") -> Term:
    """The vocabulary entry of ``name`` (standard or declared); raises UnknownPropertyError."""
    return _term(name, kind)


def is_standard(name: str, kind: str = "property") -> bool:
    """Is ``name`` one of the standard terms of ``properties.yaml``?"""
    return name in (_vocabulary()[0] if kind == "property" else _vocabulary()[1])


def declare(name: str, unit: str, kind: str = "property", description: str = "",
            minimum: float | None = None, maximum: float | None = None, positive: bool = False) -> Term:
    """Add a campaign's own term. ``unit`` must be a pint unit; a standard name cannot be
    redeclared, nor a declared one with another definition (one meaning per name)."""
    if kind not in _DECLARED:
        raise ValueError(f"kind must be 'property' or 'process_parameter', not {kind!r}")
    if is_standard(name, kind):
        raise ValueError(f"{kind} {name!r} is a standard name (unit {canonical_unit(name, kind)}); "
                         f"use it without declaring it")
    from dm_hpc.data.units import parse_unit  # pint only when a campaign declares its own term

    try:
        parse_unit(unit)
    except ValueError as exc:
        raise UnitError(f"{kind} {name!r}: {exc}") from None
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValueError(f"{kind} {name!r}: min {minimum:g} > max {maximum:g}")
    new = Term(name, unit, description, minimum, maximum, positive)
    old = _DECLARED[kind].get(name)
    if old is not None and old != new:
        # one process serves every campaign it loaded (the portal, a notebook): a second meaning of
        # the name would change the first campaign's checks too. A notebook whose file was edited
        # after loading met this with no word of why or what to do.
        raise ValueError(f"{kind} {name!r} is already declared in this Python process as {old.unit} "
                         f"[{old.minimum}, {old.maximum}] (by an earlier campaign file, or an earlier version of "
                         "this one); one name, one definition: give it the same declaration, or load the changed "
                         "file in a new Python session")
    _DECLARED[kind][name] = new
    return new


def check_range(name: str, value: float, kind: str = "property", material_class: str | None = None) -> float:
    """``value`` (in the canonical unit) if it is inside the term's physical range (for
    ``material_class`` when the vocabulary gives it a tighter one), else RangeError."""
    return _term(name, kind).check(value, material_class)


def canonical_unit(name: str, kind: str = "property") -> str:
    """Canonical unit string of a property (``kind="property"``) or a process parameter."""
    return _term(name, kind).unit


def closest_name(word: Any, choices: Sequence[str], cutoff: float) -> str | None:
    """The one of ``choices`` closest to ``word`` (difflib's ratio at least ``cutoff``), or None:
    what every "did you mean" of a campaign file, a method or a term offers."""
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return close[0] if close else None


def with_unit(name: str, value: float, spec: str = ".4g") -> str:
    """``value`` of ``name`` (canonical; a value or a spread such as an RMSE) formatted by
    ``spec`` and followed by its canonical unit (``0.372 GPa``); the number alone for a
    dimensionless or unknown term."""
    try:
        unit = canonical_unit(name)
    except UnknownPropertyError:
        unit = ""
    text = format(value, spec)
    return f"{text} {unit}" if unit not in ("", "dimensionless") else text


def _spelling(unit: str) -> str:
    """A unit written without spaces or exponent signs: ``g/cm3`` and ``g/cm**3`` read alike."""
    return unit.replace(" ", "").replace("**", "").replace("^", "")


def converter(name: str, unit: str | None, kind: str = "property") -> Callable[[Any], Any]:
    """A function taking values of ``name`` in ``unit`` (a float or a numpy array, shape kept)
    to its canonical unit: ``scale * values + offset``.

    ``unit=None`` means the values are already canonical. Raises UnknownPropertyError for an
    unknown name and UnitError for an unknown or incompatible unit, naming both.
    """
    term = _term(name, kind)
    if unit is None or _spelling(unit) == _spelling(term.unit):  # no pint needed (and none imported)
        return lambda values: values
    try:
        scale, offset = affine(unit, term.unit)
    except ValueError as exc:  # IncompatibleUnits included
        raise UnitError(f"{kind} {name!r}: {exc}{_per_mole_hint(unit, term.unit)}") from None
    return lambda values: scale * values + offset


def _per_mole_hint(unit: str, canonical: str) -> str:
    """What to do with a per-mole energy where a per-atom one is kept: the atoms per mole of
    formula units depend on the formula, which a unit alone does not carry."""
    if "mol" in unit and "atom" in canonical:
        return (f" (a per-mole value needs the atoms of its formula unit: divide by them and give it in "
                f"{canonical}; 1 kJ/mol of atoms = 10.36 meV/atom)")
    return ""


def from_canonical(name: str, unit: str | None, kind: str = "property") -> Callable[[Any], Any]:
    """The inverse of ``converter``: values of ``name`` in its canonical unit (a float or a numpy
    array, shape kept) to ``unit``, for showing them in the unit a campaign author wrote.

    ``unit=None`` means canonical (values returned as given). Raises as ``converter`` does.
    """
    term = _term(name, kind)
    if unit is None or _spelling(unit) == _spelling(term.unit):
        return lambda values: values
    try:
        scale, offset = affine(term.unit, unit)
    except ValueError as exc:
        raise UnitError(f"{kind} {name!r}: {exc}") from None
    return lambda values: scale * values + offset


def same_unit(name: str, unit: str | None, kind: str = "property") -> bool:
    """Whether ``unit`` is the canonical unit of ``name``, however written (``g/cm^3``)."""
    term = _term(name, kind)
    return unit is None or _spelling(unit) == _spelling(term.unit) or affine(unit, term.unit) == (1.0, 0.0)


def to_canonical(name: str, value: float, unit: str | None, kind: str = "property") -> float:
    """Convert ``value`` given in ``unit`` to the canonical unit of ``name`` (see ``converter``)."""
    return float(converter(name, unit, kind)(float(value)))


def check_finite(name: str, value: float) -> float:
    """Reject NaN and infinities, naming the field."""
    if not math.isfinite(value):
        raise ValueError(f"{name}: value must be a finite number, got {value!r}")
    return value
