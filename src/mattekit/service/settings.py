"""Service settings: one frozen dataclass (the video jobs' in :class:`JobSettings`, one of its
fields), read once from the environment.

| variable                    | default                 | meaning                                          |
|-----------------------------|-------------------------|--------------------------------------------------|
| ``MATTEKIT_MAX_UPLOAD_BYTES`` | 33554432 (32 MiB)     | request body limit, enforced while streaming (413) |
| ``MATTEKIT_MAX_PIXELS``       | 50000000              | decoded pixel limit per image (422)              |
| ``MATTEKIT_MAX_LOWRES_PIXELS`` | 2073600 (1920x1080)  | pixels the network may run on: caps ``ratio`` (422) |
| ``MATTEKIT_WORKERS``          | CPU count, at most 4  | inference threads in the bounded pool            |
| ``MATTEKIT_QUEUE_SIZE``       | 16                    | requests waiting for a worker before 503 Busy    |
| ``MATTEKIT_CORS_ORIGINS``     | (none)                | comma-separated origins allowed by CORS          |
| ``MATTEKIT_API_KEYS``         | (none)                | comma-separated keys; when set, /api/ and /v1.0/ need one |
| ``MATTEKIT_ALLOWED_HOSTS``    | (none)                | host names answered besides localhost, 127.0.0.1, ::1 (400 otherwise); ``*``: any |
| ``MATTEKIT_REQUEST_TIMEOUT``  | 30                    | seconds a still may take, upload to answer (504); 0: none |
| ``MATTEKIT_GRACE_PERIOD``     | 25                    | seconds in-flight requests get after SIGTERM (``mattekit serve``) |
| ``MATTEKIT_DRAIN_SECONDS``    | 0                     | after SIGTERM, keep accepting this long with /readyz 503 |
| ``MATTEKIT_LOG_FORMAT``       | text                  | ``json``: access and app logs as one JSON object a line |
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..core.backends import cpu_cores
from ..errors import InvalidOption

# Phones write up to ~50 MP; more is almost surely a mistake or a decompression bomb.
SERVER_MAX_PIXELS = 50_000_000
DEFAULT_MAX_UPLOAD_BYTES = 32 * 1024 * 1024
DEFAULT_QUEUE_SIZE = 16
# A client's ``ratio`` sets the network's input size, and with it the memory (~1 KB per pixel,
# bench/memory.py): ratio 1 is allowed up to a 1080p photo; the presets' automatic passes
# (640 px at most) are 7x below.
DEFAULT_MAX_LOWRES_PIXELS = 1920 * 1080
# The slowest legitimate still (``best`` at the largest allowed ratio on a big photo) takes ~13 s
# here; 30 s leaves room for a queue wait, and stays above what a client usually waits.
DEFAULT_REQUEST_TIMEOUT = 30.0
# Below Kubernetes' default terminationGracePeriodSeconds (30), so the pod exits before it is killed.
DEFAULT_GRACE_PERIOD = 25.0
LOG_FORMATS = ("text", "json")
# The names a server answers to unless told more (service/guard.py says why a Host is checked).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")

N = TypeVar("N", int, float)


def default_workers() -> int:
    """One inference thread per core, at most 4.

    ONNX Runtime already spreads one inference over every core; a second worker per core only
    overlaps the single-threaded decode/compose/encode of one request with another's inference.
    More than 4 adds memory (one full-size image set per worker) without throughput.
    """
    return max(1, min(4, cpu_cores()))


def env_number(env: Mapping[str, str], name: str, default: N, minimum: N, cast: Callable[[str], N] = int) -> N:
    """``env[name]`` as a number (``cast``: int or float) of at least ``minimum``; unset → ``default``.

    Shared by every ``MATTEKIT_*`` setting of the service (jobs too), so a bad value always
    fails the same way: at start-up, naming the variable.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise InvalidOption(f"{name} must be {kind}, not {raw!r}") from None
    if value < minimum:
        raise InvalidOption(f"{name} must be at least {minimum}, not {raw}")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def host_name(host: str) -> str:
    """The name in a ``Host`` value, without port, brackets or a trailing dot, lower case."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") > 1:  # a bare IPv6 address (a setting; a Host header brackets it)
        return host
    name, _, port = host.rpartition(":")
    return (name if name and port.isdigit() else host).rstrip(".")


def hosts_from_env(env: Mapping[str, str]) -> tuple[str, ...]:
    """The loopback names plus ``MATTEKIT_ALLOWED_HOSTS`` (names, without ports; ``*``: any)."""
    extra = tuple(host_name(name) if name != "*" else name for name in _list(env, "MATTEKIT_ALLOWED_HOSTS"))
    return ("*",) if "*" in extra else LOCAL_HOSTS + extra


@dataclass(frozen=True)
class JobSettings:
    """What the video jobs may take (``MATTEKIT_JOB_*``, see :mod:`mattekit.service.jobs`)."""

    max_upload_bytes: int = 100 * 1024 * 1024
    max_seconds: float = 120.0
    ttl: float = 3600.0
    workers: int = 1
    queue_size: int = 4
    sweep_every: float = 5.0
    # The longest clip (120 s) of 1080p at ``best`` runs ~10 minutes here; 30 leave room for a
    # slower machine while still freeing a worker a stuck or hostile file would hold for hours.
    timeout: float = 1800.0
    # What every job's files together may take (uploads, results kept for the TTL); 0: no limit.
    # ProRes and PNG outputs are 10-100x their upload, so a few finished jobs can fill a disk.
    disk_bytes: int = 10 * 1024**3
    # A stalled upload holds a jobs slot, a file and its descriptors: 100 MiB arrive in 300 s at
    # 2.8 Mbit/s, slower than any link a video is worth sending over.
    upload_timeout: float = 300.0
    folder: str | None = None  # shared by every process; None: a private temporary folder
    # Webhooks (jobs/webhooks.py): the hosts a job's webhook_url may name (none: no webhooks), the
    # secret their bodies are signed with, and the retries: attempts in all, the first wait (doubling).
    webhook_hosts: tuple[str, ...] = ()
    webhook_secret: str = ""
    webhook_attempts: int = 5
    webhook_backoff: float = 1.0
    # A Ray cluster to run the jobs on (jobs/ray_store.py): its address, and the length of the
    # chunks a clip is cut into there (each a Ray task; 20 warm-up frames each, video/chunks/).
    ray_address: str | None = None
    chunk_seconds: float = 10.0
    # On a cluster, where uploads and results live when no folder is shared: a pyarrow URI (s3://…).
    storage: str | None = None

    def __post_init__(self) -> None:
        if self.ray_address and not (self.folder or self.storage):
            raise InvalidOption(
                "MATTEKIT_RAY_ADDRESS needs MATTEKIT_JOB_DIR (a folder every replica and Ray node reads) "
                "or MATTEKIT_JOB_STORAGE (object storage, s3://…)"
            )
        if self.storage and not self.ray_address:
            raise InvalidOption("MATTEKIT_JOB_STORAGE is for video jobs on a cluster: set MATTEKIT_RAY_ADDRESS too")
        if not self.chunk_seconds > 0:
            raise InvalidOption("MATTEKIT_JOB_CHUNK_SECONDS must be a positive number of seconds")
        if self.webhook_hosts and not self.webhook_secret:
            raise InvalidOption("MATTEKIT_WEBHOOK_HOSTS needs MATTEKIT_WEBHOOK_SECRET: the key webhooks are signed with")
        if self.webhook_attempts < 1 or self.webhook_backoff < 0:
            raise InvalidOption("webhook_attempts must be at least 1 and webhook_backoff >= 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobSettings:
        env = os.environ if env is None else env
        ttl = env_number(env, "MATTEKIT_JOB_TTL", 3600.0, 1.0, float)
        return cls(
            ray_address=env.get("MATTEKIT_RAY_ADDRESS", "").strip() or None,
            storage=env.get("MATTEKIT_JOB_STORAGE", "").strip() or None,
            chunk_seconds=env_number(env, "MATTEKIT_JOB_CHUNK_SECONDS", 10.0, 0.01, float),
            webhook_hosts=tuple(host_name(name) for name in _list(env, "MATTEKIT_WEBHOOK_HOSTS")),
            webhook_secret=env.get("MATTEKIT_WEBHOOK_SECRET", "").strip(),
            webhook_attempts=env_number(env, "MATTEKIT_WEBHOOK_ATTEMPTS", 5, 1),
            webhook_backoff=env_number(env, "MATTEKIT_WEBHOOK_BACKOFF", 1.0, 0.0, float),
            max_upload_bytes=env_number(env, "MATTEKIT_JOB_MAX_UPLOAD_BYTES", 100 * 1024 * 1024, 1),
            max_seconds=env_number(env, "MATTEKIT_JOB_MAX_SECONDS", 120.0, 0.1, float),
            ttl=ttl,
            workers=env_number(env, "MATTEKIT_JOB_WORKERS", 1, 1),
            queue_size=env_number(env, "MATTEKIT_JOB_QUEUE", 4, 0),
            sweep_every=min(5.0, max(0.2, ttl / 4)),
            timeout=env_number(env, "MATTEKIT_JOB_TIMEOUT", 1800.0, 0.0, float),
            upload_timeout=env_number(env, "MATTEKIT_JOB_UPLOAD_TIMEOUT", 300.0, 0.0, float),
            disk_bytes=env_number(env, "MATTEKIT_JOB_DISK_BYTES", 10 * 1024**3, 0),
            folder=env.get("MATTEKIT_JOB_DIR", "").strip() or None,
        )


@dataclass(frozen=True)
class Settings:
    """What one service instance allows. Build with :meth:`from_env` or directly in tests."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = SERVER_MAX_PIXELS
    max_lowres_pixels: int = DEFAULT_MAX_LOWRES_PIXELS
    workers: int = 0  # 0 = default_workers()
    queue_size: int = DEFAULT_QUEUE_SIZE
    cors_origins: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = ()
    load_model: bool = True  # load the model at start-up (off only in tests that need no model)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT  # 0: no limit
    grace_period: float = DEFAULT_GRACE_PERIOD
    drain_seconds: float = 0.0
    log_format: str = "text"
    # Settings made in code (tests, an embedding application) answer any Host; a server's, read
    # by from_env (``uvicorn app:app``, ``mattekit serve``), only the loopback names by default.
    allowed_hosts: tuple[str, ...] = ("*",)
    jobs: JobSettings = field(default_factory=JobSettings)  # the video jobs' limits

    def __post_init__(self) -> None:
        if self.workers == 0:
            object.__setattr__(self, "workers", default_workers())
        if (
            self.workers < 1
            or self.queue_size < 0
            or self.max_upload_bytes < 1
            or self.max_pixels < 1
            or self.max_lowres_pixels < 1
        ):
            raise InvalidOption("workers, max_upload_bytes, max_pixels and max_lowres_pixels must be positive; queue_size >= 0")
        if self.request_timeout < 0 or self.grace_period < 0 or self.drain_seconds < 0:
            raise InvalidOption("request_timeout, grace_period and drain_seconds must be >= 0")
        if self.log_format not in LOG_FORMATS:
            raise InvalidOption(f"MATTEKIT_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {self.log_format!r}")

    def accepts_key(self, given: str) -> bool:
        """Whether ``given`` is one of the API keys (always, when none are configured)."""
        if not self.api_keys:
            return True
        # Constant time, so response timing does not tell how much of a key was right.
        return any(hmac.compare_digest(given.encode(), key.encode()) for key in self.api_keys)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``MATTEKIT_*`` variables; keyword ``overrides`` win (CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = dict(
            max_upload_bytes=env_number(env, "MATTEKIT_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES, 1),
            max_pixels=env_number(env, "MATTEKIT_MAX_PIXELS", SERVER_MAX_PIXELS, 1),
            max_lowres_pixels=env_number(env, "MATTEKIT_MAX_LOWRES_PIXELS", DEFAULT_MAX_LOWRES_PIXELS, 1),
            workers=env_number(env, "MATTEKIT_WORKERS", 0, 0),
            queue_size=env_number(env, "MATTEKIT_QUEUE_SIZE", DEFAULT_QUEUE_SIZE, 0),
            cors_origins=_list(env, "MATTEKIT_CORS_ORIGINS"),
            api_keys=_list(env, "MATTEKIT_API_KEYS"),
            allowed_hosts=hosts_from_env(env),
            request_timeout=env_number(env, "MATTEKIT_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT, 0.0, float),
            grace_period=env_number(env, "MATTEKIT_GRACE_PERIOD", DEFAULT_GRACE_PERIOD, 0.0, float),
            drain_seconds=env_number(env, "MATTEKIT_DRAIN_SECONDS", 0.0, 0.0, float),
            log_format=env.get("MATTEKIT_LOG_FORMAT", "").strip().lower() or "text",
            jobs=JobSettings.from_env(env),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
