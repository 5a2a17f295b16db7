"""Compositions: element -> amount, on any basis metallurgists and chemists write.

Canonical form (what is hashed and stored): atomic fractions summing to one, elements in
alphabetical order, rounded to 12 decimals so that the same alloy written two ways gets the
same record id.
"""
from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from dm_hpc.data.elements import atomic_mass, is_element, unknown_element
from dm_hpc.data.rounding import round_decimals

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


#: A composition without a balance element must sum to 1 (fractions) or 100 (percent) within
#: this share: sheets round (0.333 x 3), but 1.47 is a typing error, not something to rescale.
#: A lab sheet and the portal's ``/predict`` both hold compositions to it (``sums_to_total``).
COMPOSITION_TOLERANCE = 0.01


def sums_to_total(total: float | np.ndarray, basis: Basis | str = Basis.atomic_fraction) -> bool | np.ndarray:
    """Whether amounts summing to ``total`` (one sum, or an array of row sums, any shape) make a
    complete composition on ``basis``: within ``COMPOSITION_TOLERANCE`` of its total (1 or 100),
    bound included (the ``1 + 1e-9``: 0.505 + 0.505 - 1 is a hair above 0.01 in floating point)."""
    scale = Basis(basis).scale
    return np.abs(np.asarray(total, dtype=float) - scale) <= COMPOSITION_TOLERANCE * scale * (1 + 1e-9)


def fractions_problem(fractions: Mapping[str, float]) -> str | None:
    """Why ``fractions`` (element -> atomic fraction, as a caller posts a composition to predict)
    are no composition to answer for, else None: a negative fraction, or a sum that is not 1 as a
    lab sheet's at_frac columns must make it (``sums_to_total``). Such a sum is refused, never
    rescaled: {"Cu": 0.25, "Ni": 0.25} rescaled is Cu0.5Ni0.5, another alloy than the one typed.
    A sheet says percent in its header; a bare mapping cannot, so 100 is refused too, with the fix
    named. The one rule of the portal's request schema and of ``CampaignDesk.predict``."""
    bad = [el for el, v in fractions.items() if v < 0]
    if bad:
        return f"{bad[0]}: fractions must be >= 0"
    total = sum(fractions.values())
    if sums_to_total(total):
        return None
    percent = sums_to_total(total, Basis.atomic_percent)
    said = f"{total:.6g}" if math.isfinite(total) else "more than a finite number"  # 1e308 twice
    return (f"fractions sum to {said}, not 1 (tolerance {COMPOSITION_TOLERANCE:g}): send atomic fractions that "
            "sum to 1" + ("; these look like atomic percent: divide each by 100" if percent
                         else "; a composition is not rescaled"))


