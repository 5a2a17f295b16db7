"""`dm-hpc store info|import|export|query|check|compact`."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

store_app = typer.Typer(help="Inspect, import into and export from an HDF5 record store.", no_args_is_help=True)
StorePath = Annotated[Path, typer.Option("--store", "-s", help="Store folder (created on import).")]
console = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")


def fail(message: str, code: int = 2) -> None:
    """Print a one-line (or listed) error and exit without a traceback."""
    # the message is text, never markup: "[eV/atom]" in it must reach the user
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _open(path: Path, mode: str = "r"):
    from dm_hpc.data import Store, StoreError

    try:
        return Store.open(path, mode)  # type: ignore[arg-type]
    except StoreError as exc:
        fail(str(exc))


@store_app.command("info")
def info(store: StorePath) -> None:
    """Counts by source and method, shards, generation."""
    with _open(store) as s:
        console.print_json(json.dumps(s.info()))


@store_app.command("import")
def import_(
    sheet: Annotated[Path, typer.Argument(help="CSV or XLSX in the standard template (or with --map).")],
    store: StorePath,
    column_map: Annotated[Optional[Path], typer.Option("--map", help="YAML column map for a foreign table (configs/sheets/).")] = None,
    source: Annotated[str, typer.Option(help="computed | experimental, where the sheet does not say.")] = "experimental",
    method: Annotated[str, typer.Option(help="Method or lab name, where the sheet does not say.")] = "lab",
    campaign: Annotated[Optional[str], typer.Option(help="Campaign to file the records under.")] = None,
    contributor: Annotated[Optional[str], typer.Option(help="Who contributed the data.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Store re-sent values as corrections; the old ones stay, marked superseded.")] = False,
    sheet_name: Annotated[Optional[str], typer.Option("--sheet", help="Workbook sheet to read (default: the first).")] = None,
) -> None:
    """Import a sheet, all or nothing; prints `ingested N records (M new)` once durable."""
    from dm_hpc.data import Source
    from dm_hpc.data.resend import resolve_resends
    from dm_hpc.data.sheets import SheetDefaults, SheetError, read_sheet_contents

    try:
        defaults = SheetDefaults(source=Source(source), method=method, campaign=campaign, contributor=contributor)
    except ValueError:
        fail(f"--source must be computed or experimental, not {source!r}")
    if not sheet.exists():
        fail(f"{sheet}: no such file")
    try:
        contents = read_sheet_contents(sheet, defaults, column_map=column_map, sheet=sheet_name)
    except SheetError as exc:
        fail(str(exc))
    for warning in contents.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    with _open(store, "a") as s:
        try:
            records = resolve_resends(s, contents.records, contents.lines, str(sheet), replace)
        except SheetError as exc:
            fail(str(exc))
        result = s.ingest(records)
    console.print(f"ingested {result.n} records ({result.new} new)")


def _filters(source, method, campaign, elements, prop) -> dict:
    return {k: v for k, v in {
        "source": source, "method": method, "campaign": campaign,
        "elements": [e.strip() for e in elements.split(",")] if elements else None, "property": prop,
    }.items() if v is not None}


Source_ = Annotated[Optional[str], typer.Option("--source", help="computed | experimental")]
Method_ = Annotated[Optional[str], typer.Option("--method")]
Campaign_ = Annotated[Optional[str], typer.Option("--campaign")]
Elements_ = Annotated[Optional[str], typer.Option("--elements", help="Comma-separated; all must be present.")]
Property_ = Annotated[Optional[str], typer.Option("--property", help="Only records that have this property.")]


@store_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="Output .csv or .xlsx (standard template).")],
    store: StorePath,
    source: Source_ = None, method: Method_ = None, campaign: Campaign_ = None,
    elements: Elements_ = None, prop: Property_ = None,
    basis: Annotated[str, typer.Option(help="Composition basis: atomic_fraction, atomic_percent, weight_fraction, weight_percent.")] = "atomic_fraction",
) -> None:
    """Export matching records to a template sheet (re-importable unchanged)."""
    from dm_hpc.data.sheets import write_sheet

    with _open(store) as s:
        try:
            records = list(s.records(**_filters(source, method, campaign, elements, prop)))
        except ValueError as exc:
            fail(str(exc))
    try:
        write_sheet(records, out, basis)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    console.print(f"exported {len(records)} records to {out}")


@store_app.command("query")
def query(
    store: StorePath,
    source: Source_ = None, method: Method_ = None, campaign: Campaign_ = None,
    elements: Elements_ = None, prop: Property_ = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 20,
    out: Annotated[Optional[Path], typer.Option(help="Write all matching rows as CSV.")] = None,
) -> None:
    """Filter records (columns: ids, provenance, x_<El>, properties in canonical units)."""
    with _open(store) as s:
        try:
            df = s.to_dataframe(**_filters(source, method, campaign, elements, prop))
        except (ValueError, KeyError) as exc:
            fail(str(exc))
    if out is not None:
        from dm_hpc.data.sheetfiles import write_frame

        try:
            write_frame(df, out)  # no cell becomes a spreadsheet formula
        except (ValueError, OSError) as exc:
            fail(str(exc))
        console.print(f"wrote {len(df)} rows to {out}")
        return
    table = Table(title=f"{len(df)} records (first {min(limit, len(df))}; canonical units)")
    head = df.head(limit)
    x_cols = [c for c in df.columns if c.startswith("x_")]
    skip = {"campaign", "task_id", "sample_id", "time", *x_cols}
    shown = [c for c in head.columns if c not in skip and not c.endswith("_std")
             and not c.startswith("process.") and not head[c].isna().all()]
    table.add_column("composition (at. frac.)")
    for col in shown:
        table.add_column(col)
    for _, row in head.iterrows():
        formula = " ".join(f"{c[2:]}{row[c]:.3g}" for c in x_cols if row[c] > 0)
        table.add_row(formula, *[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row[shown]])
    console.print(table)


@store_app.command("check")
def check(store: StorePath) -> None:
    """Verify every record's hash, counts and uniqueness; exit 1 on any problem."""
    with _open(store) as s:
        report = s.check()
    if report.ok:
        console.print(f"ok: {report.records} records in {report.shards} shards, every hash verified")
        return
    for problem in report.problems:
        err.print(problem, highlight=False)
    err.print(f"{len(report.problems)} problem(s) in {store}")
    raise typer.Exit(1)


@store_app.command("compact")
def compact(store: StorePath) -> None:
    """Merge all shards into one and rebuild the store.h5 table view."""
    with _open(store, "a") as s:
        s.compact()
    console.print(f"compacted {store}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(store_app())
