"""Campaign commands: init, validate, run, resume, status, suggest, ingest, report, stop, gaps."""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from dm_hpc.cli.output import cli_console, shown
from dm_hpc.cli.store import fail

if TYPE_CHECKING:
    from dm_hpc.campaign.labsheet import SuggestionSheet

console = cli_console()
CampaignFile = Annotated[Path, typer.Argument(help="Campaign YAML file (see campaigns/).")]
TEMPLATES = {"demo": "hea-demo.yaml", "turbine": "hea-turbine.yaml", "pool": "oer-catalyst.yaml"}
#: The folder of the templates `dm-hpc init` copies when the package is installed away from its
#: checkout (``pip install .`` in a container image: no ``campaigns/`` beside it); the images set
#: it to their copy of the repository's ``campaigns/``, as DM_HPC_CONFIG_DIR (runners.site).
CAMPAIGNS_DIR_ENV = "DM_HPC_CAMPAIGNS_DIR"


def campaigns_dir() -> Path:
    """The campaign templates: ``$DM_HPC_CAMPAIGNS_DIR`` when set, else the checkout's ``campaigns/``."""
    return Path(os.environ.get(CAMPAIGNS_DIR_ENV) or Path(__file__).resolve().parents[2] / "campaigns")


def register(app: typer.Typer) -> None:
    for fn in (init, validate, run, resume, status, suggest, ingest, report, stop, gaps):
        app.command(fn.__name__)(fn)


def _load(path: Path):
    import warnings

    from dm_hpc.campaign import CampaignError, load_campaign

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            c = load_campaign(path)
        except CampaignError as exc:
            fail(str(exc))
    for w in caught:
        console.print(f"warning: {w.message}", markup=False, highlight=False, soft_wrap=True)
    from dm_hpc.campaign.lock import RunFolderTakenError, check_run_folder

    try:  # before anything reads or writes another campaign's journal as this one's
        check_run_folder(c.run_dir, c.name, claim=False)
    except RunFolderTakenError as exc:
        fail(str(exc))
    return c


def experiments(n: int, new: str = "") -> str:
    """``n`` suggested experiments, in the singular for one ('wrote 1 suggested experiments')."""
    return f"{n} {new}suggested experiment{'' if n == 1 else 's'}"


def init(
    name: Annotated[str, typer.Argument(help="Campaign name (letters, digits, _ . -).")],
    template: Annotated[str, typer.Option(help=f"One of {', '.join(TEMPLATES)}.")] = "demo",
    out: Annotated[Optional[Path], typer.Option(help="Where to write (default campaigns/NAME.yaml).")] = None,
) -> None:
    """Scaffold a campaign file from a template, keeping its comments; its results go to
    runs/NAME under the working folder (paths in the file are relative to the file)."""
    import yaml

    from dm_hpc.campaign import CampaignError, parse_campaign

    if template not in TEMPLATES:
        fail(f"--template must be one of {', '.join(TEMPLATES)}")
    source = campaigns_dir() / TEMPLATES[template]
    if not source.is_file():
        where = (f"${CAMPAIGNS_DIR_ENV} is {os.environ[CAMPAIGNS_DIR_ENV]}" if os.environ.get(CAMPAIGNS_DIR_ENV)
                 else f"{CAMPAIGNS_DIR_ENV} is not set and the package has no campaigns/ folder beside it "
                      f"(an installed package)")
        fail(f"template {template!r} not found: no {source} ({where}); set {CAMPAIGNS_DIR_ENV} to a folder "
             f"holding the repository's campaign templates ({', '.join(TEMPLATES.values())})")
    out = out or Path("campaigns") / f"{name}.yaml"
    if out.exists():
        fail(f"{out} exists; choose another --out")
    text = scaffold(source.read_text(), name, source.parent, out.absolute().parent, Path.cwd() / "runs" / name)
    try:
        parse_campaign(yaml.safe_load(text), str(out), base_dir=out.absolute().parent)
    except CampaignError as exc:
        fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Scaffolded from {source.name} by `dm-hpc init`; edit the space, objectives and budget.\n"
                   f"# Paths are relative to this file. Every field: docs/guide/campaign-file.md\n" + text)
    typer.echo(f"wrote {out}; check it with `dm-hpc validate {shlex.quote(str(out))}`")  # a path with spaces, pasted


