"""Package attributes imported on first use (PEP 562), shared by the packages whose public names
live in heavy modules (``data``: h5py and pandas; ``compute``: ASE; ``acquire``: BoTorch).

A small command (``dm-hpc validate``, ``status``) imports a package for one name and must not pay
for the others.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(namespace: dict[str, Any], where: Mapping[str, str], names: list[str],
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package whose ``globals()`` is ``namespace``: a public
    name is taken from the module that ``where`` gives for it on first access, then kept there."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
