"""Routes: the page, ``POST /api/v1/remove``, health, readiness, metrics and limits.

Handlers only parse and answer; the work runs in the stills pool (see :mod:`.executor`).
Everything a route needs is the request's :class:`~mattekit.service.state.Service`
(:func:`~mattekit.service.state.service_of`): settings, pool, telemetry, engine, readiness.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from .. import decode, encode
from ..deadline import Deadline
from ..deadline import check as check_deadline
from ..errors import InvalidInput, InvalidOption
from ..matter import Matter
from ..options import FORMATS, PRESET_NAMES, SUBJECTS, BackgroundImage, Options
from .common import (
    blurs,
    receive_within,
    refuse_blur_with_bg,
    require_api_key,
    server_message,
    server_options,
    set_fields,
    under_request_deadline,
)
from .deploy import StillsSlot
from .executor import Reservation
from .settings import Settings
from .state import service_of
from .uploads import check_fields, merge_fields, read_upload, require_file

STATIC_DIR = Path(__file__).with_name("static")

# The options a client may set. ``max_pixels`` and ``max_lowres_pixels`` are the server's to decide.
CLIENT_FIELDS = frozenset(
    {
        "format",
        "mask",
        "bg",
        "bg_fit",
        "blur",
        "crop",
        "margin",
        "ratio",
        "max_size",
        "preset",
        "quality",
        "decontaminate",
        "crop_threshold",
        "subject",
    }
)
# A ``bg`` that names a file: the CLI accepts paths, the service must never touch one.
_PATHLIKE = re.compile(r"[/\\]|\.[A-Za-z]{3,4}\s*$")

# The Camera mode runs RVM in the page (camera.py): WebAssembly needs 'wasm-unsafe-eval' (compiling
# a module, not eval of strings), and its threads a cross-origin isolated page (COOP + COEP; every
# file the page loads is our own, so require-corp blocks nothing).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
        "style-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}


router = APIRouter()
api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)], tags=["api"])


# -- the page and probes ---------------------------------------------------------------------
# The page and the probes answer HEAD too: load balancers and uptime checkers often probe with it.
@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})


@router.api_route("/healthz", methods=["GET", "HEAD"], tags=["ops"], summary="The process is alive (always fast)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.api_route(
    "/readyz",
    methods=["GET", "HEAD"],
    tags=["ops"],
    summary="503 until the model is loaded, then 200 (its body says whether the general model is installed)",
)
async def readyz(request: Request) -> JSONResponse:
    state = service_of(request)
    if state.draining:  # a load balancer stops sending here while in-flight requests finish
        body = {"error": {"code": "shutting_down", "message": "the server is shutting down"}}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})
    if state.ready:
        general = {True: "installed", False: "not installed", None: "unknown"}[state.general_installed]
        return JSONResponse({"status": "ready", "models": {"person": "ready", "general": general}})
    if state.load_error is not None:
        # The log has the whole message (paths included) since start-up; a probe gets it without.
        body = {"error": {"code": state.load_error.code, "message": server_message(state.load_error)}}
    else:
        body = {"error": {"code": "loading", "message": "the model is still loading"}}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics")
async def scrape_metrics(request: Request) -> Response:
    return Response(service_of(request).telemetry.render(), media_type=CONTENT_TYPE_LATEST)


# -- the API ---------------------------------------------------------------------------------
@api.get("/limits", summary="What this server accepts")
async def limits(request: Request) -> dict[str, Any]:
    s = service_of(request).settings
    return {
        "max_upload_bytes": s.max_upload_bytes,
        "max_pixels": s.max_pixels,
        "max_lowres_pixels": s.max_lowres_pixels,
        "formats": list(FORMATS),
        "presets": list(PRESET_NAMES),
        "subjects": list(SUBJECTS),
        "workers": s.workers,
        "queue_size": s.queue_size,
    }


def parse_options(fields: Mapping[str, str], settings: Settings, has_bg_file: bool) -> Options:
    """Form/query fields → :class:`Options` under this server's limits (400 on a bad one)."""
    unknown = sorted(set(fields) - CLIENT_FIELDS)
    if unknown:
        raise InvalidOption(f"unknown option {unknown[0]!r}; known: {', '.join(sorted(CLIENT_FIELDS | {'file', 'bg_file'}))}")
    fields = set_fields(fields)
    bg = fields.get("bg")
    if bg and _PATHLIKE.search(bg):
        raise InvalidOption("bg must be a colour, 'blur' or 'transparent'; send a picture as the bg_file upload")
    if has_bg_file and ((bg or "").strip().lower() not in ("", "image") or blurs(fields)):
        raise InvalidOption("give either bg/blur or a bg_file picture, not both")
    refuse_blur_with_bg(fields)
    clean = {k: v for k, v in fields.items() if not (k == "bg" and has_bg_file)}
    return Options.from_fields(clean, base=server_options(settings))


