"""Backends: how each code relaxes a structure and computes its energy.

``AseBackend`` drives any ASE calculator (EMT, GPAW, CHGNet) with an ASE optimiser on positions
and cell (``FrechetCellFilter``). ``EspressoBackend`` writes ``pw.x`` input through ASE's
``Espresso``/``EspressoProfile`` and lets ``pw.x`` relax itself (``vc-relax``: one process that
keeps its wavefunctions, far cheaper than restarting ``pw.x`` per optimiser step).

Every backend raises :class:`~dm_hpc.compute.failures.CalcError` with a typed kind and the tail
of the code's output; it never lets a code's own exception type escape.
"""
from __future__ import annotations

import importlib
import io
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase import Atoms

from dm_hpc.compute.failures import CalcError, FailureKind, tail_file, tail_text
from dm_hpc.compute.methods import Method, pseudopotentials_config


@dataclass
class Relaxed:
    """A relaxed structure, its total energy (eV) and the optimiser steps taken."""

    atoms: Atoms
    energy: float
    steps: int


class Backend:
    """What every code offers the calculation (see module docstring)."""

    code: str = ""
    #: True where the relaxation already ends with a fresh SCF at the final cell (pw.x vc-relax),
    #: so a separate static would repeat it.
    relax_ends_with_static = False

    def unavailable_reason(self) -> str | None:
        return None

    def version(self) -> str:
        return "unknown"

    def preflight(self, elements: list[str], settings: Mapping[str, Any]) -> None:
        """Raise CalcError for what can be known before running (e.g. missing pseudopotentials)."""

    def relax(self, atoms: Atoms, settings: Mapping[str, Any], workdir: Path, cores: int) -> Relaxed:
        raise NotImplementedError

    def static(self, atoms: Atoms, settings: Mapping[str, Any], workdir: Path, cores: int) -> float:
        raise NotImplementedError


# --------------------------------------------------------------------------- ASE calculators
class AseBackend(Backend):
    """An ASE calculator relaxed by BFGS on a ``FrechetCellFilter`` (positions and cell)."""

    #: The Python package that provides the calculator (its ``__version__`` is the code's
    #: version) and the dm-hpc extra that installs it (None: a dependency of dm-hpc itself).
    package = "ase"
    extra: str | None = None

    def unavailable_reason(self) -> str | None:
        try:
            importlib.import_module(self.package)
        except ImportError:
            return f"{self.package} is not installed; pip install 'dm-hpc[{self.extra}]'"
        return None

    def version(self) -> str:
        return importlib.import_module(self.package).__version__

    def make_calculator(self, atoms: Atoms, settings: Mapping[str, Any], workdir: Path, cores: int):
        raise NotImplementedError

    def output_tail(self, workdir: Path) -> str:
        return ""

    def _energy(self, atoms: Atoms, workdir: Path) -> float:
        try:
            return float(atoms.get_potential_energy())
        except CalcError:
            raise
        except Exception as exc:  # codes raise their own types: classify, keep the output
            raise self.classify(exc, workdir) from exc

    def classify(self, exc: Exception, workdir: Path) -> CalcError:
        return CalcError(FailureKind.code_died, f"{type(exc).__name__}: {exc}", self.output_tail(workdir))

    def relax(self, atoms: Atoms, settings: Mapping[str, Any], workdir: Path, cores: int) -> Relaxed:
        from ase.filters import FrechetCellFilter
        from ase.optimize import BFGS

        atoms = atoms.copy()
        atoms.calc = self.make_calculator(atoms, settings, workdir, cores)
        log = io.StringIO()
        opt = BFGS(FrechetCellFilter(atoms), logfile=log)
        steps = int(settings["relax_steps"])
        try:
            converged = opt.run(fmax=float(settings["relax_fmax"]), steps=steps)
        except Exception as exc:
            raise self.classify(exc, workdir) from exc
        if not converged:
            raise CalcError(FailureKind.relax_step_limit,
                            f"relaxation not converged to fmax={settings['relax_fmax']} eV/A "
                            f"within {steps} steps", tail_text(log.getvalue()))
        energy = self._energy(atoms, workdir)
        relaxed = atoms.copy()
        return Relaxed(relaxed, energy, int(opt.nsteps))

    def static(self, atoms: Atoms, settings: Mapping[str, Any], workdir: Path, cores: int) -> float:
        atoms = atoms.copy()
        atoms.calc = self.make_calculator(atoms, settings, workdir, cores)
        return self._energy(atoms, workdir)


class EmtBackend(AseBackend):
    code = "ase-emt"

    def make_calculator(self, atoms, settings, workdir, cores):
        from ase.calculators.emt import EMT

        return EMT()


def kpoint_mesh(atoms: Atoms, density: float) -> tuple[int, int, int]:
    """Monkhorst-Pack mesh for ``density`` points per 2*pi/angstrom (ASE's convention), >= 1."""
    from ase.calculators.calculator import kptdensity2monkhorstpack

    return tuple(int(k) for k in kptdensity2monkhorstpack(atoms, kptdensity=density, even=False))


