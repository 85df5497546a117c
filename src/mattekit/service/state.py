"""One running service, typed: everything the routes share, in one object.

:func:`~mattekit.service.create_app` builds a :class:`Service` and keeps it as the app's one
piece of state; its lifespan yields it as Starlette's lifespan state too (``{"service": ...}``).
Routes reach it through :func:`service_of`, never through loose attributes of ``app.state``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from ..errors import MattekitError
from ..matter import Matter
from .executor import WorkPool
from .jobs.store import JobStore
from .settings import Settings
from .telemetry import Telemetry

log = logging.getLogger("mattekit.service")


@dataclass(eq=False)
class Service:
    """The shared state of one app: its settings, engine, pools, telemetry and job store, and
    where it stands (model loaded or failed, draining)."""

    settings: Settings
    matter: Matter
    pool: WorkPool  # stills (ours and remove.bg's)
    telemetry: Telemetry
    jobs: JobStore  # video jobs, with their own pool
    ready: bool = False  # the model is loaded and has run once
    load_error: MattekitError | None = None  # why it could not load
    general_installed: bool | None = None  # the general model's file, as found at start-up (None: not looked yet)
    draining: bool = False  # SIGTERM seen: /readyz 503, no new video jobs
    on_drain: list[Callable[[], object]] = field(default_factory=list)  # run once at SIGTERM

    @classmethod
    def build(cls, settings: Settings, matter: Matter | None = None) -> Service:
        pool = WorkPool(settings.workers, settings.queue_size, name="stills")
        telemetry = Telemetry(pool)
        timeouts = telemetry.timeouts.labels("job")
        jobs: JobStore
        if settings.jobs.ray_address:  # the jobs live in the cluster (any replica answers for any)
            from .jobs.ray_store import RayJobStore

            jobs = RayJobStore(settings.jobs, on_timeout=timeouts.inc)
        else:
            jobs = JobStore(settings.jobs, on_timeout=timeouts.inc)
        service = cls(settings, matter or Matter(), pool, telemetry, jobs)
        service.on_drain.append(jobs.fail_queued)
        return service

    def start_draining(self) -> None:
        """Refuse new work and report not ready; run each ``on_drain`` hook once (queued jobs fail)."""
        if self.draining:
            return
        self.draining = True
        log.info("shutting down: /readyz now 503, no new video jobs; finishing what is in flight")
        for hook in list(self.on_drain):
            try:
                hook()
            except Exception:  # one hook's failure must not keep the others from running
                log.exception("a shutdown hook failed")


class LifespanState(TypedDict):
    """What the app's lifespan yields (Starlette copies it into each request's ``state``)."""

    service: Service


def service_of(where: HTTPConnection | Starlette) -> Service:
    """The :class:`Service` of a request (or of an app: ``service_of(app)``)."""
    app = where.app if isinstance(where, HTTPConnection) else where
    service = app.state.service
    if not isinstance(service, Service):  # pragma: no cover - only an app built elsewhere
        raise TypeError("this app was not made by mattekit.service.create_app")
    return service
