"""The campaign report: ``RUN_DIR/report/summary.md`` and PNG plots.

Read-only: the journal (tasks, failures, lab batches, stop reason) and the store (records) are
read, never written, so a report can be drawn while the campaign runs. Plots:

- ``best_vs_evaluations.png``: best value so far against the number of evaluations, one panel
  per objective, one line per fidelity (each fidelity's records in the order they arrived);
- ``parity.png``: k-fold cross-validated surrogate predictions (with their predictive 1-sigma
  error bars) against the observed values, one panel per objective, on the campaign's training
  set; the same predictions give the 90 %-interval coverage per property (``calibration.py``),
  tabled in the summary and flagged when far off (``crossval.py``: the predictions a lab batch
  kept for the same records and campaign file are reused, so the report then fits nothing);
- ``pareto.png`` (two or more objectives): every pair of objectives, all records, the
  non-dominated ones (over all objectives, respecting min/max) highlighted;
- ``objectives_vs_process.png`` (process campaigns): each objective against each process
  parameter, one marker per fidelity, the best record ringed.

The summary gives every value with its unit, the best records with their process route, one
verdict per model from its cross-validated R² and its interval coverage together, and, for a
campaign with calculations and a lab, which model of the measured value from the computed one
the cross-validation chose, with its evidence (``fidelity_choice.py``).
"""
from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.calibration import PropertyCalibration, calibration, calibration_lines, quality_verdict
from dm_hpc.campaign.crossval import CV_FOLDS, MIN_POINTS, cross_validation, keep_in_background
from dm_hpc.campaign.dataset import (TrainingSet, best_rows, fidelity_of, meets_constraints, own_records,
                                     process_values, training_set, with_analytic)
from dm_hpc.campaign.fidelity_choice import fidelity_choice_lines
from dm_hpc.campaign.spec import CampaignSpec, Goal
from dm_hpc.campaign.stopping import phase_for_reader, stopped_fidelities
from dm_hpc.data import Store, StoreError
from dm_hpc.data.access import AccessLevel


#: process parameters are shown as the lab sheet writes them (``CampaignSpec.shown``: degC where the file wrote degC)
PROCESS = "process_parameter"


def _store_frame(campaign: CampaignSpec) -> tuple[pd.DataFrame, str | None]:
    """All records of the store (empty frame and a note when there is no store yet)."""
    try:
        store = Store.open(campaign.store, "r")
    except (StoreError, OSError) as exc:
        return pd.DataFrame(), f"store not readable: {exc}"
    try:
        return store.to_dataframe(), None
    finally:
        store.close()


def failure_type(error: str | None) -> str:
    """The type of a journalled failure: its leading word (``TIMEOUT``, ``OUT_OF_MEMORY``,
    ``scf_not_converged``, ...), which the manager writes as ``TYPE: detail`` or ``TYPE (exit n)``."""
    if not error:
        return "unknown"
    m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_.-]*)", error)
    return m.group(1) if m else "unknown"


def non_dominated(values: np.ndarray, maximise: list[bool]) -> np.ndarray:
    """Boolean mask of the Pareto-optimal rows of ``n x k`` ``values`` (NaN rows: never optimal)."""
    v = np.where(np.array(maximise)[None, :], -values, values)  # everything minimised
    ok = ~np.isnan(v).any(1)
    mask = np.zeros(len(v), bool)
    for i in np.flatnonzero(ok):
        others = v[ok]
        dominated = ((others <= v[i]).all(1) & (others < v[i]).any(1)).any()
        mask[i] = not dominated
    return mask


def _fidelity_names(campaign: CampaignSpec, df: pd.DataFrame) -> list[str | None]:
    out = []
    for s, m in zip(df["source"], df["method"]):
        i = fidelity_of(campaign, s, m)
        out.append(campaign.fidelities[i].name if i is not None else None)
    return out


# ------------------------------------------------------------------------------------- plots
#: Figures are drawn on matplotlib's ``Figure`` (no pyplot: no GUI backend, no global state, a
#: lighter import) and laid out by "tight", several times cheaper than "constrained".
PLOT_LAYOUT = "tight"


