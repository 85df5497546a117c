"""The errors only the web service raises: each is an HTTP answer (its ``http_status``) with a
stable ``code``. The library's own errors, which every face shares, are in :mod:`mattekit.errors`;
``tests/test_errors.py`` checks that every error lives in one of the two files and that no two
share a code."""

from __future__ import annotations

from ..errors import InvalidOption, MattekitError


class BadRequest(MattekitError):
    """The request itself is malformed (not one of its options)."""

    code = "bad_request"
    http_status = 400


class Unauthorized(MattekitError):
    """``MATTEKIT_API_KEYS`` is set and the request presents none of them."""

    code = "unauthorized"
    http_status = 401


class HostNotAllowed(MattekitError):
    """The ``Host`` header names a host this server was not told it answers to."""

    code = "host_not_allowed"
    http_status = 400


class CrossSite(MattekitError):
    """A browser posted from a page on another site to a server without API keys."""

    code = "cross_site"
    http_status = 403


class NotFound(MattekitError):
    """No such video job (or not one the request's key made)."""

    code = "not_found"
    http_status = 404


class NotReady(MattekitError):
    """A video job's result was asked for before the job was done."""

    code = "not_ready"
    http_status = 409


class NoSpace(MattekitError):
    """The disk the video jobs write to is full (or past ``MATTEKIT_JOB_DISK_BYTES``)."""

    code = "no_space"
    http_status = 507


class ShuttingDown(MattekitError):
    """The server stopped (a restart or deploy) before the job could finish."""

    code = "shutting_down"
    http_status = 503


class WebhookRefused(InvalidOption):
    """A job's ``webhook_url`` is not an http(s) URL to a host in ``MATTEKIT_WEBHOOK_HOSTS``."""

    code = "webhook_refused"


class RuntimeMissing(MattekitError):
    """The camera page's in-browser runtime (onnxruntime-web) is not installed on this server."""

    code = "camera_runtime_missing"
    http_status = 404


class RemoveBgError(InvalidOption):
    """A request remove.bg would refuse, or one this server does not do; the instance's ``code``
    is remove.bg's own (``invalid_parameters``, ...), this class's only names the kind."""

    code = "removebg_refused"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Forbidden(MattekitError):
    """remove.bg's face: no key, or a key this server does not have (its ``auth_failed``)."""

    code = "auth_failed"
    http_status = 403


class NoSubject(MattekitError):
    """remove.bg's face: no subject found in the photo (its ``unknown_foreground``)."""

    code = "unknown_foreground"
    http_status = 400
