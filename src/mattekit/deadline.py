"""A point in time after which work should stop, handed down explicitly to where it can stop.

The model's passes and a video's frames are the places work can be interrupted without leaving
anything half-done: :meth:`Deadline.check` is called there (``Engine.step`` between passes,
``presets.run`` between members, ``process_video`` between frames). A network pass in progress
is stopped too when its caller gives up (:meth:`Deadline.cancel`): it registers a way to stop
itself (:meth:`Deadline.interrupting`; :func:`mattekit.core.runtime.interruptible` sets ONNX
Runtime's ``terminate`` flag), so a worker whose request got its 504 is free within
milliseconds, not at the end of a pass that can take seconds on a large photo.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import Cancelled, DeadlineExceeded

T = TypeVar("T")

log = logging.getLogger("mattekit.deadline")


@dataclass(frozen=True)
class Deadline:
    """``at`` is a :func:`time.monotonic` instant; ``what`` names the work in the error message."""

    at: float
    what: str = "the work"
    seconds: float = 0.0  # the allowance it was made with, for the message
    hint: str = "try a faster preset, a smaller ratio or a smaller image"
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False)
    # what cancel() calls to stop work in progress (interrupting() registers them)
    _stops: list[Callable[[], None]] = field(default_factory=list, compare=False, repr=False)
    _stops_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float | None, what: str = "the work", hint: str | None = None) -> Deadline | None:
        """A deadline ``seconds`` from now; ``None`` (no limit) when ``seconds`` is None or 0."""
        if not seconds:
            return None
        if hint is None:
            return cls(time.monotonic() + seconds, what, seconds)
        return cls(time.monotonic() + seconds, what, seconds, hint)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.cancelled.is_set() or time.monotonic() >= self.at

    def cancel(self) -> None:
        """Stop the work at its next check (its caller gave up on it), and a run registered with
        :meth:`interrupting` now."""
        with self._stops_lock:
            self.cancelled.set()
            stops = list(self._stops)
        for stop in stops:
            try:
                stop()
            except Exception:  # the caller must still give its slot back (Reservation.run_until)
                log.exception("stopping work in progress failed; it stops at its next check")

    @contextmanager
    def interrupting(self, stop: Callable[[], None]) -> Iterator[None]:
        """While inside, :meth:`cancel` calls ``stop`` (it must be quick and thread-safe: it runs
        on the canceller's thread); at once if cancelled already."""
        with self._stops_lock:
            self._stops.append(stop)
            cancelled = self.cancelled.is_set()
        try:
            if cancelled:
                stop()
            yield
        finally:
            with self._stops_lock:
                self._stops.remove(stop)

    def check(self) -> None:
        """Raise :class:`DeadlineExceeded` once past the deadline (:class:`Cancelled` if cancelled)."""
        if self.cancelled.is_set():
            raise self.cancelled_error()
        if time.monotonic() >= self.at:
            raise self.exceeded()

    def cancelled_error(self) -> Cancelled:
        return Cancelled(f"{self.what} was cancelled")

    def exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"{self.what} took longer than this server's limit of {self.seconds:g} s; {self.hint}")


def check(deadline: Deadline | None) -> None:
    """:meth:`Deadline.check` for an optional deadline (``None``: no limit)."""
    if deadline is not None:
        deadline.check()


async def within(deadline: Deadline | None, awaitable: Awaitable[T]) -> T:
    """``await awaitable``, or :class:`DeadlineExceeded` once ``deadline`` passes.

    The awaitable is cancelled then: a pool task still waiting for a worker is dropped; one
    already running stops at its own next :meth:`Deadline.check`.
    """
    if deadline is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, max(0.0, deadline.remaining()))
    except asyncio.TimeoutError:
        raise deadline.exceeded() from None
