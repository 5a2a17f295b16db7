"""``dm-hpc journal verify|repair CAMPAIGN``: check a campaign's hash-chained journal, repair it."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dm_hpc.cli.store import fail, load_campaign_or_fail, say

CampaignFile = Annotated[Path, typer.Argument(help="Campaign YAML file.")]


def register(app: typer.Typer) -> None:
    """Add the ``journal`` sub-group to the dm-hpc command line."""
    group = typer.Typer(help="A campaign's journal: verify its hash chain, repair it.", no_args_is_help=True)
    group.command("verify")(verify)
    group.command("repair")(repair)
    app.add_typer(group, name="journal")


def verify(campaign: CampaignFile) -> None:
    """Check every line of the journal (exit 1 and each damaged line named when it is damaged)."""
    from dm_hpc.campaign.journal_repair import verify_campaign

    c = load_campaign_or_fail(campaign)
    v = verify_campaign(c)
    for p in v.problems:
        say(f"{c.run_dir / 'journal.jsonl'}: {p}")
    if v.torn_bytes:
        say(f"a torn last line ({v.torn_bytes} bytes, never acknowledged) is cut when the campaign next runs")
    if v.legacy:
        say("format 1 (no hash chain): `dm-hpc journal repair` checks and upgrades it")
    if v.problems:
        fail(f"journal damaged: {len(v.problems)} problem(s); `dm-hpc journal repair {campaign}` keeps every "
             "intact event", code=1)
    say(f"ok: {v.lines} lines, {len(v.events)} events, hash chain whole")


def repair(campaign: CampaignFile) -> None:
    """Keep every intact event, re-chain them, rebuild from task folders and the store; the damaged
    file is kept beside the journal."""
    from dm_hpc.campaign.journal_repair import repair as do_repair
    from dm_hpc.campaign.manager import CampaignBusyError

    try:
        report = do_repair(load_campaign_or_fail(campaign))
    except CampaignBusyError as exc:
        fail(str(exc))
    for line in report.lines():
        say(line)
