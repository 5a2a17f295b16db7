"""Column maps: YAML files that rename a foreign table (a public data set) into the sheet template.

See ``configs/sheets/`` for examples. A map is validated as a whole before any row is read: a
map that is a list, names a key it does not know or fills one template column twice is a
``SheetError`` naming the map file.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dm_hpc.data.sheetfiles import SheetError, blank, describe_error


class MappedColumn(BaseModel):
    """A column renamed into the template with its values translated (``{"1": experimental}``)."""

    model_config = ConfigDict(extra="forbid")
    to: str
    values: dict[str, str | float | int | bool | None] = Field(default_factory=dict)

    @field_validator("values", mode="before")
    @classmethod
    def _keys(cls, v: Any) -> Any:
        return {str(k): val for k, val in v.items()} if isinstance(v, Mapping) else v


class ColumnMap(BaseModel):
    """A column map (YAML, see ``configs/sheets/``) that renames a foreign table into the template.

    ``columns``: original -> template header (or ``{to: header, values: {...}}``);
    ``constants``: template header -> value for every row; ``ignore``: original columns to drop;
    ``ignore_unmapped``: drop every other column too (otherwise an unmapped column is an error).
    """

    model_config = ConfigDict(extra="forbid")
    columns: dict[str, str | MappedColumn] = Field(default_factory=dict)
    constants: dict[str, str | float | int | bool | None] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list)
    ignore_unmapped: bool = False

    @model_validator(mode="after")
    def _targets_once(self) -> ColumnMap:
        targets = [t.to if isinstance(t, MappedColumn) else t for t in self.columns.values()] + list(self.constants)
        twice = sorted({t for t in targets if targets.count(t) > 1})
        if twice:
            raise ValueError(f"template column(s) {twice} are filled twice")
        return self


def load_column_map(source: Mapping[str, Any] | str | Path) -> ColumnMap:
    """A column map from a mapping or a YAML file; raises ``SheetError`` naming the problem."""
    origin = "column map" if isinstance(source, Mapping) else str(source)
    data: Any = source
    if not isinstance(source, Mapping):
        try:
            data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise SheetError(origin, [(0, f"cannot read the column map: {exc}")]) from None
        except Exception as exc:  # noqa: BLE001 -- PyYAML raises many kinds on hostile text
            raise SheetError(origin, [(0, f"not a valid YAML column map: {exc}")]) from None
    if not isinstance(data, Mapping):
        raise SheetError(origin, [(0, f"a column map is a mapping with columns/constants/ignore, not {type(data).__name__}")])
    try:
        return ColumnMap.model_validate(data)
    except ValidationError as exc:
        raise SheetError(origin, [(0, describe_error(exc))]) from None


def apply_column_map(table: pd.DataFrame, mapping: ColumnMap | Mapping[str, Any], origin: str = "column map") -> pd.DataFrame:
    """Rename a foreign table into the template with a column map (see ``ColumnMap``)."""
    cmap = mapping if isinstance(mapping, ColumnMap) else load_column_map(mapping)
    problems = [(0, f"mapped column {c!r} is not in the file") for c in cmap.columns if c not in table.columns]
    if not cmap.ignore_unmapped:
        problems += [(0, f"column {c!r} is neither mapped nor ignored")
                     for c in table.columns if c not in cmap.columns and c not in cmap.ignore]
    if problems:
        raise SheetError(origin, problems)
    out = pd.DataFrame(index=table.index)
    for original, target in cmap.columns.items():
        if isinstance(target, MappedColumn):
            values = target.values
            out[target.to] = table[original].map(lambda v: values.get(str(v).strip(), v) if not blank(v) else v)
        else:
            out[target] = table[original]
    for header, value in cmap.constants.items():
        out[header] = value
    return out
