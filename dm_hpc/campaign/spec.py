"""The campaign file: one YAML that says what to optimise, where, with what, and for how long.

Validated once, here, at the boundary (BayBE's habit); everything inside trusts the typed
``CampaignSpec``. ``load_campaign`` turns every problem into a ``CampaignError`` that names the
file, the field and what was expected -- never a traceback.
"""
from __future__ import annotations

import enum
import json
import math
import os
import re
import types
import typing
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from dm_hpc.acquire.points import MIN_SEPARATION
from dm_hpc.data import canonical_unit, is_element, readable_unit, to_canonical, unknown_element
from dm_hpc.data import vocabulary
from dm_hpc.data.vocabulary import UnitError, UnknownPropertyError
from dm_hpc.learn import SURROGATE_KINDS

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")  # use fullmatch: "$" passes a final newline
_LAB_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")  # a lab's name: any one line of text
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*$")
#: The durations of a fidelity and of the budget (``parse_duration``), by field name.
FIDELITY_DURATIONS = ("walltime", "turnaround")
BUDGET_DURATIONS = ("wall_time",)


class CampaignError(ValueError):
    """A campaign file that cannot be used; the message names file and field."""


class CampaignPathWarning(UserWarning):
    """A relative path found only where the working folder, not the campaign file, puts it."""


class CampaignDurationWarning(UserWarning):
    """A duration written in a campaign file as a bare number (read as seconds)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_duration(value: str | float | int) -> float:
    """``"90s"``, ``"5 min"``, ``"2h"``, ``"3d"`` or a number of seconds -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"a duration must be a finite number of seconds > 0, not {value!r}")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 5m, 2h, 3d)")
    factor = {"s": 1, None: 1, "m": 60, "min": 60, "h": 3600, "d": 86400}[m.group(2)]
    if float(m.group(1)) <= 0:
        raise ValueError(f"a duration must be > 0, not {value!r}")
    return float(m.group(1)) * factor


class BoundSpec(Strict):
    """A process parameter's range, in the given unit (converted to canonical)."""

    low: float
    high: float
    unit: str | None = None
    #: The unit the campaign author wrote (lab sheets show values in it); set on loading.
    written_unit: str | None = None
    #: The lab's step for this parameter, in ``written_unit`` (sheets round to it; default 4
    #: significant digits).
    precision: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> BoundSpec:
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        return self


