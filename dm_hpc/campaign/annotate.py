"""The annotated copy of a returned lab sheet: every cell coloured and commented with its verdict.

What the lab gets back (``dm-hpc ingest --annotated OUT.xlsx``, the portal's upload page): the
sheet as they sent it, each measurement cell coloured (accepted, converted from another unit,
held outside the model's 99 % interval, refused) with a comment saying why; beside each
measured property the model's prediction and its interval (in the unit of the lab's column, as the
comment on a held value gives them), beside each composition column the
composition that was ordered, so a sample made off-target shows at a glance; and a verdict
column per row. A refused sheet is annotated too (its problems are what the lab must fix).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from openpyxl import Workbook

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.holds import Hold, interval
from dm_hpc.campaign.lab import LabIngest, take_lab_loaded
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.data import canonical_unit, to_canonical
from dm_hpc.data.columns import VERDICT, interval_column, is_annotation, ordered_column, property_column
from dm_hpc.data.sheetfiles import LoadedTable, SheetError, blank, load_table, parse_number
from dm_hpc.data.sheets import parse_header
from dm_hpc.data.vocabulary import from_canonical
from dm_hpc.data.workbook import header_row, instructions_sheet, put, save_atomically

LEGEND = [
    ("accepted", "stored as written"),
    ("converted", "stored, converted to the vocabulary's unit (the comment gives both)"),
    ("held", "not stored: far outside the model's 99 % interval; confirm it (confirm column: yes) or correct it"),
    ("refused", "not stored: the comment says why; nothing of a refused sheet is stored"),
    ("pending", "no value yet (blank) or not made"),
]


def take_and_annotate(campaign: CampaignSpec, path: Path, out: Path | None, replace: bool = False,
                      sheet: str | None = None, confirm: Collection[str] = (), by: str | None = None) -> LabIngest:
    """``take_lab_sheet`` and, when ``out`` is given, the annotated copy (also of a refused sheet).

    The file is read once: the checks and the copy see the same cells. A file its guards refuse
    (``load_table``) gets no copy, only the ``SheetError``."""
    loaded = load_table(path, sheet)
    try:
        result = take_lab_loaded(campaign, loaded, str(path), replace, confirm, by)
    except SheetError as exc:
        if out is not None:
            write_annotated(campaign, loaded, out, refused=exc.problems)
        raise
    if out is not None:
        write_annotated(campaign, loaded, out, result=result)
    return result


def write_annotated(campaign: CampaignSpec, loaded: LoadedTable, out: Path, result: LabIngest | None = None,
                    refused: Sequence[tuple[int, str]] = (), predictions: bool = True) -> Path:
    """Write the annotated copy of a sheet, its cells as ``load_table`` read them (a cell read as a
    stand-in as the lab's spreadsheet showed it: ``LoadedTable.shown``), to ``out`` (.xlsx).
    ``predictions=False`` leaves the predicted values and intervals out (a reader without
    clearance for every record the model learnt from)."""
    # a copy sent back is annotated anew: its old annotations would come twice
    frame = loaded.frame[[c for c in loaded.frame.columns if not is_annotation(c)]]
    # a suggestion sheet already shows the prediction: a second column of that name is refused on return
    shown = {name for kind, name in map(_kind, frame.columns) if kind == "predicted"}
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    stored = {r.sample_id for r in result.stored} if result else set()
    holds: dict[tuple[str, str], Hold] = {(h.sample_id, h.prop): h for h in (result.held if result else [])}
    confirmed = set(result.confirmed) if result else set()
    by_line: dict[int, list[str]] = {}
    for line, msg in refused:
        by_line.setdefault(line, []).append(msg)

    header: list[str] = []
    for col in frame.columns:
        header.append(str(col))
        kind, name = _kind(col)
        if kind == "property":  # the prediction and its interval in the unit of the lab's value beside them
            unit = _unit(col)
            header += ([] if name in shown else [property_column(name, unit, kind="predicted")]) + [
                interval_column(name, unit)]
        elif kind == "composition":
            header.append(ordered_column(name))
    header.append(VERDICT)

    wb = Workbook()
    ws = wb.active
    ws.title = "annotated"
    sheet_notes = "; ".join(by_line.get(0, []) + by_line.get(1, []))
    header_row(ws, header, {VERDICT: sheet_notes} if sheet_notes else None)
    for i, (line, row) in enumerate(frame.iterrows(), start=2):
        sid = "" if blank(row.get("sample_id")) else str(row.get("sample_id")).strip()
        entry = state.lab.get(sid)
        problems = by_line.get(int(line), [])
        j = 1
        measured = False
        owed = []  # properties a stored row left blank: the lab owes them (the row is learnt from without)
        for col in frame.columns:
            # a cell the reader holds a stand-in text for is shown as the lab's spreadsheet showed it
            value = loaded.shown.get((line, col), row[col])
            kind, name = _kind(col)
            fill, note = None, None
            if kind == "property" and not blank(value):
                measured = True
                fill, note = _property_verdict(col, name, value, sid, stored, holds, confirmed, problems, bool(refused),
                                               predictions)
            elif kind == "property" and sid in stored:
                owed.append(name)
                fill, note = "pending", (f"blank: the sample is stored without {name}; send this row again with it "
                                         "filled in once measured (no --replace needed)")
            put(ws, i, j, value, note, fill)
            j += 1
            if kind == "property":
                said = from_canonical(name, _unit(col))  # the journal's prediction is canonical
                bounds = interval(entry.predicted, name) if entry and predictions else None
                mean = entry.predicted.get("mean", {}).get(name) if entry and predictions else None
                if name not in shown:
                    put(ws, i, j, None if mean is None else float(said(mean)))
                    j += 1
                put(ws, i, j, None if bounds is None else f"[{said(bounds[0]):.4g}, {said(bounds[1]):.4g}]")
                j += 1
            elif kind == "composition":
                ordered = entry.composition.get(name, 0.0) if entry else None
                off = parse_header(str(col)).unit in ("", "at_frac") and _off_target(value, ordered)
                put(ws, i, j, ordered, f"made {value}, ordered {ordered:g}" if off else None, "held" if off else None)
                j += 1
        verdict = _row_verdict(sid, measured, stored, holds, problems, bool(refused))
        if verdict[0] == "accepted" and owed:
            verdict = ("accepted", f"stored without {', '.join(owed)} (send it once measured)")
        put(ws, i, j, verdict[1], "; ".join(problems) or None, verdict[0])
    legend = instructions_sheet(wb, [(k, v) for k, v in LEGEND], title="Legend")
    for i, (k, _) in enumerate(LEGEND, start=1):
        put(legend, i, 1, k, fill=k)
    wb.active = ws
    return save_atomically(wb, out)


def _unit(header: object) -> str | None:
    """The unit a property column states, where values convert to it (None: canonical; a unit
    that does not convert is a problem the refused sheet's annotations name)."""
    c = parse_header(str(header))
    try:
        from_canonical(c.name, c.unit)
    except ValueError:
        return None
    return c.unit or None


def _kind(header: object) -> tuple[str | None, str]:
    try:
        c = parse_header(str(header))
    except (ValueError, KeyError):
        return None, str(header)
    return c.kind, c.name


def _property_verdict(col, name, value, sid, stored, holds, confirmed, problems, sheet_refused, predictions=True):
    """(fill, comment) of one measured cell."""
    if problems:
        return "refused", "refused: " + "; ".join(problems)
    if sheet_refused:
        return "pending", "not stored: other rows of this sheet were refused (nothing of it is stored)"
    hold = holds.get((sid, name))
    if hold is not None:
        return "held", f"{hold.typed()} {hold.reason(with_interval=predictions)}"
    if sid not in stored:
        return "pending", "not stored"
    unit = parse_header(str(col)).unit
    target = canonical_unit(name)
    done = "accepted (confirmed despite the model)" if sid in confirmed else "accepted"
    if unit and unit != target:
        try:
            v = to_canonical(name, parse_number(value), unit)
            return "converted", f"{done}; converted from {unit}: stored as {v:.6g} {target}"
        except (ValueError, TypeError):
            pass
    return "accepted", done


def _row_verdict(sid, measured, stored, holds, problems, sheet_refused) -> tuple[str, str]:
    if problems:
        return "refused", "refused"
    if sheet_refused:
        return "pending", "not stored (sheet refused)"
    if any(s == sid for s, _ in holds):
        return "held", "held for confirmation"
    if sid in stored:
        return "accepted", "stored"
    return "pending", "pending" if not measured else "not stored"


def _off_target(made, ordered) -> bool:
    """Whether the made amount differs from the ordered one by more than 0.005 (at_frac)."""
    if ordered is None or blank(made):
        return False
    try:
        return abs(parse_number(made) - float(ordered)) > 0.005
    except (ValueError, TypeError):
        return False


