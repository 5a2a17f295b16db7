"""Resources against the partition's limits (issue 18 §6): ``cores: 1000000`` is refused at
validate, naming the limit, where scontrol can tell; nothing is refused where it cannot."""
from __future__ import annotations

import shutil

import pytest

from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.preflight import problems
from dm_hpc.runners import limits
from tests.campaign.helpers import dm, write_campaign

LIMITED = ("PartitionName=gpu AllowGroups=ALL Default=NO MaxNodes=4 MaxTime=2-00:00:00 MinNodes=0 "
           "MaxCPUsPerNode=64 Nodes=g[01-04] State=UP TotalCPUs=512 DefMemPerNode=UNLIMITED MaxMemPerNode=256000")


def test_partition_limits_are_read_from_scontrol_text():
    got = limits.parse(LIMITED, "128|512000\n96|384000+\n")
    assert (got.max_nodes, got.max_time_s, got.max_cpus_per_node, got.max_mem_per_node_mb) == (4, 172800, 64, 256000)
    assert (got.node_cpus, got.node_mem_mb) == (128, 512000)
    unlimited = limits.parse("PartitionName=debug MaxNodes=UNLIMITED MaxTime=UNLIMITED MaxCPUsPerNode=UNLIMITED "
                             "MaxMemPerNode=UNLIMITED", "")
    assert limits.exceeded(unlimited, cores=10**6, walltime_s=1e9, memory_mb=10**9, nodes=10**4) == []
    why = limits.exceeded(got, cores=100, walltime_s=3 * 86400, memory_mb=300000, nodes=8)
    assert why == ["8 nodes > MaxNodes=4 of partition 'gpu'", "walltime 259200 s > MaxTime=172800 s of partition 'gpu'",
                   "cores 100 > MaxCPUsPerNode=64 of partition 'gpu'",
                   "memory 300000 MB > MaxMemPerNode=256000 MB of partition 'gpu'"]


@pytest.mark.slurm
def test_a_million_cores_is_refused_at_validate_naming_the_partition_limit(slurm_site, tmp_path):
    path = write_campaign(tmp_path, lab=False, runner={"kind": "slurm", "site": "local", "max_in_flight": 2},
                          fidelities=[{"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m",
                                       "cores": 1000000}])
    found = problems(load_campaign(path))
    assert any("fidelities.emt: cores 1000000 > the" in p and "CPUs of the largest node" in p for p in found), found
    proc = dm("validate", str(path))
    assert proc.returncode == 2 and "cores 1000000" in proc.stderr and "Traceback" not in proc.stderr
    ok = write_campaign(tmp_path, name="ok", lab=False, runner={"kind": "slurm", "site": "local"})
    assert problems(load_campaign(ok)) == []


def test_a_local_campaign_asking_more_cores_than_the_machine_has_is_refused(tmp_path):
    path = write_campaign(tmp_path, lab=False, fidelities=[
        {"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m", "cores": 1000000}])
    assert any("cores: 1000000 > the" in p for p in problems(load_campaign(path)))


def test_nothing_is_refused_where_slurm_cannot_be_asked(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert limits.read("debug") is None
