"""Per-cell and per-row decisions on a returned sheet: accepted, held or refused, with the reason.

Every door a sheet comes through (``dm-hpc ingest``, ``dm-hpc store import``,
``Campaign.add_measurements``, the portal upload) reads it with the same pipeline
(``dm_hpc.data.sheets``) and gets the same ``Verdict`` objects back, so a message, a test or an
annotated copy of the sheet never depends on the door. A verdict points at the sheet, never at
a temporary file or a validation library's location: its ``line`` (the header is line 1; 0 is
the whole sheet), ``sample_id``, ``column`` (the header as written), ``value`` (the cell as
written) and, for a converted value, the unit it was ``converted_from`` and the stored
``canonical`` number.

``held`` is for checks that ask a person to confirm (the campaign's model, added on top of this
reading step); ``refused`` stores nothing from the sheet; ``accepted`` cells are stored when no
cell of the sheet is refused (all or nothing).
"""
from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


class Decision(str, enum.Enum):
    """What happens to a cell or row of a returned sheet."""

    accepted = "accepted"
    held = "held"  # waits for an explicit confirmation
    refused = "refused"  # the sheet is stored not at all


@dataclass(frozen=True)
class Verdict:
    """One decision on one cell (``column`` set) or one row (``column`` None) of a sheet.

    ``line``: the sheet's line (header 1; 0 for the whole sheet or a column map).
    ``value``: the cell as written (text or number); ``converted_from``: the unit the sheet
    gave when the value was converted; ``canonical``: the value in the vocabulary's unit.
    """

    decision: Decision
    line: int
    reason: str
    sample_id: str | None = None
    column: str | None = None
    value: Any = None
    converted_from: str | None = None
    canonical: float | None = None

    def message(self) -> str:
        """The verdict as one line that points at the sheet (without the line number, which
        ``SheetError`` prints in front)."""
        where = []
        if self.sample_id:
            where.append(f"sample {self.sample_id!r}")
        if self.column:
            where.append(f"column {self.column!r}")
        if self.value is not None and self.column:
            # as text, so a number typed in a workbook and the same number in a CSV read alike
            where.append(f"value {str(self.value)!r}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def problem(self) -> tuple[int, str]:
        """``(line, message)``, the form ``SheetError.problems`` lists."""
        return self.line, self.message()


def refused(line: int, reason: str, **where: Any) -> Verdict:
    """A refusal at ``line`` (``where``: sample_id, column, value, converted_from)."""
    return Verdict(Decision.refused, line, reason, **where)


def converted_cell(line: int, sample_id: str | None, column: str, value: Any, unit: str,
                   canonical: float | None = None) -> Verdict:
    """An accepted cell whose ``value`` (as written) was converted from ``unit`` to the vocabulary's."""
    return Verdict(Decision.accepted, line, f"converted from [{unit}]", sample_id, column, value, unit, canonical)


def problems_of(verdicts: Iterable[Verdict]) -> list[tuple[int, str]]:
    """The refused verdicts as ``(line, message)``, in sheet order."""
    return [v.problem() for v in sorted((v for v in verdicts if v.decision is Decision.refused),
                                        key=lambda v: (v.line, v.column or ""))]


def count(verdicts: Sequence[Verdict], decision: Decision) -> int:
    """How many verdicts have ``decision``."""
    return sum(v.decision is decision for v in verdicts)
