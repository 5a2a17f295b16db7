"""A small real campaign for the portal tests (real EMT calculations, real HDF5 store, real BoTorch).

The campaign is run once per session (about 10 s); each test module gets its own copy of its
files, so uploads in one test never leak into another.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dm_hpc.service import Role, ServiceState
from tests.campaign.helpers import write_campaign

CAMPAIGN = "alloy"
PROP = "property:mixing_energy [eV/atom]"
PREDICTED = "predicted:mixing_energy [eV/atom]"


@pytest.fixture(scope="session")
def built_campaign(tmp_path_factory) -> Path:
    from dm_hpc.campaign import load_campaign
    from dm_hpc.campaign.manager import CampaignManager
    from dm_hpc.campaign.report import write_report

    base = tmp_path_factory.mktemp("portal-base")
    path = write_campaign(base, name=CAMPAIGN, calculations=8,
                          budget={"calculations": 8, "lab_experiments": 6, "core_hours_per_lab_day": 0.5})
    campaign = load_campaign(path)
    summary = CampaignManager(campaign, quiet=True).run()
    assert summary.lab_suggested >= 2, "the fixture campaign must leave experiments for the lab"
    write_report(campaign)
    return base


def clone_campaign(base: Path, dest: Path) -> Path:
    """Copy the built campaign (store, run folder) to ``dest/campaigns``; returns that folder."""
    folder = dest / "campaigns"
    folder.mkdir(parents=True)
    shutil.copytree(base / "store", dest / "store")
    shutil.copytree(base / "run", dest / "run", ignore=shutil.ignore_patterns("manager.lock"))
    data = yaml.safe_load((base / f"{CAMPAIGN}.yaml").read_text())
    data.update(store=str(dest / "store"), workdir=str(dest / "run"))
    (folder / f"{CAMPAIGN}.yaml").write_text(yaml.safe_dump(data))
    return folder


@dataclass
class Portal:
    """A campaigns folder, a state folder, and one token per kind of caller."""

    campaigns: Path
    state_dir: Path
    tokens: dict[str, str]

    def app(self):
        from dm_hpc.service import create_app

        return create_app(self.campaigns, self.state_dir)


#: caller -> (role, campaigns granted, clearance)
CALLERS = {
    "admin": (Role.admin, [], None),
    "scientist": (Role.scientist, [CAMPAIGN], None),
    "scientist_other": (Role.scientist, ["elsewhere"], None),
    "lab": (Role.lab, [CAMPAIGN], None),
    "lab_other": (Role.lab, ["elsewhere"], None),
}


def make_portal(base: Path, dest: Path) -> Portal:
    campaigns = clone_campaign(base, dest)
    state = ServiceState(dest / "state")
    tokens = {name: state.add_user(name, role, grants, clearance) for name, (role, grants, clearance) in CALLERS.items()}
    return Portal(campaigns, dest / "state", tokens)


@pytest.fixture(scope="module")
def portal(built_campaign, tmp_path_factory) -> Portal:
    return make_portal(built_campaign, tmp_path_factory.mktemp("portal"))


def filled_sheet(sheet_csv: bytes, value: float | None = None) -> pd.DataFrame:
    """The downloaded lab sheet with every measurement filled in: ``value``, or by default the
    model's own prediction (a plausible value; one far outside the model's interval is held)."""
    import io

    table = pd.read_csv(io.BytesIO(sheet_csv))
    table[PROP] = table.get(PREDICTED, value) if value is None else value
    return table
