"""The "standard model" round trip (issue 22 item 3): a model leaves one campaign as a file with its
training provenance, enters another as a transfer source, and comes back improved, its provenance
chained to the first.

A model file (``model_export.export_version``: a registered version; ``export_campaign_model``:
the model a campaign uses now, its transfer sources included) is one ``torch.save`` of plain values:

- ``format`` / ``format_version``: ``FORMAT`` and ``FORMAT_VERSION``; anything else is refused;
- ``provenance``: JSON text: what was trained on (record count, sha256 of the sorted record ids, and
  the ids), campaign, store and its generation, model kind, hyper-parameters, held-out metrics, dates,
  engine version, contributors and institutions of the records with their counts (the data standard's
  credit), and ``derived_from``: the provenance of every model file it learned from (the chain);
- ``features``: JSON text: the element list, descriptor flag, process boxes and properties that fix
  the model's inputs and outputs;
- ``surrogate``: the model as tensors (``learn.persist`` for a registered version,
  ``learn.transfer.transfer_state`` for a campaign's transfer model; a prior-mean source nested as
  a whole model file of its own).

Loading (``load_model_file``) reads it with ``torch.load(weights_only=True)``: tensors, numbers,
strings, lists and dicts only, never a pickled object from a partner. A file that is damaged,
foreign or of another format raises ``ModelFileError`` naming the file and the problem.

A GP's saved state holds the inputs and outcomes it conditions on (it needs them to predict): a
model file carries its training values, so export only what may be shared.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dm_hpc.campaign.spec import CampaignError
from dm_hpc.data.integrity import sha256_file

FORMAT = "dm-hpc-model"
FORMAT_VERSION = 1


class ModelFileError(CampaignError):
    """A model file that cannot be used (damaged, foreign, another format), with the file named."""


@dataclass(frozen=True)
class ModelFile:
    """A loaded model file. ``model``: a BoTorch ``Model`` on ``features``' inputs (``n x d ->
    n x m``, m = ``len(properties)``); ``sha256``: of the file's bytes (its identity in a chain)."""

    path: Path
    sha256: str
    provenance: dict[str, Any]
    features: dict[str, Any]
    model: Any
    #: the file's whole payload (nested whole in a model that learned from this one)
    state: dict[str, Any]

    @property
    def properties(self) -> list[str]:
        return list(self.features["properties"])

    def summary(self) -> dict[str, Any]:
        """The provenance a model trained with this one records (``derived_from``)."""
        return {"file": self.path.name, "sha256": self.sha256, **self.provenance}

    def record_ids(self) -> set[str]:
        """Every record id the file's model learned from: its own training records, its sources'
        (``source_records``) and, down the ``derived_from`` chain, those of each model it derives from."""
        return _chain_ids(self.provenance)


#: a provenance key set by exports that count their model sources' records in ``access_levels``
#: (files written before count their own and their store sources' only: ``held_levels`` adds the chain's)
LEVELS_WITH_MODEL_SOURCES = "access_levels_with_model_sources"


def held_levels(provenance: dict[str, Any]) -> dict[str, int] | None:
    """How many records at each access level a model file holds, down its ``derived_from`` chain
    (a nested model file travels whole inside the file that learned from it, with its training
    rows); None when the file (or a model in its chain) does not say (a file from before levels
    were recorded): nobody can tell what it holds."""
    levels = provenance.get("access_levels")
    if not isinstance(levels, dict):
        return None
    out = {str(k): int(n) for k, n in levels.items()}
    if provenance.get(LEVELS_WITH_MODEL_SOURCES):
        return out
    for parent in provenance.get("derived_from") or ():
        nested = held_levels(parent) if isinstance(parent, dict) else None
        if nested is None:
            return None
        for k, n in nested.items():
            out[k] = out.get(k, 0) + n
    return out


def highest_level(provenance: dict[str, Any]):
    """The highest access level among the records a model file holds (``held_levels``): the
    clearance a reader needs to be served its predictions (``registry.may_read``). Unknown levels
    count as embargoed (the reading that serves the file to the fewest, as ``registry.trained_clearance``
    reads a version that recorded none)."""
    from dm_hpc.data.access import AccessLevel

    levels = held_levels(provenance)
    if levels is None:
        return AccessLevel.embargoed
    try:
        held = [AccessLevel(k) for k, n in levels.items() if n]
    except ValueError:  # a hand-edited level: not one a reader can be cleared for
        return AccessLevel.embargoed
    return max(held, key=lambda level: level.rank, default=AccessLevel.public)


