"""Saving and rebuilding surrogates without pickling BoTorch objects.

A pickled BoTorch model breaks on the first kernel holding a lambda (``MultiTaskGP``'s
``PositiveIndexKernel``: "Can't pickle local object") and ties a file to one library version's
class layout. So a saved surrogate is a plain dict of tensors and values — its kind, the
training data it was built from, and its ``state_dict`` — and ``rebuild_surrogate`` constructs
the same model with the same ``fit_*`` function (optimiser switched off: zero iterations) and
loads the saved parameters over it. ``torch.load(..., weights_only=True)`` reads it back.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

FORMAT = 1
#: What reading a saved model raises when its file is damaged, cut short or not a model file
#: (``torch.load``: RuntimeError, OSError, EOFError, BadZipFile, UnpicklingError for a pickled
#: object, ``rebuild_surrogate``: KeyError, ValueError, TypeError, AttributeError): the one list a
#: caller catches to name the file instead of a traceback (``registry.load``, ``standard``).
LOAD_ERRORS: tuple[type[BaseException], ...] = (
    pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError,
    AttributeError, KeyError, TypeError)


def load_error_text(exc: BaseException) -> str:
    """The first line of a ``LOAD_ERRORS`` error, at most 200 characters, for a message that names
    the file. PyTorch's weights-only refusal goes on to advise loading the file with
    ``weights_only=False``, i.e. running whatever code it carries: never repeated to the user."""
    text = str(exc).strip()
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        return f"it holds {found.group(1) if found else 'a Python object'}, which is never unpickled"
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def surrogate_state(
    model,
    kind: str,
    X: Tensor,
    Y: Tensor,
    task_index: Tensor | None = None,
    target_task: int | None = None,
) -> dict[str, Any]:
    """What ``rebuild_surrogate`` needs: ``kind`` ("gp", "subset-gp", "multitask", "ensemble"), the ``n x d``
    inputs and ``n x m`` outcomes the model was fitted on, the fidelity ids of a multi-task model,
    the kernel of a single-task GP (``"prior"``, as ``GPSettings.prior``); for a subset GP with a
    varying noise level (``hetero``), its subset, their noise and its noise model's rows (``"noise"``).
    Outcomes with missing values (NaN) were fitted one output at a time: ``"per_output"``, a state each."""
    from dm_hpc.learn.hetero import heteroscedastic_state, is_heteroscedastic

    if kind == "ensemble":
        return {"format": FORMAT, "kind": kind, "ensemble": model.to_state()}
    Y = torch.as_tensor(Y, dtype=torch.double)
    Y = Y.reshape(len(Y), -1)
    if bool(torch.isnan(Y).any()) and Y.shape[-1] > 1:
        # ``fit_surrogate`` fitted each output on the rows holding it (a model list): each saved as
        # its own model, so each rebuilds from its own rows
        tasks = None if task_index is None else torch.as_tensor(task_index)
        have = ~torch.isnan(Y)
        return {"format": FORMAT, "kind": kind, "per_output": [
            surrogate_state(sub, kind, torch.as_tensor(X)[have[:, i]], Y[have[:, i], i:i + 1],
                            None if tasks is None else tasks[have[:, i]], target_task)
            for i, sub in enumerate(model.models)]}
    from dm_hpc.learn.gp import conditioned_rows, kernel_prior

    noise = {"noise": heteroscedastic_state(model)} if is_heteroscedastic(model) else {}
    prior = {"prior": kernel_prior(model)} if kind in ("gp", "subset-gp") else {}
    if kind == "multitask":  # how tasks seen once were given a mean (models saved before: each its own)
        from dm_hpc.learn.surrogates import OWN_MEAN_POINTS

        prior["own_mean_points"] = OWN_MEAN_POINTS
        prior["task_offsets"] = any(getattr(k, "is_task_offset", False) for k in model.modules())
    if kind == "subset-gp" and not noise:
        # the rows the GP conditions on, not all records: rebuilt from all of them, it would draw
        # its subset again with the default seed (another model when it was fitted with another),
        # and a file for 100,000 records would carry all 100,000
        X, Y = conditioned_rows(model)
    return {**noise, **prior,
        "format": FORMAT,
        "kind": kind,
        "X": torch.as_tensor(X, dtype=torch.double).cpu(),
        "Y": torch.as_tensor(Y, dtype=torch.double).cpu(),
        "task_index": None if task_index is None else torch.as_tensor(task_index).cpu(),
        "target_task": target_task,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def rebuild_surrogate(state: dict[str, Any]):
    """The BoTorch ``Model`` saved by ``surrogate_state``, in eval mode."""
    import warnings

    from dm_hpc.learn.ensemble import calibrated_ensemble_class
    from dm_hpc.learn.gp import saved_settings
    from dm_hpc.learn.surrogates import fit_surrogate

    if state.get("format") != FORMAT:
        raise ValueError(f"saved surrogate has format {state.get('format')!r}; this dm-hpc reads {FORMAT}")
    if state["kind"] == "ensemble":
        return calibrated_ensemble_class().from_state(state["ensemble"])
    if "per_output" in state:  # one model per output, each on its own rows (``fit_surrogate``, missing values)
        from botorch.models import ModelListGP

        return ModelListGP(*[rebuild_surrogate(s) for s in state["per_output"]]).eval()
    settings = saved_settings(state.get("prior"))  # single-task GPs: the kernel they were fitted with
    if state.get("noise") is not None:  # the subset GP with a varying noise level: built from its own rows
        from dm_hpc.learn.hetero import rebuild_heteroscedastic

        return rebuild_heteroscedastic(state["noise"], state["state_dict"], settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # one start and one noise level: the saved hyper-parameters replace whatever the
        # (zero-iteration) fit found; a saved model without "noise" had one noise level
        starts = {"starts": 1, "noise": "homoscedastic"} if state["kind"] == "subset-gp" else {}
        if state["kind"] in ("gp", "subset-gp"):
            starts["settings"] = settings
        if state["kind"] == "multitask":
            starts["own_mean_points"] = int(state.get("own_mean_points", 0))
            starts["task_offsets"] = bool(state.get("task_offsets", False))  # saved before: none
        model = fit_surrogate(state["X"], state["Y"], kind=state["kind"], task_index=state["task_index"],
                              target_task=state["target_task"], maxiter=0, warm_maxiter=0, **starts)
    model.train()
    model.load_state_dict(state["state_dict"], strict=True)
    return model.eval()


def save_surrogate(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` (``surrogate_state``) to ``path``. Through a Python file: torch.save given a
    path writes with its own C++ stream, and a full disk there is a RuntimeError ("unexpected pos
    64 vs 0") instead of the ``OSError`` (ENOSPC, EDQUOT) a caller can name."""
    with open(path, "wb") as fh:
        torch.save(state, fh)


def load_surrogate(path: Path):
    """Rebuild the surrogate saved at ``path`` (tensors only: ``weights_only=True``)."""
    return rebuild_surrogate(torch.load(path, weights_only=True, map_location="cpu"))