def _sum(values: Iterable[float]) -> float:
    """Left to right, as Python 3.11's ``sum``: the order of additions sets the last bit of a
    total, hence the rounded fractions and the record id; ``atomic_fractions_table`` adds the
    columns of a table in the same order (Python 3.12's ``sum`` compensates, which would not)."""
    total = 0.0
    for v in values:
        total += v
    return total


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
        rest = basis.scale - _sum(out.values())
        if rest < -1e-9:
            raise CompositionError(
                f"balance element {balance[0]}: other amounts sum to {_sum(out.values()):g}, "
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
            raise CompositionError(unknown_element(el))
        if not math.isfinite(v):
            raise CompositionError(f"amount of {el} is not finite: {v!r}")
        if v < 0:
            raise CompositionError(f"negative amount of {el}: {v:g}")
    if basis.by_weight:
        values = {el: v / atomic_mass(el) for el, v in values.items()}
    total = _sum(values.values())
    if total <= 0:
        raise CompositionError("composition is empty (amounts sum to zero)")
    if not basis.by_weight and abs(total - basis.scale) <= 1e-9 * basis.scale:
        # already complete: do not renormalise, so canonical fractions read back unchanged
        # (renormalising rounded numbers would move the last digit and with it the record id)
        total = basis.scale
    fractions = {el: round(v / total, _DECIMALS) for el, v in sorted(values.items()) if v > 0}
    return fractions


def atomic_fractions_table(
    amounts: np.ndarray, balance: np.ndarray, elements: Sequence[str], basis: Basis | str = Basis.atomic_fraction,
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """``to_atomic_fractions`` for every row of a table at once, to the last bit.

    ``amounts``: ``n x k`` on ``basis``, NaN where a cell is empty (finite and >= 0 elsewhere;
    checked before); ``balance``: ``n x k`` bool, the "bal" cells (at most one per row);
    ``elements``: the ``k`` column symbols, in sheet order (the order of summation).
    Returns ``fractions`` (``n x k`` atomic fractions, rounded as ``to_atomic_fractions``),
    ``present`` (``n x k``: the entries the row's composition holds, amount > 0) and the
    ``CompositionError`` message of each row that has none (row -> message).
    """
    basis = Basis(basis)
    given = ~np.isnan(amounts) & ~balance
    a = np.where(given, amounts, 0.0)
    n, k = a.shape
    has_bal = balance.any(axis=1)
    bal_col = balance.argmax(axis=1)
    others = np.zeros(n)
    for j in range(k):  # adding 0.0 for an empty cell changes no bit
        others = others + a[:, j]
    rest = basis.scale - others
    bal_amount = np.maximum(rest, 0.0)
    values = np.where(balance, bal_amount[:, None], a)
    if basis.by_weight:
        values = values / np.array([atomic_mass(el) for el in elements])
    total = np.zeros(n)
    for j in range(k):  # the balance element comes last, as in _resolve_balance
        total = total + np.where(given[:, j], values[:, j], 0.0)
    total = total + np.where(has_bal, values[np.arange(n), bal_col], 0.0)
    if not basis.by_weight:
        total = np.where(np.abs(total - basis.scale) <= 1e-9 * basis.scale, basis.scale, total)
    problems: dict[int, str] = {}
    for i in np.flatnonzero(has_bal & (rest < -1e-9)).tolist():
        problems[i] = (f"balance element {elements[bal_col[i]]}: other amounts sum to {others[i]:g}, "
                       f"more than {basis.scale:g}")
    for i in np.flatnonzero(total <= 0).tolist():
        problems.setdefault(i, "composition is empty (amounts sum to zero)")
    present = (given | balance) & (values > 0)
    present[list(problems)] = False
    fractions = np.zeros((n, k))
    with np.errstate(divide="ignore", invalid="ignore"):
        quotient = values / total[:, None]
    fractions[present] = round_decimals(quotient[present], _DECIMALS)  # as round(x, _DECIMALS), at once
    return fractions, present, problems


def _weight_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """Mass fractions (sum to one) of atomic ``fractions``."""
    masses = {el: x * atomic_mass(el) for el, x in fractions.items()}
    total = sum(masses.values())
    return {el: m / total for el, m in masses.items()}


def _closed(fractions: Mapping[str, float]) -> dict[str, float]:
    """Canonical ``fractions`` moved to sum to one, the gap shared evenly.

    Fractions rounded to 12 decimals sum to 1 + m * 1e-12 with |m| < k/2 (k elements, each off by
    less than half a unit): shared evenly, the gap moves each by less than half a unit, so each
    rounds back to itself once a reader has normalised the sum to one. (Spread in proportion, as a
    plain normalisation spreads it, a fraction near 1 takes nearly all of it and rounds elsewhere.)
    A composition stored unnormalised (atomic fractions that summed to 1 within 1e-9 are kept as
    given) can be off by more, and no weights read back as it: those are left as they are (their
    gap shared evenly could take a trace element below zero)."""
    gap = (_sum(fractions.values()) - 1.0) / len(fractions)
    closed = {el: x - gap for el, x in fractions.items()}
    return closed if abs(gap) <= 1e-12 and all(x > 0 for x in closed.values()) else dict(fractions)


def parse_formula(formula: str) -> dict[str, float]:
    """Amounts of a formula string such as ``"Al0.25Cu0.25Ni0.5"`` or ``"NiCo2O4"``."""
    from pymatgen.core import Composition as PmgComposition  # heavy import, only when needed

    try:
        comp = PmgComposition(formula)
    except Exception as exc:  # pymatgen raises ValueError/KeyError/... for bad formulas
        # a symbol typed in lower case ("cuNi", "Cu0.5ni0.5") reads as no formula: say the one meant
        meant = re.sub(r"(?<![A-Za-z])[a-z]", lambda m: m.group().upper(), formula)
        hint = ""
        if meant != formula:
            try:
                PmgComposition(meant)
                hint = f" (did you mean {meant!r}? element symbols start with a capital letter)"
            except Exception:  # noqa: BLE001 -- not that either: pymatgen's words alone
                pass
        raise CompositionError(f"cannot parse formula {formula!r}: {exc}{hint}") from None
    return {str(el): float(amt) for el, amt in comp.get_el_amt_dict().items()}


def _coerce(data: Any) -> dict[str, dict[str, float]]:
    if isinstance(data, Composition):
        return {"fractions": data.fractions}
    if isinstance(data, str):
        return {"fractions": to_atomic_fractions(parse_formula(data))}
    if isinstance(data, Mapping):
        if "fractions" in data:
            fractions = to_atomic_fractions(data["fractions"])  # element, number and sign checks first
            # fractions are said to be complete: a sum of 0.6 is refused, never rescaled into
            # another alloy (amounts, a formula, a sheet's "bal" are what get normalised)
            total = _sum(_resolve_balance(data["fractions"], Basis.atomic_fraction).values())
            if not sums_to_total(total):
                given = _resolve_balance(data["fractions"], Basis.atomic_fraction)  # numbers ("0.3" read)
                raise CompositionError(fractions_problem(given) or f"fractions sum to {total:g}, not 1")
            return {"fractions": fractions}
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
        return _weight_fractions(self.fractions)

    def amounts(self, basis: Basis | str) -> dict[str, float]:
        """Amounts on ``basis`` (e.g. weight_percent for a steel sheet), which
        ``to_atomic_fractions`` reads back as exactly these fractions (the same record id).

        By weight, those of the fractions closed to sum to one (``_closed``): a reader of weights
        divides by their atomic sum, which for fractions rounded to 12 decimals is 1 only to about
        a unit of the 12th decimal, and that division moved a large fraction across its rounding
        (one composition in 17 of a weight_percent export read back as another record)."""
        basis = Basis(basis)
        base = _weight_fractions(_closed(self.fractions)) if basis.by_weight else dict(self.fractions)
        return {el: v * basis.scale for el, v in base.items()}

    def written_exactly(self, basis: Basis | str) -> bool:
        """Whether ``amounts(basis)`` read back (``to_atomic_fractions``) are these fractions to
        the last bit, the same record id: on an atomic basis always; by weight, unless the fractions
        as stored are further from summing to 1 than ``_closed`` can make up for."""
        try:
            return to_atomic_fractions(self.amounts(basis), basis) == self.fractions
        except CompositionError:  # a trace amount lost to rounding: not these fractions
            return False

    @property
    def formula(self) -> str:
        """Reduced formula with fractional amounts, e.g. ``Al0.25Cu0.75``."""
        return "".join(f"{el}{x:.6g}" for el, x in self.fractions.items())

    def mean_molar_mass(self) -> float:
        """Average mass per atom in g/mol."""
        return sum(x * atomic_mass(el) for el, x in self.fractions.items())
