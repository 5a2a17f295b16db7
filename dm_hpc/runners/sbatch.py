"""Render sbatch scripts from the Jinja2 templates in ``slurm/templates`` (readable by an admin).

Why Jinja2 and not string replacement: a template is filled in one pass, so a value that
happens to contain ``{{TASKS}}`` (or any template syntax) stays literal text; filling
placeholders one after the other let one value's text become the next placeholder.
Every value that can come from a user (argv, run folders, environment, modules, images) goes
through the ``q`` filter (``shlex.quote``); ``#SBATCH`` options are built here from validated
parts and checked again by the ``sbatch_option`` filter (one option, no blank, no shell text).
Task names appear only in ``manifest.json``, as data.

Per-method resources (``SiteProfile.methods``) are resolved into a :class:`JobShape`: what the
job asks Slurm for and what it sets up; tasks batched into one job array share one shape. A
method's parallel layout shows in the script as Slurm expects it: ``--ntasks`` (MPI ranks),
``--cpus-per-task`` (threads per rank) and the task line started by ``srun --mpi=PLUGIN`` (or
``mpirun``), so the calculation runs inside the allocation the script asked for.
"""
from __future__ import annotations

import functools
import json
import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from dm_hpc.runners.site import Container, Layout, MethodResources, SiteProfile
from dm_hpc.runners.spec import TaskSpec, safe_text

COMMENT_PREFIX = "dm-hpc"
_OPTION = re.compile(r"^--[a-z][a-z-]*(=[A-Za-z0-9_.:,;@/+=%-]+)?$")
#: the run folder's calculation file (dm_hpc.compute writes it); read only for its "method".
TASK_FILE = "task.json"


def comment_marker(campaign: str) -> str:
    return f"{COMMENT_PREFIX}:campaign={safe_text(campaign, 80)}:batch="


def comment(campaign: str, batch_id: str, site_comment: str = "") -> str:
    """The job comment: ``[<site comment>;]dm-hpc:campaign=<c>:batch=<b>`` (a site's own
    accounting comment is kept in front; re-attach looks for the dm-hpc part anywhere)."""
    ours = comment_marker(campaign) + safe_text(batch_id, 80)
    return f"{site_comment};{ours}" if site_comment else ours


def batch_of(campaign: str, job_comment: str) -> str | None:
    """The batch id in a job comment made by :func:`comment` (None: not this campaign's). For
    listings only: a site comment can mimic it, so re-attach reads job names (:func:`job_name`).
    Ours is the last part (a site's comment goes in front)."""
    marker = comment_marker(campaign)
    for part in reversed(job_comment.split(";")):
        if part.startswith(marker):
            return part.removeprefix(marker)
    return None


BATCH_SEPARATOR = "--"


def job_name(base: str, batch_id: str) -> str:
    """``<base>--<batch id>``: the job name carries its batch, so a restarted manager finds a
    job whose id it never journalled by a field only dm-hpc sets (``--job-name`` is not among
    the site's ``extra_sbatch`` options, and a command-line value beats any script line)."""
    return f"{safe_text(base)}{BATCH_SEPARATOR}{safe_text(batch_id, 80)}"


def batch_of_name(name: str) -> str | None:
    """The batch id in a job name made by :func:`job_name` (None: not one of ours)."""
    base, sep, batch = name.rpartition(BATCH_SEPARATOR)
    return batch if sep and base and batch else None


