"""The suggestion sheet as a lab reads it: rounded, in the author's units, with instructions.

The machine-shaped sheet (``0.9199999999999999``, ``480.57084618629153`` K for a campaign
written in °C, a ``process:process:`` prefix, computed-only properties asked of a lab) is what
a lab had to fill before. Here a value is rounded to the campaign's precision (a composition
to the lab's ``precision`` step, else 3 decimals; a process parameter to its ``precision``,
else 4 significant digits), shown in the unit the campaign author wrote, and the sheet asks only
the properties the experiment fidelity measures (``measures``, else every campaign property
that is not computed-only). The XLSX copy has an Instructions worksheet first, a frozen header,
widths to read by, and number validation on the cells the lab fills.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.data.columns import composition_column, process_column, property_column
from dm_hpc.data.vocabulary import term

if TYPE_CHECKING:
    import pandas as pd

#: The process step of a campaign's (flat) process parameters on a lab sheet.
PROCESS_STEP = "treatment"
#: The word a lab writes in a measurement cell of a sample it did not make.
NOT_MADE = "not made"
#: The lab sheet of every pending experiment in the run folder (``dm-hpc run``, ``dm-hpc suggest``).
PENDING_SHEET = "lab-suggestions.xlsx"


#: A suggested experiment's id: the campaign's name, its batch, its place in the batch.
_SAMPLE_ID = re.compile(r"^(?P<campaign>.+)-L(?P<batch>[0-9]{3,})-(?P<k>[0-9]{2,})$")


def sample_id(campaign_name: str, batch: int, k: int) -> str:
    """The id of the ``k``-th experiment (from 1) of lab batch ``batch``: ``NAME-LNNN-kk``."""
    return f"{campaign_name}-L{batch:03d}-{k:02d}"


def campaign_of_sample(sid: str) -> str | None:
    """The campaign name a suggested experiment's id carries (``sample_id``), if it has that shape."""
    m = _SAMPLE_ID.match(sid.strip())
    return m["campaign"] if m else None


def default_sheet(campaign: CampaignSpec, batch: int | None = None) -> Path:
    """Where a lab sheet goes when no file is named: ``RUN/lab-suggestions.xlsx`` for the pending
    experiments, ``RUN/lab-batch-NNN.xlsx`` for new batch ``batch`` alone (its sample ids read
    ``NAME-LNNN-kk``); the report lists the run folder's sheets."""
    return campaign.run_dir / (PENDING_SHEET if batch is None else f"lab-batch-{batch:03d}.xlsx")


@dataclass(frozen=True)
class SuggestionSheet:
    """Where ``dm-hpc suggest`` writes a lab sheet: ``out`` (``--out``) when named, else the run
    folder's ``default_sheet``, the pending experiments' or a new batch's own. A run-folder sheet
    is the lab's copy, which the report points it at: it is not written over values typed into it
    (``typed``), and an empty batch gets none (no number to name it by)."""

    campaign: CampaignSpec
    out: Path | None = None

    @property
    def in_run_folder(self) -> bool:
        return self.out is None

    def path(self, batch: int | None = None) -> Path:
        """The sheet of the pending experiments, or of new batch ``batch`` alone."""
        return self.out or default_sheet(self.campaign, batch)

    def prepared(self, batch: int | None = None) -> Path:
        """``path``, with the run folder made when the sheet goes there (none before a first run)."""
        if self.out is None:
            self.campaign.run_dir.mkdir(parents=True, exist_ok=True)
        return self.path(batch)

    def next_batch(self) -> Path:
        """``prepared`` for the batch journalled next (the journal's last number + 1): the file to
        check before a batch is journalled. A manager journalling a batch of its own meanwhile
        takes that number; its successor's sheet is then the one written, in the same folder."""
        upcoming = None if self.out else jn.replay(self.campaign.run_dir / "journal.jsonl").lab_batches + 1
        return self.prepared(upcoming)

    def typed(self, state: jn.State) -> list[str]:
        """``typed_by_the_lab`` of the run folder's pending sheet; none for a file named."""
        return typed_by_the_lab(self.path(), state, self.campaign) if self.out is None else []


def typed_by_the_lab(path: Path, state: jn.State, campaign: CampaignSpec) -> list[str]:
    """``TypedSheet.typed`` of the lab sheet ``path``."""
    sheet = TypedSheet.read(path)
    return sheet.typed(state, written_rows(campaign, state) if sheet.rows else {})


