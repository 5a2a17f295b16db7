"""Request and response bodies of the API (validated at the edge; the OpenAPI is drawn from them)."""
from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from dm_hpc.data.access import AccessLevel

#: Bounds that keep one request cheap (a prediction batch, an inverse-design list).
MAX_COMPOSITIONS = 500
MAX_TARGETS = 8
MAX_DESIGN = 50

ElementFractions = dict[str, float]


class Me(BaseModel):
    name: str
    role: str
    clearance: AccessLevel
    campaigns: list[str]


class CampaignSummary(BaseModel):
    name: str
    description: str


class Best(BaseModel):
    property: str
    goal: str
    value: float
    record_id: str
    source: str
    composition: ElementFractions


class Status(BaseModel):
    name: str
    description: str
    state: str
    tasks: dict[str, int]
    refits: int
    core_hours: float
    lab_suggested: int
    lab_measured: int
    records: int
    best: list[Best]


class PendingExperiment(BaseModel):
    sample_id: str
    composition: ElementFractions
    process: dict[str, float]
    predicted: dict[str, float | None]
    predicted_std: dict[str, float | None]
    units: dict[str, str] = Field(default_factory=dict, description="Unit of each predicted property.")


class RowProblem(BaseModel):
    line: int | None = Field(description="Line of the sheet (1 = header); null for the whole sheet.")
    message: str


class HeldValue(BaseModel):
    """A value far outside the model's 99 % interval: not stored until confirmed."""

    line: int
    sample_id: str
    property: str
    value: float
    low: float
    high: float
    unit: str


class StoredSample(BaseModel):
    sample_id: str
    record_id: str
    values: dict[str, float] = Field(description="Measured values, canonical units (see units).")
    units: dict[str, str]


class UploadResult(BaseModel):
    records: int
    new: int
    queued: bool = Field(description="True when a running campaign holds the store and ingests them shortly.")
    record_ids: list[str]
    access_level: AccessLevel
    held: list[HeldValue] = Field(default_factory=list)
    confirmed: list[str] = Field(default_factory=list)
    stored: list[StoredSample] = Field(default_factory=list)
    annotated: str | None = Field(default=None, description="Path of the annotated copy of the sheet (.xlsx).")


class UploadRejected(BaseModel):
    detail: str
    problems: list[RowProblem]
    annotated: str | None = None


class PredictRequest(BaseModel):
    compositions: list[dict[str, float]] = Field(min_length=1, max_length=MAX_COMPOSITIONS,
                                                  description="Atomic fractions per element (normalised).")
    process: list[dict[str, float]] | None = Field(default=None, max_length=MAX_COMPOSITIONS)


class Prediction(BaseModel):
    composition: ElementFractions
    mean: dict[str, float | None] = Field(description="Canonical units of each property.")
    std: dict[str, float | None] = Field(description="One standard deviation, same units.")


class DesignRequest(BaseModel):
    targets: list[str] = Field(min_length=1, max_length=MAX_TARGETS, description='e.g. "mixing_energy<=-0.05 eV/atom"')
    n: int = Field(default=10, ge=1, le=MAX_DESIGN)


class DesignCandidate(BaseModel):
    composition: ElementFractions
    process: dict[str, float]
    probability: float | None
    mean: dict[str, float | None]
    std: dict[str, float | None]


class ExportedRecord(BaseModel):
    record_id: str
    access_level: AccessLevel
    embargo_until: date | None
    record: dict[str, Any]


class Export(BaseModel):
    records: list[ExportedRecord]
    withheld: int = Field(description="Records of the campaign above the caller's clearance.")


class AccessChange(BaseModel):
    level: AccessLevel
    until: date | None = Field(default=None, description="Last day of an embargo (UTC); only with level embargoed.")


class Contributor(BaseModel):
    contributor: str
    records: int
    campaign_uses: int = Field(description="Times campaigns learned from these records (data mileage).")
    exports: int = Field(description="Times these records left the service in an export.")


class AuditEntry(BaseModel):
    time: float
    user: str
    action: str
    campaign: str | None
    detail: dict[str, Any]


class Report(BaseModel):
    summary_markdown: str
    plots: list[str]
