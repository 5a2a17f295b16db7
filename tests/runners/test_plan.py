"""`dm-hpc plan CAMPAIGN --dry-run`: the job scripts of the next wave and their cost, with
nothing written or submitted."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dm_hpc.cli import app
from dm_hpc.runners import JobState, slurmcli
from dm_hpc.runners.slurm import SlurmRunner

REPO = Path(__file__).resolve().parents[2]


def test_plan_renders_the_next_wave_with_costs_and_writes_nothing(tmp_path: Path):
    data = yaml.safe_load((REPO / "campaigns" / "hea-turbine.yaml").read_text())
    data.update(workdir=str(tmp_path / "run"), store=str(tmp_path / "run" / "store"),
                runner={**data["runner"], "site": str(REPO / "configs" / "sites" / "cluster.yaml")})
    campaign = tmp_path / "hea-turbine.yaml"
    campaign.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["plan", str(campaign), "--dry-run", "--tasks", "2"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "account matsci-dm: " in out  # the allocation itself: tests/runners/test_accounting.py
    assert "budget: 20,000 core-h, used 0.0, left 20,000.0" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.startswith(("chgnet ", "dft "))}
    assert rows["chgnet"][1:4] == ["chgnet", "4", "1"] and rows["dft"][1:4] == ["gpaw", "32", "0"]
    scripts = out.split("# ---- job script: fidelity ")[1:]
    assert [s.split()[0] for s in scripts] == ["chgnet", "dft"]
    chgnet, dft = scripts
    assert "#SBATCH --gres=gpu:a100:1" in chgnet and "apptainer exec --nv" in chgnet
    assert "module load" not in chgnet and "module load libxc/6.2.2" in dft
    assert "#SBATCH --array=0-1%2" in dft and "hea-turbine-c00002" in dft
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_plan_refuses_to_submit(tmp_path: Path):
    result = CliRunner().invoke(app, ["plan", str(REPO / "campaigns" / "hea-turbine.yaml"),
                                      "--no-dry-run"])
    assert result.exit_code == 2 and "dm-hpc run" in result.output



@pytest.mark.slurm
def test_runners_cancel_stops_every_job_of_a_campaign(slurm_site, make_task, tmp_path: Path):
    runner = SlurmRunner(slurm_site, tmp_path / "state", use_arrays=False)
    tasks = [make_task(i, ["sleep", "300"]) for i in range(3)]
    runner.submit(tasks)
    campaign = tasks[0].campaign
    listed = CliRunner().invoke(app, ["runners", "cancel", campaign])
    assert "would cancel 3 job(s)" in listed.output
    assert all(not s.is_final for s, _ in slurmcli.states(runner.job_ids().values()).values())
    done = CliRunner().invoke(app, ["runners", "cancel", campaign, "--yes"])
    assert done.exit_code == 0 and "cancelled 3 job(s)" in done.output
    deadline = time.monotonic() + 30
    while (states := {s for s, _ in slurmcli.states(runner.job_ids().values()).values()}) != {
            JobState.CANCELLED} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert states == {JobState.CANCELLED}


def test_a_bad_site_profile_is_a_clear_error_naming_each_field(tmp_path: Path):
    bad = tmp_path / "site.yaml"
    bad.write_text('partition: "a; b"\nextra_sbatch: ["--output=/etc/x"]\n'
                   'methods: {qe: {gpus: {count: -1}}}\n')
    for argv in (["runners", "site", str(bad)],
                 ["plan", str(REPO / "campaigns" / "hea-turbine.yaml"), "--site", str(bad)]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert "Traceback" not in text
        for field in ("partition", "extra_sbatch", "'--output=/etc/x' is not allowed",
                      "methods.qe.gpus.count"):
            assert field in text, (field, text)
