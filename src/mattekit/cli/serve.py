"""``mattekit serve``: the web page and HTTP API."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..core.backends import cpu_cores
from ..errors import CannotListen, InvalidOption, MissingExtra
from ..extras import require
from .params import Command, current_backend, current_device
from .report import FAILED, exit_on_errors

EVERY_INTERFACE = ("0.0.0.0", "::", "")


def with_listen_address(allowed: tuple[str, ...], host: str) -> tuple[str, ...]:
    """The Host names to answer: ``allowed`` plus the one address ``--host`` binds, if it is one
    (whoever binds 192.168.1.20 means to be reached there; 0.0.0.0 names no host)."""
    from ..service.settings import host_name

    name = host_name(host)
    if "*" in allowed or host in EVERY_INTERFACE or name in allowed:
        return allowed
    return (*allowed, name)


def check_listen(host: str, port: int) -> None:
    """Bind every address ``host`` names on ``port`` once, and let go: a busy port fails here, as
    one line, before anything starts. (uvicorn binds only after the app has started loading the
    model, whose "ready" came after uvicorn's error: issue 28.)"""
    import errno
    import socket

    where = f"{host or '*'}:{port}"
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotListen(
            f"cannot listen on {where}: {host!r} is not an address or a name we can resolve ({exc.strerror})"
        ) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            # As uvicorn binds: a port left in TIME_WAIT by a stopped server is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # each address family on its own, as asyncio binds them
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                why = {
                    errno.EADDRINUSE: f"port {port} is already in use (another server?): choose another --port",
                    errno.EACCES: f"not allowed to use port {port} (ports below 1024 need root): choose another --port",
                    errno.EADDRNOTAVAIL: f"{host} is not an address of this machine: choose another --host",
                }.get(exc.errno or 0, exc.strerror or str(exc))
                raise CannotListen(f"cannot listen on {where}: {why}") from None


@click.command(cls=Command)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=5003, show_default=True, help="TCP port.")
@click.option(
    "--workers", type=int, default=None, help="Inference threads (default: MATTEKIT_WORKERS, else the CPU count, at most 4)."
)
@click.option(
    "--queue-size",
    type=int,
    default=None,
    help="Requests waiting for a worker before 503 Busy (default: MATTEKIT_QUEUE_SIZE, else 16).",
)
@click.option(
    "--max-concurrency", type=int, default=None, help="Open connections before uvicorn itself answers 503 (default: no limit)."
)
@click.option(
    "--processes",
    type=int,
    default=1,
    show_default=True,
    help="Server processes sharing the port, each with its own engine and --workers threads (uvicorn's "
    "--workers); video jobs and /metrics are shared through MATTEKIT_JOB_DIR and "
    "PROMETHEUS_MULTIPROC_DIR (made here when unset).",
)
def serve(host: str, port: int, workers: int | None, queue_size: int | None, max_concurrency: int | None, processes: int) -> None:
    """Serve the web page and HTTP API (the same app as `uvicorn app:app`). Limits: MATTEKIT_* variables."""
    with exit_on_errors(codes={MissingExtra: FAILED}):  # flags fine, the machine lacks mattekit[server]
        require("server", "mattekit serve")
    from ..service import Settings, create_app
    from ..service.factory import configure_logging

    with exit_on_errors():
        settings = Settings.from_env(workers=workers, queue_size=queue_size)
        settings = dataclasses.replace(settings, allowed_hosts=with_listen_address(settings.allowed_hosts, host))
        if max_concurrency is not None and max_concurrency < 1:
            raise InvalidOption("--max-concurrency must be at least 1")
        if processes < 1:
            raise InvalidOption("--processes must be at least 1")
    with exit_on_errors(FAILED):
        check_listen(host, port)
        if settings.jobs.ray_address:  # one line now, not a traceback from the app's start-up
            from ..cluster import check_reachable

            check_reachable(settings.jobs.ray_address)
    import uvicorn

    configure_logging(settings.log_format, force=True)
    if host in EVERY_INTERFACE and not settings.api_keys:
        click.echo(
            "mattekit: warning: listening on every interface without MATTEKIT_API_KEYS: anyone who can reach "
            "this port can use the server",
            err=True,
        )
    device, backend = current_device(), current_backend()
    each = f"{processes} processes × " if processes > 1 else ""
    click.echo(
        f"mattekit: serving on http://{host}:{port}/ ({each}{settings.workers} workers, queue {settings.queue_size}); "
        "Ctrl-C stops",
        err=True,
    )
    # Our access log (request ids, JSON when asked) replaces uvicorn's; the grace period bounds
    # how long a SIGTERM waits for in-flight requests.
    common: dict[str, Any] = dict(
        host=host,
        port=port,
        limit_concurrency=max_concurrency,
        timeout_graceful_shutdown=int(math.ceil(settings.grace_period)),
        access_log=False,
    )
    if processes == 1:
        matter = None
        if device is not None or backend is not None:
            from ..core.engine import Engine
            from ..matter import Matter

            matter = Matter(engine=Engine(device=device, backend=backend))
        uvicorn.run(create_app(settings, matter=matter), **common)
        return
    with _shared_environment(settings, processes, device, backend):
        # Each process builds its own app (and engine) from the environment set above.
        uvicorn.run("mattekit.service.factory:create_app", factory=True, workers=processes, **common)


@contextlib.contextmanager
def _shared_environment(settings: Any, processes: int, device: str | None, backend: str | None = None) -> Iterator[None]:
    """The environment every server process reads (the only channel to processes uvicorn
    starts): the settings given as flags, the device and backend, an even share of the cores, and the
    folders jobs and metrics are shared through (made, and removed, here)."""
    import shutil
    import tempfile

    os.environ["MATTEKIT_WORKERS"] = str(settings.workers)
    os.environ["MATTEKIT_ALLOWED_HOSTS"] = ",".join(settings.allowed_hosts)
    os.environ["MATTEKIT_QUEUE_SIZE"] = str(settings.queue_size)
    if device is not None:
        os.environ["MATTEKIT_DEVICE"] = device
    if backend is not None:
        os.environ["MATTEKIT_BACKEND"] = backend
    if not os.environ.get("MATTEKIT_THREADS"):  # N processes × all cores each would oversubscribe
        os.environ["MATTEKIT_THREADS"] = str(max(1, cpu_cores() // processes))
    made = []
    for name, prefix in (("PROMETHEUS_MULTIPROC_DIR", "mattekit-metrics-"), ("MATTEKIT_JOB_DIR", "mattekit-jobs-")):
        if not os.environ.get(name):
            os.environ[name] = tempfile.mkdtemp(prefix=prefix)
            made.append(os.environ[name])
    # Values left by an earlier run would be added to this one's.
    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()
    try:
        yield
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
