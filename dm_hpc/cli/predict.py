"""`dm-hpc predict CAMPAIGN FORMULA...`: the model's prediction at chosen compositions, as
``Campaign.predict`` gives it in a notebook and ``/predict`` through the portal (one reading of
the request, one prediction: ``campaign.prediction``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from dm_hpc.cli.campaign import CampaignFile, _load
from dm_hpc.cli.output import cli_console, shown
from dm_hpc.cli.store import fail
from dm_hpc.cli.tables import fitted

console = cli_console()


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


def predict(
    campaign: CampaignFile,
    formulas: Annotated[Optional[list[str]], typer.Argument(
        help="Compositions as formulas (Cu0.5Ni0.5, CuNi: amounts, normalised).", show_default=False)] = None,
    sheet: Annotated[Optional[Path], typer.Option(
        "--from", help="A CSV or XLSX whose composition:<El> [at_frac] columns (and any process:... columns) "
        "give the compositions: a lab sheet, `dm-hpc suggest`'s, `store export`'s.")] = None,
    process: Annotated[list[str], typer.Option(
        help="NAME=VALUE for every composition, in the unit the campaign file writes its range in (repeatable; "
        "default: the middle of the process box).")] = [],  # noqa: B006 -- typer's list default
    model: Annotated[Optional[str], typer.Option(
        help="A registered version (v0002) or 'current' (default: fitted now on every record of the store).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write the predictions to this CSV or XLSX.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Predict every objective and constraint at chosen compositions: mean, standard deviation and
    90 % interval in the campaign's units, where the model extrapolates, and which model answered."""
    from dm_hpc.api import Campaign
    from dm_hpc.campaign import CampaignError
    from dm_hpc.cli.store import store_errors
    from dm_hpc.data.sheetfiles import check_writable

    if bool(formulas) == (sheet is not None):
        fail("give the compositions as formulas or --from a sheet (one of the two)")
    if out is not None:
        try:  # before the fit: a folder that is not there is said at once, not after the model
            check_writable(out)
        except ValueError as exc:
            fail(f"--out {exc}")
    spec = _load(campaign)
    asked = _sheet_frame(sheet) if sheet is not None else list(formulas or [])
    try:
        with store_errors():  # a damaged or locked store: its paragraph, not a traceback
            rows = Campaign(spec, str(campaign)).predict(asked, _process(process) if process else None, model)
    except CampaignError as exc:  # InputError, NoModel, a pool gone: one line each
        fail(str(exc))
    if out is not None:
        _write(rows, out)
    if as_json:
        console.print_json(json.dumps({"model": rows.attrs["model"], "rows": _plain(rows)}))
        return
    console.print(fitted(_table(rows), console))
    console.print(f"model: {rows.attrs['model']['name']}", markup=False, highlight=False)
    if out is not None:
        console.print(f"wrote {shown(out)}", markup=False, highlight=False)


def _process(pairs: list[str]) -> dict[str, object]:
    """``NAME=VALUE`` options as a dict; a value that is no number is kept, for the campaign's
    checks to name with the others (``prediction.request_problems``)."""
    values: dict[str, object] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            fail(f"--process {pair!r}: give NAME=VALUE, e.g. --process annealing_temperature=900")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            values[name.strip()] = value.strip()
    return values


def _sheet_frame(path: Path):
    """The sheet's cells, numbers read as numbers (its decimal mark); text kept for the checks."""
    from dm_hpc.data.sheetfiles import SheetError, load_table, parse_number

    try:
        table = load_table(path)
    except SheetError as exc:  # its problems, without the importer's "nothing imported"
        fail(f"--from {path}: " + "; ".join(message for _, message in exc.problems))

    def number(value):
        if value is None:
            return None
        try:
            return parse_number(value, table.decimal)
        except (TypeError, ValueError):
            return value

    frame = table.frame
    for column in frame.columns:
        if str(column).startswith(("composition:", "process:")):
            frame[column] = frame[column].map(number).astype(object)
    return frame


def _formula(row) -> str:
    """A row's composition as a formula (``Cu0.5 Ni0.5``), elements at 0 left out."""
    return " ".join(f"{col[len('composition:'):].split(' [')[0]}{value:.4g}" for col, value in row.items()
                    if str(col).startswith("composition:") and value)


def _table(rows) -> Table:
    from dm_hpc.compute.descriptors import ANALYTIC_PROPERTIES
    from dm_hpc.data.sheets import parse_header

    means = [c for c in rows.columns if c.startswith("predicted:")]
    table = Table(title=None, show_lines=False)
    ids = "sample_id" in rows.columns  # rows from a sheet: matched back to its samples
    if ids:
        table.add_column("sample_id")
    table.add_column("composition")
    process = [c for c in rows.columns if c.startswith("process:")]
    for col in process:  # Text: a unit in brackets ([g/cm^3]) is not rich markup
        head = parse_header(col)
        table.add_column(Text(f"{head.name} [{head.unit}]"), justify="right")
    for col in means:
        head = parse_header(col)
        table.add_column(Text(f"{head.name} [{head.unit}]"), justify="right")
        table.add_column("90 % interval", justify="right")
    table.add_column("outside the campaign's bounds")
    for _, row in rows.iterrows():
        cells = ([str(row["sample_id"])] if ids else []) + [_formula(row)] + [f"{row[c]:.4g}" for c in process]
        for col in means:
            mean, std = row[col], row[col.replace("predicted:", "predicted_std:", 1)]
            low, high = row[col.replace("predicted:", "90 % low:", 1)], row[col.replace("predicted:", "90 % high:", 1)]
            exact = std == 0 and parse_header(col).name in ANALYTIC_PROPERTIES  # from the composition, not the model
            cells += (["n/a", ""] if mean is None or mean != mean else [f"{mean:.4g} (exact)", ""] if exact else
                      [f"{mean:.4g} ± {std:.2g}", f"{low:.4g} to {high:.4g}"])  # exact: an analytic property
        cells.append(row["outside"] or "")
        table.add_row(*(Text(c) for c in cells))
    return table


def _plain(rows) -> list[dict]:
    """The rows as JSON values (NaN: null)."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in rows.to_dict(orient="records")]


def _write(rows, out: Path) -> None:
    from dm_hpc.data.sheetfiles import write_frame

    try:
        write_frame(rows, out)  # text cells escaped for a spreadsheet (a formula is never written)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
