"""Our exception types. Every message is written for the person who will read it.

Each error carries a stable machine ``code`` and the HTTP status the service maps it to, so the
library, the CLI and the API report the same failure the same way.
"""

from __future__ import annotations


class MattekitError(Exception):
    """Base class of every error mattekit raises on purpose."""

    code: str = "error"
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

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


__all__ = [
    "MattekitError",
    "InvalidOption",
    "InvalidInput",
    "TooLarge",
    "UploadTooLarge",
    "ModelUnavailable",
    "EmptyResult",
    "InternalError",
    "Busy",
    "Cancelled",
    "DeadlineExceeded",
    "UploadTimeout",
    "CannotListen",
]
