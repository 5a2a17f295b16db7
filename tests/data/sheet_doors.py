"""The four doors a returned sheet comes through, driven the way a user drives them.

``Doors`` holds one lab-only campaign (Al-Cu-Mg, hardness objective, density constraint) with
suggestions journalled as the manager writes them, a real store, and a real portal
(FastAPI ``TestClient`` over ``create_app``). Each door reads a sheet file and answers an
``Outcome``: refused (the problems, without the file's path) or stored (sample id -> the
stored property values), plus the pending and not-made sample ids. Between sheets the
campaign's journal is put back and its store copied back from a prepared empty one, so every
sheet meets the same state; only what a door changed is put back (a refused sheet changes
nothing, and checking that is cheaper than copying).

What the harness itself costs is paid once: the CLI's click command is built once (typer
builds it from every command's signature on each ``invoke``: a quarter of a second, more than
a refused sheet costs the engine) and driven inside typer's own ``CliRunner.isolation``; the
portal is one app.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from typer.main import get_command
from typer.testing import CliRunner

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.holds import Z_99
from dm_hpc.data import Store
from dm_hpc.data.sheets import SheetError

CAMPAIGN = "alloy"
SAMPLES = {f"A{i}": comp for i, comp in enumerate([
    {"Al": 0.9, "Cu": 0.05, "Mg": 0.05}, {"Al": 0.8, "Cu": 0.15, "Mg": 0.05},
    {"Al": 0.95, "Cu": 0.04, "Mg": 0.01}, {"Al": 0.7, "Cu": 0.25, "Mg": 0.05}])}
PROPERTIES = ("hardness", "density")
#: The ranges a good returned sheet's values come from (hardness GPa, density g/cm^3).
GOOD = {"hardness": (0.3, 2.5), "density": (2.6, 3.1)}
#: The predictions journalled with the suggestions: for A2 and A3 a model about right (the
#: middle of ``GOOD``, its 99 % interval ``GOOD`` widened by 5 %: a value is held only when
#: something moved it); for A0 and A1 a model sure and wrong (hardness 1.0 +- 0.2 GPa, density
#: 2.8 +- 0.1 g/cm^3: many good values fall outside and are held), so both paths are walked.
ABOUT_RIGHT = {"mean": {p: (lo + hi) / 2 for p, (lo, hi) in GOOD.items()},
               "std": {p: 1.05 * (hi - lo) / 2 / Z_99 for p, (lo, hi) in GOOD.items()}}
SURE_AND_WRONG = {"mean": {"hardness": 1.0, "density": 2.8}, "std": {"hardness": 0.2, "density": 0.1}}
PREDICTED = {"A0": SURE_AND_WRONG, "A1": SURE_AND_WRONG, "A2": ABOUT_RIGHT, "A3": ABOUT_RIGHT}


def write_lab_campaign(folder: Path) -> Path:
    """A lab-only campaign file in ``folder`` with four suggested experiments journalled."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "name": CAMPAIGN, "store": str(folder / "store"), "workdir": str(folder / "run"), "seed": 3,
        "space": {"elements": {"Al": [0.5, 1], "Cu": [0, 0.5], "Mg": [0, 0.1]}, "max_elements": 3},
        "objectives": [{"property": "hardness", "goal": "max"}],
        "constraints": [{"property": "density", "op": "<=", "value": 3.5}],
        "fidelities": [{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 4}],
        "budget": {"lab_experiments": 8},
        "runner": {"kind": "local", "cores": 1, "max_in_flight": 1},
        "learning": {"initial_points": 2, "refit_every": 2, "batch_size": 2},
    }
    path = folder / f"{CAMPAIGN}.yaml"
    path.write_text(yaml.safe_dump(data))
    campaign = load_campaign(path)
    journal = jn.Journal(campaign.run_dir / "journal.jsonl")
    journal.write("start")
    journal.write("lab_suggested", batch=1, samples=[
        {"sample_id": sid, "composition": comp, "process": {}, "predicted": PREDICTED[sid]}
        for sid, comp in SAMPLES.items()])
    journal.close()
    return path


