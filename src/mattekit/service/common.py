"""What every route module needs: the API-key check, the options a request starts from, and
the per-request time limit.

Shared by the route modules (``api``, ``jobs``) so that none of them imports another.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from fastapi import Request
from fastapi.responses import Response

from .. import decode
from ..deadline import Deadline, within
from ..errors import DeadlineExceeded, InvalidOption, MattekitError
from ..options import Blur, Options
from .errors import Unauthorized
from .settings import Settings
from .state import service_of

# An absolute or home path of two parts or more ("/home/u/.cache/mattekit/rvm.onnx"), not one inside
# a URL or a relative name ("bg/blur"): what our own errors about the install and model show.
_LOCAL_PATH = re.compile(r"(?<![\w.:/~-])~?/(?:[^\s/'\"`;:,()]+/)+[^\s/'\"`;:,()]*")
HIDDEN_PATH = "<a path on the server: see its log>"
T = TypeVar("T")


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


def set_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """The fields a client set: an empty one (an HTML form's unselected field) is unset, as if
    it had not been sent, for every field alike (``format=`` was a 400, ``max_size=`` none)."""
    return {name: value for name, value in fields.items() if value.strip()}


def blurs(fields: Mapping[str, str]) -> bool:
    """Whether the ``blur`` field asks for a blur (parsed as the options parse it)."""
    return fields.get("blur") is not None and isinstance(Options.from_fields({"blur": fields["blur"]}).background, Blur)


def refuse_blur_with_bg(fields: Mapping[str, str]) -> None:
    """``blur`` and ``bg`` both set the background: with both, one would be dropped unsaid."""
    if fields.get("bg", "").strip() and blurs(fields):
        raise InvalidOption(
            "give either bg or blur, not both: each sets the background (bg=blur:RADIUS is the same as blur=RADIUS)"
        )


async def receive_within(deadline: Deadline | None, upload: Awaitable[T]) -> T:
    """``await upload`` (a request body being read) within ``deadline``. Past it the client is
    told its upload did not arrive in time: the work's own advice (a faster preset, a smaller
    image) means nothing for a photo the server never got, and remove.bg's clients have no preset."""
    try:
        return await within(deadline, upload)
    except DeadlineExceeded:
        seconds = deadline.seconds if deadline is not None else 0.0
        raise DeadlineExceeded(
            f"the upload did not arrive within this server's limit of {seconds:g} s for a request; "
            "send a smaller file or use a faster connection"
        ) from None


def header_size(data: bytes, max_pixels: int) -> tuple[int, int] | None:
    """A photo's upright size from its header, nothing decoded (``max_pixels``: as
    :func:`decode.open_image`); None when it has none we can read or it is over the limit:
    decoding it then says what is wrong, in the words it always has."""
    try:
        img = decode.open_image(data, max_pixels)
    except MattekitError:
        return None
    try:
        w, h = img.size
        try:
            turned = img.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientation: a quarter turn
        except Exception:  # a broken EXIF block: decode ignores it the same way
            turned = False
    finally:
        img.close()
    return (h, w) if turned else (w, h)


def server_options(settings: Settings) -> Options:
    """The options a request starts from: this server's limits, nothing else."""
    return Options(max_pixels=settings.max_pixels, max_lowres_pixels=settings.max_lowres_pixels)


async def under_request_deadline(
    request: Request,
    handle: Callable[[Request, Deadline | None], Awaitable[Response]],
    hint: str | None = None,
) -> Response:
    """``handle(request, deadline)`` within ``MATTEKIT_REQUEST_TIMEOUT`` (upload included); a
    request past it is answered 504 by the error handlers and counted here. ``hint``: what to
    try instead, in the face's own parameters (default: our API's preset, ratio and size)."""
    service = service_of(request)
    try:
        return await handle(request, Deadline.after(service.settings.request_timeout, "this photo", hint))
    except DeadlineExceeded:
        service.telemetry.timeouts.labels("request").inc()
        raise
