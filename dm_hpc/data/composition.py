"""Compositions: element -> amount, on any basis metallurgists and chemists write.

Canonical form (what is hashed and stored): atomic fractions summing to one, elements in
alphabetical order, rounded to 12 decimals so that the same alloy written two ways gets the
same record id.
"""
from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from dm_hpc.data.elements import atomic_mass, is_element

BALANCE = "bal"
_DECIMALS = 12


class Basis(str, enum.Enum):
    """How the amounts of a composition are expressed."""

    atomic_fraction = "atomic_fraction"
    atomic_percent = "atomic_percent"
    weight_fraction = "weight_fraction"
    weight_percent = "weight_percent"

    @property
    def scale(self) -> float:
        """Total that a complete composition sums to on this basis (1 or 100)."""
        return 100.0 if self.value.endswith("percent") else 1.0

    @property
    def by_weight(self) -> bool:
        return self.value.startswith("weight")


class CompositionError(ValueError):
    """A composition that cannot be understood (unknown element, negative amount, ...)."""


def _resolve_balance(amounts: Mapping[str, Any], basis: Basis) -> dict[str, float]:
    """Replace one "bal"/"balance" amount by what the other amounts leave."""
    balance = [el for el, v in amounts.items() if isinstance(v, str) and v.strip().lower().rstrip(".") in ("bal", "balance")]
    if len(balance) > 1:
        raise CompositionError(f"more than one balance element: {', '.join(balance)}")
    out: dict[str, float] = {}
    for el, v in amounts.items():
        if el in balance:
            continue
        try:
            out[el] = float(v)
        except (TypeError, ValueError):
            raise CompositionError(f"amount of {el} is not a number: {v!r}") from None
    if balance:
        rest = basis.scale - sum(out.values())
        if rest < -1e-9:
            raise CompositionError(
                f"balance element {balance[0]}: other amounts sum to {sum(out.values()):g}, "
                f"more than {basis.scale:g}"
            )
        out[balance[0]] = max(rest, 0.0)
    return out


def to_atomic_fractions(amounts: Mapping[str, Any], basis: Basis | str = Basis.atomic_fraction) -> dict[str, float]:
    """Convert amounts on ``basis`` (a "bal" entry allowed) to canonical atomic fractions."""
    basis = Basis(basis)
    values = _resolve_balance(amounts, basis)
    for el, v in values.items():
        if not is_element(el):
            raise CompositionError(f"unknown element {el!r}")
        if not math.isfinite(v):
            raise CompositionError(f"amount of {el} is not finite: {v!r}")
        if v < 0:
            raise CompositionError(f"negative amount of {el}: {v:g}")
    if basis.by_weight:
        values = {el: v / atomic_mass(el) for el, v in values.items()}
    total = sum(values.values())
    if total <= 0:
        raise CompositionError("composition is empty (amounts sum to zero)")
    if not basis.by_weight and abs(total - basis.scale) <= 1e-9 * basis.scale:
        # already complete: do not renormalise, so canonical fractions read back unchanged
        # (renormalising rounded numbers would move the last digit and with it the record id)
        total = basis.scale
    fractions = {el: round(v / total, _DECIMALS) for el, v in sorted(values.items()) if v > 0}
    return fractions


def parse_formula(formula: str) -> dict[str, float]:
    """Amounts of a formula string such as ``"Al0.25Cu0.25Ni0.5"`` or ``"NiCo2O4"``."""
    from pymatgen.core import Composition as PmgComposition  # heavy import, only when needed

    try:
        comp = PmgComposition(formula)
    except Exception as exc:  # pymatgen raises ValueError/KeyError/... for bad formulas
        raise CompositionError(f"cannot parse formula {formula!r}: {exc}") from None
    return {str(el): float(amt) for el, amt in comp.get_el_amt_dict().items()}


def _coerce(data: Any) -> dict[str, dict[str, float]]:
    if isinstance(data, Composition):
        return {"fractions": data.fractions}
    if isinstance(data, str):
        return {"fractions": to_atomic_fractions(parse_formula(data))}
    if isinstance(data, Mapping):
        if "fractions" in data:
            return {"fractions": to_atomic_fractions(data["fractions"])}
        if "amounts" in data:
            return {"fractions": to_atomic_fractions(data["amounts"], data.get("basis", Basis.atomic_fraction))}
        return {"fractions": to_atomic_fractions(data)}
    raise CompositionError(f"cannot read a composition from {type(data).__name__}")


class Composition(BaseModel):
    """A composition in canonical atomic fractions.

    Accepts a formula string, a mapping ``{element: amount}`` (atomic fractions by default),
    or ``{"amounts": {...}, "basis": "weight_percent"}`` with an optional ``"bal"`` element.
    """

    model_config = ConfigDict(frozen=True)

    fractions: dict[str, float]

    def __init__(self, value: Any = None, /, **data: Any) -> None:
        # Composition("Al0.5Cu0.5") and Composition({"Al": 1, "Cu": 1}) read naturally.
        super().__init__(**(_coerce(value) if value is not None else data))

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        return _coerce(data)

    @classmethod
    def from_amounts(cls, amounts: Mapping[str, Any], basis: Basis | str = Basis.atomic_fraction) -> Composition:
        """Build from amounts on any basis (see ``Basis``)."""
        return cls(fractions=to_atomic_fractions(amounts, basis))

    @property
    def elements(self) -> list[str]:
        """Elements present, alphabetical."""
        return list(self.fractions)

    def weight_fractions(self) -> dict[str, float]:
        """Mass fractions (sum to one)."""
        masses = {el: x * atomic_mass(el) for el, x in self.fractions.items()}
        total = sum(masses.values())
        return {el: m / total for el, m in masses.items()}

    def amounts(self, basis: Basis | str) -> dict[str, float]:
        """Amounts on ``basis`` (e.g. weight_percent for a steel sheet)."""
        basis = Basis(basis)
        base = self.weight_fractions() if basis.by_weight else dict(self.fractions)
        return {el: v * basis.scale for el, v in base.items()}

    @property
    def formula(self) -> str:
        """Reduced formula with fractional amounts, e.g. ``Al0.25Cu0.75``."""
        return "".join(f"{el}{x:.6g}" for el, x in self.fractions.items())

    def mean_molar_mass(self) -> float:
        """Average mass per atom in g/mol."""
        return sum(x * atomic_mass(el) for el, x in self.fractions.items())
