"""Model registry: the periodic retraining job's output.

``train`` fits a campaign's surrogate on the store (read-only: a retraining job never writes
the store, so it runs beside a campaign) and registers it as a new version under
``RUN_DIR/models/vNNNN/``:

- ``model.pt``: the surrogate as tensors and plain values (``dm_hpc.learn.persist``: kind,
  training data, ``state_dict``) — never a pickled BoTorch object, so it reloads in a fresh
  process and under a later library version;
- ``meta.json``: the data snapshot (store generation, record count, sha256 of the sorted record
  ids), the held-out metrics (RMSE per property and 90 %-interval coverage on the records whose
  id hash falls in the lowest ``TEST_PERCENT`` buckets — a split that stays stable as data
  arrives), world size, device, code version, surrogate kind, fit time.

The held-out records are not trained on, so the metrics describe the registered model itself.
``models/CURRENT`` names the version in use. A new version becomes current only when it is no
worse than the current one beyond noise on the same held-out records (``promotion``: a paired
bootstrap); otherwise it is registered as a candidate, and its ``meta.json`` says why
(``promotion``). ``promote`` and ``rollback`` move ``CURRENT`` by hand and say what they did.
Versions are never overwritten, and never repeated: a training whose records and settings
(``settings_sha256``: kind, ranks, epochs, clearance, the code that builds the model, not the
checkout's commit, the campaign fields the model is built from and the contents of the files
among them, ``MODEL_FILES``, and the data files the targets are derived from, ``MODEL_DATA``) are
those of the latest
version registers nothing (``Unchanged``) unless forced, so every version differs from the one
before it in something a reader can trace. Two trainings of one campaign take turns
(``training_turn``: a ``flock`` on ``models/.train.lock`` from the look at the latest version to
the registration), so two jobs started together register one version, not the same model twice.
The ranks of a job launched by srun or torchrun train without it (none can wait on a flock while
the others wait for it in a collective); rank 0 takes it once they have trained, looks at the
latest version again and decides and registers under it. So does a training in a registry this
account cannot write (a read-only mount): a look writes nothing, so finding nothing new is no error.
A promotion or rollback does not wait for a training: it is refused while one holds the turn.
A version folder whose ``meta.json`` is damaged or not what a training writes (``meta_problems``), or
whose ``model.pt`` is missing or cut short, is left out of ``versions`` and named by ``damaged``.
A version number is never issued twice: ``models/LAST_VERSION`` keeps the highest one given, so a
version folder deleted or moved aside does not free its number (a registry from before the file:
the highest of its folders and of what ``CURRENT`` names). A version records the process ranges
its features were scaled by (``model_inputs``), and is loaded, compared and exported on them
(``version_space``), so a range widened in the campaign file since does not change its answers.
A training killed inside the registration leaves its ``.new-version.*`` folder, and, killed between
the rename of its version and the write of ``CURRENT``, a version meant to be current that is not
(``PENDING_CURRENT`` names it): the next training, in its turn, removes the one and makes the
other current (``_recover``); until then ``interrupted`` names it.

The kind of model is the campaign's (or ``--surrogate``), resolved by the data for "auto"; the
number of ranks never changes it: an exact GP does not split across ranks, so it trains on one
(and the others have nothing to do), and an ensemble on too few rows for the ranks asked trains
on fewer (``ranks_for``). Each such fallback is a note in ``meta.json`` that ``dm-hpc train``
prints.

The large-data surrogate trains data-parallel (``dm_hpc.learn.distributed``): every rank calls
``train`` with its ``World``, reads the store, featurises only its slice of the training rows,
and rank 0 registers. The ranks first agree on what they read (``_agreed_snapshot``): a campaign
may write the store between two ranks' reads, and ranks that read different records decide apart.
The only thing taken from the campaign's own model fitting is ``design_space`` (features) and
``target_index`` (which fidelity a multi-fidelity model predicts).
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dm_hpc.campaign.dataset import TrainingSet, training_set
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.campaign.strategy import design_space, target_index
from dm_hpc.data import Store, StoreError
from dm_hpc.data.access import AccessLevel, AccessMap
from dm_hpc.data.integrity import fsync_dir, sha256_file

#: Records whose id hash (0-99) is below this are held out to measure every registered model.
TEST_PERCENT = 20
#: The next buckets calibrate the ensemble's intervals (``dm_hpc.learn.ensemble``).
CALIBRATION_PERCENT = 10
#: Fewest values of each property a version is trained on (an ensemble: fewest records holding
#: every property, since it learns all at once). One more than a campaign's own fit needs
#: (``dataset.MIN_TRAINING_RECORDS``): a registered version is kept to be compared and served.
MIN_TRAIN_RECORDS = 3
#: Below this many usable records nothing is held out (metrics would be noise); n/a is recorded.
MIN_RECORDS_FOR_TEST = 10


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (no data, unknown version)."""