def _sheets_line(campaign: CampaignSpec, sheets: list[Path], state: jn.State) -> str:
    """Where the lab sheets are: those in the run folder, each with where it stands
    (``_sheet_progress``); batches suggested to a file elsewhere (``suggest --out``) are not
    "none yet", and the pending ones can be written again."""
    if sheets:
        from dm_hpc.campaign.labsheet import written_rows

        # what the engine wrote is the same for every sheet: built once, when a sheet first needs it
        written = cache(lambda: written_rows(campaign, state))
        return "; ".join(f"`{p}`{_sheet_progress(state, p, written)}" for p in sheets)
    from dm_hpc.campaign.labsheet import default_sheet

    batches = state.lab_batches
    if batches:
        return (f"none in the run folder; {batches} batch(es) were written where `dm-hpc suggest --out` was told "
                f"(`dm-hpc suggest CAMPAIGN_FILE` writes the pending ones again, to `{default_sheet(campaign)}`)")
    return f"none yet (`dm-hpc suggest` writes `{default_sheet(campaign)}`)"


def _sheet_progress(state: jn.State, path: Path, written: Callable[[], Mapping[str, Mapping[str, object]]]) -> str:
    """Where a run folder's sheet of the campaign's suggestions stands, to follow its name: a sheet
    the lab has not filled yet is not one to read results from ("waiting at the lab"); a sheet
    with values typed but not ingested says so. "" for a file that holds none of its samples.
    The sheet is read once; ``written()``: ``labsheet.written_rows``, asked only when needed."""
    from dm_hpc.campaign.labsheet import TypedSheet

    sheet = TypedSheet.read(path)
    ids = [sid for sid in sheet.sample_ids() if sid in state.lab]
    if not ids:
        return ""
    n = len(ids)
    returned = sum(not state.lab[sid].awaited for sid in ids)
    typed = sheet.typed(state, written()) if returned < n else []
    if not returned and not typed:
        return f": waiting at the lab ({n} row{'s' if n != 1 else ''}, none returned yet)"
    said = [f"{returned} of its {n} rows returned"] if returned else []
    if typed:
        said.append(f"values typed for {len(typed)} of its {n} rows, not ingested yet "
                    f"(`dm-hpc ingest CAMPAIGN_FILE {path}`)")
    if n - returned - len(typed):
        said.append(f"{n - returned - len(typed)} still at the lab")
    return ": " + ", ".join(said)


def best_so_far(campaign: CampaignSpec, df: pd.DataFrame) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per objective and fidelity, in time order, the values (shown unit) and the best so far among
    the records that meet the constraints (``dataset.meets_constraints``: the rule of the best
    records table and ``Campaign.best``; NaN until one does). The curve once took every record, an
    alloy over the density limit too, while the table beside it named another."""
    from dm_hpc.campaign.dataset import meets_constraints, with_analytic

    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    if df.empty:
        return out
    df = with_analytic(campaign, df)
    df = df.assign(_fid=_fidelity_names(campaign, df), _ok=meets_constraints(campaign, df)).sort_values("time")
    for o in campaign.objectives:
        if o.property not in df.columns:
            continue
        worst = -np.inf if o.goal == Goal.max else np.inf
        for fid in campaign.fidelities:
            rows = df[(df["_fid"] == fid.name) & df[o.property].notna()]
            if rows.empty:
                continue
            y = o.shown(rows[o.property].to_numpy(float))
            kept = np.where(rows["_ok"].to_numpy(bool), y, worst)
            best = np.maximum.accumulate(kept) if o.goal == Goal.max else np.minimum.accumulate(kept)
            out.setdefault(o.property, {})[fid.name] = (y, np.where(np.isinf(best), np.nan, best))
    return out


def plot_best(campaign: CampaignSpec, df: pd.DataFrame, out: Path) -> Path | None:
    """Best-so-far per objective vs evaluations (``best_so_far``), a line per fidelity, every value
    a dot (None: nothing to plot)."""
    from matplotlib.figure import Figure

    curves = best_so_far(campaign, df)
    objs = [o for o in campaign.objectives if o.property in curves]
    if not objs:
        return None
    fig = Figure(figsize=(5 * len(objs), 4), layout=PLOT_LAYOUT)
    axes = fig.subplots(1, len(objs), squeeze=False)
    for ax, o in zip(axes[0], objs):
        for name, (y, best) in curves[o.property].items():
            ax.step(np.arange(1, len(y) + 1), best, where="post", label=f"{name} ({len(y)})")
            ax.plot(np.arange(1, len(y) + 1), y, ".", alpha=0.3, color=ax.lines[-1].get_color())
        ax.set_xlabel("evaluations (of that fidelity)")
        ax.set_ylabel(f"{o.property} [{o.shown_unit}]")
        ax.set_title(f"best {o.property} ({o.goal.value})" + (", constraints met" if campaign.constraints else ""))
        ax.legend(fontsize=8)
    fig.savefig(out, dpi=110)
    return out


def transfer_cross_validation(fitted) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``crossval.cross_validate``'s answer for a campaign whose model leans on transfer sources:
    the leave-one-out predictions of the model the campaign uses (``learn.transfer.loo_predictions``;
    its hyper-parameters fitted once on all rows, as in ``crossval.cross_validate``)."""
    from dm_hpc.learn.transfer import loo_predictions

    mean, std = loo_predictions(fitted.transfer["fit"])
    return np.arange(len(mean)), mean.numpy().reshape(-1, 1), std.numpy().reshape(-1, 1)


