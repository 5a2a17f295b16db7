"""`dm-hpc bench ...`: offline benchmarks of the active-learning loop (pool-based, Liang et al.)."""
from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

bench_app = typer.Typer(help="Offline (pool-based) benchmarks of acquisition strategies.", no_args_is_help=True)


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


@contextmanager
def _pool_warnings() -> Iterator[None]:
    """Each ``PoolWarning`` of the benchmark as one ``warning: ...`` line on stderr when it is raised
    (before a long run, not after it), every time; other warnings as Python shows them."""
    from dm_hpc.bench import PoolWarning

    with warnings.catch_warnings():  # restores showwarning and the filters on the way out
        warnings.simplefilter("always", PoolWarning)
        show = warnings.showwarning

        def line(message, category, filename, lineno, file=None, text=None) -> None:
            if issubclass(category, PoolWarning):
                typer.echo(f"warning: {message}", err=True)
            else:
                show(message, category, filename, lineno, file, text)

        warnings.showwarning = line
        yield


class _Heartbeat:
    """The benchmark's progress callback (one call per proposal): the bar on a terminal; in a log
    (a batch job, a pipe) a line every ``every`` seconds, where the bar is off and a run of 10
    seeds x 200 proposals was ten minutes of nothing."""

    def __init__(self, advance, quiet: bool, seeds: int, every: float = 30.0) -> None:
        import time

        self.advance, self.quiet, self.seeds, self.every = advance, quiet, seeds, every
        self.start = self.last = time.monotonic()
        self.steps = 0

    def __call__(self) -> None:
        import time

        self.advance()
        self.steps += 1
        now = time.monotonic()
        if not self.quiet and now - self.last >= self.every:
            self.last = now
            typer.echo(f"bench pool: {self.steps} proposals over {self.seeds} seed(s) so far, "
                       f"{now - self.start:.0f} s", err=True)


def _split(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


@bench_app.command("pool")
def pool(
    data: Path = typer.Option(..., "--data", help="CSV file: one row per measurement"),
    inputs: str = typer.Option(..., "--inputs", help="comma-separated input columns"),
    objective: str = typer.Option(..., "--objective", help="objective column (several, comma-separated, for --mode multiobjective)"),
    goal: str = typer.Option("max", "--goal", help="max or min (comma-separated per objective in multiobjective mode)"),
    budget: int = typer.Option(100, "--budget", min=3, help="evaluations per campaign, including the 2 initial ones"),
    seeds: int = typer.Option(10, "--seeds", min=1, help="campaigns with different random initial points"),
    strategy: str = typer.Option("default", "--strategy", help="random, gp-ei, gp-lcb, ensemble, default"),
    out: Path = typer.Option(..., "--out", help="output folder for summary.json and the plot"),
    mode: str = typer.Option("single", "--mode", help="single, multiobjective or multifidelity"),
    fidelity_column: str = typer.Option("", "--fidelity-column", help="multifidelity: column that is 1 on target (experimental) rows"),
    cost_ratio: float = typer.Option(10.0, "--cost-ratio", help="multifidelity: cost of a target evaluation / cost of a cheap one"),
    composition_column: str = typer.Option("", "--composition-column", help="featurise this formula column instead of --inputs"),
    source: list[Path] = typer.Option([], "--source", help="related CSV to transfer from (repeatable; columns matched by name, "
                                      "its columns other than the objective are its inputs, an input a table lacks is 0 there; "
                                      "a table of fractions summing to 1 is a composition, its model reads a row's shares of its elements)"),
) -> None:
    """Run the pool-based benchmark and write OUT/summary.json plus a PNG."""
    from dm_hpc.bench import STRATEGIES

    if not data.is_file():
        _fail(f"data file {data} not found")
    if mode not in ("single", "multiobjective", "multifidelity"):
        _fail(f"--mode must be single, multiobjective or multifidelity, got {mode!r}")
    # read by the multi-fidelity benchmark only: elsewhere they were dropped without a word (a
    # formula column named, a benchmark run on --inputs alone, its summary read as the formula's)
    for flag, given in (("--composition-column", composition_column), ("--fidelity-column", fidelity_column)):
        if given and mode != "multifidelity":
            _fail(f"{flag} is read by --mode multifidelity only; the {mode} benchmark featurises the --inputs "
                  "columns (give a composition as its fraction columns there)")
    if mode == "single" and strategy not in STRATEGIES:
        _fail(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    for path in source:
        if not path.is_file():
            _fail(f"source file {path} not found")
    if source and (mode != "single" or strategy != "default"):
        _fail("--source works with --mode single and --strategy default (the transfer default)")
    goals = _split(goal)
    if any(g not in ("max", "min") for g in goals):
        _fail(f"--goal must be max or min, got {goal!r}")
    if mode != "multiobjective" and len(goals) > 1:
        _fail(f"--goal {goal!r}: one goal for --mode {mode} (one objective); several are for --mode multiobjective")
    from rich.progress import Progress

    from dm_hpc.bench import bench_pool

    try:
        with _pool_warnings(), Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task(f"{strategy} on {data.name}", total=None)
            step = _Heartbeat(lambda: bar.advance(task), quiet=sys.stderr.isatty(), seeds=seeds)
            if mode == "single":
                summary = bench_pool(data, _split(inputs), objective, goals[0], budget, seeds, strategy, out, progress=step,
                                     sources=source)
            elif mode == "multiobjective":
                from dm_hpc.bench.modes import bench_pool_multiobjective

                summary = bench_pool_multiobjective(data, _split(inputs), _split(objective), goals, budget, seeds, strategy, out, progress=step)
            else:
                from dm_hpc.bench.modes import bench_pool_multifidelity

                if not fidelity_column:
                    _fail("--mode multifidelity needs --fidelity-column")
                summary = bench_pool_multifidelity(
                    data, _split(inputs), objective, goals[0], fidelity_column, budget, seeds, out,
                    cost_ratio=cost_ratio, composition_column=composition_column or None, progress=step,
                )
    except ValueError as exc:
        _fail(str(exc))
    keys = [k for k in ("n_pool", "n_top", "af", "ef_peak", "seconds_per_step", "hv_fraction_final", "expt_evals_to", "transfer") if k in summary]
    typer.echo(json.dumps({k: summary[k] for k in keys}))


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
