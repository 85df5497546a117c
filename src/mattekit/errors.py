"""Our exception types. Every message is written for the person who will read it.

Each error carries a stable machine ``code`` and the HTTP status the service maps it to, so the
library, the CLI and the API report the same failure the same way.

One error, a wording per face: a message names an option with :func:`option`, and each face
renders it in its own words (:meth:`MattekitError.worded`): ``--bg white`` for the CLI (and
``str(exc)``, ``exc.message``), ``bg=white`` for the HTTP API, whose users never typed a flag.
"""

from __future__ import annotations

import re

FACES = ("cli", "api", "removebg")

# How each face names an option: the CLI's flag, the HTTP API's field, and the field's value when
# the message gives none ("use --mask" is "use mask=true").
OPTION_NAMES: dict[str, tuple[str, str, str]] = {
    "bg": ("--bg", "bg", ""),
    "mask": ("--mask", "mask", "true"),
    "max_size": ("--max-size", "max_size", ""),
    "subject": ("--subject", "subject", ""),
    "output_type": ("--output-type", "output", ""),
    "format": ("--format", "format", ""),
}
# The remove.bg-compatible API's own parameters, where it has one (else it reads as our API).
REMOVEBG_NAMES: dict[str, str] = {"max_size": "size=preview", "bg": "bg_color=ffffff", "mask": "channels=alpha"}
_MARK = "\x1f"
_OPTION = re.compile(_MARK + r"([a-z_]+)=([^" + _MARK + r"]*)" + _MARK)


def option(name: str, value: str = "") -> str:
    """``name`` (a key of :data:`OPTION_NAMES`), with ``value``, for a message: each face
    writes it its own way (see :meth:`MattekitError.worded`)."""
    if name not in OPTION_NAMES:
        raise KeyError(f"no wording for the option {name!r}: add it to OPTION_NAMES")
    return f"{_MARK}{name}={value}{_MARK}"


def _render(template: str, face: str) -> str:
    def one(m: re.Match[str]) -> str:
        flag, field, default = OPTION_NAMES[m.group(1)]
        value = m.group(2)
        if face == "cli":
            return f"{flag} {value}" if value else flag
        if face == "removebg" and m.group(1) in REMOVEBG_NAMES:
            return REMOVEBG_NAMES[m.group(1)]
        return f"{field}={value or default}" if value or default else field

    return _OPTION.sub(one, template)


class MattekitError(Exception):
    """Base class of every error mattekit raises on purpose."""

    code: str = "error"
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(_render(message, "cli"))
        self._template = message
        self.message = _render(message, "cli")

    def worded(self, face: str) -> str:
        """The message for ``face`` (one of :data:`FACES`): the options it names as that face
        names them. A message rewritten since (``exc.message = ...``) is that text for every face."""
        if face not in FACES:
            raise ValueError(f"face must be one of {', '.join(FACES)}")
        if self.message != _render(self._template, "cli"):
            return self.message
        return _render(self._template, face)

    def __str__(self) -> str:
        return self.message


class InvalidOption(MattekitError, ValueError):
    """An option has a value we do not accept."""

    code = "invalid_option"
    http_status = 400


class InvalidInput(MattekitError, ValueError):
    """The input is not an image (or video) we can read: wrong type, truncated, corrupt."""

    code = "invalid_input"
    http_status = 415


class TooLarge(MattekitError):
    """The input has more pixels (or frames, or seconds) than the configured limit."""

    code = "too_large"
    http_status = 422


class UploadTooLarge(MattekitError):
    """The upload has more bytes than the configured limit."""

    code = "upload_too_large"
    http_status = 413


class ModelUnavailable(MattekitError):
    """The model file cannot be found, fetched or verified."""

    code = "model_unavailable"
    http_status = 503


class EmptyResult(MattekitError):
    """The model kept (almost) nothing of the photo: no subject it could find. The message says
    why and, when the general model would help but is not installed, how to get it."""

    code = "empty_result"
    http_status = 422


class InternalError(MattekitError):
    """A bug in mattekit, reported as a value so one input never stops the others."""

    code = "internal_error"
    http_status = 500


class Busy(MattekitError):
    """The work queue is full; try again shortly."""

    code = "busy"
    http_status = 503


class Cancelled(MattekitError):
    """The work was cancelled before it finished."""

    code = "cancelled"
    http_status = 409


class DeadlineExceeded(MattekitError):
    """The work ran past the time this server allows it (``MATTEKIT_REQUEST_TIMEOUT``/``_JOB_TIMEOUT``)."""

    code = "deadline_exceeded"
    http_status = 504


class UploadTimeout(DeadlineExceeded):
    """The request body did not arrive within the time this server allows for an upload."""

    code = "upload_timeout"
    http_status = 408


class CannotListen(MattekitError):
    """``mattekit serve`` cannot listen on the address and port it was given (in use, not ours)."""

    code = "cannot_listen"


def ffmpeg_reason(exc: BaseException) -> str:
    """What an FFmpeg (PyAV) error means, without its number or the file it names:
    ``[Errno 1094995529] Invalid data found when processing input: '/tmp/…/upload'`` is
    "invalid data found when processing input"."""
    reason = getattr(exc, "strerror", None) or ""
    if not isinstance(reason, str) or not reason.strip():
        reason = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).split(": '")[0]
    reason = reason.strip().rstrip(".")
    return reason[:1].lower() + reason[1:] if reason else "an error FFmpeg did not name"


class MissingExtra(MattekitError):
    """An optional dependency (Ray, for batch and chunked video) is not installed."""

    code = "missing_extra"


class ClusterUnavailable(MattekitError):
    """The Ray cluster named by --address cannot be reached, or cannot start the work."""

    code = "cluster_unavailable"
    http_status = 503
