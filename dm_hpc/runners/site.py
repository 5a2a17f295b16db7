"""Site profiles (``configs/sites/*.yaml``): where and how jobs go on a cluster.

Everything here can reach a job script, so every field is validated at load time: plain words
for partition/account/qos/modules, identifiers for environment names, a whitelist of
``--option=value`` forms for ``extra_sbatch`` (no newline, no shell text). Values that are
free text (environment values, container images) are shell-quoted when rendered.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dm_hpc.runners.spec import ENV_KEY, Throttle

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Environment variables naming the folders when the package is installed away from its checkout
#: (``pip install .`` in a container image: the repository's folders are not beside it).
#: ``DM_HPC_CONFIG_DIR`` is the one the calculator registry reads (``compute.methods``).
CONFIG_DIR_ENV = "DM_HPC_CONFIG_DIR"
TEMPLATES_DIR_ENV = "DM_HPC_TEMPLATES_DIR"
SITES_DIR = REPO_ROOT / "configs" / "sites"  # the checkout's; sites_dir() is what is read
TEMPLATES_DIR = REPO_ROOT / "slurm" / "templates"


def sites_dir() -> Path:
    """``configs/sites``: under ``$DM_HPC_CONFIG_DIR`` when set, else the checkout's."""
    root = os.environ.get(CONFIG_DIR_ENV)
    return Path(root) / "sites" if root else SITES_DIR


def default_templates_dir() -> Path:
    """The sbatch templates: ``$DM_HPC_TEMPLATES_DIR`` when set, else the checkout's ``slurm/templates``."""
    return Path(os.environ.get(TEMPLATES_DIR_ENV) or TEMPLATES_DIR)

_WORD = r"^[A-Za-z0-9_.,+-]*$"  # partition, account, qos: plain words, never shell text
_MODULE = re.compile(r"^[A-Za-z0-9_./+-]+$")
_VALUE = re.compile(r"^[A-Za-z0-9_.:,@/+=%-]+$")  # an sbatch option value: no space, no shell text

#: sbatch options a site may add (``--name=value`` or a bare flag). Options that change where
#: output goes, who runs the job, what it runs or its environment are not on the list: the
#: runner owns those (``--output``, ``--chdir``, ``--wrap``, ``--uid``, ``--export``...).
EXTRA_SBATCH_VALUES = frozenset({
    "mail-type", "mail-user", "constraint", "comment", "reservation", "gres-flags", "hint",
    "licenses", "nice", "exclude", "nodelist", "switches", "time-min", "cpu-freq", "distribution",
    "signal", "tmp", "mem-bind", "wckey", "cluster-constraint", "network", "core-spec",
    "thread-spec", "begin", "deadline", "priority", "profile", "acctg-freq", "mcs-label"})
EXTRA_SBATCH_FLAGS = frozenset({"exclusive", "contiguous", "overcommit", "spread-job", "oversubscribe"})


def check_sbatch_option(option: str) -> str:
    """``option`` if it is an allowed ``--name=value`` / ``--flag``; ValueError naming it otherwise."""
    name, eq, value = option.removeprefix("--").partition("=")
    allowed = (option.startswith("--") and (
        (eq and name in EXTRA_SBATCH_VALUES and _VALUE.fullmatch(value))
        or (not eq and name in EXTRA_SBATCH_FLAGS)))
    if not allowed:
        raise ValueError(
            f"extra_sbatch entry {option!r} is not allowed: use --NAME=VALUE (no spaces or shell "
            f"characters) with NAME one of {sorted(EXTRA_SBATCH_VALUES)}, or a flag among "
            f"{sorted(EXTRA_SBATCH_FLAGS)}")
    return option


def _check_modules(mods: list[str]) -> list[str]:
    bad = [m for m in mods if not _MODULE.fullmatch(m)]
    if bad:
        raise ValueError(f"module names must be plain words: {bad}")
    return mods