@dataclass
class Processed:
    body: bytes
    size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)
    crop_box: tuple[int, int, int, int] | None = None
    frame_size: tuple[int, int] | None = None
    model: str = "person"  # the model that made the matte (Result.model)
    notice: str | None = None  # Result.notice of a result that is not empty


def process(
    matter: Matter, data: bytes, options: Options, bg_data: bytes | None, fit: str, deadline: Deadline | None = None
) -> Processed:
    """The work of one request, in a pool thread: library call, then encoding."""
    timings: dict[str, float] = {}
    # Waited in the queue past its deadline: its client has its 504 already, don't start.
    check_deadline(deadline)
    if bg_data is not None:
        t0 = time.perf_counter()
        # Decoded here, under the server's pixel limit, so Matter does not decode it again.
        background = decode.decode(bg_data, Options(max_pixels=options.max_pixels), deadline=deadline)
        options = options.replace(background=BackgroundImage(background, fit))  # type: ignore[arg-type]
        timings["bg_decode"] = time.perf_counter() - t0
    # No subject found is an error (EmptyResult, 422 empty_result), never a transparent 200.
    result = matter.process(data, options, deadline=deadline).raise_if_empty()
    check_deadline(deadline)
    t0 = time.perf_counter()
    body = encode.encode(result.image, options.format, options.quality, deadline=deadline)
    timings.update(result.timings, encode=time.perf_counter() - t0)
    return Processed(body, result.image.size, timings, result.crop_box, result.frame_size, result.model, result.notice)


def _server_timing(timings: Mapping[str, float]) -> str:
    return ", ".join(f"{name};dur={seconds * 1000:.1f}" for name, seconds in timings.items())


