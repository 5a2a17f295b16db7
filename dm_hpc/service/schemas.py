"""Request and response bodies of the API (validated at the edge; the OpenAPI is drawn from them)."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from dm_hpc.data.access import AccessLevel
from dm_hpc.data.composition import COMPOSITION_TOLERANCE, fractions_problem

#: Bounds that keep one request cheap (a prediction batch, an inverse-design list).
MAX_COMPOSITIONS = 500
MAX_TARGETS = 8
MAX_DESIGN = 50
#: Longest target text: "raw_material_cost <= 20 USD/kg" is 30 characters; a refusal quotes what it
#: cannot read, so a megabyte-long target came back whole in the 422.
MAX_TARGET_CHARS = 200

ElementFractions = dict[str, float]
#: How the registry names a version (``campaign.registry``: v0001, v0002, ...).
VERSION_PATTERN = r"^(v[0-9]{4,}|current)$"


class RequestBody(BaseModel):
    """A body a caller posts: a field it does not define is refused (422 naming it), never
    ignored: ``{"units": "wt_frac"}`` beside atomic fractions was answered as if not sent."""

    model_config = ConfigDict(extra="forbid")


class Me(BaseModel):
    name: str
    role: str
    clearance: AccessLevel
    campaigns: list[str]


class CampaignSummary(BaseModel):
    name: str
    description: str


class Best(BaseModel):
    """The best record of an objective among those the caller reads that meet every constraint."""

    property: str
    goal: str
    value: float = Field(description="In `unit`: the one the campaign file writes for the objective, as the "
                                     "report, the lab sheet and `dm-hpc run` give it (the store keeps canonical units).")
    unit: str
    record_id: str
    source: str
    composition: ElementFractions


class Status(BaseModel):
    """Where a campaign stands, as the caller reads it: counts of records (tasks ingested, lab
    experiments measured, records) are of those the caller reads; work that made no record is
    counted whole."""

    name: str
    description: str
    state: str = Field(description="A stop judged on values over every record (targets met, no improvement) "
                                   "is said only as the caller's records show it.")
    tasks: dict[str, int] = Field(description="Tasks per state; `ingested`: those whose record the caller reads.")
    refits: int
    core_hours: float
    lab_suggested: int
    lab_measured: int = Field(description="Suggested experiments measured, whose record the caller reads.")
    records: int
    best: list[Best]


class PendingExperiment(BaseModel):
    sample_id: str
    composition: ElementFractions
    process: dict[str, float] = Field(description="Process values in canonical units (K, s, ...), as the journal holds them.")
    process_shown: dict[str, str] = Field(default_factory=dict, description="Each process value as the lab sheet "
                                          "shows it: rounded, in the campaign file's unit, with the unit (`762 degC`).")
    predicted: dict[str, float | None]
    predicted_std: dict[str, float | None]
    units: dict[str, str] = Field(default_factory=dict, description="Unit of each predicted property.")
    held: str | None = Field(default=None, description="A value sent for this sample was held, not stored (far "
                             "outside the model's 99 % interval): which property and what to do (confirm or correct).")


class RowProblem(BaseModel):
    line: int | None = Field(description="Line of the sheet (1 = header); null for the whole sheet.")
    message: str


class HeldValue(BaseModel):
    """A value far outside the model's 99 % interval: not stored until confirmed. The numbers are
    canonical (``unit``); ``typed``, ``interval`` and ``message`` say them in the unit the sheet
    typed the value in, as `dm-hpc ingest` does."""

    line: int
    sample_id: str
    property: str
    value: float
    low: float | None = None  # None: the caller may not see every record the model learnt from
    high: float | None = None
    unit: str
    typed: str = Field(description="The value as the sheet gave it, with its unit ('4500 meV/atom').")
    interval: str | None = Field(default=None, description="The interval it fell outside, in the unit typed; "
                                 "null when the caller may not see every record the model learnt from.")
    message: str = Field(description="The hold as `dm-hpc ingest` says it (the interval as above).")


class StoredSample(BaseModel):
    sample_id: str
    record_id: str
    values: dict[str, float] = Field(description="Measured values, canonical units (see units).")
    units: dict[str, str]
    access_level: AccessLevel = Field(description="The record's level now: a record sent again keeps its own "
                                                  "(after ingest only an admin changes it), whatever the form asked.")
    embargo_until: date | None = None


class UploadResult(BaseModel):
    records: int
    new: int
    queued: bool = Field(description="True when a running campaign holds the store and ingests them shortly.")
    record_ids: list[str]
    access_level: AccessLevel | None = Field(description="The level given to the records this upload stored anew; "
                                             "null when it stored none (see each stored sample's access_level).")
    held: list[HeldValue] = Field(default_factory=list)
    confirmed: list[str] = Field(default_factory=list)
    stored: list[StoredSample] = Field(default_factory=list)
    conversions: list[str] = Field(default_factory=list, description="One line per property column stored in another "
                                   "unit than the sheet's ('hardness: HV converted to GPa for the store').")
    annotated: str | None = Field(default=None, description="Path of the annotated copy of the sheet (.xlsx).")
    warnings: list[str] = Field(default_factory=list, description="Stored, with something to know: a property left "
                                "blank, an element outside the campaign's design space, a confirmation that confirmed nothing.")


class UploadRejected(BaseModel):
    detail: str
    problems: list[RowProblem]
    annotated: str | None = None


#: A finite number (JSON ``Infinity``/``NaN`` are refused with the field named, not turned into null).
Finite = Annotated[float, Field(allow_inf_nan=False)]


def _atomic_fractions(composition: dict[str, float]) -> dict[str, float]:
    """One posted composition, refused (422 naming it) where ``fractions_problem`` says why."""
    problem = fractions_problem(composition)
    if problem is not None:
        raise ValueError(problem)
    return composition


#: A composition a caller posts (loc: its place in the list).
AtomicFractions = Annotated[dict[str, Finite], AfterValidator(_atomic_fractions)]


class PredictRequest(RequestBody):
    compositions: list[AtomicFractions] = Field(
        min_length=1, max_length=MAX_COMPOSITIONS,
        description=f"Atomic fractions per element, each composition summing to 1 within {COMPOSITION_TOLERANCE:g} "
                    "(a lab sheet's rule; answered normalised to 1 exactly); any other sum, 100 included, is a 422.")
    process: list[dict[str, Finite]] | None = Field(
        default=None, max_length=MAX_COMPOSITIONS,
        description="Process values, one entry per composition, each in the unit "
                    "the campaign file writes the parameter in, as its lab sheet does (e.g. degC); default: the "
                    "middle of the campaign's process box.")
    model: str | None = Field(default=None, pattern=VERSION_PATTERN,
                              description="A registered model version (`dm-hpc models`: v0001, ...), or `current` "
                                          "(the one `dm-hpc models --promote` made current); default: the portal's "
                                          "own fit of the records the caller reads, never the registry's current "
                                          "version. A version is served only to a caller who reads every record it "
                                          "was trained on.")


class ModelUsed(BaseModel):
    """The model a prediction came from."""

    name: str = Field(description="A registered version (`v0002`, as `dm-hpc models` lists it), or the portal's "
                                  "own fit of the records the caller reads: `fit-` and the first 12 hex digits of the "
                                  "SHA-256 of their sorted ids (and of the sources withheld, when any: the same "
                                  "records and sources, the same name).")
    registered: bool
    records: int = Field(description="Records it was trained on.")
    sources_withheld: int = Field(0, description="Transfer sources of the campaign left out of this model because "
                                                 "they hold records above the caller's clearance (not named).")


class Prediction(BaseModel):
    composition: ElementFractions
    mean: dict[str, float | None] = Field(description="Each property in `units`: the unit the campaign file writes "
                                          "it in, as `best` gives it (canonical where the file writes none).")
    std: dict[str, float | None] = Field(description="One standard deviation, same units.")
    units: dict[str, str] = Field(default_factory=dict, description="Unit of each predicted property.")
    outside: list[str] = Field(default_factory=list, description="Where the composition or process lies outside the "
                               "campaign's design space (the model extrapolates there: read the uncertainty with care).")
    model: ModelUsed


class DesignRequest(RequestBody):
    targets: list[Annotated[str, Field(max_length=MAX_TARGET_CHARS)]] = Field(
        min_length=1, max_length=MAX_TARGETS, description='e.g. "mixing_energy<=-0.05 eV/atom"')
    n: int = Field(default=10, ge=1, le=MAX_DESIGN)


class DesignCandidate(BaseModel):
    composition: ElementFractions
    process: dict[str, float] = Field(description="Process values in canonical units (`process_units`).")
    process_in_file_units: dict[str, float] = Field(
        default_factory=dict, description="The same process values in the campaign file's units, as `/predict` "
                                          "reads them (degC where the file writes degC): send these to ask about a candidate.")
    probability: float | None
    mean: dict[str, float | None]
    std: dict[str, float | None]
    units: dict[str, str] = Field(default_factory=dict, description="Unit of each predicted property (canonical).")
    process_units: dict[str, str] = Field(default_factory=dict, description="Unit of each process value (canonical).")


class ExportedRecord(BaseModel):
    record_id: str
    access_level: AccessLevel
    embargo_until: date | None
    record: dict[str, Any]


class Export(BaseModel):
    records: list[ExportedRecord]
    withheld: int = Field(description="Records of the campaign above the caller's clearance: deliberately the one "
                                      "answer that says how many (status and report count only what the caller reads).")
    awaiting_approval: int = Field(0, description="Records the caller may read but not export: above the public "
                                                  "level and in no granted export request (POST .../exports).")


class ExportRequestBody(RequestBody):
    record_ids: list[str] | None = Field(default=None, max_length=100_000,
                                         description="Records to export; default: every one above the public "
                                                     "level that the caller may read.")
    reason: str = Field(min_length=1, max_length=2000)


class ExportDecision(RequestBody):
    days: int = Field(default=30, ge=1, le=90, description="How long a grant runs.")
    note: str = Field(default="", max_length=2000)


class ExportRequestOut(BaseModel):
    id: int
    time: float
    requester: str
    campaign: str
    record_ids: list[str]
    hidden: int = Field(description="Records of the request the viewer may not read (not named).")
    reason: str
    status: str
    decided_by: str | None
    until: float | None = Field(description="End of a grant (epoch seconds, UTC).")
    note: str | None


class AccessChange(RequestBody):
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


class ModelUse(BaseModel):
    campaign: str
    version: str
    clearance: str = Field(description="The clearance the version was trained at.")


class ExportUse(BaseModel):
    time: float
    user: str
    campaign: str | None
    format: str | None


class Citation(BaseModel):
    record_id: str
    creator: str = Field(description="Contributor, else institution, else method.")
    source: str
    method: str
    created: str | None
    stores: list[str] = Field(description="Campaigns whose store holds the record.")
    models: list[ModelUse] = Field(description="Registered model versions trained on it.")
    learned_by: list[str] = Field(description="Campaigns that learn from it.")
    exports: list[ExportUse] = Field(description="Exports that carried it (the caller's own, unless an admin).")
    other_exports: int = Field(0, description="Exports by other users, counted (who and when is the audit log's).")
    other_campaigns: int = Field(0, description="Campaigns not granted to the caller that hold or use it, counted.")
