"""A partition's limits as Slurm states them, and the resources a job asks that exceed them.

``scontrol show partition -o`` gives MaxNodes, MaxTime, MaxCPUsPerNode and MaxMemPerNode
(``UNLIMITED`` or absent: no limit); ``sinfo`` gives the CPUs and memory of the partition's
largest node. A job asking more than any of these would pend forever (or be refused at
``sbatch`` after the campaign has journalled it), so preflight asks here first. Where Slurm
cannot be asked (a laptop, a login node without the commands), nothing is known and nothing is
refused. Memory in MB, time in s.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from dm_hpc.runners import slurmcli


@dataclass(frozen=True)
class PartitionLimits:
    """What one partition allows; None: no limit stated."""

    partition: str
    max_nodes: int | None = None
    max_time_s: int | None = None
    max_cpus_per_node: int | None = None
    max_mem_per_node_mb: int | None = None
    node_cpus: int | None = None  # CPUs of the partition's largest node
    node_mem_mb: int | None = None


def _number(value: str | None) -> int | None:
    if value is None or not value.rstrip("M").isdigit():
        return None  # UNLIMITED, NONE, 0 with a suffix we do not know: no stated limit
    return int(value.rstrip("M"))


def _seconds(value: str | None) -> int | None:
    """Slurm's ``[D-]HH:MM:SS`` (or ``MM:SS``, ``MM``) in s; None for UNLIMITED/NONE."""
    if not value or not value[0].isdigit():
        return None
    days, _, clock = value.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    h, m, s = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return (int(days or 0) * 24 + h) * 3600 + m * 60 + s


def parse(partition_line: str, sinfo_lines: str) -> PartitionLimits:
    """Limits from ``scontrol show partition -o`` (one line) and ``sinfo -h -o '%c|%m'``."""
    fields = dict(item.split("=", 1) for item in partition_line.split() if "=" in item)
    nodes = [line.split("|") for line in sinfo_lines.splitlines() if "|" in line]
    cpus = [_number(c.strip().rstrip("+")) for c, _ in nodes]
    mems = [_number(m.strip().rstrip("+")) for _, m in nodes]
    return PartitionLimits(
        partition=fields.get("PartitionName", ""), max_nodes=_number(fields.get("MaxNodes")),
        max_time_s=_seconds(fields.get("MaxTime")), max_cpus_per_node=_number(fields.get("MaxCPUsPerNode")),
        max_mem_per_node_mb=_number(fields.get("MaxMemPerNode")),
        node_cpus=max((c for c in cpus if c), default=None), node_mem_mb=max((m for m in mems if m), default=None))


def read(partition: str = "") -> PartitionLimits | None:
    """The limits of ``partition`` (default: the cluster's default one); None where Slurm
    cannot be asked."""
    if shutil.which("scontrol") is None or shutil.which("sinfo") is None:
        return None
    try:
        out = slurmcli.call(["scontrol", "show", "partition", "-o", *([partition] if partition else [])], tries=1)
        lines = out.splitlines()
        line = lines[0] if partition and lines else next((x for x in lines if " Default=YES" in x), None)
        if line is None:
            return None
        name = dict(i.split("=", 1) for i in line.split() if "=" in i).get("PartitionName", partition)
        return parse(line, slurmcli.call(["sinfo", "-h", "-p", name, "-o", "%c|%m"], tries=1))
    except (OSError, slurmcli.SlurmError):
        return None


def exceeded(limits: PartitionLimits, *, cores: int, walltime_s: float, memory_mb: int | None = None,
             nodes: int = 1) -> list[str]:
    """What a job of ``nodes`` nodes with ``cores`` CPUs per task (one task per node),
    ``walltime_s`` and ``memory_mb`` per node asks beyond ``limits``, one line per limit."""
    p = f"partition {limits.partition!r}"
    out = []
    if limits.max_nodes is not None and nodes > limits.max_nodes:
        out.append(f"{nodes} nodes > MaxNodes={limits.max_nodes} of {p}")
    if limits.max_time_s is not None and walltime_s > limits.max_time_s:
        out.append(f"walltime {walltime_s:g} s > MaxTime={limits.max_time_s} s of {p}")
    if limits.max_cpus_per_node is not None and cores > limits.max_cpus_per_node:
        out.append(f"cores {cores} > MaxCPUsPerNode={limits.max_cpus_per_node} of {p}")
    if limits.node_cpus is not None and cores > limits.node_cpus:
        out.append(f"cores {cores} > the {limits.node_cpus} CPUs of the largest node in {p}")
    if memory_mb is not None:
        if limits.max_mem_per_node_mb is not None and memory_mb > limits.max_mem_per_node_mb:
            out.append(f"memory {memory_mb} MB > MaxMemPerNode={limits.max_mem_per_node_mb} MB of {p}")
        if limits.node_mem_mb is not None and memory_mb > limits.node_mem_mb:
            out.append(f"memory {memory_mb} MB > the {limits.node_mem_mb} MB of the largest node in {p}")
    return out


def unknown_names(partition: str = "", account: str = "", qos: str = "") -> list[str]:
    """The site profile's partition, account and QoS that this cluster does not know, one line
    each, from ``sinfo`` and ``sacctmgr`` (a name is only judged where the tool answers). A
    misspelt partition failed the first ``sbatch`` with a traceback after ``validate`` said ok; a
    misspelt account ran every job under another one (sacct: root)."""
    out = []
    checks = [("partition", partition, ["sinfo", "-h", "-o", "%P"], lambda x: x.rstrip("*")),
              ("account", account, ["sacctmgr", "-n", "-P", "show", "account", "format=account"], str.lower),
              ("qos", qos, ["sacctmgr", "-n", "-P", "show", "qos", "format=name"], str.lower)]
    for field, name, argv, norm in checks:
        if not name or shutil.which(argv[0]) is None:
            continue
        try:
            known = sorted({norm(x.strip()) for x in slurmcli.call(argv, timeout_s=20, tries=1).split() if x.strip()})
        except (OSError, slurmcli.SlurmError, subprocess.TimeoutExpired):
            continue
        missing = [n for n in name.split(",") if n and norm(n) not in known]  # sbatch takes a list: -p a,b
        if known and missing:
            out.append(f"{field} {', '.join(map(repr, missing))} does not exist on this cluster "
                       f"({field}s: {', '.join(known)})")
    return out
