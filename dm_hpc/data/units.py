"""The pint unit registry shared by the whole engine."""
from __future__ import annotations

import re
from functools import lru_cache

import pint


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    """The one registry (pint quantities from different registries do not mix)."""
    ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    # "per atom" quantities are written eV/atom in the field; a counting dimension keeps
    # eV/atom from silently converting to eV.
    ureg.define("atom = [atom_count] = atoms")
    ureg.define("USD = [currency] = usd = dollar")
    # Vickers hardness numbers are kgf/mm**2 (ISO 6507): "HV" on a sheet converts to GPa
    ureg.define("HV = kilogram_force / millimeter ** 2 = vickers")
    return ureg


def parse_unit(text: str) -> pint.Unit:
    """Parse a unit string such as ``"g/cm^3"``, ``"MPa"``, ``"%"``; raises ValueError."""
    cleaned = re.sub(r"\b(wt|at)\s*%", "%", text.strip()).replace("^", "**").replace("°C", "degC").replace("%", "percent")
    if cleaned in ("", "-", "1"):
        cleaned = "dimensionless"
    # pint's parser raises many kinds of error on garbage (TokenError, ZeroDivisionError, ...):
    # all of them mean "not a unit"
    errors = (Exception,)
    try:
        return registry().Unit(cleaned)
    except errors:
        pass
    # "g/cm3", "mg/cm2": exponents written without ** as on lab sheets
    try:
        return registry().Unit(re.sub(r"(?<=[A-Za-z])(\d+)\b", r"**\1", cleaned))
    except errors as exc:
        raise ValueError(f"unknown unit {text!r}") from exc
