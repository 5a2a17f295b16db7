"""``dm-hpc calc``: run one calculation (composition -> properties) and list the methods."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

calc_app = typer.Typer(help="Calculations: composition -> structure -> relax -> properties.",
                       no_args_is_help=True)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _parse_settings(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values read as YAML scalars (numbers, booleans, strings)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


@calc_app.command("run")
def run(
    composition: str = typer.Option(..., "--composition", "-c", help="e.g. Al0.25Cu0.25Ni0.25Pd0.25"),
    method: str = typer.Option("emt", "--method", "-m", help="registered method (see `calc methods`)"),
    store: Path | None = typer.Option(None, "--store", help="HDF5 store to ingest the record into"),
    seed: int = typer.Option(0, help="seed of the random site occupation"),
    properties: str | None = typer.Option(None, help="comma-separated property names (default: all but bulk_modulus)"),
    settings: list[str] = typer.Option([], "--set", help="override a method setting, key=value (repeatable)"),
    cores: int = typer.Option(1, min=1, help="MPI ranks for the code (QE)"),
    workdir: Path | None = typer.Option(None, help="keep the code's files here (default: a temporary folder)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Compute the properties of one composition and print them with the record id."""
    from rich.table import Table

    from dm_hpc.cli.output import cli_console
    from dm_hpc.compute import calculate, get_method, result_to_record
    from dm_hpc.compute.methods import UnknownMethodError
    from dm_hpc.data import Composition, CompositionError, canonical_unit

    try:
        comp = Composition(composition)
    except (CompositionError, ValueError) as exc:
        _fail(f"bad --composition {composition!r}: {exc}")
    try:
        get_method(method)
    except UnknownMethodError as exc:
        _fail(str(exc.args[0]))
    if store is not None:
        from dm_hpc.data import layout

        problem = layout.store_folder_problem(store)
        if problem:  # before the calculation: a DFT run's result would be lost at the end
            _fail(problem)
    names = [p.strip() for p in properties.split(",") if p.strip()] if properties else None
    outcome = calculate(comp, method, _parse_settings(settings), names, seed=seed, workdir=workdir, cores=cores)
    if not outcome.ok:
        if as_json:
            typer.echo(outcome.model_dump_json(indent=1))
        else:
            typer.echo(f"error: {outcome.kind.value}: {outcome.reason}", err=True)
            if outcome.output_tail:
                typer.echo(outcome.output_tail, err=True)
        raise typer.Exit(outcome.exit_code if outcome.kind.value != "invalid_task" else 2)
    record = result_to_record(outcome)
    stored = None
    if store is not None:
        from dm_hpc.cli.store import store_errors
        from dm_hpc.data import Store

        with store_errors(), Store.open(store, mode="a") as s:  # locked, damaged, disk full: one line
            stored = s.ingest([record])
    if as_json:
        payload = json.loads(outcome.model_dump_json(exclude={"structure"}))
        payload["record_id"] = record.record_id
        typer.echo(json.dumps(payload, indent=1))
        return
    console = cli_console()
    table = Table(title=f"{comp.formula} · {outcome.method} ({outcome.fidelity}) · "
                        f"{outcome.n_atoms}-atom {outcome.lattice} cell · {outcome.wall_time_s:.2f} s")
    table.add_column("property")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for p in outcome.properties:
        table.add_row(p.name, f"{p.value:.6g}", canonical_unit(p.name))
    console.print(table)
    if outcome.cell_composition != outcome.composition:
        typer.echo(f"cell composition: {Composition(outcome.cell_composition).formula}")
    typer.echo(f"record id: {record.record_id}")  # plain lines: scripts grep them
    if stored is not None:
        typer.echo(f"store: {store} ({'new record' if stored.new else 'already present'})")


@calc_app.command("methods")
def methods() -> None:
    """List the registered methods, their fidelity, availability and elements."""
    from rich.markup import escape
    from rich.table import Table

    from dm_hpc.cli.output import cli_console
    from dm_hpc.compute import get_method, method_names, unavailable_reason

    table = Table()
    for col in ("method", "fidelity", "code", "available", "cost 4 / 32 atoms (core-s)", "elements"):
        table.add_column(col)
    for name in method_names():
        m = get_method(name)
        why = unavailable_reason(m)
        els = sorted(m.elements)
        table.add_row(name, m.fidelity, m.code, "yes" if why is None else escape(f"no: {why}"),
                      f"{m.cost_core_seconds(4):.3g} / {m.cost_core_seconds(32):.3g}",
                      " ".join(els) if len(els) <= 16 else f"{len(els)} elements")
    cli_console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``calc`` group to the main CLI."""
    app.add_typer(calc_app, name="calc")
