"""The consoles every command prints through, so that all of them lay out output alike.

On a terminal rich wraps a long message between words at the window's width. Written to a file,
a pipe or a Slurm log there is no window, and rich would wrap at its default 80 columns: a line
such as ``held-out 40 records: RMSE raw_material_cost 1.2 USD/kg; ...`` was split mid-phrase, so
neither a reader of a nightly retraining's log nor ``grep`` saw it whole. There, messages are
never wrapped (rich's soft wrap). Tables keep their 80-column layout either way: soft wrap does
not fold table cells, and ``tables.fitted`` turns a table too wide for 80 columns into a list.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Console


def cli_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr) whose lines wrap at the terminal's width, and never when
    the stream is not a terminal."""
    console = Console(stderr=stderr)
    console.soft_wrap = not console.is_terminal
    return console


def shown(path: Path | str) -> str:
    """A path as the user reads it, in every command's output: relative to the working folder when
    it lies below it (campaign paths are resolved against the campaign file, so they arrive absolute)."""
    path = Path(path)
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