def _initial_magmoms(atoms: Atoms) -> list[float]:
    from ase.data import atomic_numbers, reference_states

    out = []
    for s in atoms.get_chemical_symbols():
        ref = reference_states[atomic_numbers[s]] or {}
        out.append(float(ref.get("magmom_per_atom", 0.6)))
    return out


class GpawBackend(AseBackend):
    """GPAW plane waves. Under ``gpaw python`` with N MPI ranks GPAW parallelises itself."""

    code = "gpaw"
    package = "gpaw"
    extra = "dft"

    def make_calculator(self, atoms, settings, workdir, cores):
        from gpaw import GPAW, PW, FermiDirac

        if settings.get("spin"):
            atoms.set_initial_magnetic_moments(_initial_magmoms(atoms))
        workdir.mkdir(parents=True, exist_ok=True)
        return GPAW(mode=PW(float(settings["ecut_ev"])), xc=str(settings["xc"]),
                    kpts={"size": kpoint_mesh(atoms, float(settings["kpoint_density"])), "gamma": True},
                    occupations=FermiDirac(float(settings["smearing_ev"])),
                    spinpol=bool(settings.get("spin")), maxiter=int(settings["scf_max_iter"]),
                    txt=str(workdir / "gpaw.txt"))

    def output_tail(self, workdir: Path) -> str:
        return tail_file(workdir / "gpaw.txt")

    def classify(self, exc: Exception, workdir: Path) -> CalcError:
        from gpaw import KohnShamConvergenceError

        if isinstance(exc, KohnShamConvergenceError):
            return CalcError(FailureKind.scf_not_converged, f"GPAW SCF not converged: {exc}",
                             self.output_tail(workdir))
        return super().classify(exc, workdir)


_CHGNET_MODEL = None


class ChgnetBackend(AseBackend):
    """CHGNet (optional extra ``mlip``); the model loads once per process."""

    code = "chgnet"
    package = "chgnet"
    extra = "mlip"

    def make_calculator(self, atoms, settings, workdir, cores):
        global _CHGNET_MODEL
        from chgnet.model.dynamics import CHGNetCalculator

        if _CHGNET_MODEL is None:
            _CHGNET_MODEL = CHGNetCalculator(use_device=mlip_device())
        return _CHGNET_MODEL


def mlip_device() -> str:
    """``cuda`` when the job was given a GPU (Slurm sets CUDA_VISIBLE_DEVICES to it), else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- Quantum ESPRESSO
def pseudo_dir() -> Path:
    """Pseudopotential folder: DM_HPC_PSEUDO_DIR, ESPRESSO_PSEUDO, else the map's pseudo_dir."""
    env = os.environ.get("DM_HPC_PSEUDO_DIR") or os.environ.get("ESPRESSO_PSEUDO")
    return Path(env or pseudopotentials_config().get("pseudo_dir", "/usr/share/espresso/pseudo"))


def mpi_command(launcher: list[str], cores: int) -> list[str]:
    """``launcher`` with ``{cores}`` filled in; Open MPI refuses root without its flag."""
    argv = [str(a).format(cores=cores) for a in launcher]
    if os.geteuid() == 0 and Path(argv[0]).name in ("mpirun", "mpiexec", "orterun"):
        argv.insert(1, "--allow-run-as-root")
    return argv