class NotEnoughData(RegistryError):
    """Too few usable records to train on, or no store yet: for a scheduled ``train
    --if-new-data`` this is "nothing to do yet", not a failure."""


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version (``meta`` is its ``meta.json``)."""

    version: str
    path: Path
    meta: dict[str, Any]


@dataclass(frozen=True)
class Unchanged:
    """What ``train`` returns instead of registering a duplicate: ``version``, the latest one, was
    trained on the same records with the same settings (``TrainOptions.force`` registers anyway)."""

    version: ModelVersion


@dataclass(frozen=True)
class TrainOptions:
    """Settings of one retraining.

    Attributes:
        kind: surrogate kind ("auto", "gp", "multitask", "ensemble"); default: the campaign's
            ``learning.surrogate``. Ranks never change it (see the module docstring).
        checkpoint_every: optimiser steps between checkpoints of an ensemble training.
        register: register a new version (else only report).
        if_new_data: do nothing when the records are those of the latest version (whatever the
            settings: the scheduled job's rule).
        force: register a new version even when the latest one holds the same records and settings.
        epochs: passes over the data of an ensemble training (default: ``EnsembleConfig``'s).
        clearance: train only on records readable at this access level (``data.access``); the
            default reads every record. Recorded in ``meta.json``: a version is served only to
            callers cleared at least that far (``load(..., clearance=)``).
    """

    kind: str | None = None
    checkpoint_every: int = 200
    register: bool = True
    if_new_data: bool = False
    force: bool = False
    epochs: int | None = None
    clearance: AccessLevel = AccessLevel.embargoed


@dataclass
class Snapshot:
    """The records a training sees, and how they split (row indices into ``data``, sorted by id)."""

    data: TrainingSet
    generation: int
    sha256: str
    train: np.ndarray
    calibration: np.ndarray
    test: np.ndarray
    #: The campaign's ``design_space``, built once for the whole training (``snapshot``): every
    #: feature matrix, the recorded inputs and the comparison's load use it (a pool campaign's
    #: space is a candidate matrix, and a pool edited mid-training gave rows of two pools; the
    #: ranks of a job also compare its inputs, ``_agreed_snapshot``).
    space: Any
    fidelities: list[int] = field(default_factory=list)


def registry_dir(campaign: CampaignSpec) -> Path:
    return campaign.run_dir / "models"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk must not leave it behind
        raise
    fsync_dir(path.parent)


def _fsync_file(path: Path) -> None:
    with open(path) as fh:
        os.fsync(fh.fileno())


#: ``RUN_DIR/models/TRAIN_LOCK``: held by one training at a time, from its look at the latest version
#: to its registration, so two retraining jobs started together do not both register the same model.
TRAIN_LOCK = ".train.lock"
#: ``RUN_DIR/models/CHECKPOINTS``: an ensemble training's checkpoints, ``*`` the records' sha256 (16
#: digits): a training of the same records resumes from it (``dm_hpc.learn.distributed``).
CHECKPOINTS = ".checkpoint-*.pt"
#: Prefix of the folder a version is written in before it is renamed to ``vNNNN`` (``_register``).
NEW_VERSION = ".new-version."
#: ``RUN_DIR/models/PENDING_CURRENT``: the version a registration is making current, written before
#: its folder is renamed into place and removed once ``CURRENT`` names it (``_register``).
PENDING_CURRENT = ".pending-current"
#: ``RUN_DIR/models/LAST_VERSION``: the highest version number ever issued (``_register``), the
#: source of truth for the next one: a version folder deleted since does not give its number back.
LAST_VERSION = ".last-version"
#: What a version is named: ``v`` and at least four digits (``_register``).
VERSION_NAME = re.compile(r"v\d{4,}")
# ``.held``: registries whose lock this thread holds (``train_local_ranks`` -> ``train``), or its
# parent process does (``_spawned_rank``)
_turns = threading.local()


@contextmanager
def training_turn(campaign: CampaignSpec, busy: str | None = None) -> Iterator[bool]:
    """Hold the campaign's registry for one training: wait (saying so) for another one to register;
    with ``busy`` (a promotion or rollback), do not wait: raise ``RegistryError(busy)`` while a
    training holds it. The kernel drops the lock when its holder dies (``kill -9``), so a killed
    training blocks nothing; a training that takes the turn finishes what one killed inside
    ``_register`` left (``_recover``). Yields whether it took the turn now (False: this thread, or
    the parent process of a spawned rank, held it already)."""
    root = registry_dir(campaign)
    held = _turns.__dict__.setdefault("held", set())
    if root in held:
        yield False
        return
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / TRAIN_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if busy is not None:
                raise RegistryError(busy) from None
            print(f"{campaign.name}: waiting for another training of this campaign to register its version ...",
                  file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(root)
        try:
            if busy is None:  # not for a promotion or rollback: it decides CURRENT itself (``promote``)
                _recover(campaign)
            yield True
        finally:
            held.discard(root)
    finally:
        os.close(fd)  # releases the lock


def _pending(root: Path) -> str | None:
    """The version ``PENDING_CURRENT`` names in the registry ``root`` (None: no registration is
    making one current, or none was killed doing it)."""
    try:
        return (root / PENDING_CURRENT).read_text().strip() or None
    except FileNotFoundError:
        return None


def _drop_pending(root: Path) -> None:
    if (root / PENDING_CURRENT).exists():  # else no write: a registry on a read-only mount stays readable
        (root / PENDING_CURRENT).unlink()
        fsync_dir(root)  # a power cut must not bring back an intent that promote or a training settled


def _recover(campaign: CampaignSpec) -> None:
    """Finish what trainings killed inside ``_register`` left; the caller holds the turn, and every
    registration runs in one, so no live training is registering now.

    Its ``NEW_VERSION`` folder is removed. A version ``PENDING_CURRENT`` names that is in place
    was meant to be current (its comparison promoted it, against the ``CURRENT`` that is still
    there: a promotion or rollback by hand drops the intent) and is made current, as the killed
    training would have; one that is not in place (killed before the rename) leaves its number free.
    """
    root = registry_dir(campaign)
    for left in root.glob(f"{NEW_VERSION}*"):
        shutil.rmtree(left, ignore_errors=True)  # one this account may not remove must not stop a training
    version = interrupted(campaign)
    if version is not None:
        _atomic_write(root / "CURRENT", version + "\n")
        print(f"{campaign.name}: {version} is now the current model version: the training that registered it "
              "was killed before it made it current, as its comparison had decided", file=sys.stderr, flush=True)
    _drop_pending(root)


def interrupted(campaign: CampaignSpec) -> str | None:
    """The version a killed training registered to be current and did not make current (``_recover``
    makes it current at the next training), or None: no intent, one already settled, or a version
    that never reached its place (killed before the rename)."""
    version = _pending(registry_dir(campaign))
    if version is None or version == current(campaign):
        return None
    try:
        _meta(registry_dir(campaign) / version)
    except RegistryError:
        return None
    return version


def _bucket(record_id: str) -> int:
    return int(hashlib.sha256(record_id.encode()).hexdigest()[:8], 16) % 100


def snapshot(campaign: CampaignSpec, clearance: AccessLevel = AccessLevel.embargoed) -> Snapshot:
    """Read the store's records readable at ``clearance`` and split the usable ones into train /
    calibration / test rows."""
    if not Path(campaign.store).exists():
        last = latest(campaign)
        if last is not None:  # not "no data yet": the store that trained it is gone (unmounted, moved)
            raise RegistryError(f"{campaign.name}: no store at {campaign.store}, but model version {last.version} was "
                                f"trained on {last.meta.get('records', '?')} records of it: is its filesystem "
                                "mounted? (nothing trained)")
        raise NotEnoughData(f"{campaign.name}: no store at {campaign.store} yet (no records to train on)")
    with Store.open(campaign.store, "r") as store:
        df = AccessMap(campaign.store).scope(store.to_dataframe(), clearance)
        generation = store.info()["generation"]
    data = training_set(campaign, df)
    if data.fewest < MIN_TRAIN_RECORDS:
        raise NotEnoughData(f"{campaign.name}: only {data.fewest} usable records in {campaign.store}; "
                            f"need {MIN_TRAIN_RECORDS}")
    order = np.argsort(np.asarray(data.record_ids))
    buckets = np.array([_bucket(data.record_ids[i]) for i in order])
    held = len(data) >= MIN_RECORDS_FOR_TEST
    test = order[buckets < TEST_PERCENT] if held else order[:0]
    cal = order[(buckets >= TEST_PERCENT) & (buckets < TEST_PERCENT + CALIBRATION_PERCENT)]
    train = np.setdiff1d(order, test, assume_unique=True)
    train = train[np.argsort(np.asarray(data.record_ids)[train])]  # by id: the same slices on every rank
    sha = hashlib.sha256("\n".join(sorted(data.record_ids)).encode()).hexdigest()
    try:
        space = design_space(campaign)
    except (OSError, ValueError) as exc:  # a pool gone or damaged since the command checked it (SheetError)
        raise RegistryError(f"{campaign.name}: the candidate pool cannot be read ({str(exc).splitlines()[0]}); "
                            "nothing trained") from None
    return Snapshot(data, generation, sha, train, cal, test, space, sorted(int(f) for f in np.unique(data.fidelity)))


def _features(campaign: CampaignSpec, snap: Snapshot, rows: np.ndarray, fidelity_column: bool, space=None):
    """``len(rows) x d`` features (plus the fidelity scaled to [0, 1] as a last column when asked);
    ``space``: another design space to featurise on (a version's own process ranges; default the
    snapshot's)."""
    import torch

    from dm_hpc.learn.features import composition_matrix

    space = snap.space if space is None else space
    data = snap.data
    X = space.featurize(composition_matrix([data.compositions[i] for i in rows], space.element_names),
                        data.process[rows])
    if fidelity_column:
        nf = max(1, len(campaign.fidelities) - 1)
        X = torch.cat([X, torch.as_tensor(data.fidelity[rows] / nf, dtype=torch.double).reshape(-1, 1)], dim=-1)
    return X


def _targets(snap: Snapshot, rows: np.ndarray):
    import torch

    # the width named: a rank's share, or the held-out set below MIN_RECORDS_FOR_TEST, may be empty
    m = 1 if snap.data.Y.ndim == 1 else snap.data.Y.shape[1]
    return torch.as_tensor(snap.data.Y[rows], dtype=torch.double).reshape(len(rows), m)


def _code_version() -> str:
    import dm_hpc

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(dm_hpc.__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{dm_hpc.__version__}+{commit}" if commit else dm_hpc.__version__


def _resolve_kind(campaign: CampaignSpec, snap: Snapshot, options: TrainOptions) -> str:
    """The model kind: the one asked for, "auto" resolved by the data (never by the rank count)."""
    from dm_hpc.learn.surrogates import auto_kind

    kind = options.kind or campaign.learning.surrogate
    if kind == "auto":  # the size rule of fit_surrogate(kind="auto"), from its one home
        return auto_kind(len(snap.train), len(snap.fidelities))
    if kind == "multitask" and len(snap.fidelities) < 2:
        return "gp"
    return kind


def _complete(snap: Snapshot, rows: np.ndarray) -> np.ndarray:
    """Those of ``rows`` that hold every property: the ensemble learns all outputs at once (a GP
    kind learns each output from the rows holding it: ``fit_surrogate``)."""
    return rows[np.isfinite(snap.data.Y.reshape(len(snap.data), -1)[rows]).all(axis=1)]


def _ensemble_train(snap: Snapshot) -> np.ndarray:
    """Rows an ensemble trains on, by record id (the calibration rows are kept apart)."""
    train = _complete(snap, np.setdiff1d(snap.train, snap.calibration))
    return train[np.argsort(np.asarray(snap.data.record_ids)[train])]


def _ensemble_rows(snap: Snapshot) -> int:
    return len(_ensemble_train(snap))


def _layout(kind: str, snap: Snapshot, requested: int) -> tuple[int, list[str]]:
    """Ranks that train a ``kind`` model on ``snap`` when ``requested`` are asked, and the notes that say why fewer."""
    from dm_hpc.learn.distributed import MIN_ROWS_PER_RANK, ranks_for

    if requested <= 1:
        return 1, []
    if kind != "ensemble":
        return 1, [f"{kind} is an exact GP, which does not split across ranks: trained on 1 of {requested} "
                   "ranks (the kind is kept; --surrogate ensemble trains the data-parallel ensemble)"]
    rows = _ensemble_rows(snap)
    used = ranks_for(rows, requested)
    if used < requested:
        return used, [f"{rows} training rows are too few for {requested} ranks (at least {MIN_ROWS_PER_RANK} "
                      f"per rank): trained on {used} rank(s)"]
    return used, []


def _target_fidelity(campaign: CampaignSpec, snap: Snapshot) -> int:
    """The fidelity a multi-fidelity model predicts (the campaign's target, else the highest present)."""
    tgt = target_index(campaign)
    return tgt if tgt in snap.fidelities else max(snap.fidelities)


def _comparison_rows(campaign: CampaignSpec, snap: Snapshot) -> np.ndarray:
    """Held-out rows on which models are measured: those of the predicted fidelity."""
    if len(snap.fidelities) < 2:
        return snap.test
    return snap.test[snap.data.fidelity[snap.test] == _target_fidelity(campaign, snap)]


def _train_gp(campaign: CampaignSpec, snap: Snapshot, kind: str) -> tuple[Any, dict, dict]:
    """Exact or multi-task GP on the training rows; ``(model, saved state, held-out metrics)``."""
    import torch

    from dm_hpc.learn import fit_surrogate
    from dm_hpc.learn.persist import surrogate_state
    from dm_hpc.learn.quality import held_out_quality

    X, Y = _features(campaign, snap, snap.train, False), _targets(snap, snap.train)
    task, target = None, None
    if kind == "multitask":
        task = torch.as_tensor(snap.data.fidelity[snap.train])
        target = _target_fidelity(campaign, snap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_surrogate(X, Y, kind=kind, task_index=task, target_task=target)
    test_rows = snap.test
    if kind == "multitask":  # measured on the fidelity the model predicts
        test_rows = _comparison_rows(campaign, snap)
    quality = held_out_quality(model, _features(campaign, snap, test_rows, False), _targets(snap, test_rows))
    return model, surrogate_state(model, kind, X, Y, task, target), quality.as_dict()


def _rank_data(campaign: CampaignSpec, snap: Snapshot, world, fidelity_column: bool):
    from dm_hpc.learn.distributed import RankData, row_slice

    def share(rows):
        lo, hi = row_slice(len(rows), world)
        part = rows[lo:hi]
        return _features(campaign, snap, part, fidelity_column), _targets(snap, part), lo

    train = _ensemble_train(snap)
    X, Y, offset = share(train)
    Xc, Yc, _ = share(_complete(snap, snap.calibration))
    Xt, Yt, _ = share(_complete(snap, snap.test))
    return RankData(X, Y, offset, len(train), Xc, Yc, Xt, Yt)


def _train_ensemble(campaign: CampaignSpec, snap: Snapshot, options: TrainOptions, world):
    import torch

    from dm_hpc.learn.distributed import train_ensemble
    from dm_hpc.learn.ensemble import EnsembleConfig
    from dm_hpc.learn.persist import surrogate_state

    multi = len(snap.fidelities) > 1
    fixed = None
    if multi:
        tgt = target_index(campaign)
        fixed = torch.tensor([tgt / max(1, len(campaign.fidelities) - 1)], dtype=torch.double)
    config = EnsembleConfig(seed=campaign.seed, **({"epochs": options.epochs} if options.epochs else {}))
    root = registry_dir(campaign)
    root.mkdir(parents=True, exist_ok=True)
    result = train_ensemble(_rank_data(campaign, snap, world, multi), config, world,
                            checkpoint=root / CHECKPOINTS.replace("*", snap.sha256[:16]),
                            checkpoint_every=options.checkpoint_every, data_id=snap.sha256, fixed_columns=fixed)
    return result, surrogate_state(result.model, "ensemble", None, None)


#: The code a version's model is built by beside ``dm_hpc.learn`` (its rows, features and split) and
#: the libraries it fits with: what ``model_code`` fingerprints. Not the checkout's commit
#: (``_code_version``, recorded in meta.json): a commit to the docs, CLI or portal is the same model.
MODEL_MODULES = ("dm_hpc.campaign.registry", "dm_hpc.campaign.dataset", "dm_hpc.campaign.strategy",
                 "dm_hpc.campaign.candidates", "dm_hpc.acquire.space", "dm_hpc.data.descriptors",
                 "dm_hpc.compute.descriptors")
#: Data files that shape a version's targets: the element prices of an analytic raw-material cost.
#: As (module, attribute holding the path), read when fingerprinted (a test may point it elsewhere).
MODEL_DATA = (("dm_hpc.compute.descriptors", "PRICE_FILE"),)
#: The dm_hpc modules a training loads that do not shape its model: package faces, the store and
#: the vocabulary that read the records (``records_sha256`` names them; values are canonical when
#: stored), the campaign file (its settings are fingerprinted as values, ``settings_sha256``), the
#: acquisitions ``strategy`` imports, costs, the promotion decision (which compares models, it
#: fits none), and the sheet reader a pool is read by (the pool's bytes are fingerprinted,
#: ``MODEL_FILES``, and what it yields, the elements, is the version's recorded ``inputs``; lab
#: sheet fixes land there often and are not a new model). A test trains a campaign of each kind
#: and asks every other module it loaded to be in ``MODEL_MODULES``.
NOT_MODEL_MODULES = (
    "dm_hpc._lazy", "dm_hpc.acquire", "dm_hpc.acquire.acquisition", "dm_hpc.acquire.fidelity",
    "dm_hpc.acquire.gaps", "dm_hpc.acquire.planner", "dm_hpc.acquire.points", "dm_hpc.campaign",
    "dm_hpc.campaign.spec", "dm_hpc.campaign.promotion", "dm_hpc.compute", "dm_hpc.compute.methods",
    "dm_hpc.data", "dm_hpc.data.access", "dm_hpc.data.columns", "dm_hpc.data.composition",
    "dm_hpc.data.elements", "dm_hpc.data.integrity", "dm_hpc.data.layout", "dm_hpc.data.records",
    "dm_hpc.data.recovery", "dm_hpc.data.rounding", "dm_hpc.data.shards", "dm_hpc.data.store",
    "dm_hpc.data.units", "dm_hpc.data.view", "dm_hpc.data.vocabulary",
    "dm_hpc.data.column_map", "dm_hpc.data.csv_columns", "dm_hpc.data.sheet_checks", "dm_hpc.data.sheet_columns",
    "dm_hpc.data.sheetfiles", "dm_hpc.data.sheets", "dm_hpc.data.verdicts",
    "dm_hpc.data.rules",  # a rule's comparison with its bound: which candidates are ranked, not the model
)
MODEL_LIBRARIES = ("torch", "gpytorch", "botorch")


def model_code() -> str:
    """SHA-256 of the source of ``dm_hpc.learn`` and ``MODEL_MODULES``, the files of ``MODEL_DATA``
    and the versions of ``MODEL_LIBRARIES``: a change there may change the model of the same records."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    import dm_hpc.learn

    files = sorted(Path(dm_hpc.learn.__file__).parent.rglob("*.py"))
    files += [Path(importlib.import_module(m).__file__) for m in MODEL_MODULES]
    files += [Path(getattr(importlib.import_module(m), attr)) for m, attr in MODEL_DATA]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    for lib in MODEL_LIBRARIES:
        try:
            digest.update(f"{lib}=={version(lib)}".encode())
        except PackageNotFoundError:
            digest.update(f"{lib} absent".encode())
    return digest.hexdigest()


#: The campaign's files whose contents shape a version's rows and features, as (section, field):
#: a pool's candidates give the features' elements and say which records are the campaign's.
#: The campaign file holds only their paths, so an edited pool would read as the same settings.
#: Not transfer sources, lab emulators or the site: a version is fitted on the campaign's own
#: records alone (``_train_gp``, ``_train_ensemble``), and a store-query source's records, left
#: out of those, change ``records_sha256``.
MODEL_FILES = (("space", "pool"), ("space", "pool_map"))


def model_files(campaign: CampaignSpec) -> dict[str, str]:
    """SHA-256 of the bytes of each file of ``MODEL_FILES`` that ``campaign`` names, by field
    (``space.pool``); "absent" for a file not there (training then fails where it reads it)."""
    out = {}
    for section, name in MODEL_FILES:
        path = getattr(getattr(campaign, section), name)
        if path is not None:
            out[f"{section}.{name}"] = sha256_file(path) if Path(path).is_file() else "absent"
    return out


def settings_sha256(campaign: CampaignSpec, options: TrainOptions, kind: str, ranks: int, code: str,
                    files: dict[str, str]) -> str:
    """SHA-256 of what a version's model depends on beside its records: the kind, the ranks that
    train it, the epochs of an ensemble, the clearance, the code that builds it (``model_code``),
    the campaign fields it is built from (design space, properties, fidelities and the one
    predicted, seed) and the contents of the files among them (``model_files``)."""
    body = {"surrogate": kind, "ranks": ranks, "epochs": options.epochs if kind == "ensemble" else None,
            "clearance": options.clearance.value, "model_code": code, "files": files,
            "space": campaign.space.model_dump(mode="json"), "properties": campaign.properties,
            "fidelities": [[f.name, f.kind.value, f.record_method] for f in campaign.fidelities],
            "target": target_index(campaign), "seed": campaign.seed}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _unchanged(campaign: CampaignSpec, snap: Snapshot, options: TrainOptions, settings: str
               ) -> ModelVersion | Unchanged | None:
    """The latest version when training would add nothing to the registry: returned as itself when
    ``if_new_data`` finds its records unchanged, as ``Unchanged`` when its records and settings are
    these (a duplicate; not when forced, or when nothing is to be registered); else None."""
    last = latest(campaign)
    if last is None or last.meta.get("records_sha256") != snap.sha256:
        return None
    if inputs_problem(campaign, last.version, last.meta, snap.space):
        return None  # it no longer fits the campaign's design space: no usable model until one is trained
    cur = current(campaign)
    if cur is not None and _number(last.version) < _number(cur) and version_problem(registry_dir(campaign) / cur):
        # the current version is gone or damaged and no later one holds these records: the next
        # training registers its replacement (``_decide``). Once one does, it is that replacement
        # (current, or a candidate to promote by hand): a nightly job does not register another
        return None
    if options.if_new_data:
        return last
    if options.register and not options.force and last.meta.get("settings_sha256") == settings:
        return Unchanged(last)
    return None


def latest(campaign: CampaignSpec) -> ModelVersion | None:
    found = versions(campaign)
    return found[-1] if found else None


def train(campaign: CampaignSpec, options: TrainOptions | None = None, world=None,
          requested_ranks: int | None = None) -> ModelVersion | dict[str, Any] | None:
    """Fit the campaign's surrogate on the store and register it (rank 0 of ``world``).

    ``requested_ranks`` (default ``world.size``) is what the user asked for; fewer may train
    (``_layout``): the ranks of ``world`` beyond those return None at once.

    Returns:
        the new ``ModelVersion`` (current or a candidate: ``meta["promotion"]``); its meta dict
        when ``register`` is off; ``Unchanged`` when the latest version holds the same records
        and settings (not with ``force``); None on ranks other than 0 and when ``if_new_data``
        finds the records of the latest version unchanged.
    """
    from dm_hpc.learn.distributed import World

    options = options or TrainOptions()
    world = world or World()
    if world.size > 1:
        # the ranks of one job: no rank waits for the turn before training, as the others would
        # wait for it in the training's collectives; rank 0 takes it to register
        return _train(campaign, options, world, requested_ranks)
    with _turn_to_look(campaign, options):
        return _train(campaign, options, world, requested_ranks)


def _turn_to_look(campaign: CampaignSpec, options: TrainOptions):
    """The turn a training in one process holds from its look at the latest version to its
    registration (``training_turn``), so that of two started together the second finds the first's
    version instead of training it again; none when it registers nothing, or where this account
    cannot write the registry (a read-only mount, another account's folder). A look writes nothing,
    so there it looks as the ranks of a job do, without the turn, and takes it to register, which
    then says in one line why it cannot."""
    root = registry_dir(campaign)
    if not options.register or not _writable(root / TRAIN_LOCK):
        return nullcontext()
    return training_turn(campaign)


def _writable(path: Path) -> bool:
    """Whether this account may write ``path``, or make it (and the folders above it) where it is not."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK)


def _train(campaign: CampaignSpec, options: TrainOptions, world, requested_ranks: int | None
           ) -> ModelVersion | dict[str, Any] | None:
    from dm_hpc.learn.distributed import World

    # the ranks of one job train on one snapshot, whatever a campaign writes between their reads
    clearance = options.clearance
    snap = _agreed_snapshot(campaign, clearance, world) if world.size > 1 else snapshot(campaign, clearance)
    kind = _resolve_kind(campaign, snap, options)
    if kind == "ensemble" and _ensemble_rows(snap) < MIN_TRAIN_RECORDS:
        # the snapshot counts each property's values (a GP learns each from the records holding
        # it); the ensemble learns all at once from the records that hold every one
        raise NotEnoughData(f"{campaign.name}: an ensemble learns from records that hold every property "
                            f"({', '.join(campaign.properties)}); {_ensemble_rows(snap)} records hold every property "
                            f"among its training rows, it needs {MIN_TRAIN_RECORDS} (a GP kind learns each property "
                            "from the records holding it)")
    used, notes = _layout(kind, snap, requested_ranks or world.size)
    code = _code_version()
    files = model_files(campaign)
    settings = settings_sha256(campaign, options, kind, used, model_code(), files)
    same = _unchanged(campaign, snap, options, settings)
    if same is not None:  # on every rank alike: each read the same snapshot
        return same if isinstance(same, Unchanged) else None
    if world.size > used:
        if world.rank >= used:
            return None  # rank 0 reports the fallback
        world = World() if used == 1 else replace(world, size=used)
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if kind == "ensemble":
        result, state = _train_ensemble(campaign, snap, options, world)
        model, held, device = result.model, result.test, result.device
        extra = {"steps": result.steps, "resumed_from_step": result.resumed_from}
    else:
        model, state, held = _train_gp(campaign, snap, kind)
        device = "cpu"
    if world.rank != 0:
        return None
    fit_seconds = round(time.perf_counter() - t0, 3)
    props = campaign.properties
    rmse = held.get("rmse")
    meta = {
        "campaign": campaign.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "records": len(snap.data),
        "trained_on": int(len(snap.data) - len(snap.test)),
        "store": str(campaign.store),
        "store_generation": snap.generation,
        "records_sha256": snap.sha256,
        "clearance": options.clearance.value,
        "by_fidelity": {campaign.fidelities[int(i)].name: int(n)
                        for i, n in zip(*np.unique(snap.data.fidelity, return_counts=True))},
        "properties": props,
        "inputs": model_inputs(snap.space),
        "held_out": {"n": held["n"], "rmse": dict(zip(props, rmse)) if rmse else None,
                     "coverage90": held.get("coverage90")},
        "surrogate": kind,
        "multi_fidelity": len(snap.fidelities) > 1,
        "world_size": world.size,
        "device": device,
        "code_version": code,
        "settings_sha256": settings,
        "files_sha256": files,
        "epochs": options.epochs if kind == "ensemble" else None,
        "fit_seconds": fit_seconds,
        "requested_ranks": requested_ranks or world.size,
        "notes": notes,
        **extra,
    }
    if not options.register:
        return {**meta, "promotion": _decide(campaign, snap, model, kind).as_dict()}
    # Rank 0 of a job launched by srun or torchrun has trained outside the turn (``train``): it takes
    # it now and looks again, as another job may have registered these records meanwhile, then
    # compares and registers under it. A process that held it since its look has nothing to look at again.
    with training_turn(campaign) as fresh:
        same = _unchanged(campaign, snap, options, settings) if fresh else None
        if same is not None:
            return same if isinstance(same, Unchanged) else None
        decision = _decide(campaign, snap, model, kind)
        trained = [snap.data.record_ids[i] for i in snap.train]
        return _register(campaign, state, {**meta, "promotion": decision.as_dict()}, decision.promote, trained)


#: Reads of the store by the ranks of one job before they give up agreeing on its records.
AGREE_TRIES = 5


def _agreed_snapshot(campaign: CampaignSpec, clearance: AccessLevel, world) -> Snapshot:
    """``snapshot`` as every rank of ``world`` read it: the ranks compare what they read (the ids'
    sha256, or the error) and read again until they agree, at most ``AGREE_TRIES`` times.

    Each rank reads the store itself, and a campaign may write records between two ranks' reads:
    the ranks then decided apart (one found nothing new and left while another waited for it in the
    rendezvous) or trained one model on slices of two snapshots. An error every rank met is raised
    on each (the CLI prints rank 0's); ranks still apart after the last read raise on each a
    ``RegistryError`` that says what each read.
    """
    from dm_hpc.learn.distributed import all_gather_text

    read: list[dict[str, Any]] = []
    for attempt in range(AGREE_TRIES):
        try:
            snap, failed = snapshot(campaign, clearance), None
            mine = {"sha256": snap.sha256, "records": len(snap.data), "inputs": model_inputs(snap.space)}
        except (RegistryError, StoreError) as exc:
            snap, failed = None, exc
            mine = {"error": str(exc)}
        read = [json.loads(t) for t in all_gather_text(world, f"snapshot-{attempt}", json.dumps(mine))]
        if all("error" in r for r in read) and failed is not None:
            raise failed
        if snap is not None and all(r.get("sha256") == snap.sha256 and r.get("inputs") == mine["inputs"] for r in read):
            return snap
    said = "; ".join(f"rank {r}: " + (f"{x['records']} records (ids sha256 {x['sha256'][:12]}) on "
                                      f"{', '.join(x['inputs']['elements'])}" if "sha256" in x
                                      else x["error"]) for r, x in enumerate(read))
    raise RegistryError(f"{campaign.name}: the {world.size} ranks of this job read different records from the store, "
                        f"or another design space, {AGREE_TRIES} times (is a campaign writing it fast, is its pool "
                        f"being edited, or does a node see another store?): {said}; nothing trained")


def _decide(campaign: CampaignSpec, snap: Snapshot, model, kind: str):
    """The promotion decision for ``model`` against the current version (``promotion.decide``)."""
    from dm_hpc.campaign import promotion

    cur = current(campaign)
    found, cur_space, cur_properties = None, None, None
    if cur is not None:
        try:
            cur_model, cur_space, _ = load(campaign, cur, space=snap.space)
        except RegistryError:
            cur_model = None
        try:  # its kind and outputs, also when its model.pt is what is damaged
            cur_meta = _meta(registry_dir(campaign) / cur)
        except RegistryError:
            cur_meta = {}
        # a version from before properties were recorded: the campaign's, as it was always read
        cur_properties = cur_meta.get("properties") or list(campaign.properties)
        found = (cur, cur_meta.get("surrogate"), cur_model)
    rows = _comparison_rows(campaign, snap)
    X = _features(campaign, snap, rows, False)
    # the current version answers on the process ranges it was trained on (``version_space``)
    X_cur = None if cur_space is None or cur_space is snap.space else _features(campaign, snap, rows, False, cur_space)
    return promotion.decide(model, kind, found, X, _targets(snap, rows), campaign.properties, seed=campaign.seed,
                            current_properties=cur_properties, X_current=X_cur)


#: Beside ``meta.json``: the ids of the records a version was trained on, one a line (citations).
RECORDS_FILE = "records.txt"


def _register(campaign: CampaignSpec, state: dict, meta: dict, make_current: bool = True,
              record_ids: list[str] = ()) -> ModelVersion:  # type: ignore[assignment]
    """Write the version in a ``NEW_VERSION`` folder and rename it to the next free ``vNNNN``.
    A write or rename that fails (a full disk, a spent quota, a folder removed under it) removes
    the folder and the intent to make it current, and raises ``RegistryError`` saying so: the
    registry is as it was."""
    from dm_hpc.learn.distributed import remove_dead_checkpoints
    from dm_hpc.learn.persist import save_surrogate

    root = registry_dir(campaign)
    root.mkdir(parents=True, exist_ok=True)
    tmp, placed = None, False
    try:
        tmp = Path(tempfile.mkdtemp(prefix=NEW_VERSION, dir=root))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 hid the version from the portal's and colleagues' accounts
        save_surrogate(state, tmp / "model.pt")
        (tmp / RECORDS_FILE).write_text("".join(f"{rid}\n" for rid in sorted(record_ids)))
        _fsync_file(tmp / "model.pt")
        _fsync_file(tmp / RECORDS_FILE)
        number = 1 + highest_issued(root)
        while True:  # renaming onto an existing version fails: a concurrent training took the number
            version = f"v{number:04d}"
            (tmp / "meta.json").write_text(json.dumps({"version": version, **meta}, indent=1))
            _fsync_file(tmp / "meta.json")
            fsync_dir(tmp)
            if make_current:
                # the intent first: a kill between the rename and CURRENT would otherwise leave a version
                # its comparison promoted that nothing tells from one a user rolled back from (``_recover``)
                _atomic_write(root / PENDING_CURRENT, version + "\n")
            try:
                os.rename(tmp, root / version)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):  # not a taken number
                    raise
                number += 1
                continue
            placed = True
            fsync_dir(root)
            break
        _issued(root, number)
    except OSError as exc:
        if placed:  # in place, and meant to be current if PENDING_CURRENT says so: ``_recover`` finishes it
            raise
        _drop_pending(root)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise RegistryError(f"{campaign.name}: the new model version could not be put in place in {root}: "
                            f"{exc.strerror} (check the folder's free space or quota and permissions); nothing "
                            f"registered, the current model stays {current(campaign) or 'none'}") from None
    # checkpoints of earlier snapshots are of no use now; one another job is training from stays
    remove_dead_checkpoints(root, CHECKPOINTS)
    if make_current:
        _atomic_write(root / "CURRENT", version + "\n")
        _drop_pending(root)
    return ModelVersion(version, root / version, {"version": version, **meta})


def _number(name: str | None) -> int:
    """The number of version ``name`` (``v0003``: 3); 0 for anything that is not a version name."""
    return int(name[1:]) if name is not None and VERSION_NAME.fullmatch(name) else 0


def highest_issued(root: Path) -> int:
    """The highest version number ever issued in the registry ``root``: ``LAST_VERSION``, or where it
    is behind or absent (a registry from before it) the highest of the version folders and of the
    versions ``CURRENT`` and ``PENDING_CURRENT`` name (a current version's folder deleted: its
    number was issued all the same, and the next training must not reuse it: ``CURRENT`` would name
    the new version, made current whatever its comparison decided)."""
    try:
        kept = _number((root / LAST_VERSION).read_text().strip())
    except OSError:
        kept = 0
    names = [p.name for p in root.glob("v[0-9]*")] + [_read_name(root / "CURRENT"), _pending(root)]
    return max([kept, *(_number(n) for n in names)])


def _read_name(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _issued(root: Path, number: int) -> None:
    """Record ``number`` as issued (``LAST_VERSION``). Its folder is in place already and counts
    too (``highest_issued``): a disk that refuses this small write does not fail the registration."""
    try:
        _atomic_write(root / LAST_VERSION, f"v{number:04d}\n")
    except OSError:
        pass


def _spawned_rank(world, campaign: CampaignSpec, options: TrainOptions, out: str, requested: int) -> None:
    # ``train_local_ranks``, this rank's parent, holds the turn when registering, until the ranks
    # are done: a flock taken here, by another process, would wait for it for ever
    if options.register:
        _turns.__dict__.setdefault("held", set()).add(registry_dir(campaign))
    result = train(campaign, options, world, requested)
    if world.rank == 0:
        payload = None
        if isinstance(result, ModelVersion):
            payload = {"version": result.version, "path": str(result.path), "meta": result.meta}
        elif isinstance(result, dict):  # not registered (an ``Unchanged`` was caught before the ranks were spawned)
            payload = {"meta": result}
        Path(out).write_text(json.dumps(payload))


def train_local_ranks(campaign: CampaignSpec, ranks: int, options: TrainOptions | None = None):
    """``train`` on ``ranks`` local processes (gloo, or NCCL with GPUs); same return as ``train``.

    Fewer ranks are started when the model or the data call for fewer (``_layout``); one rank
    trains here, in this process.
    """
    options = options or TrainOptions()
    with _turn_to_look(campaign, options):
        return _train_local_ranks(campaign, ranks, options)


def _train_local_ranks(campaign: CampaignSpec, ranks: int, options: TrainOptions):
    from dm_hpc.learn.distributed import spawn_local

    snap = snapshot(campaign, options.clearance)  # fail early, in this process, on a store with too little data
    kind = _resolve_kind(campaign, snap, options)
    used, _ = _layout(kind, snap, ranks)
    if used == 1:
        return train(campaign, options, None, requested_ranks=ranks)  # it looks itself
    same = _unchanged(campaign, snap, options,
                      settings_sha256(campaign, options, kind, used, model_code(), model_files(campaign)))
    if same is not None:  # before any rank is spawned
        return same if isinstance(same, Unchanged) else None
    # the spawned ranks register in this process's turn: held since the look, or taken now where the
    # look could take none (``_turn_to_look``), which then says why in one line, before any rank trains
    turn = training_turn(campaign) if options.register else nullcontext()
    with turn, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        spawn_local(_spawned_rank, used, campaign, options, str(out), ranks)
        payload = json.loads(out.read_text())
    if payload is None:
        return None
    if "version" in payload:
        return ModelVersion(payload["version"], Path(payload["path"]), payload["meta"])
    return payload["meta"]


def _meta(path: Path) -> dict[str, Any]:
    """The ``meta.json`` of the version folder ``path``; RegistryError naming it when it is
    unreadable or not what a training writes (``meta_problems``: a hand-edited file)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = "missing" if isinstance(exc, FileNotFoundError) else f"unreadable: {exc}"
        raise RegistryError(f"model version {path.name}: {path / 'meta.json'} is {why}") from None
    if not isinstance(meta, dict):
        raise RegistryError(f"model version {path.name}: {path / 'meta.json'} is not a JSON object")
    wrong = meta_problems(meta)
    if wrong:
        raise RegistryError(f"model version {path.name}: {path / 'meta.json'} is not as a training writes it: "
                            + "; ".join(wrong))
    return meta


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _names(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) for v in x)


def meta_problems(meta: dict[str, Any]) -> list[str]:
    """What is wrong in a version's ``meta.json`` (a hand-edited one: ``"coverage90": "n/a"``, no
    ``created``, ``"records": "eleven"``), each naming the field; empty when its readers (``dm-hpc
    models``, ``Campaign.train``, the export, the promotion) can take it. The one check of
    ``damaged``, ``versions`` and every reader of a version (``_meta``). Fields a version from
    before them lacks (``inputs``, ``clearance``, ...) may be absent; those every training wrote
    may not."""
    out = []

    def need(name: str, ok, what: str, optional: bool = False) -> None:
        if name not in meta:
            if not optional:
                out.append(f"{name} is missing")
        elif not ok(meta[name]):
            out.append(f"{name} is {meta[name]!r}, not {what}")

    need("created", lambda x: isinstance(x, str) and x.strip() != "", "a time")
    need("records", _is_int, "a count of records")
    need("trained_on", _is_int, "a count of records", optional=True)
    need("properties", lambda x: _names(x) and len(x) > 0, "a list of property names", optional=True)
    need("surrogate", lambda x: isinstance(x, str), "a model kind", optional=True)
    need("world_size", lambda x: _is_int(x) and x > 0, "a number of ranks", optional=True)
    need("multi_fidelity", lambda x: isinstance(x, bool), "true or false", optional=True)
    need("promotion", lambda x: x is None or isinstance(x, dict), "a JSON object", optional=True)
    held = meta.get("held_out")
    if not isinstance(held, dict):
        out.append("held_out is missing" if held is None else f"held_out is {held!r}, not a JSON object")
    else:
        if not (held.get("n") is None or _is_int(held.get("n"))):
            out.append(f"held_out.n is {held.get('n')!r}, not a count of records")
        if not (held.get("coverage90") is None or _is_number(held.get("coverage90"))):
            out.append(f"held_out.coverage90 is {held.get('coverage90')!r}, not a number or null")
        rmse = held.get("rmse")
        if not (rmse is None or (isinstance(rmse, dict) and all(v is None or _is_number(v) for v in rmse.values()))):
            out.append(f"held_out.rmse is {rmse!r}, not numbers by property")
    inputs = meta.get("inputs")
    if inputs is not None:
        bounds = inputs.get("process_bounds") if isinstance(inputs, dict) else None
        if not (isinstance(inputs, dict) and _names(inputs.get("elements")) and _names(inputs.get("process"))):
            out.append(f"inputs is {inputs!r}, not lists of element and process parameter names")
        elif bounds is not None and not (
                isinstance(bounds, dict) and set(bounds) == set(inputs["process"])
                and all(isinstance(b, list) and len(b) == 2 and all(_is_number(v) for v in b) for b in bounds.values())):
            out.append(f"inputs.process_bounds is {bounds!r}, not [low, high] for each process parameter")
    return out


def model_problem(path: Path) -> str | None:
    """Why the ``model.pt`` of the version folder ``path`` cannot be loaded, from a look at the file
    (missing, unreadable, cut short: its zip directory or a checksum fails); None: it looks whole
    (``load`` may still find it is no model). Checked once per file state (size, mtime)."""
    file = path / "model.pt"
    try:
        st = file.stat()
    except FileNotFoundError:
        return f"model version {path.name}: {file} is missing"
    except OSError as exc:
        return f"model version {path.name}: {file} cannot be read ({exc.strerror})"
    why = _zip_problem(str(file), st.st_mtime_ns, st.st_size)
    return None if why is None else f"model version {path.name}: {file} is damaged ({why})"


@lru_cache(maxsize=256)
def _zip_problem(file: str, mtime_ns: int, size: int) -> str | None:
    """Why the zip that ``torch.save`` writes is not whole at ``file``; None when it is (or when the
    file is in torch's older, not zipped, format: ``load`` reads it and names what it finds)."""
    try:
        with open(file, "rb") as fh:
            if fh.read(2) != b"PK":
                return None if size > 2 else "empty or cut short"
        with zipfile.ZipFile(file) as z:
            bad = z.testzip()
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        return f"cut short or overwritten: {exc}"
    return None if bad is None else f"its part {bad} fails its checksum"


def _read_version(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(meta, None)`` for a usable version folder ``path``, ``(None, why)`` for one that is not:
    the one rule of ``versions``, ``damaged`` and ``promote`` (``version_problem``)."""
    if not path.is_dir():
        return None, f"model version {path.name}: its folder {path} is missing"
    try:
        meta = _meta(path)
    except RegistryError as exc:
        return None, str(exc)
    why = model_problem(path)
    return (None, why) if why is not None else (meta, None)


def unusable(campaign: CampaignSpec, version: str | None) -> str | None:
    """Why ``version``, one ``versions`` leaves out, is there all the same but cannot serve (its
    folder damaged, or the current version's folder gone: ``version_problem``); None for a name
    that was never a version of this registry (the caller says "no model version")."""
    if version is None or not VERSION_NAME.fullmatch(version):
        return None
    path = registry_dir(campaign) / version
    return version_problem(path) if path.is_dir() or version == current(campaign) else None


def version_problem(path: Path) -> str | None:
    """Why the version folder ``path`` is left out of ``versions`` (its ``meta.json`` or its
    ``model.pt``), or None."""
    return _read_version(path)[1]


def versions(campaign: CampaignSpec) -> list[ModelVersion]:
    """Registered versions, oldest first; a version folder whose ``meta.json`` or ``model.pt`` is
    damaged is left out (``damaged`` names it; its number is never issued again)."""
    out = []
    for path in sorted(registry_dir(campaign).glob("v[0-9]*"), key=lambda p: (_number(p.name), p.name)):
        meta = _read_version(path)[0] if VERSION_NAME.fullmatch(path.name) else None
        if meta is not None:
            out.append(ModelVersion(path.name, path, meta))
    return out


#: What the next training does about a current version that cannot serve (``promotion.decide``).
_REPLACED = ("the next training registers a replacement, made current when the current version's kind is known "
             "and the same, else a candidate: `dm-hpc models --promote vNNNN`")


def damaged(campaign: CampaignSpec) -> list[str]:
    """One sentence for each version folder that ``versions`` leaves out, and why; the version
    ``CURRENT`` names is said to be current (it cannot serve, and the next training replaces it)."""
    out = []
    cur = current(campaign)
    for path in sorted(registry_dir(campaign).glob("v[0-9]*"), key=lambda p: (_number(p.name), p.name)):
        if not VERSION_NAME.fullmatch(path.name):
            continue
        why = version_problem(path)
        if why is not None:
            role = (f" It is the current version: predictions with --model current fail until another is promoted "
                    f"({_REPLACED})." if path.name == cur else "")
            out.append(f"{why}; it is left out of the versions (restore it from a backup, or move the folder "
                       f"aside).{role}")
    if cur is not None and not (registry_dir(campaign) / cur).is_dir():
        out.append(f"CURRENT names {cur}, whose folder {registry_dir(campaign) / cur} is missing: predictions with "
                   f"--model current fail until another version is promoted ({_REPLACED}); its number is never "
                   "issued again")
    return out


def stamp(campaign: CampaignSpec) -> tuple[int, tuple[str, ...]] | None:
    """What identifies the registry as it is now, from one ``stat`` and one listing: the models
    folder's modification time (ns) and its version folders' names; None without a registry. A
    version is never rewritten once in place (``_register`` renames a finished folder in), so what
    ``versions`` and ``trained_on`` read may be kept while this is unchanged: a version registered,
    moved aside or put back, or ``CURRENT`` moved, changes it (the names alone catch a version
    registered within the folder's timestamp resolution). A ``meta.json`` repaired in place does
    not: it is seen once the registry next changes."""
    root = registry_dir(campaign)
    try:
        return root.stat().st_mtime_ns, tuple(sorted(p.name for p in root.glob("v[0-9]*")))
    except OSError:
        return None


def current(campaign: CampaignSpec) -> str | None:
    """The version ``CURRENT`` names (which may be one ``versions`` leaves out: ``damaged`` says so)."""
    return _read_name(registry_dir(campaign) / "CURRENT")


def promote(campaign: CampaignSpec, version: str) -> str:
    """Make ``version`` the one in use (any registered version; the others stay registered).

    Returns the sentence that says what was done (also when nothing was: already current). Only a
    version name of this campaign's registry is taken (``VERSION_NAME``: ``v0001/`` or a path to
    another campaign's version is refused), and only a usable version (``version_problem``).
    """
    path = registry_dir(campaign) / str(version)
    if not isinstance(version, str) or not VERSION_NAME.fullmatch(version) or not path.is_dir():
        known = ", ".join(v.version for v in versions(campaign)) or "none"
        what = "no model version" if isinstance(version, str) and VERSION_NAME.fullmatch(version) else \
            "not a model version name (vNNNN, as `dm-hpc models` lists them):"
        raise RegistryError(f"{campaign.name}: {what} {version!r} (registered: {known})")
    meta, why = _read_version(path)
    if meta is None:  # a damaged version is refused before CURRENT names it
        raise RegistryError(f"{campaign.name}: {why}; CURRENT not changed")
    # a running training compares its model with the current one and may make itself current at
    # the end: a promotion in between would be overwritten by a decision taken before it
    with training_turn(campaign, busy=f"{campaign.name}: a training of this campaign is running and decides at its "
                                      "end which version is current; promote or roll back once it has registered"):
        was = current(campaign)
        # the user's choice, made after it, replaces what a killed training meant to make current
        _drop_pending(registry_dir(campaign))
        if was == version:
            return f"{campaign.name}: {version} is already the current model version; nothing changed"
        _atomic_write(registry_dir(campaign) / "CURRENT", version + "\n")
    held = (meta.get("promotion") or {})
    note = "" if held.get("promoted", True) else f" (registered as a candidate because: {held.get('reason')})"
    return f"{campaign.name}: {version} is now the current model version, was {was or 'none'}{note}"


def rollback(campaign: CampaignSpec, version: str) -> str:
    """Point ``CURRENT`` back at an earlier version (the later ones stay registered); says what was
    done. A version after the current one is not a rollback (``promote`` is the word for it)."""
    was = current(campaign)
    # by number: a current version whose folder is gone still says where "earlier" ends
    if _number(was) and _number(version) > _number(was) and (registry_dir(campaign) / version).is_dir():
        raise RegistryError(f"{campaign.name}: {version} is newer than the current {was}; a rollback goes to an "
                            f"earlier version (to use a newer one: --promote {version})")
    return promote(campaign, version)


def trained_on(version: ModelVersion) -> set[str]:
    """The record ids ``version`` was trained on (empty for versions registered before they were kept)."""
    path = version.path / RECORDS_FILE
    return set(path.read_text().split()) if path.exists() else set()


def trained_clearance(meta: dict[str, Any]) -> AccessLevel:
    """The clearance a version was trained at (``TrainOptions.clearance``, kept in its ``meta``);
    a version from before clearances were recorded, or whose value is not a level (a hand-edited
    meta.json), counts as trained on every record: the reading that serves it to the fewest."""
    try:
        return AccessLevel(meta.get("clearance", AccessLevel.embargoed.value))
    except ValueError:
        return AccessLevel.embargoed


def may_use(meta: dict[str, Any], clearance: AccessLevel) -> bool:
    """Whether a caller with ``clearance`` may use the version of ``meta``: not one trained at a
    higher clearance (its predictions carry records the caller may not read). The one rule of
    ``load`` and of the portal's registered versions."""
    return may_read(trained_clearance(meta), clearance)


def may_read(level: AccessLevel, clearance: AccessLevel) -> bool:
    """Whether a caller with ``clearance`` may be served what was learned from records up to
    ``level``: the rank order of ``AccessRule.readable_by``, the one rule of a store record, a
    registered version (``may_use``) and a model-file transfer source (``dataset.withheld_sources``)."""
    return level.rank <= clearance.rank


def model_inputs(space) -> dict[str, Any]:
    """The inputs a model on ``space`` (a campaign's ``design_space``) takes, in order: its elements
    and process parameters, and the range each process parameter is scaled by (``process_bounds``:
    ``[low, high]`` in canonical units; the features are ``(value - low) / (high - low)``, so a
    model answers for other settings on other bounds); recorded in a version's meta.json as ``inputs``."""
    return {"elements": list(space.element_names), "process": list(space.process),
            "process_bounds": {k: [float(lo), float(hi)] for k, (lo, hi) in space.process.items()}}


def version_space(meta: dict[str, Any], space):
    """The design space the version of ``meta`` was trained on: ``space`` (the campaign's today,
    with the same inputs: ``inputs_problem``) with the process ranges the version's features were
    scaled by. A version from before the ranges were recorded is taken on today's ranges, the
    only ones known (as it always was: retrain it after changing a range)."""
    bounds = (meta.get("inputs") or {}).get("process_bounds")
    if not bounds or not space.process:
        return space
    kept = {k: (float(bounds[k][0]), float(bounds[k][1])) for k in space.process if k in bounds}
    if len(kept) != len(space.process) or kept == dict(space.process):
        return space
    return replace(space, process=kept)


def inputs_problem(campaign: CampaignSpec, version: str, meta: dict[str, Any], space) -> str | None:
    """Why ``version`` (its ``meta``) cannot be used on ``space``, the campaign's ``design_space``
    today: it was trained on other inputs (``model_inputs``: an element added or excluded, a process
    parameter added or removed, a pool edited since), so a model fed another element's fraction in a
    column would answer for another alloy. A process range changed since is no problem: the version
    is used on its own ranges (``version_space``). None: the same inputs, or a version from before
    inputs were recorded. The one rule of ``load``, of ``model_export.export_version``, of a
    scheduled training (``_unchanged``: such a version is no reason to train nothing) and of
    ``dm-hpc models``' warning."""
    inputs, now = meta.get("inputs"), model_inputs(space)
    if inputs is None or all(inputs.get(k) == now[k] for k in ("elements", "process")):
        return None

    def said(x: dict[str, list[str]]) -> str:
        return ", ".join(x["elements"]) + (f"; process {', '.join(x['process'])}" if x["process"] else "")

    return (f"{campaign.name}: model version {version} was trained on inputs {said(inputs)}; the campaign's "
            f"design space is now {said(now)}: train a version on it (`dm-hpc train`)")


def load(campaign: CampaignSpec, version: str | None = None, clearance: AccessLevel | None = None, space=None):
    """The registered ``(model, space, multi_fidelity)`` of ``version`` (default: current); ``space``
    is the one the version was trained on (``version_space``: its process ranges), to featurise
    what it is asked with. With ``clearance`` (a caller's), a version trained at a higher clearance
    is refused: its predictions would carry records the caller may not read. Versions from before
    clearances were recorded count as trained on every record. A version whose inputs
    (``model_inputs``) are not the campaign's today is refused: a model fed another element's
    fraction in a column answers for another alloy (or fails on the width). Versions from before
    inputs were recorded are taken as they are. A version folder that is gone, or whose
    ``meta.json`` or ``model.pt`` is damaged, is a ``RegistryError`` naming the file (``_decide``:
    "current cannot be rebuilt"). ``space``: the campaign's ``design_space`` when the caller holds
    it already (default: built here)."""
    from dm_hpc.learn.persist import LOAD_ERRORS, load_error_text, load_surrogate

    version = version or current(campaign)
    if version is None:
        raise RegistryError(f"{campaign.name}: no model registered yet (run `dm-hpc train`)")
    if not VERSION_NAME.fullmatch(version):
        raise RegistryError(f"{campaign.name}: {version!r} is not a model version name (vNNNN)")
    path = registry_dir(campaign) / version
    meta, why = _read_version(path)
    if meta is None:
        raise RegistryError(f"{campaign.name}: {why}")
    if clearance is not None and not may_use(meta, clearance):
        raise RegistryError(f"{campaign.name}: model version {version} was trained on records up to "
                            f"{trained_clearance(meta).value}; clearance {clearance.value} may not use it")
    space = space if space is not None else design_space(campaign)
    other_inputs = inputs_problem(campaign, version, meta, space)
    if other_inputs:
        raise RegistryError(other_inputs)
    try:
        with warnings.catch_warnings():  # torch's own advice on a file it cannot read: the error says it
            warnings.simplefilter("ignore")
            model = load_surrogate(path / "model.pt")
    except LOAD_ERRORS as exc:
        import pickle

        old = ("; versions saved before the tensor-only format hold pickled models"
               if isinstance(exc, pickle.UnpicklingError) else "")
        raise RegistryError(f"{campaign.name}: model version {version} cannot be rebuilt: {path / 'model.pt'} is "
                            f"damaged or not a model file ({type(exc).__name__}: {load_error_text(exc)}{old}); "
                            "retrain with `dm-hpc train`") from exc
    return model, version_space(meta, space), bool(meta.get("multi_fidelity"))
