"""One process-wide instance, created on first use: the only kind of global the package keeps.

A model's engine is costly to build (sessions, threads, memory) and safe to share across
threads, so each model has one per process. ``get`` builds it once under a lock (double-checked:
the common path, an instance already there, takes no lock); ``set`` replaces it (tests, an
explicit model path, other threads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    def __init__(self, make: Callable[..., T]) -> None:
        self._make = make
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self, **kwargs: Any) -> T:
        """The instance, built with ``kwargs`` if there is none yet (``kwargs`` apply only then)."""
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._make(**kwargs)
                value = self._value
        return value

    def set(self, value: T | None) -> None:
        """Replace the instance (None: the next ``get`` builds a new one)."""
        with self._lock:
            self._value = value
