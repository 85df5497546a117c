"""What a real deployment needs around the routes: early refusal, draining on SIGTERM, access logs.

- :func:`admission` — a route dependency that reserves a worker-pool slot, or answers 503,
  *before* the body is read (FastAPI resolves dependencies first, and uvicorn sends ``100
  Continue`` only when the app first reads the body, so a client that sent ``Expect:
  100-continue`` sends no body at all). The slot is held while the body arrives, so uploads in
  progress count against the pool's capacity and their memory is bounded by it.
- :func:`install_drain` — on SIGTERM, ``/readyz`` turns 503 and new video jobs are refused at
  once (they could not finish), queued ones fail with a reason; after ``MATTEKIT_DRAIN_SECONDS``
  (default 0) uvicorn stops accepting connections and lets in-flight requests finish (its
  ``timeout_graceful_shutdown``: ``MATTEKIT_GRACE_PERIOD`` under ``mattekit serve``). Stills
  arriving during the drain window are still served: a load balancer may send some until it
  has seen ``/readyz`` fail, and they end well within the grace period.
- :class:`AccessLogMiddleware` — one line per request with its ``X-Request-ID``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import Busy
from .executor import Reservation, WorkPool
from .state import Service, service_of

log = logging.getLogger("mattekit.service")


def admission(
    pool_of: Callable[[Service], WorkPool],
    *,
    while_draining: bool = False,
) -> Callable[[Request], AsyncIterator[Reservation]]:
    """A dependency reserving a slot of ``pool_of(service)`` for the request, or refusing it
    (503 Busy) when the pool is full or, with ``while_draining``, once the server is shutting
    down (work too long to finish). The route spends the :class:`Reservation` on its task; one
    it never spends (a bad upload, a deadline) is given back when the request ends."""

    async def reserve(request: Request) -> AsyncIterator[Reservation]:
        service = service_of(request)
        if while_draining and service.draining:
            raise Busy("the server is restarting; send it again shortly")
        slot = pool_of(service).reserve()
        try:
            yield slot
        finally:
            slot.release()

    return reserve


# The stills routes (ours and remove.bg's) share one pool, so one admission. ``scope="function"``
# gives the slot back as soon as the handler returns, not after the response has been sent.
stills_slot = admission(lambda service: service.pool)
StillsSlot = Annotated[Reservation, Depends(stills_slot, scope="function")]


# Below this a refused body fits in the socket buffers anyway: uvicorn reads and drops it and the
# connection stays usable. Closing instead would make the kernel reset a connection with unread
# bytes, and a client still writing may then see the reset instead of our 503.
DRAIN_BODY_BELOW = 1024 * 1024


def close_after_refusal(headers: Mapping[str, str]) -> bool:
    """Whether a refused request's connection should close rather than have its body read.

    Yes when the client waits for ``100 Continue`` (it has sent nothing and will not) or announced
    a large or unknown-length body (reading it is the cost shedding is meant to spare).
    """
    if headers.get("expect", "").lower() == "100-continue":
        return True
    length = headers.get("content-length", "")
    return not length.isdigit() or int(length) >= DRAIN_BODY_BELOW


def install_drain(service: Service, delay: float = 0.0) -> Callable[[], None]:
    """Chain a SIGTERM/SIGINT handler that drains ``service`` before uvicorn's own handler runs.

    uvicorn installs its handlers (with ``signal.signal``) before the lifespan starts, so the
    one found here is uvicorn's and keeps doing its part: stop accepting, wait for in-flight
    requests up to the grace period, run the lifespan shutdown. With ``delay`` it is called that
    many seconds later (a second signal calls it at once). Returns a function restoring the
    previous handlers. Off the main thread (in-process test clients) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def pass_on(sig: int, frame: Any) -> None:
        before = previous.get(sig)
        if callable(before):
            before(sig, frame)
        elif sig == signal.SIGINT:
            raise KeyboardInterrupt

    def handler(sig: int, frame: Any) -> None:
        first = not service.draining
        service.start_draining()
        if first and delay > 0:
            log.info("still accepting for %g s (MATTEKIT_DRAIN_SECONDS) while load balancers see /readyz fail", delay)
            loop.call_soon_threadsafe(loop.call_later, delay, pass_on, sig, None)
        else:
            pass_on(sig, frame)

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, before in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, before)

    return restore


# -- access logs ---------------------------------------------------------------------------------
access_log = logging.getLogger("mattekit.access")
# What a client may choose as its request id: enough for UUIDs and tracing ids, nothing that could
# forge a log line or a header.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


# Control characters, quotes and backslashes in a path: escaped in the text line, so a ``%0A`` in a
# URL cannot start a forged line and a ``"`` cannot end the quoted request early.
_UNPRINTABLE = re.compile(r'[\x00-\x1f\x7f-\x9f"\\]')


def loggable(text: str) -> str:
    """``text`` with control characters, ``"`` and ``\\`` written as ``\\xNN``: one log line, always."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` when it is a sane token, else a new random one."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            given = value.decode("latin-1").strip()
            if _REQUEST_ID.match(given):
                return given
            break
    return uuid.uuid4().hex


class AccessLogMiddleware:
    """One log line per request, after its response, with a request id (also sent back as a header)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope.get("headers", []))
        scope.setdefault("state", {})["request_id"] = rid  # request.state.request_id in handlers
        start = time.perf_counter()
        seen = {"status": 500, "bytes": 0}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            client = scope.get("client") or ("-", 0)
            access_log.info(
                '%s "%s %s HTTP/%s" %d %dB %.1fms id=%s',
                client[0],
                scope.get("method", ""),
                loggable(scope.get("path", "")),
                scope.get("http_version", "1.1"),
                seen["status"],
                seen["bytes"],
                (time.perf_counter() - start) * 1000,
                rid,
                extra={
                    "access": {
                        "request_id": rid,
                        "client": client[0],
                        "method": scope.get("method", ""),
                        "path": scope.get("path", ""),
                        "status": seen["status"],
                        "bytes": seen["bytes"],
                        "duration_ms": round((time.perf_counter() - start) * 1000, 1),
                    }
                },
            )


class JsonFormatter(logging.Formatter):
    """One JSON object a line (``MATTEKIT_LOG_FORMAT=json``): what log collectors parse without rules."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            body.update(access)
        else:
            body["message"] = record.getMessage()
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)