def plot_parity(campaign: CampaignSpec, data: TrainingSet, out: Path, remember: bool = True, fitted=None
                ) -> tuple[Path | None, dict[str, float], list[PropertyCalibration]]:
    """Cross-validated parity plot per objective; returns the path, R^2 per objective and the
    90 %-interval coverage per property of the same predictions. The predictions are the kept
    ones when they are current (``crossval.cross_validation``; kept anew when ``remember``).
    ``fitted``: the campaign's transfer model (``campaign.transfer.transfer_model``), whose
    leave-one-out predictions are judged instead of a cold GP's."""
    from matplotlib.figure import Figure

    if data.fewest < MIN_POINTS:
        return None, {}, []
    if fitted is not None:
        rows, mean, std = transfer_cross_validation(fitted)
    else:
        cv = cross_validation(campaign, data, campaign.seed, remember)
        rows, mean, std = cv.rows, cv.mean, cv.std
    props = campaign.properties
    cals = calibration(props, data.Y[rows], mean, std)
    objs = campaign.objectives
    fids = data.fidelity[rows]
    scores: dict[str, float] = {}
    fig = Figure(figsize=(4.8 * len(objs), 4.4), layout=PLOT_LAYOUT)
    axes = fig.subplots(1, len(objs), squeeze=False)
    for ax, o in zip(axes[0], objs):
        j = props.index(o.property)
        # plotted in the unit the campaign file wrote (R² is the same in any unit)
        y, mu, sd = o.shown(data.Y[rows, j]), o.shown(mean[:, j]), o.shown_spread(std[:, j])
        ok = ~(np.isnan(y) | np.isnan(mu))  # a record lacking this property (it informs the others)
        y, mu, sd, of = y[ok], mu[ok], sd[ok], fids[ok]
        if not len(y):
            continue
        for fi in np.unique(of):
            sel = of == fi
            ax.errorbar(y[sel], mu[sel], yerr=sd[sel], fmt="o", ms=4, capsize=2, alpha=0.8,
                        label=campaign.fidelities[int(fi)].name)
        lo, hi = float(np.nanmin([y.min(), mu.min()])), float(np.nanmax([y.max(), mu.max()]))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1)
        ss = float(((y - y.mean()) ** 2).sum())
        r2 = 1 - float(((y - mu) ** 2).sum()) / ss if ss > 0 else float("nan")
        scores[o.property] = r2
        unit = o.shown_unit
        ax.set_xlabel(f"observed {o.property} [{unit}]")
        ax.set_ylabel(f"predicted (CV) [{unit}]")
        verdict = quality_verdict(cals[j], r2)
        ax.set_title(f"{o.property}: R² = {r2:.2f}, 90 % coverage {cals[j].coverage90:.0%}, n = {len(y)}\n"
                     f"model: {verdict}", fontsize=10, color="C3" if verdict.startswith("poor") else "black")
        ax.legend(fontsize=8)
    fig.savefig(out, dpi=110)
    return out, scores, cals


