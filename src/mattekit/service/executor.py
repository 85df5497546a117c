"""A bounded worker pool: a fixed number of threads behind a queue of fixed length.

Inference never runs on the event loop. When every worker is busy and the queue is full,
:meth:`WorkPool.submit` raises :class:`~mattekit.errors.Busy` at once (the API answers 503 with
``Retry-After``) instead of letting requests pile up without bound, so memory stays flat under
any load.

Long jobs (video) can use the same class: create a second pool for them (e.g.
``WorkPool(1, 8, name="jobs")``) so a long video never holds the slots that stills need, and use
:meth:`submit` (a :class:`concurrent.futures.Future`) rather than :meth:`run` when nothing awaits
the result.

A task whose deadline passes gives its slot back at once (:meth:`Reservation.run_until`): the
client's 504 means the next request is admitted. Its thread stops at the work's next deadline
check (decode, the model's passes, compose and encode all check; docs/reliability.md has the
longest steps between two checks), so the pool never runs more than ``workers`` tasks at once:
a request admitted meanwhile waits for that thread that long at most.

Admission happens before a request's body is read: :meth:`WorkPool.reserve` takes a slot (or
raises :class:`~mattekit.errors.Busy`) and the :class:`Reservation` it returns is spent by its
own ``submit``/``run`` or given back by ``release``. A request still uploading therefore holds
one of the ``workers + queue_size`` slots, so the memory its body takes is bounded by the same
number, not by how many clients connect.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..deadline import Deadline, within
from ..errors import Busy

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
        """Slots taken but not running yet (the queue depth): tasks waiting, and requests whose
        upload is still arriving."""
        with self._lock:
            return max(0, self._accepted - self._running)

    def retry_after(self) -> int:
        """Seconds after which a rejected client may reasonably try again (1..60)."""
        with self._lock:
            backlog = self._accepted
            mean = self._mean_s
        return int(min(60, max(1, math.ceil(mean * backlog / self.workers))))

    def _refusal(self) -> Busy | None:
        """Why a task would be refused now, or None (call with the lock held)."""
        if self._closed:
            return Busy("the server is shutting down; try again shortly")
        if self._accepted >= self.capacity:
            return Busy(f"the server is busy ({self._accepted} requests in progress or waiting); try again shortly")
        return None

    def reserve(self) -> Reservation:
        """Take a slot now (or raise :class:`Busy`), for a task submitted later through the
        returned :class:`Reservation`; release it if no task comes."""
        with self._lock:
            refusal = self._refusal()
            if refusal is not None:
                if not self._closed:
                    self.rejected += 1
                raise refusal
            self._accepted += 1
        return Reservation(self)

    def _unreserve(self) -> None:
        with self._lock:
            self._accepted -= 1

    # -- work ------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue ``fn(*args, **kwargs)``; raise :class:`Busy` when the queue is full."""
        return self.reserve().submit(fn, *args, **kwargs)

    def _start(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any], slot: _Slot) -> Future[T]:
        """Run ``fn`` in ``slot``, already counted in ``_accepted`` (by :meth:`reserve`)."""

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
                    if slot.take():  # not given back already by its caller's deadline
                        self._accepted -= 1
                        self._mean_s = 0.8 * self._mean_s + 0.2 * took

        try:
            future = self._pool.submit(task)
        except RuntimeError:  # shut down between the reservation and now
            self._unreserve()
            raise Busy("the server is shutting down; try again shortly") from None

        def release_if_never_ran(f: Future[T]) -> None:
            # A task cancelled while waiting never runs ``task``, so its slot is freed here.
            if f.cancelled():
                self._unreserve()

        future.add_done_callback(release_if_never_ran)
        return future

    def _give_back(self, future: Future[Any], slot: _Slot) -> None:
        """Free the slot of a task whose caller gave up on it and cancelled its deadline: the
        work stops at its next check, and until then holds the thread, not the slot. A task
        still waiting is cancelled instead (its callback frees the slot)."""
        if future.cancel():
            return
        with self._lock:
            if slot.take():
                self._accepted -= 1

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Await ``fn`` in the pool. Cancelling the caller (client gone) drops a waiting task."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)


class Reservation:
    """One slot of a :class:`WorkPool`, held from admission until its task ends.

    Spent by exactly one :meth:`submit` (or :meth:`run`): the task then frees the slot when it
    ends. :meth:`release` gives an unspent slot back (the request failed before its task was
    queued); it is idempotent, so a route may call it in a ``finally`` whatever happened.
    """

    def __init__(self, pool: WorkPool) -> None:
        self.pool = pool
        self._slot = _Slot()
        self._held = True
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._held

    def _spend(self) -> None:
        with self._lock:
            if not self._held:
                raise RuntimeError("this reservation was already used or released")
            self._held = False

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue ``fn(*args, **kwargs)`` in the reserved slot (never refused: the slot is ours)."""
        self._spend()
        return self.pool._start(fn, args, kwargs, self._slot)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Await ``fn`` in the reserved slot. Cancelling the caller drops a waiting task."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    async def run_until(self, deadline: Deadline | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`run`, or :class:`~mattekit.errors.DeadlineExceeded` once ``deadline`` passes,
        and then the slot is free at once. ``fn`` must check the same deadline (it is the one
        handed to it), so it stops at its next check and its thread takes the next task."""
        future = self.submit(fn, *args, **kwargs)
        try:
            return await within(deadline, asyncio.wrap_future(future))
        except BaseException:
            # Past the deadline, or the client went away: the work stops at its next check. With
            # no deadline it cannot be stopped, so it keeps its slot until it ends.
            if deadline is not None and not future.done():
                deadline.cancel()
                self.pool._give_back(future, self._slot)
            raise

    def release(self) -> None:
        """Give the slot back if no task was submitted in it."""
        with self._lock:
            if not self._held:
                return
            self._held = False
        self.pool._unreserve()


class _Slot:
    """Whether a started task's slot is still to be freed: by the task's end or by its caller
    giving it back, whichever comes first (call :meth:`take` with the pool's lock held)."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = True

    def take(self) -> bool:
        held, self.held = self.held, False
        return held
