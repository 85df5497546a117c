"""The models mattekit can run, one module each, registered in :data:`MODELS`.

A row names the ``subject`` the model serves (``Options.subject``; also its name in ``mattekit
model fetch NAME``) and the module that holds it. The module defines ``STORE``, a
:class:`~mattekit.core.store.ModelStore` (its pinned file: where it comes from, its hash, its
licence); a model that mattes photos on its own names its engine class in the row
(``engine``): a class built with keyword arguments (``threads`` at least) that has the methods of
:class:`StillEngine`. The person model (RVM) has no such row entry: its engine,
:class:`mattekit.core.engine.Engine`, runs through the presets. Adding a model is one module
and one row (docs/extending.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ...errors import InvalidOption
from ..lazy import Lazy

if TYPE_CHECKING:
    from ...deadline import Deadline
    from ..store import ModelStore

__all__ = ["MODELS", "ModelEntry", "StillEngine", "engine", "entry", "missing_hint", "module", "set_engine", "store"]


@dataclass(frozen=True)
class ModelEntry:
    name: str  # the subject it serves, and its name in `mattekit model fetch NAME`
    title: str
    module: str  # the module (dotted path) that defines STORE and the engine class
    engine: str | None = None  # a still model's engine class in that module


MODELS: dict[str, ModelEntry] = {
    m.name: m
    for m in (
        ModelEntry("person", "RVM mobilenetv3 fp32 (people; photos and video)", "mattekit.core.models.rvm"),
        ModelEntry("general", "IMG.LY ISNet medium fp16 (any subject; photos)", "mattekit.core.models.isnet", "GeneralEngine"),
    )
}


class StillEngine(Protocol):
    """What a model that mattes photos on its own offers (the general model's engine)."""

    threads: int

    def available(self) -> bool:
        """Whether its file is installed (nothing is fetched)."""
        ...

    def matte(self, rgb: np.ndarray, *, deadline: Deadline | None = None) -> np.ndarray:
        """Alpha, float32 HxW in [0, 1], of an RGB uint8 HxWx3 photo."""
        ...


def entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise InvalidOption(f"unknown model {name!r}: choose from {', '.join(MODELS)}") from None


def module(name: str) -> ModuleType:
    """The module of model ``name``."""
    return importlib.import_module(entry(name).module)


def store(name: str) -> ModelStore:
    """The store of model ``name``: ``locate``, ``fetch``, ``verify``, ``describe``, ``licence``."""
    found: ModelStore = module(name).STORE
    return found


def missing_hint(name: str) -> str:
    """What to tell a user whose model ``name`` is not installed: how to get it."""
    where = store(name)
    return where.missing_hint or f"the {name} model is not installed: run `{where.fetch_command}`"


def _build(name: str, **kwargs: Any) -> StillEngine:
    row = entry(name)
    if row.engine is None:
        raise InvalidOption(f"the {name} model has no engine of its own for photos")
    made: StillEngine = getattr(module(name), row.engine)(**kwargs)
    return made


_engines: dict[str, Lazy[StillEngine]] = {}


def _lazy(name: str) -> Lazy[StillEngine]:
    # the row is read when the engine is built, so a row replaced later is the one that runs
    return _engines.setdefault(name, Lazy(lambda **kwargs: _build(name, **kwargs)))


def engine(name: str, **kwargs: Any) -> StillEngine:
    """The process-wide engine of still model ``name``, built on first use (``kwargs`` apply
    only then; thread-safe)."""
    return _lazy(name).get(**kwargs)


def set_engine(name: str, value: StillEngine | None) -> None:
    """Replace the process-wide engine of model ``name`` (None: the next use builds one)."""
    _lazy(name).set(value)
