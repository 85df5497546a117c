"""The app factory: one :class:`~.state.Service` (settings, engine, pools, telemetry, job store),
the routers, the middleware and the error handlers.

Adding routes (e.g. a new face): write a module in this package exposing ``router`` (an
``APIRouter``) and add it to :data:`ROUTERS` here. Routes reach the shared state through
:func:`~.state.service_of` (``service_of(request).settings``, ``.pool``, ``.telemetry``,
``.matter``, ``.jobs``); work that must start and stop with the app goes in the lifespan below.

Raise :class:`~mattekit.errors.MattekitError` subclasses in handlers (HTTP-only ones live in
:mod:`.errors`): they become ``{"error": {"code", "message"}}`` with the error's
``http_status`` (503 adds ``Retry-After``). A face serving another API's error shape
(remove.bg's) is a row of :data:`API_FACES`: under its path prefix every error, 404 and 500
included, is answered in its shape and worded with its parameters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..core import models
from ..errors import Busy, MattekitError
from ..matter import Matter
from . import api, camera, removebg
from .common import server_message
from .deploy import AccessLogMiddleware, JsonFormatter, close_after_refusal, install_drain, loggable
from .docs import add_docs
from .guard import GuardMiddleware, Responder
from .jobs import routes as jobs
from .settings import Settings
from .state import LifespanState, Service
from .telemetry import Telemetry

log = logging.getLogger("mattekit.service")

# Every group of routes the app serves, included in this order.
ROUTERS = (api.router, jobs.router, removebg.router, camera.router)
MOUNTS = ("/static", "/docs-assets")  # static mounts get their own metrics label
REMOVEBG_HEADERS = (
    "X-Width",
    "X-Height",
    "X-Type",
    "X-Credits-Charged",
    "X-Foreground-Top",
    "X-Foreground-Left",
    "X-Foreground-Width",
    "X-Foreground-Height",
    "X-Ignored-Parameters",
)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


@dataclass(frozen=True)
class Face:
    """Another API served under a path prefix: its error shape and its wording
    (:data:`mattekit.errors.FACES`: its parameters' names in messages)."""

    prefix: str
    respond: Responder
    wording: str


API_FACES = (Face(removebg.ERROR_PREFIX, removebg.error_response, removebg.FACE),)
_OURS = Face("/", error_response, "api")


def face_of(request: Request) -> Face:
    """The face a request's path belongs to: another API's under its prefix, else ours."""
    path = request.url.path
    return next((face for face in API_FACES if path.startswith(face.prefix)), _OURS)


def _respond(request: Request) -> Responder:
    return face_of(request).respond


def _load_model(service: Service) -> None:
    """Create the ONNX session and run it once, so the first user does not pay for either."""
    import numpy as np

    try:
        engine = service.matter.engine
        engine.load()
        engine.matte(np.zeros((64, 64, 3), np.uint8))
    except MattekitError as exc:
        service.load_error = exc
        log.error("model not available: %s", exc)
        return
    # Looked up once (~70 ms: it reads the store's files), for /readyz and the log; the general
    # model itself loads on its first photo, so it delays readiness by no more than that.
    service.general_installed = service.matter.general.available()
    if not service.general_installed:
        log.warning(
            "the general model is not installed: photos without a person get 422 empty_result; %s", models.missing_hint("general")
        )
    service.ready = True
    service.telemetry.ready.set(1)
    log.info("model loaded; ready")


class TelemetryMiddleware:
    """Counts every response by route template (never by raw path: bounded label values)."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.metrics = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}
        self.metrics.refresh()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", []).append((b"x-content-type-options", b"nosniff"))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None)
            if path is None:
                mount = "/" + scope.get("path", "").split("/", 2)[1] if scope.get("path", "").count("/") > 1 else ""
                path = mount if mount in MOUNTS else "other"
            self.metrics.observe(scope.get("method", ""), path, status["code"], time.perf_counter() - start)


def configure_logging(log_format: str = "text", *, force: bool = False) -> None:
    """Show mattekit's INFO lines (model, providers, faults, access) under a plain ``uvicorn app:app``.

    uvicorn configures only its own loggers; an application that set up logging itself (a root
    handler, or one on "mattekit") keeps its choice, unless ``force`` (``mattekit serve``, whose
    own CLI set the root handler up for warnings only).
    """
    ours = logging.getLogger("mattekit")
    mine = [h for h in ours.handlers if getattr(h, "mattekit", False)]
    if not mine and not force and (ours.handlers or logging.getLogger().handlers):
        return
    if force:
        ours.propagate = False  # else the root handler prints every line a second time
    handler = mine[0] if mine else logging.StreamHandler()
    handler.mattekit = True  # type: ignore[attr-defined]  # ours to reconfigure for the next app
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter("%(levelname)s:     %(name)s: %(message)s")
    )
    if not mine:
        ours.addHandler(handler)
    ours.setLevel(logging.INFO)


def create_app(settings: Settings | None = None, *, matter: Matter | None = None) -> FastAPI:
    """A new app. ``settings`` default to the environment (``MATTEKIT_*``, see settings.py)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format)
    service = Service.build(settings, matter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[LifespanState]:
        # Load in a thread while the server already answers /healthz (and /readyz with 503).
        loading = asyncio.ensure_future(asyncio.to_thread(_load_model, service)) if settings.load_model else None
        restore_signals = install_drain(service, settings.drain_seconds)
        service.jobs.open()
        sweeper = asyncio.ensure_future(service.jobs.sweep_forever())
        try:
            yield {"service": service}
        finally:
            restore_signals()
            service.start_draining()  # also when stopped without a signal (lifespan shutdown, tests)
            sweeper.cancel()
            service.jobs.close()
            if loading is not None and not loading.done():
                loading.cancel()
            service.pool.shutdown(wait=False)
            service.telemetry.close()

    app = FastAPI(
        title="mattekit",
        version=__version__,
        summary="Remove the background from photos (RVM for people, a general model for other subjects) and videos, on the CPU.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    # The one piece of app state (also the lifespan's state): see state.service_of.
    app.state.service = service

    _add_error_handlers(app, service)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=[
                "X-Process-Time",
                "Server-Timing",
                "X-Image-Size",
                "X-Crop-Box",
                "X-Frame-Size",
                "X-Model",
                "X-Notice",
                "Retry-After",
                "X-Request-ID",
                *REMOVEBG_HEADERS,
            ],
        )
    app.add_middleware(GuardMiddleware, settings=settings, respond=_respond)  # Host and cross-site checks
    app.add_middleware(TelemetryMiddleware, telemetry=service.telemetry)
    app.add_middleware(AccessLogMiddleware)  # outermost: every answer gets its id and its line

    for router in ROUTERS:
        app.include_router(router)
    add_docs(app)
    app.mount("/static", StaticFiles(directory=api.STATIC_DIR), name="static")
    return app


# Our messages are a sentence or two; one quoting a client's value is cut here, the one place every
# error becomes an answer, so no answer echoes back a megabyte that was sent.
MAX_MESSAGE = 1000


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "…"


def _add_error_handlers(app: FastAPI, service: Service) -> None:
    pool, metrics = service.pool, service.telemetry

    @app.exception_handler(MattekitError)
    async def mattekit_error(request: Request, exc: MattekitError) -> JSONResponse:
        headers = None
        if isinstance(exc, Busy) or exc.http_status == 503:
            headers = {"Retry-After": str(pool.retry_after())}
            if isinstance(exc, Busy):
                metrics.rejected.inc()
                if close_after_refusal(request.headers):  # its body is not worth receiving
                    headers["Connection"] = "close"
        elif exc.http_status == 401:  # RFC 9110: a 401 names the scheme it wants
            headers = {"WWW-Authenticate": 'Bearer realm="mattekit"'}
        metrics.errors.labels(exc.code).inc()
        wording = face_of(request).wording
        message = server_message(exc, wording)
        if message != exc.worded(wording):  # the paths go to the log, never to the client
            log.warning("%s while serving %s: %s", exc.code, loggable(request.url.path), exc.message)
        return _respond(request)(exc.http_status, exc.code, _short(message), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _respond(request)(400, "invalid_option", f"{where}: {first.get('msg', 'invalid request')}", None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _respond(request)(
            exc.status_code,
            codes.get(exc.status_code, f"http_{exc.status_code}"),
            str(exc.detail),
            dict(exc.headers) if exc.headers else None,
        )

    from starlette.requests import ClientDisconnect

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # Not a server fault: say so in one line, no traceback. The answer reaches nobody; 499 is
        # the status proxies use for it, so /metrics counts these apart from errors.
        log.warning("client disconnected before its upload to %s was complete; request dropped", request.url.path)
        return _respond(request)(499, "client_disconnected", "the client went away before the upload ended", None)

    @app.exception_handler(MemoryError)
    async def out_of_memory(request: Request, exc: MemoryError) -> JSONResponse:
        log.error("out of memory while serving %s", request.url.path)
        return _respond(request)(
            503, "out_of_memory", "the server ran out of memory; try a smaller image", {"Retry-After": str(pool.retry_after())}
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while serving %s", request.url.path)
        return _respond(request)(500, "internal", "internal error: the server logged the details", None)
