"""The app factory: settings, worker pool, metrics, routers, error handlers, static files.

Adding routes (e.g. video jobs): write a module in this package listed in ``ROUTER_MODULES``
(``jobs.py`` is already listed) exposing ``router`` (an ``APIRouter``) and, optionally,
``async def on_startup(app)`` / ``async def on_shutdown(app)``. :func:`create_app` includes it
when the module exists. Routes reach shared state through ``request.app.state``:

- ``settings``: :class:`~mattekit.service.settings.Settings`
- ``pool``: the stills :class:`~mattekit.service.executor.WorkPool` (create your own pool for
  long jobs in ``on_startup`` so a video never holds the slots stills need)
- ``metrics``: :class:`~mattekit.service.metrics.Metrics` (``.registry`` for your own metrics)
- ``matter``: the :class:`~mattekit.matter.Matter` to process stills with
- ``ready`` / ``load_error``: the model's state

Raise :class:`~mattekit.errors.MattekitError` subclasses in handlers: they become
``{"error": {"code", "message"}}`` with the error's ``http_status`` (503 adds ``Retry-After``).
A module serving another API's error shape (``removebg.py``) exposes ``ERROR_PREFIX`` (a path
prefix) and ``error_response(status, code, message, headers)``; every error under that prefix,
404 and 500 included, is then answered by it instead.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from .. import __version__
from ..errors import Busy, MattekitError
from ..matter import Matter
from .common import server_message
from .deploy import AccessLogMiddleware, JsonFormatter, close_after_refusal, install_drain, loggable, start_draining
from .executor import WorkPool
from .guard import GuardMiddleware
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger("mattekit.service")

ROUTER_MODULES = ("api", "jobs", "removebg", "camera")
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


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


Responder = Callable[[int, str, str, dict | None], JSONResponse]


def _responders(modules: list[ModuleType]) -> Callable[[Request], Responder]:
    """The error answer for a request's path: a module's own shape under its prefix, else ours."""
    prefixed = [(m.ERROR_PREFIX, m.error_response) for m in modules if hasattr(m, "ERROR_PREFIX")]

    def pick(request: Request) -> Responder:
        path = request.url.path
        return next((respond for prefix, respond in prefixed if path.startswith(prefix)), error_response)

    return pick


def _faces(modules: list[ModuleType]) -> Callable[[Request], str]:
    """The wording of a request's errors (:data:`mattekit.errors.FACES`): a module's ``FACE`` under
    its ``ERROR_PREFIX`` (remove.bg's parameters for its clients), else our API's."""
    prefixed = [(m.ERROR_PREFIX, getattr(m, "FACE", "api")) for m in modules if hasattr(m, "ERROR_PREFIX")]

    def pick(request: Request) -> str:
        path = request.url.path
        return next((face for prefix, face in prefixed if path.startswith(prefix)), "api")

    return pick


def _routers() -> list[ModuleType]:
    modules = []
    for name in ROUTER_MODULES:
        full = f"{__package__}.{name}"
        try:
            modules.append(importlib.import_module(full))
        except ModuleNotFoundError as exc:
            if exc.name != full:  # a real missing dependency inside the module: say so
                raise
    return modules


def _load_model(app: FastAPI) -> None:
    """Create the ONNX session and run it once, so the first user does not pay for either."""
    import numpy as np

    state = app.state
    try:
        engine = state.matter.engine
        engine.load()
        engine.matte(np.zeros((64, 64, 3), np.uint8))
    except MattekitError as exc:
        state.load_error = exc
        log.error("model not available: %s", exc)
        return
    state.ready = True
    state.metrics.ready.set(1)
    log.info("model loaded; ready")


class MetricsMiddleware:
    """Counts every response by route template (never by raw path: bounded label values)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}
        self.metrics.refresh()

        async def send_wrapper(message: dict) -> None:
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
    pool = WorkPool(settings.workers, settings.queue_size, name="stills")
    metrics = Metrics(pool)
    modules = _routers()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load in a thread while the server already answers /healthz (and /readyz with 503).
        loading = asyncio.ensure_future(asyncio.to_thread(_load_model, app)) if settings.load_model else None
        restore_signals = install_drain(app, settings.drain_seconds)
        for module in modules:
            if hasattr(module, "on_startup"):
                await module.on_startup(app)
        try:
            yield
        finally:
            restore_signals()
            start_draining(app)  # also when stopped without a signal (lifespan shutdown, tests)
            for module in modules:
                if hasattr(module, "on_shutdown"):
                    await module.on_shutdown(app)
            if loading is not None and not loading.done():
                loading.cancel()
            pool.shutdown(wait=False)
            metrics.close()

    app = FastAPI(
        title="mattekit",
        version=__version__,
        summary="Remove the background from photos of people (RVM matting on the CPU).",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.metrics = metrics
    app.state.matter = matter or Matter()
    app.state.ready = False
    app.state.load_error = None
    app.state.draining = False
    app.state.on_drain = []  # callables run once at SIGTERM (see deploy.start_draining)

    respond = _responders(modules)
    _add_error_handlers(app, pool, metrics, respond, _faces(modules))
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
    app.add_middleware(GuardMiddleware, settings=settings, respond=respond)  # Host and cross-site checks
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(AccessLogMiddleware)  # outermost: every answer gets its id and its line

    for module in modules:
        app.include_router(module.router)
    from .docs import add_docs

    add_docs(app)
    from .api import STATIC_DIR

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


# Our messages are a sentence or two; one quoting a client's value is cut here, the one place every
# error becomes an answer, so no answer echoes back a megabyte that was sent.
MAX_MESSAGE = 1000


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "…"


def _add_error_handlers(
    app: FastAPI, pool: WorkPool, metrics: Metrics, respond: Callable[[Request], Responder], face: Callable[[Request], str]
) -> None:
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
        message = server_message(exc, face(request))
        if message != exc.worded(face(request)):  # the paths go to the log, never to the client
            log.warning("%s while serving %s: %s", exc.code, loggable(request.url.path), exc.message)
        return respond(request)(exc.http_status, exc.code, _short(message), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return respond(request)(400, "invalid_option", f"{where}: {first.get('msg', 'invalid request')}", None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return respond(request)(
            exc.status_code,
            codes.get(exc.status_code, f"http_{exc.status_code}"),
            str(exc.detail),
            getattr(exc, "headers", None),
        )

    from starlette.requests import ClientDisconnect

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # Not a server fault: say so in one line, no traceback. The answer reaches nobody; 499 is
        # the status proxies use for it, so /metrics counts these apart from errors.
        log.warning("client disconnected before its upload to %s was complete; request dropped", request.url.path)
        return respond(request)(499, "client_disconnected", "the client went away before the upload ended", None)

    @app.exception_handler(MemoryError)
    async def out_of_memory(request: Request, exc: MemoryError) -> JSONResponse:
        log.error("out of memory while serving %s", request.url.path)
        return respond(request)(
            503, "out_of_memory", "the server ran out of memory; try a smaller image", {"Retry-After": str(pool.retry_after())}
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while serving %s", request.url.path)
        return respond(request)(500, "internal", "internal error: the server logged the details", None)
