"""Figures of a finished campaign run (``make demo``): repeats, utilisation, wall time.

    python benchmarks/demo_figures.py campaigns/hea-demo.yaml

- repeated realised compositions: computed records whose cell composition (and method) equals
  an earlier record's (0 expected: every suggestion is realised before it is deduplicated);
- slot utilisation: time slots held a task (submit to collect) / (slots x run time), as the
  manager prints it, from the journal;
- calculation share: time inside calculations (each result's ``wall_time_s``) / (slots x run
  time): what is left after worker start-up and waiting for the planner;
- wall time from the journal's first start to its last stop.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.data import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("campaign")
    c = load_campaign(ap.parse_args().campaign)
    events = list(jn.Journal.events(c.run_dir / "journal.jsonl"))
    t0 = next(e["t"] for e in events if e["event"] in ("start", "resume"))
    t1 = max(e["t"] for e in events if e["event"] in ("ingested", "failed", "stop"))
    submitted = {e["task_id"]: e["t"] for e in events if e["event"] == "submitted"}
    ended = {e["task_id"]: e["t"] for e in events if e["event"] in ("ingested", "failed")}
    slots = c.runner.max_in_flight
    busy = sum(ended[t] - submitted[t] for t in ended if t in submitted)
    calc = 0.0
    for task_id in ended:
        path = c.run_dir / "tasks" / task_id / "result.json"
        if path.exists():
            payload = json.loads(path.read_text())
            calc += float((payload.get("result") or payload.get("failure") or {}).get("wall_time_s") or 0.0)
    df = Store.open(c.store).to_dataframe(source="computed", campaign=c.name)
    x = [col for col in df.columns if col.startswith("x_")]
    cells = Counter(tuple(r) for r in df[["method", *x]].fillna(0).round(6).itertuples(index=False, name=None))
    print(f"calculations: {len(ended)} ended, {len(df)} computed records")
    print(f"repeated realised compositions: {sum(n - 1 for n in cells.values())}")
    print(f"slot utilisation: {busy / (slots * (t1 - t0)):.0%}  ({slots} slots)")
    print(f"calculation share of slot time: {calc / (slots * (t1 - t0)):.0%}")
    print(f"wall time (journal): {t1 - t0:.1f} s")


if __name__ == "__main__":
    main()
