"""One column naming scheme for every table a person reads or fills.

Lab sheets, ``dm-hpc store export``, ``dm-hpc design`` (its table and ``--out``), the Python
API's frames (``records``, ``best``, ``pending``, ``suggest``, what ``add_measurements`` takes)
and the portal's lab queue name their columns
alike, so a frame read from one door can be handed to another unchanged::

    sample_id, record_id, source, method, ...    identifiers and provenance, as named
    composition:<El> [at_frac]                   an element's amount (the basis in brackets)
    raw:<name> [unit]                            a raw material's amount
    raw:<name>:<field>                           a raw material's details (``RAW_FIELDS``, ``RAW_USED``)
    process:<step>:<parameter> [unit]            a process parameter
    process:<step>:equipment|settings|order      a process step's own fields (``STEP_FIELDS``)
    property:<name> [unit]                       a measured or computed value
    uncertainty:<name> [unit]                    its standard uncertainty
    conditions:<name>                            its conditions (a JSON object)
    predicted:<name> [unit], predicted_std:<name> [unit]   a model's prediction (sheets out)
    ordered:<El> [at_frac], 99 % interval:<name> [unit], verdict   the annotated copy's additions

A record's second raw material or process step of one name (two anneals, one powder from two
makers) is written under ``<name>:<k>`` (``occurrence_name``): ``raw:Fe powder:2 [g]``,
``process:anneal:2:annealing_temperature [K]``, ``process:anneal:2:order``. A raw material given
in other units by other records has a column per unit (``raw:Fe [g]``, ``raw:Fe [kg]``), and a
row fills one of them: the unit is part of a record's content (and id), so it is not converted.

The store's own frame (``Store.to_dataframe``: ``x_<El>``, ``<property>``, ``<property>_std``,
``process.<step>:<parameter>``, ``raw.<name> [unit]``) is the learning code's matrix, not a table
for people; ``sheet_frame`` renames it into this scheme. The grammar that reads headers back is
``dm_hpc.data.sheets.parse_header``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from dm_hpc.data.layout import FIXED_COLUMNS
from dm_hpc.data.units import affine, readable_unit
from dm_hpc.data.vocabulary import UnknownPropertyError, canonical_unit

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: The basis of ``composition:`` columns in every frame (a sheet may use another; see ``sheets``).
ATOMIC_FRACTION = "at_frac"
#: Columns a frame shows first, in this order, when it has them.
IDENTIFIERS = ("sample_id", "record_id", "source", "method", "campaign", "task_id", "time")


def _bracket(unit: str | None) -> str:
    # every header names its unit as people read it (g/cm^3); the header grammar reads it back
    return f" [{readable_unit(unit)}]" if unit is not None else ""


def composition_column(element: str, basis: str = ATOMIC_FRACTION) -> str:
    return f"composition:{element} [{basis}]"


def occurrence_name(name: str, occurrence: int) -> str:
    """The name a record's ``occurrence``-th raw material or process step called ``name`` (from 1,
    in the record's order) is written under in a header: ``name`` for the first, ``name:<k>`` for
    the k-th. A name in a header cannot hold ':', so no name reads as another's occurrence, and a
    header without one means what it always did."""
    return name if occurrence == 1 else f"{name}:{occurrence}"


def raw_column(name: str, unit: str) -> str:
    return f"raw:{name} [{unit}]"


#: A raw material's fields other than its amount, each a column ``raw:<name>:<field>`` without a
#: unit: texts, and its purity a number. A row gives a raw material when its amount is more than 0
#: or one of these is given (then an amount of 0 is its amount; 0 alone is a lab's "not used").
RAW_FIELDS = ("material_class", "manufacturer", "formula", "purity", "purchase_date")
#: ``raw:<name>:used``, "yes": a raw material the row gives with neither an amount above 0 nor a
#: detail (a name alone, or an amount of 0 alone), as an export writes it.
RAW_USED = "used"


def raw_field_column(name: str, field: str) -> str:
    """``raw:<name>:<field>`` for a field of ``RAW_FIELDS`` or ``RAW_USED``."""
    return f"raw:{name}:{field}"


def process_column(step: str, parameter: str, unit: str | None = None) -> str:
    """``process:<step>:<parameter> [unit]`` (default unit: the parameter's canonical one)."""
    return f"process:{step}:{parameter}" + _bracket(unit or canonical_unit(parameter, kind="process_parameter"))


def property_column(name: str, unit: str | None = None, kind: str = "property") -> str:
    """``<kind>:<name> [unit]`` for kind property, uncertainty, predicted or predicted_std
    (default unit: the property's canonical one)."""
    return f"{kind}:{name}" + _bracket(unit or canonical_unit(name))


#: A process step's fields other than its parameters, each a column ``process:<step>:<field>``
#: without a unit: its equipment (a text), its settings (a JSON object of texts) and its place in
#: the route (a whole number; without it, a step's place among the steps its row gives).
STEP_FIELDS = ("equipment", "settings", "order")


def step_column(step: str, field: str) -> str:
    """``process:<step>:<field>`` for a field of ``STEP_FIELDS``."""
    return f"process:{step}:{field}"


def conditions_column(name: str) -> str:
    """``conditions:<name>``: the conditions of property ``name``'s value (a JSON object of
    names and numbers or texts, ``{"temperature": 298.0}``; no [unit]: conditions are stored as
    written, unconverted)."""
    return f"conditions:{name}"


#: What the annotated copy of a returned sheet adds beside the lab's own columns
#: (``campaign.annotate``): information for the lab, so a sheet sent back with them reads without them.
VERDICT = "verdict"
ANNOTATION_PREFIXES = ("ordered:", "99 % interval:")


def ordered_column(element: str) -> str:
    return f"ordered:{element} [{ATOMIC_FRACTION}]"


def interval_column(name: str, unit: str | None = None) -> str:
    return f"99 % interval:{name}" + _bracket(unit or canonical_unit(name))


def is_annotation(header: object) -> bool:
    """Whether ``header`` is one the annotated copy adds (``ANNOTATION_PREFIXES``, ``VERDICT``)."""
    text = str(header).strip()
    return text == VERDICT or text.startswith(ANNOTATION_PREFIXES)


def _unit_or_none(name: str, kind: str = "property") -> str | None:
    try:
        return canonical_unit(name, kind=kind)
    except UnknownPropertyError:  # a term another campaign declared: no unit known in this process
        return None


def process_values(df: pd.DataFrame, name: str) -> np.ndarray:
    """Process parameter ``name`` of every row of ``Store.to_dataframe()`` (canonical unit; NaN
    where a record has none, as calculations have). A record's steps are columns
    ``process.<step>:<name>``; the first step that sets it counts."""
    import numpy as np  # here: this module is imported where numpy is not needed (validate)

    cols = [c for c in df.columns if c.startswith("process.") and c.endswith(f":{name}")]
    return df[cols].bfill(axis=1).iloc[:, 0].to_numpy(dtype=float) if cols else np.full(len(df), np.nan)


def _in_unit(df: pd.DataFrame, col: str, values: dict, canonical: str | None, unit: str | None,
             spread: bool = False) -> str | None:
    """The unit column ``col`` of ``df`` (canonical ``canonical``) is shown in: ``unit`` when given
    and the term has a unit, its values converted into ``values[col]`` (a ``spread`` by the scale
    alone: an offset such as degC -> K moves values, not their differences); else ``canonical``."""
    if canonical is None or unit is None:
        return canonical
    if unit != canonical:
        scale, offset = affine(canonical, unit)
        values[col] = df[col] * abs(scale) if spread else df[col] * scale + offset
    return unit


def sheet_frame(df: pd.DataFrame, process_units: Mapping[str, str] | None = None,
                property_units: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``Store.to_dataframe`` rows with the sheets' column names (a new frame).

    Values stay in canonical units, except process parameters named in ``process_units``
    (parameter -> unit, e.g. a campaign's ``annealing_temperature: degC``) and properties named in
    ``property_units`` (an objective the campaign file writes in meV/atom; its uncertainty scaled),
    which are converted to that unit and headed with it, as a lab sheet heads them. Columns come in
    the order identifiers, composition, raw materials, process, properties, uncertainties.
    """
    process_units = process_units or {}
    property_units = property_units or {}
    fixed = set(FIXED_COLUMNS)
    groups: dict[str, dict[str, str]] = {k: {} for k in ("id", "composition", "raw", "process", "property", "std")}
    values = {}
    for col in map(str, df.columns):
        if col in fixed or col in IDENTIFIERS:
            groups["id"][col] = col
        elif col.startswith("x_"):
            groups["composition"][col] = composition_column(col[2:])
        elif col.startswith("raw."):
            name, _, unit = col[4:].partition(" [")
            groups["raw"][col] = raw_column(name, unit.rstrip("]"))
        elif col.startswith("process."):
            step, _, param = col[len("process."):].partition(":")
            shown = _in_unit(df, col, values, _unit_or_none(param, kind="process_parameter"), process_units.get(param))
            groups["process"][col] = f"process:{step}:{param}{_bracket(shown)}"
        elif col.endswith("_std") and col[:-4] in df.columns:
            name = col[:-4]
            shown = _in_unit(df, col, values, _unit_or_none(name), property_units.get(name), spread=True)
            groups["std"][col] = f"uncertainty:{name}{_bracket(shown)}"
        else:
            shown = _in_unit(df, col, values, _unit_or_none(col), property_units.get(col))
            groups["property"][col] = f"property:{col}{_bracket(shown)}"
    ids = [c for c in IDENTIFIERS if c in groups["id"]] + [c for c in groups["id"] if c not in IDENTIFIERS]
    order = ids + [c for g in ("composition", "raw", "process", "property", "std") for c in groups[g]]
    names = {old: new for g in groups.values() for old, new in g.items()}
    out = df[order].assign(**values) if values else df[order].copy()
    return out.rename(columns=names)
