"""What `--help` shows users, for every command: no internal issue numbers, no text lost to
rich markup (a unit such as ``[at_frac]`` in a docstring is swallowed as a style tag)."""
from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from dm_hpc.cli import app


def _command_paths(command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """``path`` and the paths of every command under it (a group has ``commands``)."""
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths += _command_paths(sub, (*path, name))
    return paths


def _help(path: tuple[str, ...]) -> str:
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, (path, res.output)
    return res.output


def test_no_help_cites_an_internal_issue_number():
    """First-hour review: `transfer --help` said "(issue 22)"."""
    paths = _command_paths(typer.main.get_command(app))
    assert len(paths) > 20  # the walk reached the sub-commands
    cited = {" ".join(p) or "dm-hpc": m.group(0) for p in paths if (m := re.search(r"issues? \d+", _help(p), re.I))}
    assert not cited, cited


def test_store_query_help_shows_the_column_units():
    """First-hour review: `[at_frac]` and `[unit]` were taken for markup, leaving
    `composition:<El> , process:...`."""
    text = " ".join(_help(("store", "query")).split())
    assert "composition:<El> [at_frac], process:<step>:<param> [unit], property:<name> [unit]" in text, text