_PATH_VALUE = re.compile(r"\b(store|workdir|pool|pool_map|emulate_from|emulate_map|site):(\s*)([^\s,}#]+)")


def scaffold(text: str, name: str, source_dir: Path, out_dir: Path, run_dir: Path) -> str:
    """A template's text for a new campaign: comments kept, ``name`` set, ``store`` and ``workdir``
    put in ``run_dir``, and other relative paths rebased from ``source_dir`` to ``out_dir``."""
    import os

    def rebase(m: re.Match) -> str:
        key, space, value = m.groups()
        if key == "store":
            new = os.path.relpath(run_dir / "store", out_dir)
        elif key == "workdir":
            new = os.path.relpath(run_dir, out_dir)
        elif Path(value).is_absolute() or (key == "site" and not Path(value).suffix):
            new = value
        else:  # a file beside the template: relative while both lie under the working folder
            target, here = (source_dir / value).resolve(), Path.cwd().resolve()
            new = (os.path.relpath(target, out_dir) if target.is_relative_to(here)
                   and out_dir.resolve().is_relative_to(here) else str(target))
        return f"{key}:{space}{new}"

    lines = []
    for line in text.splitlines():
        body, hash_, comment = line.partition("#") if not line.lstrip().startswith("#") else ("", "", line)
        if re.match(r"^name:", body):
            body = f"name: {name}" + (" " if hash_ else "")
        lines.append(_PATH_VALUE.sub(rebase, body) + hash_ + comment if body else comment)
    return "\n".join(lines) + "\n"


def _preflight(c, origin: Path, check_codes: bool = False, reading: bool = False, sources: bool = True) -> None:
    """Fail with every problem of ``c`` (``preflight.check``); ``reading``: a command that only
    reads the campaign (report, suggest, design, transfer) asks only for the files it reads
    (``preflight.check_inputs``), not for what only a run needs; ``sources`` false: nor for the
    transfer sources (the report leaves out one it cannot read)."""
    from dm_hpc.campaign import CampaignError
    from dm_hpc.campaign.preflight import check, check_inputs, transfer_warnings

    try:
        if reading:
            check_inputs(c, str(origin), sources=sources)
        else:
            check(c, str(origin), check_codes=check_codes)
    except CampaignError as exc:
        fail(str(exc))
    for why in transfer_warnings(c):  # the run can go on without the source; the user should know
        console.print(f"warning: {why}", markup=False, highlight=False, soft_wrap=True)


def _model_warning(c) -> None:
    """Say when the campaign's records cannot train a model (and why), else nothing."""
    if not Path(c.store).exists():  # nothing to learn from yet (and no pandas or h5py to import)
        return
    from dm_hpc.campaign.dataset import unfit_reason
    from dm_hpc.data import Store, StoreError

    try:
        with Store.open(c.store, "r") as store:
            why = unfit_reason(c, store.to_dataframe())
    except StoreError:
        return  # `dm-hpc store check` is the place for a damaged store
    if why:
        console.print(f"warning: {why}", markup=False, highlight=False, soft_wrap=True)


def validate(campaign: CampaignFile) -> None:
    """Check a campaign file and what it names (methods for every element, files); errors name
    the field and what was expected."""
    c = _load(campaign)
    _preflight(c, campaign, check_codes=False)
    if c.space.elements:
        space = f"{len(c.space.elements)} elements"
    else:  # a pool campaign has no element list; its candidates were read by the preflight (cached)
        from dm_hpc.campaign.candidates import pool_compositions

        space = f"{len(pool_compositions(c))} candidates from {Path(c.space.pool).name}"
    console.print(f"ok: {c.name}: {space}, {len(c.objectives)} objective(s), "
                  f"fidelities {', '.join(f.name for f in c.fidelities)}, runner {c.runner.kind.value}")


