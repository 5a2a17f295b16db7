"""Features and surrogate models (stage 1 of the plan: properties from composition and process).

Public interface (stable; other concerns call these):

- ``featurize(compositions, elements, process=None, process_bounds=None, descriptors=True) -> Tensor``
  ``n x (E + 8 + P)``: element fractions, eight physical descriptors (``DESCRIPTOR_NAMES``), process
  parameters scaled to [0, 1] by their bounds. ``feature_names(...)`` gives the column names.
- ``fit_surrogate(X, Y, kind="auto"|"gp"|"subset-gp"|"multitask"|"ensemble", task_index=None, target_task=None,
  bounds=None, warm_start=None, **kw) -> botorch Model``; ``X`` is ``n x d``, ``Y`` is ``n x m``.
  ``auto``: multi-task GP when ``task_index`` holds several fidelities, exact GP up to
  ``GP_MAX_POINTS`` records, an exact GP on a random subset of them beyond (``dm_hpc.learn.subset_gp``:
  honest latent intervals at every size; with a noise level that varies over the inputs where the
  left-out rows show one, ``dm_hpc.learn.hetero``). ``kind="ensemble"``: the calibrated Gaussian ensemble
  (``dm_hpc.learn.ensemble``; data-parallel training in ``dm_hpc.learn.distributed``; saving without
  pickles in ``persist``). ``auto_kind(rows, tasks)`` names the kind "auto" fits (the one size rule; the
  model registry follows it).
- ``quality.held_out_quality(model, X, Y)``: RMSE and 90 %-interval coverage on held-out points.
- ``predict(model, X) -> (mean, std)``, each ``n x m``.
- ``decision.fit_decision_model(X, Y, outputs, kind, **kw) -> Model | None``: the model a decision
  with one objective is taken on, the same GP fitted on the objective's Yeo-Johnson-warped values
  (``decision.yeo_johnson``; measured in benchmarks/README.md); None where the reporting model decides.
- ``fit_gp``, ``fit_multitask``, ``fit_ensemble`` for direct use.

Depends only on ``dm_hpc.data`` (and torch/BoTorch/pymatgen, imported lazily where heavy).
"""
from __future__ import annotations

from dm_hpc._lazy import lazy_exports

#: The surrogate kinds a campaign names (``learning.surrogate``, `dm-hpc train --surrogate`,
#: ``Campaign.train(surrogate=)``); ``fit_surrogate`` also takes "subset-gp", which "auto" chooses
#: by size. Here, not in a module with torch: the CLI lists them in its help.
SURROGATE_KINDS: tuple[str, ...] = ("auto", "gp", "multitask", "ensemble")

#: Public name -> the module that defines it, imported on first use (PEP 562): a module of this
#: package that needs no torch (``quality.interval_coverage`` for a report's kept predictions)
#: must not import torch through the package.
_WHERE = {
    "DESCRIPTOR_NAMES": "dm_hpc.learn.features",
    "feature_names": "dm_hpc.learn.features",
    "featurize": "dm_hpc.learn.features",
    **{name: "dm_hpc.learn.surrogates" for name in ("GP_MAX_POINTS", "auto_kind", "fit_ensemble", "fit_gp",
                                                     "fit_multitask", "fit_surrogate", "predict",
                                                     "surrogate_kind")},
}

__all__ = [
    "DESCRIPTOR_NAMES",
    "GP_MAX_POINTS",
    "SURROGATE_KINDS",
    "auto_kind",
    "feature_names",
    "featurize",
    "fit_ensemble",
    "fit_gp",
    "fit_multitask",
    "fit_surrogate",
    "predict",
    "surrogate_kind",
]

__getattr__, __dir__ = lazy_exports(globals(), _WHERE, __all__)
