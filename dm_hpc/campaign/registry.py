"""Model registry: the periodic retraining job's output.

``train`` fits a campaign's surrogate on the whole store (read-only: a retraining job never
writes the store, so it can run beside a campaign) and registers it as a new version under
``RUN_DIR/models/vNNNN/``: the pickled model (``model.pt``), and ``meta.json`` with the data
snapshot it saw (store generation, record count, a hash of the record ids), cross-validated R²
per property, and the time. ``models/CURRENT`` names the version in use; ``rollback`` points
it back at an earlier one. Versions are never overwritten.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dm_hpc.campaign.dataset import training_set
from dm_hpc.campaign.spec import Campaign
from dm_hpc.campaign.strategy import fit_model
from dm_hpc.data import Store


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (no data, unknown version)."""


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version (``meta`` is its ``meta.json``)."""

    version: str
    path: Path
    meta: dict[str, Any]


def registry_dir(campaign: Campaign) -> Path:
    return campaign.run_dir / "models"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    with open(tmp) as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def train(campaign: Campaign, register: bool = True) -> ModelVersion | dict[str, Any]:
    """Fit the campaign's surrogate on every usable record; register it as a new version."""
    import torch

    from dm_hpc.campaign.report import cross_validate

    store = Store.open(campaign.store, "r")
    df = store.to_dataframe()
    data = training_set(campaign, df)
    if len(data) < 3:
        raise RegistryError(f"{campaign.name}: only {len(data)} usable records in {campaign.store}; need 3")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_model(campaign, data)
    fit_s = time.perf_counter() - t0
    rows, mean, _ = cross_validate(campaign, data, seed=campaign.seed)
    r2 = {}
    for j, prop in enumerate(campaign.properties):
        y, m = data.Y[rows, j], mean[:, j]
        ss = float(np.sum((y - y.mean()) ** 2))
        r2[prop] = round(1.0 - float(np.sum((y - m) ** 2)) / ss, 4) if ss > 0 else None
    meta = {
        "campaign": campaign.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "records": len(data),
        "store": str(campaign.store),
        "store_generation": store.info()["generation"],
        "records_sha256": hashlib.sha256("\n".join(sorted(data.record_ids)).encode()).hexdigest(),
        "by_fidelity": {campaign.fidelities[int(i)].name: int(n) for i, n in zip(*np.unique(data.fidelity, return_counts=True))},
        "properties": campaign.properties,
        "cv_r2": r2,
        "fit_seconds": round(fit_s, 3),
        "surrogate": type(model.model).__name__,
        "multi_fidelity": model.multi_fidelity,
    }
    if not register:
        return meta
    root = registry_dir(campaign)
    root.mkdir(parents=True, exist_ok=True)
    number = 1 + max((int(p.name[1:]) for p in root.glob("v[0-9]*") if p.name[1:].isdigit()), default=0)
    version = f"v{number:04d}"
    tmp = root / f".{version}.tmp"
    tmp.mkdir()
    torch.save(model, tmp / "model.pt")
    (tmp / "meta.json").write_text(json.dumps({"version": version, **meta}, indent=1))
    os.replace(tmp, root / version)
    _atomic_write(root / "CURRENT", version + "\n")
    return ModelVersion(version, root / version, {"version": version, **meta})


def versions(campaign: Campaign) -> list[ModelVersion]:
    """Registered versions, oldest first."""
    root = registry_dir(campaign)
    out = []
    for path in sorted(root.glob("v[0-9]*")):
        out.append(ModelVersion(path.name, path, json.loads((path / "meta.json").read_text())))
    return out


def current(campaign: Campaign) -> str | None:
    path = registry_dir(campaign) / "CURRENT"
    return path.read_text().strip() if path.exists() else None


def rollback(campaign: Campaign, version: str) -> None:
    """Point ``CURRENT`` at an earlier version (the later ones stay registered)."""
    if not (registry_dir(campaign) / version / "model.pt").exists():
        known = ", ".join(v.version for v in versions(campaign)) or "none"
        raise RegistryError(f"{campaign.name}: no model version {version!r} (registered: {known})")
    _atomic_write(registry_dir(campaign) / "CURRENT", version + "\n")


def load(campaign: Campaign, version: str | None = None):
    """The registered ``(model, space, multi_fidelity)`` of ``version`` (default: current)."""
    import torch

    version = version or current(campaign)
    if version is None:
        raise RegistryError(f"{campaign.name}: no model registered yet (run `dm-hpc train`)")
    return torch.load(registry_dir(campaign) / version / "model.pt", weights_only=False)
