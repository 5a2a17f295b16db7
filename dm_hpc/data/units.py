"""The pint unit registry shared by the whole engine.

pint is imported on first use: importing it costs about a second of CPU (it looks for dask and
other array libraries), which small commands such as ``dm-hpc status`` must not pay when every
unit in the campaign file is already the canonical one.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pint


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    """The one registry (pint quantities from different registries do not mix)."""
    import pint

    ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    # "per atom" quantities are written eV/atom in the field; a counting dimension keeps
    # eV/atom from silently converting to eV.
    ureg.define("atom = [atom_count] = atoms")
    ureg.define("USD = [currency] = usd = dollar")
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
