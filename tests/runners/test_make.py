"""`make test` on a fresh machine: Debian packages first (installed as root, else the exact
apt-get line and a stop), then the venv with GPAW, the local Slurm, the suite; `make demo`
needs no compiled extras. The Makefile is checked with `make -n`; the package step for real
(the packages are installed here) and, as an unprivileged user, with a package that is not."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPS = REPO / ".ci" / "debian-deps.sh"


def dry(target: str) -> list[str]:
    # a venv that does not exist: what a fresh clone would run
    proc = subprocess.run(["make", "-n", "-C", str(REPO), "VENV=/nonexistent-venv", target],
                          capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


def index(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


def test_make_test_installs_packages_then_gpaw_then_starts_slurm_then_tests():
    """... and CHGNet (the mlip extra), so that its Maker and calculator tests run, not skip."""
    steps = dry("test")
    order = [index(steps, "debian-deps.sh test"), index(steps, "'.[test,dft,mlip]'"),
             index(steps, "slurm/start-local.sh"), index(steps, "-m pytest")]
    assert order == sorted(order)
    assert (REPO / ".ci" / "run").read_text().strip().endswith("exec make test")


def test_make_demo_needs_no_compiled_extras():
    steps = dry("demo")
    assert any("debian-deps.sh demo" in s for s in steps)
    assert not any("debian-deps.sh test" in s or "[test,dft" in s or "start-local" in s for s in steps)
    demo = [line.split()[0] for line in (REPO / ".ci" / "debian-packages.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#") and " demo" in line.split("#")[0]]
    assert demo == ["python3-venv"]


def test_package_step_passes_when_everything_is_installed():
    if shutil.which("dpkg-query") is None:
        pytest.skip("not a Debian system")
    proc = subprocess.run(["bash", str(DEPS), "test"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "are installed" in proc.stdout


def test_without_root_it_prints_the_exact_apt_line_and_stops():
    if os.getuid() != 0 or shutil.which("setpriv") is None or shutil.which("dpkg-query") is None:
        pytest.skip("needs root (to drop to nobody) on Debian")
    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)
        listing = folder / "packages.txt"
        listing.write_text("python3-venv  demo test\ndm-hpc-no-such-package  test  # a comment\n")
        listing.chmod(0o644)
        with open(DEPS) as script:
            proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                   "bash", "-s", "test"], stdin=script, capture_output=True, text=True,
                                  env={"PATH": os.environ["PATH"], "DM_DEBIAN_PACKAGES": str(listing)})
    finally:
        shutil.rmtree(folder)
    assert proc.returncode == 1
    assert "  apt-get update && apt-get install -y --no-install-recommends dm-hpc-no-such-package" \
        in proc.stderr.splitlines()
