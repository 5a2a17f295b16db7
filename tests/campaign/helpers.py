"""Small campaigns for the end-to-end tests (real EMT calculations, real store, real BoTorch)."""
from __future__ import annotations

import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import yaml

from tests.conftest import REPO


def write_campaign(tmp: Path, name: str = "t", calculations: int = 8, lab: bool = True, **overrides) -> Path:
    data = {
        "name": name,
        "store": str(tmp / "store"),
        "workdir": str(tmp / "run"),
        "seed": 3,
        "space": {"elements": {"Cu": [0, 1], "Ni": [0, 1], "Pd": [0, 0.5]}, "max_elements": 3},
        "objectives": [{"property": "mixing_energy", "goal": "min"}],
        "fidelities": [{"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m"}],
        "budget": {"calculations": calculations, "lab_experiments": 4, "core_hours_per_lab_day": 0.5},
        "runner": {"kind": "local", "cores": 2, "max_in_flight": 2},
        "learning": {"initial_points": 4, "refit_every": 2, "batch_size": 2},
    }
    if lab:
        data["fidelities"].append({"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2})
    data.update(overrides)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def lab_project(folder: Path):
    """A lab-only campaign (``dm_hpc.api.Campaign``) whose store and run folder sit beside its file
    (relative paths, so the folder moves whole), with two experiments suggested and one measured
    (hardness 2 GPa). Returns the file's path and the campaign."""
    from dm_hpc.api import Campaign

    folder.mkdir()
    lab = {"name": "lab", "kind": "experiment", "batch_size": 2}
    path = write_campaign(folder, name="moved", fidelities=[lab], budget={"lab_experiments": 8},
                          objectives=[{"property": "hardness", "goal": "max"}], store="store", workdir="run")
    camp = Campaign.load(path)
    sheet = camp.suggest(2)
    sheet["property:hardness [GPa]"] = [2.0, None]
    camp.add_measurements(sheet.iloc[:1])
    return path, camp


def hardness_density_lab(tmp: Path, samples: list[str], name: str = "two", unit: str = "GPa", lab_experiments: int = 20,
                         predicted: dict | None = None):
    """A lab-only campaign (``dm_hpc.api.Campaign``) whose lab measures hardness (the objective,
    in ``unit``) and density (``density <= 9 g/cm3``), with ``samples`` suggested at Cu0.5Ni0.5
    (``predicted``: their journalled prediction, canonical units)."""
    from dm_hpc.api import Campaign
    from dm_hpc.campaign import journal as jn

    lab = {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2, "measures": ["hardness", "density"]}
    path = write_campaign(tmp, name=name, fidelities=[lab], constraints=["density <= 9 g/cm3"],
                          objectives=[{"property": "hardness", "goal": "max", "unit": unit}],
                          budget={"lab_experiments": lab_experiments})
    api = Campaign.load(path)
    journal = jn.Journal(api.spec.run_dir / "journal.jsonl")
    journal.write("start")
    journal.write("lab_suggested", batch=1, samples=[{"sample_id": sid, "composition": {"Cu": 0.5, "Ni": 0.5},
                                                      "process": {}, "predicted": predicted or {}} for sid in samples])
    journal.close()
    return api


def dm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dm_hpc", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


@contextmanager
def held_elsewhere(enter, release_after: float | None = None):
    """Hold the context manager ``enter()`` in another thread while the body runs, as another
    process would (``flock`` locks of separate opens conflict within one process too); with
    ``release_after``, it lets go that many seconds after the body starts."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with enter():
            held.set()
            release.wait(60)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(30)
        if release_after is not None:
            threading.Timer(release_after, release.set).start()
        yield
    finally:
        release.set()
        t.join()
