"""The container recipes install dm_hpc with pip (into the venv's site-packages), away from the
repository copy in the image, so the package cannot find ``configs/`` and ``slurm/templates``
beside itself: each recipe sets DM_HPC_CONFIG_DIR and DM_HPC_TEMPLATES_DIR to the folders it
copies. Nothing is built here (no docker or apptainer): the recipes are read, and an installed
layout is imitated by a copy of the package outside the checkout."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from tests.runners.test_containers import parse_definition

REPO = Path(__file__).resolve().parents[2]
WANTED = {"DM_HPC_CONFIG_DIR": "configs", "DM_HPC_TEMPLATES_DIR": "slurm/templates"}


def dockerfile_paths() -> tuple[dict[str, str], dict[str, str]]:
    """(environment variables set by ENV, image folder -> repository folder copied there)."""
    text = (REPO / "containers" / "Dockerfile").read_text()
    env: dict[str, str] = {}
    copies: dict[str, str] = {}
    workdir = PurePosixPath("/")
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "WORKDIR":
            workdir = workdir / words[1]
        elif words[0] == "ENV":
            env.update(w.split("=", 1) for w in words[1:] if "=" in w)
        elif words[0] == "COPY" and len(words) == 3:  # one source, one destination
            copies[str(workdir / words[2])] = words[1]
    return env, copies


def definition_paths() -> tuple[dict[str, str], dict[str, str]]:
    _, sections = parse_definition((REPO / "containers" / "dm-hpc.def").read_text())
    env = dict(m.groups() for line in sections["environment"]
               if (m := re.fullmatch(r"export (\w+)=(\S+)", line)))
    copies = {dest: source for source, dest in (line.split() for line in sections["files"])}
    return env, copies


def repository_folder(image_path: str, copies: dict[str, str]) -> Path | None:
    """The repository folder an image path holds, through the recipe's copies (None: none)."""
    for dest, source in copies.items():
        path = PurePosixPath(image_path)
        if path == PurePosixPath(dest) or PurePosixPath(dest) in path.parents:
            return REPO / source / path.relative_to(dest)
    return None


@pytest.mark.parametrize("recipe", [dockerfile_paths, definition_paths], ids=["Dockerfile", "dm-hpc.def"])
def test_each_recipe_points_the_package_at_the_folders_it_copies(recipe):
    env, copies = recipe()
    for variable, folder in WANTED.items():
        assert variable in env, f"{recipe.__name__}: {variable} is not set"
        found = repository_folder(env[variable], copies)
        assert found is not None, f"{variable}={env[variable]} is not a folder the recipe copies"
        assert found.resolve() == (REPO / folder).resolve(), (variable, found)
    assert (REPO / WANTED["DM_HPC_CONFIG_DIR"] / "calculators.yaml").is_file()
    assert (REPO / WANTED["DM_HPC_CONFIG_DIR"] / "sites" / "cluster.yaml").is_file()


PROBE = """
from pathlib import Path
import dm_hpc
assert not Path(dm_hpc.__file__).is_relative_to({repo!r}), dm_hpc.__file__
from dm_hpc.compute.methods import get_method, pseudopotentials_config
from dm_hpc.runners import SiteProfile, TaskSpec
from dm_hpc.runners.sbatch import render_tasks
site = SiteProfile.load("cluster")
get_method("emt"); assert pseudopotentials_config()
spec = TaskSpec(task_id="t", argv=["true"], workdir=Path("/tmp/t"), walltime_s=60)
assert "#SBATCH --job-name=x" in render_tasks(site, [spec], job_name="x", job_comment="c", array=None)
print("ok")
"""


def test_an_installed_package_finds_configs_and_templates_through_the_variables(tmp_path: Path):
    installed = tmp_path / "site-packages"
    shutil.copytree(REPO / "dm_hpc", installed / "dm_hpc", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DM_HPC_")}
    env.update(PYTHONPATH=str(installed), PYTHONSAFEPATH="1", OMP_NUM_THREADS="1")
    probe = PROBE.format(repo=str(REPO))

    def run(extra: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={**env, **extra},
                              capture_output=True, text=True, timeout=120)

    bare = run({})  # what the image did before: nothing beside the package
    assert bare.returncode != 0
    docker_env, docker_copies = dockerfile_paths()
    # the recipe's values, mapped back to the folders of this checkout that it copies
    mapped = {k: str(repository_folder(docker_env[k], docker_copies)) for k in WANTED}
    done = run(mapped)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
