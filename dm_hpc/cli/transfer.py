"""`dm-hpc transfer suggest CAMPAIGN`: related data in the store a campaign could learn from."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from dm_hpc.cli.campaign import CampaignFile, _load, _preflight
from dm_hpc.cli.output import cli_console
from dm_hpc.cli.store import fail

console = cli_console()
transfer_app = typer.Typer(help="Related data a campaign can learn from.", no_args_is_help=True)


@transfer_app.command("suggest")
def suggest(
    campaign: CampaignFile,
    limit: Annotated[int, typer.Option(min=0, help="Rows to print.")] = 20,
) -> None:
    """List store records (by campaign, else by method) that hold the campaign's objective property
    and share elements or process parameters with it, with their overlap; each row's first column
    is what to write under `transfer: from:`."""
    from dm_hpc.campaign.report import _store_frame
    from dm_hpc.campaign.transfer import suggest_sources

    c = _load(campaign)
    _preflight(c, campaign, reading=True)  # a missing pool or table file named, not a traceback
    if len(c.properties) > 1:  # the spec refuses a transfer block here: proposing sources would mislead
        console.print(f"{c.name} has {len(c.properties)} properties ({', '.join(c.properties)}); transfer sources "
                      "inform a campaign of one property (one objective, no constraints), so none is proposed",
                      markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    df, note = _store_frame(c)
    if note:
        console.print(note, markup=False, highlight=False)
    found = suggest_sources(c, df)
    prop = c.objectives[0].property
    if found.empty:
        console.print(f"no records in {c.store} hold {prop} and share elements or process parameters with "
                      f"{c.name}", markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"sources of {prop} for {c.name} (first {min(limit, len(found))} of {len(found)})")
    shown = found.head(limit)
    for k, col in enumerate(found.columns):
        if k == 0:  # what to copy under `transfer: from:` is never cut, whatever the terminal's width
            table.add_column(Text(col), no_wrap=True, min_width=max([len(col), *(len(str(v)) for v in shown[col])]))
        else:
            table.add_column(Text(col), overflow="fold")
    for _, row in shown.iterrows():
        table.add_row(*[Text(str(v)) for v in row])  # Text: names are data, not markup
    console.print(table)


@transfer_app.command("gain")
def gain(campaign: CampaignFile) -> None:
    """What the campaign's transfer sources are worth on its own records: each source's weight, the
    model chosen, and the leave-one-out RMSE and log density with and without the sources (the
    report's Transfer section, without the plots)."""
    from dm_hpc.campaign import CampaignError
    from dm_hpc.campaign.dataset import training_set
    from dm_hpc.campaign.report import _store_frame
    from dm_hpc.campaign.transfer import transfer_lines

    c = _load(campaign)
    _preflight(c, campaign, reading=True)  # a missing pool or table file named, not a traceback
    if c.transfer is None:
        console.print(f"{c.name} names no transfer sources (transfer: from: in the campaign file)", markup=False)
        raise typer.Exit(1)
    df, note = _store_frame(c)
    if note:
        console.print(note, markup=False, highlight=False)
    try:
        lines = transfer_lines(c, training_set(c, df))
    except CampaignError as exc:
        fail(str(exc))
    print("\n".join(lines[2:]).rstrip())  # plain markdown, as in the report


def register(app: typer.Typer) -> None:
    app.add_typer(transfer_app, name="transfer")
