"""What a real deployment needs around the routes: early refusal, draining on SIGTERM, access logs.

- :func:`refuse_when_full` — a route dependency that answers 503 *before* the body is read
  (FastAPI resolves dependencies first, and uvicorn sends ``100 Continue`` only when the app
  first reads the body, so a client that sent ``Expect: 100-continue`` sends no body at all).
- :func:`install_drain` — on SIGTERM, ``/readyz`` turns 503 and new work is refused at once,
  while uvicorn stops accepting connections and lets in-flight requests finish (its
  ``timeout_graceful_shutdown``, ``MATTEKIT_GRACE_PERIOD`` under ``mattekit serve``).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Awaitable, Callable

from starlette.requests import Request

from ..errors import Busy
from .executor import WorkPool

log = logging.getLogger("mattekit.service")


def draining(state: Any) -> bool:
    return bool(getattr(state, "draining", False))


def refuse_when_full(pool_of: Callable[[Any], WorkPool]) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing the request (503 Busy) when ``pool_of(app.state)`` cannot take it."""

    async def refuse(request: Request) -> None:
        state = request.app.state
        if draining(state):
            raise Busy("the server is restarting; try again shortly")
        pool_of(state).refuse_if_full()

    return refuse


def start_draining(app: Any) -> None:
    """Refuse new work and report not ready; run each ``on_drain`` hook once (e.g. queued jobs)."""
    state = app.state
    if draining(state):
        return
    state.draining = True
    log.info("shutting down: not ready, refusing new work, finishing what is in flight")
    for hook in list(getattr(state, "on_drain", ())):
        try:
            hook()
        except Exception:  # one hook's failure must not keep the others from running
            log.exception("a shutdown hook failed")


def install_drain(app: Any) -> Callable[[], None]:
    """Chain a SIGTERM/SIGINT handler that drains ``app`` before uvicorn's own handler runs.

    uvicorn installs its handlers (with ``signal.signal``) before the lifespan starts, so the
    one found here is uvicorn's and keeps doing its part: stop accepting, wait for in-flight
    requests up to the grace period, run the lifespan shutdown. Returns a function restoring
    the previous handlers. Off the main thread (in-process test clients) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}

    def handler(sig: int, frame: Any) -> None:
        start_draining(app)
        before = previous.get(sig)
        if callable(before):
            before(sig, frame)
        elif sig == signal.SIGINT:
            raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, before in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, before)

    return restore
