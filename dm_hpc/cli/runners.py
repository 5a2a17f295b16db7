"""`dm-hpc runners ...`: look at site profiles and a campaign's jobs in the Slurm queue."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``runners`` sub-group to the dm-hpc command line."""
    group = typer.Typer(help="Runners: site profiles and a campaign's jobs in the queue.",
                        no_args_is_help=True)

    @group.command("site")
    def site(name: str = typer.Argument("local", help="profile name in configs/sites, or a YAML path")) -> None:
        """Show a site profile as the runners read it (YAML, every default filled in)."""
        import yaml

        from dm_hpc.runners import SiteProfile
        from dm_hpc.runners.site import SiteProfileError

        try:
            profile = SiteProfile.load(name)
        except SiteProfileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2)
        typer.echo(yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False).rstrip())

    @group.command("jobs")
    def jobs(campaign: str = typer.Argument(..., help="campaign YAML file, or campaign name"),
             state_dir: Optional[Path] = typer.Option(
                 None, help="the runner's folder (default: the campaign's runs/<name>/slurm)")) -> None:
        """Table of your jobs of the campaign that Slurm still holds (found by their comment), with
        the task ids of each job (from its batch manifest)."""
        from dm_hpc.runners import slurmcli
        from dm_hpc.runners.sbatch import batch_of

        name, folder = _campaign_and_folder(campaign, state_dir)
        try:
            held = slurmcli.squeue_all()
        except (OSError, slurmcli.SlurmError) as exc:
            print(f"error: cannot ask Slurm: {exc}", file=sys.stderr)
            raise typer.Exit(2)
        rows = []
        for job, (state, rc, text) in sorted(held.items(), key=lambda kv: _job_order(kv[0])):
            batch = batch_of(name, text)
            if batch is not None:
                rows.append((job, _task_of(folder, batch, job), state.value,
                             "-" if rc is None else str(rc), batch))
        if not rows:
            typer.echo(f"no job of campaign {name} in the queue (finished jobs stay for MinJobAge)")
            return
        header = ("JOB", "TASK", "STATE", "EXIT", "BATCH")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())

    @group.command("scrontab")
    def scrontab(campaign: Path = typer.Argument(..., help="campaign YAML file"),
                 schedule: str = typer.Option("15 3 * * *", help="cron schedule (5 fields)"),
                 site: Optional[Path] = typer.Option(None, help="site profile (default: the campaign's)"),
                 root: Path = typer.Option(Path("."), help="the dm-hpc checkout on the cluster"),
                 python: str = typer.Option(".venv/bin/python", help="interpreter with dm-hpc")) -> None:
        """Print the nightly-retraining scrontab of CAMPAIGN (install: `... > f; scrontab f`),
        its jobs tagged with the campaign's own name and the site's partition/account/qos."""
        from dm_hpc.runners import SiteProfile
        from dm_hpc.runners.sbatch import render_scrontab
        from dm_hpc.runners.site import SiteProfileError

        from dm_hpc.campaign import CampaignError, load_campaign

        try:
            c = load_campaign(campaign)
            profile = SiteProfile.load(site or c.runner.site or "local")
            # absolute paths: cron runs the entry from the user's home, not from here
            typer.echo(render_scrontab(profile, campaign=c.name, campaign_file=str(campaign.resolve()),
                                       schedule=schedule, root=str(root.resolve()), python=python).rstrip())
        except (CampaignError, SiteProfileError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2)

    @group.command("cancel")
    def cancel(campaign: str = typer.Argument(..., help="campaign YAML file, or campaign name"),
               yes: bool = typer.Option(False, "--yes", help="cancel without listing first")) -> None:
        """Cancel every pending or running job of yours of the campaign (found by their comment).
        Stop the manager first (`dm-hpc stop CAMPAIGN.yaml`), or it resubmits what it follows."""
        from dm_hpc.runners import slurmcli
        from dm_hpc.runners.sbatch import batch_of

        # the file, as `runners jobs` takes it (the path itself was taken for a name: "no job")
        campaign = _campaign_and_folder(campaign, None)[0]

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
        try:
            slurmcli.cancel(live)
        except (OSError, slurmcli.SlurmError) as exc:  # refused (not ours, already gone): its words
            why = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            print(f"error: cannot cancel the jobs of {campaign} ({' '.join(live)}): {why}; "
                  f"`dm-hpc runners jobs {campaign}` shows which are still there", file=sys.stderr)
            raise typer.Exit(1)
        typer.echo(f"cancelled {len(live)} job(s) of {campaign}: {' '.join(live)}")

    app.add_typer(group, name="runners")


def _campaign_and_folder(campaign: str, state_dir: Path | None) -> tuple[str, Path]:
    """(campaign name, the SlurmRunner's folder of it) from a YAML file or a bare name."""
    from dm_hpc.runners.slurm import campaign_folder

    if campaign.endswith((".yaml", ".yml")):
        from dm_hpc.campaign import CampaignError, load_campaign

        try:
            c = load_campaign(Path(campaign))
        except CampaignError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2)
        return c.name, campaign_folder(state_dir or c.run_dir / "slurm", c.name)
    return campaign, campaign_folder(state_dir or Path("runs") / campaign / "slurm", campaign)


def _task_of(folder: Path, batch: str, job: str) -> str:
    """The task id behind a job (array element ``JOB_i``: manifest entry i); '-' if unknown."""
    try:
        entries = json.loads((folder / "batches" / batch / "manifest.json").read_text())
    except (OSError, ValueError):
        return "-"
    if "_" in job and not job.split("_")[1].isdigit():  # a pending array: all its tasks
        return ",".join(e["spec"]["task_id"] for e in entries)
    index = int(job.split("_")[1]) if "_" in job else 0
    return entries[index]["spec"]["task_id"] if index < len(entries) else "-"


def _job_order(job: str) -> tuple[int, int]:
    base, _, index = job.partition("_")
    return (int(base) if base.isdigit() else 0, int(index) if index.isdigit() else -1)
