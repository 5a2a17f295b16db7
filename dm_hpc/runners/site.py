"""Site profiles (``configs/sites/*.yaml``): where and how jobs go on a cluster."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dm_hpc.runners.spec import Throttle

REPO_ROOT = Path(__file__).resolve().parents[2]
SITES_DIR = REPO_ROOT / "configs" / "sites"
TEMPLATES_DIR = REPO_ROOT / "slurm" / "templates"

_WORD = r"^[A-Za-z0-9_.,+-]*$"  # partition, account, qos: plain words, never shell text


class SiteProfile(BaseModel):
    """A cluster's settings. Memory in MB, walltime in s, submit rate in sbatch calls per s."""

    model_config = ConfigDict(extra="forbid")

    name: str = "local"
    partition: str = Field(default="", pattern=_WORD)
    account: str = Field(default="", pattern=_WORD)
    qos: str = Field(default="", pattern=_WORD)
    modules: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    default_walltime_s: int = Field(default=3600, ge=60)
    max_walltime_s: int = Field(default=48 * 3600, ge=60)
    default_memory_mb: int | None = Field(default=None, ge=1)
    max_jobs_in_queue: int = Field(default=500, ge=1)
    submit_rate_per_s: float = Field(default=5.0, ge=0)
    array_max_size: int = Field(default=1000, ge=1)
    array_throttle: int = Field(default=50, ge=1)  # the %N of --array: elements running at once
    extra_sbatch: list[str] = Field(default_factory=list)
    python: str = Field(default_factory=lambda: sys.executable)
    dask_interface: str | None = None
    templates_dir: Path = TEMPLATES_DIR

    @field_validator("modules")
    @classmethod
    def _modules(cls, mods: list[str]) -> list[str]:
        import re

        bad = [m for m in mods if not re.match(r"^[A-Za-z0-9_./+-]+$", m)]
        if bad:
            raise ValueError(f"module names must be plain words: {bad}")
        return mods

    @field_validator("extra_sbatch")
    @classmethod
    def _extra(cls, lines: list[str]) -> list[str]:
        bad = [x for x in lines if not x.startswith("--") or "\n" in x]
        if bad:
            raise ValueError(f"extra_sbatch entries must be single --options: {bad}")
        return lines

    def throttle(self) -> Throttle:
        return Throttle(max_in_queue=self.max_jobs_in_queue, submit_rate=self.submit_rate_per_s,
                        max_batch=self.array_max_size)

    @classmethod
    def load(cls, name_or_path: str | Path = "local") -> "SiteProfile":
        """Load ``configs/sites/<name>.yaml`` or a YAML file path."""
        path = Path(name_or_path)
        if not path.suffix:
            path = SITES_DIR / f"{name_or_path}.yaml"
        data = yaml.safe_load(path.read_text()) or {}
        return cls.model_validate(data)
