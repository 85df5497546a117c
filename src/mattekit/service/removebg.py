"""remove.bg's v1.0 HTTP API on our server: ``POST /v1.0/removebg`` and ``GET /v1.0/account``.

Clients and plugins written for remove.bg work unchanged once pointed at this server. A request
is translated into our :class:`~mattekit.options.Options` and runs through the same
:class:`~mattekit.matter.Matter`, pool, limits, API keys and metrics as ``/api/v1/remove``;
only the vocabulary and the shape of answers and errors are remove.bg's. What each parameter
does here (implemented, ignored, refused) is in the README, "Coming from remove.bg".

One concept in one file (~520 lines): remove.bg's face, its request, its answers and its error
shape, which change together whenever a client library is found to send or read something new.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from .. import decode, encode
from ..deadline import Deadline
from ..deadline import check as check_deadline
from ..errors import InvalidOption
from ..matter import Matter
from ..options import MAX_SIZE_LIMIT, BackgroundImage, Options, parse_color
from .common import header_size, presented_key, receive_within, under_request_deadline
from .deploy import StillsSlot
from .errors import BadRequest, Forbidden, NoSubject, RemoveBgError
from .executor import Reservation
from .settings import Settings
from .state import service_of
from .uploads import check_fields, limited_stream, read_upload

ERROR_PREFIX = "/v1.0/"
FACE = "removebg"  # errors name remove.bg's parameters (size=preview), not ours (mattekit.errors)

# Result size caps in pixels, as remove.bg defines its sizes; None = as large as the input
# (and this server's MATTEKIT_MAX_PIXELS) allows. Never upscaled.
SIZES: dict[str, int | None] = {
    "preview": 250_000,
    "small": 250_000,
    "regular": 250_000,
    "medium": 1_500_000,
    "hd": 4_000_000,
    "full": None,
    "4k": None,
    "auto": None,
    "50mp": None,
}
DEFAULT_RESULT_SIZE = "preview"  # remove.bg's default, so a client gets the size it got there
# remove.bg's ``type`` → our ``subject``: its person is our person model, every other type is a
# subject for the general model, and auto is auto (the person model first).
SUBJECT_TYPES = ("auto", "person")
OTHER_TYPES = ("product", "animal", "car", "car_interior", "car_part", "transportation", "graphic", "graphics", "other")
TYPE_SUBJECTS: dict[str, str] = {"auto": "auto", "person": "person", **{t: "general" for t in OTHER_TYPES}}
TYPE_LEVELS = ("none", "1", "2", "latest")
REMOVEBG_FORMATS = ("auto", "png", "jpg", "webp", "zip")
CHANNELS = ("rgba", "alpha")
# remove.bg effects for cars (shadows, see-through windows): on people they change nothing
# there either, so they are accepted and named in X-Ignored-Parameters.
IGNORED = ("add_shadow", "semitransparency", "shadow_method", "shadow_type", "shadow_opacity")
IMAGE_FILE_FIELDS = ("image_file", "bg_image_file", "image_file_b64")
# Other services' names for the base64 photo (removebgplus: image_base64): long like a photo, so
# read as one, then refused with the name remove.bg uses instead of "longer than 4096 bytes".
B64_ALIASES = ("image_base64",)
KNOWN = frozenset(
    {
        "image_file",
        "image_file_b64",
        "image_url",
        "bg_image_file",
        "bg_image_url",
        "bg_color",
        "size",
        "type",
        "type_level",
        "format",
        "channels",
        "crop",
        "crop_margin",
        "roi",
        "scale",
        "position",
        *IGNORED,
    }
)
MAX_MARGIN_PX, MAX_MARGIN_PERCENT = 500, 50  # remove.bg's own bounds per side
# JSON has no infinity; remove.bg's clients read these as plain numbers.
UNLIMITED = 1_000_000_000
_HEX = re.compile(r"#?([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_LENGTH = re.compile(r"(\d+(?:\.\d+)?)(px|%)?")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_REPORTED = 16
# Past the time limit, what to try in remove.bg's parameters (ours name a preset and a ratio).
TIMEOUT_HINT = "try a smaller size (e.g. size=preview) or a smaller image"


# Our error codes in remove.bg's words; the message stays ours.
_CODES = {
    "invalid_option": "invalid_parameters",
    "bad_request": "invalid_request",
    "invalid_input": "failed_to_read_image",
    "upload_too_large": "file_too_large",
    "too_large": "resolution_too_high",
    "busy": "rate_limit_exceeded",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """remove.bg's envelope. A full queue is its 429, which its clients retry after Retry-After.

    The message goes in ``title`` (what most clients show) and in ``detail`` (what the official
    CLI shows beside the code).
    """
    if code == "busy":
        status = 429
    body = {"errors": [{"title": message, "code": _CODES.get(code, code), "detail": message}]}
    return JSONResponse(body, status_code=status, headers=headers)


async def require_key(request: Request) -> None:
    """``X-Api-Key`` (or the OAuth2 token in ``Authorization: Bearer``, which remove.bg's spec
    also allows) against ``MATTEKIT_API_KEYS``; with none configured any key (or none) works."""
    settings = service_of(request).settings
    if not settings.api_keys:
        return
    given = presented_key(request)
    if not given:
        raise Forbidden("Missing API Key: send one of this server's keys as the X-Api-Key header")
    if not settings.accepts_key(given):
        raise Forbidden("API Key invalid")


# -- the request -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoveBgRequest:
    """One request, checked and translated: everything the pool thread needs."""

    image: bytes
    options: Options
    max_pixels_out: int | None
    output: str  # one of REMOVEBG_FORMATS
    report_type: bool
    ignored: tuple[str, ...]
    kind: str = "auto"  # remove.bg's type, as asked


async def read_fields(request: Request, limit: int) -> tuple[dict[str, str], dict[str, bytes]]:
    """Text fields and uploads of a multipart, urlencoded or JSON body; ``""`` fields dropped."""
    from python_multipart.multipart import parse_options_header

    media = parse_options_header(request.headers.get("content-type", ""))[0].decode("latin-1").lower()
    fields: dict[str, str]
    files: dict[str, bytes]
    if media == "application/json":
        raw = bytearray()
        async for chunk in limited_stream(request, limit):
            raw += chunk
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            raise BadRequest("the JSON body is not valid JSON") from None
        except RecursionError:  # nested thousands deep: parameters are one flat object
            raise BadRequest("the JSON body is nested too deeply: send one flat object of parameters") from None
        if not isinstance(payload, dict):
            raise BadRequest("the JSON body must be an object of parameters")
        fields = {str(k): _text(str(k), v) for k, v in payload.items()}
        # A photo sent as text under another name is long too: parse() says where it goes.
        check_fields(fields, IMAGE_FILE_FIELDS + B64_ALIASES)
        files = {}
    elif not media and request.headers.get("content-length", "0") == "0":
        fields, files = {}, {}  # no body at all: answered below as "no image given"
    elif media in ("multipart/form-data", "application/x-www-form-urlencoded"):
        upload = await read_upload(request, limit, file_fields=IMAGE_FILE_FIELDS + B64_ALIASES)
        fields, files = upload.fields, upload.files
    else:
        raise RemoveBgError(
            f"send the parameters as multipart/form-data, application/x-www-form-urlencoded or "
            f"application/json, not {media or 'a body without a content type'}",
            "invalid_content_type",
        )
    if "image_file_b64" in files:  # a multipart part, kept as bytes: it may be megabytes long
        fields["image_file_b64"] = files.pop("image_file_b64").decode("ascii", "replace")
    # An empty bg_image_file is kept: dropped, the answer would lack the background asked for.
    return (
        {k: v for k, v in fields.items() if v.strip()},
        {k: v for k, v in files.items() if v or k == "bg_image_file"},
    )


def _text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise BadRequest(f"{name} must be a string, number or boolean")


def parse(fields: Mapping[str, str], files: Mapping[str, bytes], settings: Settings) -> RemoveBgRequest:
    """remove.bg parameters → a :class:`RemoveBgRequest` under this server's limits (400 on a bad one)."""
    for name in ("image_url", "bg_image_url"):
        if name in fields:
            raise RemoveBgError(
                f"{name}: this server fetches nothing from URLs; send the picture itself "
                f"({'image_file or image_file_b64' if name == 'image_url' else 'bg_image_file'})",
                f"{name}_not_supported",
            )
    if "image_file" in fields:
        raise RemoveBgError(
            "image_file must be a multipart file upload; in a form or JSON body send image_file_b64", "invalid_image_file"
        )
    if "bg_image_file" in fields:
        raise RemoveBgError(
            "bg_image_file must be a multipart file upload (a form or JSON body cannot carry one); "
            "send the request as multipart/form-data, or give bg_color",
            "invalid_bg_image_file",
        )
    sources = [name for name in ("image_file", "image_file_b64") if name in files or name in fields]
    alias = next((name for name in B64_ALIASES if name in fields or name in files), None)
    if not sources and alias is not None:
        raise RemoveBgError(
            f"No image given: {alias} is not a remove.bg parameter; send the base64 photo as image_file_b64 "
            "(or the file itself as the multipart upload image_file)",
            "missing_source",
        )
    if not sources:
        raise RemoveBgError("No image given: send image_file (multipart) or image_file_b64", "missing_source")
    if len(sources) > 1:
        raise RemoveBgError("give one image: image_file or image_file_b64, not both", "multiple_sources")
    image = files["image_file"] if "image_file" in files else _b64(fields["image_file_b64"])

    kind = _choice("type", fields.get("type", "auto").lower(), tuple(TYPE_SUBJECTS))
    level = _choice("type_level", fields.get("type_level", "1").lower(), TYPE_LEVELS)
    size = _choice("size", fields.get("size", DEFAULT_RESULT_SIZE).lower(), tuple(SIZES))
    output = _choice("format", fields.get("format", "auto").lower(), REMOVEBG_FORMATS)
    alpha_only = _choice("channels", fields.get("channels", "rgba").lower(), CHANNELS) == "alpha"
    _whole_image_only(fields)

    # A zip always holds both the colours and the matte, whatever channels says.
    changes: dict[str, Any] = {"mask": alpha_only and output != "zip", "subject": TYPE_SUBJECTS[kind]}
    background = files.get("bg_image_file")
    if background is not None and not background:
        raise RemoveBgError(
            "bg_image_file is empty (0 bytes): choose the background picture again, or leave bg_image_file out",
            "invalid_bg_image_file",
        )
    if background is not None and "bg_color" in fields:
        raise RemoveBgError("give one background: bg_color or bg_image_file, not both", "multiple_bg_sources")
    if background is not None:
        changes["bg"] = BackgroundImage(background, "fill")  # remove.bg centres it and fills the frame
    elif "bg_color" in fields:
        changes["bg"] = _colour(fields["bg_color"])
    if output == "jpg" and "bg" not in changes and not alpha_only:
        raise RemoveBgError(
            "format=jpg has no transparency: add bg_color or bg_image_file, or use png, webp or zip", "invalid_format"
        )
    if "crop" in fields:
        changes["crop"] = fields["crop"]
        if "crop_margin" in fields and Options.from_fields({"crop": fields["crop"]}).crop:
            changes["margin"] = _margin(fields["crop_margin"])  # remove.bg reads it only with crop

    if output in ("png", "jpg", "webp"):
        changes["format"] = output
    base = Options(max_pixels=settings.max_pixels, max_lowres_pixels=settings.max_lowres_pixels)
    options = Options.from_fields(changes, base=base)
    # Only plain names, and a bounded list: they come from the client and go into a header.
    names = set(fields) | set(files)
    ignored = tuple(sorted(name for name in names if (name in IGNORED or name not in KNOWN) and _NAME.fullmatch(name)))[
        :MAX_REPORTED
    ]
    return RemoveBgRequest(image, options, SIZES[size], output, level != "none", ignored, kind)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise RemoveBgError(f"{name} must be one of {', '.join(allowed)}, not {value!r}", f"invalid_{name}")
    return value