def plot_pareto(campaign: CampaignSpec, df: pd.DataFrame, out: Path) -> tuple[Path | None, dict[str, np.ndarray] | None]:
    """Pairwise objective scatter with the Pareto front of each fidelity highlighted (multi-objective
    only); returns the path and, per fidelity name, which of its records with every objective are
    non-dominated. One front over all records let a calculation dominate a measurement (and an EMT
    energy is not a measured one): the fronts are drawn apart, a marker per fidelity."""
    from matplotlib.figure import Figure

    objs = campaign.objectives
    if len(objs) < 2 or df.empty or any(o.property not in df.columns for o in objs):
        return None, None
    sub = df.dropna(subset=[o.property for o in objs])
    if sub.empty:
        return None, None
    fids = np.asarray(_fidelity_names(campaign, sub))
    maximise = [o.goal == Goal.max for o in objs]
    groups = {}
    for name in dict.fromkeys(fids):  # the fidelities present, in the records' order
        values = sub.loc[fids == name, [o.property for o in objs]].to_numpy(float)
        front = non_dominated(values, maximise)
        values = np.column_stack([o.shown(values[:, k]) for k, o in enumerate(objs)])  # plotted as the file wrote them
        groups[name] = (values, front)
    pairs = [(a, b) for a in range(len(objs)) for b in range(a + 1, len(objs))][:3]
    fig = Figure(figsize=(5 * len(pairs), 4.4), layout=PLOT_LAYOUT)
    axes = fig.subplots(1, len(pairs), squeeze=False)
    markers = "o^sDv<>"
    for ax, (a, b) in zip(axes[0], pairs):
        for k, (name, (values, front)) in enumerate(groups.items()):
            m, colour = markers[k % len(markers)], f"C{(3 + k) % 10}"
            ax.scatter(values[~front, a], values[~front, b], s=14, c="0.6", marker=m, label=f"{name}: all ({len(values)})")
            f = values[front][np.argsort(values[front, a])]
            ax.plot(f[:, a], f[:, b], m + "-" if len(objs) == 2 else m, color=colour, ms=6,
                    label=f"{name}: non-dominated ({int(front.sum())})")
        for ax_set, o in ((ax.set_xlabel, objs[a]), (ax.set_ylabel, objs[b])):
            ax_set(f"{o.property} [{o.shown_unit}] ({o.goal.value})")
        ax.legend(fontsize=8)
    fig.suptitle(f"{campaign.name}: Pareto front of each fidelity")
    fig.savefig(out, dpi=110)
    return out, {name: front for name, (_, front) in groups.items()}


def plot_process(campaign: CampaignSpec, df: pd.DataFrame, out: Path) -> Path | None:
    """``process_figure`` saved to ``out`` (None: no process or no values)."""
    fig = process_figure(campaign, df)
    if fig is None:
        return None
    fig.savefig(out, dpi=100)
    return out


