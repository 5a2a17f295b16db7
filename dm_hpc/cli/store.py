"""`dm-hpc store info|import|export|query|check|compact|recover`, and the CLI's error printer.

Every message that can hold user or file text is printed with rich markup off: a unit such as
``[eV/atom]`` in an error is text, not a style tag to be swallowed.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from dm_hpc.cli.output import cli_console

store_app = typer.Typer(help="Inspect, import into and export from an HDF5 record store.", no_args_is_help=True)
StorePath = Annotated[Path, typer.Option("--store", "-s", help="Store folder (created on import).")]
console = cli_console()
err = cli_console(stderr=True)


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")


def fail(message: str, code: int = 2) -> None:
    """Print a one-line (or listed) error and exit without a traceback; ``message`` is plain
    text (never parsed as markup)."""
    err.print(Text.assemble(("error: ", "bold red"), str(message)), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def say(message: str) -> None:
    """Print a plain-text line to stdout (no markup, no highlighting)."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn a store error (damage, full disk, lock, read-only) into ``fail``'s one paragraph."""
    from dm_hpc.data import StoreError

    try:
        yield
    except StoreError as exc:
        fail(str(exc))


def load_campaign_or_fail(path: Path):
    """The campaign file at ``path`` (a ``CampaignSpec``), or ``fail`` with what is wrong in it."""
    from dm_hpc.campaign import CampaignError, load_campaign

    try:
        return load_campaign(path)
    except CampaignError as exc:
        fail(str(exc))


def _open(path: Path, mode: str = "r"):
    from dm_hpc.data import Store

    with store_errors():
        return Store.open(path, mode)  # type: ignore[arg-type]


@store_app.command("info")
def info(store: StorePath) -> None:
    """Counts by source and method, shards, generation."""
    with store_errors(), _open(store) as s:
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
    from dm_hpc.data.resend import resolve_resent_columns, retyped_columns
    from dm_hpc.data.sheets import SheetDefaults, SheetError, read_sheet_columns

    try:
        defaults = SheetDefaults(source=Source(source), method=method, campaign=campaign, contributor=contributor)
    except ValueError:
        fail(f"--source must be computed or experimental, not {source!r}")
    if not sheet.exists():
        fail(f"{sheet}: no such file")
    try:
        contents = read_sheet_columns(sheet, defaults, column_map=column_map, sheet=sheet_name)
    except SheetError as exc:
        fail(str(exc))
    except (OSError, ValueError) as exc:
        fail(f"{column_map or sheet}: {exc}")
    for warning in contents.warnings:  # soft_wrap: a record id broken over two lines cannot be copied
        err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    _give_back_freed_memory()
    with store_errors(), _open(store, "a") as s:
        try:
            # a value typed in another unit is the stored one at the digits typed, as at every door;
            # the store's table read once for both steps (each read is all of it)
            table = s.to_dataframe(superseded=True) if len(s) else None
            columns, said = retyped_columns(s, contents, table)
            columns = resolve_resent_columns(s, columns, contents.lines, str(sheet), replace, contents.units, table)
            result = s.ingest_columns(columns)
        except SheetError as exc:
            fail(str(exc))
        except ValueError as exc:
            fail(str(exc))
    for line in said:
        err.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    say(f"ingested {result.n} records ({result.new} new)")


