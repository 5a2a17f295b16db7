"""`dm-hpc runners ...`: look at site profiles and a campaign's jobs in the Slurm queue."""
from __future__ import annotations

import sys

import typer


def register(app: typer.Typer) -> None:
    """Add the ``runners`` sub-group to the dm-hpc command line."""
    group = typer.Typer(help="Runners: site profiles and a campaign's jobs in the queue.",
                        no_args_is_help=True)

    @group.command("site")
    def site(name: str = typer.Argument("local", help="profile name in configs/sites, or a YAML path")) -> None:
        """Show a site profile as the runners read it."""
        from dm_hpc.runners import SiteProfile
        from dm_hpc.runners.site import SiteProfileError

        try:
            profile = SiteProfile.load(name)
        except SiteProfileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2)
        for key, value in profile.model_dump().items():
            typer.echo(f"{key}: {value}")

    @group.command("jobs")
    def jobs(campaign: str = typer.Argument(..., help="campaign name")) -> None:
        """List the campaign's jobs that Slurm still holds (found by their comment)."""
        from dm_hpc.runners import slurmcli
        from dm_hpc.runners.sbatch import batch_of

        try:
            held = slurmcli.squeue_all()
        except (OSError, slurmcli.SlurmError) as exc:
            print(f"error: cannot ask Slurm: {exc}", file=sys.stderr)
            raise typer.Exit(2)
        for job, (state, rc, text) in sorted(held.items()):
            batch = batch_of(campaign, text)
            if batch is not None:
                typer.echo(f"{job}\t{state.value}\t{'' if rc is None else rc}\t{batch}")

    @group.command("cancel")
    def cancel(campaign: str = typer.Argument(..., help="campaign name"),
               yes: bool = typer.Option(False, "--yes", help="cancel without listing first")) -> None:
        """Cancel every pending or running job of the campaign (found by their comment).
        Stop the manager first (`dm-hpc stop CAMPAIGN.yaml`), or it resubmits what it follows."""
        from dm_hpc.runners import slurmcli
        from dm_hpc.runners.sbatch import batch_of

        try:
            held = slurmcli.squeue_all()
        except (OSError, slurmcli.SlurmError) as exc:
            print(f"error: cannot ask Slurm: {exc}", file=sys.stderr)
            raise typer.Exit(2)
        live = sorted({job.split("_")[0] for job, (state, _, text) in held.items()
                       if not state.is_final and batch_of(campaign, text) is not None})
        if not live:
            typer.echo(f"no pending or running job of campaign {campaign}")
            return
        if not yes:
            typer.echo(f"would cancel {len(live)} job(s) of {campaign}: {' '.join(live)} (add --yes)")
            return
        slurmcli.cancel(live)
        typer.echo(f"cancelled {len(live)} job(s) of {campaign}: {' '.join(live)}")

    app.add_typer(group, name="runners")
