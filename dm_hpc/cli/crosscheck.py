"""``dm-hpc store crosscheck``: where two labs, or calculation and lab, disagree (see
``dm_hpc.data.crosscheck``)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dm_hpc.cli.store import AccessLevel_, StorePath, _clearance, _open, _scoped, fail, say, store_app, store_errors


def register(app: typer.Typer) -> None:
    """The command joins the ``store`` group (registered by ``dm_hpc.cli.store``)."""


@store_app.command("crosscheck")
def crosscheck(
    store: StorePath,
    png: Annotated[Optional[Path], typer.Option("--png", help="Draw the map of disagreements here.")] = None,
    threshold: Annotated[float, typer.Option("--z", help="Disagreement beyond this many combined standard uncertainties.")] = 3.0,
    prop: Annotated[Optional[list[str]], typer.Option("--property", help="Only this property (repeatable).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Also write the table (.csv).")] = None,
    access_level: AccessLevel_ = "restricted",
) -> None:
    """Find materials that two labs, or a calculation and a lab, give different values for."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from dm_hpc.data.sheetfiles import write_frame

    from dm_hpc.data.crosscheck import bias_by_origin, draw_map, find_disagreements

    clearance = _clearance(access_level)
    with store_errors(), _open(store) as opened:
        df = opened.to_dataframe()
    df, withheld = _scoped(store, df, clearance)  # an embargoed value must not show in a disagreement
    if withheld:
        say(f"{withheld} record(s) above access level {clearance.value} left out")
    found = find_disagreements(df, list(prop) if prop else None, threshold)
    if found.empty:
        say(f"no disagreements beyond {threshold:g} standard uncertainties in {len(df)} records")
    else:
        table = Table(title=f"{len(found)} disagreement(s) beyond {threshold:g} standard uncertainties")
        for col in ("material", "property", "origin_a", "a", "origin_b", "b", "z", "to settle it"):
            table.add_column(col, overflow="fold")
        for r in found.itertuples():
            cells = (r.material, r.property, r.origin_a, f"{r.value_a:.4g} ± {r.u_a:.2g} (n={r.n_a})",
                     r.origin_b, f"{r.value_b:.4g} ± {r.u_b:.2g} (n={r.n_b})", f"{r.z:.1f}", r.settle)
            table.add_row(*(Text(str(c)) for c in cells))  # lab names are text, never markup
        Console(width=200).print(table)
        for r in bias_by_origin(found).itertuples():
            say(f"bias: {r.origin_b} minus {r.origin_a} on {r.property}: mean {r.mean_difference:+.4g} over {r.n} material(s)")
    if out is not None:
        try:
            write_frame(found, out)  # lab names neutralised: no cell is a formula
        except ValueError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{out}: cannot write: {exc.strerror}")
        say(f"wrote {out}")
    if png is not None:
        draw_map(df, found, png)
        say(f"wrote {png}")