def _chain_ids(provenance: dict[str, Any]) -> set[str]:
    ids = {str(i) for key in ("records", "source_records") for i in ((provenance.get(key) or {}).get("ids") or ())}
    for parent in provenance.get("derived_from") or ():
        if isinstance(parent, dict):
            ids |= _chain_ids(parent)
    return ids


# --- features: the model's inputs, rebuilt from compositions -------------------------------------

def _features_of(space, properties: list[str]) -> dict[str, Any]:
    return {"elements": list(space.element_names), "descriptors": bool(space.descriptors),
            "process": {k: [float(lo), float(hi)] for k, (lo, hi) in (space.process or {}).items()},
            "properties": list(properties)}


def featurize_for(features: dict[str, Any], compositions: np.ndarray, elements: list[str],
                  process: dict[str, np.ndarray]):
    """``n x d`` inputs of a model with ``features`` for ``n x E`` fractions over ``elements`` and
    process values by name (canonical units; a parameter the model has and the caller lacks takes
    the middle of the model's box). Elements the model never saw are left out and the rest
    renormalised (a row of only such elements stays 0: the model knows nothing about it)."""
    from dm_hpc.learn.features import featurize

    own = features["elements"]
    frac = np.zeros((len(compositions), len(own)))
    for j, el in enumerate(own):
        if el in elements:
            frac[:, j] = compositions[:, elements.index(el)]
    total = frac.sum(1, keepdims=True)
    frac = frac / np.where(total > 0, total, 1.0)
    bounds = {k: tuple(v) for k, v in features["process"].items()}
    proc = None
    if bounds:
        n = len(compositions)
        proc = np.column_stack([process[k] if k in process else np.full(n, 0.5 * (lo + hi)) for k, (lo, hi) in bounds.items()])
    return featurize(frac, own, proc, bounds or None, descriptors=features["descriptors"])


