"""Real accounting on the local cluster (slurm/start-local.sh: MariaDB + slurmdbd): sacct's final
states and peak memory, and the account's allocation from sacctmgr/sshare.

Memory is NOT enforced on this machine: the container's cgroup controllers are read-only, so
the local Slurm runs with TaskPlugin=task/none and a job may use more than its --mem (the
test below shows sacct seeing it). On a site with task/cgroup the same job ends OUT_OF_MEMORY."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from dm_hpc.runners import JobState, slurmcli

pytestmark = pytest.mark.slurm


def test_sacct_reports_the_final_state_and_the_peak_memory(slurm_site, tmp_path):
    assert slurmcli.accounting_enabled()
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n" + f"{sys.executable} -c 'x = bytearray(300_000_000); "
                      "import time; time.sleep(8)'\n")
    job = slurmcli.sbatch(script, ["--mem=100M", "--time=00:02:00", "--account=matsci-dm",
                                   f"--output={tmp_path}/out"])
    deadline = time.monotonic() + 120
    while (state := slurmcli.sacct([job]).get(job, (None, None))[0]) is not JobState.COMPLETED:
        assert time.monotonic() < deadline and state in (None, JobState.PENDING, JobState.RUNNING), state
        time.sleep(1)
    assert slurmcli.sacct([job])[job] == (JobState.COMPLETED, 0)
    peak = slurmcli.peak_memory_mb([job])[job]
    assert 250 < peak < 600  # the 300 MB it touched (MaxRSS, sampled every 5 s)
    if not os.access("/sys/fs/cgroup/memory", os.W_OK):
        # not enforced here (read-only cgroups): it used 3x its --mem and still COMPLETED
        assert peak > 100


def test_the_account_allocation_comes_from_sacctmgr_and_sshare(slurm_site):
    left, how = slurmcli.remaining_core_hours("matsci-dm")
    limit = subprocess.run(["sacctmgr", "-n", "-P", "show", "assoc", "account=matsci-dm",
                            "format=GrpTRESMins"], capture_output=True, text=True, check=True).stdout
    minutes = min(int(m) for m in re.findall(r"cpu=(\d+)", limit))
    assert left is not None and 0 < left <= minutes / 60
    assert how == f"{left:,.0f} core-h left on matsci-dm (sacctmgr limit - sshare usage)"
    assert slurmcli.remaining_core_hours("no-such-account")[0] is None