def process_figure(campaign: CampaignSpec, df: pd.DataFrame):
    """Each objective (rows) against each process parameter (columns), a marker colour per
    fidelity, the best record of each objective ringed: the best-records table's (``best_rows``:
    constraints met), none when no record meets them. A matplotlib ``Figure``; None when there
    is no process or no values."""
    from matplotlib.figure import Figure

    params = list(campaign.space.process)
    objs = [o for o in campaign.objectives if o.property in df.columns and df[o.property].notna().any()]
    if not params or not objs or df.empty:
        return None
    proc = {p: campaign.shown(p, process_values(df, p), PROCESS) for p in params}
    if all(np.isnan(v).all() for v in proc.values()):
        return None
    fids = np.array(_fidelity_names(campaign, df), dtype=object)
    best_ids = {name: row["record_id"] for name, row in best_rows(campaign, df).items()}
    fig = Figure(figsize=(4.2 * len(params), 3.6 * len(objs)), layout=PLOT_LAYOUT)
    axes = fig.subplots(len(objs), len(params), squeeze=False)
    for i, o in enumerate(objs):
        y = o.shown(df[o.property].to_numpy(float))
        best = np.flatnonzero(df["record_id"].to_numpy() == best_ids.get(o.property))
        for j, p in enumerate(params):
            ax, x = axes[i][j], proc[p]
            for fid in campaign.fidelities:
                sel = (fids == fid.name) & ~np.isnan(x) & ~np.isnan(y)
                if sel.any():
                    ax.plot(x[sel], y[sel], "o", ms=5, alpha=0.8, label=f"{fid.name} ({int(sel.sum())})")
            if best.size and not np.isnan(x[best[0]]):
                ax.plot(x[best[:1]], y[best[:1]], "o", ms=12, mfc="none", mec="C3", label="best")
            ax.set_xlabel(f"{p} [{campaign.shown_unit(p, PROCESS)}]")
            ax.set_ylabel(f"{o.property} [{o.shown_unit}]")
            ax.legend(fontsize=7)
    # one line per plot's width: a one-plot figure cut the one-line title off on both sides
    note = "\n(calculations have no process route)" if campaign.calculations else ""
    fig.suptitle(f"{campaign.name}:\nobjectives against process parameters{note}", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------ summary
def _composition_text(row: pd.Series) -> str:
    parts = [(c[2:], float(row[c])) for c in row.index if c.startswith("x_") and float(row[c] or 0) > 0]
    return " ".join(f"{el}{x:.3f}" for el, x in sorted(parts, key=lambda p: -p[1]))


def _best_rows(campaign: CampaignSpec, df: pd.DataFrame) -> list[str]:
    """The best-records table: per objective and fidelity the best record among those that meet
    every constraint, its composition, every process parameter of the campaign and the value, each
    with its unit; then how many records the constraints left out."""
    params = list(campaign.space.process)
    lines = ["| objective | fidelity | record id | composition (atomic fractions) | "
             + "".join(f"{p} [{campaign.shown_unit(p, PROCESS)}] | " for p in params) + "value |",
             "|---|---|---|---|" + "---:|" * len(params) + "---|"]
    fids = _fidelity_names(campaign, df) if not df.empty else []
    df = (df.assign(_fid=fids, **{f"_p_{p}": campaign.shown(p, process_values(df, p), PROCESS) for p in params})
          if not df.empty else df)
    feasible = meets_constraints(campaign, df) if not df.empty else pd.Series(dtype=bool)
    left_out = int((~feasible).sum())
    df = df[feasible] if not df.empty else df  # the rule of the run's best lines and Campaign.best
    from dm_hpc.compute.descriptors import ANALYTIC_PROPERTIES

    derived = set(ANALYTIC_PROPERTIES)
    for o in campaign.objectives:
        if df.empty or o.property not in df.columns or not df[o.property].notna().any():
            lines.append(f"| {o.property} ({o.goal.value}) | - | - | no value yet | " + "- | " * len(params) + "- |")
            continue
        unit = o.shown_unit  # the campaign file's unit; the store's values are canonical
        for fid, group in df.dropna(subset=[o.property]).groupby("_fid", dropna=False, sort=False):
            i = group[o.property].idxmax() if o.goal == Goal.max else group[o.property].idxmin()
            row = df.loc[i]
            std = row.get(f"{o.property}_std")
            value = f"{o.shown(row[o.property]):.6g}" + (f" ± {o.shown_spread(std):.3g}"
                                                         if std is not None and pd.notna(std) else "")
            route = "".join(("- | " if pd.isna(row[f"_p_{p}"]) else f"{row[f'_p_{p}']:.4g} | ") for p in params)
            # a lab record's price is derived from its composition, not measured: the row says so
            how = " (derived from the composition)" if o.property in derived and row["source"] == "experimental" else ""
            lines.append(f"| {o.property} ({o.goal.value}) | {fid or row['method']}{how} | `{row['record_id']}` | "
                         f"{_composition_text(row)} | {route}{value} {unit} |")
    if left_out and campaign.constraints:
        # in the unit the values above and the lab sheet give the property (the bound is canonical)
        rule = ", ".join(f"{c.property} {c.op} {campaign.shown(c.property, c.value):g} {campaign.shown_unit(c.property)}"
                         for c in campaign.constraints)
        lines += ["", f"{left_out} record(s) left out: they do not meet, or have no value for, {rule}."]
    return lines


def plot_replay(campaign: CampaignSpec, curves: dict[str, np.ndarray], out: Path) -> Path:
    """The two best-so-far curves of ``campaign.transfer.replay`` (``transfer_replay.png``)."""
    from matplotlib.figure import Figure

    o = campaign.objectives[0]
    fig = Figure(figsize=(5.5, 4), layout=PLOT_LAYOUT)
    ax = fig.subplots()
    for mode, label in (("cold", "without transfer (cold)"), ("transfer", "with transfer (guarded)")):
        c = curves[mode]
        # a marker at each experiment: with where="post" a rise at the last one is otherwise only a
        # vertical stroke at the plot's edge
        ax.step(np.arange(1, len(c) + 1), o.shown(c), where="post", label=label, marker="o", ms=3)
    ax.axvline(min(max(2, campaign.learning.initial_points), len(curves["cold"])), color="0.6", lw=1, ls=":")
    ax.set_xlabel("experiments (replayed on the campaign's own records)")
    ax.set_ylabel(f"best {o.property} [{o.shown_unit}]")
    ax.set_title(f"best-so-far with and without transfer ({o.goal.value})", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(out, dpi=110)
    return out


def readable_sources(campaign: CampaignSpec) -> tuple[CampaignSpec, list[str]]:
    """The campaign as the report can read it, and what it left out: a transfer source whose file is
    gone or cannot inform the model (``preflight.source_problems``) is dropped, one line naming the
    problem and what the report then lacks. A source is only a prior for the model: the journal and
    the store hold everything else the report says (a campaign whose source table was removed after
    it ran was refused a report altogether)."""
    from dm_hpc.campaign.preflight import source_problems

    if campaign.transfer is None:
        return campaign, []
    kept, lines = [], []
    for k, source in enumerate(campaign.transfer.from_):
        why = source_problems(campaign, k)
        if why:
            lines.append(f"{'; '.join(why)}: the report leaves out source {source.name}")
        else:
            kept.append(source)
    if not lines:
        return campaign, []
    if kept:
        lines.append(f"the transfer model, its weights, gain and replay are of the other source(s) "
                     f"({', '.join(s.name for s in kept)}), not the model the campaign ran with")
        return campaign.model_copy(update={"transfer": campaign.transfer.model_copy(update={"from_": kept})}), lines
    lines.append("no transfer section (source weights, gain, replay with and without transfer); the parity plot "
                 "judges the campaign's own model, without sources, not the model it ran with")
    return campaign.model_copy(update={"transfer": None}), lines


@dataclass(frozen=True)
class Report:
    """A written report: ``summary`` (``summary.md``) and the ``plots`` it lists (PNG files, in
    its order; a plot an earlier report drew and this one did not is not among them). In a
    notebook it shows as its markdown."""

    summary: Path
    plots: tuple[Path, ...]

    @property
    def markdown(self) -> str:
        return self.summary.read_text()

    def _repr_markdown_(self) -> str:
        return self.markdown


def write_report(campaign: CampaignSpec, frame: pd.DataFrame | None = None, out_dir: Path | None = None,
                 whole_store: bool = False, clearance: AccessLevel | None = None) -> Path:
    """``draw_report``, returning the summary's path."""
    return draw_report(campaign, frame, out_dir, whole_store, clearance).summary


#: The report's plots by what they show, as files in its folder. A redraw first removes each, so a
#: plot this drawing leaves out (a parity plot once a record became unreadable at a portal reader's
#: clearance, a transfer replay once the source is gone) is not listed or served from before.
PLOT_FILES = {"best": "best_vs_evaluations.png", "pareto": "pareto.png", "process": "objectives_vs_process.png",
              "parity": "parity.png", "transfer": "transfer_replay.png"}


def draw_report(campaign: CampaignSpec, frame: pd.DataFrame | None = None, out_dir: Path | None = None,
                whole_store: bool = False, clearance: AccessLevel | None = None) -> Report:
    """Write ``<run_dir>/report/summary.md`` and its PNG plots; returns both (``Report``).

    Works on an empty or tiny campaign (it says what is missing instead of plotting it).
    ``frame``: the records to report on (default: the whole store); the portal passes the view
    scoped to a caller's clearance, with its own ``out_dir``, so no number in the report or its
    plots comes from a record the reader may not see: the journal's counts of calculations and
    lab experiments are those whose record is in ``frame`` (``State.tasks_seen``, ``measured``),
    and a stop judged on values is said only as ``frame`` shows it (``stopping.phase_for_reader``);
    both as the journal has them when ``whole_store`` (``frame`` holds every record of the store:
    its reader reads them all). ``clearance``: the reader's (the portal's); a model-file source
    holding records above it is left out, and said to be without naming it
    (``transfer.withheld_sources``). None: the campaign's own report, every source.
    """
    t0 = time.perf_counter()
    campaign, left_out = readable_sources(campaign)
    from dm_hpc.campaign.transfer import withheld_line, withheld_sources

    campaign, withheld = withheld_sources(campaign, clearance)
    if withheld:
        left_out.append(withheld_line(len(withheld)))
    out_dir = out_dir or campaign.run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in PLOT_FILES.values():
        (out_dir / name).unlink(missing_ok=True)
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    df_all, store_note = (frame, None) if frame is not None else _store_frame(campaign)
    df_all = with_analytic(campaign, df_all)  # a lab record's cost, derived as training derives it
    df = own_records(campaign, df_all)
    data = training_set(campaign, df_all)

    # the cross-validation (torch, a GP fit) runs beside the other plots where it can
    # (``keep_in_background``); the parity plot waits for it below
    # a campaign read without a source is not the one a lab batch keeps predictions for: kept none
    remember = frame is None and not left_out
    cross_validated = (keep_in_background(campaign, data) if remember and campaign.transfer is None
                       else lambda: None)
    plots: list[tuple[str, Path]] = []
    notes: list[str] = [store_note] if store_note else []
    best_png = plot_best(campaign, df, out_dir / PLOT_FILES["best"])
    if best_png:
        plots.append(("best value vs evaluations, per fidelity", best_png))
    else:
        notes.append("no objective values recorded yet: no best-value plot")
    r2: dict[str, float] = {}
    cals: list[PropertyCalibration] = []
    fitted = None
    if campaign.transfer is not None:  # the model the campaign uses is the one the report judges
        from dm_hpc.campaign.transfer import transfer_model

        try:
            fitted = transfer_model(campaign, data)
        except Exception as exc:  # a failed fit must not cost the rest of the report
            notes.append(f"transfer model failed: {type(exc).__name__}: {exc}")
    pareto_png, front = plot_pareto(campaign, df, out_dir / PLOT_FILES["pareto"])
    if pareto_png:
        plots.append(("Pareto front of each fidelity (non-dominated records highlighted)", pareto_png))
    elif len(campaign.objectives) > 1:
        notes.append("no records with all objectives yet: no Pareto plot")
    process_png = plot_process(campaign, df, out_dir / PLOT_FILES["process"])
    if process_png:
        plots.append(("objectives against each process parameter", process_png))
    cross_validated()
    try:
        # a report on a reader's scoped view (``frame``) leaves the whole campaign's kept predictions be
        parity_png, r2, cals = plot_parity(campaign, data, out_dir / PLOT_FILES["parity"], remember=remember,
                                           fitted=fitted)
    except Exception as exc:  # a failed fit must not cost the rest of the report
        parity_png = None
        notes.append(f"surrogate cross-validation failed: {type(exc).__name__}: {exc}")
    if parity_png:
        how = (f"leave-one-out predictions of the model in use, transfer kind {fitted.transfer['kind']}"
               if fitted is not None else f"{CV_FOLDS}-fold cross-validated")
        # listed second, after the best-value plot, though drawn last
        plots.insert(1 if best_png else 0, (f"surrogate parity ({how}, predictive 1σ error bars)", parity_png))
    elif data.fewest < MIN_POINTS:
        notes.append(f"no surrogate model yet ({data.fewest} usable record(s); the parity plot needs {MIN_POINTS})")

    # a reader of a scoped view is told the counts of what it shows: the journal's would tell a
    # partner how many records are withheld from them (work that made no record is counted)
    # (a reader of every record is told the journal's, as the portal's status tells them)
    readable = (None if frame is None or whole_store
                else set(frame["record_id"]) if "record_id" in frame.columns else set())
    tasks = state.tasks_seen(readable)
    status = Counter(t.status for t in tasks)
    failures = Counter(failure_type(t.error) for t in tasks if t.status == jn.FAILED)
    examples = {}
    for t in tasks:
        if t.status == jn.FAILED:
            examples.setdefault(failure_type(t.error), (t.task_id, (t.error or "").splitlines()[0][:160]))
    measured = state.measured(readable)
    from dm_hpc.campaign.dataset import target_best_values

    own_best = target_best_values(campaign, df)  # the reader's, at the target fidelity: what a stop is judged by

    md = [f"# Campaign report: {campaign.name}", ""]
    if campaign.description:
        md += [campaign.description.strip(), ""]
    md += [
        f"- written: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- mode: {campaign.mode}; objectives: " + ", ".join(
            f"{o.goal.value} {o.property} [{o.shown_unit}]" for o in campaign.objectives),
        f"- state: {phase_for_reader(campaign, state, None if frame is None or whole_store else own_best)}",
        *[f"- {why}" for why in stopped_fidelities(campaign, state).values()],
        *[f"- **left out**: {line}" for line in left_out],
        "",
        "## Calculations",
        "",
        "| tasks | count |",
        "|---|---:|",
        f"| submitted (distinct tasks) | {sum(t.submissions > 0 for t in tasks)} |",
        f"| submissions (with resubmissions) | {sum(t.submissions for t in tasks)} |",
        f"| ingested{'' if frame is None else ', readable at your clearance'} | {status.get(jn.INGESTED, 0)} |",
        f"| failed | {status.get(jn.FAILED, 0)} |",
        f"| in flight or planned | {status.get(jn.SUBMITTED, 0) + status.get(jn.PLANNED, 0)} |",
        "",
        f"Core-hours used: {state.core_hours:.4f}"
        + (f" of {campaign.budget.core_hours:g}" if campaign.budget.core_hours else "")
        + f"; surrogate refits during runs: {state.refits}; lab batches suggested with model predictions: "
        f"{state.predicted_batches} of {state.lab_batches}.",
        "",
    ]
    if failures:
        md += ["Failures by type:", "", "| type | count | example |", "|---|---:|---|"]
        for kind, count in failures.most_common():
            tid, text = examples[kind]
            md.append(f"| {kind} | {count} | {tid}: {text.replace('|', '/')} |")
        md.append("")
    md += [
        "## Lab",
        "",
        f"- experiments suggested: {len(state.lab)} in {state.lab_batches} batch(es)"
        + (f" (budget {campaign.budget.lab_experiments})" if campaign.budget.lab_experiments is not None else ""),
        f"- experiments measured{'' if frame is None else ', readable at your clearance'}: {measured}",
        # as `dm-hpc status` counts them; not in the portal's view, where a reader's "measured"
        # leaves out what it may not read and the rest would count the hidden ones
        *([f"- not made: {sum(e.not_made for e in state.lab.values())}; still at the lab: "
           f"{sum(e.awaited for e in state.lab.values())} (of which held for a confirmation: "
           f"{sum(bool(e.held) for e in state.lab.values())})"] if frame is None else []),
        "",
        "## Best records",
        "",
        *_best_rows(campaign, df),
        "",
    ]
    if front is not None:  # a front per fidelity: a calculation does not dominate a measurement
        md.append("Pareto-optimal records, within each fidelity: " + "; ".join(
            f"{name} {int(f.sum())} of {len(f)}" for name, f in front.items()) + " with all objectives.")
        md.append("")
    if cals:
        md += calibration_lines(cals, r2)
    try:
        md += fidelity_choice_lines(campaign, data)
    except Exception as exc:  # a failed fit must not cost the rest of the report
        notes.append(f"choice of the measured-value model failed: {type(exc).__name__}: {exc}")
    if campaign.transfer is not None and not any(n.startswith("transfer model failed") for n in notes):
        from dm_hpc.campaign.transfer import replay, replay_lines, transfer_lines

        try:
            md += transfer_lines(campaign, data, fitted)
            if fitted is not None:
                curves = replay(campaign, data, fitted)
                plots.append(("best-so-far with and without transfer (replayed on the campaign's own records)",
                              plot_replay(campaign, curves, out_dir / PLOT_FILES["transfer"])))
                md += replay_lines(campaign, curves)
        except Exception as exc:  # a failed fit must not cost the rest of the report
            notes.append(f"transfer section failed: {type(exc).__name__}: {exc}")
    sheets = sorted(p for p in campaign.run_dir.glob("*") if p.suffix in (".csv", ".xlsx"))
    if frame is None:
        md += [
            "## Where things are",
            "",
            f"- HDF5 store: `{campaign.store}` ({len(df)} records of this campaign, {len(df_all)} in all; "
            f"{len(data)} used for learning)",
            f"- journal: `{campaign.run_dir / 'journal.jsonl'}`",
            "- lab sheets: " + _sheets_line(campaign, sheets, state),
            "",
        ]
    else:  # the portal's view: the server's folders are not the reader's business
        md += ["## Records", "", f"- {len(df)} records of this campaign readable at your clearance "
               f"({len(data)} used for learning)", ""]
    md += [
        "## Plots",
        "",
    ]
    md += [f"- {title}: `{p.name}`" for title, p in plots] or ["- none yet"]
    md += [""]
    if data.skipped:
        md += ["Records not used for learning: " + ", ".join(f"{k}: {v}" for k, v in data.skipped.items()), ""]
    if notes:
        md += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    md.append(f"_Report drawn in {time.perf_counter() - t0:.1f} s._")
    path = out_dir / "summary.md"
    path.write_text("\n".join(md) + "\n")
    return Report(path, tuple(p for _, p in plots))
