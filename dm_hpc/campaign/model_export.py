"""Exporting model files (``campaign.standard``'s format): a registered version
(``export_version``) or the model a campaign uses now, its transfer sources included
(``export_campaign_model``: the improved model of the round trip). What a file holds and how it
is read back safely is ``campaign.standard``'s docstring.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.campaign.standard import (
    LEVELS_WITH_MODEL_SOURCES,
    ModelFile,
    ModelFileError,
    ModelOnSpace,
    RecordsOnOwnElements,
    _features_of,
    _save,
    held_levels,
    load_model_file,
)


def _credit(campaign: CampaignSpec, record_ids: set[str]) -> list[dict[str, Any]]:
    """Contributors and institutions of ``record_ids`` with their record counts (the plan's credit).
    Every one of ``record_ids`` counts, a record retracted or corrected since among them: the model
    learned from it (so the counts add up to the records it was trained on; ``withdrawn_since`` says
    how many of them are withdrawn now)."""
    from dm_hpc.data import Store

    counts: dict[tuple, int] = {}
    with Store.open(campaign.store, "r") as store:
        for r in store.records(superseded=True):
            if r.record_id in record_ids:
                p = r.provenance
                key = (p.contributor or "", p.institution or "", p.source.value, p.method)
                counts[key] = counts.get(key, 0) + 1
    return [{"contributor": c or None, "institution": i or None, "source": s, "method": m, "records": n}
            for (c, i, s, m), n in sorted(counts.items())]


def withdrawn_since(campaign: CampaignSpec, record_ids: set[str]) -> dict[str, int]:
    """How many of ``record_ids`` (those a version was trained on) were retracted, and how many
    corrected (replaced by a later record), since: ``{"retracted": n, "corrected": m}``."""
    from dm_hpc.data import Store
    from dm_hpc.data.store import RETRACTION_METHOD

    with Store.open(campaign.store, "r") as store:
        gone = store.superseded_ids() & record_ids
        retracted: set[str] = set()
        if gone:
            for r in store.records(method=RETRACTION_METHOD, superseded=True):
                retracted.update(r.provenance.supersedes or ())
    return {"retracted": len(gone & retracted), "corrected": len(gone - retracted)}


def _hyper_parameters(state_dict: dict) -> dict[str, Any]:
    """The small tensors of a ``state_dict`` (kernel, likelihood, mean, task covariance) as lists; the
    training data and its transforms are in the file, not repeated here."""
    out = {}
    for k, v in state_dict.items():
        if v.numel() <= 64 and "train" not in k:
            out[k] = v.detach().cpu().reshape(-1).tolist()
    return out


def _model_sources(campaign: CampaignSpec) -> list[ModelFile]:
    return [load_model_file(s.model) for s in (campaign.transfer.from_ if campaign.transfer else ()) if s.model is not None]


def _access_levels(campaign: CampaignSpec, record_ids: list[str]) -> dict[str, int]:
    """How many of ``record_ids`` are at each access level today: a model file carries its
    training data (inputs and values), so whoever shares it must know what it holds."""
    from collections import Counter

    from dm_hpc.data.access import AccessMap, AccessRule

    rules = AccessMap(campaign.store).rules()
    return dict(Counter(rules.get(rid, AccessRule()).effective().value for rid in record_ids))


def export_version(campaign: CampaignSpec, version: str | None, out: Path,
                   contributors: list[str] | None = None) -> Path:
    """Write registered model ``version`` (default: current) of ``campaign`` to ``out`` with its
    training provenance (module docstring). ``contributors``: names credited beyond those the
    records carry. Raises ``registry.RegistryError`` for an unknown version, or one trained on
    other inputs than the campaign's design space has today (``registry.inputs_problem``)."""
    import torch

    from dm_hpc.campaign import registry
    from dm_hpc.campaign.strategy import design_space
    from dm_hpc.learn.persist import LOAD_ERRORS, load_error_text

    version = version or registry.current(campaign)
    found = {v.version: v for v in registry.versions(campaign)}
    if version is None:  # nothing registered yet: say how one comes to be, not "version None"
        raise registry.RegistryError(f"{campaign.name}: no model version is registered yet: train one "
                                     f"(dm-hpc train CAMPAIGN), or export the campaign's model with its "
                                     "sources (--with-transfer)")
    if version not in found:
        damaged = registry.unusable(campaign, version)
        if damaged is not None:  # a damaged or vanished version: what is wrong, not a raw Errno of its model.pt
            raise registry.RegistryError(f"{campaign.name}: {damaged}; nothing exported "
                                         f"(registered: {', '.join(found) or 'none usable'})")
        raise registry.RegistryError(f"{campaign.name}: no model version {version!r} "
                                     f"(registered: {', '.join(found) or 'none'})")
    v = found[version]
    space = design_space(campaign)
    other_inputs = registry.inputs_problem(campaign, version, v.meta, space)
    if other_inputs:  # its file would name today's elements as the inputs of a model trained on others
        raise registry.RegistryError(other_inputs)
    space = registry.version_space(v.meta, space)  # its features on the process ranges it was trained on
    try:
        state = torch.load(v.path / "model.pt", weights_only=True, map_location="cpu")
    except LOAD_ERRORS as exc:
        raise registry.RegistryError(f"{campaign.name}: model version {version}: {v.path / 'model.pt'} cannot be "
                                     f"read ({type(exc).__name__}: {load_error_text(exc)}); nothing exported") from None
    ids = sorted(registry.trained_on(v))
    meta = v.meta
    provenance = {
        "kind": "registered version", "campaign": campaign.name, "version": version,
        "material_class": campaign.material_class, "created": meta.get("created"),
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model_kind": meta.get("surrogate"), "properties": meta.get("properties"),
        "store": {"path": meta.get("store"), "generation": meta.get("store_generation")},
        "records": {"count": meta.get("records"), "trained_on": meta.get("trained_on"),
                    "sha256": meta.get("records_sha256"), "ids": ids,
                    # records it learned from that the store withdrew since (the CLI warns)
                    "withdrawn_since": withdrawn_since(campaign, set(ids))},
        "clearance": registry.trained_clearance(meta).value,  # a version from before: every record
        "access_levels": _access_levels(campaign, ids),
        "metrics": {"held_out": meta.get("held_out")},
        "hyper_parameters": _hyper_parameters(state.get("state_dict", {})) if "state_dict" in state else {},
        "engine_version": meta.get("code_version"),
        "contributors": _credit(campaign, set(ids)) + [{"contributor": c, "records": 0} for c in contributors or ()],
        # a registered version learns from the campaign's own records alone (``registry.train``), whatever
        # model files the campaign file names today (review: it claimed a file it never read)
        "derived_from": [],
    }
    return _save(out, provenance, _features_of(space, list(meta.get("properties") or campaign.properties)), state)


def export_campaign_model(campaign: CampaignSpec, out: Path, contributors: list[str] | None = None) -> Path:
    """Write the model ``campaign`` uses now (fitted on its store's records, with its transfer
    sources under the guard) to ``out``: the improved model of the round trip. Its provenance
    names the records, the model chosen (cold, multitask or prior), each source's weight, the
    cross-validated gain and ``derived_from``: the provenance of each model file among the sources."""
    import torch

    from dm_hpc.campaign.dataset import MIN_TRAINING_RECORDS, training_set
    from dm_hpc.campaign.registry import _code_version
    from dm_hpc.campaign.strategy import design_space, fit_model
    from dm_hpc.data import Store
    from dm_hpc.learn.transfer import transfer_state

    with Store.open(campaign.store, "r") as store:
        df = store.to_dataframe()
        generation = store.info()["generation"]
    data = training_set(campaign, df)
    if data.fewest < MIN_TRAINING_RECORDS:
        raise ModelFileError(f"{campaign.name}: {data.fewest} usable record(s) in {campaign.store}; "
                             f"a model needs {MIN_TRAINING_RECORDS}")
    fitted = fit_model(campaign, data)
    info = getattr(fitted, "transfer", None)
    if info is None or "fit" not in info:
        raise ModelFileError(f"{campaign.name} has no transfer sources that enter its model (one property, one "
                             "fidelity); export a registered version with --version instead")
    fit = info["fit"]
    state = transfer_state(fit, _source_state)
    ids = sorted(data.record_ids)
    # a source's records travel in the file too (a store source's GP conditions on them, the multi-task
    # GP holds them as rows): they count in what the file holds and in its credit (review: another
    # campaign's embargoed records left unreported)
    held = sorted({rid for s in data.transfer if s.model is None for rid in s.record_ids} - set(ids)) \
        if fit.kind != "cold" else []
    in_store = set(df["record_id"]) if "record_id" in df.columns else set()
    models = _model_sources(campaign)
    levels = _access_levels(campaign, ids + sorted(set(held) & in_store))
    if fit.kind != "cold":  # a model source travels whole inside the file, its training rows with it
        for m in models:
            nested = held_levels(m.provenance)
            # a file that does not say: its records are at a level nobody can tell (counted as unknown)
            for k, n in (nested if nested is not None else {"unknown": len(m.record_ids()) or 1}).items():
                levels[k] = levels.get(k, 0) + n
    provenance = {
        "kind": "campaign model with transfer", "campaign": campaign.name, "material_class": campaign.material_class,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "model_kind": f"transfer:{fit.kind}",
        "properties": list(campaign.properties),
        "store": {"path": str(campaign.store), "generation": generation},
        "records": {"count": len(ids), "trained_on": len(ids),
                    "sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(), "ids": ids},
        # a table source's rows are not the store's: no access level of its own to count them at
        "source_records": {"count": len(held), "ids": held, "from_tables": len(set(held) - in_store)},
        # every record inside the file: its own, its store sources' and its model sources' (``held_levels``)
        "access_levels": levels, LEVELS_WITH_MODEL_SOURCES: True,
        "metrics": {"loo_log_density": fit.loo, "loo_rmse": fit.loo_rmse},
        "weights": dict(fit.weights),
        "hyper_parameters": _hyper_parameters(fit.model.state_dict()),
        "engine_version": _code_version(),
        "contributors": _credit(campaign, set(ids) | set(held)) + [{"contributor": c, "records": 0} for c in contributors or ()],
        "derived_from": [m.summary() for m in models],
    }
    return _save(out, provenance, _features_of(design_space(campaign), list(campaign.properties)), state)


def _source_state(model) -> dict:
    """A ready prior-mean source model as plain values: a model file on the campaign's space nested
    whole, a store source's GP on its own elements with the rows it conditions on and its features
    (source GPs that ``fit_transfer`` fitted on the campaign's features are saved by ``transfer_state``
    itself)."""
    if isinstance(model, ModelOnSpace):
        return {"kind": "model-file", "file": model.file.state, "property": model.file.properties[model.column],
                "space": _features_of(model.space, [])}
    if isinstance(model, RecordsOnOwnElements):
        from dm_hpc.learn.persist import surrogate_state

        return {"kind": "records-on-own-elements", "gp": surrogate_state(model.gp, "gp", model.X, model.y),
                "features": model.features, "space": _features_of(model.space, [])}
    raise ModelFileError(f"cannot save a source model of type {type(model).__name__}")