def run(
    campaign: CampaignFile,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
    max_seconds: Annotated[Optional[float], typer.Option(help="Pause after this many seconds (resume later).")] = None,
    clear_stop: Annotated[bool, typer.Option("--clear-stop", help="Drop a pending stop request first.")] = False,
) -> None:
    """Run a campaign, or resume an interrupted one; ends with a report and the lab sheet."""
    from dm_hpc.campaign import journal as jn
    from dm_hpc.campaign.lab import write_suggestions
    from dm_hpc.campaign.labsheet import SuggestionSheet
    from dm_hpc.campaign.manager import STOP_FILE, STOPPED_BY_REQUEST, CampaignBusyError, CampaignManager
    from dm_hpc.campaign.ownership import manager_running

    c = _load(campaign)
    _preflight(c, campaign, check_codes=True)
    stop_file = c.run_dir / STOP_FILE
    if stop_file.exists() and not manager_running(c.run_dir):
        if clear_stop:
            stop_file.unlink(missing_ok=True)
            console.print("cleared the pending stop request", highlight=False)
        else:  # left by a run that was killed before it could serve it
            console.print(f"a stop request is pending ({stop_file}): this run stops at once; "
                          f"`dm-hpc resume {campaign}` drops it and continues", highlight=False, soft_wrap=True)
    from dm_hpc.runners import UnrecordedLaunch
    from dm_hpc.runners.slurmcli import SlurmError

    try:
        summary = CampaignManager(c, console=console, quiet=quiet).run(max_seconds=max_seconds)
    except CampaignBusyError as exc:
        fail(str(exc))
    except UnrecordedLaunch as exc:  # queued, but its journal line could not be written: the fix is the user's
        fail(f"{exc}; `dm-hpc run {shlex.quote(str(campaign))}` then re-attaches it by its name", code=1)
    except SlurmError as exc:  # the scheduler refused (a partition it does not know, ...): its words, no traceback
        fail(f"{exc}; everything up to here is journalled: fix the site profile "
             f"({c.runner.site or 'local'}) and `dm-hpc run {shlex.quote(str(campaign))}` resumes", code=1)
    except KeyboardInterrupt:
        console.print(f"\ninterrupted; every step so far is journalled: `dm-hpc run {campaign}` resumes")
        raise typer.Exit(130)
    from dm_hpc.campaign.report import write_report

    target = SuggestionSheet(c)  # the run folder's pending sheet, as `suggest` writes it
    sheet, kept, n_lab = target.path(), [], 0
    if c.lab is not None:
        state = jn.replay(c.run_dir / "journal.jsonl")  # once, for the check and the sheet
        kept = target.typed(state)
        n_lab = 0 if kept else write_suggestions(c, sheet, state)
    report_path = write_report(c)
    console.print(f"[bold]{c.name}[/]: {summary.reason}", soft_wrap=True)
    if summary.reason.startswith(STOPPED_BY_REQUEST):
        console.print(f"  `dm-hpc resume {campaign}` continues it", highlight=False, soft_wrap=True)
    for note in summary.notes:
        console.print(f"  note: {note}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"  calculations: {summary.ingested} ingested, {summary.failed} failed, "
                  f"{summary.submitted} submissions; {summary.core_hours:.3f} core-hours", soft_wrap=True)
    if summary.utilisation is None:  # a share of no time is no number (it printed "-0%")
        console.print("  worker utilisation: none (the run stopped as it started: no time for calculations)",
                      highlight=False)
    else:
        console.print(f"  worker utilisation: {summary.utilisation:.0%}", highlight=False)
    for prop, value in summary.best.items():  # in the unit the campaign file wrote for it (summary.best_unit)
        fid = summary.best_fidelity.get(prop)
        console.print(f"  best {prop}: {value:.6g} {summary.best_unit[prop]}{f' ({fid})' if fid else ''}",
                      soft_wrap=True, highlight=False, markup=False)
    console.print(f"  HDF5 store:  {shown(c.store)}", soft_wrap=True, highlight=False)
    console.print(f"  report:      {shown(report_path)} (plots beside it)", soft_wrap=True, highlight=False)
    if kept:
        console.print(f"  lab sheet:   {shown(sheet)} kept: {_typed_text(kept)}; `dm-hpc ingest "
                      f"{shlex.quote(str(campaign))} {shlex.quote(str(sheet))}` takes them", soft_wrap=True,
                      highlight=False, markup=False)
    elif c.lab is not None:
        console.print(f"  lab sheet:   {shown(sheet)} ({experiments(n_lab)})", soft_wrap=True, highlight=False)
    _model_warning(c)
    if summary.failed and not summary.ingested:
        fail(f"every calculation failed ({summary.failed}); see `dm-hpc status {campaign}`", code=1)