def _give_back_freed_memory() -> None:
    """Hand the heap pages freed after reading a sheet back to the system before the shard is
    built: glibc keeps them (~80 MB after 100,000 rows), and the write's buffers would come on
    top (issue 21: <= 500 MB peak). Nothing to do where the C library has no ``malloc_trim``."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


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
AccessLevel_ = Annotated[str, typer.Option(help="Your clearance: public, consortium, restricted, or embargoed (all); "
                                                "records above it are left out.")]


def _clearance(access_level: str, option: str = "--access-level"):
    """``option``'s value as an ``AccessLevel`` (``data.access.parse_level``), or ``fail`` naming
    the option and the levels."""
    from dm_hpc.data.access import AccessError, AccessLevel, parse_level

    try:
        return parse_level(access_level)
    except AccessError:
        fail(f"{option} must be one of {', '.join(a.value for a in AccessLevel)}, not {access_level!r}")


def _scoped(store: Path, df, clearance):
    """``(rows of df that clearance may read, how many were withheld)``: what query and
    crosscheck show, as export does (an embargoed value must not leak through a table)."""
    from dm_hpc.data.access import AccessError, AccessMap

    try:
        shown = AccessMap(store).scope(df, clearance)
    except AccessError as exc:
        fail(str(exc))
    return shown, len(df) - len(shown)


def _withheld(n: int, clearance) -> str:
    return f" ({n} above access level {clearance.value} withheld)" if n else ""


def _check_property(s, prop: str | None) -> None:
    """Refuse a ``--property`` that is neither a known property nor one the store holds (not any
    column: ``x_Cu`` or ``method`` matched nothing either): a misspelt filter matched nothing and
    exported an empty sheet with exit 0."""
    if prop is None:
        return
    from dm_hpc.data.vocabulary import closest_name, property_names

    vocabulary, stored = property_names(), s.property_names()
    if prop in vocabulary or prop in stored:
        return
    known = [*vocabulary, *(c for c in stored if c not in vocabulary)]
    close = closest_name(prop, known, 0.75)
    fail(f"--property {prop!r}: no such property" + (f" (did you mean {close!r}?)" if close else ""))


@store_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="Output .csv or .xlsx (standard template).")],
    store: StorePath,
    source: Source_ = None, method: Method_ = None, campaign: Campaign_ = None,
    elements: Elements_ = None, prop: Property_ = None,
    basis: Annotated[str, typer.Option(help="Composition basis: atomic_fraction, atomic_percent, weight_fraction, weight_percent.")] = "atomic_fraction",
    access_level: AccessLevel_ = "restricted",
) -> None:
    """Export matching records to a template sheet (re-importable unchanged)."""
    from dm_hpc.data.access import AccessError, AccessMap
    from dm_hpc.data.sheets import write_sheet

    clearance = _clearance(access_level)
    with store_errors(), _open(store) as s:
        _check_property(s, prop)
        try:
            records = list(s.records(**_filters(source, method, campaign, elements, prop)))
            readable = AccessMap(store).readable([r.record_id for r in records], clearance)
        except (ValueError, AccessError) as exc:
            fail(str(exc))
    withheld = readable.count(False)
    records = [r for r, ok in zip(records, readable) if ok]
    try:
        write_sheet(records, out, basis)
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{out}: cannot write: {exc.strerror}")
    say(f"exported {len(records)} records to {out}" + _withheld(withheld, clearance))
    _say_inexact(records, basis)
    _say_not_as_intake_takes(records)


def _say_inexact(records, basis: str) -> None:
    """Warn of the records whose composition ``basis`` cannot write exactly (by weight: fractions
    stored further from summing to 1 than the 12th decimal's rounding), which a re-import would
    store as other records: an export's promise is that its rows are the records they name."""
    from dm_hpc.data.composition import Basis

    if not Basis(basis).by_weight:
        return
    off = [r.record_id for r in records if r.composition is not None and not r.composition.written_exactly(basis)]
    if off:
        err.print(f"warning: {len(off)} composition(s) cannot be written exactly by weight (their atomic fractions, "
                  f"as stored, do not sum to 1 at the 12th decimal), so imported back they are other records: "
                  f"{', '.join(off[:10])}{', ...' if len(off) > 10 else ''}; --basis atomic_fraction writes every "
                  "composition exactly", markup=False, highlight=False, soft_wrap=True)


def _say_not_as_intake_takes(records) -> None:
    """Warn of the records whose content intake would not take as stored (stored before its
    trimming and raw-material checks: ``MaterialRecord.not_as_intake_takes``): imported back they
    are other records, or refused. Their ids stay theirs: a stored record is never rewritten."""
    off = [(r.record_id, what) for r in records if (what := r.not_as_intake_takes())]
    if off:
        shown = "; ".join(f"{rid}: {', '.join(what)}" for rid, what in off[:10])
        err.print(f"warning: {len(off)} record(s) were stored before intake trimmed texts and checked raw materials, "
                  f"and hold what it would not take as written; imported back they are other records (trimmed) or "
                  f"refused: {shown}{'; ...' if len(off) > 10 else ''}", markup=False, highlight=False, soft_wrap=True)


@store_app.command("query")
def query(
    store: StorePath,
    source: Source_ = None, method: Method_ = None, campaign: Campaign_ = None,
    elements: Elements_ = None, prop: Property_ = None,
    limit: Annotated[int, typer.Option(min=0, help="Rows to print.")] = 20,
    out: Annotated[Optional[Path], typer.Option(help="Write all matching rows as CSV.")] = None,
    superseded: Annotated[bool, typer.Option("--superseded", help="Also the records withdrawn by a correction "
                                             "or a retraction (kept in the store).")] = False,
    access_level: AccessLevel_ = "restricted",
) -> None:
    r"""Filter records (--out: every matching row as CSV, in the lab sheets' column names and
    canonical units: composition:<El> \[at_frac], process:<step>:<param> \[unit], property:<name> \[unit])."""
    # `\[`: typer shows this docstring as rich markup, where a bare `[unit]` is a style tag and vanishes
    clearance = _clearance(access_level)
    with store_errors(), _open(store) as s:
        _check_property(s, prop)
        try:
            df = s.to_dataframe(**_filters(source, method, campaign, elements, prop), superseded=superseded)
        except (ValueError, KeyError) as exc:
            fail(str(exc))
    df, withheld = _scoped(store, df, clearance)
    if out is not None:
        from dm_hpc.data.columns import sheet_frame
        from dm_hpc.data.sheetfiles import write_frame

        try:
            write_frame(sheet_frame(df), out)  # no cell becomes a spreadsheet formula
        except ValueError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{out}: cannot write: {exc.strerror}")
        say(f"wrote {len(df)} rows to {out}" + _withheld(withheld, clearance))
        return
    table = Table(title=f"{len(df)} records (first {min(limit, len(df))}; canonical units)" + _withheld(withheld, clearance))
    head = df.head(limit)
    x_cols = [c for c in df.columns if c.startswith("x_")]
    skip = {"campaign", "task_id", "sample_id", "time", *x_cols}
    shown = [c for c in head.columns if c not in skip and not c.endswith("_std")
             and not c.startswith("process.") and not head[c].isna().all()]
    table.add_column("composition (at. frac.)")
    for col in shown:
        table.add_column(Text(col))  # Text: column names and values are data, not markup
    for _, row in head.iterrows():
        formula = " ".join(f"{c[2:]}{row[c]:.3g}" for c in x_cols if row[c] > 0)
        table.add_row(Text(formula), *[Text(f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row[shown]])
    console.print(table)


@store_app.command("check")
def check(store: StorePath, repair: Annotated[bool, typer.Option(
        "--repair", help="Rebuild the store.h5 view from the shards when it is the only damage.")] = False) -> None:
    """Verify every shard file's and column's checksums, every record's hash, counts and
    uniqueness, and the store.h5 view; exit 1 on any problem."""
    with store_errors(), _open(store) as s:
        report = s.check()
    if repair and report.only_view:
        with store_errors(), _open(store, "a") as s:
            s.refresh_view()
            report = s.check()
        say(f"rebuilt {store}/store.h5 from the shards")
    for note in report.notes:
        err.print(Text(f"note: {note}"), highlight=False, soft_wrap=True)
    if report.ok:
        bare = sum("without checksums" in note for note in report.notes)
        what = (f"every record hash verified; {bare} shard(s) have no file and column checksums yet" if bare
                else "every file, column and record checksum verified")
        say(f"ok: {report.records} records in {report.shards} shards; {what}")
        return
    for problem in report.problems:
        err.print(Text(problem), highlight=False, soft_wrap=True)
    fix = (f"run `dm-hpc store check --repair --store {store}` to rebuild store.h5 from the shards" if report.only_view
           else f"restore the damaged shards from a backup, or run `dm-hpc store recover --store {store}` to "
                "rebuild the manifest (and store.h5) from the intact ones")
    err.print(Text(f"{len(report.problems)} problem(s) in {store}. The records are in the shards: {fix}."),
              highlight=False)
    raise typer.Exit(1)


@store_app.command("compact")
def compact(store: StorePath) -> None:
    """Merge all shards into one and rebuild the store.h5 table view."""
    with store_errors(), _open(store):  # a reader refuses a missing store: a typo must not create one
        pass
    with store_errors(), _open(store, "a") as s:
        s.compact()
    say(f"compacted {store}")


@store_app.command("recover")
def recover(store: StorePath) -> None:
    """Rebuild a lost or damaged manifest.json from the shards' own metadata (deletes nothing)."""
    from dm_hpc.data.recovery import recover as rebuild

    with store_errors():
        report = rebuild(store)
    with store_errors(), _open(store, "a") as s:  # a writer's close rebuilds store.h5 from the shards
        s.refresh_view()
    say(f"recovered {store}: {report.records} records in {len(report.shards)} shards; store.h5 rebuilt")
    if report.merged_away:
        say(f"merged away (their records are in other shards): {', '.join(report.merged_away)}")
    for line in report.left_out:
        err.print(Text(f"left out: {line}"), highlight=False, soft_wrap=True)
    if report.old_manifest:
        say(f"the previous manifest is kept as {report.old_manifest}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(store_app())
