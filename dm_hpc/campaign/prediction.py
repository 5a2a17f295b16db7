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
  (``CampaignSpec.shown_unit``).

Which model predicts (fitted on the records a caller reads, or a registered version) is the
caller's: the portal keeps one fit per clearance, the Python API fits on the whole store.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from dm_hpc.campaign.spec import CampaignSpec

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
    return [{"composition": comp, "process": dict(zip(pnames, map(float, proc[i]))),
             "mean": {p: finite_or_none(mean[i, j]) for j, p in enumerate(properties)},
             "std": {p: finite_or_none(std[i, j]) for j, p in enumerate(properties)},
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