def sample_ids_of(path: Path) -> list[str]:
    """``TypedSheet.sample_ids`` of the lab sheet ``path``."""
    return TypedSheet.read(path).sample_ids()


def written_rows(campaign: CampaignSpec, state: jn.State) -> dict[str, dict]:
    """Sample id -> what the engine writes on a lab sheet for it (``suggestion_rows``, measured
    samples too): what ``TypedSheet.typed`` tells a typed cell from."""
    return {row["sample_id"]: row for row in suggestion_rows(campaign, state, include_measured=True)}


@dataclass(frozen=True)
class TypedSheet:
    """A lab sheet's first worksheet as typed (a formula as its text, ``sheetfiles.workbook_cells``):
    its ``header`` and its ``rows``, each with its sample id ("" when blank); no rows when the
    file is not there, is not a readable workbook or has no sample_id column. Read once, it
    answers both what the sheet holds and what the lab typed into it."""

    header: list[str]
    rows: list[tuple[str, tuple]]

    @classmethod
    def read(cls, path: Path) -> TypedSheet:
        from dm_hpc.data.sheetfiles import SheetError, blank, workbook_cells

        if not Path(path).is_file():
            return cls([], [])
        try:
            rows = workbook_cells(path)
        except SheetError:
            return cls([], [])
        header = ["" if h is None else str(h).strip() for h in rows[0]] if rows else []
        if "sample_id" not in header:
            return cls(header, [])
        at = header.index("sample_id")
        return cls(header, [("" if at >= len(cells) or blank(cells[at]) else str(cells[at]).strip(), cells)
                            for cells in rows[1:]])

    def sample_ids(self) -> list[str]:
        """The sample ids of the rows, each once, in sheet order."""
        return list(dict.fromkeys(sid for sid, _ in self.rows if sid))

    def typed(self, state: jn.State, written: Mapping[str, Mapping[str, object]]) -> list[str]:
        """Sample ids with a cell that differs from what the engine wrote for it (``written``:
        ``written_rows``) whose sample is still awaited: a value, an uncertainty, "not made", the
        composition the lab made, a note in a column of its own, a value under a header the lab
        renamed. That is what the lab typed and nobody has ingested yet, lost if the sheet is
        written again. Empty when the sheet holds nothing typed for an awaited sample (one opened
        and saved unchanged)."""
        out = []
        for sid, cells in self.rows:
            entry = state.lab.get(sid)
            if entry is None or not entry.awaited or sid in out:
                continue
            engine = written.get(sid, {})
            if any(not _same_cell(cell, engine.get(name)) for name, cell in zip(self.header, cells)):
                out.append(sid)
        return out


def _same_cell(cell: object, wrote: object) -> bool:
    """Whether a workbook cell still holds what the engine wrote there (blank for a column it
    did not write): numbers to float noise, text without surrounding spaces."""
    from dm_hpc.data.sheetfiles import blank

    if blank(cell) or blank(wrote):
        return blank(cell) and blank(wrote)
    numbers = (int, float)
    if isinstance(cell, numbers) and isinstance(wrote, numbers) and not isinstance(cell, bool):
        return math.isclose(cell, wrote, rel_tol=1e-9, abs_tol=1e-12)
    return str(cell).strip() == str(wrote).strip()


def lab_properties(campaign: CampaignSpec) -> list[str]:
    """The properties the lab is asked to measure."""
    lab = campaign.lab
    if lab is not None and lab.measures is not None:
        return list(lab.measures)
    return [p for p in campaign.properties if not term(p).computed_only]