def resume(
    campaign: CampaignFile,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
    max_seconds: Annotated[Optional[float], typer.Option(help="Pause after this many seconds (resume later).")] = None,
) -> None:
    """Continue a stopped or interrupted campaign: drop a pending stop request, then run
    (the same as `run --clear-stop`)."""
    run(campaign, quiet=quiet, max_seconds=max_seconds, clear_stop=True)


def status(campaign: CampaignFile) -> None:
    """Tasks, lab batches and budget of a campaign, from its journal."""
    from dm_hpc.campaign import journal as jn

    c = _load(campaign)
    state = jn.replay(c.run_dir / "journal.jsonl")
    if state.phase == "not started":
        console.print(f"{c.name}: not started")
        return
    counts: dict[str, int] = {}
    for t in state.tasks.values():
        counts[t.status] = counts.get(t.status, 0) + 1
    from dm_hpc.cli.tables import fitted

    table = Table(title=c.name)
    table.add_column("what")
    table.add_column("count", justify="right")
    for key in (jn.PLANNED, jn.SUBMITTED, jn.INGESTED, jn.FAILED):
        table.add_row(f"tasks {key}", str(counts.get(key, 0)))
    table.add_row("lab experiments suggested", str(len(state.lab)))
    table.add_row("lab experiments measured", str(sum(e.record_id is not None for e in state.lab.values())))
    table.add_row("lab experiments not made", str(sum(e.not_made for e in state.lab.values())))
    held = {sid: e.held for sid, e in state.lab.items() if e.held}
    if held:
        table.add_row("lab values held (not stored)", str(len(held)))
    table.add_row("surrogate refits during runs", str(state.refits))
    table.add_row("lab batches with predictions", f"{state.predicted_batches} of {state.lab_batches}")
    table.add_row("core-hours used", f"{state.core_hours:.3f}")
    console.print(fitted(table, console))
    console.print(f"  {state.phase}", highlight=False)
    from dm_hpc.campaign.stopping import stopped_fidelities

    for why in stopped_fidelities(c, state).values():
        console.print(f"  {why}", highlight=False)
    for sid, why in held.items():
        console.print(f"  {sid}: {why} (dm-hpc ingest {shlex.quote(str(campaign))} SHEET --confirm {sid})",
                      highlight=False, markup=False, soft_wrap=True)
    for t in state.tasks.values():
        if t.status == jn.FAILED:
            console.print(f"  failed {t.task_id}: {t.error}", highlight=False)
    measured = any(e.record_id for e in state.lab.values()) or any(t.status == jn.INGESTED for t in state.tasks.values())
    if measured and not state.refits and not state.predicted_batches:  # records, yet no model ever fitted
        if state.unfit is None:
            _model_warning(c)  # not checked since the last records came in: read the store to say why
        elif state.unfit:  # checked at the last lab ingest (the journal says it): no store to read
            console.print(f"warning: {state.unfit}", markup=False, highlight=False, soft_wrap=True)


def _typed_text(samples: list[str]) -> str:
    shown_ids = ", ".join(samples[:5]) + (f" and {len(samples) - 5} more" if len(samples) > 5 else "")
    return f"it holds what the lab typed for {len(samples)} sample(s) not yet ingested ({shown_ids})"