class EspressoBackend(Backend):
    code = "quantum-espresso"
    relax_ends_with_static = True
    _version = "unknown"

    def unavailable_reason(self) -> str | None:
        return None if shutil.which("pw.x") else "pw.x not found on PATH (Debian: apt install quantum-espresso)"

    def version(self) -> str:
        return self._version

    def pseudopotentials(self, elements: list[str], settings: Mapping[str, Any]) -> dict[str, str]:
        xc = str(settings.get("xc", "pbe")).lower()
        table = pseudopotentials_config().get("sets", {}).get(xc, {})
        missing = [e for e in elements if e not in table]
        if missing:
            raise CalcError(FailureKind.missing_pseudopotential,
                            f"no {xc} pseudopotential for {', '.join(missing)} in pseudopotentials.yaml")
        folder = pseudo_dir()
        absent = [table[e] for e in elements if not (folder / table[e]).is_file()]
        if absent:
            raise CalcError(FailureKind.missing_pseudopotential,
                            f"pseudopotential file(s) not found in {folder}: {', '.join(absent)}")
        return {e: table[e] for e in elements}

    def preflight(self, elements, settings):
        self.pseudopotentials(elements, settings)

    def _run(self, atoms: Atoms, calculation: str, settings, workdir: Path, cores: int) -> tuple[Atoms, float, int]:
        from ase.calculators.espresso import Espresso, EspressoProfile
        from ase.io import read

        symbols = sorted(set(atoms.get_chemical_symbols()))
        pseudos = self.pseudopotentials(symbols, settings)
        command = ["pw.x"]
        if cores > 1:
            # k-point pools: small cells have many k-points and few plane waves, so pools scale
            # far better than splitting the FFT grid
            # the job's own launcher when its script sets one (site layout), else the setting's
            job_launcher = os.environ.get("DM_HPC_MPI_LAUNCHER")
            launcher = shlex.split(job_launcher) if job_launcher else mpi_command(
                list(settings["mpi_launcher"]), cores)
            command = launcher + command + ["-nk", str(cores)]
        system: dict[str, Any] = {
            "ecutwfc": float(settings["ecutwfc_ry"]), "ecutrho": float(settings["ecutrho_ry"]),
            "occupations": "smearing", "smearing": str(settings["smearing"]),
            "degauss": float(settings["degauss_ry"]),
        }
        atoms = atoms.copy()
        if settings.get("spin"):
            system["nspin"] = 2
            atoms.set_initial_magnetic_moments(_initial_magmoms(atoms))
        input_data = {
            "control": {"calculation": calculation, "tprnfor": True, "tstress": True,
                        "nstep": int(settings["relax_steps"]), "outdir": "./qe-tmp", "disk_io": "low"},
            "system": system,
            "electrons": {"conv_thr": float(settings["conv_thr_ry"]),
                          "electron_maxstep": int(settings["scf_max_iter"])},
            "cell": {"press_conv_thr": float(settings["press_conv_thr_kbar"])},
        }
        workdir.mkdir(parents=True, exist_ok=True)
        # shlex-free argv: EspressoProfile splits a string, so pass the list joined only of our
        # own tokens (no user text reaches this command line).
        profile = EspressoProfile(command=" ".join(command), pseudo_dir=str(pseudo_dir()))
        atoms.calc = Espresso(profile=profile, directory=str(workdir), pseudopotentials=pseudos,
                              kpts=kpoint_mesh(atoms, float(settings["kpoint_density"])),
                              input_data=input_data)
        out, err = workdir / "espresso.pwo", workdir / "espresso.err"
        died = None
        try:
            atoms.calc.calculate(atoms, ["energy"], [])
        except subprocess.CalledProcessError as exc:
            died = f"pw.x exited with status {exc.returncode}"
        except Exception as exc:  # ASE could not parse what pw.x wrote
            died = f"pw.x output unreadable: {type(exc).__name__}: {exc}"
        text = out.read_text(errors="replace") if out.exists() else ""
        tail = tail_text(text + ("\n" + tail_file(err) if err.exists() and err.stat().st_size else ""))
        if "Program PWSCF" in text:
            self._version = text.split("Program PWSCF", 1)[1].split()[0].lstrip("v.")
        if "convergence NOT achieved" in text:
            line = _line_with(text, "convergence NOT achieved")
            raise CalcError(FailureKind.scf_not_converged,
                            f"pw.x SCF not converged within {settings['scf_max_iter']} iterations ({line})", tail)
        if calculation == "vc-relax" and "bfgs converged" not in text and (
                "maximum number of steps" in text or "number of steps exceeded" in text or died is None):
            raise CalcError(FailureKind.relax_step_limit,
                            f"pw.x vc-relax not converged within nstep={settings['relax_steps']}", tail)
        if died:
            error = _line_with(text, "Error in routine", after=1)
            raise CalcError(FailureKind.code_died, f"{died}: {error}" if error else died, tail)
        final = read(out, index=-1, format="espresso-out")
        steps = text.count("\n!") if calculation == "vc-relax" else 1
        return final, float(final.get_potential_energy()), steps

    def relax(self, atoms, settings, workdir, cores):
        final, energy, steps = self._run(atoms, "vc-relax", settings, workdir, cores)
        final.calc = None
        return Relaxed(final, energy, steps)

    def static(self, atoms, settings, workdir, cores):
        return self._run(atoms, "scf", settings, workdir, cores)[1]


def _line_with(text: str, marker: str, after: int = 0) -> str:
    """The first line holding ``marker`` (and ``after`` lines more), stripped; '' if none."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if marker in line:
            return " ".join(x.strip() for x in lines[i:i + 1 + after])
    return ""


_BACKENDS: dict[str, type[Backend]] = {
    "ase-emt": EmtBackend, "gpaw": GpawBackend, "quantum-espresso": EspressoBackend, "chgnet": ChgnetBackend,
}
_INSTANCES: dict[str, Backend] = {}


def backend_for(method: Method) -> Backend:
    """The (per-process) backend object for ``method.code``."""
    if method.code not in _BACKENDS:
        raise ValueError(f"method {method.name}: no backend for code {method.code!r}")
    if method.code not in _INSTANCES:
        _INSTANCES[method.code] = _BACKENDS[method.code]()
    return _INSTANCES[method.code]


def unavailable_reason(method: Method) -> str | None:
    """None when ``method``'s code can run here, else why not (a missing executable, setups...)."""
    return backend_for(method).unavailable_reason()
