"""The data standard: typed records along raw material -> composition -> process -> property.

Every value carries its unit: properties and process parameters are converted to the canonical
unit of the vocabulary (``properties.yaml``) when a record is built, so a stored number never
needs its unit looked up elsewhere. Every record carries provenance, and its ``source`` says
whether it is ``computed`` or ``experimental``: the two are never mixed silently.

The record id is a content hash of the record's scientific content (composition, process,
properties, source, method, input hash, sample id) -- the plan's M-DOI-like identifier. Where
or when a record was made (host, job, time, contributor) is provenance, not content: the same
calculation ingested twice is one record.
"""
from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from dm_hpc.data.composition import Composition
from dm_hpc.data.vocabulary import canonical_unit, check_range, to_canonical

RECORD_ID_PREFIX = "dm-"
RECORD_ID_LENGTH = len(RECORD_ID_PREFIX) + 20
_SIG_DIGITS = 12
_NAME = re.compile(r"^[A-Za-z0-9_.+ -]{1,64}$")
#: Field length limits (UTF-8 bytes) follow the fixed-width columns of the HDF5 store.
MAX_METHOD = 40
MAX_LABEL = 64


#: Validation context of a record read back from a store (``MaterialRecord.from_json``): the
#: physical ranges are rules of intake, and a store is never rewritten, so a range tightened
#: later (process temperatures > 0 K) must not make a record stored before it unreadable.
STORED = {"stored": True}


def _stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("stored"))


def trimmed(text: str) -> str | None:
    """``text`` without the spaces around it, None when it is blank: what the sheet reader makes of
    a text cell (spaces around a cell are typing noise). Intake applies the same rule to a
    record's texts, so a record's id never depends on them and its export reads back as itself.
    Only spaces: a tab or CR that begins a text is content (an export writes it neutralised)."""
    return None if not text.strip() else text.strip(" ")


def _trim(v: Any, info: ValidationInfo, blank: Any = None) -> Any:
    """A text field's input ``trimmed`` (``blank`` for a blank one, None for an optional field);
    as stored when read from a store: its id is the hash of the text as it was stored then."""
    if _stored(info) or not isinstance(v, str):
        return v
    out = trimmed(v)
    return blank if out is None else out


def label_problem(v: str, limit: int) -> str | None:
    """Why ``v`` cannot be stored in a fixed-width text column of ``limit`` UTF-8 bytes, or None.

    No NUL (a fixed-width column drops trailing NULs, so the column would disagree with the
    record) and no other control character (an id with a newline or tab splits a line of every
    sheet, log and job name it reaches). The sheet reader asks the same question of a whole
    column before it builds records without validation."""
    if "\x00" in v:
        return "must not contain NUL characters"
    bad = next((ch for ch in v if ch < " " or ch == "\x7f"), None)
    if bad is not None:
        return f"must not contain control characters ({bad!r})"
    size = len(v.encode("utf-8", "surrogatepass"))
    if size > limit:
        return f"at most {limit} bytes (UTF-8), got {size}"
    return None


def _fits(limit: int) -> AfterValidator:
    """A text that fits a fixed-width store column (``label_problem``)."""

    def check(v: str | None) -> str | None:
        if v is not None:
            problem = label_problem(v, limit)
            if problem is not None:
                raise ValueError(problem)
        return v

    return AfterValidator(check)


class Source(str, enum.Enum):
    """Where a value comes from. Computed and experimental data are never mixed silently."""

    computed = "computed"
    experimental = "experimental"


class MaterialClass(str, enum.Enum):
    """The plan's four material families (plus polymer and other)."""

    metal = "metal"
    chemical = "chemical"
    ceramic = "ceramic"
    fibre = "fibre"
    polymer = "polymer"
    other = "other"


def _round(value: float) -> float:
    """Round to 12 significant digits so unit conversions do not change a hash."""
    return float(f"{value:.{_SIG_DIGITS}g}")


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return _round(value)


class Quantity(BaseModel):
    """A number with a unit (free unit: used where no vocabulary term applies)."""

    model_config = ConfigDict(frozen=True)
    value: float
    unit: str = "dimensionless"


