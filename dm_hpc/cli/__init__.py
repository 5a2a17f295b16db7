"""The `dm-hpc` command line.

Each concern registers its own sub-command module here; heavy libraries (torch, botorch,
atomate2) are imported inside the commands, never at start-up, so `dm-hpc --help` stays fast.
"""
from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="dm-hpc",
    help="HPC-native computation and active-learning engine for materials development.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# module -> attribute holding a typer.Typer (added as a group) or a callable register(app).
_COMMAND_MODULES = (
    "dm_hpc.cli.store",
    "dm_hpc.cli.calc",
    "dm_hpc.cli.bench",
    "dm_hpc.cli.design",
    "dm_hpc.cli.campaign",
    "dm_hpc.cli.lab",
    "dm_hpc.cli.crosscheck",
    "dm_hpc.cli.models",
    "dm_hpc.cli.predict",
    "dm_hpc.cli.runners",
    "dm_hpc.cli.plan",
    "dm_hpc.cli.serve",
    "dm_hpc.cli.journal",
    "dm_hpc.cli.transfer",
)

for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a concern not built yet
        if exc.name != _name:
            raise
        continue
    _module.register(app)




def main() -> None:
    """Console-script entry point: an error that ``error_line`` says ends in that line, never a
    traceback."""
    try:
        app()
    except (RuntimeError, OSError) as exc:
        line = error_line(exc)
        if line is None:
            raise
        _fail(line)


def error_line(exc: BaseException) -> str | None:
    """What the CLI says for ``exc`` in place of a traceback, whichever command met it: a damaged
    campaign journal's message (which lines, what is wrong, what to run), or a file the command may
    not write (a read-only run folder, no permission, a full disk or quota); None for another error."""
    from dm_hpc.campaign.journal import JournalError
    from dm_hpc.data.integrity import disk_problem

    if isinstance(exc, JournalError):
        return str(exc)
    return disk_problem(exc)


def _fail(message: str) -> None:
    from dm_hpc.cli.store import fail

    try:
        fail(message)
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
