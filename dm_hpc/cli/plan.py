"""`dm-hpc plan CAMPAIGN --dry-run`: what the next steps would submit, and what it would cost.

For each calculation fidelity, the next wave of tasks (``runner.max_in_flight``, or ``--tasks``)
is rendered into the job scripts the Slurm runner would submit (same packing, arrays, per-method
resources and layouts, and the walltime and memory requests the learned cost model sets), with
the estimated run time and peak memory per task (learned from the campaign's finished runs, with
90 % ranges and how many runs they rest on; the calculators.yaml prior before any run), core-hours
and GPU-hours against the campaign's budget and, where ``sacctmgr``/``sshare`` answer, the account's remaining
allocation. Nothing is written and nothing is submitted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dm_hpc.cli.output import shown
from dm_hpc.cli.store import fail, load_campaign_or_fail


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


def plan(
    campaign: Annotated[Path, typer.Argument(help="Campaign YAML file (see campaigns/).")],
    dry_run: Annotated[bool, typer.Option("--dry-run/--no-dry-run",
                                          help="Only render and estimate (the only mode).")] = True,
    site: Annotated[Optional[Path], typer.Option(help="Site profile (default: the campaign's).")] = None,
    tasks: Annotated[Optional[int], typer.Option(min=1, help="Tasks per fidelity in the next wave "
                                                 "(default: runner.max_in_flight).")] = None,
    scripts: Annotated[bool, typer.Option("--scripts/--no-scripts", help="Print the job scripts.")] = True,
) -> None:
    """Render the job scripts the next steps would submit, with estimated core-/GPU-hours."""
    from dm_hpc.campaign import journal as jn
    from dm_hpc.runners import SiteProfile, slurmcli
    from dm_hpc.runners.site import SiteProfileError
    from dm_hpc.runners.slurm import SlurmRunner

    if not dry_run:
        fail("plan only renders and estimates; `dm-hpc run CAMPAIGN` submits")
    c = load_campaign_or_fail(campaign)
    site_path = site or c.runner.site or Path("local")
    try:
        profile = SiteProfile.load(site_path)
    except SiteProfileError as exc:
        fail(str(exc))
    state = jn.replay(c.run_dir / "journal.jsonl") if (c.run_dir / "journal.jsonl").exists() else jn.State()
    import time

    from dm_hpc.campaign.stopping import budget_reason, stopped_fidelities

    wave = tasks or c.runner.max_in_flight
    spent = budget_reason(c, state, time.time())  # the manager's own rule: what `run` would do now
    if spent is not None:
        typer.echo(f"plan (dry run) for campaign {c.name}: {spent}: nothing would be submitted")
        return
    if c.budget.calculations is not None:  # the wave of each fidelity; together they may be capped sooner
        wave = min(wave, c.budget.calculations - len(state.tasks))

    stopped = stopped_fidelities(c, state)
    for why in stopped.values():
        typer.echo(f"{why}: it would submit nothing")
    runner = SlurmRunner(profile, c.run_dir / "slurm", own_folder=True)
    rows, rendered, learned, first = [], [], [], len(state.tasks) + 1
    for fid in (f for f in c.calculations if f.name not in stopped):
        specs = [_spec(c, fid, f"{c.name}-c{first + i:05d}") for i in range(wave)]
        cost = _cost(profile, fid, specs[0], runner)
        rows.append((fid.name, fid.method, cost, wave))
        learned.append(_estimates(profile, fid, specs[0], runner))
        rendered += [(fid.name, text) for text in runner.preview(specs)]
    from dm_hpc.runners import limits

    for why in limits.unknown_names(profile.partition, profile.account, profile.qos):
        typer.echo(f"warning: site {profile.name}: {why}; sbatch would refuse these jobs or charge another account")
    _summary(c, profile, site_path, state, rows, slurmcli.remaining_core_hours(profile.account)[1],
             sum(1 for _ in rendered))
    for line in learned:
        typer.echo(line)
    if scripts:
        here = f"{Path.cwd()}/"
        if any(here in text for _, text in rendered):
            typer.echo(f"(paths below the working folder are shown relative to it; the submitted "
                       f"scripts use absolute paths)")
        for name, text in rendered:
            typer.echo(f"\n# ---- job script: fidelity {name} " + "-" * 40)
            typer.echo(text.rstrip("\n").replace(here, ""))


def _spec(c, fid, task_id: str):
    """The task the campaign manager would make (its run folder, not created)."""
    from dm_hpc.compute import worker_argv
    from dm_hpc.runners import TaskSpec

    workdir = (c.run_dir / "tasks" / task_id).absolute()
    return TaskSpec(task_id=task_id, name=f"{c.name} {fid.name} {task_id}", method=fid.method,
                    argv=worker_argv(workdir / "task.json"), workdir=workdir, cores=fid.cores,
                    walltime_s=int(fid.walltime), campaign=c.name, group=fid.name)


def _cost(profile, fid, spec, runner) -> tuple[float, float, float, int, int]:
    """(run time s, core-h, GPU-h) per task, and the cores and GPUs the job asks for. The cost
    model (learned, else the prior) gives the run time on the job's cores; a job is charged its
    allocated cores (and GPUs) for that time."""
    from dm_hpc.runners import costs
    from dm_hpc.runners.sbatch import resolve
    from dm_hpc.runners.slurm import TYPICAL_ATOMS

    shape = resolve(profile, spec)
    cores = shape.total_cores
    if fid.cost != "auto":  # the campaign states core-hours per calculation
        seconds = float(fid.cost) * 3600 / cores
    else:
        est = costs.runtime(runner.costs(spec.campaign), fid.method, cores, TYPICAL_ATOMS,
                            fallback_s=spec.walltime_s)
        seconds = est.median if est else spec.walltime_s
    return seconds, seconds * cores / 3600, seconds * shape.gpus / 3600, cores, shape.gpus


def _estimates(profile, fid, spec, runner) -> str:
    """One line per fidelity: run time and peak memory per task with 90 % ranges and the runs
    behind them, and the requests they give the job."""
    from dm_hpc.runners import costs
    from dm_hpc.runners.sbatch import resolve, slurm_time
    from dm_hpc.runners.slurm import TYPICAL_ATOMS

    shape = resolve(profile, spec)
    book = runner.costs(spec.campaign)
    t = costs.runtime(book, fid.method, shape.total_cores, TYPICAL_ATOMS, fallback_s=spec.walltime_s)
    m = costs.memory(book, fid.method, TYPICAL_ATOMS, shape.memory_mb)
    sized = runner.sized(spec)
    parts = [f"estimate {fid.name} ({fid.method}, {TYPICAL_ATOMS} atoms, {shape.ranks} x "
             f"{shape.cores} cores):"]
    parts.append("run time unknown" if t is None else
                 f"run {_duration(t.median)} ({_duration(t.low)} - {_duration(t.high)}), {_basis(t)}")
    parts.append("peak memory unknown (no accounting, no request)" if m is None else
                 f"peak memory {m.median:,.0f} MB ({m.low:,.0f} - {m.high:,.0f} MB), {_basis(m)}")
    asked = min(sized.walltime_s, profile.max_walltime_s)  # what the script asks (resolve caps it)
    capped = (f" (the campaign's {_duration(sized.walltime_s)} capped at the site's max_walltime_s)"
              if sized.walltime_s > profile.max_walltime_s else "")
    parts.append(f"requests --time={slurm_time(asked)}{capped}"
                 + (f" --mem={sized.memory_mb or shape.memory_mb}M" if (sized.memory_mb or shape.memory_mb) else ""))
    return " ".join(parts[:1]) + " " + "; ".join(parts[1:])


def _basis(est) -> str:
    return (f"learned from {est.runs} run{'s' if est.runs != 1 else ''}" if est.source == "learned"
            else "prior (calculators.yaml / site request), 0 runs")


def _summary(c, profile, site_path, state, rows, allocation: str, n_scripts: int) -> None:
    out = typer.echo
    out(f"plan (dry run) for campaign {c.name} on site {profile.name} ({shown(site_path)}); nothing submitted")
    budget = c.budget.core_hours
    left = None if budget is None else budget - state.core_hours
    out(f"budget: {'no core-hour limit' if budget is None else f'{budget:,.0f} core-h'}"
        f"{'' if left is None else f', used {state.core_hours:,.1f}, left {left:,.1f}'}"
        f"; calculations so far {len(state.tasks)}"
        f"{'' if c.budget.calculations is None else f' of {c.budget.calculations}'}")
    out(f"account {profile.account or '-'}: {allocation}")
    out(f"scheduler: squeue every {profile.poll_interval_s:g} s (backing off to "
        f"{profile.poll_max_interval_s:g} s); tasks shorter than {profile.pack_below_s:g} s "
        f"packed into arrays (%{profile.array_throttle}): {profile.packing}")
    header = (f"{'fidelity':<10} {'method':<8} {'cores':>5} {'gpus':>4} {'run/task':>9} "
              f"{'core-h/task':>11} {'GPU-h/task':>10} {'next wave':>9} {'wave core-h':>11} "
              f"{'wave GPU-h':>10} {'budget allows':>13}")
    out(header)
    for name, method, (seconds, core_h, gpu_h, cores, gpus), wave in rows:
        allows = "-" if left is None or core_h <= 0 else f"{int(left // core_h):,} tasks"
        out(f"{name:<10} {method:<8} {cores:>5} {gpus:>4} {_duration(seconds):>9} {core_h:>11.3g} "
            f"{gpu_h:>10.3g} {wave:>9} {core_h * wave:>11.3g} {gpu_h * wave:>10.3g} {allows:>13}")
    out(f"{n_scripts} job script(s) for the next wave of each fidelity")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
