"""PyslurmRunner (optional): SlurmRunner that reads job states through pyslurm's C API.

Used only where ``pyslurm`` imports and its version matches the site's Slurm (pyslurm 25.11
needs Slurm 25.11 exactly; Debian 12 ships 22.05, where it cannot be built). Submission still
renders the same sbatch scripts; only the state queries change.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from dm_hpc.runners.site import SiteProfile
from dm_hpc.runners.slurm import SlurmRunner
from dm_hpc.runners.spec import TaskRecord
from dm_hpc.runners.states import JobState, from_slurm


def pyslurm_status() -> tuple[bool, str]:
    """(usable, reason): pyslurm imports and its major.minor equals ``sinfo --version``'s."""
    try:
        import pyslurm  # type: ignore[import-not-found]
    except Exception as exc:  # ImportError, or "Slurm version mismatch" raised at import
        return False, f"pyslurm does not import: {exc}"
    try:
        site = subprocess.run(["sinfo", "--version"], capture_output=True, text=True).stdout.split()[-1]
    except (OSError, IndexError):
        return False, "sinfo --version gave no Slurm version"
    ours = ".".join(str(getattr(pyslurm, "__version__", "0.0")).split(".")[:2])
    if ours != ".".join(site.split(".")[:2]):
        return False, f"pyslurm {ours} does not match the site's Slurm {site}"
    return True, f"pyslurm {ours} matches Slurm {site}"


class PyslurmRunner(SlurmRunner):
    """Same scripts and re-attach as SlurmRunner; states from ``pyslurm.Job.load``."""

    def __init__(self, site: SiteProfile, state_dir: Path, **kwargs: object) -> None:
        ok, reason = pyslurm_status()
        if not ok:
            raise RuntimeError(reason)
        super().__init__(site, state_dir, **kwargs)  # type: ignore[arg-type]

    def _check(self, active: list[TaskRecord]) -> dict[str, tuple[JobState, int | None]]:
        import pyslurm  # type: ignore[import-not-found]

        got: dict[str, tuple[JobState, int | None]] = {}
        fallback = []
        for rec in active:
            if rec.job_id is None:
                continue
            base, _, index = rec.job_id.partition("_")
            try:
                job = pyslurm.Job.load(int(base)) if not index else None
            except Exception:  # purged from slurmctld: ask the CLI sources (sacct, jobcomp)
                job = None
            if job is None:
                fallback.append(rec)
                continue
            state = from_slurm(str(job.state))
            got[rec.spec.task_id] = (state, job.exit_code if state.is_final else None)
        if fallback:
            got.update(super()._check(fallback))
        return got