@dataclass(frozen=True)
class Outcome:
    """What a door did with a sheet: ``problems`` (line, message) when refused, else ``stored``
    (sample id -> {property: value}) and the ``pending`` and ``not_made`` sample ids."""

    refused: bool
    problems: tuple[tuple[int, str], ...] = ()
    stored: dict = field(default_factory=dict)
    pending: tuple[str, ...] = ()
    not_made: tuple[str, ...] = ()
    crash: str | None = None  # a traceback: never allowed
    #: sample ids whose values were held (far outside the model's 99 % interval, told and
    #: journalled, not stored until confirmed: ``dm_hpc.campaign.holds``)
    held: tuple[str, ...] = ()


def _fingerprint(folder: Path) -> tuple:
    """What a store folder holds, cheaply: (relative path, size, mtime) of every file."""
    if not folder.exists():
        return ()
    out = []
    for root, _, files in os.walk(folder):
        for name in files:
            st = os.stat(os.path.join(root, name))
            out.append((os.path.relpath(os.path.join(root, name), folder), st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


def _clean(message: str, *paths: str) -> str:
    for p in paths:
        message = message.replace(p, "<sheet>")
    return message


class Doors:
    """One campaign seen through the CLI (in-process), the Python API and the portal."""

    def __init__(self, folder: Path) -> None:
        from dm_hpc.service import create_app
        from dm_hpc.service.auth import Role
        from dm_hpc.service.state import ServiceState

        self.folder = folder
        self.path = write_lab_campaign(folder / "campaigns")
        self.campaign = load_campaign(self.path)
        self.journal = self.campaign.run_dir / "journal.jsonl"
        self.pristine = self.journal.read_bytes()
        self.head = self.journal.with_name(jn.HEAD_NAME)  # the chain's head moves with the journal
        self.pristine_head = self.head.read_bytes()
        Store.open(self.campaign.store, "a").close()  # the portal labels records in an existing store
        self.empty_store = folder / "empty-store"
        shutil.copytree(self.campaign.store, self.empty_store)
        self.store_dir = Path(self.campaign.store)
        self.empty_print = _fingerprint(self.store_dir)
        from dm_hpc.cli import app

        self.runner, self.command = CliRunner(), get_command(app)
        state = ServiceState(folder / "state")
        self.token = state.add_user("lab", Role.lab, [CAMPAIGN], None)
        self._client_cm = TestClient(create_app(folder / "campaigns", folder / "state"))
        self.client = self._client_cm.__enter__()

    def close(self) -> None:
        self._client_cm.__exit__(None, None, None)

    def reset(self) -> None:
        """Put the journal back as suggested and the store back to empty (what changed only)."""
        if self.journal.read_bytes() != self.pristine:
            self.journal.write_bytes(self.pristine)
        if self.head.read_bytes() != self.pristine_head:
            self.head.write_bytes(self.pristine_head)
        if _fingerprint(self.store_dir) != self.empty_print:
            shutil.rmtree(self.store_dir, ignore_errors=True)
            shutil.copytree(self.empty_store, self.store_dir, copy_function=shutil.copy2)
            self.empty_print = _fingerprint(self.store_dir)
        for extra in [*self.campaign.run_dir.glob("inbox*"), self.campaign.run_dir / "annotated"]:
            if extra.is_dir():
                shutil.rmtree(extra, ignore_errors=True)
            elif extra.exists():
                extra.unlink()

    def _stored(self) -> dict:
        if _fingerprint(self.store_dir) == self.empty_print:  # nothing written since the reset
            return {}
        with Store.open(self.campaign.store, "r") as s:
            df = s.to_dataframe(campaign=CAMPAIGN)
        return {row["sample_id"]: {p: float(row[p]) for p in PROPERTIES if p in df.columns and row[p] == row[p]}
                for _, row in df.iterrows()}

    def _state(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        state = jn.replay(self.journal)
        return (tuple(sorted(s for s, e in state.lab.items() if e.record_id is None and not e.not_made)),
                tuple(sorted(s for s, e in state.lab.items() if e.not_made)))

    def _held(self) -> tuple[str, ...]:
        return tuple(sorted({sid for ev in jn.Journal.events(self.journal) if ev["event"] == "lab_ingested"
                             for sid in ev.get("held", [])}))

    def _done(self, problems: list[tuple[int, str]] | None) -> Outcome:
        pending, not_made = self._state()
        if problems is not None:
            return Outcome(True, tuple(problems), self._stored(), pending, not_made, held=self._held())
        return Outcome(False, (), self._stored(), pending, not_made, held=self._held())

    # ------------------------------------------------------------------ the doors
    def cli(self, sheet: Path) -> Outcome:
        """``dm-hpc ingest CAMPAIGN SHEET`` in-process: the real app's click command, run as the
        console script runs it, its output captured by typer's test runner."""
        self.reset()
        code, crash = 0, None
        with self.runner.isolation() as (_, _, output):
            try:
                self.command.main(args=["ingest", str(self.path), str(sheet)], prog_name="dm-hpc")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception as exc:  # noqa: BLE001 -- any other exception is the failure under test
                crash = "".join(traceback.format_exception(exc))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            text = output.getvalue().decode("utf-8", "replace")
        if crash is not None:
            return Outcome(True, crash=crash)
        if code == 0:
            return self._done(None)
        return self._done(_problems(_clean(text, str(sheet))))

    def api(self, sheet: Path) -> Outcome:
        """``Campaign.load(path).add_measurements(sheet)``."""
        from dm_hpc import Campaign

        self.reset()
        try:
            Campaign.load(self.path).add_measurements(sheet)
        except SheetError as exc:
            return self._done(_problems(_clean(str(exc), str(sheet))))
        except Exception as exc:  # noqa: BLE001 -- any other exception is the failure under test
            return Outcome(True, crash="".join(traceback.format_exception(exc)))
        return self._done(None)

    def portal(self, sheet: Path) -> Outcome:
        """The portal's upload endpoint with the file as a browser sends it."""
        self.reset()
        try:
            r = self.client.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results",
                                 headers={"Authorization": f"Bearer {self.token}"},
                                 files={"file": (sheet.name, sheet.read_bytes())})
        except Exception as exc:  # noqa: BLE001 -- as above
            return Outcome(True, crash="".join(traceback.format_exception(exc)))
        if r.status_code >= 500:
            return Outcome(True, crash=r.text)
        if r.status_code == 200:
            return self._done(None)
        body = r.json()
        return self._done([(p["line"] or 0, _clean(p["message"], sheet.name)) for p in body.get("problems", [])])


@contextmanager
def doors_in_memory(fallback: Path) -> Iterator[Doors]:
    """``Doors`` in a fresh folder on ``/dev/shm`` when the machine has one (tmpfs: the store's
    and the journal's fsyncs return at once; every file is still really written and read),
    else in ``fallback``; the folder is removed afterwards."""
    import tempfile

    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="dm-hpc-doors-", dir=shm)) if os.access(shm, os.W_OK) else fallback
    doors = Doors(folder)
    try:
        yield doors
    finally:
        doors.close()
        if folder != fallback:
            shutil.rmtree(folder, ignore_errors=True)


_PROBLEM = re.compile(r"^\s*(?:line (\d+): )?(.*)$")


def _problems(text: str) -> list[tuple[int, str]]:
    """``(line, message)`` from a ``SheetError`` text (its lines after the first)."""
    lines = text.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if "problem(s), nothing imported" in line), None)
    if start is None:
        return [(0, text.strip())]
    out = []
    for line in lines[start + 1:]:
        m = _PROBLEM.match(line)
        if m and m.group(2) and not m.group(2).startswith("... and"):
            out.append((int(m.group(1) or 0), m.group(2).strip()))
    return out
