"""`dm-hpc design`: inverse design, compositions ranked by the probability of meeting targets."""
from __future__ import annotations

from pathlib import Path

import typer


def design(
    store: Path | None = typer.Option(None, "--store", help="HDF5 store to learn from (default: --campaign's)"),
    target: list[str] = typer.Option(..., "--target", help='e.g. "bulk_modulus>=150 GPa" (repeatable)'),
    n: int = typer.Option(20, "-n", "--number", min=1, help="candidates to list"),
    max_elements: int = typer.Option(0, "--max-elements", min=0, help="element-count limit (0: as in the data)"),
    exclude: str = typer.Option("", "--exclude", help="comma-separated elements to leave out"),
    out: Path | None = typer.Option(None, "--out", help="also write the candidates to this CSV"),
    seed: int = typer.Option(0, "--seed", help="same store and seed: same answer"),
    max_seconds: float = typer.Option(60.0, "--max-seconds", min=1.0,
                                      help="time budget after the fit; the list is cut short when it is spent"),
    fidelity: str | None = typer.Option(None, "--fidelity", help="source:method to predict, e.g. "
                                        "experimental:lab (default: the experimental data, else the scarcest method)"),
    campaign: Path | None = typer.Option(None, "--campaign", help="campaign file whose model predicts its objective "
                                         "(its transfer sources included) on its design space"),
) -> None:
    """Propose compositions most likely to meet every target, with predicted values and uncertainties.
    With --campaign, a campaign that transfers lends its model (sources included) and design space."""
    import sys

    from dm_hpc.acquire.inverse import TargetError, parse_target

    if seed < 0:  # numpy's generator refused it with a traceback, after the store was read and the model fitted
        typer.echo(f"error: --seed {seed}: a seed is 0 or more", err=True)
        raise typer.Exit(2)
    try:
        targets = [parse_target(t) for t in target]
    except TargetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    spec = None
    if campaign is not None:
        from dm_hpc.cli.campaign import _load, _preflight

        spec = _load(campaign)
        _preflight(spec, campaign, reading=True)  # its pool and sources: a missing file named
        store = store or spec.store
    if store is None:
        typer.echo("error: give --store or --campaign", err=True)
        raise typer.Exit(2)
    if not store.exists():
        typer.echo(f"error: store {store} not found", err=True)
        raise typer.Exit(2)
    from dm_hpc.data import Store, StoreError

    try:
        with Store.open(store, mode="r") as st:
            df = st.to_dataframe()
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    from dm_hpc.acquire.design import default_target, fidelity_labels
    from dm_hpc.compute.descriptors import analytic_functions
    from dm_hpc.acquire.design import design as run_design

    if df.empty:
        typer.echo(f"error: store {store} holds no records", err=True)
        raise typer.Exit(2)
    excluded = [e.strip() for e in exclude.split(",") if e.strip()]
    try:
        lent = {}
        if spec is not None:
            from dm_hpc.campaign.dataset import own_records
            from dm_hpc.campaign.transfer import design_inputs

            got = design_inputs(spec, df)
            if got is not None:
                lent = {"space": got[0], "models": got[1]}
                mine = own_records(spec, df)
                fidelity = fidelity or default_target(fidelity_labels(mine if len(mine) else df))
                typer.echo(f"{spec.name}'s model with its transfer sources predicts {', '.join(got[1])}", err=True)
            else:  # the campaign's own design space (a pool campaign's candidates are its pool), its model fitted
                # here on the records on its elements (another element's record would be read renormalised)
                from dm_hpc.campaign.dataset import within_elements
                from dm_hpc.campaign.strategy import design_space

                lent = {"space": design_space(spec)}
                df = df[within_elements(df, lent["space"].element_names)]
                if df.empty:
                    typer.echo(f"error: store {store} holds no records on {spec.name}'s elements "
                               f"({', '.join(lent['space'].element_names)})", err=True)
                    raise typer.Exit(2)
        fidelity = fidelity or default_target(fidelity_labels(df))
        res = run_design(df, targets, n=n, max_elements=max_elements or None, excluded=excluded, seed=seed,
                         target_fidelity=fidelity, max_seconds=max_seconds,
                         exact=analytic_functions(t.property for t in targets),
                         progress=lambda line: typer.echo(line, err=True), **lent)
    except (TargetError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    rows = [candidate_row(c, spec) for c in res.new]
    known_rows = [known_row(k, spec) for k in res.known]
    from rich.console import Console

    title = " and ".join(t.strip() for t in target)  # as written: the unit the user chose, not canonical
    balance = "; charge-balanced" if res.charge_balance else ""
    for table in (_table(f"New candidates: {title} (predicting {fidelity}{balance})", rows),
                  _table(f"Known in the store, meeting {title} by measured values ({fidelity})", known_rows)):
        # as wide as its headers need: a header cut short (`process:treatment:annealing…`) loses its unit
        wide = Console(file=sys.stdout, width=10_000)
        natural = wide.measure(table).maximum
        Console(file=sys.stdout, width=max(160, natural)).print(table)
    rows = rows + known_rows
    if out is not None:
        import pandas as pd

        from dm_hpc.data.sheetfiles import write_frame

        try:
            write_frame(pd.DataFrame(rows), out)  # no cell becomes a spreadsheet formula
        except (ValueError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)


def _table(title: str, rows: list[dict]):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title))  # text, not markup: `[degC]` is no style tag
    for col in rows[0] if rows else ["composition"]:
        table.add_column(Text(col), no_wrap=True)  # a header on one line, its unit beside its name
    for r in rows:
        table.add_row(*[Text(f"{v:.3g}" if isinstance(v, float) else str(v)) for v in r.values()])
    return table


