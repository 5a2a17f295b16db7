"""Render sbatch scripts from the templates in ``slurm/templates`` (readable by an admin).

Everything that comes from a user is either reduced to ``[A-Za-z0-9._-]`` (job name, comment)
or single-quoted with ``shlex.quote`` (argv, run folders, environment). Task names appear only
in ``manifest.json``, as data.
"""
from __future__ import annotations

import math
import shlex
from collections.abc import Sequence

from dm_hpc.runners.site import SiteProfile
from dm_hpc.runners.spec import TaskSpec, safe_text

COMMENT_PREFIX = "dm-hpc"


def comment_prefix(campaign: str) -> str:
    return f"{COMMENT_PREFIX}:campaign={safe_text(campaign, 80)}:batch="


def comment(campaign: str, batch_id: str) -> str:
    """The job comment re-attach looks for: ``dm-hpc:campaign=<c>:batch=<b>``."""
    return comment_prefix(campaign) + safe_text(batch_id, 80)


def slurm_time(seconds: int) -> str:
    """Walltime as ``[D-]HH:MM:00``, rounded up to whole minutes (Slurm's granularity)."""
    minutes = max(1, math.ceil(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


def header(site: SiteProfile, spec: TaskSpec, *, job_name: str, job_comment: str,
           ntasks: int = 1, walltime_s: int | None = None, array: str | None = None) -> str:
    """The ``#SBATCH`` lines for a job shaped like ``spec`` (resources of one task)."""
    opts = [f"--job-name={safe_text(job_name)}", f"--comment={job_comment}"]
    opts += [f"--{k}={v}" for k, v in (("partition", site.partition), ("account", site.account),
                                       ("qos", site.qos)) if v]
    opts.append(f"--time={slurm_time(walltime_s or spec.walltime_s)}")
    opts.append(f"--ntasks={ntasks}")
    opts.append(f"--cpus-per-task={spec.cores}")
    memory = spec.memory_mb or site.default_memory_mb
    if memory:
        opts.append(f"--mem={memory * ntasks}M" if ntasks > 1 else f"--mem={memory}M")
    if spec.gpus:
        opts.append(f"--gres=gpu:{spec.gpus}")
    if array:
        opts.append(f"--array={array}")
    # Node failures and preemption are retried by the runner's policy, which counts them.
    opts.append("--no-requeue")
    opts += site.extra_sbatch
    return "\n".join(f"#SBATCH {o}" for o in opts)


def site_setup(site: SiteProfile) -> str:
    lines = [f"module load {shlex.quote(m)}" for m in site.modules]
    lines += [f"export {shlex.quote(f'{k}={v}')}" for k, v in site.env.items()]
    return "\n".join(lines) or "# (none)"


def task_line(index: int, spec: TaskSpec) -> str:
    """One ``case`` branch: export the task's environment, then run its argv in its folder."""
    words = [f"export {shlex.quote(f'{k}={v}')};" for k, v in spec.env.items()]
    words += ["dm_run", shlex.quote(str(spec.workdir))] + [shlex.quote(a) for a in spec.argv]
    return f"  {index}) {' '.join(words)} ;;"


def render_tasks(site: SiteProfile, specs: Sequence[TaskSpec], *, job_name: str,
                 job_comment: str, array: str | None) -> str:
    """A job (array) script running ``specs[i]`` as element ``i``."""
    text = (site.templates_dir / "tasks.sbatch").read_text()
    return (text.replace("{{SBATCH}}", header(site, specs[0], job_name=job_name,
                                              job_comment=job_comment, array=array))
                .replace("{{SITE_SETUP}}", site_setup(site))
                .replace("{{TASKS}}", "\n".join(task_line(i, s) for i, s in enumerate(specs))))


def render_farm(site: SiteProfile, spec: TaskSpec, *, ranks: int, walltime_s: int, job_name: str,
                job_comment: str, manifest: str, results: str) -> str:
    """An MPI farm script: ``ranks`` MPI ranks (1 master + workers) shaped like ``spec``."""
    text = (site.templates_dir / "mpi_farm.sbatch").read_text()
    return (text.replace("{{SBATCH}}", header(site, spec, job_name=job_name, job_comment=job_comment,
                                              ntasks=ranks, walltime_s=walltime_s))
                .replace("{{SITE_SETUP}}", site_setup(site))
                .replace("{{PYTHON}}", shlex.quote(site.python))
                .replace("{{MANIFEST}}", shlex.quote(manifest))
                .replace("{{RESULTS}}", shlex.quote(results)))