def _b64(text: str) -> bytes:
    # Tolerate a data: URI prefix, line breaks, and a '+' that a form encoder turned into a space.
    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    payload = re.sub(r"[\r\n\t]", "", payload).replace(" ", "+")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RemoveBgError("image_file_b64 is not valid base64", "invalid_image_file_b64") from None


def _colour(value: str) -> Any:
    text = value.strip()
    hexa = _HEX.fullmatch(text)
    if hexa:
        digits = hexa.group(1)
        if len(digits) in (4, 8) and digits[len(digits) * 3 // 4 :].lower() not in ("f", "ff"):
            raise RemoveBgError(
                "bg_color with transparency is not supported: give an opaque colour, e.g. 81d4fa", "invalid_bg_color"
            )
        text = "#" + digits[: len(digits) * 3 // 4] if len(digits) in (4, 8) else "#" + digits
    try:
        return parse_color(text)
    except InvalidOption:
        raise RemoveBgError(
            f"bg_color {value!r} is not a colour: give hex (81d4fa, fff) or a name (green)", "invalid_bg_color"
        ) from None


def _margin(value: str) -> str:
    """One remove.bg margin (``10px``, ``5%``; 1, 2 or 4 equal values) as our ``margin`` text."""
    parts = re.split(r"[\s,]+", value.strip())
    lengths = [_LENGTH.fullmatch(p) for p in parts]
    if len(parts) not in (1, 2, 4) or not all(lengths):
        raise RemoveBgError(f"crop_margin must be 1, 2 or 4 values like 10px or 5%, not {value!r}", "invalid_crop_margin")
    values = {(float(m.group(1)), m.group(2) == "%") for m in lengths if m}
    if len(values) > 1:
        raise RemoveBgError(
            "crop_margin with a different margin per side is not supported: give one value", "unsupported_crop_margin"
        )
    number, percent = values.pop()
    if number > (MAX_MARGIN_PERCENT if percent else MAX_MARGIN_PX):
        raise RemoveBgError(
            f"crop_margin is at most {MAX_MARGIN_PX}px or {MAX_MARGIN_PERCENT}%, not {value!r}", "invalid_crop_margin"
        )
    return f"{number:g}%" if percent else f"{number:g}"


def _whole_image_only(fields: Mapping[str, str]) -> None:
    """roi, scale and position: their defaults only (checked for syntax first, then refused)."""
    roi = fields.get("roi")
    if roi is not None:
        corners = roi.split()
        if len(corners) != 4 or not all(_LENGTH.fullmatch(c) for c in corners):
            raise RemoveBgError(f"roi must be 'x1 y1 x2 y2' in px or %, not {roi!r}", "invalid_roi")
        if not (all(float(c.rstrip("px%")) == 0 for c in corners[:2]) and corners[2:] == ["100%", "100%"]):
            raise RemoveBgError(
                "roi other than the whole image is not supported: crop the photo before sending it", "unsupported_roi"
            )
    scale = fields.get("scale", "original").lower()
    if scale != "original":
        fits = _PERCENT.fullmatch(scale)
        if not fits or not 10 <= float(fits.group(1)) <= 100:
            raise RemoveBgError(f"scale must be 10%..100% or original, not {scale!r}", "invalid_scale")
        raise RemoveBgError("scale is not supported: only scale=original", "unsupported_scale")
    position = fields.get("position", "original").lower()
    if position != "original":
        values = position.split()
        if position != "center" and not (1 <= len(values) <= 2 and all(_PERCENT.fullmatch(v) for v in values)):
            raise RemoveBgError(f"position must be original, center or 1-2 percentages, not {position!r}", "invalid_position")
        raise RemoveBgError("position is not supported: only position=original", "unsupported_position")


# -- the work, in a pool thread --------------------------------------------------------------
@dataclass
class Rendered:
    body: bytes
    media_type: str
    size: tuple[int, int]
    subject: tuple[int, int, int, int]  # left, top, right, bottom in the result
    timings: dict[str, float]
    model: str = "person"  # the model that made the matte (Result.model)


def render(matter: Matter, job: RemoveBgRequest, deadline: Deadline | None = None) -> Rendered:
    check_deadline(deadline)  # waited in the queue past its deadline: its client has its 504
    options = job.options
    if job.max_pixels_out is not None:
        side = _longest_side(job.image, options.max_pixels, job.max_pixels_out)
        if side is not None:
            options = options.replace(max_size=side)
    if options.subject == "general" and not matter.general.available():
        raise RemoveBgError(
            f"type={job.kind} needs the general model, which this server does not have "
            "(its operator can run `mattekit model fetch general`); type=person works",
            "unsupported_type",
        )
    result = matter.process(job.image, options, deadline=deadline)
    if result.empty or result.subject_box is None:
        # remove.bg's answer for a photo without a foreground: a 400, never an empty cut-out.
        raise NoSubject(result.notice or "no subject found in the image: nothing in it would stay in the cut-out")
    check_deadline(deadline)
    t = time.perf_counter()
    image = result.image
    output = job.output
    if output == "auto":  # remove.bg: PNG where something is transparent, else JPEG
        # one band: getextrema() is (min, max); PIL types it for any number of bands
        see_through = image.mode == "RGBA" and cast("tuple[int, int]", image.getchannel("A").getextrema())[0] < 255
        output = "png" if see_through or image.mode == "L" else "jpg"
    if output == "zip":
        body, media = _zip(image, options.quality), "application/zip"
    else:
        opaque = image.convert("RGB") if output == "jpg" and image.mode == "RGBA" else image
        body, media = encode.encode(opaque, output, options.quality, deadline=deadline), encode.CONTENT_TYPES[output]
    result.timings["encode"] = time.perf_counter() - t
    return Rendered(body, media, image.size, result.subject_box, result.timings, result.model)


def _longest_side(data: bytes, max_pixels: int, cap: int) -> int | None:
    """The ``max_size`` that brings the photo down to ``cap`` pixels; None when it is within,
    or when the header cannot say (then decoding refuses the photo, in its own words)."""
    # The header only. Up to the bound, a JPEG past the limit is decoded reduced with the
    # max_size found here (decode.open_image); decode holds everything else to the limit. A
    # photo past even the bound is left to decode too: its message states the real limit
    # (MATTEKIT_MAX_PIXELS), where this look at the header would have stated the bound.
    size = header_size(data, max_pixels * decode.REDUCED_JPEG_BOUND)
    if size is None or size[0] * size[1] <= cap:
        return None
    w, h = size
    side = math.floor(max(w, h) * math.sqrt(cap / (w * h)))
    # Never below what the model needs on the shorter side (a strip at 0.25 MP): a little past
    # the size asked for, rather than a refusal of a photo the client sent as it is.
    side = max(side, decode.smallest_max_size(size))
    # Past the largest max_size Options takes, the photo stays as sent (a strip 120,000 px long).
    return None if side >= max(w, h) or side > MAX_SIZE_LIMIT else side


def _zip(image: Image.Image, quality: int) -> bytes:
    """remove.bg's ZIP: ``color.jpg`` (edge colours cleaned) and ``alpha.png`` (the matte)."""
    if image.mode == "RGBA":
        colour, alpha = image.convert("RGB"), image.getchannel("A")
    else:  # a background made it opaque
        colour, alpha = image, Image.new("L", image.size, 255)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:  # both already compressed
        archive.writestr("color.jpg", encode.encode(colour, "jpg", quality))
        archive.writestr("alpha.png", encode.encode(alpha, "png"))
    return buf.getvalue()


# -- routes ----------------------------------------------------------------------------------
router = APIRouter(prefix="/v1.0", dependencies=[Depends(require_key)], tags=["remove.bg compatible"])

_PARAMETERS = {
    "image_file_b64": "the photo, base64",
    "image_url": "refused: this server fetches nothing from URLs",
    "size": "preview|small|regular (0.25 MP), medium (1.5 MP), hd (4 MP), full|4k|auto (as large as the input)",
    "type": "auto|person|product|animal|car|transportation|graphic|other (person: the person model; the "
    "others: the general model, where this server has it; auto: the person model, or the general "
    "model when no person is found)",
    "type_level": "none|1|2|latest (none: no X-Type)",
    "format": "auto|png|jpg|webp|zip (zip: color.jpg + alpha.png)",
    "channels": "rgba|alpha",
    "bg_color": "hex (81d4fa, fff) or a colour name",
    "bg_image_url": "refused: nothing is fetched from URLs",
    "crop": "crop to the subject",
    "crop_margin": "with crop: one margin, 10px or 5% (at most 500px / 50%)",
    "roi": "0% 0% 100% 100% only",
    "scale": "original only",
    "position": "original only",
    **{name: "accepted, ignored (named in X-Ignored-Parameters)" for name in IGNORED},
}
_TEXT = {name: {"type": "string", "description": text} for name, text in _PARAMETERS.items()}
_FILE = {"type": "string", "format": "binary"}
REMOVEBG_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image_file": {**_FILE, "description": "the photo (its type is read from its bytes)"},
                        "bg_image_file": {**_FILE, "description": "a picture to put behind the subject"},
                        **_TEXT,
                    },
                }
            },
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": _TEXT}},
            "application/json": {"schema": {"type": "object", "properties": _TEXT}},
        },
    }
}