REMOVE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "the photo"},
                        "bg_file": {"type": "string", "format": "binary", "description": "a picture to put behind the subject"},
                        "format": {"type": "string", "enum": list(FORMATS), "default": "png"},
                        "preset": {"type": "string", "enum": list(PRESET_NAMES), "default": "balanced"},
                        "mask": {"type": "boolean", "default": False, "description": "return the alpha matte alone"},
                        "bg": {
                            "type": "string",
                            "description": "transparent (default), a colour ('white', '#00ff00') or blur[:RADIUS]",
                        },
                        "bg_fit": {"type": "string", "enum": ["fill", "fit"], "default": "fill"},
                        "blur": {"type": "string", "description": "blur the original behind the subject: true or a radius"},
                        "crop": {"type": "boolean", "default": False, "description": "crop to the subject"},
                        "margin": {"type": "string", "description": "crop margin: pixels ('16') or percent ('5%')"},
                        "ratio": {"type": "string", "default": "auto", "description": "RVM downsample ratio: auto or (0, 1]"},
                        "max_size": {"type": "integer", "description": "shrink so the longer side is at most this"},
                        "quality": {"type": "integer", "default": 90, "description": "JPEG/WebP quality (WebP 100 = lossless)"},
                        "decontaminate": {"type": "string", "description": "auto | true | false: clean edge colours"},
                        "subject": {
                            "type": "string",
                            "enum": list(SUBJECTS),
                            "default": "auto",
                            "description": "auto: the person model, or the general model when no person is "
                            "found; person; general (when this server has it)",
                        },
                    },
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@api.post(
    "/remove",
    summary="Remove the background of one photo",
    description=(
        "Send the photo as the multipart field `file` (or as the raw request body with its image "
        "content type, options then in the query string). Options may also be given as query "
        "parameters. Returns the encoded image; `X-Process-Time` (seconds) and `Server-Timing` "
        "say where the time went. When a crop cut the frame, `X-Crop-Box` (`left,top,right,bottom`) "
        "says where, in pixels of the photo as processed (`X-Frame-Size`, `WxH`: upright, after "
        "`max_size`). `X-Model` says which model made the matte (`person` or `general`); `X-Notice`, "
        'when present, a warning for the user. Errors are JSON `{"error": {"code", "message"}}`: 400 bad '
        "option, 413 upload too large, 415 not an image, 422 too many pixels or `empty_result` (no "
        "subject found in the photo; the message says what to do), 503 busy (with "
        "`Retry-After`), 504 past the server's time limit (`MATTEKIT_REQUEST_TIMEOUT`)."
    ),
    openapi_extra=REMOVE_BODY,
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/webp": {}, "image/jpeg": {}}, "description": "the result"},
        400: {"description": "bad option"},
        413: {"description": "upload too large"},
        415: {"description": "not an image"},
        422: {"description": "too many pixels, or empty_result: no subject found"},
        503: {"description": "busy: retry after Retry-After seconds"},
        504: {"description": "past the server's time limit"},
    },
)
async def remove(request: Request, slot: StillsSlot) -> Response:
    # The slot is reserved before the body is read: a full server refuses the upload unread.
    return await under_request_deadline(request, lambda r, deadline: _remove(r, deadline, slot))


async def _remove(request: Request, deadline: Deadline | None, slot: Reservation) -> Response:
    state = service_of(request)
    settings = state.settings
    # The upload counts too: a client trickling its body would otherwise hold memory for ever.
    upload = await receive_within(deadline, read_upload(request, settings.max_upload_bytes))
    fields = merge_fields(request.query_params.multi_items(), upload.fields)
    check_fields(fields)
    bg_data = upload.files.get("bg_file")
    options = parse_options(fields, settings, bg_data is not None)
    require_file(upload, "photo")
    data = upload.files["file"]
    if bg_data is not None and not bg_data:
        raise InvalidInput("bg_file is empty")
    fit = (fields.get("bg_fit") or "fill").lower()
    queued = time.perf_counter()
    # Past the deadline the slot is free at once (the 504 means the next photo is admitted), and
    # process stops at its next check: decode, the model, compose and encode all check.
    out: Processed = await slot.run_until(deadline, process, state.matter, data, options, bg_data, fit, deadline)
    total = time.perf_counter() - queued
    timings = {"queue": max(0.0, total - sum(out.timings.values())), **out.timings, "total": total}
    state.telemetry.observe_timings(out.timings)
    headers = {
        "X-Process-Time": f"{sum(out.timings.values()):.3f}",
        "Server-Timing": _server_timing(timings),
        "X-Image-Size": f"{out.size[0]}x{out.size[1]}",
        "Content-Disposition": f'inline; filename="cutout{encode.EXTENSIONS[options.format]}"',
        "Cache-Control": "no-store",
        "X-Model": out.model,
    }
    if out.notice:
        headers["X-Notice"] = out.notice
    if out.crop_box is not None and out.frame_size is not None:
        # Where the crop cut the (upright, resized) photo of X-Frame-Size: a viewer crops the
        # original to the same box to compare like with like.
        headers["X-Crop-Box"] = ",".join(str(v) for v in out.crop_box)
        headers["X-Frame-Size"] = f"{out.frame_size[0]}x{out.frame_size[1]}"
    return Response(out.body, media_type=encode.CONTENT_TYPES[options.format], headers=headers)


router.include_router(api)
