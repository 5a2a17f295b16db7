"""`dm-hpc init` copies a template from the repository's ``campaigns/``, which it looked for beside
the package: in an image (``pip install .`` in containers/) there is none, and init failed with a
traceback. It reads ``$DM_HPC_CAMPAIGNS_DIR`` (set by both recipes to the campaigns/ they copy)
and says what is missing when the folder is not there. Nothing is built here (no docker or
apptainer): the recipes are read, and an installed layout is imitated by a copy of the package
outside the checkout, as in test_container_paths."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dm_hpc.cli.campaign import TEMPLATES
from tests.runners.test_container_paths import (REPO, WANTED, definition_paths, dockerfile_paths,
                                                repository_folder)

VARIABLE = "DM_HPC_CAMPAIGNS_DIR"


@pytest.mark.parametrize("recipe", [dockerfile_paths, definition_paths], ids=["Dockerfile", "dm-hpc.def"])
def test_each_recipe_points_init_at_the_campaigns_it_copies(recipe):
    env, copies = recipe()
    assert VARIABLE in env, f"{recipe.__name__}: {VARIABLE} is not set"
    found = repository_folder(env[VARIABLE], copies)
    assert found is not None, f"{VARIABLE}={env[VARIABLE]} is not a folder the recipe copies"
    assert found.resolve() == (REPO / "campaigns").resolve()
    assert all((found / name).is_file() for name in TEMPLATES.values())


def test_an_installed_package_scaffolds_from_the_variable_and_says_when_it_cannot(tmp_path: Path):
    installed = tmp_path / "site-packages"
    shutil.copytree(REPO / "dm_hpc", installed / "dm_hpc", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DM_HPC_")}
    env.update(PYTHONPATH=str(installed), PYTHONSAFEPATH="1", OMP_NUM_THREADS="1", COLUMNS="400")
    docker_env, docker_copies = dockerfile_paths()
    # the recipe's values, mapped back to the folders of this checkout that it copies
    mapped = {k: str(repository_folder(docker_env[k], docker_copies)) for k in [*WANTED, VARIABLE]}

    def init(name: str, extra: dict[str, str], *options: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dm_hpc", "init", name, "--out", f"out/{name}.yaml", *options],
                              cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True, timeout=120)

    bare = init("bare", {k: v for k, v in mapped.items() if k != VARIABLE})
    assert bare.returncode == 2 and "Traceback" not in bare.stderr, bare.stderr
    assert VARIABLE in bare.stderr and "hea-demo.yaml" in bare.stderr, bare.stderr
    wrong = init("wrong", {**mapped, VARIABLE: str(tmp_path / "nowhere")})
    assert wrong.returncode == 2 and str(tmp_path / "nowhere") in wrong.stderr, wrong.stderr
    assert not (tmp_path / "out").exists()
    for template in TEMPLATES:
        done = init(template, mapped, "--template", template)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (tmp_path / "out" / f"{template}.yaml").read_text().startswith("# Scaffolded from ")