def slurm_time(seconds: int) -> str:
    """Walltime as ``[D-]HH:MM:00``, rounded up to whole minutes (Slurm's granularity)."""
    minutes = max(1, math.ceil(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


@dataclass(frozen=True)
class JobShape:
    """What one job asks for and sets up: ``ranks`` MPI ranks (``--ntasks``) of ``cores``
    cores each (``--cpus-per-task``), ``gpus`` GPUs in all. Memory in MB per calculation,
    walltime in s. ``launch``: who the launcher starts when ``ranks > 1`` (see
    :class:`~dm_hpc.runners.site.Layout`)."""

    cores: int
    memory_mb: int | None
    walltime_s: int
    gpus: int
    gpu_type: str
    modules: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # job-level: site's, then the method's
    container: Container | None
    ranks: int = 1
    gpus_per_rank: int = 0
    launch: str = "worker"

    @property
    def total_cores(self) -> int:
        """Cores of the whole allocation (ranks x threads per rank)."""
        return self.ranks * self.cores


def method_of(spec: TaskSpec) -> str:
    """The task's calculation method: ``spec.method``, else the run folder's task file's."""
    if spec.method:
        return spec.method
    try:
        method = json.loads((spec.workdir / TASK_FILE).read_text()).get("method", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return method if isinstance(method, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", method) else ""


def resolve(site: SiteProfile, spec: TaskSpec) -> JobShape:
    """The site's resources for ``spec``: the method's entry gives minimums, the task may ask
    for more; walltime is capped at ``site.max_walltime_s``."""
    m = site.methods.get(method_of(spec)) or MethodResources()
    memories = [x for x in (spec.memory_mb, m.memory_mb) if x]
    lay = m.layout or Layout(threads_per_rank=max(spec.cores, m.cores or 1))
    # a task asking for more cores than the layout holds gets more ranks of the same width
    ranks = max(lay.ranks, math.ceil(max(spec.cores, m.cores or 1) / lay.threads_per_rank)) \
        if m.layout else 1
    cores = lay.threads_per_rank
    gpus = max(spec.gpus, m.gpus.count if m.gpus else 0, ranks * lay.gpus_per_rank)
    env = {**site.env, **m.env}
    if "OMP_NUM_THREADS" not in m.env:  # threads follow --cpus-per-task
        env["OMP_NUM_THREADS"] = str(cores)
    if ranks > 1 and lay.launch == "code":  # the worker starts the code's binary with this
        env["DM_HPC_MPI_LAUNCHER"] = shlex.join(mpi_launcher(site, ranks, cores, lay.gpus_per_rank))
    return JobShape(
        cores=cores, memory_mb=max(memories) if memories else site.default_memory_mb,
        walltime_s=min(site.max_walltime_s, max(spec.walltime_s, m.walltime_s or 0)),
        gpus=gpus, gpu_type=m.gpus.type if m.gpus else "",
        modules=tuple(site.modules + [x for x in m.modules if x not in site.modules]),
        env=tuple(env.items()), container=m.container or site.container, ranks=ranks,
        gpus_per_rank=lay.gpus_per_rank, launch=lay.launch)


def mpi_launcher(site: SiteProfile, ranks: int, threads: int, gpus_per_rank: int = 0) -> list[str]:
    """The words that start ``ranks`` MPI ranks of ``threads`` cores inside the job:
    ``srun --mpi=PLUGIN --ntasks=R --cpus-per-task=T`` or ``mpirun -n R``."""
    if site.mpi_launcher == "mpirun":
        return ["mpirun", "-n", str(ranks)]
    gpus = [f"--gpus-per-task={gpus_per_rank}"] if gpus_per_rank else []
    return ["srun", f"--mpi={site.mpi_plugin}", f"--ntasks={ranks}", f"--cpus-per-task={threads}", *gpus]


def sbatch_options(site: SiteProfile, shape: JobShape, *, job_name: str, job_comment: str,
                   ntasks: int | None = None, walltime_s: int | None = None,
                   array: str | None = None) -> list[str]:
    """The ``#SBATCH`` options of a job shaped like ``shape`` (``--ntasks`` its ranks), or of
    ``ntasks`` single-calculation ranks (the MPI farm: memory per rank)."""
    opts = [f"--job-name={safe_text(job_name, 160)}", f"--comment={job_comment}"]
    opts += [f"--{k}={v}" for k, v in (("partition", site.partition), ("account", site.account),
                                       ("qos", site.qos)) if v]
    opts.append(f"--time={slurm_time(walltime_s or shape.walltime_s)}")
    opts.append(f"--ntasks={ntasks or shape.ranks}")
    opts.append(f"--cpus-per-task={shape.cores}")
    if shape.memory_mb:
        opts.append(f"--mem={shape.memory_mb * (ntasks or 1)}M")
    if shape.gpus:
        kind = f"{shape.gpu_type}:{shape.gpus}" if shape.gpu_type else str(shape.gpus)
        opts.append(f"--gpus={kind}" if site.gpu_option == "gpus" else f"--gres=gpu:{kind}")
    if array:
        opts.append(f"--array={array}")
    # Node failures and preemption are retried by the runner's policy, which counts them.
    opts.append("--no-requeue")
    opts += [x for x in site.extra_sbatch if not x.startswith("--comment=")]  # merged above
    return opts


def command(site: SiteProfile, shape: JobShape, spec: TaskSpec) -> list[str]:
    """The task's argv, inside the shape's container when there is one (the host's Python
    interpreter is replaced by the image's), started as the shape's MPI ranks when the worker
    itself is parallel."""
    if not (shape.ranks > 1 and shape.launch == "worker"):
        return _in_container(site, shape, spec)
    pyxis = shape.container is not None and shape.container.runtime == "pyxis"
    # pyxis is an option of srun, so mpirun cannot start its ranks in the image
    launch = mpi_launcher(site.model_copy(update={"mpi_launcher": "srun"}) if pyxis else site,
                          shape.ranks, shape.cores, shape.gpus_per_rank)
    return _in_container(site, shape, spec, launch)


def _in_container(site: SiteProfile, shape: JobShape, spec: TaskSpec,
                  launch: Sequence[str] = ()) -> list[str]:
    """``spec``'s argv in the shape's image, started by ``launch`` (the MPI launcher's words)."""
    box = shape.container
    if box is None:
        return [*launch, *spec.argv]
    argv = list(spec.argv)
    if argv[0] == site.python or Path(argv[0]).name.startswith("python"):
        argv[0] = box.python
    workdir = str(spec.workdir)
    if box.runtime == "pyxis":
        # one srun starts the ranks and enters the image: an srun nested in the MPI srun found
        # every CPU of the job held by the outer step and waited for one until the walltime
        mounts = ",".join([workdir, *box.binds])
        return [*(launch or ["srun", "--ntasks=1"]), f"--container-image={box.image}",
                f"--container-mounts={mounts}", f"--container-workdir={workdir}", *argv]
    binds = [w for b in [workdir, *box.binds] for w in ("--bind", b)]
    return [*launch, "apptainer", "exec", *(["--nv"] if shape.gpus else []), *binds, box.image, *argv]


def _sbatch_option(option: str) -> str:
    if not _OPTION.fullmatch(option):
        raise ValueError(f"refusing to write #SBATCH {option!r}: not a single --option=value")
    return option


@functools.lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir)),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["q"] = lambda value: shlex.quote(str(value))
    env.filters["sbatch_option"] = _sbatch_option
    return env


def _render(site: SiteProfile, template: str, **values: object) -> str:
    return _environment(Path(site.templates_dir)).get_template(template).render(**values)


def site_setup(site: SiteProfile, shape: JobShape | None = None) -> str:
    """``module load`` and ``export`` lines (pilot job prologues)."""
    return _render(site, "setup.sh.j2", shape=shape or resolve(site, _NO_TASK))


_NO_TASK = TaskSpec(task_id="none", argv=["true"], workdir=Path("/"), walltime_s=60)


def render_tasks(site: SiteProfile, specs: Sequence[TaskSpec], *, job_name: str,
                 job_comment: str, array: str | None) -> str:
    """A job (array) script running ``specs[i]`` as element ``i`` (all of one shape)."""
    shape = resolve(site, specs[0])
    tasks = [{"env": [(k, v) for k, v in s.env.items() if k != "OMP_NUM_THREADS"],
              "workdir": str(s.workdir), "argv": command(site, shape, s)} for s in specs]
    return _render(site, "tasks.sbatch", shape=shape, tasks=tasks, sbatch=sbatch_options(
        site, shape, job_name=job_name, job_comment=job_comment, array=array))


def render_stream(site: SiteProfile, specs: Sequence[TaskSpec], *, job_name: str, job_comment: str,
                  manifest: str, walltime_s: int) -> str:
    """One job running ``specs`` in turn in one process (dm_hpc.runners.stream). A container
    binds the folder holding the run folders and the manifest."""
    import os

    shape = resolve(site, specs[0])
    common = Path(os.path.commonpath([str(s.workdir) for s in specs] + [str(Path(manifest).absolute().parent)]))
    head = specs[0].model_copy(update={"argv": [specs[0].argv[0]], "workdir": common})
    return _render(site, "stream.sbatch", shape=shape, count=len(specs), manifest=manifest,
                   command=_in_container(site, shape, head),
                   sbatch=sbatch_options(site, shape, job_name=job_name, job_comment=job_comment,
                                         walltime_s=min(site.max_walltime_s, walltime_s)))


def render_farm(site: SiteProfile, spec: TaskSpec, *, ranks: int, walltime_s: int, job_name: str,
                job_comment: str, manifest: str, results: str) -> str:
    """An MPI farm script: ``ranks`` MPI ranks (1 master + workers) shaped like ``spec``."""
    shape = resolve(site, spec)
    return _render(site, "mpi_farm.sbatch", shape=shape, python=site.python, manifest=manifest,
                   results=results, sbatch=sbatch_options(site, shape, job_name=job_name,
                                                          job_comment=job_comment, ntasks=ranks,
                                                          walltime_s=walltime_s))


_CRON_FIELD = re.compile(r"^[0-9*/,-]+$")


#: cron's five fields and their ranges (day of week: 0 and 7 are Sunday)
_CRON_RANGES = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


def render_scrontab(site: SiteProfile, *, campaign: str, campaign_file: str, schedule: str,
                    root: str, python: str, ntasks: int = 4, cores: int = 2, memory_mb: int = 16000,
                    walltime_s: int = 7200) -> str:
    """A scrontab entry retraining ``campaign`` on ``schedule`` (5 cron fields), tagged with
    the campaign (job name ``dm-<campaign>-retrain``, comment ``dm-hpc:campaign=<campaign>``)."""
    fields = schedule.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(f"schedule {schedule!r} is not 5 cron fields (digits, * / , -)")
    for field, (name, low, high) in zip(fields, _CRON_RANGES):  # "99 3 * * *" was accepted
        for part in field.split(","):
            span, _, step = part.partition("/")
            values = [int(v) for v in span.split("-") if v.isdigit()]
            if any(not low <= v <= high for v in values) or (step and int(step) < 1):
                raise ValueError(f"schedule {schedule!r}: {name} {part!r} is outside {low}-{high}")
    opts = [f"--job-name=dm-{safe_text(campaign)}-retrain",
            f"--comment={comment(campaign, 'retrain-nightly', site.site_comment())}"]
    opts += [f"--{k}={v}" for k, v in (("partition", site.partition), ("account", site.account),
                                       ("qos", site.qos)) if v]
    opts += [f"--time={slurm_time(walltime_s)}", f"--ntasks={ntasks}", f"--cpus-per-task={cores}",
             f"--mem={memory_mb}M", f"--output=dm-{safe_text(campaign)}-retrain-%j.out"]
    return _render(site, "retrain.scrontab.j2", options=opts, schedule=" ".join(fields),
                   campaign=safe_text(campaign, 80), campaign_file=campaign_file, root=root,
                   python=python)