def significant(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits (0 stays 0)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def rounded_to(value: float, step: float | None, digits: int = 4,
               low: float | None = None, high: float | None = None) -> float:
    """``value`` on a grid of ``step`` (printed without float noise), else significant digits.
    With ``low``/``high``, the nearest grid point inside them (a box of 425-875 degC on a 50-degree
    grid wrote 425 as 400 on the sheet, and 400 came back and was stored: review); none inside (the
    spec refuses such a step), the value itself."""
    if step is None:
        return significant(value, digits)
    decimals = max(0, -int(math.floor(math.log10(step))) + 1)
    k = round(value / step)
    if low is None and high is None:
        return round(k * step, decimals)
    slack = 1e-9 * max(1.0, abs(step))
    inside = [j for j in sorted((k - 1, k, k + 1), key=lambda j: (abs(j * step - value), j))
              if (low is None or j * step >= low - slack) and (high is None or j * step <= high + slack)]
    return round(inside[0] * step, decimals) if inside else significant(value, digits)


def shown_process(campaign: CampaignSpec, name: str, canonical: float) -> tuple[str, float]:
    """(header, value) of a process parameter in the author's unit, rounded (an affine
    conversion such as degC from the conversion cache, so listing a sheet needs no pint)."""
    bound = campaign.space.process.get(name)
    unit = campaign.shown_unit(name, kind="process_parameter")
    value = campaign.shown(name, canonical, kind="process_parameter")
    if bound is None:
        return process_column(PROCESS_STEP, name, unit), rounded_to(value, None)
    low, high = (campaign.shown(name, b, kind="process_parameter") for b in (bound.low, bound.high))
    return process_column(PROCESS_STEP, name, unit), rounded_to(value, bound.precision, low=low, high=high)


def written_units(campaign: CampaignSpec) -> dict[str, str]:
    """Process parameter -> the unit the campaign author wrote (where one was written)."""
    return {name: b.written_unit for name, b in campaign.space.process.items() if b.written_unit}


def composition_step(campaign: CampaignSpec) -> float:
    lab = campaign.lab
    return lab.precision if lab is not None and lab.precision else 0.001


def suggestion_rows(campaign: CampaignSpec, state: jn.State, include_measured: bool = False) -> list[dict]:
    """The lab's sheet, one dict per suggested experiment not yet measured (header -> cell):
    rounded, in the campaign author's units, asking only what the lab measures. Plain Python,
    so that listing the pending experiments (``dm-hpc suggest``) needs no pandas."""
    step = composition_step(campaign)
    rows = []
    for entry in state.lab.values():
        if (entry.record_id is not None or entry.not_made) and not include_measured:
            continue
        row: dict[str, object] = {"sample_id": entry.sample_id, "material_class": campaign.material_class,
                                  "method": campaign.lab.name if campaign.lab else "lab"}
        for el in campaign.space.elements or entry.composition:
            row[composition_column(el)] = rounded_to(entry.composition.get(el, 0.0), step)
        for name, value in entry.process.items():
            header, shown = shown_process(campaign, name, value)
            row[header] = shown
        mean, std = entry.predicted.get("mean", {}), entry.predicted.get("std", {})
        for prop in lab_properties(campaign):
            # in the unit the campaign shows the property in (``CampaignSpec.shown_unit``: an
            # objective's or a constraint's as the file wrote it); the header says it, and
            # ingestion converts by the header
            unit = campaign.shown_unit(prop)
            if prop in mean:
                mu = campaign.shown(prop, mean[prop])
                sd = None if std.get(prop) is None else campaign.shown_spread(prop, std[prop])
                row[property_column(prop, unit, kind="predicted")] = significant(mu, 3)
                row[property_column(prop, unit, kind="predicted_std")] = None if sd is None else significant(sd, 2)
            row[property_column(prop, unit)] = None
            row[property_column(prop, unit, kind="uncertainty")] = None
        row["confirm"] = None
        rows.append(row)
    return rows


def write_suggestions(campaign: CampaignSpec, out: Path, state: jn.State | None = None) -> int:
    """Write the pending experiments to ``out`` (.csv or .xlsx); returns how many. ``state``: the
    journal's, when the caller has replayed it (default: replayed here)."""
    from dm_hpc.data.sheetfiles import write_rows

    rows = suggestion_rows(campaign, state if state is not None else jn.replay(campaign.run_dir / "journal.jsonl"))
    header = list(dict.fromkeys(k for row in rows for k in row)) or ["sample_id"]
    if Path(out).suffix.lower() == ".xlsx":
        import pandas as pd

        write_lab_workbook(campaign, pd.DataFrame(rows, columns=header), Path(out))
    else:
        write_rows(header, [[row.get(h) for h in header] for row in rows], out)
    return len(rows)


def write_lab_sheet(campaign: CampaignSpec, table: pd.DataFrame, out: Path) -> Path:
    """A lab sheet of ``table``'s rows: the workbook for people when ``out`` is .xlsx
    (``write_lab_workbook``: Instructions first, header frozen, cells to fill marked), plain rows
    for .csv. Every door that hands a lab a sheet writes it here (`suggest -n` and the portal's
    download wrote a bare one-sheet workbook, unlike what docs/labs.md shows)."""
    if Path(out).suffix.lower() == ".xlsx":
        return write_lab_workbook(campaign, table, Path(out))
    from dm_hpc.data.sheets import write_table

    return write_table(table, out)


def instructions(campaign: CampaignSpec, props: list[str], unpredicted: bool = False) -> list[tuple[str, str]]:
    """The Instructions worksheet: what to fill, units, "not made", confirmations, whom to ask;
    ``unpredicted``: some sample has no predicted value, which the sheet then explains (a missing
    column or an empty cell otherwise reads as a fault, or a random pick as the model's)."""
    units = ", ".join(f"{p} in {campaign.shown_unit(p)}" for p in props)
    # the description under its own heading, whole: its first line once stood where the owner
    # belongs ("Ask the campaign's owner: Low mixing energy, ..."); a campaign file names no owner
    about = " ".join(campaign.description.split())
    return [
        ("Campaign", campaign.name),
        *([("Description", about)] if about else []),
        ("What to fill", "One row per sample, by sample_id. Type each measured value in its property:<name> column "
                         "and, if you know it, its standard uncertainty in uncertainty:<name>."),
        ("Units", f"The unit is in the column header [..]: {units}. Another unit is fine if you change the header "
                  "(e.g. [MPa] instead of [GPa]); the value is converted and the annotated copy says so."),
        ("Composition", "The composition columns hold what was ordered. If you made something else, overwrite them "
                        "with what you made (the same unit); the sample is stored as made."),
        ("One number a cell", "A value and its spread ('1.2 ± 0.1') go apart: 1.2 in property:<name>, 0.1 in "
                              "uncertainty:<name>. A value not measured yet: leave its cell blank (not 'n/a' or '-')."),
        ("Partly measured", "A row with some values filled and others blank is stored with what it has, and the "
                            "model learns from those; send the row again with the blanks filled once measured "
                            "(no --replace needed)."),
        ("Not made", f"Write '{NOT_MADE}' in a property cell of a sample you did not make. A blank row stays pending."),
        ("Unexpected values", "A value far outside the model's 99 % interval and the values stored so far is held, "
                              "not stored, until you confirm it: write 'yes' in the confirm column (or correct the "
                              "value) and send the sheet again."),
        ("Corrections", "Send the corrected sheet with 'dm-hpc ingest --replace'; a wrong value can be withdrawn with "
                        "'dm-hpc retract RECORD_ID --reason ...'. Nothing is erased: history is kept."),
        *([("Predictions", "A sample without predicted:* values (no such column, or an empty cell) was drawn at "
                           "random, spread over the design space: the campaign had no model yet (no results, or too "
                           "few). It is a starting point, not a model's pick; the model predicts for the samples "
                           "suggested once results come in.")] if unpredicted else []),
        ("Do not change", "sample_id, the column names (only a unit in [..] may change, see Units), predicted:* "
                          "columns (they are for your information)."),
        ("Questions", "Ask whoever sent you this sheet; send the annotated copy along (it says what the engine "
                      "saw of every cell)."),
    ]


def write_lab_workbook(campaign: CampaignSpec, table: pd.DataFrame, out: Path) -> Path:
    """The suggestion sheet as XLSX for people (Instructions first, then the samples)."""
    from openpyxl import Workbook  # here, not at import: a CSV sheet or a listing needs none

    from dm_hpc.data.workbook import (
        header_row,
        instructions_sheet,
        number_or_word_validation,
        number_validation,
        put,
        save_atomically,
    )

    props = lab_properties(campaign)
    wb = Workbook()
    ws = wb.active
    ws.title = "samples"
    header = [str(c) for c in table.columns]
    notes = {h: "fill in" for h in header if h.startswith(("property:", "uncertainty:", "confirm"))}
    header_row(ws, header, notes)
    for i, row in enumerate(table.itertuples(index=False, name=None), start=2):
        for j, value in enumerate(row, start=1):
            fill = "input" if header[j - 1] in notes else None
            put(ws, i, j, value, fill=fill)
    for j, h in enumerate(header, start=1):
        if h.startswith("uncertainty:"):
            number_validation(ws, j, len(table), 0.0, 1e300, "a non-negative number")
        elif h.startswith("property:"):
            number_or_word_validation(ws, j, len(table), NOT_MADE)
    predicted = [h for h in header if h.startswith("predicted:")]
    unpredicted = len(table) > 0 and (not predicted or bool(table[predicted].isna().any(axis=None)))
    instructions_sheet(wb, instructions(campaign, props, unpredicted))
    return save_atomically(wb, out)