def _keep_typed_sheet(target: SuggestionSheet, state, campaign: Path) -> None:
    """Fail, writing nothing, when the run folder's pending sheet holds values the lab typed and
    nobody ingested (``SuggestionSheet.typed``): writing it again would blank them."""
    typed = target.typed(state)
    if typed:
        sheet = target.path()
        fail(f"{shown(sheet)} not written: {_typed_text(typed)}; `dm-hpc ingest {shlex.quote(str(campaign))} "
             f"{shlex.quote(str(sheet))}` takes them, or --out FILE writes the pending experiments elsewhere")


def suggest(
    campaign: CampaignFile,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Sheet to write (.xlsx or .csv; default: "
                                                "lab-suggestions.xlsx in the run folder, with -n N "
                                                "lab-batch-NNN.xlsx there, NNN the batch's number).")] = None,
    n: Annotated[Optional[int], typer.Option("-n", min=1, help="Propose N new experiments from the current "
                                                           "model and journal them (default: write the "
                                                           "pending ones).")] = None,
) -> None:
    """Write suggested experiments as a lab sheet in the standard template: the pending ones, or
    with -n N, N new ones from the current model (running or finished campaign). Without --out
    the sheet goes to the campaign's run folder, where the report lists it."""
    from dm_hpc.campaign.labsheet import SuggestionSheet, default_sheet

    c = _load(campaign)
    if c.lab is None:
        fail(f"campaign {c.name!r} has no experiment fidelity, so nothing is suggested to a lab")
    target = SuggestionSheet(c, out)
    if n is None:
        _preflight(c, campaign, reading=True, sources=False)  # the store path and the pool, as `report` asks
        from dm_hpc.campaign import journal as jn
        from dm_hpc.campaign.labsheet import write_suggestions

        state = jn.replay(c.run_dir / "journal.jsonl")  # once: the sheet and the budget's line below both read it
        _keep_typed_sheet(target, state, campaign)  # the copy the report points the lab at: not written over what it typed
        try:
            sheet = target.prepared()
            k = write_suggestions(c, sheet, state)
        except (ValueError, OSError) as exc:
            fail(str(exc))
        console.print(f"wrote {experiments(k)} to {shown(sheet)}", highlight=False, soft_wrap=True)
        if k == 0:
            done = len(state.lab)
            if c.budget.lab_experiments is not None and done >= c.budget.lab_experiments:
                # `-n N` would only refuse: say what would let it suggest more
                console.print(f"  every suggested experiment is answered and the lab budget is used up ({done} of "
                              f"{c.budget.lab_experiments}); raise budget.lab_experiments in {shlex.quote(str(campaign))} "
                              f"for more", highlight=False, markup=False, soft_wrap=True)
            else:
                more = f"dm-hpc suggest {shlex.quote(str(campaign))} -n N" + (f" --out {shlex.quote(str(out))}" if out else "")
                console.print(f"  every suggested experiment is measured (or none was suggested yet); ask for new ones "
                              f"with `{more}`",
                              highlight=False, markup=False, soft_wrap=True)
        return
    from dm_hpc.campaign.suggest import batch_table, request_lab_batch
    from dm_hpc.data import StoreError
    from dm_hpc.data.sheetfiles import check_writable
    from dm_hpc.campaign.labsheet import write_lab_sheet

    _preflight(c, campaign, check_codes=False)
    try:
        check_writable(target.next_batch())  # before the batch is journalled: a failed write must not spend the lab budget
        batch = request_lab_batch(c, n)
    except (ValueError, OSError, StoreError) as exc:
        fail(str(exc))
    if not batch.samples:  # no batch, no number: an empty sheet (--out's too) would only mislead
        console.print(f"no new suggested experiment: {batch.why_empty}", highlight=False, markup=False, soft_wrap=True)
        _model_warning(c)
        return
    sheet = target.path(batch.batch)
    try:
        write_lab_sheet(c, batch_table(c, batch.samples), sheet)
    except (ValueError, OSError) as exc:
        fail(f"{exc}\n{len(batch.samples)} experiment(s) were suggested and journalled; `dm-hpc suggest "
             f"{shlex.quote(str(campaign))}` writes them, with the other pending ones, to {shown(default_sheet(c))}")
    console.print(f"wrote {experiments(len(batch.samples), 'new ')} to {shown(sheet)}", highlight=False, soft_wrap=True)
    if batch.random_start:
        console.print(f"  {batch.random_start}", highlight=False, markup=False, soft_wrap=True)
    if batch.why_empty:
        console.print(f"  {'none' if not batch.samples else f'only {len(batch.samples)} of {n}'}: "
                      f"{batch.why_empty}", highlight=False)
    _model_warning(c)


