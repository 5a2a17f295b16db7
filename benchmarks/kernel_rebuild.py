"""BoTorch's compiled kernel across PATH set-ups: is it built once, or again by every other process?

Usage: OMP_NUM_THREADS=1 python benchmarks/kernel_rebuild.py [--trees BEFORE,AFTER] [--demo]

``BEFORE`` and ``AFTER`` are copies of the project (``git archive COMMIT | tar -x -C DIR``); the
default is this tree alone. Each tree gets an empty ``TORCH_EXTENSIONS_DIR`` and replays what a
user does: ``make venv`` builds the kernel with the venv off PATH (``python -m dm_hpc.acquire.kernels``
finds Debian's ninja), then processes run with the venv activated (its ninja wheel first on
PATH) and without, alternately. Printed per step: which ninja PATH finds first, the seconds of the
first qLogNEHVI of the process and whether it compiled (the built library was rewritten).

``--demo``: the first activated step is the demo itself (``dm-hpc run campaigns/hea-demo.yaml
--max-seconds 40``, in a scratch copy of the campaign): seconds with no calculation in flight,
slot utilisation (submit to collect, as the manager counts it) and calculations done, from its journal.

Needs a ninja on PATH besides the environment's own (Debian: ``apt-get install ninja-build``).
Compilation takes 30-60 s per build on 2 shared cores; compare rows of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

SCRIPTS = sysconfig.get_path("scripts")
LIBRARY = Path("logei_fused_ext") / "logei_fused_ext.so"


def paths() -> tuple[str, str]:
    """PATH with the environment activated (its scripts folder first) and without it."""
    rest = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and os.path.realpath(d) != os.path.realpath(SCRIPTS)]
    return os.pathsep.join([SCRIPTS, *rest]), os.pathsep.join(rest)


def built_at(ext: Path) -> int | None:
    lib = ext / LIBRARY
    return lib.stat().st_mtime_ns if lib.exists() else None


def kernel_step(tree: str, ext: Path, path: str) -> tuple[float, bool]:
    """(seconds of the first qLogNEHVI, compiled?) in a new process of ``tree`` with ``path``."""
    before = built_at(ext)
    env = {**os.environ, "PYTHONPATH": tree, "PATH": path, "TORCH_EXTENSIONS_DIR": str(ext)}
    out = subprocess.run([sys.executable, "-m", "dm_hpc.acquire.kernels"], env=env, cwd=tree,
                         capture_output=True, text=True, check=True).stdout
    seconds = float(out.split(" in ")[1].split(" s")[0])
    return seconds, built_at(ext) != before


def demo_step(tree: str, ext: Path, path: str, scratch: Path) -> tuple[float, bool, str]:
    """The demo for 40 s from a copy of ``tree``'s campaigns: (wall s, compiled?, figures)."""
    proj = scratch / "proj"
    shutil.copytree(Path(tree) / "campaigns", proj / "campaigns")
    before = built_at(ext)
    env = {**os.environ, "PYTHONPATH": tree, "PATH": path, "TORCH_EXTENSIONS_DIR": str(ext)}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dm_hpc", "run", "campaigns/hea-demo.yaml", "--max-seconds", "40", "--quiet"],
                   env=env, cwd=proj, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    events = [json.loads(line) for line in (proj / "runs" / "hea-demo" / "journal.jsonl").read_text().splitlines()]
    t0 = next(e["t"] for e in events if e["event"] == "start")
    t1 = next(e["t"] for e in events if e["event"] == "stop")
    submitted = {e["task_id"]: e["t"] for e in events if e["event"] == "submitted"}
    ended = {e["task_id"]: min(e["t"], t1) for e in events if e["event"] in ("ingested", "failed") and e["t"] <= t1}
    busy = sum(ended.get(task, t1) - at for task, at in submitted.items())
    changes = sorted([(at, 1) for at in submitted.values()] + [(at, -1) for at in ended.values()])
    idle, running, last = 0.0, 0, t0
    for at, step in changes:
        if running == 0:
            idle += at - last
        running, last = running + step, at
    idle += t1 - last if running == 0 else 0.0
    figures = (f"loop {t1 - t0:.1f} s: nothing in flight {idle:.1f} s, utilisation {busy / (2 * (t1 - t0)):.0%}, "
               f"{len(ended)} calculations")
    return wall, built_at(ext) != before, figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", default=str(Path(__file__).resolve().parents[1]), help="BEFORE,AFTER (or one tree)")
    ap.add_argument("--labels", default="before,after")
    ap.add_argument("--demo", action="store_true", help="the first activated step is a 40 s demo run")
    a = ap.parse_args()
    on, off = paths()
    first_on, first_off = shutil.which("ninja", path=on), shutil.which("ninja", path=off)
    print(f"ninja activated: {first_on}; venv off PATH: {first_off}; load {os.getloadavg()[0]:.1f}")
    if not first_off:
        sys.exit("no ninja besides the environment's: nothing to compare")
    trees = a.trees.split(",")
    labels = a.labels.split(",") if len(trees) > 1 else ["this tree"]
    for label, tree in zip(labels, trees):
        with tempfile.TemporaryDirectory(prefix="dm-kernel-") as tmp:
            ext = Path(tmp) / "ext"
            steps = [("make venv (venv off PATH)", off, False), ("run, venv activated", on, a.demo),
                     ("make demo (venv off PATH)", off, False), ("run, venv activated", on, False)]
            for name, path, demo in steps:
                if demo:
                    seconds, compiled, figures = demo_step(tree, ext, path, Path(tmp))
                    print(f"{label:>9} | {name:<27} | demo {seconds:6.1f} s wall | "
                          f"{'COMPILED' if compiled else 'kept'} | {figures}")
                else:
                    seconds, compiled = kernel_step(tree, ext, path)
                    print(f"{label:>9} | {name:<27} | first qLogNEHVI {seconds:5.1f} s | "
                          f"{'COMPILED' if compiled else 'kept'}")


if __name__ == "__main__":
    main()
