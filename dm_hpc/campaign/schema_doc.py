"""The user guide's reference pages, generated so they cannot drift from the code.

    python -m dm_hpc.campaign.schema_doc            # writes docs/guide/campaign-file.md, vocabulary.md
    python -m dm_hpc.campaign.schema_doc --check    # exit 1 when a committed page differs

``campaign-file.md`` is built from the campaign model's JSON Schema (types, defaults, limits:
what ``load_campaign`` enforces) and the one-line meanings in ``MEANING`` below;
``vocabulary.md`` from ``dm_hpc/data/properties.yaml`` (names, canonical units, physical
ranges). A field of the model without a meaning here, or a meaning for a field that no longer
exists, fails ``tests/campaign/test_guide.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.learn.gp import GP_MAX_POINTS

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide"

#: What each field means, for a person writing a campaign file ("Model.field" -> one line).
#: Types, defaults and limits come from the schema; say here what the schema cannot.
MEANING: dict[str, str] = {
    "CampaignSpec.name": "Names the campaign's run folder, journal, Slurm jobs and records (1-48 letters, digits, `_ . -`).",
    "CampaignSpec.description": "Free text, shown in the report and the portal.",
    "CampaignSpec.material_class": "The Digital Material family the records belong to.",
    "CampaignSpec.store": "The HDF5 store folder the records go to (and are learnt from); relative to this file; default `store` in the run folder.",
    "CampaignSpec.vocabulary": "The campaign's own properties and process parameters (a unit pint knows and a physical range), beside the standard vocabulary.",
    "CampaignSpec.workdir": "Run folder: journal, task folders, lab sheets, report. Relative to this file; default `runs/<name>` beside it.",
    "CampaignSpec.seed": "Seed of every random choice (initial points, tie breaks): the same file and data give the same suggestions.",
    "CampaignSpec.space": "Where suggestions may lie: elements with bounds and process parameters, or a candidate pool.",
    "CampaignSpec.objectives": "What to minimise or maximise (one or more properties).",
    "CampaignSpec.constraints": "Outcome constraints such as `\"density <= 7 g/cm3\"` (a string, or property/op/value).",
    "CampaignSpec.fidelities": "The ways to obtain values: calculation methods and at most one lab.",
    "CampaignSpec.budget": "Limits; the campaign stops at the first one reached.",
    "CampaignSpec.stopping": "Stopping rules besides the budget.",
    "CampaignSpec.runner": "Where calculations run.",
    "CampaignSpec.learning": "Surrogate and batch settings (the defaults are what the benchmarks support).",
    "CampaignSpec.transfer": "Related data the model learns from beside the campaign's own, weighted by how well it predicts the campaign's records (weight 0 when it does not help); `dm-hpc transfer suggest` lists candidates.",
    "CampaignSpec.mode": "`optimise` (objectives) or `gaps` (calculations where the data is thinnest).",
    "SpaceSpec.elements": "`Element: [low, high]` atomic-fraction bounds; fractions of a suggestion sum to 1.",
    "SpaceSpec.max_elements": "At most this many elements with a non-zero fraction in one suggestion.",
    "SpaceSpec.min_elements": "At least this many elements in one suggestion (a point a calculation's cell or the lab's precision would make with fewer is not suggested).",
    "SpaceSpec.excluded": "Elements never to use.",
    "SpaceSpec.process": "Process parameters with their range, e.g. `annealing_temperature: {low: 400, high: 900, unit: degC}`; names from the vocabulary.",
    "SpaceSpec.pool": "A CSV of candidate compositions (composition columns or a formula; property columns may be there, and are not read): suggestions come only from it, as they are (relative to this file); elements, max_elements, min_elements, excluded and process are then refused.",
    "SpaceSpec.pool_map": "Column map of the pool file (`configs/sheets/*.yaml`; relative to this file).",
    "BoundSpec.low": "Lower end of the range, in `unit`.",
    "BoundSpec.high": "Upper end of the range, in `unit`.",
    "BoundSpec.unit": "Unit of `low` and `high` (any pint unit of the right dimension; default: the canonical one).",
    "BoundSpec.written_unit": "Set by dm-hpc: the unit the author wrote, in which lab sheets show the parameter.",
    "BoundSpec.precision": "The lab's step for this parameter, in the unit written (sheets round to it).",
    "ObjectiveSpec.property": "A property of the vocabulary.",
    "ObjectiveSpec.goal": "`min` or `max`.",
    "ObjectiveSpec.unit": "Unit of `target` (and of the values you read; stored values are canonical).",
    "ObjectiveSpec.target": "Stop when the best value reaches it (with `stopping.targets_met`), in `unit`.",
    "ConstraintSpec.property": "A property of the vocabulary.",
    "ConstraintSpec.op": "`<=` or `>=`; the string form's `<` and `>` are read as `<=` and `>=`, with a warning.",
    "ConstraintSpec.value": "The bound, in the property's canonical unit (the string form takes any unit).",
    "ConstraintSpec.written_unit": "Set by dm-hpc from the string form: the unit the author wrote, in which the report and the lab sheet show a property no objective names.",
    "VocabularySpec.properties": "Your own properties by name, e.g. `microhardness: {unit: HV, min: 0}`; a standard name cannot be redefined.",
    "VocabularySpec.process_parameters": "Your own process parameters by name, e.g. `peening_intensity: {unit: mm, min: 0}`.",
    "TermSpec.unit": "Its canonical unit (any unit pint knows, `HV` included); values in other units of the same dimension are converted to it.",
    "TermSpec.description": "What it is, for people reading the records.",
    "TermSpec.min": "Smallest physical value, inclusive (a value below it is refused as a typing error).",
    "TermSpec.max": "Largest physical value, inclusive.",
    "TermSpec.positive": "Values must be > 0.",
    "FidelitySpec.name": "Your name for it; it names job scripts, plots and report rows.",
    "FidelitySpec.kind": "`calculation` (a method on the runner) or `experiment` (the lab, by sheets).",
    "FidelitySpec.method": "Calculation method: `emt`, `gpaw`, `qe`, `chgnet` (see `configs/calculators.yaml`).",
    "FidelitySpec.maker": "A jobflow/atomate2 Maker that calculates instead of the built-in recipe: `{maker: \"package.module:Class\", kwargs: {...}, outputs: {property: {path, unit}}}` (see docs/makers.md).",
    "FidelitySpec.settings": "Method settings over the method's defaults, e.g. `{ecut_ev: 450}`.",
    "FidelitySpec.cost": "Core-hours per calculation (`auto`: the method's own estimate) or lab-days per experiment (`auto`: one); a number > 0 without a unit (the kind gives it).",
    "FidelitySpec.measures": "Experiment only: the properties the lab measures (default: every objective and constraint); validate checks each is delivered.",
    "FidelitySpec.runner": "Reserved: the campaign's runner is used.",
    "FidelitySpec.cores": "Cores per calculation.",
    "FidelitySpec.walltime": "Time limit per calculation (`90s`, `30m`, `6h`, `2d` or seconds).",
    "FidelitySpec.batch_size": "Experiments per lab sheet.",
    "FidelitySpec.turnaround": "How long the lab takes for a sheet (a duration), weighed against calculations.",
    "FidelitySpec.target": "The fidelity whose values are the answer (at most one); the others inform it.",
    "FidelitySpec.emulate_from": "Benchmarking only: answer the lab's sheets from this table of measurements (relative to this file).",
    "FidelitySpec.emulate_map": "Column map of `emulate_from` (relative to this file).",
    "FidelitySpec.precision": "The lab's atomic-fraction step: suggestions are rounded to it, so two the lab would make alike are one.",
    "BudgetSpec.core_hours": "Core-hours of calculations in all.",
    "BudgetSpec.calculations": "Calculations in all (failed ones count).",
    "BudgetSpec.lab_experiments": "Experiments suggested to the lab in all.",
    "BudgetSpec.wall_time": "Time from the campaign's first start, pauses and interruptions included (like a Slurm time limit).",
    "BudgetSpec.core_hours_per_lab_day": "Exchange rate between calculations and experiments for cost-aware choice.",
    "StoppingSpec.no_improvement_rounds": "Stop after this many model refits without a better best value.",
    "StoppingSpec.targets_met": "Stop when every objective with a `target` has reached it.",
    "StoppingSpec.max_consecutive_failures": "Circuit breaker: this many failures of one kind in a row stop a fidelity.",
    "RunnerSpec.kind": "`local` (this machine), `slurm` (sbatch, job arrays), `dask` (pilot jobs), `mpi` (one MPI task farm).",
    "RunnerSpec.cores": "Cores the local runner may use.",
    "RunnerSpec.max_in_flight": "Calculations submitted or running at once.",
    "RunnerSpec.site": "Site profile: a file (relative to this file) or a name in `configs/sites/` (see `docs/admin.md`).",
    "RunnerSpec.retries": "Resubmissions of a calculation that failed for a retryable reason (timeout, memory).",
    "LearningSpec.surrogate": "`auto` (multi-task over several fidelities; else an exact GP on all records up to "
                              f"{GP_MAX_POINTS:,} and on a random {GP_MAX_POINTS:,} of them beyond, there with a noise level that "
                              "varies over the inputs when the records left out show it: `dm-hpc train` and "
                              "proposals use the same rule), `gp` (exact GP on all records), `multitask` (over fidelities) or `ensemble` "
                              "(calibrated ensemble: honest predictive intervals, too narrow latent ones).",
    "LearningSpec.initial_points": "Random (space-filling) points before the first model.",
    "LearningSpec.refit_every": "Refit the model after this many new results.",
    "LearningSpec.batch_size": "Suggestions per planning step.",
    "LearningSpec.batch_separation": "Smallest distance between two suggestions of one batch, or a suggestion and one "
                                     "in flight or awaited from the lab (Euclidean on atomic fractions, process scaled "
                                     "to [0, 1] by its bounds): near-replicates, e.g. alloys 1 at.% apart, waste a "
                                     "round. Kept while the space has room; `0` turns it off. On a candidate pool the "
                                     "optimiser only never repeats an entry, and gap filling keeps at most half the "
                                     "pool's typical spacing.",
    "TransferSpec.from": "The sources: each a store query (every filter given must match), a table file or a model file.",
    "TransferSourceSpec.campaign": "Records filed under this campaign.",
    "TransferSourceSpec.method": "Records of this method (a calculation method, a lab's name, an imported table's method).",
    "TransferSourceSpec.source": "Only computed or only experimental records.",
    "TransferSourceSpec.elements": "Records containing every one of these elements.",
    "TransferSourceSpec.table": "A table file (CSV/XLSX) read as the sheet reader reads it, instead of the store; relative to this file.",
    "TransferSourceSpec.table_map": "Column map of the table (`configs/sheets/*.yaml`; relative to this file).",
    "TransferSourceSpec.model": "A model file exported by `dm-hpc models CAMPAIGN --export FILE` (a standard model): its predictions are the source; relative to this file.",
    "TransferSourceSpec.property": "The source's property that informs the campaign's first objective (default: that objective).",
    "TransferSourceSpec.label": "The source's name in the report (default: its filters).",
}

#: The sections of the page: (heading, model, how the field is written in the file).
SECTIONS = (
    ("Top level", "CampaignSpec", ""),
    ("`vocabulary`", "VocabularySpec", "vocabulary."),
    ("`vocabulary.properties.<name>`, `vocabulary.process_parameters.<name>`", "TermSpec", "vocabulary.*.<name>."),
    ("`space`", "SpaceSpec", "space."),
    ("`space.process.<parameter>`", "BoundSpec", "space.process.<parameter>."),
    ("`objectives[]`", "ObjectiveSpec", "objectives[]."),
    ("`constraints[]`", "ConstraintSpec", "constraints[]."),
    ("`fidelities[]`", "FidelitySpec", "fidelities[]."),
    ("`budget`", "BudgetSpec", "budget."),
    ("`stopping`", "StoppingSpec", "stopping."),
    ("`runner`", "RunnerSpec", "runner."),
    ("`learning`", "LearningSpec", "learning."),
    ("`transfer`", "TransferSpec", "transfer."),
    ("`transfer.from[]`", "TransferSourceSpec", "transfer.from[]."),
)

_HEADER = ("<!-- Generated by `python -m dm_hpc.campaign.schema_doc` from {source}; do not edit by hand "
           "(tests/campaign/test_guide.py fails when it differs). -->\n")


def _type(s: dict[str, Any], defs: dict[str, Any]) -> str:
    """A JSON Schema fragment as a reader would say it."""
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[-1]
        target = defs[name]
        if "enum" in target:
            return " \\| ".join(f"`{v}`" for v in target["enum"])
        return "mapping (below)"
    if "anyOf" in s:
        kinds = [_type(k, defs) for k in s["anyOf"] if k.get("type") != "null"]
        return " or ".join(kinds)
    if "const" in s:
        return f"`{s['const']}`"
    if "enum" in s:
        return " \\| ".join(f"`{v}`" for v in s["enum"])
    kind = s.get("type")
    if kind == "array":
        if "prefixItems" in s:
            return "[" + ", ".join(_type(k, defs) for k in s["prefixItems"]) + "]"
        return f"list of {_type(s.get('items', {}), defs)}"
    if kind == "object":
        extra = s.get("additionalProperties")
        return f"mapping of name to {_type(extra, defs)}" if isinstance(extra, dict) else "mapping"
    if s.get("format") == "path":
        return "path"
    return {"string": "text", "number": "number", "integer": "integer", "boolean": "true/false"}.get(kind, "any")


def _limits(s: dict[str, Any]) -> str:
    words = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<", "minItems": "items >="}
    for k in s.get("anyOf", []):
        s = {**k, **s}
    return ", ".join(f"{words[k]} {s[k]}" for k in words if k in s)


def _default(name: str, s: dict[str, Any], required: set[str]) -> str:
    if name in required:
        return "**required**"
    if "default" not in s:  # a default factory: an empty list or mapping, or the section's defaults
        return "its defaults" if "$ref" in s else "empty"
    d = s["default"]
    if d is None:
        return "none"
    if d in ({}, [], ""):
        return "empty"
    return f"`{json.dumps(d)}`" if not isinstance(d, str) else f"`{d}`"


def campaign_file_page() -> str:
    schema = CampaignSpec.model_json_schema()
    defs = {**schema.pop("$defs"), "CampaignSpec": schema}
    md = [_HEADER.format(source="the campaign model (`dm_hpc/campaign/spec.py`)"),
          "# The campaign file, field by field", "",
          "A campaign is one YAML file, checked by `dm-hpc validate FILE` (errors name the field). "
          "Its JSON Schema is `campaigns/schema.json` (editors such as VS Code can check a file "
          "against it). What each field means:", "",
          "- **Paths** (`store`, `workdir`, `space.pool`, `space.pool_map`, `runner.site`, "
          "`fidelities[].emulate_from`, `emulate_map`, `transfer.from[].table`, `table_map`, `model`) are relative "
          "to the campaign file's folder (a leading `~` is the home folder), "
          "as in compose files, so a campaign means the same from any working folder (cron, "
          "scrontab, a notebook).",
          "- **Durations** (`walltime`, `turnaround`, `wall_time`) are `90s`, `30m`, `6h`, `2d` or a "
          "number of seconds (not minutes, as Slurm reads a bare `--time`: `dm-hpc validate` warns "
          "about each bare number, so write the unit).",
          "- **Units**: every value with a unit is converted to the property's canonical unit "
          "([vocabulary](vocabulary.md)) once, when the file is read.", ""]
    for heading, model, prefix in SECTIONS:
        s = defs[model]
        required = set(s.get("required", []))
        md += [f"## {heading}", ""]
        doc = " ".join((s.get("description") or "").split())
        if doc:
            md += [doc, ""]
        md += ["| field | type | default | limits | meaning |", "|---|---|---|---|---|"]
        for name, field in s["properties"].items():
            meaning = MEANING.get(f"{model}.{name}", "")
            md.append(f"| `{prefix}{name}` | {_type(field, defs)} | {_default(name, field, required)} | "
                      f"{_limits(field) or '-'} | {meaning} |")
        md.append("")
    return "\n".join(md)


def vocabulary_page() -> str:
    from dm_hpc.data import vocabulary

    md = [_HEADER.format(source="`dm_hpc/data/properties.yaml`"),
          "# Vocabulary and units", "",
          "Every property and process parameter has one canonical unit; values are stored in it. "
          "A campaign file, a lab sheet or an import may use any unit pint converts to it "
          "(`degC` or `°C` for K, `min` for h, `MPa` for GPa, `g/cm3` or `g/cm^3`, `wt%`); a unit of "
          "the wrong dimension is refused with the property's name. The physical range is checked "
          "on every value read (a negative density is an error naming the row).", ""]
    # The standard vocabulary only: terms a campaign declared in this process are its own.
    for title, kind, names in (("Properties", "property", vocabulary.property_names(declared=False)),
                               ("Process parameters", "process_parameter",
                                vocabulary.process_parameter_names(declared=False))):
        md += [f"## {title}", "", "| name | canonical unit | physical range | description |", "|---|---|---|---|"]
        for name in names:
            t = vocabulary.term(name, kind)
            rng = ", ".join(filter(None, ["> 0" if t.positive else "",
                                          f">= {t.minimum:g}" if t.minimum is not None else "",
                                          f"<= {t.maximum:g}" if t.maximum is not None else ""])) or "-"
            md.append(f"| `{name}` | {t.unit} | {rng} | {t.description or '-'} |")
        md.append("")
    return "\n".join(md)


PAGES = {"campaign-file.md": campaign_file_page, "vocabulary.md": vocabulary_page}


def undocumented() -> tuple[list[str], list[str]]:
    """(fields without a meaning, meanings of fields that no longer exist)."""
    schema = CampaignSpec.model_json_schema()
    defs = {**schema.pop("$defs"), "CampaignSpec": schema}
    fields = {f"{model}.{name}" for _, model, _ in SECTIONS for name in defs[model]["properties"]}
    return sorted(fields - set(MEANING)), sorted(set(MEANING) - fields)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare with the committed pages")
    ap.add_argument("--out", type=Path, default=GUIDE)
    args = ap.parse_args(argv)
    stale = []
    for name, page in PAGES.items():
        text = page()
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python -m dm_hpc.campaign.schema_doc): " + ", ".join(stale), file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
