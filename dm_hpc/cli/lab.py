"""Lab corrections: ``dm-hpc retract RECORD_ID --reason ...`` (history kept, see
``dm_hpc.data.corrections``)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dm_hpc.cli.store import fail, load_campaign_or_fail, say


def register(app: typer.Typer) -> None:
    app.command("retract")(retract)


def retract(
    record_id: Annotated[str, typer.Argument(help="The record to withdraw (dm-...).")],
    reason: Annotated[str, typer.Option("--reason", help="Why; kept with the record, with who and when.")],
    campaign: Annotated[Optional[Path], typer.Option("--campaign", help="The campaign whose store holds it "
                                                     "(its lab sample is then awaited again).")] = None,
    store: Annotated[Optional[Path], typer.Option("--store", help="Or a store folder.")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Who retracts (default: the login name).")] = None,
) -> None:
    """Withdraw a stored value from queries, training and exports; it stays in the store."""
    from dm_hpc.data import Store, StoreError

    if (campaign is None) == (store is None):
        fail("give --campaign CAMPAIGN.yaml or --store STORE (one of them)")
    try:
        if campaign is not None:
            from dm_hpc.campaign.lab import retract_record

            done = retract_record(load_campaign_or_fail(campaign), record_id, reason, by)
        else:
            from dm_hpc.data.corrections import retract as retract_in

            with Store.open(store, "a") as opened:
                done = retract_in(opened, record_id, reason, by)
    except KeyError as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    except (ValueError, StoreError) as exc:
        fail(str(exc))
    say(f"retracted {done.record_id} ({done.by}, {done.at:%Y-%m-%d %H:%M} UTC): {done.reason}; "
        "it stays in the store, with this reason")
