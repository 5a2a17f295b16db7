"""Issue 19, item 2: paths in a campaign file follow the file, not the working folder.

``cd ~ && dm-hpc status projects/alloys/campaign.yaml`` said "not started" for a campaign with
records: its store and run folder were looked up under the working folder.
"""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from dm_hpc import Campaign
from dm_hpc.campaign import load_campaign
from dm_hpc.campaign.spec import CampaignPathWarning
from tests.conftest import REPO

ALLOYS = {
    "name": "alloys",
    "store": "runs/store",
    "workdir": "runs",
    "seed": 3,
    "space": {"elements": {"Cu": [0, 1], "Ni": [0, 1]}},
    "objectives": [{"property": "mixing_energy", "goal": "min", "unit": "eV/atom"}],
    "fidelities": [{"name": "emt", "kind": "calculation", "method": "emt", "walltime": "2m"}],
    "budget": {"calculations": 3},
    "runner": {"kind": "local", "cores": 2, "max_in_flight": 2},
    "learning": {"initial_points": 3, "refit_every": 3, "batch_size": 1},
}


def dm(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
           "OMP_NUM_THREADS": "1", "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-m", "dm_hpc", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, Path]:
    """~/projects/alloys/campaign.yaml, run from its own folder (3 real EMT calculations)."""
    home = tmp_path_factory.mktemp("home")
    folder = home / "projects" / "alloys"
    folder.mkdir(parents=True)
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(ALLOYS))
    res = dm(folder, "run", "campaign.yaml", "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (folder / "runs" / "journal.jsonl").exists() and (folder / "runs" / "store").is_dir()
    return home, path


def test_status_from_another_folder_finds_the_records(project):
    home, _ = project
    res = dm(home, "status", "projects/alloys/campaign.yaml")
    assert res.returncode == 0, res.stderr
    assert "not started" not in res.stdout
    assert "tasks ingested" in res.stdout and not (home / "runs").exists()


def test_report_and_validate_from_another_folder(project, tmp_path):
    home, path = project
    res = dm(tmp_path, "report", str(path))
    assert res.returncode == 0, res.stderr
    assert (path.parent / "runs" / "report" / "summary.md").exists() and not (tmp_path / "runs").exists()
    assert dm(tmp_path, "validate", str(path)).returncode == 0


def test_the_python_api_resolves_against_the_file(project, tmp_path, monkeypatch):
    home, path = project
    monkeypatch.chdir(tmp_path)
    camp = Campaign.load(path)
    assert camp.spec.store == path.parent / "runs" / "store"
    assert len(camp.records()) == 3


def test_every_path_field_follows_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "p"
    (folder / "sheets").mkdir(parents=True)
    (folder / "sheets" / "pool.csv").write_text("Cu,Ni,overpotential\n0.5,0.5,0.3\n")
    (folder / "sheets" / "map.yaml").write_text("{}\n")
    (folder / "site.yaml").write_text("name: s\n")
    data = {**ALLOYS, "space": {"pool": "sheets/pool.csv", "pool_map": "sheets/map.yaml"},
            "runner": {"kind": "local", "site": "site.yaml"},
            "fidelities": [{"name": "lab", "kind": "experiment", "cost": 1, "emulate_from": "sheets/pool.csv",
                            "emulate_map": "sheets/map.yaml"}]}
    data.pop("workdir")
    (folder / "c.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    c = load_campaign("p/c.yaml")
    base = (tmp_path / "p").absolute()
    assert c.store == base / "runs" / "store" and c.run_dir == base / "runs" / "alloys"
    assert c.space.pool == base / "sheets" / "pool.csv" and c.space.pool_map == base / "sheets" / "map.yaml"
    assert c.runner.site == base / "site.yaml"
    assert c.lab.emulate_from == base / "sheets" / "pool.csv" and c.lab.emulate_map == base / "sheets" / "map.yaml"
    named = load_campaign(_write(folder / "named.yaml", {**ALLOYS, "runner": {"kind": "slurm", "site": "local"}}))
    assert named.runner.site == Path("local")  # a profile name, not a file


def test_an_old_campaign_that_meant_the_working_folder_keeps_its_records(tmp_path, monkeypatch):
    """Written before paths followed the file: its store exists only under the working folder."""
    (tmp_path / "runs" / "old" / "store").mkdir(parents=True)
    path = _write(tmp_path / "campaigns" / "old.yaml",
                  {**ALLOYS, "name": "old", "store": "runs/old/store", "workdir": "runs/old"})
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = load_campaign(path)
    assert c.store == tmp_path / "runs" / "old" / "store" and c.run_dir == tmp_path / "runs" / "old"
    said = [str(w.message) for w in caught if issubclass(w.category, CampaignPathWarning)]
    assert any("write store: ../runs/old/store" in s for s in said), said
    res = dm(tmp_path, "validate", str(path))
    assert res.returncode == 0 and "write store: ../runs/old/store" in res.stdout + res.stderr


def test_shipped_campaigns_put_their_runs_at_the_repository_root():
    for name in ("hea-demo", "hea-turbine", "oer-catalyst", "hea-demo-slurm"):
        c = load_campaign(REPO / "campaigns" / f"{name}.yaml")
        assert Path(c.run_dir).resolve() == REPO / "runs" / name
        assert Path(c.store).resolve() == REPO / "runs" / name / "store"


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_copied_campaign_whose_files_are_not_beside_it_is_told_so_by_every_command(tmp_path):
    """A user trial copied campaigns/bandgap-transfer.yaml to a folder of its own: `validate` named
    the pool map, the emulated lab's map and the source table's map, but `transfer suggest`,
    `transfer gain`, `report` and `design --campaign` ended in a SheetError traceback."""
    from .helpers import dm

    copy = tmp_path / "bandgap-transfer.yaml"
    copy.write_text((REPO / "campaigns" / "bandgap-transfer.yaml").read_text())
    for args in (("transfer", "suggest"), ("transfer", "gain"), ("report",),
                 ("design", "--target", "bandgap>=3 eV", "--campaign")):
        out = dm(*args, str(copy))
        assert out.returncode != 0 and "Traceback" not in out.stderr, (args, out.stderr)
        assert "space.pool_map: no such file" in out.stderr, (args, out.stderr)
        # the report would leave the source out (a warning), but not the pool: each named at once
        assert "transfer.from.0.table_map" in out.stdout + out.stderr, (args, out.stdout, out.stderr)


@pytest.mark.parametrize("change", [
    {"fidelities": [{"name": "emt", "kind": "calculation", "method": "emt", "walltime": "2m", "cores": 100_000}]},
    {"space": {"elements": {"Cu": [0, 1], "Ni": [0, 1]},
               "process": {"annealing_temperature": {"low": 400, "high": 900, "unit": "degC"}}}},
], ids=["cores-beyond-this-machine", "process-without-lab"])
def test_report_reads_a_campaign_that_could_not_run_here(tmp_path, change):
    """`report`, `design --campaign` and `transfer` check the files they read, not what only a run
    needs: a campaign whose calculations ask more cores than this laptop has (it ran on the
    cluster), or one written before process parameters without a lab were refused, still gets its
    report."""
    path = _write(tmp_path / "alloys.yaml", {**ALLOYS, **change})
    out = dm(tmp_path, "report", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cannot run" not in out.stdout + out.stderr


def test_a_campaign_file_that_is_not_there_names_the_one_meant(tmp_path, monkeypatch):
    """``dm-hpc status campaigns/hea-dmeo.yaml``, ``dm-hpc status hea-demo`` (the campaign's name)
    and ``dm-hpc status campaigns`` said only 'cannot read: No such file or directory' (or 'Is a
    directory'), with the file meant one folder listing away."""
    from dm_hpc.campaign import CampaignError

    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "hea-demo.yaml").write_text(yaml.safe_dump(ALLOYS))
    (folder / "oer.yaml").write_text(yaml.safe_dump(ALLOYS))
    monkeypatch.chdir(tmp_path)
    said = {}
    for given in ("campaigns/hea-dmeo.yaml", "hea-demo", "campaigns", "campaigns/zzz.yaml"):
        with pytest.raises(CampaignError) as err:
            load_campaign(given)
        said[given] = str(err.value)
    assert said["campaigns/hea-dmeo.yaml"].startswith("campaigns/hea-dmeo.yaml: no such campaign file")
    assert "(did you mean campaigns/hea-demo.yaml?)" in said["campaigns/hea-dmeo.yaml"]
    assert "(did you mean campaigns/hea-demo.yaml?)" in said["hea-demo"]
    assert "is a folder: give one campaign file in it (campaigns/hea-demo.yaml, campaigns/oer.yaml)" in said["campaigns"]
    assert "no such campaign file" in said["campaigns/zzz.yaml"] and "did you mean" not in said["campaigns/zzz.yaml"]