def _read_space(space, X) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A campaign's features ``N x d`` (``DesignSpace.featurize``) back to ``N x E`` fractions over
    its elements and process values by name (canonical units)."""
    flat = X.detach().reshape(-1, X.shape[-1]).cpu().numpy()
    E = len(space.element_names)
    start = E + (8 if space.descriptors else 0)
    proc = {}
    for j, (name, (lo, hi)) in enumerate((space.process or {}).items()):  # scaled columns back to canonical units
        proc[name] = lo + flat[:, start + j] * (hi - lo)
    return flat[:, :E], proc


class ModelOnSpace:
    """A model file's prediction of one property, on a campaign's features: ``posterior(X).mean``
    of ``batch x n x d`` campaign features (``DesignSpace.featurize``) is ``batch x n x 1``.

    The campaign's features are turned back into fractions and process values and featurised for
    the model (``featurize_for``). Through numpy: no gradient flows into ``X`` (proposals score
    candidate sets, they do not differentiate the prior mean).
    """

    def __init__(self, file: ModelFile, space, prop: str):
        if prop not in file.properties:
            raise ModelFileError(f"{file.path.name}: the model predicts {', '.join(file.properties)}, not {prop}")
        self.file, self.space, self.column = file, space, file.properties.index(prop)

    def posterior(self, X):
        import torch

        from dm_hpc.learn import predict

        frac, proc = _read_space(self.space, X)
        Xm = featurize_for(self.file.features, frac, list(self.space.element_names), proc)
        mean, _ = predict(self.file.model, Xm)
        out = torch.as_tensor(np.asarray(mean)[:, self.column], dtype=X.dtype).reshape(*X.shape[:-1], 1)
        return _Mean(out)


class RecordsOnOwnElements:
    """A source's GP fitted on its records featurised on the source's own elements (``features``:
    as a model file's), read on a campaign's features as a model file is (``featurize_for``): a
    campaign composition with elements the source never had is read with them left out and the rest
    renormalised, its descriptors recomputed; records with elements the campaign lacks are part of
    the fit instead of being left out. ``posterior(batch x n x d)`` is the GP's own at the read
    inputs (mean ``batch x n x 1`` and covariance, which the prior model takes in). Through numpy,
    as ``ModelOnSpace``: no gradient flows into ``X``. ``X``, ``y``: the ``n_s x d_s`` and ``n_s x 1``
    rows the GP conditions on (saved with it), read from the GP itself."""

    def __init__(self, gp, features: dict[str, Any], space):
        self.gp, self.features, self.space = gp, features, space

    @property
    def X(self):
        from dm_hpc.learn.gp import conditioned_rows

        return conditioned_rows(self.gp)[0]

    @property
    def y(self):
        from dm_hpc.learn.gp import conditioned_rows

        return conditioned_rows(self.gp)[1]

    @property
    def n_conditioned(self) -> int:
        """Rows the GP conditions on (``learn.transfer.Source.model``'s count of them)."""
        return int(self.gp.train_targets.shape[-1])

    def posterior(self, X):
        import torch

        frac, proc = _read_space(self.space, X)
        Xm = featurize_for(self.features, frac, list(self.space.element_names), proc)
        return self.gp.posterior(torch.as_tensor(np.asarray(Xm), dtype=X.dtype).reshape(*X.shape[:-1], Xm.shape[-1]))


@dataclass(frozen=True)
class _Mean:
    mean: Any


# --- saving (the exports are ``model_export``'s) ------------------------------------------------------------------------------------

def _save(path: Path, provenance: dict, features: dict, surrogate: dict) -> Path:
    import os
    import tempfile

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "provenance": json.dumps(provenance),
               "features": json.dumps(features), "surrogate": surrogate}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    torch.save(payload, tmp)
    os.replace(tmp, path)  # never a half-written model file under the name a partner will read
    return path


# --- loading -----------------------------------------------------------------------------------

def _payload_model(payload: dict, where: str):
    """The BoTorch model of a file's ``surrogate`` entry."""
    from dm_hpc.learn.persist import rebuild_surrogate
    from dm_hpc.learn.transfer import rebuild_transfer

    state = payload["surrogate"]
    if not isinstance(state, dict):
        raise ModelFileError(f"{where}: the surrogate entry is not a saved model")
    if state.get("kind") == "transfer":
        return rebuild_transfer(state, lambda s: _nested_source(s, where))
    return rebuild_surrogate(state)


def _nested_source(saved: dict, where: str):
    from dm_hpc.acquire import DesignSpace

    if saved.get("kind") not in ("model-file", "records-on-own-elements"):
        raise ModelFileError(f"{where}: a nested source model of unknown kind {saved.get('kind')!r}")
    f = saved["space"]
    space = DesignSpace(elements={e: (0.0, 1.0) for e in f["elements"]},
                        process={k: tuple(v) for k, v in f["process"].items()}, descriptors=f["descriptors"])
    if saved["kind"] == "records-on-own-elements":
        from dm_hpc.learn.persist import rebuild_surrogate

        return RecordsOnOwnElements(rebuild_surrogate(saved["gp"]), saved["features"], space)
    return ModelOnSpace(_from_payload(saved["file"], Path(where), ""), space, saved["property"])


def _from_payload(payload: Any, path: Path, sha: str) -> ModelFile:
    where = str(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{where} is not a dm-hpc model file (no {FORMAT!r} format tag); export one with "
                             "`dm-hpc models CAMPAIGN --export FILE`")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{where}: model file format {payload.get('format_version')!r}; this dm-hpc reads "
                             f"{FORMAT_VERSION}")
    try:
        provenance = json.loads(payload["provenance"])
        features = json.loads(payload["features"])
        for key in ("elements", "descriptors", "process", "properties"):
            features[key]
        model = _payload_model(payload, where)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{where}: damaged model file ({type(exc).__name__}: {exc})") from exc
    return ModelFile(path, sha, provenance, features, model, payload)


def load_model_file(path: Path) -> ModelFile:
    """Read a model file (module docstring); ``ModelFileError`` names the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} not found")
    return _load_cached(path.resolve(), path.stat().st_mtime_ns, path.stat().st_size)


@lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int, size: int) -> ModelFile:
    import warnings

    import torch

    from dm_hpc.learn.persist import LOAD_ERRORS, load_error_text

    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning: the error below says it
            warnings.simplefilter("ignore")
            payload = torch.load(path, weights_only=True, map_location="cpu")
    except LOAD_ERRORS as exc:
        raise ModelFileError(f"{path} cannot be read as a model file: damaged, or not a dm-hpc model file "
                             f"(only tensors and plain values are read: {load_error_text(exc)})") from exc
    return _from_payload(payload, path, sha256_file(path))
