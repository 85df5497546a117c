"""What every route module needs: the API-key check, the options a request starts from, and
the per-request time limit.

Shared by the route modules (``api``, ``jobs``) so that none of them imports another.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response

from ..deadline import Deadline
from ..errors import DeadlineExceeded, MattekitError
from ..options import Options
from .errors import Unauthorized
from .settings import Settings
from .state import service_of

# An absolute or home path of two parts or more ("/home/u/.cache/mattekit/rvm.onnx"), not one inside
# a URL or a relative name ("bg/blur"): what our own errors about the install and model show.
_LOCAL_PATH = re.compile(r"(?<![\w.:/~-])~?/(?:[^\s/'\"`;:,()]+/)+[^\s/'\"`;:,()]*")
HIDDEN_PATH = "<a path on the server: see its log>"


def without_local_paths(message: str) -> str:
    """``message`` with every absolute path replaced: a client must not learn where the server
    is installed or keeps its model (issue 25, L2); the log keeps the whole message."""
    return _LOCAL_PATH.sub(HIDDEN_PATH, message)


def server_message(exc: MattekitError, face: str = "api") -> str:
    """What a client is told of ``exc``, in its API's words (``face``: its fields, never the CLI's
    flags): an error about the server itself (5xx: the model, the disk, the install) says what
    and how to fix it, without the server's paths."""
    message = exc.worded(face)
    return without_local_paths(message) if exc.http_status >= 500 else message


async def require_api_key(request: Request) -> None:
    """When ``MATTEKIT_API_KEYS`` is set, /api/ needs ``X-API-Key`` or ``Authorization: Bearer``.

    ``async`` although it does no I/O: FastAPI runs a plain ``def`` dependency in a thread pool,
    one thread per concurrent request (tests/test_load.py saw +16 threads under load).
    """
    settings = service_of(request).settings
    if not settings.api_keys:
        return
    if not settings.accepts_key(presented_key(request)):
        raise Unauthorized("this server needs an API key: send it as X-API-Key or Authorization: Bearer")


def presented_key(request: Request) -> str:
    """The key a request presents: ``X-API-Key``, else ``Authorization: Bearer``; "" for none."""
    given = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return given


def key_owner(request: Request) -> str:
    """Who owns what this request makes (a video job): a digest of its API key, never the key
    itself (it is written to the shared job folder); "" when the server has no keys."""
    if not service_of(request).settings.api_keys:
        return ""
    return hashlib.sha256(b"mattekit-job-owner:" + presented_key(request).encode()).hexdigest()


def server_options(settings: Settings) -> Options:
    """The options a request starts from: this server's limits, nothing else."""
    return Options(max_pixels=settings.max_pixels, max_lowres_pixels=settings.max_lowres_pixels)


async def under_request_deadline(
    request: Request,
    handle: Callable[[Request, Deadline | None], Awaitable[Response]],
) -> Response:
    """``handle(request, deadline)`` within ``MATTEKIT_REQUEST_TIMEOUT`` (upload included); a
    request past it is answered 504 by the error handlers and counted here."""
    service = service_of(request)
    try:
        return await handle(request, Deadline.after(service.settings.request_timeout, "this photo"))
    except DeadlineExceeded:
        service.telemetry.timeouts.labels("request").inc()
        raise