@router.post(
    "/removebg",
    summary="Remove the background (remove.bg v1.0 compatible)",
    description=(
        "remove.bg's request and answer, on this server's model, queue, limits and keys "
        "(`X-Api-Key`). Returns the image with `X-Width`, `X-Height`, `X-Type: person`, "
        "`X-Credits-Charged: 0` and `X-Foreground-Top/Left/Width/Height`; with "
        '`Accept: application/json`, `{"data": {"result_b64", "foreground_top", ...}}`. '
        "Parameters this server ignores are named in `X-Ignored-Parameters`. Errors are "
        '`{"errors": [{"title", "code", "detail"}]}`: 400 bad parameter or no person, '
        "403 API key, 413 upload too large, 415 not an image, 422 too many pixels, 429 busy and "
        "503 model unavailable (both with `Retry-After`)."
    ),
    openapi_extra=REMOVEBG_BODY,
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "application/zip": {}, "application/json": {}},
            "description": "the result",
        },
        400: {"description": "bad parameter, or no person found"},
        403: {"description": "API key missing or invalid"},
        413: {"description": "upload too large"},
        415: {"description": "not an image"},
        422: {"description": "too many pixels"},
        429: {"description": "busy: retry after Retry-After seconds"},
        503: {"description": "the model is not available"},
        504: {"description": "past the server's time limit (MATTEKIT_REQUEST_TIMEOUT)"},
    },
)
async def removebg(request: Request, slot: StillsSlot) -> Response:
    # The slot is reserved before the body is read: a full server refuses the upload unread.
    return await under_request_deadline(request, lambda r, deadline: _removebg(r, deadline, slot), TIMEOUT_HINT)


