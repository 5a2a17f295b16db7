"""Predictions at compositions a person chooses: what the portal's ``/predict`` and
``Campaign.predict`` answer, from one reading of the request and one prediction.

- ``request_problems``: where a request cannot be read, as ``(where, why)`` pairs: a symbol that
  is no element (with "did you mean", ``data.elements.meant_element``), an element outside the
  design space, fractions below 0 or not summing to 1 (``data.composition.fractions_problem``: a
  lab sheet's tolerance), a process parameter the campaign lacks, a process list of another length;
- ``predict_at``: each property's mean and standard deviation (canonical units) by a fitted model,
  at each composition (normalised to sum to 1 exactly) and process (default: the middle of the
  campaign's process box), and where the input lies outside the campaign's bounds (``outside``:
  the model extrapolates there);
- ``in_shown_units``: the same rows in the units the campaign shows each property in
  (``CampaignSpec.shown_unit``);
- ``read_request``, ``said``, ``prediction_frame``: a notebook's arguments (dicts, formula
  strings, the frames ``Campaign.records``/``pending``/``suggest`` give) read into the request the
  portal takes, its problems in one line, and the answer as a frame in lab-sheet columns
  (``Campaign.predict``).

Which model predicts (fitted on the records a caller reads, or a registered version) is the
caller's: the portal keeps one fit per clearance, the Python API fits on the whole store.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from dm_hpc.campaign.spec import CampaignError, CampaignSpec
from dm_hpc.data.vocabulary import RangeError, check_range


class InputError(CampaignError):
    """An argument the campaign cannot read (a symbol that is no element, an element outside its
    design space, fractions that do not sum to 1, a process parameter it lacks); the message names
    each, where it is (``compositions[2]``) and what is wrong."""


#: Most names one refusal lists, and most compositions it names (a body of 20,000 made-up symbols
#: came back whole in the refusal).
NAMES_SHOWN = 10


def named(names: list[str]) -> str:
    """``names`` joined, the first ``NAMES_SHOWN`` of them, then how many more."""
    more = len(names) - NAMES_SHOWN
    return ", ".join(names[:NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def composition_problems(campaign: str, elements: list[str], compositions: list[dict[str, float]]
                         ) -> list[tuple[tuple, str]]:
    """Where ``compositions`` name a symbol that is no element, or an element outside ``elements``
    (the design space's): one problem per composition, for the first ``NAMES_SHOWN`` of them."""
    from dm_hpc.data.elements import is_element, meant_element

    problems = []
    for i, comp in enumerate(compositions):
        stray = sorted(set(comp) - set(elements))
        if not stray:
            continue
        said = []
        wrong = [el for el in stray if not is_element(el)]
        if wrong:
            fixed = [m for m in map(meant_element, wrong) if m is not None]
            said.append(f"{named(wrong)} {'is not an element symbol' if len(wrong) == 1 else 'are not element symbols'}"
                        + (f" (did you mean {named(fixed)}?)" if fixed else ""))
        outside = [el for el in stray if is_element(el)]
        if outside:
            said.append(f"{'element' if len(outside) == 1 else 'elements'} {named(outside)} "
                        f"{'is' if len(outside) == 1 else 'are'} outside the design space of campaign {campaign!r} "
                        f"({', '.join(elements)})")
        problems.append((("compositions", i), "; ".join(said)))
        if len(problems) == NAMES_SHOWN:
            break
    return problems


def request_problems(c: CampaignSpec, elements: list[str], compositions: list[dict[str, float]],
                     process: list[dict[str, float]] | None) -> list[tuple[tuple, str]]:
    """Each part of a prediction request the campaign cannot read (see the module docstring);
    ``elements``: the design space's (``dataset.design_elements``, the model's inputs: excluded
    elements are not among them). Empty: the request is sound."""
    from dm_hpc.data.composition import fractions_problem

    problems = composition_problems(c.name, list(elements), compositions)
    named_already = {loc for loc, _ in problems}
    for i, comp in enumerate(compositions):
        if ("compositions", i) in named_already:
            continue
        bad = [el for el, v in comp.items() if not is_finite_number(v)]  # a notebook's cell, not a JSON number
        why = f"{bad[0]} = {comp[bad[0]]!r} is not a finite number" if bad else fractions_problem(comp)
        if why:
            problems.append((("compositions", i), why))
    pnames = list(c.space.process)
    if process is not None:
        if len(process) != len(compositions):
            problems.append((("process",), f"process: {len(process)} entries for {len(compositions)} compositions "
                                           "(one per composition, or leave it out for the middle of the process box)"))
        for i, p in enumerate(process):
            stray = sorted(set(p) - set(pnames))
            if stray:
                problems.append((("process", i, stray[0]),
                                 f"process: {named(stray)} {'is' if len(stray) == 1 else 'are'} not a process "
                                 f"parameter of campaign {c.name!r} ({', '.join(pnames) or 'it has none'})"))
                break
            bad = [k for k, v in p.items() if not is_finite_number(v)]
            if bad:
                problems.append((("process", i, bad[0]), f"process: {bad[0]} = {p[bad[0]]!r} is not a finite number"))
                continue
            for k, v in p.items():  # canonical here; -500 degC or -5 h was answered, flagged only "outside"
                try:
                    check_range(k, v, kind="process_parameter")
                except RangeError as exc:
                    problems.append((("process", i, k), f"process: {k}: {exc}"))
                    break
    return problems


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (a bool is not; numpy's numbers are)."""
    import numbers

    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def outside(c: CampaignSpec, composition: dict[str, float], process: dict[str, float]) -> list[str]:
    """Where a prediction's input (``process``: canonical units) lies outside the campaign's bounds
    (a partner asking for Al 0.5 where the space stops at 0.35 got a number with no word that the
    model extrapolates); a process value with its bounds in the unit the campaign file writes them."""
    out = []
    for el, (low, high) in c.space.elements.items():
        x = composition.get(el, 0.0)
        if x < low - 1e-9 or x > high + 1e-9:
            out.append(f"{el} {x:.4g} outside {low:g}-{high:g}")
    for name, b in c.space.process.items():
        v = process.get(name)
        if v is not None and not b.low - 1e-9 <= v <= b.high + 1e-9:
            v, low, high = (float(c.shown(name, x, kind="process_parameter")) for x in (v, b.low, b.high))
            out.append(f"{name} {v:.4g} outside {low:.4g}-{high:.4g} {c.shown_unit(name, kind='process_parameter')}")
    return out


def finite_or_none(x: float | None) -> float | None:
    """``x`` as a float, or None when it is none or not finite (JSON has no NaN)."""
    return float(x) if x is not None and math.isfinite(float(x)) else None


def predict_at(c: CampaignSpec, model: Any, space: Any, properties: tuple[str, ...] | list[str],
               compositions: list[dict[str, float]], process: list[dict[str, float]] | None
               ) -> list[dict[str, Any]]:
    """Mean and standard deviation (canonical units; None where not finite) of ``properties`` (the
    model's outputs, in order) at each composition of a sound request (``request_problems``), by
    ``model`` (a BoTorch model on ``space``, a ``DesignSpace``). Each composition is divided by its
    sum, so the rounding a sheet also takes is answered at fractions summing to 1 exactly; each
    process (canonical units) defaults to the middle of the campaign's process box.

    Returns one dict per composition: ``composition``, ``process`` (canonical, every parameter),
    ``mean``, ``std`` (property -> value) and ``outside`` (``outside``)."""
    from dm_hpc.campaign.realise import exactly
    from dm_hpc.learn import predict
    from dm_hpc.learn.features import composition_matrix

    totals = [sum(comp.values()) for comp in compositions]
    comps = [{el: v / total for el, v in comp.items()} for comp, total in zip(compositions, totals)]
    pnames = list(c.space.process)
    mid = {k: 0.5 * (b.low + b.high) for k, b in c.space.process.items()}
    proc = np.array([[{**mid, **(process[i] if process and i < len(process) else {})}[p] for p in pnames]
                     for i in range(len(comps))], dtype=float).reshape(len(comps), len(pnames))
    X = space.featurize(composition_matrix(comps, space.element_names), proc if pnames else None)
    mean, std = predict(model, X)
    # an analytic property (a raw-material cost) exactly, as a realised suggestion carries it: the
    # demo's model put AlCuNi at 633 +- 800 USD/kg where the price table gives 12.7
    return [{"composition": comp, "process": dict(zip(pnames, map(float, proc[i]))),
             **exactly({"mean": {p: finite_or_none(mean[i, j]) for j, p in enumerate(properties)},
                        "std": {p: finite_or_none(std[i, j]) for j, p in enumerate(properties)}}, comp),
             "outside": outside(c, comp, dict(zip(pnames, proc[i])))}
            for i, comp in enumerate(comps)]


def in_shown_units(c: CampaignSpec, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``predict_at``'s rows with each mean and std in the unit the campaign shows the property in
    (``CampaignSpec.shown_unit``: an objective as the file writes it, as ``best`` gives it), named
    in ``units``."""
    def shown(convert, values: dict[str, Any]) -> dict[str, float | None]:
        return {p: None if v is None else float(convert(p, v)) for p, v in values.items()}

    return [{**row, "mean": shown(c.shown, row["mean"]), "std": shown(c.shown_spread, row["std"]),
             "units": {p: c.shown_unit(p) for p in row["mean"]}} for row in rows]


def read_request(c: CampaignSpec, compositions, process
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """``Campaign.predict``'s arguments as the portal's request has them: compositions as
    ``{symbol: amount}`` and process values in canonical units (a value that is no number is kept
    as it is, for ``request_problems`` to name). Raises ``TypeError`` for an argument
    of the wrong kind, ``InputError`` for a column or formula it cannot read."""
    if process is not None:
        if isinstance(process, dict):
            process = [process]
        if not isinstance(process, (list, tuple)) or not all(isinstance(p, dict) for p in process):
            raise TypeError(f"process must be a dict or a list of dicts (parameter -> value), not {process!r}")
        process = canonical_process(c, process)
    one_process = process is not None and len(process) == 1
    if isinstance(compositions, (dict, str)):
        compositions = [compositions]
    if isinstance(compositions, pd.DataFrame):
        comps, from_columns = _frame_inputs(c, compositions)
        if from_columns is not None:
            if process is not None:
                raise InputError(f"campaign {c.name!r}: the frame has process columns and process= is given too: "
                                 "give the process one way")
            process = from_columns
    elif isinstance(compositions, (list, tuple)):
        comps = [_composition(c, i, comp) for i, comp in enumerate(compositions)]
    else:
        raise TypeError("compositions must be a list of {element: fraction} dicts or formula strings, or a "
                        f"DataFrame with composition columns, not {type(compositions).__name__}")
    if not comps:
        raise InputError(f"campaign {c.name!r}: no composition to predict at")
    return comps, (process * len(comps) if one_process else process)


def _composition(c: CampaignSpec, i: int, comp) -> dict[str, Any]:
    """One composition of a list: a dict as it is, a formula string as its amounts normalised."""
    if isinstance(comp, str):
        from dm_hpc.data.composition import CompositionError, parse_formula, to_atomic_fractions

        try:
            return to_atomic_fractions(parse_formula(comp))
        except CompositionError as exc:
            raise InputError(f"campaign {c.name!r}: cannot predict: compositions[{i}]: {exc}") from None
    if isinstance(comp, dict):
        return {str(el): v for el, v in comp.items()}
    raise TypeError(f"compositions[{i}] must be a dict {{element: fraction}} or a formula string, not "
                    f"{type(comp).__name__}: {comp!r}")


#: Composition column units a prediction's frame may use, and the factor to an atomic fraction (a
#: lab's sheet in at% is read as the lab sheet reader reads it; a weight basis needs the masses).
AT_FRACTION_UNITS = {"at_frac": 1.0, "at%": 0.01, "at_percent": 0.01}


def _frame_inputs(c: CampaignSpec, frame: pd.DataFrame) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """A frame's compositions (its ``composition:<El> [at_frac]`` or ``[at%]`` columns, else every
    column an element symbol; an empty cell is 0, a real element at 0 absent) and its process columns'
    values (canonical units; None: it has none)."""
    from dm_hpc.data.elements import is_element
    from dm_hpc.data.sheets import parse_header

    headers = [str(h) for h in frame.columns]
    sheet = [h for h in headers if h.startswith("composition:")]
    elements, process, scale = {}, {}, {}
    for h in sheet or headers:
        try:
            col = parse_header(h) if sheet else None
        except ValueError as exc:
            raise InputError(f"campaign {c.name!r}: cannot predict: {exc}") from None
        if col is not None and col.unit not in AT_FRACTION_UNITS:
            raise InputError(f"campaign {c.name!r}: cannot predict: column {h!r}: predict takes atomic amounts, "
                             "composition:<El> [at_frac] or [at%]")
        elements[h] = h if col is None else col.name
        scale[h] = AT_FRACTION_UNITS[col.unit] if col is not None else 1.0
    for h in (h for h in headers if sheet and h.startswith("process:")):
        try:
            col = parse_header(h)
        except ValueError as exc:
            raise InputError(f"campaign {c.name!r}: cannot predict: {exc}") from None
        if col.kind == "step":  # a step's equipment, settings or order: what it was done with, no model input
            continue
        why = _process_column_problem(c, col)
        twice = next((g for g, other in process.items() if other.name == col.name), None)
        if why is None and twice is not None:  # read one after the other, the last would win unsaid
            why = (f"{col.name!r} is given by column {twice!r} already: a prediction takes one value per "
                   "process parameter")
        if why:
            raise InputError(f"campaign {c.name!r}: cannot predict: column {h!r}: {why}")
        process[h] = col
    comps = []
    for _, row in frame.iterrows():
        comp = {el: (0.0 if pd.isna(row[h]) else row[h] * scale[h] if is_finite_number(row[h]) else row[h])
                for h, el in elements.items()}
        comps.append({el: v for el, v in comp.items() if not (is_element(el) and v == 0)})
    if not process:
        return comps, None
    from dm_hpc.data.vocabulary import to_canonical

    values = []
    for _, row in frame.iterrows():
        given = {h: row[h] for h in process if not pd.isna(row[h])}  # empty: the middle of the box
        try:
            values.append({process[h].name: to_canonical(process[h].name, v, process[h].unit, kind="process_parameter")
                           if is_finite_number(v) else v for h, v in given.items()})
        except ValueError as exc:  # a unit that is not one of the parameter's
            raise InputError(f"campaign {c.name!r}: cannot predict: {exc}") from None
    return comps, values


def _process_column_problem(c: CampaignSpec, col) -> str | None:
    """Why a frame's process column ``col`` (``parse_header``'s) cannot be read as the lab sheet's
    ``process:treatment:<parameter> [unit]``, as ``add_measurements`` reads it: no unit (a bare
    number would be read as canonical, kelvin for a temperature the file writes in degC), or a
    step or parameter the campaign does not have (it was left out, or the middle of the range
    taken). None: it is one of the campaign's parameters, with a unit."""
    from dm_hpc.campaign.labsheet import PROCESS_STEP
    from dm_hpc.data.columns import process_column

    def head(name: str) -> str:
        return process_column(PROCESS_STEP, name, c.shown_unit(name, kind="process_parameter"))

    if col.name not in c.space.process:
        heads = ", ".join(repr(head(k)) for k in c.space.process) or "none: it has no process parameters"
        return f"{col.name!r} is not a process parameter of the campaign (its process columns: {heads})"
    if col.step != PROCESS_STEP:
        return f"step {col.step!r} is not the campaign's; its process columns are headed {head(col.name)!r}"
    if col.occurrence != 1:  # an export's second step of one name: the campaign's route has one
        return (f"a second {PROCESS_STEP!r} step (occurrence {col.occurrence}) is not the campaign's: its process "
                f"columns are headed {head(col.name)!r}")
    if not col.unit:
        return f"header has no [unit], as on a lab sheet: write it {head(col.name)!r} (values in that unit)"
    return None


def canonical_process(c: CampaignSpec, process: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Process values per composition (parameter -> value in the unit the campaign file writes the
    parameter's range in, as its lab sheet and ``Campaign.predict`` say them) in canonical units."""
    return [{str(k): _canonical_process(c, str(k), v) for k, v in p.items()} for p in process]


def _canonical_process(c: CampaignSpec, name: str, value):
    """A process value in the unit the campaign file writes its range in, canonical (a name the
    campaign lacks, or a value that is no number, is kept for the request's checks to name)."""

    if name not in c.space.process or not is_finite_number(value):
        return value
    from dm_hpc.data.vocabulary import to_canonical

    return to_canonical(name, value, c.shown_unit(name, kind="process_parameter"), kind="process_parameter")


def said(problems: list[tuple[tuple, str]]) -> str:
    """``request_problems`` in one line, each where it is (``compositions[2]: ...``)."""
    lines = []
    for loc, msg in problems:
        if loc[0] == "compositions":
            lines.append(f"compositions[{loc[1]}]: {msg}")
        elif len(loc) > 1:
            lines.append(f"process[{loc[1]}]: {msg.removeprefix('process: ')}")
        else:
            lines.append(msg)
    more = len(lines) - NAMES_SHOWN
    return "; ".join(lines[:NAMES_SHOWN]) + (f"; and {more} more" if more > 0 else "")


def prediction_frame(c: CampaignSpec, elements: list[str], rows: list[dict[str, Any]],
                     used: dict[str, Any]) -> pd.DataFrame:
    """``Campaign.predict``'s frame of ``in_shown_units`` rows (see its docstring); ``elements``:
    the design space's (``dataset.design_elements``), each a composition column."""
    from dm_hpc.campaign.labsheet import PROCESS_STEP
    from dm_hpc.data.columns import composition_column, process_column, property_column
    from dm_hpc.learn.intervals import Z90

    order = [el for el in c.space.elements if el in elements] + [el for el in elements if el not in c.space.elements]
    out = []
    for row in rows:
        line: dict[str, Any] = {composition_column(el): row["composition"].get(el, 0.0) for el in order}
        for name, value in row["process"].items():
            unit = c.shown_unit(name, kind="process_parameter")
            line[process_column(PROCESS_STEP, name, unit)] = float(c.shown(name, value, kind="process_parameter"))
        for p, mean in row["mean"].items():
            std, unit = row["std"][p], row["units"][p]
            line[property_column(p, unit, "predicted")] = mean
            line[property_column(p, unit, "predicted_std")] = std
            line[property_column(p, unit, "90 % low")] = None if mean is None or std is None else mean - Z90 * std
            line[property_column(p, unit, "90 % high")] = None if mean is None or std is None else mean + Z90 * std
        line["outside"] = "; ".join(row["outside"])
        line["model"] = used["name"]
        out.append(line)
    frame = pd.DataFrame(out)
    frame.attrs["model"] = used
    return frame