def _file_stamp(path: Path | None) -> tuple[int, int] | None:
    """(modification time in ns, size) of ``path``; None when there is no such file."""
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return None if st is None else (st.st_mtime_ns, st.st_size)


def _annotated_line(annotated: Path | None, earlier: tuple[int, int] | None) -> str:
    """The refusal's last line about ``--annotated``: the copy when this ingest wrote it; a file
    refused before its cells were read gets none, and a file already at that path (``earlier``:
    its stamp before) is an older sheet's copy, whose green cells would contradict the refusal."""
    if annotated is None:
        return ""
    now = _file_stamp(annotated)
    if now is not None and now != earlier:
        return f"\nannotated copy: {annotated}"
    older = f" ({annotated} is from an earlier ingest)" if now is not None else ""
    return f"\nno annotated copy written: the file was refused before its cells were read{older}"


def ingest(
    campaign: CampaignFile,
    sheet: Annotated[Path, typer.Argument(help="The filled lab sheet (.xlsx or .csv).")],
    replace: Annotated[bool, typer.Option("--replace", help="Store re-sent values as corrections; the old ones stay, marked superseded.")] = False,
    sheet_name: Annotated[Optional[str], typer.Option("--sheet", help="Workbook sheet to read (default: the first).")] = None,
    confirm: Annotated[Optional[list[str]], typer.Option("--confirm", help="SAMPLE_ID whose value outside the model's 99 % interval is right (repeatable).")] = None,
    annotated: Annotated[Optional[Path], typer.Option("--annotated", help="Write a copy of the sheet (.xlsx) with every cell's verdict.")] = None,
) -> None:
    """Take a filled lab sheet back as experimental records, by sample id (all or nothing).
    Values far outside the model's prediction are held until confirmed."""
    from dm_hpc.campaign.annotate import take_and_annotate
    from dm_hpc.data import StoreError
    from dm_hpc.data.sheets import SheetError

    c = _load(campaign)
    if not sheet.exists():
        fail(f"{sheet}: no such file")
    earlier = _file_stamp(annotated)
    try:
        result = take_and_annotate(c, sheet, annotated, replace=replace, sheet=sheet_name, confirm=tuple(confirm or ()))
    except (SheetError, StoreError) as exc:
        fail(str(exc) + _annotated_line(annotated, earlier))
    for warning in result.warnings:
        console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    if result.not_made:
        console.print(f"not made (marked so): {', '.join(result.not_made)}", markup=False, highlight=False)
    if result.pending:
        console.print(f"still pending (blank measurement cells): {', '.join(result.pending)}", markup=False, highlight=False)
    for hold in result.held:
        console.print(f"{hold.message()}: dm-hpc ingest {campaign} {sheet} --confirm {hold.sample_id}",
                      markup=False, highlight=False, soft_wrap=True)
    if result.confirmed:
        console.print(f"confirmed despite the model: {', '.join(result.confirmed)}", markup=False, highlight=False)
    if annotated:
        console.print(f"annotated copy: {annotated}", markup=False, highlight=False)
    for line in result.conversions:
        console.print(line, markup=False, highlight=False)
    # a correction and a completion are each a new record superseding a stored one: counted among the new
    replaced = (f", {result.replaced} correcting stored value{'s' if result.replaced != 1 else ''}"
                if result.replaced else "")
    replaced += (f", {result.completed} completing {'a stored sample' if result.completed == 1 else 'stored samples'}"
                 if result.completed else "")
    if result.queued:
        console.print(f"validated {result.records} records{replaced}; the running campaign ingests them within a second")
    else:
        console.print(f"ingested {result.records} records ({result.new} new{replaced})")
    for line in record_id_lines(result.record_ids, c, queued=result.queued):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


