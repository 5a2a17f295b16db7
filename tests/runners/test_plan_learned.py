"""What must show (issue 20): `dm-hpc plan` on campaigns/hea-turbine.yaml after a short real
run on the local Slurm shows learned estimates (and the runs behind each), the real allocation
of the account from slurmdbd, and job scripts with the DFT layout visible (--ntasks and srun).

The short run: two CHGNet and one GPAW calculation of the campaign's own fidelities, submitted
through the SlurmRunner the campaign manager uses (same run folder, same cost book), on a local
variant of the site profile (2 MPI ranks for GPAW, account matsci-dm) with GPAW at quick
settings. Nothing here is faked: real Slurm with accounting, real CHGNet (CPU), real GPAW."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dm_hpc.cli import app
from dm_hpc.compute import read_result, worker_argv, write_task
from dm_hpc.runners import JobState, SiteProfile, TaskSpec
from dm_hpc.runners.slurm import SlurmRunner

pytest.importorskip("gpaw", reason="gpaw not installed (pip install 'dm-hpc[dft]')")
pytest.importorskip("chgnet", reason="chgnet not installed (pip install 'dm-hpc[mlip]')")
pytestmark = [pytest.mark.slurm, pytest.mark.dft, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
QUICK = ["energy_per_atom", "lattice_parameter"]


def local_variant(tmp_path: Path) -> tuple[Path, Path]:
    """hea-turbine in tmp_path on the local cluster: DFT on 2 cores (the machine's), account
    matsci-dm (start-local.sh registers it with an allocation)."""
    site = yaml.safe_load((REPO / "configs" / "sites" / "local.yaml").read_text())
    site.update(name="local-hea", account="matsci-dm", default_memory_mb=2000, max_memory_mb=8000)
    site_path = tmp_path / "site.yaml"
    site_path.write_text(yaml.safe_dump(site))
    data = yaml.safe_load((REPO / "campaigns" / "hea-turbine.yaml").read_text())
    data.update(workdir=str(tmp_path / "run"), store=str(tmp_path / "run" / "store"),
                runner={**data["runner"], "site": str(site_path)})
    for fid in data["fidelities"]:
        if fid["name"] == "dft":
            fid["cores"] = 2
    campaign = tmp_path / "hea-turbine.yaml"
    campaign.write_text(yaml.safe_dump(data))
    return campaign, site_path


def test_plan_after_a_short_real_run_shows_learned_estimates_and_the_dft_layout(slurm_site, tmp_path):
    campaign, site_path = local_variant(tmp_path)
    runner = SlurmRunner(SiteProfile.load(site_path), tmp_path / "run" / "slurm", own_folder=True)
    specs = []
    for i, (fid, method, comp, cores, settings) in enumerate([
            ("chgnet", "chgnet", "Cu0.5Ni0.5", 4, {}),
            ("chgnet", "chgnet", "Al0.5Ni0.5", 4, {}),
            ("dft", "gpaw", "Cu", 2, {"ecut_ev": 300, "kpoint_density": 1.5})]):
        task_id = f"hea-turbine-c{i + 1:05d}"
        workdir = tmp_path / "run" / "tasks" / task_id
        path = write_task(workdir, comp, method, settings=settings, properties=QUICK, cores=cores,
                          task_id=task_id, campaign="hea-turbine")
        specs.append(TaskSpec(task_id=task_id, name=f"hea-turbine {fid} {task_id}",
                              argv=worker_argv(path), workdir=workdir, cores=cores,
                              walltime_s=1800, campaign="hea-turbine", method=method, group=fid))
    outcomes = runner.run(specs, poll_s=1, timeout_s=900, progress=False)
    assert [o.state for o in outcomes] == [JobState.COMPLETED] * 3, outcomes
    assert all(read_result(s.workdir).ok for s in specs)

    result = CliRunner().invoke(app, ["plan", str(campaign), "--tasks", "4"])
    assert result.exit_code == 0, result.output
    out = result.output
    # learned estimates, with the runs behind each
    chgnet = next(x for x in out.splitlines() if x.startswith("estimate chgnet"))
    dft = next(x for x in out.splitlines() if x.startswith("estimate dft"))
    assert "learned from 2 runs" in chgnet and "learned from 1 run" in dft
    assert "peak memory" in dft and "learned from 1 run" in dft.split("peak memory")[1]
    # requests follow them: the campaign's 30 min / 6 h give way to the learned run time
    wall = re.search(r"requests --time=(\d\d):(\d\d):00", dft)
    assert wall and int(wall.group(1)) * 60 + int(wall.group(2)) < 6 * 60
    # the allocation line from slurmdbd (sacctmgr limit - sshare usage), not "unknown"
    assert re.search(r"account matsci-dm: [\d,]+ core-h left on matsci-dm", out), out
    scripts = dict(s.split(maxsplit=1) for s in out.split("# ---- job script: fidelity ")[1:])
    assert "#SBATCH --ntasks=2" in scripts["dft"] and "#SBATCH --cpus-per-task=1" in scripts["dft"]
    assert "srun --mpi=pmix --ntasks=2 --cpus-per-task=1 " in scripts["dft"]
    assert "#SBATCH --job-name=dm-hea-turbine-dft" in scripts["dft"]
    assert "#SBATCH --job-name=dm-hea-turbine-chgnet" in scripts["chgnet"]
    assert f"#SBATCH --time={wall.group(1)}:{wall.group(2)}:00" in scripts["dft"]