def _check_env(env: dict[str, str]) -> dict[str, str]:
    bad = [k for k in env if not ENV_KEY.fullmatch(k)]
    if bad:
        raise ValueError(f"environment variable names must be identifiers: {bad}")
    return env


class GpuRequest(BaseModel):
    """GPUs per task: ``{count: 1, type: a100}`` -> ``--gres=gpu:a100:1`` (or ``--gpus=a100:1``)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=1, ge=0)
    type: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$")


class Layout(BaseModel):
    """How one calculation spreads over its allocation: ``ranks`` MPI ranks (``--ntasks``) of
    ``threads_per_rank`` cores each (``--cpus-per-task``, ``OMP_NUM_THREADS``), with
    ``gpus_per_rank`` GPUs each. ``launch: worker``: the worker itself runs as the ranks
    (``srun --mpi=PLUGIN python -m dm_hpc.compute.worker ...``; GPAW is MPI in-process);
    ``launch: code``: the worker runs once and starts the code's binary with that launcher
    (exported as ``DM_HPC_MPI_LAUNCHER``; Quantum ESPRESSO's pw.x)."""

    model_config = ConfigDict(extra="forbid")

    ranks: int = Field(default=1, ge=1)
    threads_per_rank: int = Field(default=1, ge=1)
    gpus_per_rank: int = Field(default=0, ge=0)
    launch: Literal["worker", "code"] = "worker"


class Stream(BaseModel):
    """Short tasks of a method run in turn inside one job and one process (the model loaded
    once): at most ``max_tasks`` per job, as many as fit ``job_s`` seconds at their learned
    run time. For GPU force fields, whose tasks take seconds and whose start-up takes more."""

    model_config = ConfigDict(extra="forbid")

    max_tasks: int = Field(default=64, ge=1)
    job_s: int = Field(default=1800, ge=60)


class Container(BaseModel):
    """An image the task runs in. ``apptainer``: ``apptainer exec [--nv] IMAGE python -m ...``;
    ``pyxis``: ``srun --container-image=IMAGE python -m ...`` (NVIDIA enroot/pyxis sites; an
    MPI layout's ranks start from that same srun, ``srun --mpi=PLUGIN --ntasks=R
    --container-image=IMAGE``, even where ``mpi_launcher`` is ``mpirun``).
    ``python`` is the interpreter inside the image (replaces the host's interpreter in argv)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1)
    runtime: Literal["apptainer", "pyxis"] = "apptainer"
    python: str = "python3"
    binds: list[str] = Field(default_factory=list)  # extra host paths (the run folder is bound)


class JobSetup(BaseModel):
    """What a job script sets up before it runs a task: ``module load`` lines, environment,
    container image (shared by the whole site and by each method)."""

    model_config = ConfigDict(extra="forbid")

    modules: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    container: Container | None = None

    @field_validator("modules")
    @classmethod
    def _modules(cls, mods: list[str]) -> list[str]:
        return _check_modules(mods)

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        return _check_env(env)


class MethodResources(JobSetup):
    """What one calculation method needs on this site (minimums: a task asking for more keeps
    its own). Memory in MB, walltime in s."""

    cores: int | None = Field(default=None, ge=1)
    memory_mb: int | None = Field(default=None, ge=1)
    gpus: GpuRequest | None = None
    walltime_s: int | None = Field(default=None, ge=60)
    #: MPI ranks x threads (x GPUs) per calculation; a task asking for more cores gets more
    #: ranks of the same width. None: one process on ``cores`` cores.
    layout: Layout | None = None
    #: run this method's tasks streamed, many per job (see :class:`Stream`). None: one job
    #: (or array element) per task.
    stream: Stream | None = None



def profile_path(name_or_path: str | Path) -> Path:
    """The file a site profile is read from: a path as given (it has a suffix), else
    ``configs/sites/<name>.yaml`` (:func:`sites_dir`)."""
    path = Path(name_or_path)
    return path if path.suffix else sites_dir() / f"{name_or_path}.yaml"


class SiteProfile(JobSetup):
    """A cluster's settings. Memory in MB, walltime and intervals in s, submit rate in sbatch
    calls per s. ``modules``/``env``/``container`` apply to every job; ``methods`` adds per-method
    resources, modules, environment and container (EMT jobs need no compiler modules)."""

    name: str = "local"
    partition: str = Field(default="", pattern=_WORD)
    account: str = Field(default="", pattern=_WORD)
    qos: str = Field(default="", pattern=_WORD)
    methods: dict[str, MethodResources] = Field(default_factory=dict)
    gpu_option: Literal["gres", "gpus"] = "gres"  # --gres=gpu:TYPE:N or --gpus=TYPE:N
    # How MPI ranks start inside a job: ``srun --mpi=<mpi_plugin>`` (Slurm's own launcher;
    # ``srun --mpi=list`` names the plugins) or the MPI library's ``mpirun``.
    mpi_launcher: Literal["srun", "mpirun"] = "srun"
    mpi_plugin: str = Field(default="pmix", pattern=r"^[A-Za-z0-9_.-]+$")
    default_walltime_s: int = Field(default=3600, ge=60)
    max_walltime_s: int = Field(default=48 * 3600, ge=60)
    default_memory_mb: int | None = Field(default=None, ge=1)
    max_memory_mb: int | None = Field(default=None, ge=1)  # OUT_OF_MEMORY retries stop here
    max_jobs_in_queue: int = Field(default=500, ge=1)
    submit_rate_per_s: float = Field(default=5.0, ge=0)
    array_max_size: int = Field(default=1000, ge=1)
    array_throttle: int = Field(default=50, ge=1)  # the %N of --array: elements running at once
    # cores one array may hold running at once: wide (MPI) elements get a smaller %N
    array_max_cores: int | None = Field(default=None, ge=1)
    # Scheduler etiquette: one squeue per interval for all of a campaign's jobs; the interval
    # grows by poll_backoff (up to poll_max_interval_s) while nothing changes.
    poll_interval_s: float = Field(default=30.0, ge=0.1)
    poll_backoff: float = Field(default=1.5, ge=1.0)
    poll_max_interval_s: float = Field(default=300.0, ge=0.1)
    # Packing: tasks expected to run shorter than pack_below_s wait up to pack_window_s for
    # batch-mates and go as one job array (throttled by array_throttle). packing: none forbids.
    packing: Literal["array", "none"] = "array"
    pack_below_s: float = Field(default=600.0, ge=0)
    pack_window_s: float = Field(default=10.0, ge=0)
    extra_sbatch: list[str] = Field(default_factory=list)
    python: str = Field(default_factory=lambda: sys.executable)
    dask_interface: str | None = None
    templates_dir: Path = Field(default_factory=default_templates_dir)


    @field_validator("extra_sbatch")
    @classmethod
    def _extra(cls, lines: list[str]) -> list[str]:
        return [check_sbatch_option(x) for x in lines]

    def site_comment(self) -> str:
        """The site's own ``--comment`` (accounting), merged into dm-hpc's job comment."""
        return ",".join(x.partition("=")[2] for x in self.extra_sbatch if x.startswith("--comment="))

    def throttle(self) -> Throttle:
        return Throttle(max_in_queue=self.max_jobs_in_queue, submit_rate=self.submit_rate_per_s,
                        max_batch=self.array_max_size)

    @classmethod
    def load(cls, name_or_path: str | Path = "local") -> "SiteProfile":
        """Load ``configs/sites/<name>.yaml`` or a YAML file path; SiteProfileError names the
        file and every bad field."""
        path = profile_path(name_or_path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SiteProfileError(f"site profile {path}: cannot read: {exc}") from None
        if not isinstance(data, dict):
            raise SiteProfileError(f"site profile {path}: expected a mapping of settings")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}"
                                 for e in exc.errors())
            raise SiteProfileError(f"site profile {path}: {problems}") from None


class SiteProfileError(ValueError):
    """A site profile that cannot be read or has bad values (the message names them)."""