#: A raw material's purity is a percentage of the material (99.5 for 99.5 %), bounds inclusive:
#: the one range the Python API and the sheet reader check it against (``purity_problem``).
PURITY_RANGE = (0.0, 100.0)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def purity_problem(value: float) -> str | None:
    """Why ``value`` is no purity (outside ``PURITY_RANGE``, or not a number), or None."""
    low, high = PURITY_RANGE
    if low <= value <= high:  # NaN is in no range
        return None
    return f"purity {value!r} is outside {low:g}-{high:g} (%)"


def purchase_date_problem(text: str, today: date | None = None) -> str | None:
    """Why ``text`` is no purchase date, or None: a calendar date written YYYY-MM-DD (one form, so
    one day is one text and one record id), not after ``today`` (default: today in UTC) by more
    than a day (a lab east of Greenwich is a day ahead of UTC for hours)."""
    try:
        day = date.fromisoformat(text) if _ISO_DATE.fullmatch(text) else None
    except ValueError:  # 2024-02-30
        day = None
    if day is None:
        return f"purchase_date {text!r} is not a date written YYYY-MM-DD (e.g. 2024-03-01)"
    if day > (today or datetime.now(UTC).date()) + timedelta(days=1):
        return f"purchase_date {text!r} is in the future"
    return None


#: A raw material's texts, trimmed on intake (``trimmed``).
_RAW_TEXTS = ("name", "material_class", "manufacturer", "formula", "purchase_date")


class RawMaterial(BaseModel):
    """A raw material used to make the sample (the plan's first stage). ``purity`` in percent.

    Purity and purchase date are checked on intake, not when read from a store (``STORED``), as
    the physical ranges: a record stored before the checks stays readable under its id."""

    model_config = ConfigDict(frozen=True)
    name: str
    material_class: str | None = None
    manufacturer: str | None = None
    formula: str | None = None
    purity: float | None = None
    amount: Quantity | None = None
    purchase_date: str | None = None

    @field_validator(*_RAW_TEXTS, mode="before")
    @classmethod
    def _texts(cls, v: Any, info: ValidationInfo) -> Any:
        return _trim(v, info, blank=v if info.field_name == "name" else None)  # a name stays a name

    @field_validator("purity", "purchase_date")
    @classmethod
    def _checked(cls, v: Any, info: ValidationInfo) -> Any:
        check = purity_problem if info.field_name == "purity" else purchase_date_problem
        if v is not None and not _stored(info) and (problem := check(v)) is not None:
            raise ValueError(problem)
        return v


class ProcessStep(BaseModel):
    """One step of the process route; parameters are vocabulary terms in canonical units.

    ``parameters`` accepts ``{"annealing_temperature": 1273}`` (canonical unit) or
    ``{"annealing_temperature": {"value": 1000, "unit": "degC"}}`` (converted).
    """

    model_config = ConfigDict(frozen=True)
    name: str
    order: int = 0
    equipment: str | None = None
    parameters: dict[str, float] = Field(default_factory=dict)
    settings: dict[str, str] = Field(default_factory=dict)

    @field_validator("equipment", mode="before")
    @classmethod
    def _equipment(cls, v: Any, info: ValidationInfo) -> Any:
        return _trim(v, info)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError(f"process step name {v!r}: use letters, digits, space, _ . + - (max 64)")
        return v

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters(cls, v: Any, info: ValidationInfo) -> dict[str, float]:
        out: dict[str, float] = {}
        checked = not _stored(info)
        for key, val in dict(v or {}).items():
            if isinstance(val, dict):
                number = to_canonical(key, float(val["value"]), val.get("unit"), kind="process_parameter")
            else:
                canonical_unit(key, kind="process_parameter")  # unknown names are rejected
                number = float(val)
            number = _finite(f"process parameter {key}", number)
            out[key] = check_range(key, number, kind="process_parameter") if checked else number
        return dict(sorted(out.items()))

    @field_validator("settings")
    @classmethod
    def _settings(cls, v: dict[str, str]) -> dict[str, str]:
        return dict(sorted(v.items()))


