"""Tables that fit the terminal: a rich table when it fits the console's width (80 columns in a
log file or a narrow terminal), else the same cells as a list, one block per row, so nothing is
squeezed into unreadable one-letter columns or cut."""
from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


def fitted(table: Table, console: Console) -> RenderableType:
    """``table`` itself when its natural width fits ``console``, else a list layout of its rows
    (the first column names the block; every other non-empty cell is ``header: value``)."""
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum  # unclamped
    if natural <= console.width:
        return table
    columns = [(str(col.header), [c if isinstance(c, str) else Text.from_markup(str(c)) for c in col.cells])
               for col in table.columns]
    lines: list[RenderableType] = []
    if table.title:
        lines.append(Text(str(table.title), style="bold"))
    for i in range(table.row_count):
        head = columns[0][1][i]
        lines.append(Text(f"{columns[0][0]} {head}" if columns[0][0] else str(head), style="bold"))
        for header, cells in columns[1:]:
            value = str(cells[i])
            if value.strip():
                lines.append(Text(f"  {header or '-'}: {value}"))
    return Group(*lines)
