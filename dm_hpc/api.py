"""The Python API: a campaign driven from a notebook, as the CLI and the web service drive it.

In the style of BayBE's ``Campaign`` and Ax's ``Client``::

    from dm_hpc import Campaign
    camp = Campaign.load("campaigns/hea-demo.yaml")   # or Campaign.from_dict(d, base_dir=".")
    sheet = camp.suggest(4)        # DataFrame in the lab-sheet columns, property columns empty
    camp.add_measurements(filled)  # same validation as `dm-hpc ingest`; returns the records stored
    camp.records()                 # DataFrame of the campaign's records
    camp.run(max_seconds=None)     # the asynchronous loop, as `dm-hpc run`

Every call goes through the same functions as the CLI (``campaign.suggest``, ``campaign.lab``,
``campaign.manager``), so a notebook and ``dm-hpc`` see one journal and one store.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from dm_hpc.campaign.spec import CampaignError, CampaignSpec, load_campaign, parse_campaign

class Campaign:
    """One campaign: its validated file, its journal (``run_dir``) and its store."""

    def __init__(self, spec: CampaignSpec, origin: str = "<campaign>") -> None:
        self.spec = spec
        self.origin = origin

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | Path) -> Campaign:
        """From a campaign YAML file (paths in it relative to the file's folder, as for the CLI)."""
        return cls(load_campaign(path), str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: str | Path = ".") -> Campaign:
        """From a dict with the campaign file's fields; relative paths are taken from ``base_dir``."""
        if not isinstance(data, dict):
            raise CampaignError(f"a campaign is a mapping of fields, got {type(data).__name__}")
        return cls(parse_campaign(data, "<dict>", base_dir=Path(base_dir).absolute()), "<dict>")

    @property
    def name(self) -> str:
        return self.spec.name

    # ------------------------------------------------------------------ ask / tell
    def suggest(self, n: int) -> pd.DataFrame:
        """``n`` new lab experiments from the current model, journalled as one lab batch.

        Returns the lab sheet's rows (``sample_id``, composition and process columns, predictions,
        empty ``property:<name> [unit]`` columns); fewer rows when fewer new points exist (the
        reason is in ``df.attrs["why_empty"]``)."""
        from dm_hpc.campaign.preflight import check
        from dm_hpc.campaign.suggest import batch_table, request_lab_batch

        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if self.spec.lab is None:
            raise CampaignError(f"campaign {self.name!r} has no experiment fidelity to suggest for")
        check(self.spec, self.origin)
        batch = request_lab_batch(self.spec, n)
        table = batch_table(self.spec, batch.samples)
        table.attrs["why_empty"] = batch.why_empty
        return table

    def add_measurements(self, df: pd.DataFrame) -> pd.DataFrame:
        """Take filled lab-sheet rows back (validated as ``dm-hpc ingest``: all or nothing, by
        ``sample_id``); returns the stored records (``records()`` columns). Raises ``SheetError``."""
        from dm_hpc.campaign.lab import read_lab_sheet, take_lab_sheet

        run_dir = self.spec.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".measurements-", suffix=".csv", dir=run_dir)
        os.close(fd)
        path = Path(name)
        try:
            df.to_csv(path, index=False)
            contents = read_lab_sheet(self.spec, path)
            queued = take_lab_sheet(self.spec, path).queued
        finally:
            path.unlink(missing_ok=True)
        ids = {r.sample_id for r in contents.records}
        if queued:  # a running manager ingests them within a poll interval
            return pd.DataFrame({"sample_id": sorted(ids), "record_id": [None] * len(ids)})
        stored = self.records()
        return stored[stored["sample_id"].isin(ids)].reset_index(drop=True)

    def records(self) -> pd.DataFrame:
        """The campaign's records in the store (one row each; see ``Store.to_dataframe``)."""
        from dm_hpc.data import Store

        if not Path(self.spec.store).exists():
            return pd.DataFrame()
        with Store.open(self.spec.store, "r") as store:
            return store.to_dataframe(campaign=self.name)

    def run(self, max_seconds: float | None = None, quiet: bool = True):
        """The asynchronous loop (as ``dm-hpc run``, after the same preflight); returns its
        ``Summary``. Interrupted or paused, ``run`` again resumes."""
        from dm_hpc.campaign.manager import CampaignManager
        from dm_hpc.campaign.preflight import check

        check(self.spec, self.origin, check_codes=True)
        return CampaignManager(self.spec, quiet=quiet).run(max_seconds=max_seconds)

    def __repr__(self) -> str:
        return f"Campaign({self.name!r}, run_dir={str(self.spec.run_dir)!r})"
