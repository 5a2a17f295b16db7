"""`dm-hpc design`: inverse design, compositions ranked by the probability of meeting targets."""
from __future__ import annotations

from pathlib import Path

import typer


def design(
    store: Path = typer.Option(..., "--store", help="HDF5 store to learn from"),
    target: list[str] = typer.Option(..., "--target", help='e.g. "bulk_modulus>=150 GPa" (repeatable)'),
    n: int = typer.Option(20, "-n", "--number", min=1, help="candidates to list"),
    max_elements: int = typer.Option(0, "--max-elements", min=0, help="element-count limit (0: as in the data)"),
    exclude: str = typer.Option("", "--exclude", help="comma-separated elements to leave out"),
    out: Path | None = typer.Option(None, "--out", help="also write the candidates to this CSV"),
    seed: int = typer.Option(0, "--seed"),
    fidelity: str | None = typer.Option(None, "--fidelity", help="source:method to predict, e.g. "
                                        "experimental:lab (default: the experimental data, else the scarcest method)"),
) -> None:
    """Propose compositions most likely to meet every target, with predicted values and uncertainties."""
    import sys

    from dm_hpc.acquire.inverse import TargetError, parse_target

    try:
        targets = [parse_target(t) for t in target]
    except TargetError as exc:
        typer.echo(f"error: {exc}", err=True)
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
    from dm_hpc.acquire.design import default_target, design_from_dataframe, fidelity_labels

    if df.empty:
        typer.echo(f"error: store {store} holds no records", err=True)
        raise typer.Exit(2)
    fidelity = fidelity or default_target(fidelity_labels(df))
    excluded = [e.strip() for e in exclude.split(",") if e.strip()]
    try:
        cands, _ = design_from_dataframe(df, targets, n=n, max_elements=max_elements or None, excluded=excluded, seed=seed,
                                         target_fidelity=fidelity)
    except (TargetError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    rows = [candidate_row(c) for c in cands]
    from rich.console import Console
    from rich.table import Table

    table = Table(title=" and ".join(str(t) for t in targets) + f" (predicting {fidelity})")
    for col in rows[0] if rows else []:
        table.add_column(col)
    for r in rows:
        table.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()])
    Console(file=sys.stdout).print(table)
    if out is not None:
        import pandas as pd

        from dm_hpc.data.sheetfiles import write_frame

        try:
            write_frame(pd.DataFrame(rows), out)  # no cell becomes a spreadsheet formula
        except (ValueError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)


def candidate_row(c) -> dict:
    """A candidate as a flat row: composition formula, probability, mean and std per property."""
    row = {"composition": " ".join(f"{e}{v:.3f}" for e, v in sorted(c.composition.items())), "probability": c.probability}
    row.update({f"{k}_pred": v for k, v in c.mean.items()})
    row.update({f"{k}_std": v for k, v in c.std.items()})
    row.update(c.process)
    return row


def register(app: typer.Typer) -> None:
    app.command("design")(design)
