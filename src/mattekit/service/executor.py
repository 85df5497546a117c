"""A bounded worker pool: a fixed number of threads behind a queue of fixed length.

Inference never runs on the event loop. When every worker is busy and the queue is full,
:meth:`WorkPool.submit` raises :class:`~mattekit.errors.Busy` at once (the API answers 503 with
``Retry-After``) instead of letting requests pile up without bound, so memory stays flat under
any load.

Long jobs (video) can use the same class: create a second pool for them (e.g.
``WorkPool(1, 8, name="jobs")``) so a long video never holds the slots that stills need, and use
:meth:`submit` (a :class:`concurrent.futures.Future`) rather than :meth:`run` when nothing awaits
the result.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar

from ..errors import Busy

__all__ = ["WorkPool"]

T = TypeVar("T")


class WorkPool:
    """``workers`` threads; at most ``workers + queue_size`` tasks accepted (running or waiting)."""

    def __init__(self, workers: int, queue_size: int, *, name: str = "inference") -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError("workers must be >= 1 and queue_size >= 0")
        self.workers = workers
        self.queue_size = queue_size
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"mattekit-{name}")
        self._lock = threading.Lock()
        self._accepted = 0  # running + waiting
        self._running = 0
        self._closed = False
        self.rejected = 0
        # Exponentially weighted mean task time, for an honest Retry-After.
        self._mean_s = 1.0

    # -- state -----------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.workers + self.queue_size

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        """Tasks accepted but not started yet (the queue depth)."""
        with self._lock:
            return self._accepted - self._running

    def retry_after(self) -> int:
        """Seconds after which a rejected client may reasonably try again (1..60)."""
        with self._lock:
            backlog = self._accepted
            mean = self._mean_s
        return int(min(60, max(1, math.ceil(mean * backlog / self.workers))))

    def _refusal(self) -> Optional[Busy]:
        """Why a task would be refused now, or None (call with the lock held)."""
        if self._closed:
            return Busy("the server is shutting down; try again shortly")
        if self._accepted >= self.capacity:
            return Busy(f"the server is busy ({self._accepted} requests in progress or waiting); try again shortly")
        return None

    def refuse_if_full(self) -> None:
        """Raise the :class:`Busy` that :meth:`submit` would raise now, reserving nothing.

        Called before a request's body is read, so a full server refuses an upload without
        receiving it; the check in :meth:`submit` still holds when the queue fills meanwhile.
        """
        with self._lock:
            refusal = self._refusal()
            if refusal is not None and not self._closed:
                self.rejected += 1
        if refusal is not None:
            raise refusal

    # -- work ------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "Future[T]":
        """Queue ``fn(*args, **kwargs)``; raise :class:`Busy` when the queue is full."""
        with self._lock:
            refusal = self._refusal()
            if refusal is not None:
                if not self._closed:
                    self.rejected += 1
                raise refusal
            self._accepted += 1

        def task() -> T:
            with self._lock:
                self._running += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - start
                with self._lock:
                    self._running -= 1
                    self._accepted -= 1
                    self._mean_s = 0.8 * self._mean_s + 0.2 * took

        future = self._pool.submit(task)

        def release_if_never_ran(f: Future) -> None:
            # A task cancelled while waiting never runs ``task``, so its slot is freed here.
            if f.cancelled():
                with self._lock:
                    self._accepted -= 1

        future.add_done_callback(release_if_never_ran)
        return future

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Await ``fn`` in the pool. Cancelling the caller (client gone) drops a waiting task."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)
