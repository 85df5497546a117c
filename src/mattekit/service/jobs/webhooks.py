"""Webhooks: a job's ``webhook_url`` gets one POST when the job is done or has failed.

The contract the commercial matting APIs share: the body is the job as ``GET /api/v1/jobs/{id}``
shows it (JSON), signed with HMAC-SHA256 over those exact bytes with the server's secret
(``MATTEKIT_WEBHOOK_SECRET``), sent as ``X-Mattekit-Signature: sha256=<hex>``; a receiver
computes the same digest over the body it got and compares in constant time. Only hosts the
operator lists in ``MATTEKIT_WEBHOOK_HOSTS`` are ever called (anything else is refused when the
job is submitted, 400 ``webhook_refused``): a client must not make the server post to its
internal network. Redirects are not followed for the same reason.

Delivery is retried with exponential backoff (``backoff``, 2x, 4x, ... seconds, ``attempts`` in
all) on a connection error, a timeout, 429 or 5xx; any other answer ends it (2xx: delivered).
It runs in a thread of its own, so a slow receiver never holds a jobs worker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import WebhookRefused
from ..settings import host_name

log = logging.getLogger("mattekit.service.jobs")

SIGNATURE_HEADER = "X-Mattekit-Signature"
EVENTS = {"done": "job.done", "failed": "job.failed"}  # the states a webhook is sent for


def check_url(url: str, allowed: tuple[str, ...]) -> str:
    """``url`` when it is an http(s) URL to a host in ``allowed``; :class:`WebhookRefused` otherwise."""
    if not allowed:
        raise WebhookRefused(
            "this server sends no webhooks (its operator has not set MATTEKIT_WEBHOOK_HOSTS): poll the job's status_url"
        )
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("webhook_url must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("webhook_url must not carry a user name or password")
    host = host_name(parts.hostname)
    if host not in allowed:
        shown = host if len(host) <= 64 and host.isprintable() else "this host"
        raise WebhookRefused(
            f"webhook_url's host {shown!r} is not one this server may call (MATTEKIT_WEBHOOK_HOSTS: {', '.join(allowed)})"
        )
    return url.strip()


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` (the header's value) signs ``body``: what a receiver does."""
    return hmac.compare_digest(sign(secret, body), signature)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead anywhere, past the allowed hosts: it is an answer, not followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST ``body``; the answer's status (0 when none came: connection refused, timeout)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _opener.open(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError):
        return 0


@dataclass(frozen=True)
class Delivery:
    url: str
    body: bytes
    event: str
    job_id: str


def deliver(
    delivery: Delivery,
    secret: str,
    *,
    attempts: int = 5,
    backoff: float = 1.0,
    timeout: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Send one webhook, retrying as the module says; whether it was delivered (a 2xx)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "mattekit-webhook",
        SIGNATURE_HEADER: sign(secret, delivery.body),
        "X-Mattekit-Event": delivery.event,
        "X-Mattekit-Delivery": uuid.uuid4().hex,  # the same for every attempt: a receiver may dedupe on it
    }
    for attempt in range(attempts):
        status = _post(delivery.url, delivery.body, headers, timeout)
        if 200 <= status < 300:
            return True
        if status and status != 429 and status < 500:
            log.warning("webhook for video job %s refused with %d; not retried", delivery.job_id, status)
            return False
        if attempt + 1 < attempts:
            sleep(backoff * 2**attempt)
    log.warning("webhook for video job %s not delivered after %d attempts", delivery.job_id, attempts)
    return False


def body_of(view: Mapping[str, Any]) -> bytes:
    """The bytes a webhook sends (and signs): the job's view as compact JSON."""
    return json.dumps(view, separators=(",", ":"), sort_keys=True).encode()


class Notifier:
    """Sends each finished job's webhook once, in a thread of its own."""

    def __init__(self, secret: str, attempts: int, backoff: float) -> None:
        self.secret, self.attempts, self.backoff = secret, attempts, backoff
        self._threads: list[threading.Thread] = []

    def send(self, delivery: Delivery) -> threading.Thread:
        thread = threading.Thread(
            target=deliver,
            args=(delivery, self.secret),
            kwargs={"attempts": self.attempts, "backoff": self.backoff},
            name=f"mattekit-webhook-{delivery.job_id}",
            daemon=True,  # a delivery still retrying when the process exits is given up (logged)
        )
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        return thread

    def wait(self, timeout: float) -> None:
        """Give deliveries in flight up to ``timeout`` seconds (at shutdown)."""
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
