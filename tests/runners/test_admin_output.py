"""Admin output (issue 20 item 8): `runners jobs` is a table with a header and task ids,
`runners site` is YAML, batch folders do not repeat the campaign name, and the retraining
scrontab is rendered per campaign (tagged with the campaign's own name)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dm_hpc.cli import app
from dm_hpc.runners import SiteProfile
from dm_hpc.runners.slurm import SlurmRunner

REPO = Path(__file__).resolve().parents[2]


def test_runners_site_prints_yaml_that_reads_back_as_the_same_profile():
    result = CliRunner().invoke(app, ["runners", "site", "cluster"])
    assert result.exit_code == 0, result.output
    assert "{'" not in result.output and "None" not in result.output  # no Python reprs
    data = yaml.safe_load(result.output)
    assert SiteProfile.model_validate(data) == SiteProfile.load("cluster")
    assert data["methods"]["gpaw"]["layout"] == {"ranks": 32, "threads_per_rank": 1,
                                                 "gpus_per_rank": 0, "launch": "worker"}


def test_scrontab_is_rendered_per_campaign(tmp_path: Path):
    result = CliRunner().invoke(app, ["runners", "scrontab", str(REPO / "campaigns" / "hea-turbine.yaml"),
                                      "--root", "/pro ject/dm hpc", "--schedule", "0 2 * * 1-5"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "#SCRON --comment=matsci-dm-hea;dm-hpc:campaign=hea-turbine:batch=retrain-nightly" in text
    assert "#SCRON --job-name=dm-hea-turbine-retrain" in text and "campaign=retrain" not in text
    assert "#SCRON --account=matsci-dm" in text
    assert text.rstrip().splitlines()[-1].startswith("0 2 * * 1-5 cd '/pro ject/dm hpc' && ")
    bad = CliRunner().invoke(app, ["runners", "scrontab", str(REPO / "campaigns" / "hea-turbine.yaml"),
                                   "--schedule", "* * * * * ; touch x"])
    assert bad.exit_code == 2 and "not 5 cron fields" in bad.output and "Traceback" not in bad.output
    # the checked-in example is what the command renders for hea-turbine
    shipped = (REPO / "slurm" / "retrain.scrontab").read_text()
    assert "campaign=hea-turbine" in shipped and "campaign=retrain" not in shipped


@pytest.mark.slurm
def test_runners_jobs_is_a_table_with_task_ids_and_folders_do_not_repeat_the_campaign(
        slurm_site, make_task, tmp_path: Path):
    tasks = [make_task(i, ["sleep", "60"]) for i in range(2)]
    campaign = tasks[0].campaign
    state = tmp_path / "runs" / campaign / "slurm"
    runner = SlurmRunner(slurm_site, state, own_folder=True)
    try:
        runner.submit(tasks)
        deadline = time.monotonic() + 10
        while not all(runner.job_ids().values()) and time.monotonic() < deadline:
            runner.poll()
            time.sleep(0.2)
        batches = list((state / "batches").iterdir())
        assert len(batches) == 1 and not (state / campaign).exists()  # runs/<c>/slurm/batches/...
        result = CliRunner().invoke(app, ["runners", "jobs", campaign, "--state-dir", str(state)])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].split() == ["JOB", "TASK", "STATE", "EXIT", "BATCH"]
        rows = {line.split()[1]: line.split() for line in lines[1:]}
        assert set(rows) == {"t0", "t1"}, result.output
        assert {r[0] for r in rows.values()} == set(runner.job_ids().values())
        assert all(r[4] == batches[0].name for r in rows.values())
    finally:
        runner.cancel([t.task_id for t in tasks])