class PropertyValue(BaseModel):
    """A measured or computed property, stored in the vocabulary's canonical unit.

    Give ``unit`` to have ``value`` and ``uncertainty`` converted; ``unit`` is then replaced
    by the canonical unit. ``conditions`` hold measurement or calculation conditions.
    """

    model_config = ConfigDict(frozen=True)
    name: str
    value: float
    unit: str | None = None
    uncertainty: float | None = None
    conditions: dict[str, float | str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _convert(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "name" not in data or "value" not in data:
            return data
        data = dict(data)
        name, unit = data["name"], data.get("unit")
        target = canonical_unit(name)
        if unit is not None and unit != target:
            value = float(data["value"])
            data["value"] = to_canonical(name, value, unit)
            if data.get("uncertainty") is not None:
                # an uncertainty converts like a difference: scale only, no offset
                scale = to_canonical(name, value + float(data["uncertainty"]), unit) - data["value"]
                data["uncertainty"] = abs(scale)
        data["unit"] = target
        return data

    @field_validator("value")
    @classmethod
    def _value(cls, v: float) -> float:
        return _finite("property value", v)

    @model_validator(mode="after")
    def _in_range(self, info: ValidationInfo) -> PropertyValue:
        if not _stored(info):
            check_range(self.name, self.value)  # e.g. a negative density: refused, never stored
        return self

    @field_validator("uncertainty")
    @classmethod
    def _uncertainty(cls, v: float | None) -> float | None:
        if v is None:
            return None
        if v < 0:
            raise ValueError(f"uncertainty must be >= 0, got {v}")
        return _finite("uncertainty", v)

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, v: dict[str, float | str]) -> dict[str, float | str]:
        return dict(sorted(v.items()))


#: Provenance fields that say where and when, not what: they do not enter the record id.
_CIRCUMSTANCES = {"code", "code_version", "job_id", "task_id", "host", "campaign", "contributor",
                  "institution", "timestamp", "extra", "supersedes"}


class Provenance(BaseModel):
    """Where a record comes from. Only ``source``, ``method`` and ``input_hash`` enter the id."""

    model_config = ConfigDict(frozen=True)
    source: Source
    method: Annotated[str, _fits(MAX_METHOD)]
    code: str | None = None
    code_version: str | None = None
    input_hash: str | None = None
    job_id: str | None = None
    task_id: Annotated[str | None, _fits(MAX_LABEL)] = None
    host: str | None = None
    campaign: Annotated[str | None, _fits(MAX_LABEL)] = None
    contributor: str | None = None
    institution: str | None = None
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    extra: dict[str, Any] = Field(default_factory=dict)
    #: Ids of the records this one corrects (a re-sent measurement stored with ``replace``); they
    #: stay in the store, and queries show only the current one unless asked.
    supersedes: list[str] | None = None

    @field_validator("method", "input_hash", "contributor", "institution", mode="before")
    @classmethod
    def _texts(cls, v: Any, info: ValidationInfo) -> Any:
        # a blank method stays itself, for ``_method`` to refuse by name
        return _trim(v, info, blank=v if info.field_name == "method" else None)

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("method must not be empty")
        return v


class MaterialRecord(BaseModel):
    """One sample (measured) or one calculation (computed) in the standard form.

    What it is made of: an elemental ``composition``, or raw materials with amounts (a polymer
    blend, a dye recipe), or both.
    """

    model_config = ConfigDict(frozen=True)
    material_class: MaterialClass = MaterialClass.metal
    composition: Composition | None = None
    raw_materials: list[RawMaterial] = Field(default_factory=list)
    process: list[ProcessStep] = Field(default_factory=list)
    properties: list[PropertyValue] = Field(min_length=1)
    sample_id: Annotated[str | None, _fits(MAX_LABEL)] = None
    structure: dict[str, Any] | None = None
    provenance: Provenance

    @field_validator("sample_id", mode="before")
    @classmethod
    def _sample_id(cls, v: Any, info: ValidationInfo) -> Any:
        return _trim(v, info)

    @model_validator(mode="after")
    def _in_class_range(self, info: ValidationInfo) -> MaterialRecord:
        # A measurement outside its material class's range (a metal of density 0.3 g/cm3) is refused
        # here as a lab sheet's row is, whichever way it comes in (``Store.ingest``, the Python API).
        # A computed value is not held to it: a calculation's cell may be unstable (a negative bulk
        # modulus) and the general range admits that; a computed record's class is not the lab's word.
        if not _stored(info) and self.provenance.source is Source.experimental:
            for p in self.properties:
                check_range(p.name, p.value, material_class=self.material_class.value)
        return self

    @model_validator(mode="after")
    def _made_of_something(self) -> MaterialRecord:
        if self.composition is None and not any(rm.amount is not None for rm in self.raw_materials):
            raise ValueError("a record needs a composition (elements) or raw materials with amounts")
        return self

    def model_post_init(self, __context: Any) -> None:
        # The id is part of what a valid record is: computed once, here, so every later use
        # (ingest, sheets, the campaign journal) reads it instead of re-serialising the record.
        _ = self.record_id

    @field_validator("properties")
    @classmethod
    def _unique_properties(cls, v: list[PropertyValue]) -> list[PropertyValue]:
        names = [p.name for p in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"property given twice: {', '.join(dupes)}")
        return sorted(v, key=lambda p: p.name)

    @field_validator("raw_materials")
    @classmethod
    def _ordered_raw_materials(cls, v: list[RawMaterial]) -> list[RawMaterial]:
        return sorted(v, key=lambda rm: rm.name)  # canonical: the order of sheet columns is no content

    @field_validator("process")
    @classmethod
    def _ordered_process(cls, v: list[ProcessStep]) -> list[ProcessStep]:
        return sorted(v, key=lambda s: s.order)

    @property
    def source(self) -> Source:
        return self.provenance.source

    def get_property(self, name: str) -> PropertyValue | None:
        """The property called ``name``, or None."""
        return next((p for p in self.properties if p.name == name), None)

    @cached_property
    def content_json(self) -> str:
        """Canonical JSON of the scientific content (what the record id hashes)."""
        return self.model_dump_json(
            exclude={"structure": True, "provenance": _CIRCUMSTANCES},
            exclude_none=True,
            exclude_defaults=True,
        )

    def to_json(self) -> str:
        """The whole record as ``{"content": ..., "circumstances": ...}`` JSON (the store's form:
        the content part is exactly what the id hashes, so a check needs no re-serialising)."""
        circumstances = self.model_dump_json(
            include={"structure": True, "provenance": _CIRCUMSTANCES}, exclude_none=True
        )
        return f'{{"content":{self.content_json},"circumstances":{circumstances}}}'

    @classmethod
    def from_json(cls, text: str) -> MaterialRecord:
        """Inverse of ``to_json``."""
        data = json.loads(text)
        content, extra = data["content"], data["circumstances"]
        content["provenance"].update(extra.get("provenance", {}))
        if "structure" in extra:
            content["structure"] = extra["structure"]
        return cls.model_validate(content, context=STORED)

    @cached_property
    def record_id(self) -> str:
        """Stable content hash, e.g. ``dm-3f2a...`` (23 characters)."""
        return record_id_of(self.content_json)

    def not_as_intake_takes(self) -> list[str]:
        """What of the content intake would not take as stored, each as ``where 'text' (why)``: a
        text with spaces around it (intake trims them, ``trimmed``), a raw material's purity or
        purchase date that its checks refuse (``purity_problem``, ``purchase_date_problem``): a
        record stored before them. An export of such a record reads back as another record, or is
        refused (``store export`` says which)."""
        texts = [("sample_id", self.sample_id), ("method", self.provenance.method),
                 ("input_hash", self.provenance.input_hash)]
        texts += [(f"raw material {rm.name!r} {f}", getattr(rm, f)) for rm in self.raw_materials for f in _RAW_TEXTS]
        texts += [(f"step {st.name!r} equipment", st.equipment) for st in self.process]
        out = [f"{where} {text!r} (spaces around it)" for where, text in texts if text is not None and trimmed(text) != text]
        for rm in self.raw_materials:
            out += [f"raw material {rm.name!r} ({why})" for why in (
                rm.purity is not None and purity_problem(rm.purity),
                rm.purchase_date is not None and purchase_date_problem(rm.purchase_date)) if why]
        return out


def provenance_json(provenance: Provenance) -> tuple[str, str]:
    """A provenance's two parts of ``MaterialRecord.to_json``: the one inside ``content`` (what
    the id hashes) and the ``circumstances`` object, for records written as columns
    (``dm_hpc.data.sheet_columns``) without a ``MaterialRecord`` per row."""
    content = provenance.model_dump_json(exclude=_CIRCUMSTANCES, exclude_none=True, exclude_defaults=True)
    circumstances = provenance.model_dump_json(include=_CIRCUMSTANCES, exclude_none=True)
    return content, f'{{"provenance":{circumstances}}}'


def record_id_of(content_json: str) -> str:
    """Record id from canonical content JSON."""
    return RECORD_ID_PREFIX + hashlib.sha256(content_json.encode()).hexdigest()[:20]
