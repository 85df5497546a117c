"""The models mattekit can run, one module each, registered in :data:`MODELS`.

Each module is a store with the same interface: ``locate(path=None, *, fetch_missing)`` →
:class:`~mattekit.core.store.ModelInfo`, ``fetch(force=False)`` → ``(path, sha256)``,
``describe(info=None)`` → one line, and ``LICENCE``. The key is the ``subject`` the model
serves (``Options.subject``). Adding a model is one module here and one row in the table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from ...errors import InvalidOption

__all__ = ["MODELS", "ModelEntry", "entry", "store"]


@dataclass(frozen=True)
class ModelEntry:
    name: str  # the subject it serves, and its name in `mattekit model fetch NAME`
    title: str
    licence: str
    module: str  # mattekit.core.models.<module> is its store
    fetch_on_use: bool  # fetched on first use (True), or only on an explicit request


MODELS: dict[str, ModelEntry] = {
    m.name: m
    for m in (
        ModelEntry("person", "RVM mobilenetv3 fp32 (people; photos and video)", "GPL-3.0", "rvm", fetch_on_use=True),
        # AGPL: never fetched behind the user's back (`mattekit model fetch general`).
        ModelEntry("general", "IMG.LY ISNet medium fp16 (any subject; photos)", "AGPL-3.0", "isnet", fetch_on_use=False),
    )
}


def entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise InvalidOption(f"unknown model {name!r}: choose from {', '.join(MODELS)}") from None


def store(name: str) -> ModuleType:
    """The store module of model ``name``."""
    return importlib.import_module(f"{__name__}.{entry(name).module}")