class SpaceSpec(Strict):
    """The design space: element bounds (atomic fractions) and process boxes, or a pool."""

    elements: dict[str, tuple[float, float]] = Field(default_factory=dict)
    max_elements: int | None = Field(default=None, ge=1)
    min_elements: int = Field(default=1, ge=1)
    excluded: list[str] = Field(default_factory=list)
    process: dict[str, BoundSpec] = Field(default_factory=dict)
    pool: Path | None = None
    pool_map: Path | None = None

    @field_validator("elements")
    @classmethod
    def _elements(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for el, (lo, hi) in v.items():
            if not is_element(el):
                raise ValueError(unknown_element(el))
            if not 0 <= lo <= hi <= 1:
                raise ValueError(f"{el}: bounds must satisfy 0 <= low <= high <= 1, got [{lo}, {hi}]")
        return v

    @field_validator("process")
    @classmethod
    def _process(cls, v: dict[str, BoundSpec]) -> dict[str, BoundSpec]:
        out = {}
        for name, b in v.items():
            step = b.precision
            if step is not None and math.ceil(b.low / step - 1e-9) * step > b.high + 1e-9 * max(1.0, step):
                # a sheet could then only show a value outside the box (review: precision 300 on 425-875)
                raise ValueError(f"{name}: precision {step:g} leaves no value on its grid between low {b.low:g} and "
                                 f"high {b.high:g}{' ' + b.unit if b.unit else ''}: give a step that fits the box")
            unit = canonical_unit(name, kind="process_parameter")
            lo = to_canonical(name, b.low, b.unit, kind="process_parameter")
            hi = to_canonical(name, b.high, b.unit, kind="process_parameter")
            for value in (lo, hi):  # a box below 0 K would put on the lab's sheet what ingest refuses
                vocabulary.check_range(name, value, kind="process_parameter")
            out[name] = BoundSpec(low=lo, high=hi, unit=unit, written_unit=b.written_unit or b.unit or unit,
                                  precision=b.precision)
        return out

    @field_validator("excluded")
    @classmethod
    def _excluded(cls, v: list[str]) -> list[str]:
        unknown = [el for el in v if not is_element(el)]
        if unknown:
            raise ValueError(unknown_element(unknown[0]))  # the location says excluded
        return v

    @model_validator(mode="after")
    def _something(self) -> SpaceSpec:
        if not self.elements and self.pool is None:
            raise ValueError("give elements with bounds, or a candidate pool file")
        # a pool's rows are the candidates as they are (strategy.design_space reads nothing else):
        # an exclusion or a process box beside one validated, and the lab got Ni and no temperature
        beside = [f for f in ("elements", "max_elements", "min_elements", "excluded", "process") if self.pool is not None
                  and getattr(self, f) != type(self).model_fields[f].get_default(call_default_factory=True)]
        if beside:
            raise ValueError(f"{', '.join(beside)}: a candidate pool gives the candidates as "
                             "they are, and these shape an element space; remove them (and the rows you do not want "
                             "from the pool file), or the pool")
        if self.elements:
            from dm_hpc.acquire.space import DesignSpace  # the one feasibility check of a space

            DesignSpace(elements=dict(self.elements), max_elements=self.max_elements,
                        excluded=frozenset(self.excluded),
                        process={k: (b.low, b.high) for k, b in self.process.items()},
                        min_elements=self.min_elements)
        return self


class Goal(str, enum.Enum):
    min = "min"
    max = "max"


class ObjectiveSpec(Strict):
    """A property to minimise or maximise (values in ``unit`` or the canonical unit).

    An objective the composition decides (``raw_material_cost``, ``mixing_entropy``,
    ``size_mismatch``, ``valence_electron_concentration``) is ranked by its computed value at every
    candidate (the price table, the element data), not by a model's guess of it; where an element
    of the space has no value (no price), the model's."""

    property: str
    goal: Goal
    unit: str | None = None
    target: float | None = None  # stop when the best value reaches it (in ``unit``)

    @model_validator(mode="after")
    def _known(self) -> ObjectiveSpec:
        canonical_unit(self.property)
        if self.unit is not None and self.target is not None:
            to_canonical(self.property, self.target, self.unit)
        elif self.unit is not None:
            to_canonical(self.property, 1.0, self.unit)
        if self.target is not None:  # a target no material can have (5000 g/cm3: kg/m3 typed) stops or never stops a run
            try:
                vocabulary.check_range(self.property, self.canonical_target)
            except ValueError as exc:
                raise ValueError(f"target: {str(exc).split('; ')[0]}") from None  # the rest is a hint for sheet headers
        return self

    @property
    def canonical_target(self) -> float | None:
        return None if self.target is None else to_canonical(self.property, self.target, self.unit)

    @property
    def shown_unit(self) -> str:
        """The unit people read this objective's values in: the one the author wrote, else the
        canonical one (the store, the model and the journal stay canonical); in the readable
        form (``readable_unit``: g/cm^3 for a file's g/cm**3)."""
        return readable_unit(self.unit or canonical_unit(self.property))

    def shown(self, canonical: Any) -> Any:
        """Values in the canonical unit (a float or a numpy array, shape kept) in ``shown_unit``."""
        return vocabulary.from_canonical(self.property, self.unit)(canonical)

    def shown_spread(self, canonical: Any) -> Any:
        """A spread (standard deviation, RMSE; canonical unit) in ``shown_unit`` (``spread_in``)."""
        return spread_in(self.shown, canonical)


def spread_in(shown: Any, canonical: Any) -> Any:
    """A spread (standard deviation, RMSE; canonical unit) through ``shown`` (canonical values ->
    a unit people read): the scale of the conversion only, since an offset (degC -> K) moves
    values, not their differences."""
    return abs(shown(canonical) - shown(0.0))


class ConstraintSpec(Strict):
    """An outcome constraint such as ``density <= 7 g/cm3`` (value converted to canonical).

    A constraint no value in the property's physical range can meet (``density <= -1 g/cm3``) is
    refused: the campaign would spend its budget on a model that can never be satisfied. A strict
    ``<`` or ``>`` in the string form is read as ``<=`` or ``>=`` (a constraint includes its bound),
    with a warning that says so. A constraint on a property the composition decides
    (``raw_material_cost``, ``mixing_entropy``, ``size_mismatch``, ``valence_electron_concentration``)
    holds exactly: no point that breaks it is ranked, calculated or sent to the lab, and one no
    composition of the space meets is refused at validate. One met only near a corner of the space
    (``valence_electron_concentration >= 10.9`` with six of ten elements: Cu0.99, five others at
    0.002) is planned there: the corner and points close around it are among the candidates."""

    property: str
    op: Literal["<=", ">="]
    value: float
    #: The unit the author wrote the bound in, where it is not the canonical one (``kg/m3``): a
    #: property that no objective names is shown in it (``CampaignSpec.shown_unit``); set on loading.
    written_unit: str | None = None

    @model_validator(mode="after")
    def _satisfiable(self) -> ConstraintSpec:
        t = vocabulary.term(self.property)
        low = t.minimum if t.minimum is not None else (0.0 if t.positive else None)
        if self.op == "<=" and low is not None and (self.value < low or (t.positive and self.value <= 0)):
            raise ValueError(f"constraint {self.property} <= {self.value:g} {t.unit} cannot be met: "
                             f"{self.property} is {'> 0' if t.positive else f'>= {low:g}'} {t.unit}")
        if self.op == ">=" and t.maximum is not None and self.value > t.maximum:
            raise ValueError(f"constraint {self.property} >= {self.value:g} {t.unit} cannot be met: "
                             f"{self.property} is <= {t.maximum:g} {t.unit}")
        if self.written_unit is not None:  # the mapping form may give one: every reader converts by it
            to_canonical(self.property, 1.0, self.written_unit)
        return self

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, str):
            from dm_hpc.acquire.inverse import parse_target  # the one target parser

            t = parse_target(data)
            written = None if vocabulary.same_unit(t.property, t.written) else t.written
            if t.op in ("<", ">"):  # a model's constraint has no strict form: said, not silently changed
                inclusive = t.op + "="
                warnings.warn(f"constraints: {data.strip()!r} is read as {t.property} {inclusive} "
                              f"{data.split(t.op, 1)[1].strip()} (a constraint includes its bound; write "
                              f"{inclusive} to say so)", UserWarning, stacklevel=2)
            return {"property": t.property, "op": {"<": "<=", ">": ">="}.get(t.op, t.op), "value": t.value,
                    "written_unit": written}
        return data


