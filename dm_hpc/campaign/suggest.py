"""Lab on demand: N new experiments from the current model, journalled as one lab batch.

``lab_batch`` is what ``dm-hpc suggest -n N``, ``Campaign.suggest(n)`` and the end of a run use.
It depends only on the store and the journal (the model is refitted on the store, the random
stream is seeded by the journal's counts), so the same journal gives the same lab batch whether
or not the run was interrupted. Points are realised at the lab's precision and never repeat what
is stored, in flight or already sent to the lab.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dm_hpc.acquire.planner import PlanRequest, fresh_points
from dm_hpc.acquire.points import PointKey, ProposedPoint, point_key
from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.crossval import keep_for_report
from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS, own_records, training_set
from dm_hpc.campaign.journal_repair import reserve_ids
from dm_hpc.campaign.labsheet import sample_id
from dm_hpc.campaign.realise import realiser, stored_keys
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.campaign.strategy import LabSeeding, fit_model, optimiser, random_start
from dm_hpc.data import StoreLockedError


#: What a batch planned before the campaign has any record is (the CLI's line, the notebook's
#: warning): random points without predictions read as a model's picks otherwise.
RANDOM_START = ("no measured or computed record yet, so these are a spread-out random start, not model "
                "predictions; the model takes over once results come in")


@dataclass
class LabBatch:
    """A planned lab batch: journal-ready samples, why there are fewer than asked (if so), the
    batch's number once journalled (None: not journalled, nothing to journal), and
    ``random_start`` (``RANDOM_START``) when its points are random because the campaign has no
    record yet (too few records to fit a model: ``dataset.unfit_reason`` says so instead)."""

    samples: list[dict[str, Any]] = field(default_factory=list)
    why_empty: str | None = None
    batch: int | None = None
    random_start: str | None = None


def seen_points(c: CampaignSpec, state: jn.State, df: pd.DataFrame) -> dict[str, set[PointKey]]:
    """Realised points per fidelity that are stored, planned or sent to the lab."""
    seen = stored_keys(c, df)
    for t in state.tasks.values():
        seen.setdefault(t.fidelity, set()).add(point_key(t.composition, t.process))
    if c.lab is not None:
        seen[c.lab.name] |= {point_key(e.composition, e.process) for e in state.lab.values()}
    return seen


def targets_reached(c: CampaignSpec, df: pd.DataFrame) -> str:
    """Each objective's best value on the target fidelity, in the author's unit, when every target is
    met (``stopping.targets_met``, the manager's rule); "" otherwise."""
    from dm_hpc.campaign.dataset import target_best_values
    from dm_hpc.campaign.stopping import targets_met

    if not any(o.target is not None for o in c.objectives) or df.empty:
        return ""
    best = target_best_values(c, own_records(c, df))
    if not targets_met(c, best):
        return ""
    return ", ".join(f"{o.property} {o.shown(best[o.property]):.4g} {o.shown_unit}, target {o.target:g}"
                     for o in c.objectives if o.target is not None)


def lab_batch(c: CampaignSpec, state: jn.State, df: pd.DataFrame, n: int, fitted=None) -> LabBatch:
    """Plan ``n`` new lab experiments (``fitted``: a model to reuse, else fitted on ``df``)."""
    lab = c.lab
    if lab is None:
        return LabBatch(why_empty=f"campaign {c.name!r} has no experiment fidelity")
    left = None if c.budget.lab_experiments is None else c.budget.lab_experiments - len(state.lab)
    if left is not None and left <= 0:
        return LabBatch(why_empty=f"the lab budget is used up ({len(state.lab)} of "
                                  f"{c.budget.lab_experiments} experiments suggested); raise budget.lab_experiments")
    met = targets_reached(c, df)
    if met:  # the manager stops a run on it; the lab-only flow suggested on regardless (review)
        return LabBatch(why_empty=f"the objective targets are met ({met}); raise the target, or set "
                                  "stopping.targets_met: false to go on")
    asked = n
    n = n if left is None else min(n, left)
    if fitted is None:
        data = training_set(c, df)
        fitted = fit_model(c, data, for_decisions=True) if data.fewest >= MIN_TRAINING_RECORDS else None
    seed = int(np.random.default_rng([c.seed, len(state.tasks), len(state.lab), state.refits, 7]).integers(2**31))
    pending = [ProposedPoint(t.fidelity, t.composition, t.process) for t in state.in_flight]
    pending += [ProposedPoint(lab.name, e.composition, e.process) for e in state.lab.values() if e.awaited]
    if fitted is None:
        planner = random_start(c)
    elif fitted.multi_fidelity or not c.calculations:
        planner = optimiser(c)
    else:
        planner = LabSeeding(optimiser(c), lab.name, c.calculations[0].name)
    got = fresh_points(planner, PlanRequest(n, fitted, pending, [lab.name], seed), realiser(c),
                       seen_points(c, state, df), fallback=random_start(c))
    batch = state.lab_batches + 1
    samples = [{"sample_id": sample_id(c.name, batch, k + 1), "composition": p.composition,
                "process": p.process, "predicted": p.predicted} for k, p in enumerate(got.points)]
    why = got.shortfall
    if why is None and n < asked:
        why = f"the lab budget allows {n} more (budget.lab_experiments = {c.budget.lab_experiments})"
    start = RANDOM_START if fitted is None and samples and own_records(c, df).empty else None
    return LabBatch(samples, why, random_start=start)


REQUEST_SUFFIX = ".request.json"


def journal_batch(c: CampaignSpec, store, journal: jn.Journal, state: jn.State, n: int) -> LabBatch:
    """Plan a lab batch and journal it (the caller holds the campaign: lock or running manager)."""
    t = time.perf_counter()
    df = store.to_dataframe()
    reserve_ids(c, state, df, journal)  # sample ids above any the store holds for this campaign
    batch = lab_batch(c, state, df, n)
    if batch.samples:  # timed: a run's wall-time budget estimates its final lab batch from it
        # the report's cross-validation, kept while the training set is unchanged: a report
        # drawn after this batch needs no model fit (and no torch)
        keep_for_report(c, training_set(c, df))
        jn.apply(state, journal.write("lab_suggested", batch=state.lab_batches + 1, samples=batch.samples,
                                      seconds=round(time.perf_counter() - t, 3)))
        batch.batch = state.lab_batches
    return batch


def request_lab_batch(c: CampaignSpec, n: int, timeout_s: float = 300.0) -> LabBatch:
    """``n`` new lab experiments, journalled. When a manager runs the campaign, it is asked
    through the inbox (it owns the journal) and this waits for its answer."""
    import json

    from dm_hpc.campaign.ownership import drop_in_inbox, exclusive

    with exclusive(c) as held:
        if held is not None:
            store, journal = held
            return journal_batch(c, store, journal, jn.replay(journal.path), n)
    stem = f"suggest-{time.time_ns()}"
    reply = c.run_dir / "inbox" / f"{stem}.reply.json"
    drop_in_inbox(c.run_dir, json.dumps({"n": n, "reply": reply.name}), f"{stem}{REQUEST_SUFFIX}")
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if reply.exists():
            data = json.loads(reply.read_text())
            reply.unlink()
            number = data.get("batch")
            if number is None and data["samples"]:  # a manager started before replies said it: its journal does
                entry = jn.replay(c.run_dir / "journal.jsonl").lab.get(data["samples"][0]["sample_id"])
                number = None if entry is None else entry.batch
            return LabBatch(data["samples"], data["why_empty"], number, data.get("random_start"))
        time.sleep(0.2)
    # an empty sheet and success would read as "nothing to do": it is a failure to say
    raise StoreLockedError(f"campaign {c.name!r}: the running manager did not answer within {timeout_s:.0f} s; "
                           f"nothing was suggested here (it may still journal the batch when it answers: "
                           f"`dm-hpc status` shows it, `dm-hpc suggest FILE` writes the pending ones)")


def answer_request(c: CampaignSpec, path, store, journal: jn.Journal, state: jn.State) -> LabBatch:
    """The manager's side of ``request_lab_batch``: plan, journal, reply (atomically)."""
    import json
    import os

    req = json.loads(path.read_text())
    batch = journal_batch(c, store, journal, state, int(req["n"]))
    reply = path.parent / str(req["reply"])
    tmp = path.parent / f".{reply.name}.tmp"
    tmp.write_text(json.dumps({"samples": batch.samples, "why_empty": batch.why_empty, "batch": batch.batch,
                               "random_start": batch.random_start}))
    os.replace(tmp, reply)
    path.unlink()
    return batch


def batch_table(c: CampaignSpec, samples: list[dict[str, Any]]) -> pd.DataFrame:
    """The lab-sheet rows of ``samples`` (property columns empty for the lab to fill)."""
    from dm_hpc.campaign.lab import suggestion_table

    state = jn.State()
    jn.apply(state, {"event": "lab_suggested", "batch": 0, "samples": samples})
    table = suggestion_table(c, state)
    if table.empty:
        table = suggestion_table(c, _template_state(c))
        table = table.iloc[0:0]
    return table


def _template_state(c: CampaignSpec) -> jn.State:
    """A one-row state whose table has every column of the campaign's sheet (for empty sheets)."""
    state = jn.State()
    comp = {el: 1.0 / max(1, len(c.space.elements)) for el in c.space.elements} or {"H": 1.0}
    proc = {k: b.low for k, b in c.space.process.items()}
    jn.apply(state, {"event": "lab_suggested", "batch": 0,
                     "samples": [{"sample_id": "-", "composition": comp, "process": proc}]})
    return state
