"""Who may talk to this server at all, checked before any route: the ``Host`` a request names,
and where a browser's state-changing request comes from.

- **Host allow-list** (``MATTEKIT_ALLOWED_HOSTS``, added to ``localhost``, ``127.0.0.1`` and
  ``::1``). DNS rebinding points a name the attacker owns at 127.0.0.1: the victim's browser then
  treats our server as part of the attacker's site and lets its page read our answers. Such a
  request still names the attacker's host, so refusing unknown names (400) closes that door. The
  probes (``/healthz``, ``/readyz``, ``/metrics``) answer any name: orchestrators address pods by IP,
  and those answers hold nothing a page could use.
- **Cross-site posts** (only when no API keys are set: with keys, a form from another site cannot
  send one). A browser says where a request comes from (``Sec-Fetch-Site``, else ``Origin``); a
  POST or DELETE from another site, or another port of this one, is refused (403) unless its
  origin is in ``MATTEKIT_CORS_ORIGINS``. Clients that are not browsers send neither header.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import MattekitError
from .errors import CrossSite, HostNotAllowed
from .settings import Settings, host_name

# How a path's API shapes an error: (status, code, message, headers) → the answer.
Responder = Callable[[int, str, str, dict[str, str] | None], JSONResponse]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_ORIGIN = frozenset({"same-origin", "none"})  # "none": typed in the address bar, a bookmark


def _header(scope: Scope, name: bytes) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _host_refusal(scope: Scope, allowed: tuple[str, ...]) -> MattekitError | None:
    host = _header(scope, b"host")
    if host is None or "*" in allowed or scope.get("path", "") in OPEN_PATHS:
        return None  # no Host: not a browser (HTTP/1.0 tools), so not a rebinding
    name = host_name(host)
    if name in allowed:
        return None
    shown = name if len(name) <= 64 and name.isprintable() else "this name"
    return HostNotAllowed(
        f"this server does not answer to the host {shown!r}: add it to MATTEKIT_ALLOWED_HOSTS "
        "(comma-separated names, or * for any)"
    )


def _cross_site_refusal(scope: Scope, cors_origins: tuple[str, ...]) -> MattekitError | None:
    if scope.get("method", "GET") in _SAFE_METHODS:
        return None
    origin = _header(scope, b"origin")
    if origin is not None and (origin in cors_origins or "*" in cors_origins):
        return None
    fetch_site = _header(scope, b"sec-fetch-site")
    if fetch_site is not None:
        foreign = fetch_site.lower() not in _SAME_ORIGIN
    elif origin is not None:
        parts = urlsplit(origin)
        foreign = origin == "null" or (parts.netloc or "").lower() != (_header(scope, b"host") or "").lower()
    else:
        return None  # not a browser
    if not foreign:
        return None
    return CrossSite(
        "a page on another site cannot post to this server: open the page it serves, list that "
        "site in MATTEKIT_CORS_ORIGINS, or set MATTEKIT_API_KEYS"
    )


def refusal(scope: Scope, settings: Settings) -> MattekitError | None:
    """Why this request must not reach a route, or None."""
    found = _host_refusal(scope, settings.allowed_hosts)
    if found is None and not settings.api_keys:
        found = _cross_site_refusal(scope, settings.cors_origins)
    return found


class GuardMiddleware:
    """Answers a refused request itself (in the shape its path's API uses); passes the rest on."""

    def __init__(self, app: ASGIApp, settings: Settings, respond: Callable[[Request], Responder]) -> None:
        self.app, self.settings, self.respond = app, settings, respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = refusal(scope, self.settings)
            if refused is not None:
                request = Request(scope)
                response = self.respond(request)(refused.http_status, refused.code, refused.message, None)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
