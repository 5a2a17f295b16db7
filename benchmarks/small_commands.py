"""CPU seconds of the small campaign commands (issue 19, item 8): status, validate, suggest
(listing the pending experiments) and report, on a small lab-only process campaign (and status
of one whose model cannot be fitted; and the report when it must cross-validate anew).

    OMP_NUM_THREADS=1 python benchmarks/small_commands.py [--runs 3] [--repo PATH ...] [--command NAME ...]

Each ``--repo`` is a checkout whose ``dm_hpc`` is measured (default: this one); give the main
checkout as well to compare before and after: the checkouts take turns run by run, so a change
of load on the machine falls on each alike. ``--command`` measures only the named commands. The
campaign (8 measured experiments, 2 process parameters) is built once with this checkout's API and
copied, one folder per checkout (what one version keeps, such as the report's cross-validation,
is not another's); each command runs in its checkout's folder, so relative paths mean the same to
every version. CPU = user + system time of the command's
process (``resource.getrusage(RUSAGE_CHILDREN)``), so other load on the machine changes it far
less than wall time; the figures still come from a shared, loaded machine. The median wall
time and the load average are printed beside them.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parents[1]
CAMPAIGN = {
    "name": "small", "store": "store", "workdir": "run", "seed": 2,
    "space": {"elements": {"Cu": [0.5, 1.0], "Ni": [0.0, 0.5]},
              "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"},
                          "annealing_time": {"low": 30, "high": 480, "unit": "min"}}},
    "objectives": [{"property": "hardness", "goal": "max", "unit": "GPa"}],
    "fidelities": [{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 4}],
    "budget": {"lab_experiments": 12},
    "learning": {"initial_points": 4},
}
#: The same campaign with a constraint on a property the lab never measures: no model can be fitted,
#: and ``status`` says why (it read the whole store for that before).
UNFIT = {**CAMPAIGN, "name": "unfit", "store": "store-unfit", "workdir": "run-unfit",
         "constraints": ["density <= 9 g/cm3"]}
COMMANDS = {
    "status": ["status", "small.yaml"],
    "status (unfit model)": ["status", "unfit.yaml"],
    "validate": ["validate", "small.yaml"],
    "suggest (pending)": ["suggest", "small.yaml", "--out", "pending.csv"],
    "report": ["report", "small.yaml"],
    "report (refits)": ["report", "small.yaml"],
}
#: Run before each timing of a command: "report" reuses the cross-validation the last lab batch
#: kept (``campaign/crossval.py``); "report (refits)" is the report after a change to the records
#: (a new measurement, a retraction), which cross-validates anew: torch, BoTorch and one GP fit.
PREPARE = {"report (refits)": lambda folder: (folder / "run" / "cross-validation.json").unlink(missing_ok=True)}


def build(folder: Path) -> Path:
    """Two rounds of 4 suggested and measured experiments, driven as a lab drives them."""
    sys.path.insert(0, str(HERE))
    from dm_hpc import Campaign

    path = folder / "small.yaml"
    path.write_text(yaml.safe_dump(CAMPAIGN))
    camp = Campaign.load(path)
    for _ in range(2):
        sheet = camp.suggest(4)
        col = {k: next(c for c in sheet.columns if k in c) for k in ("Ni", "annealing_temperature", "annealing_time")}
        # 1.5-4.5 GPa over the space (degC and min, the units the campaign is written in)
        sheet["property:hardness [GPa]"] = (3 + 2 * sheet[col["Ni"]].astype(float)
                                            - 0.002 * (sheet[col["annealing_temperature"]].astype(float) - 650)
                                            - 0.002 * sheet[col["annealing_time"]].astype(float))
        camp.add_measurements(sheet)
    camp.suggest(4)  # 4 pending, for `suggest` to list
    unfit = folder / "unfit.yaml"
    unfit.write_text(yaml.safe_dump(UNFIT))
    camp = Campaign.load(unfit)
    sheet = camp.suggest(4)
    sheet["property:hardness [GPa]"] = 2.0
    camp.add_measurements(sheet)
    return path


def cpu_seconds(repo: Path, args: list[str], cwd: Path, pycache: Path, prepare=None) -> tuple[float, float]:
    """(CPU, wall) seconds of one run of ``dm-hpc ARGS`` in ``cwd`` with ``repo``'s dm_hpc."""
    if prepare is not None:
        prepare(cwd)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # HOME kept: caches live there. Bytecode is written (to ``pycache``, one per checkout) and a
    # warm-up run comes first: an installed package has its bytecode, a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (as on these machines) compiles every module on every start.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(repo), OMP_NUM_THREADS="1", PYTHONPYCACHEPREFIX=str(pycache))
    res = subprocess.run([sys.executable, "-m", "dm_hpc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode:
        raise SystemExit(f"{repo}: dm-hpc {' '.join(args)} failed:\n{res.stdout}{res.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--repo", type=Path, action="append", help="checkout to measure (repeatable)")
    ap.add_argument("--command", action="append", choices=list(COMMANDS), help="command to measure (repeatable; default: all)")
    args = ap.parse_args()
    repos = args.repo or [HERE]
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "campaign"
        built.mkdir()
        build(built)
        folders = [Path(tmp) / f"campaign-{k}" for k in range(len(repos))]
        for f in folders:
            shutil.copytree(built, f)
        print("CPU seconds (user + system) per command; median and range of "
              "(and median wall seconds of) "
              f"{args.runs} runs after a warm-up run; shared, loaded machine (2 cores, other sessions "
              f"running; load average {os.getloadavg()[0]:.1f})")
        print(f"{'command':<20}" + "".join(f"{str(r):>46}" for r in repos))
        for name in args.command or COMMANDS:
            cmd, prepare = COMMANDS[name], PREPARE.get(name)
            pycaches = [Path(tmp) / f"pycache-{k}" for k in range(len(repos))]
            for repo, folder, pycache in zip(repos, folders, pycaches):
                cpu_seconds(repo, cmd, folder, pycache, prepare)  # warm-up: bytecode and caches written
            runs: list[list[tuple[float, float]]] = [[] for _ in repos]
            for _ in range(args.runs):  # the checkouts take turns: A B A B ...
                for k, (repo, folder, pycache) in enumerate(zip(repos, folders, pycaches)):
                    runs[k].append(cpu_seconds(repo, cmd, folder, pycache, prepare))
            cells = []
            for r in runs:
                t = [cpu for cpu, _ in r]
                wall = statistics.median(w for _, w in r)
                cells.append(f"{statistics.median(t):.2f} s ({min(t):.2f}-{max(t):.2f}), wall {wall:.2f} s")
            print(f"{name:<20}" + "".join(f"{c:>46}" for c in cells) + f"   (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
