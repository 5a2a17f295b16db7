"""The pint unit registry shared by the whole engine.

pint is imported on first use: importing it costs about a second of CPU (it looks for dask and
other array libraries), which small commands such as ``dm-hpc status`` must not pay. A unit
spelt like the canonical one needs no conversion; every other conversion is affine
(``canonical = scale * value + offset``: degC -> K, min -> h), so pint's answer for a pair of
units is kept in a small cache file (``affine``) and a later process converts without pint.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pint


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    """The one registry (pint quantities from different registries do not mix)."""
    import pint

    try:  # pint's parsed definitions, cached on disk: 0.03 s instead of 0.5 s of CPU per process
        ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True, cache_folder=":auto:")
    except Exception:  # noqa: BLE001 -- no writable cache folder (a read-only home): parse them
        ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    # "per atom" quantities are written eV/atom in the field; a counting dimension keeps
    # eV/atom from silently converting to eV.
    ureg.define("atom = [atom_count] = atoms")
    ureg.define("USD = [currency] = usd = dollar")
    # Vickers hardness numbers are kgf/mm**2 (ISO 6507): HV 187 = 1.834 GPa
    ureg.define("vickers = kilogram_force / millimeter ** 2 = HV")
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


def readable_unit(text: str) -> str:
    """``text`` as people write a unit, exponents after ``^`` and a product as a space
    (``g/cm**3`` -> ``g/cm^3``, ``J/(mol*K)`` -> ``J/(mol K)``): the one form shown wherever a person
    reads a unit (sheet headers, Instructions, report, CLI), not pint's Python syntax. ``parse_unit``
    reads it back to the same unit, as it reads ``g/cm**3`` and ``g/cm3``, so a header written in it
    survives the trip through a lab. (A space, not a middle dot: a CSV sheet opened in another
    encoding would turn the dot into letters its header no longer parses as.)"""
    return re.sub(r"\s*\*\s*", " ", re.sub(r"\s*\*\*\s*", "^", text))


def case_spellings(text: str) -> list[str]:
    """Units pint knows that ``text`` spells but for letter case, word by word (``Gpa`` -> ``GPa``,
    ``mev/atom`` -> ``meV/atom``, ``degc`` -> ``degC``): what a "did you mean" offers for a unit
    that does not parse. Empty when no word has such a spelling."""
    import itertools

    ureg = registry()
    options = []
    for part in re.split(r"([A-Za-z_]+)", text.strip()):
        if not part or not part[0].isalpha() or ureg.parse_unit_name(part, case_sensitive=True):
            options.append([part])
            continue
        found = [ureg.get_symbol(prefix + name).replace("\N{DEGREE SIGN}", "deg")  # "°C" as a file writes it: degC
                 for prefix, name, _ in ureg.parse_unit_name(part, case_sensitive=False)]
        options.append(list(dict.fromkeys(found))[:3] or [part])
    return [s for s in ("".join(p) for p in itertools.islice(itertools.product(*options), 20)) if s != text.strip()]


class IncompatibleUnits(ValueError):
    """Two units of different dimensions (pint's DimensionalityError, without importing pint)."""


#: Conversions pint has answered before, per pint version: {"pint|source|target": [scale, offset]}.
CACHE_FILE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dm-hpc" / "unit-conversions.json"


@lru_cache(maxsize=1)
def _cached() -> dict[str, list[float]]:
    try:
        data = json.loads(CACHE_FILE.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def affine(source: str, target: str) -> tuple[float, float]:
    """``(scale, offset)`` with ``value in target = scale * value in source + offset``.

    Raises ``IncompatibleUnits`` for units that do not convert and ValueError for an unknown
    unit. Answered from the cache file when pint answered it before (no pint import). The same
    ``scale`` and ``offset`` serve both ways, so a value converts alike with or without the cache.
    """
    key = f"{metadata.version('pint')}|{source}|{target}"
    if key in _cached():
        scale, offset = _cached()[key]
        return scale, offset
    import pint

    src, dst = parse_unit(source), parse_unit(target)
    ureg = registry()

    def convert(v: float) -> float:
        return float(ureg.Quantity(v, src).to(dst).magnitude)

    try:
        offset = convert(0.0)
        scale = convert(1.0) - offset
    except pint.DimensionalityError:
        raise IncompatibleUnits(f"unit {source!r} cannot be converted to {target!r}") from None
    if math.isclose(convert(10.0), 10.0 * scale + offset, rel_tol=1e-12, abs_tol=1e-12):
        _remember(key, scale, offset)
    return scale, offset


def _remember(key: str, scale: float, offset: float) -> None:
    """Add one conversion to the cache file (replaced atomically; a failure only costs speed)."""
    _cached()[key] = [scale, offset]
    try:
        CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=CACHE_FILE.parent, prefix=".unit-conversions-")
        with os.fdopen(fd, "w") as fh:
            json.dump(_cached(), fh)
        os.replace(tmp, CACHE_FILE)
    except OSError:
        pass
