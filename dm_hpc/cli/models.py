"""Model commands: train (the periodic, possibly distributed, retraining) and models (the registry)."""
from __future__ import annotations

import json
import os
import shlex
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.table import Table

from dm_hpc.cli.output import cli_console, shown
from dm_hpc.cli.store import fail, load_campaign_or_fail
from dm_hpc.learn import SURROGATE_KINDS

console = cli_console()
CampaignFile = Annotated[Path, typer.Argument(help="Campaign YAML file (see campaigns/).")]


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("models")(models)


def _held_out(meta: dict) -> str:
    held = meta.get("held_out") or {}
    if not held.get("n"):
        return "no held-out records (too few to split)"
    rmse = ", ".join(f"{k} {_figure(v, '.4g', k)}" for k, v in (held.get("rmse") or {}).items())
    return f"held-out {held['n']} records: RMSE {rmse}; 90 %-interval coverage {_figure(held.get('coverage90'), '.0%')}"


def train(
    campaign: CampaignFile,
    ranks: Annotated[int, typer.Option(min=1, help="Data-parallel ranks spawned here (under srun or torchrun the launcher sets them).")] = 1,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Optimiser steps between checkpoints (ensemble).")] = 200,
    if_new_data: Annotated[bool, typer.Option("--if-new-data", help="Do nothing when the records are those of the latest version.")] = False,
    surrogate: Annotated[Optional[str], typer.Option(help=f"One of {', '.join(SURROGATE_KINDS)} (default: the campaign's).")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Passes over the data (ensemble; default 20).")] = None,
    register: Annotated[bool, typer.Option("--register/--no-register", help="Register a new model version.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Register a new version even when the latest one was trained "
                                        "on the same records with the same settings.")] = False,
) -> None:
    """Retrain the campaign's surrogate on the store (the periodic retraining job), optionally on N ranks.
    When the latest version holds the same records and settings nothing is registered (exit 0)."""
    from dm_hpc.campaign import registry
    from dm_hpc.learn.distributed import world_from_env

    options = registry.TrainOptions(kind=surrogate, checkpoint_every=checkpoint_every, register=register,
                                    if_new_data=if_new_data, force=force, epochs=epochs)
    try:
        world = world_from_env()
    except RuntimeError as exc:  # every rank meets it: rank 0 alone says so
        if os.environ.get("SLURM_PROCID", "0") == "0":
            fail(str(exc))
        raise typer.Exit(2) from None
    if world is None:
        _run_train(campaign, ranks, None, options)
    else:
        _as_rank(world, lambda: _run_train(campaign, ranks, world, options))


def _as_rank(world, run: Callable[[], None]) -> NoReturn:
    """``run`` the command as rank ``world.rank`` of an srun or torchrun job, and end the process by
    ``exit_rank`` (see it for why not by Python's finalisation) with the status it would have had,
    however it ends. Rank 0 speaks for the job: another rank prints nothing of what it met, which
    rank 0 met too (every rank reads the same campaign and records: ``registry``), but one line
    when something stopped it alone (``_rank_failed``)."""
    from dm_hpc.learn.distributed import exit_rank

    try:
        with _quiet(world.rank != 0):
            run()
        code = 0
    except typer.Exit as done:
        code = done.exit_code
    except SystemExit as done:  # sys.exit below: its status, still by exit_rank
        code = done.code if isinstance(done.code, int) else 1
    except KeyboardInterrupt:  # Ctrl-C on an interactive job: the shell's status for it
        code = 130
    except Exception as exc:
        code = _rank_failed(world, exc)
    exit_rank(code)


def _rank_failed(world, exc: Exception) -> int:
    """Say why ``exc`` stopped this rank, and return the exit status: rank 0 as ``main`` would (a
    file it may not write: one line, exit 2; a bug: its traceback, exit 1); another rank, or rank 0
    when the others did not meet it (``TimeoutError``), in one line that it stopped (a rank it
    trained with ended, say: exit 1)."""
    from dm_hpc.cli import error_line

    line = error_line(exc) if world.rank == 0 else None
    code = 2
    if line is None:
        if world.rank == 0 and not isinstance(exc, TimeoutError):
            traceback.print_exc()
            return 1
        first = (str(exc).strip().splitlines() or [""])[0]
        line, code = f"rank {world.rank} of {world.size} stopped: {type(exc).__name__}: {first}", 1
    with suppress(typer.Exit):  # said; the status is returned
        fail(line, code)
    return code


@contextmanager
def _quiet(quiet: bool) -> Iterator[None]:
    """While it runs, with ``quiet``, nothing is printed through the consoles ``train`` prints its
    lines and ``fail`` its errors through."""
    from dm_hpc.cli import store

    consoles = (console, store.err)
    before = [c.quiet for c in consoles]
    for c in consoles:
        c.quiet = c.quiet or quiet
    try:
        yield
    finally:
        for c, was in zip(consoles, before):
            c.quiet = was


@contextmanager
def _said_on_sigterm(name: str, speaks: bool) -> Iterator[None]:
    """While a training runs, SIGTERM (Slurm's time limit, scancel, timeout) ends it as its default
    would, at once and with nothing else run, but with one line first (``speaks``: rank 0, or the
    only process) and exit 143 (128 + SIGTERM, as a shell reports the signal): the job's log said
    nothing. A kill leaves nothing to clean: a version half-registered is completed or removed by
    the next training (``registry._recover``), an ensemble resumes from its checkpoint."""
    def stop(signum, frame) -> None:
        if speaks:
            os.write(2, (f"error: {name}: training stopped by SIGTERM (a time limit, scancel or timeout) before it "
                         "finished; the next `dm-hpc train` trains again (an ensemble from its last checkpoint) and "
                         "completes or removes what this one left half-done\n").encode())
        os._exit(128 + signal.SIGTERM)

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set a handler
        yield
        return
    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _run_train(path: Path, ranks: int, world, options) -> None:
    if options.kind is not None and options.kind not in SURROGATE_KINDS:
        fail(f"--surrogate must be one of {', '.join(SURROGATE_KINDS)}, not {options.kind!r}")
    c = load_campaign_or_fail(path)
    _inputs_or_fail(c, path)
    with _said_on_sigterm(c.name, world is None or world.rank == 0):
        _train(c, ranks, world, options, path)


def _inputs_or_fail(c, path: Path) -> None:
    """Fail naming a file the training reads that is gone or damaged (a pool campaign's pool was a
    SheetError traceback); the transfer sources are not asked: a version is fitted on the
    campaign's own records."""
    from dm_hpc.campaign import CampaignError
    from dm_hpc.campaign.preflight import check_inputs

    try:
        check_inputs(c, str(path), sources=False)
    except CampaignError as exc:
        fail(str(exc))


def _train(c, ranks: int, world, options, path: Path) -> None:
    from dm_hpc.campaign import registry
    from dm_hpc.data import StoreError

    try:
        if world is None and ranks > 1:
            result = registry.train_local_ranks(c, ranks, options)
        else:
            result = registry.train(c, options, world)
    except registry.NotEnoughData as exc:
        if not options.if_new_data:
            fail(str(exc))
        # the scheduled job's answer before any data: nothing to do, not a failure every night
        console.print(f"nothing to train yet: {exc}", markup=False, highlight=False)
        return
    except (registry.RegistryError, StoreError) as exc:
        fail(str(exc))
    if world is not None and world.rank != 0:
        return  # rank 0 reports for the job
    if result is None:
        last = registry.latest(c)
        console.print(f"{c.name}: no new records since {last.version if last else 'the last version'}; nothing trained")
        return
    if isinstance(result, registry.Unchanged):  # the scheduled job's answer too: exit 0
        v, cur = result.version, registry.current(c)
        status = "" if v.version == cur else (f"; it is a candidate, the current model is {cur or 'none'} "
                                              f"(`dm-hpc models {shlex.quote(str(path))} --promote {v.version}` switches)")
        console.print(f"{c.name}: unchanged: {v.version} holds the model of these {v.meta['records']} records with the "
                      f"same settings ({v.meta.get('surrogate')}, {v.meta.get('world_size', 1)} rank(s)){status}; "
                      f"nothing registered (`dm-hpc train {shlex.quote(str(path))} --force` registers another "
                      "version anyway)", markup=False, highlight=False, soft_wrap=True)
        return
    meta = result.meta if isinstance(result, registry.ModelVersion) else result
    resumed = f", resumed at step {meta['resumed_from_step']}" if meta.get("resumed_from_step") else ""
    for note in meta.get("notes", []):
        console.print(f"note: {note}", markup=False)
    console.print(f"trained on {meta['trained_on']} of {meta['records']} records ({meta['surrogate']}, "
                  f"{meta['world_size']} rank(s) on {meta['device']}, {meta['fit_seconds']} s{resumed})")
    console.print(_held_out(meta))
    decision = meta.get("promotion") or {}
    if not isinstance(result, registry.ModelVersion):
        verdict = "would be promoted" if decision.get("promoted") else "would not be promoted"
        console.print(f"not registered; it {verdict}: {decision.get('reason')}", markup=False)
    elif decision.get("promoted", True):
        console.print(f"registered {result.version} at {shown(result.path)}", highlight=False)
        console.print(f"promoted: {result.version} is now current ({decision.get('reason')})", markup=False)
    else:  # the scheduled job's answer: a clear line, and exit status 0 (nothing failed)
        console.print(f"registered {result.version} at {shown(result.path)}", highlight=False)
        console.print(f"NOT PROMOTED: {result.version} is a candidate; the current model stays "
                      f"{decision.get('compared_with')}: {decision.get('reason')}. "
                      f"To use it anyway: dm-hpc models {shlex.quote(str(path))} --promote {result.version}",
                      markup=False, soft_wrap=True)


def models(
    campaign: CampaignFile,
    promote: Annotated[Optional[str], typer.Option(help="Make this version current, e.g. v0004.")] = None,
    rollback: Annotated[Optional[str], typer.Option(help="Make this earlier version current, e.g. v0002.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the versions as JSON.")] = False,
    export: Annotated[Optional[Path], typer.Option(help="Write a model file (a standard model, with its training "
                                                   "provenance) that another campaign names under transfer: from: - model:.")] = None,
    version: Annotated[Optional[str], typer.Option(help="The version to --export (default: current).")] = None,
    with_transfer: Annotated[bool, typer.Option("--with-transfer", help="--export the model the campaign uses now, "
                                                "its transfer sources included (the improved model of the round trip).")] = False,
    contributor: Annotated[list[str], typer.Option(help="A name credited in the exported file beyond those its "
                                                   "records carry (repeatable).")] = [],  # noqa: B006 -- typer's list default
) -> None:
    """List registered model versions (current marked); --promote / --rollback switch; --export writes a model file."""
    from dm_hpc.campaign import registry

    c = load_campaign_or_fail(campaign)
    if promote is not None and rollback is not None:  # the last one won without a word
        fail("--promote and --rollback each set the current version: give one")
    if "" in (promote, rollback):
        fail(f"--{'promote' if promote == '' else 'rollback'} needs a version, e.g. v0002 (`dm-hpc models "
             f"{shlex.quote(str(campaign))}` lists them)")
    if export is None:  # options of --export alone were accepted and did nothing (review)
        alone = [name for name, given in (("--version", version is not None), ("--with-transfer", with_transfer),
                                          ("--contributor", bool(contributor))) if given]
        if alone:
            fail(f"{', '.join(alone)} {'goes' if len(alone) == 1 else 'go'} with --export FILE: give the file to write")
    elif promote is not None or rollback is not None:
        fail("--export writes a model file; --promote / --rollback switch the current version: run them one "
             "after the other (the export then takes the new current version)")
    else:
        _export(c, export, version, with_transfer, contributor)
        return
    for version, move in ((promote, registry.promote), (rollback, registry.rollback)):
        if version:
            try:
                said = move(c, version)
            except registry.RegistryError as exc:
                fail(str(exc))
            console.print(said, markup=False)
    cur = registry.current(c)
    found = registry.versions(c)
    problems = registry.damaged(c)
    problems += _unfit_current(c, cur, found)
    left = registry.interrupted(c)
    if left is not None:
        problems.append(f"{left}: registered, not made current: its training was interrupted before it made it "
                        "current, as its comparison had decided; the next training makes it current, or now: "
                        f"dm-hpc models {shlex.quote(str(campaign))} --promote {left}")
    for problem in problems:  # on stderr: --json stays one document
        cli_console(stderr=True).print(f"warning: {c.name}: {problem}", markup=False, highlight=False, soft_wrap=True)
    if as_json:
        rows = [{**v.meta, "version": v.version, "current": v.version == cur, "interrupted": v.version == left}
                for v in found]
        print(json.dumps(_json_safe(rows), indent=1, allow_nan=False))  # NaN is not JSON: null instead
        return
    table = Table(title=f"{c.name}: model versions")
    for col in ("version", "created", "records (trained on)", "surrogate", "ranks", "device", "held-out RMSE",
                "coverage 90 %", "status"):
        table.add_column(col)
    for v in found:
        m = v.meta
        held = m.get("held_out") or {}
        # NaN (no held-out value of that property, or none held out): "-", as an absent figure
        rmse = ", ".join(f"{k} {_figure(x, '.4g', k)}" for k, x in (held.get("rmse") or {}).items()) or "-"
        cov = _figure(held.get("coverage90"), ".0%")
        # the export names the rows the model was trained on, the rest were held out to measure it
        trained = f" ({m['trained_on']})" if m.get("trained_on") not in (None, m["records"]) else ""
        table.add_row(v.version, m["created"], f"{m['records']}{trained}", str(m.get("surrogate", "-")),
                      str(m.get("world_size", 1)), str(m.get("device", "cpu")), rmse, cov,
                      _status(v, cur, left))
    from dm_hpc.cli.tables import fitted

    console.print(fitted(table, console))


def _unfit_current(c, cur: str | None, found) -> list[str]:
    """The warning that the current version no longer fits the campaign file's design space (an
    element or process parameter added or removed since: ``registry.inputs_problem``), so no
    prediction with it can be made until a version is trained on it; empty when it fits."""
    from dm_hpc.campaign import CampaignError, registry
    from dm_hpc.campaign.strategy import design_space

    version = next((v for v in found if v.version == cur), None)
    if version is None or version.meta.get("inputs") is None:
        return []
    try:
        space = design_space(c)
    except (CampaignError, OSError, ValueError):  # a pool gone: `dm-hpc validate` names it
        return []
    why = registry.inputs_problem(c, cur, version.meta, space)
    if why is None:
        return []
    return [f"the current version does not fit the campaign file: {why.removeprefix(c.name + ': ')}"]


def _figure(x, spec: str, prop: str | None = None) -> str:
    """``x`` formatted by ``spec`` (with ``prop``'s canonical unit: RMSEs are canonical); "-" when
    there is none (None, or NaN: nothing held out to measure it)."""
    from dm_hpc.data import with_unit

    if x is None or x != x:
        return "-"
    return with_unit(prop, x, spec) if prop is not None else format(x, spec)


def _export(c, out: Path, version: str | None, with_transfer: bool, contributors: list[str]) -> None:
    from dm_hpc.campaign import CampaignError, model_export, registry, standard
    from dm_hpc.data import StoreError

    if with_transfer and version:
        fail("--with-transfer exports the campaign's model now; --version exports a registered one: give one")
    try:
        if with_transfer:
            path = model_export.export_campaign_model(c, out, contributors)
        else:
            path = model_export.export_version(c, version, out, contributors)
        file = standard.load_model_file(path)
    except (registry.RegistryError, CampaignError, StoreError, OSError) as exc:
        fail(str(exc))
    p = file.provenance
    rec = p["records"]
    console.print(f"wrote {path}: {p['kind']} of {c.name}{' ' + p['version'] if p.get('version') else ''} "
                  f"({p['model_kind']}, {rec['trained_on']} records, ids sha256 {str(rec['sha256'])[:12]}; "
                  f"file sha256 {file.sha256[:12]})", markup=False, highlight=False, soft_wrap=True)
    # every record inside the file, its model sources' included (``standard.held_levels``)
    levels = standard.held_levels(p) or {}
    above = {k: n for k, n in levels.items() if k in ("restricted", "embargoed", "unknown") and n}
    if levels:
        # the file carries its training inputs and values: say what it holds before it is shared
        held = (p.get("source_records") or {}).get("count", 0)
        # a cold model holds no source; a file from before the flag is read as holding its chain's
        inside = not p.get(standard.LEVELS_WITH_MODEL_SOURCES) or p.get("model_kind") != "transfer:cold"
        nested = sum(sum((standard.held_levels(d) or {}).values()) for d in p.get("derived_from") or ()) if inside else 0
        parts = [f"{rec['trained_on']} its own"] + ([f"{held} its sources'"] if held else []) + (
            [f"{nested} inside its model sources"] if nested > 0 else [])
        whose = f" ({', '.join(parts)})" if len(parts) > 1 else ""
        console.print(f"the records inside the file{whose} by access level: "
                      + ", ".join(f"{n} {k}" for k, n in sorted(levels.items())), markup=False, highlight=False)
    withdrawn = rec.get("withdrawn_since") or {}
    if any(withdrawn.values()):
        said = " and ".join(f"{n} {how}" for how, n in withdrawn.items() if n)
        console.print(f"[yellow]warning[/]: of the {rec['trained_on']} records it was trained on, {said} since "
                      "(it still carries them, and credits their contributors); train a new version to leave "
                      "them out (dm-hpc train)", highlight=False)
    if above:
        console.print(f"[yellow]warning[/]: it holds {', '.join(f'{n} {k}' for k, n in above.items())} record(s); "
                      "share the file only with people cleared for them", highlight=False)
    for d in p.get("derived_from") or ():
        console.print(f"derived from {d['file']} (sha256 {d['sha256'][:12]}): {d['kind']} of {d['campaign']}",
                      markup=False, highlight=False, soft_wrap=True)


def _json_safe(value):
    """``value`` with every non-finite float (an RMSE over no held-out record) as None."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _status(v, cur: str | None, interrupted: str | None) -> str:
    if v.version == cur:
        return "current"
    if v.version == interrupted:
        return "not made current (training interrupted)"
    promotion = v.meta.get("promotion") or {}
    return "" if promotion.get("promoted", True) else "candidate (not promoted)"