async def _removebg(request: Request, deadline: Deadline | None, slot: Reservation) -> Response:
    state = service_of(request)
    fields, files = await receive_within(deadline, read_fields(request, state.settings.max_upload_bytes))
    job = parse(fields, files, state.settings)
    # Past the deadline the slot is free at once, and render stops at its next check.
    out: Rendered = await slot.run_until(deadline, render, state.matter, job, deadline)
    state.telemetry.observe_timings(out.timings)
    left, top, right, bottom = out.subject
    headers = {
        "X-Width": str(out.size[0]),
        "X-Height": str(out.size[1]),
        "X-Credits-Charged": "0",  # an integer string: remove-bg-api does int() on it
        "X-Foreground-Top": str(top),
        "X-Foreground-Left": str(left),
        "X-Foreground-Width": str(right - left),
        "X-Foreground-Height": str(bottom - top),
        "X-Process-Time": f"{sum(out.timings.values()):.3f}",
        "Cache-Control": "no-store",
    }
    if job.report_type:
        # What was cut out, in remove.bg's words: a person, else the type asked for (or "other").
        headers["X-Type"] = "person" if out.model == "person" else job.kind if job.kind in OTHER_TYPES else "other"
    if job.ignored:
        headers["X-Ignored-Parameters"] = ",".join(job.ignored)
    if "application/json" in request.headers.get("accept", "").lower():
        data = {
            "result_b64": base64.b64encode(out.body).decode("ascii"),
            "foreground_top": top,
            "foreground_left": left,
            "foreground_width": right - left,
            "foreground_height": bottom - top,
        }
        return JSONResponse({"data": data}, headers=headers)
    return Response(out.body, media_type=out.media_type, headers=headers)


@router.get("/account", summary="Account and credits (remove.bg v1.0 compatible; unlimited here)")
async def account() -> dict[str, Any]:
    credits = {"total": UNLIMITED, "subscription": UNLIMITED, "payg": 0, "enterprise": 0}
    return {"data": {"attributes": {"credits": credits, "api": {"free_calls": UNLIMITED, "sizes": "all"}}}}
