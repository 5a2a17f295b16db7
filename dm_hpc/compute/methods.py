"""The calculator registry: methods (emt, gpaw, qe, chgnet) read from ``configs/calculators.yaml``.

A :class:`Method` says its fidelity label, the elements it can describe, its default settings
and a cost estimate in core-seconds as a function of the atom count. The code behind a method
is a backend (see ``backends.py``) looked up by the method's ``code``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from dm_hpc.data import ELEMENTS, Composition
from dm_hpc.data.elements import atomic_number
from dm_hpc.data.vocabulary import closest_name

#: What the calculation recipe derives from its relaxed cell (``calculation.calculate``); kept
#: with the registry so that asking what a method delivers builds no structure code.
CALCULATED_PROPERTIES = ("energy_per_atom", "mixing_energy", "lattice_parameter", "volume_per_atom",
                         "density", "bulk_modulus")

_REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"

#: Properties the recipe derives from a relaxed cell (``calculation.derive_properties``); the
#: analytic ones (``descriptors.ANALYTIC_PROPERTIES``) come from the composition alone.
CALCULATED_PROPERTIES = ("energy_per_atom", "mixing_energy", "lattice_parameter", "volume_per_atom",
                         "density", "bulk_modulus")

#: Atoms assumed when a method's cost model needs a cell size before the structure exists
#: (the acquisition's cost per fidelity and the runners' expected task duration).
TYPICAL_ATOMS = 16


def config_dir() -> Path:
    """Folder holding ``calculators.yaml`` and ``pseudopotentials.yaml`` (``DM_HPC_CONFIG_DIR``
    overrides the repository's ``configs/``)."""
    return Path(os.environ.get("DM_HPC_CONFIG_DIR", _REPO_CONFIGS))


@cache
def _load_yaml(path: str) -> dict[str, Any]:
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def calculators_config() -> dict[str, Any]:
    """The parsed calculators file (``DM_HPC_CALCULATORS`` overrides its path)."""
    return _load_yaml(os.environ.get("DM_HPC_CALCULATORS", str(config_dir() / "calculators.yaml")))


def pseudopotentials_config() -> dict[str, Any]:
    """The parsed QE pseudopotential map (``DM_HPC_PSEUDOPOTENTIALS`` overrides its path)."""
    return _load_yaml(os.environ.get("DM_HPC_PSEUDOPOTENTIALS", str(config_dir() / "pseudopotentials.yaml")))


class UnknownMethodError(KeyError):
    """A method name that is not in the registry."""


@dataclass(frozen=True)
class CostModel:
    """Core-seconds of one calculation on ``n`` atoms: ``c0 + c1 * n ** power``."""

    c0: float = 1.0
    c1: float = 1.0
    power: float = 1.0

    def __call__(self, n_atoms: int) -> float:
        return self.c0 + self.c1 * float(n_atoms) ** self.power


@dataclass(frozen=True)
class Method:
    """One calculation method of the registry.

    ``settings`` are the method's defaults (common settings merged in); a task may override
    any of them. ``fidelity`` is the label the acquisition groups methods by.
    """

    name: str
    code: str
    fidelity: str
    description: str
    element_rule: Any
    cost: CostModel
    settings: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def elements(self) -> frozenset[str]:
        """Elements this method can describe (with its default settings)."""
        return self.elements_for(self.settings)

    def elements_for(self, settings: Mapping[str, Any]) -> frozenset[str]:
        """Elements this method can describe with ``settings`` (QE: depends on the functional)."""
        rule = self.element_rule
        if isinstance(rule, list):
            return frozenset(rule)
        if rule == "all":
            max_z = int(self.options.get("max_z", len(ELEMENTS)))
            return frozenset(e for e in ELEMENTS if atomic_number(e) <= max_z)
        if rule == "setups":
            return _gpaw_setup_elements(str(settings.get("xc", "PBE")))
        if rule == "pseudopotentials":
            sets = pseudopotentials_config().get("sets", {})
            return frozenset(sets.get(str(settings.get("xc", "pbe")).lower(), {}))
        raise ValueError(f"method {self.name}: unknown elements rule {rule!r}")

    def unsupported(self, composition: Composition | Iterable[str],
                    settings: Mapping[str, Any] | None = None) -> list[str]:
        """Elements of ``composition`` this method cannot describe (sorted)."""
        els = composition.elements if isinstance(composition, Composition) else list(composition)
        known = self.elements_for(self.merged_settings(settings))
        return sorted(e for e in els if e not in known)

    def supports(self, composition: Composition | Iterable[str]) -> bool:
        """True when every element of ``composition`` is supported (default settings)."""
        return not self.unsupported(composition)

    @property
    def properties(self) -> tuple[str, ...]:
        """Vocabulary properties this method derives: the recipe's calculated and analytic ones,
        or the ``properties`` list its registry entry gives (a method that derives fewer)."""
        from dm_hpc.compute.descriptors import ANALYTIC_PROPERTIES

        everything = CALCULATED_PROPERTIES + tuple(ANALYTIC_PROPERTIES)
        listed = self.options.get("properties")
        return everything if listed is None else tuple(p for p in everything if p in listed)

    def cost_core_seconds(self, n_atoms: int) -> float:
        """Estimated core-seconds of a full calculation (relax + static) on ``n_atoms`` atoms."""
        return self.cost(n_atoms)

    def merged_settings(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Default settings with ``overrides`` applied (unknown keys are rejected)."""
        out = dict(self.settings)
        for key, value in dict(overrides or {}).items():
            if key not in out:
                raise ValueError(f"method {self.name} has no setting {key!r} "
                                 f"(known: {', '.join(sorted(out))})")
            out[key] = _typed_like(self.name, key, out[key], value)
        for key, value in out.items():  # the registry's own defaults too (a site's calculators.yaml)
            _in_range(self.name, key, value)
        return out


class SettingError(ValueError):
    """A method setting outside its range (``SETTING_RANGES``): ``key`` and ``detail`` let the
    campaign check write ``fidelities.<name>.settings.<key>: <detail>``."""

    def __init__(self, method: str, key: str, detail: str):
        super().__init__(f"method {method}: setting {key}: {detail}")
        self.method, self.key, self.detail = method, key, detail


@dataclass(frozen=True)
class SettingRange:
    """Valid values of a numeric setting: from ``low`` (excluded when ``low_open``) to ``high``
    (None: no bound), a whole number when ``whole``; ``why`` says what a value outside breaks."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    whole: bool = False
    why: str = ""

    def __str__(self) -> str:
        parts = [] if self.low is None else [f"{'above' if self.low_open else 'at least'} {self.low:g}"]
        parts += [] if self.high is None else [f"at most {self.high:g}"]
        return ", ".join((["a whole number"] if self.whole else []) + parts)

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of range (None: it is in range)."""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            said = f"is not above {self.low:g}" if self.low_open else f"is below {self.low:g}"
        elif self.high is not None and value > self.high:
            said = f"is above {self.high:g}"
        else:
            return None
        return f"{value!r} {said} ({self.why}; allowed: {self})"


#: The valid range of every numeric setting of the registry's methods, by name (the same setting
#: means the same thing in every method; defaults are in ``configs/calculators.yaml``). Checked by
#: ``Method.merged_settings``: at ``validate`` (``preflight.problems``), in ``calculate()`` and in
#: a worker's Maker task, so an out-of-range value is refused before any calculation is spent.
#: ``n_atoms`` (text ``auto`` or a cell size) is checked against the cell sizes where it is used.
SETTING_RANGES: dict[str, SettingRange] = {
    # structure and relaxation (common to every method)
    "composition_tolerance": SettingRange(0, 1, why="a difference of atomic fractions lies between 0 and 1"),
    "relax_fmax": SettingRange(0, low_open=True, why="no relaxation reaches a force threshold of 0 eV/A or less"),
    "relax_steps": SettingRange(1, whole=True, why="0 steps ends every relaxation unconverged"),
    "eos_points": SettingRange(4, whole=True, why="an equation-of-state fit has 4 parameters, so it needs "
                                                  "at least 4 volumes"),
    "eos_strain": SettingRange(0, 0.2, low_open=True,
                               why="a strain of 0 repeats one volume and fits a nonsense bulk modulus; beyond 0.2 "
                                   "in lattice parameter the cells lie too far from equilibrium to fit"),
    "round_digits": SettingRange(1, 15, whole=True, why="0 digits rounds every value to its power of ten; a float "
                                                        "holds no more than 15 significant digits"),
    # electronic structure (gpaw, qe)
    "scf_max_iter": SettingRange(1, whole=True, why="an SCF cycle needs at least one iteration"),
    "ecut_ev": SettingRange(0, low_open=True, why="a plane-wave cutoff of 0 eV or less holds no plane wave"),
    "ecutwfc_ry": SettingRange(0, low_open=True, why="a plane-wave cutoff of 0 Ry or less holds no plane wave"),
    "ecutrho_ry": SettingRange(0, low_open=True, why="a density cutoff of 0 Ry or less holds no plane wave"),
    "kpoint_density": SettingRange(0, why="0 is the Gamma point alone; a density cannot be negative"),
    "smearing_ev": SettingRange(0, why="a negative Fermi-Dirac width means nothing; 0 is fixed occupations"),
    "degauss_ry": SettingRange(0, low_open=True, why="pw.x is always asked for smearing occupations, which need a "
                                                     "width above 0"),
    "conv_thr_ry": SettingRange(0, low_open=True, why="no SCF reaches an energy threshold of 0 or less"),
    "press_conv_thr_kbar": SettingRange(0, low_open=True, why="no vc-relax reaches a pressure threshold of 0 or "
                                                              "less"),
}

#: settings that count something (steps, points, digits): whole numbers whatever their default
#: looks like; other numeric settings (a cutoff of 350 eV) take any number
COUNT_SETTINGS = frozenset(key for key, rule in SETTING_RANGES.items() if rule.whole)


def _in_range(method: str, key: str, value: Any) -> None:
    """Raise ``SettingError`` when ``value`` of ``key`` lies outside ``SETTING_RANGES``."""
    rule = SETTING_RANGES.get(key)
    if rule is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    said = rule.problem(value)
    if said:
        raise SettingError(method, key, said)


def _typed_like(method: str, key: str, default: Any, value: Any) -> Any:
    """``value`` of a setting whose default is ``default``, of the same kind: a number for a number
    (a whole number for a count, ``COUNT_SETTINGS``; "1e9", text to YAML, is a number), a yes/no
    for a flag; anything for a text (``n_atoms: auto`` also takes a number, checked where it is
    used). A number given as a number is kept as given (the settings hash stays what it was).
    ``--set n_atoms=abc`` ended in a traceback, ``eos_points=abc`` was stored unused."""
    def bad(kind: str) -> ValueError:
        return ValueError(f"method {method}: setting {key}={value!r}: expected {kind} (default {default!r})")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if not isinstance(default, (int, float)):
        return value
    if isinstance(value, bool):
        raise bad("a number")
    number = value
    if not isinstance(value, (int, float)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad("a whole number" if key in COUNT_SETTINGS else "a number") from None
        if number.is_integer() and isinstance(default, int):
            number = int(number)
    if not math.isfinite(number):
        raise bad("a finite number")
    if key in COUNT_SETTINGS:
        if float(number) != int(number):
            raise bad("a whole number")
        return int(number)
    return number


def _gpaw_setup_elements(xc: str) -> frozenset[str]:
    try:
        import gpaw_data  # the wheel that ships GPAW's PAW setups
    except ImportError:
        return frozenset()
    folder = Path(gpaw_data.__file__).parent / "setups"
    found = {p.name.split(".")[0] for p in folder.glob(f"*.{xc}.gz")}
    return frozenset(e for e in found if e in ELEMENTS)


@cache
def _registry() -> dict[str, Method]:
    config = calculators_config()
    common = dict(config.get("common", {}))
    out = {}
    for name, spec in config.get("methods", {}).items():
        options = {k: v for k, v in spec.items() if k not in
                   ("code", "fidelity", "description", "elements", "cost", "settings")}
        out[name] = Method(
            name=name, code=spec["code"], fidelity=spec["fidelity"],
            description=spec.get("description", ""), element_rule=spec.get("elements", []),
            cost=CostModel(**spec.get("cost", {})),
            settings={**common, **dict(spec.get("settings") or {})}, options=options,
        )
    return out


def method_names() -> list[str]:
    """Names of all registered methods (installed or not)."""
    return list(_registry())


def get_method(name: str) -> Method:
    """The registered method called ``name`` (raises :class:`UnknownMethodError`)."""
    try:
        return _registry()[name]
    except KeyError:
        close = closest_name(str(name), method_names(), 0.6)
        meant = f"did you mean {close!r}? " if close else ""
        raise UnknownMethodError(f"unknown method {name!r} ({meant}known: {', '.join(method_names())})") from None


def settings_hash(payload: Mapping[str, Any]) -> str:
    """Short sha256 of canonical JSON (floats written by ``repr``: equal settings, equal hash)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def round_sig(value: float, digits: int = 8) -> float:
    """``value`` rounded to ``digits`` significant digits (keeps float noise out of record ids)."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    return float(f"{value:.{digits}g}")