#: How many ``sample -> record id`` lines an ingest prints before pointing at the full list.
SHOWN_IDS = 10


def record_id_lines(ids: dict[str, str], c, queued: bool = False) -> list[str]:
    """The reply's record ids, one ``  sample -> record id`` line each up to ``SHOWN_IDS``, then
    the command that lists every one (a lab cites a record by its id, not by its row)."""
    if not ids:
        return []
    head = "record ids (sample -> record" + (", stored when the campaign ingests them):" if queued else "):")
    lines = [head] + [f"  {sid} -> {rid}" for sid, rid in list(ids.items())[:SHOWN_IDS]]
    if len(ids) > SHOWN_IDS:
        lines.append(f"  ... and {len(ids) - SHOWN_IDS} more: dm-hpc store query --store {shlex.quote(shown(c.store))} "
                     f"--campaign {shlex.quote(c.name)} --out ids.csv writes every sample's record_id")
    return lines


def report(campaign: CampaignFile) -> None:
    """Write the summary (markdown) and plots (PNG) of a campaign. A transfer source whose file is
    gone is left out, and the report says so; a missing pool (it says which records are the
    campaign's) is refused."""
    from dm_hpc.campaign.report import readable_sources, write_report

    c = _load(campaign)
    for line in readable_sources(c)[1]:  # said before a refusal too: every missing file at once
        console.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    _preflight(c, campaign, reading=True, sources=False)  # a missing pool named, not a traceback
    path = write_report(c)
    console.print(f"wrote {shown(path)}")


def stop(campaign: CampaignFile) -> None:
    """Ask a running campaign to stop submitting; it finishes what is in flight."""
    from dm_hpc.campaign.manager import STOP_FILE

    from dm_hpc.campaign import journal as jn
    from dm_hpc.campaign.ownership import manager_running

    c = _load(campaign)
    if not manager_running(c.run_dir):
        state = jn.replay(c.run_dir / "journal.jsonl")
        now = ("not started" if state.started_at is None
               else f"not running (last run ended: {state.stopped})" if state.stopped else "not running")
        console.print(f"{c.name} is {now}; nothing to stop", highlight=False, soft_wrap=True)
        return
    stop_file = c.run_dir / STOP_FILE
    stop_file.write_text("stop requested\n")
    if not manager_running(c.run_dir):  # it ended meanwhile: leave nothing for a later run
        stop_file.unlink(missing_ok=True)
        console.print(f"{c.name} ended meanwhile; nothing to stop")
        return
    console.print(f"stop requested for {c.name}; in-flight calculations finish and are ingested")


def gaps(
    store: Annotated[Path, typer.Argument(help="The store holding existing (e.g. experimental) data.")],
    space: Annotated[Path, typer.Option("--space", help="Campaign file giving the space, properties and fidelities.")],
    n: Annotated[int, typer.Option("-n", min=1, help="Calculations to propose.")] = 8,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the coverage map (default: the campaign's run folder).")] = None,
) -> None:
    """Propose calculations where the data is thinnest; draws a coverage map before/after."""
    from dm_hpc.campaign.coverage import gaps_command

    c = _load(space)
    try:
        proposals, png = gaps_command(store, space, n, out or c.run_dir)
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    table = Table(title=f"{len(proposals)} calculations where the data is thinnest")
    table.add_column("fidelity")
    table.add_column("composition")
    table.add_column("predicted std")
    for p in proposals:
        comp = " ".join(f"{el}{x:.3f}" for el, x in p.composition.items())
        std = ", ".join(f"{k}={v:.3g}" for k, v in p.predicted.get("std", {}).items())
        table.add_row(Text(p.fidelity), comp, std)
    console.print(table)
    if proposals and not any(p.predicted.get("std") for p in proposals):  # the column is empty: say why
        console.print(f"no model yet (too few records of {', '.join(c.properties)} in {store} for this space): "
                      "the proposals are the points farthest from the data, without a predicted std",
                      markup=False, highlight=False, soft_wrap=True)
    console.print(f"coverage map: {png}")