class FidelityKind(str, enum.Enum):
    calculation = "calculation"
    experiment = "experiment"


class FidelitySpec(Strict):
    """A way to obtain the objectives: a calculation method or the lab.

    Cost is in core-hours for calculations (``auto``: the method's own estimate) and in
    lab-days for experiments (``auto``: one lab-day); ``budget.core_hours_per_lab_day`` puts them
    on one scale. An experiment fidelity ``measures`` the properties it lists (default: every
    objective and constraint of the campaign); a calculation delivers what its method derives.
    ``maker``: a jobflow Maker that computes instead of the built-in recipe (``method`` then
    gives the cell, the elements and the cost; it delivers the properties its ``outputs`` map;
    see ``dm_hpc.compute.makers``).
    """

    name: str
    kind: FidelityKind
    method: str | None = None
    #: a ``dm_hpc.compute.makers.MakerSpec``; typed ``Any`` so that the calculation code (ase,
    #: ...) is imported only when a campaign names a maker, not by every small command
    maker: Any = None
    settings: dict[str, Any] = Field(default_factory=dict)
    cost: float | Literal["auto"] = "auto"
    runner: str = "default"
    cores: int = Field(default=1, ge=1)
    walltime: float = 600.0
    batch_size: int = Field(default=8, ge=1)
    turnaround: float = 14 * 86400.0
    target: bool = False
    #: Offline benchmarking: answer the lab's sheets from this table of measurements (with
    #: ``emulate_map``, a column map), as a lab would, instead of waiting for a real lab.
    emulate_from: Path | None = None
    emulate_map: Path | None = None
    #: The lab's stated precision (atomic-fraction step): suggestions are rounded to it before
    #: they are compared, so two suggestions the lab would make alike are one experiment.
    precision: float | None = Field(default=None, gt=0, le=0.5)
    #: The properties this experiment measures (its sheet asks only these); default: the
    #: campaign's properties that a lab can measure (never computed-only ones, e.g. a cost).
    measures: list[str] | None = None

    @field_validator("measures")
    @classmethod
    def _measures(cls, v: list[str] | None) -> list[str] | None:
        from dm_hpc.data.vocabulary import term

        for name in v or []:
            canonical_unit(name)  # a vocabulary term (standard or declared)
            if term(name).computed_only:
                raise ValueError(f"{name!r} is computed from the composition, never measured by a lab")
        return v

    @property
    def lab_days(self) -> float:
        """Cost of one experiment in lab-days (``auto``: one)."""
        return 1.0 if self.cost == "auto" else float(self.cost)

    @field_validator("name", "runner", "method")
    @classmethod
    def _label(cls, v: str | None) -> str | None:
        # a calculation's name, method and runner name Slurm jobs and task folders: strict; a lab's
        # name is text for people (sheets escape it) but one line of it (checked in _method)
        if v is not None and not (_NAME.fullmatch(v) or _LAB_NAME.fullmatch(v)):
            raise ValueError(f"{v!r}: use 1-48 letters, digits, '_', '.', '-'")
        return v

    @field_validator("maker", mode="before")
    @classmethod
    def _maker(cls, v: Any) -> Any:
        if v is None:
            return None
        from dm_hpc.compute.makers import MakerSpec

        return v if isinstance(v, MakerSpec) else MakerSpec.model_validate(v)

    @field_validator("cost", mode="before")
    @classmethod
    def _cost(cls, v: Any, info: ValidationInfo) -> Any:
        # the fidelity choice divides information gain by this cost: 0 or below breaks it, and the
        # unit is the kind's, so "2 h" is said so here, not as pydantic's errors for each union member
        if v == "auto":
            return v
        try:
            cost = float(v) if not isinstance(v, bool) else math.nan
        except (TypeError, ValueError):
            cost = math.nan
        if not (math.isfinite(cost) and cost > 0):
            unit = {FidelityKind.calculation: "core-hours per calculation",
                    FidelityKind.experiment: "lab-days per experiment"}.get(
                info.data.get("kind"), "core-hours per calculation, lab-days per experiment")
            raise ValueError(f"a number > 0 without a unit ({unit}) or 'auto', not {v!r}")
        return cost

    @field_validator(*FIDELITY_DURATIONS, mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("walltime")
    @classmethod
    def _whole_seconds(cls, v: float) -> float:
        if v < 1:
            raise ValueError(f"walltime must be at least 1 s, not {v:g} s")
        return v

    @model_validator(mode="after")
    def _method(self) -> FidelitySpec:
        if self.kind == FidelityKind.calculation and not self.method:
            raise ValueError(f"calculation fidelity {self.name!r} needs a method (e.g. emt, gpaw, qe)")
        strict = [self.runner, self.method] + ([self.name] if self.kind == FidelityKind.calculation else [])
        for v in (x for x in strict if x is not None and not _NAME.fullmatch(x)):
            raise ValueError(f"{v!r}: use 1-48 letters, digits, '_', '.', '-' (it names Slurm jobs and folders)")
        if self.kind == FidelityKind.calculation and self.precision is not None:
            raise ValueError(f"calculation fidelity {self.name!r}: precision is the lab's (a calculation "
                             "is realised on its cell)")
        if self.kind == FidelityKind.calculation and self.measures is not None:
            raise ValueError(f"calculation fidelity {self.name!r}: measures is the lab's (a calculation "
                             f"delivers what its method derives)")
        if self.kind == FidelityKind.experiment and self.maker is not None:
            raise ValueError(f"experiment fidelity {self.name!r}: a maker is a calculation's")
        return self

    @property
    def record_method(self) -> str | None:
        """``provenance.method`` of the records this fidelity computes (a Maker's are its own)."""
        return self.maker.record_method(self.method) if self.maker is not None else self.method


class BudgetSpec(Strict):
    """Limits; the campaign stops at the first one reached. ``wall_time`` counts from the
    campaign's first start (time spent interrupted counts too, like a Slurm time limit)."""

    core_hours: float | None = Field(default=None, gt=0)
    calculations: int | None = Field(default=None, ge=1)
    lab_experiments: int | None = Field(default=None, ge=0)
    wall_time: float | None = None
    core_hours_per_lab_day: float = Field(default=1000.0, gt=0)

    @field_validator(*BUDGET_DURATIONS, mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)


class StoppingSpec(Strict):
    """Stopping rules besides the budget."""

    no_improvement_rounds: int | None = Field(default=None, ge=1)
    targets_met: bool = True
    #: Circuit breaker: this many consecutive failures of one kind on a fidelity stop it.
    max_consecutive_failures: int = Field(default=3, ge=1)


class RunnerKind(str, enum.Enum):
    local = "local"
    slurm = "slurm"
    dask = "dask"
    mpi = "mpi"


class RunnerSpec(Strict):
    """Where calculations run."""

    kind: RunnerKind = RunnerKind.local
    cores: int = Field(default=2, ge=1)
    max_in_flight: int = Field(default=4, ge=1)
    site: Path | None = None
    retries: int = Field(default=1, ge=0)


SurrogateKind = Literal[SURROGATE_KINDS]  # the campaign file's learning.surrogate


class LearningSpec(Strict):
    """Surrogate and acquisition settings (defaults are what the benchmarks support). With one
    objective the next points are chosen by the same surrogate fitted on the objective's
    Yeo-Johnson-warped values (an exact GP, one fidelity), with one length-scale shared by the
    inputs while the campaign has fewer than 10 points per input; predictions and intervals stay
    the reporting model's, in the property's units."""

    surrogate: SurrogateKind = "auto"
    initial_points: int = Field(default=6, ge=1)
    refit_every: int = Field(default=4, ge=1)
    batch_size: int = Field(default=4, ge=1)
    #: Smallest distance between two suggestions of one batch, or a suggestion and one in flight or
    #: awaited from the lab (Euclidean on atomic fractions, process scaled to [0, 1] by its bounds).
    batch_separation: float = Field(default=MIN_SEPARATION, ge=0, le=0.5)


class TransferSourceSpec(Strict):
    """One source of related data: a store query (records matching every filter given), a table
    file read through the sheet reader and filtered alike, or a model file (``model``: a standard
    model exported by ``dm-hpc models CAMPAIGN --export FILE``, whose predictions are the source)."""

    @property  # before the field ``property`` below, which hides the builtin in this class body
    def name(self) -> str:
        """How reports name the source: ``label``, else its filters."""
        if self.label:
            return self.label
        parts = [f"{k}={v}" for k, v in (("campaign", self.campaign), ("method", self.method), ("source", self.source))
                 if v is not None]
        parts += [f"elements={'-'.join(self.elements)}"] if self.elements else []
        parts += [f"table={self.table.name}"] if self.table is not None else []
        parts += [f"model={self.model.name}"] if self.model is not None else []
        return ",".join(parts)

    campaign: str | None = None
    method: str | None = None
    source: Literal["computed", "experimental"] | None = None
    elements: list[str] | None = None
    table: Path | None = None
    table_map: Path | None = None
    model: Path | None = None
    property: str | None = None
    label: str | None = None

    @field_validator("elements")
    @classmethod
    def _elements(cls, v: list[str] | None) -> list[str] | None:
        for el in v or ():
            if not is_element(el):
                raise ValueError(unknown_element(el))
        return v

    @field_validator("label", "campaign")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.fullmatch(v):
            raise ValueError(f"{v!r}: use 1-48 letters, digits, '_', '.', '-'")
        return v

    @field_validator("method")
    @classmethod
    def _method(cls, v: str | None) -> str | None:
        if v is not None and not _LAB_NAME.fullmatch(v):
            raise ValueError(f"{v!r}: a method name is one line of 1-64 characters")
        return v

    @model_validator(mode="after")
    def _selects(self) -> TransferSourceSpec:
        if all(v is None for v in (self.campaign, self.method, self.source, self.elements, self.table, self.model)):
            raise ValueError("a transfer source needs campaign, method, source, elements, table or model")
        if self.model is not None and any(v is not None for v in (self.campaign, self.method, self.source,
                                                                  self.elements, self.table)):
            raise ValueError("a model source takes no record filters (campaign, method, source, elements, table)")
        if self.table_map is not None and self.table is None:
            raise ValueError("table_map is given without a table")
        if self.property is not None:
            canonical_unit(self.property)  # an unknown property fails here, with "did you mean"
        return self


class TransferSpec(Strict):
    """Related data the campaign learns from beside its own (``dm_hpc.learn.transfer``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_: Annotated[list[TransferSourceSpec], Field(alias="from", min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> TransferSpec:
        names = [s.name for s in self.from_]
        if len(set(names)) != len(names):
            raise ValueError(f"transfer sources must differ (give each a label): {names}")
        return self


class TermSpec(Strict):
    """A campaign's own vocabulary term: its canonical unit (pint) and physical range there."""

    unit: str
    description: str = ""
    min: float | None = None
    max: float | None = None
    positive: bool = False


class VocabularySpec(Strict):
    """Properties and process parameters the standard vocabulary lacks (``ageing_ratio: {unit:
    dimensionless, min: 0}``); standard names cannot be redefined."""

    properties: dict[str, TermSpec] = Field(default_factory=dict)
    process_parameters: dict[str, TermSpec] = Field(default_factory=dict)

    def declare(self) -> None:
        """Make the terms known to the data standard (records, sheets, the store)."""
        for kind, terms in (("property", self.properties), ("process_parameter", self.process_parameters)):
            for name, t in terms.items():
                if not _NAME.match(name):
                    raise ValueError(f"vocabulary.{kind}: {name!r}: use 1-48 letters, digits, '_', '.', '-'")
                vocabulary.declare(name, t.unit, kind, t.description, t.min, t.max, t.positive)


class CampaignSpec(Strict):
    """A whole campaign (see ``campaigns/*.yaml`` and ``campaigns/schema.json``).

    ``store`` defaults to ``store`` inside the run folder (``workdir``, else ``runs/<name>``)."""

    name: str
    description: str = ""
    material_class: Literal["metal", "chemical", "ceramic", "fibre", "polymer", "other"] = "metal"
    vocabulary: VocabularySpec = Field(default_factory=VocabularySpec)
    #: None in the file: ``store`` in the run folder (filled in by ``_declare_and_default``)
    store: Path = Field(default=None, description="HDF5 store folder (default: the run folder's store)")
    workdir: Path | None = None
    #: numpy's random generator takes no negative seed: -1 validated, then run/suggest failed (review)
    seed: int = Field(default=0, ge=0)
    space: SpaceSpec
    objectives: Annotated[list[ObjectiveSpec], Field(min_length=1)]
    constraints: list[ConstraintSpec] = Field(default_factory=list)
    fidelities: Annotated[list[FidelitySpec], Field(min_length=1)]
    budget: BudgetSpec
    stopping: StoppingSpec = Field(default_factory=StoppingSpec)
    runner: RunnerSpec = Field(default_factory=RunnerSpec)
    learning: LearningSpec = Field(default_factory=LearningSpec)
    transfer: TransferSpec | None = None
    mode: Literal["optimise", "gaps"] = "optimise"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):  # fullmatch: "$" alone lets a final newline through
            raise ValueError(f"{v!r}: use 1-48 letters, digits, '_', '.', '-' (it names Slurm jobs and folders)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _declare_and_default(cls, data: Any) -> Any:
        """Declare the campaign's own terms before the fields that use them are checked, and
        put the store in the run folder when the file names none."""
        if not isinstance(data, dict):
            return data
        if data.get("vocabulary") is not None:
            VocabularySpec.model_validate(data["vocabulary"]).declare()
        if data.get("store") is None and isinstance(data.get("name"), str):
            run_dir = data.get("workdir") or f"runs/{data['name']}"
            data = {**data, "store": str(Path(str(run_dir)) / "store")}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> CampaignSpec:
        names = [f.name for f in self.fidelities]
        if len(set(names)) != len(names):
            raise ValueError(f"fidelity names must be unique: {names}")
        recorded: dict[str | None, str] = {}
        for f in self.calculations:  # a fidelity's records are known by their method alone (``record_method``)
            if (first := recorded.setdefault(f.record_method, f.name)) != f.name:
                raise ValueError(
                    f"fidelities {first!r} and {f.name!r} both store their records as method {f.record_method}, "
                    "so they could not be told apart (the run would compute one, and read the other's records as "
                    "its own); settings do not change the recorded method: keep one fidelity per method, or compute "
                    "the other with another method or Maker class")
        lab = self.lab
        if not self.calculations and lab is None:
            raise ValueError("at least one fidelity is needed: a calculation or the lab")
        if sum(f.kind == FidelityKind.experiment for f in self.fidelities) > 1:
            raise ValueError("at most one experiment fidelity (the lab)")
        if self.mode == "gaps" and not self.calculations:
            # gap filling proposes calculations only (``strategy.gap_filling``): a lab-only one
            # validated, then its first plan failed with "min() arg is an empty sequence"
            raise ValueError("mode: gaps fills the thin regions of the data with calculations, and this campaign has "
                             "none (only the lab): add a calculation fidelity, or use mode: optimise")
        props = [o.property for o in self.objectives]
        if len(set(props)) != len(props):
            raise ValueError(f"objective given twice: {props}")
        if sum(f.target for f in self.fidelities) > 1:
            raise ValueError("at most one fidelity can be the target")
        for prop in {c.property for c in self.constraints}:
            floor = max((c.value for c in self.constraints if c.property == prop and c.op == ">="), default=-math.inf)
            ceiling = min((c.value for c in self.constraints if c.property == prop and c.op == "<="), default=math.inf)
            if floor > ceiling:  # no material meets both: every suggestion would be infeasible
                raise ValueError(f"constraints on {prop} cannot all be met: >= {floor:g} and <= {ceiling:g}")
            try:  # the material class's own range (a metal is never below 0.5 g/cm3; ingest refuses it)
                term = vocabulary.term(prop)
            except vocabulary.UnknownPropertyError:
                continue
            low, high = term.bounds(self.material_class)
            if ceiling < low or floor > high:
                raise ValueError(f"constraint {prop} {'<= ' + format(ceiling, 'g') if ceiling < low else '>= ' + format(floor, 'g')} "
                                 f"{term.unit} cannot be met by a {self.material_class}: {prop} is "
                                 f"{term.range_text(self.material_class)}")
        if self.transfer is not None and len(self.properties) > 1:
            # the sources enter a model of one property (campaign.strategy); with more (a constraint
            # too) they would be named, validated and never used. Several fidelities are allowed:
            # the sources inform the model while the campaign's records come from one of them.
            extra = ("the other objectives" if len(self.objectives) > 1 and not self.constraints else
                     "the constraints" if len(self.objectives) == 1 else "the other objectives and the constraints")
            raise ValueError(f"transfer: sources inform a campaign of one property (objectives and constraints "
                             f"together); this one has {len(self.properties)} ({', '.join(self.properties)}): "
                             f"remove the transfer block, or {extra}")
        if self.transfer is not None and self.learning.surrogate not in ("auto", "gp") and len(self.fidelities) == 1:
            # (with several fidelities the kind is used once two are measured and the sources stay out)
            # the guard chooses among exact GPs (cold, multi-task, source as prior mean): another kind
            # validated and was then silently replaced (review)
            raise ValueError(f"transfer: the sources enter an exact GP that the guard chooses (cold, multi-task or "
                             f"a source as its prior mean); learning.surrogate: {self.learning.surrogate} would not "
                             "be used: remove it (auto) or the transfer block")
        for i, src in enumerate(self.transfer.from_ if self.transfer is not None else ()):
            if src.campaign == self.name:  # it would find nothing: a campaign's own records are its data
                raise ValueError(f"transfer.from[{i}]: campaign {self.name!r} is this campaign; its own records "
                                 "are its data already, a source is another campaign's (or a table, or a model)")
        b = self.budget
        if not self.calculations and b.lab_experiments == 0:  # "needs core_hours..." misled a lab-only one (review)
            raise ValueError("budget.lab_experiments: a lab-only campaign needs lab_experiments >= 1 "
                             "(0 would end it before its first experiment)")
        if b.core_hours is None and b.calculations is None and b.wall_time is None and not (
                not self.calculations and b.lab_experiments):
            raise ValueError("budget needs core_hours, calculations or wall_time (a campaign must end)")
        return self

    @property
    def run_dir(self) -> Path:
        """Where run folders, the journal, sheets and the report go."""
        return self.workdir or Path("runs") / self.name

    @property
    def calculations(self) -> list[FidelitySpec]:
        return [f for f in self.fidelities if f.kind == FidelityKind.calculation]

    @property
    def lab(self) -> FidelitySpec | None:
        return next((f for f in self.fidelities if f.kind == FidelityKind.experiment), None)

    def objective(self, prop: str) -> ObjectiveSpec | None:
        """The objective on property ``prop`` (None: ``prop`` is no objective)."""
        return next((o for o in self.objectives if o.property == prop), None)

    def shown_unit(self, name: str, kind: str = "property") -> str:
        """The unit people read ``name`` in, as the campaign's lab sheet heads it: a process
        parameter's as the file wrote its range (``degC``), an objective's as the file writes it
        (``ObjectiveSpec.shown_unit``), any other property's as the file wrote its first constraint
        that gives a unit other than the canonical one (``density <= 7000 kg/m3``: kg/m3); else
        canonical. The store, the model and the journal stay canonical. In the readable form
        (``readable_unit``)."""
        if kind == "process_parameter":
            bound = self.space.process.get(name)
            return readable_unit((bound.written_unit if bound else None) or canonical_unit(name, kind=kind))
        o = self.objective(name)
        if o is not None:
            return o.shown_unit
        written = next((c.written_unit for c in self.constraints if c.property == name and c.written_unit), None)
        return readable_unit(written or canonical_unit(name))

    def shown(self, name: str, canonical: Any, kind: str = "property") -> Any:
        """Values of ``name`` in its canonical unit (a float or a numpy array, shape kept) in
        ``shown_unit(name, kind)``."""
        return vocabulary.from_canonical(name, self.shown_unit(name, kind), kind)(canonical)

    def shown_spread(self, name: str, canonical: Any) -> Any:
        """A spread of property ``name`` (canonical unit) in ``shown_unit(name)`` (``spread_in``)."""
        return spread_in(lambda values: self.shown(name, values), canonical)

    @property
    def properties(self) -> list[str]:
        """Every property the campaign needs (objectives, then constraints)."""
        out = [o.property for o in self.objectives]
        return out + [c.property for c in self.constraints if c.property not in out]



def _strip(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` and ``X | None``: the model, list or dict a file's
    mapping is read into (the first such member of a union), else the annotation itself."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = next((a for a in members if isinstance(a, type) and issubclass(a, BaseModel)
                               or typing.get_origin(a) in (list, dict)), members[0])
        else:
            return annotation


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names a campaign file may write in the mapping that holds ``loc[-1]`` (a
    pydantic error location), as written (``transfer.from``); [] where that is no model."""
    node: Any = CampaignSpec
    for part in loc[:-1]:
        node = _strip(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = next((f for n, f in node.model_fields.items() if part in (n, f.alias)), None)
            if field is not None:
                node = field.annotation
            # else a union member's tag in the location (``function-after[...]``): stay
        elif typing.get_origin(node) in (list, dict):
            node = typing.get_args(node)[-1]
        else:
            return []
    node = _strip(node)
    if not (isinstance(node, type) and issubclass(node, BaseModel)):
        return []
    return [f.alias or n for n, f in node.model_fields.items()]


def _did_you_mean(word: Any, choices: list[str], cutoff: float) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``word``, or ``""``."""
    close = vocabulary.closest_name(word, choices, cutoff)
    return f" (did you mean {close!r}?)" if close else ""


_UNKNOWN_UNIT = re.compile(r"(property|process_parameter) '([^']+)': unknown unit '([^']*)'")


def _unit_hint(message: str) -> str:
    """``message`` with `` (did you mean 'GPa'?)`` after an unknown unit that a unit of the term's
    dimension spells but for letter case (``Gpa``, ``mev/atom``, ``degc``)."""
    m = _UNKNOWN_UNIT.search(message)
    if not m:
        return message
    from dm_hpc.data.units import case_spellings

    kind, name, unit = m.groups()
    fits = []
    for spelling in case_spellings(unit):
        try:
            to_canonical(name, 1.0, spelling, kind=kind)
            fits.append(spelling)
        except (UnitError, UnknownPropertyError, ValueError):
            continue
    hint = _did_you_mean(unit, fits, 0.0)
    return message[:m.end()] + hint + message[m.end():] if hint else message


def _format_errors(path: str, exc: ValidationError) -> str:
    lines = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "extra_forbidden":
            # a misspelt key: name the field meant, else the fields this mapping has
            fields = _fields_at(tuple(e["loc"]))
            hint = _did_you_mean(e["loc"][-1], fields, 0.6)
            msg = "unknown field" + (hint or (f" (check its spelling; fields here: {', '.join(fields)})"
                                              if fields else " (check its spelling)"))
        elif e["type"] in ("enum", "literal_error"):  # goal: maximise -> 'max'
            msg += _did_you_mean(e.get("input"), re.findall(r"'([^']*)'", e.get("ctx", {}).get("expected", "")), 0.5)
        else:  # unit: Gpa -> 'GPa'
            msg = _unit_hint(msg)
        lines.append(f"  {loc}: {msg}")
    return f"{path}: invalid campaign:\n" + "\n".join(lines)


#: Fields that name files or folders, as paths into the campaign's mapping (``*`` is every
#: fidelity). A ``runner.site`` without a suffix names a profile in ``configs/sites``, not a file.
PATH_FIELDS = (("store",), ("workdir",), ("space", "pool"), ("space", "pool_map"), ("runner", "site"),
               ("fidelities", "*", "emulate_from"), ("fidelities", "*", "emulate_map"),
               ("transfer", "from", "*", "table"), ("transfer", "from", "*", "table_map"),
               ("transfer", "from", "*", "model"))


def _holders(data: dict, path: tuple[str, ...]) -> list[tuple[dict, str]]:
    """(mapping, key) pairs that ``path`` reaches in ``data`` (``*``: every item of a list).
    Each mapping and list on the way is copied (copy on write: the caller's data is never
    changed, and user text is never deep-copied)."""
    holders: list[Any] = [data]
    for part, following in zip(path[:-1], path[1:]):
        if part == "*":
            continue
        nxt: list[Any] = []
        for h in holders:
            value = h.get(part)
            if following == "*" and isinstance(value, list):
                h[part] = [dict(v) if isinstance(v, dict) else v for v in value]
                nxt += [v for v in h[part] if isinstance(v, dict)]
            elif following != "*" and isinstance(value, dict):
                h[part] = dict(value)
                nxt.append(h[part])
        holders = nxt
    return [(h, path[-1]) for h in holders]


def resolve_paths(data: Any, base: Path, legacy_base: Path | None = None) -> Any:
    """``data`` (a copy) with every relative path field taken from ``base``, the campaign
    file's folder, as compose files do; a missing ``workdir`` becomes ``base/runs/<name>``; a
    leading ``~`` is the home folder.

    ``legacy_base`` (the working folder): campaigns written before paths followed the file
    meant it. A relative path that exists only from there is kept there, with a
    ``CampaignPathWarning`` saying what to write, so an old campaign finds its records.
    """
    if not isinstance(data, dict):
        return data
    out = dict(data)
    if isinstance(out.get("name"), str) and "workdir" not in out:
        out["workdir"] = str(Path("runs") / out["name"])
    for path in PATH_FIELDS:
        for holder, key in _holders(out, path):
            value = holder.get(key)
            if isinstance(value, str) and value.startswith("~") and (key != "site" or Path(value).suffix):
                # "~/x" landed in a folder named "~" beside the file (review)
                value = holder[key] = os.path.expanduser(value)
            if not isinstance(value, str) or not value or Path(value).is_absolute() or (
                    key == "site" and not Path(value).suffix):
                continue
            here = Path(os.path.normpath(base / value))  # lexically: "campaigns/../runs" is "runs"
            if legacy_base is not None and _only_under(legacy_base / value, here):
                old = (legacy_base / value).resolve()
                warnings.warn(CampaignPathWarning(
                    f"{'.'.join(p for p in path if p != '*')}: {value!r} is not beside the campaign file "
                    f"({here}) but is under the working folder ({old}); used that. Paths are relative "
                    f"to the campaign file: write {key}: {os.path.relpath(old, base.resolve())}"), stacklevel=3)
                here = old
            holder[key] = str(here)
    return out


def _only_under(old: Path, new: Path) -> bool:
    """Whether ``old`` exists and ``new`` (another place) does not."""
    try:
        return old.exists() and not new.exists() and old.resolve() != new.resolve()
    except (OSError, ValueError):  # a NUL byte or an overlong name: the spec's checks say so
        return False


def parse_campaign(data: Any, origin: str = "<campaign>", base_dir: str | Path | None = None) -> CampaignSpec:
    """Validate already-loaded campaign data; raises ``CampaignError``. With ``base_dir``,
    relative paths in it are taken from that folder (see ``resolve_paths``)."""
    if not isinstance(data, dict):
        raise CampaignError(f"{origin}: a campaign is a mapping of fields, got {type(data).__name__}")
    if base_dir is not None:
        data = resolve_paths(data, Path(base_dir))
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise CampaignError(_format_errors(origin, exc)) from None
    except (UnitError, UnknownPropertyError, ValueError, TypeError, KeyError) as exc:
        raise CampaignError(f"{origin}: {_unit_hint(str(exc))}") from None
    except Exception as exc:  # noqa: BLE001 -- a library below choked on user text (pint's
        # tokenizer raises TokenError / ZeroDivisionError on units like "]" or "?/0"): still bad input
        raise CampaignError(f"{origin}: invalid campaign: {type(exc).__name__}: {exc}") from None


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's parser where PyYAML has it), refusing a key given twice in one
    mapping: YAML's last-one-wins would silently drop the first (``Cu: [0, 0.5]`` then
    ``Cu: [0.2, 0.3]``, two ``seed:`` lines)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *defaults``: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                            key_node.start_mark)
                seen.add(key)
            except TypeError:  # an unhashable key: the base constructor names it
                pass
        return super().construct_mapping(node, deep)


def _campaign_files(folder: Path) -> list[Path]:
    """The campaign files (``*.yaml``, ``*.yml``) directly in ``folder``, by name; [] for no folder."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    except OSError:
        return []


def _not_a_campaign_file(path: Path) -> str:
    """What to give instead of ``path``, a folder or nothing: the campaign files of the folder, or
    the one meant by a misspelt name or by the campaign's bare name (``hea-demo`` for
    ``campaigns/hea-demo.yaml``), looked for beside it and in ``campaigns/``."""
    if path.is_dir():
        files = _campaign_files(path)
        listed = ", ".join(str(p) for p in files[:6]) + (", ..." if len(files) > 6 else "")
        return (f"{path} is a folder: give one campaign file in it ({listed})" if files
                else f"{path} is a folder with no campaign file (*.yaml) in it: give the path of a campaign file")
    near = _campaign_files(path.parent) + (_campaign_files(path.parent / "campaigns") if path.suffix == "" else [])
    close = vocabulary.closest_name(path.stem, [p.stem for p in near], 0.6)
    if close:
        return f"{path}: no such campaign file (did you mean {next(p for p in near if p.stem == close)}?)"
    return f"{path}: no such campaign file: give the path of a campaign YAML file (`dm-hpc init NAME` writes one)"


def load_campaign(path: str | Path) -> CampaignSpec:
    """Read and validate a campaign YAML file; raises ``CampaignError`` naming file and field.

    Relative paths in the file (store, workdir, pool, column maps, site profile) are taken from
    the file's folder, so the campaign is the same from any working folder (cron, scrontab, a
    notebook elsewhere)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        raise CampaignError(_not_a_campaign_file(path)) from None
    except OSError as exc:
        raise CampaignError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CampaignError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    try:  # libyaml's parser where PyYAML has it: the same safe loader, ~8x faster (every command loads the file)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 -- a safe loader
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise CampaignError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # "!!float abc", "2001-02-30", deep nesting
        raise CampaignError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data = resolve_paths(data, path.absolute().parent, legacy_base=Path.cwd())
        _warn_bare_durations(data)
    return parse_campaign(data, str(path))


def _warn_bare_durations(data: dict) -> None:
    """Warn for each duration a campaign file gives as a bare number. It is read as seconds (as
    the Python API takes it), where an sbatch ``--time=300`` or a site's habit means minutes:
    ``walltime: 300`` meant as five hours would kill every calculation after five minutes. Only
    the file is warned about; a notebook passing numbers means seconds."""
    fidelities = data.get("fidelities")
    places = [(f"fidelities[{i}]" + (f" ({f['name']})" if isinstance(f.get("name"), str) else ""), f, key)
              for i, f in enumerate(fidelities if isinstance(fidelities, list) else ()) if isinstance(f, dict)
              for key in FIDELITY_DURATIONS]
    if isinstance(data.get("budget"), dict):
        places += [("budget", data["budget"], key) for key in BUDGET_DURATIONS]
    for where, fields, key in places:
        v = fields.get(key)
        bare = _DURATION.match(v) if isinstance(v, str) else None  # "300", quoted: as bare (no unit)
        if bare is not None and bare.group(2) is None:
            v = float(bare.group(1))
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
            warnings.warn(CampaignDurationWarning(
                f"{where}.{key}: {v:g} is read as seconds ({_readable_seconds(v)}), not minutes as "
                f"Slurm reads a bare number; write {v:g}s, {v:g}m or {v:g}h to say which"), stacklevel=3)


def _readable_seconds(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def json_schema() -> str:
    """The campaign file's JSON Schema (written to ``campaigns/schema.json``)."""
    return json.dumps(CampaignSpec.model_json_schema(), indent=2)