def _formula(composition: dict) -> str:
    return " ".join(f"{e}{v:.3f}" for e, v in sorted(composition.items()))


def _unit_and_value(spec, prop: str, canonical: float, spread: bool = False) -> tuple[str | None, float]:
    """The unit ``prop`` is shown in and ``canonical`` in it: the campaign's shown unit
    (``CampaignSpec.shown_unit``) with ``spec``, else the canonical one (None: a term no campaign
    of this process declared)."""
    if spec is not None:
        return spec.shown_unit(prop), (spec.shown_spread if spread else spec.shown)(prop, canonical)
    from dm_hpc.data.vocabulary import UnknownPropertyError, canonical_unit

    try:
        return canonical_unit(prop), canonical
    except UnknownPropertyError:
        return None, canonical


def _column(prop: str, unit: str | None, kind: str) -> str:
    from dm_hpc.data.columns import property_column

    return property_column(prop, unit, kind=kind) if unit is not None else f"{kind}:{prop}"


def known_row(k, spec=None) -> dict:
    """A known material as a flat row: composition, status "known", measured value per property
    (``property:<name> [unit]``: the campaign's shown unit with ``spec``, else canonical)."""
    row = {"composition": _formula(k.composition), "status": "known", "records": k.records}
    for p, v in k.measured.items():
        unit, shown = _unit_and_value(spec, p, v)
        row[_column(p, unit, "property")] = shown
    return row


def candidate_row(c, spec=None) -> dict:
    """A candidate as a flat row: composition formula, probability, ``predicted:<name> [unit]`` and
    ``predicted_std:<name> [unit]`` per property and ``process:<step>:<parameter> [unit]``, named as
    a lab sheet names them: in the campaign's shown units with ``spec`` (an objective as the file
    writes it, a process parameter in the unit of its range), else canonical."""
    from dm_hpc.campaign.labsheet import PROCESS_STEP, shown_process
    from dm_hpc.data.columns import process_column
    from dm_hpc.data.vocabulary import UnknownPropertyError

    row = {"composition": _formula(c.composition), "status": "new", "probability": c.probability}
    for k, v in c.mean.items():
        unit, shown = _unit_and_value(spec, k, v)
        row[_column(k, unit, "predicted")] = shown
    for k, v in c.std.items():
        unit, shown = _unit_and_value(spec, k, v, spread=True)
        row[_column(k, unit, "predicted_std")] = shown
    for k, v in c.process.items():
        if spec is not None:
            header, shown = shown_process(spec, k, v)
            row[header] = shown
            continue
        try:
            row[process_column(PROCESS_STEP, k)] = v
        except UnknownPropertyError:
            row[f"process:{PROCESS_STEP}:{k}"] = v
    return row


def register(app: typer.Typer) -> None:
    app.command("design")(design)
