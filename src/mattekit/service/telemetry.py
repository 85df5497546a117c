"""Prometheus metrics for one app instance (its own registry, so several apps in one process,
as in tests, never collide). Other routers (e.g. jobs) add theirs to ``Service.telemetry.registry``.
Named telemetry, apart from the package's quality measures of mattes: this is the server's own.

Several server processes (``mattekit serve --processes N``, ``uvicorn --workers N``): set
``PROMETHEUS_MULTIPROC_DIR`` to an empty folder every process can write (``mattekit serve``
makes one). Each process then writes its values there, and ``/metrics``, whichever process
answers it, adds them up: counters and histograms summed, the gauges as their
``multiprocess_mode`` says (queue depth and busy workers summed over live processes, model
ready the minimum).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

if TYPE_CHECKING:  # pragma: no cover
    from .executor import WorkPool

# The *_created series double the output and no dashboard here reads them.
cast(Callable[[], None], disable_created_metrics)()  # untyped in prometheus_client

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


class Telemetry:
    """The service's Prometheus metrics (``/metrics``): requests, latency, queue, model, deadlines."""

    def __init__(self, pool: WorkPool) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mattekit_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "mattekit_http_request_duration_seconds",
            "Time from request to response",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "mattekit_inference_seconds",
            "Model time per image (the matte stage)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "mattekit_stage_seconds",
            "Time per processing stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected = Counter("mattekit_rejected_busy", "Requests refused with 503 (queue full)", registry=r)
        self.timeouts = Counter(
            "mattekit_deadline_exceeded",
            "Work stopped at its deadline (504 for stills, failed for jobs)",
            ["kind"],
            registry=r,
        )
        self.errors = Counter("mattekit_errors", "Requests that ended in one of our errors", ["code"], registry=r)
        self.pool = pool
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # A gauge computed at scrape time exists only in the process that is scraped; with
        # several processes each one writes its value (refresh) for the others to add up.
        self.queue = Gauge("mattekit_queue_depth", "Requests waiting for a worker", registry=r, multiprocess_mode="livesum")
        self.running = Gauge("mattekit_workers_busy", "Workers running a request now", registry=r, multiprocess_mode="livesum")
        if not self.multiprocess:
            self.queue.set_function(lambda: pool.waiting)
            self.running.set_function(lambda: pool.running)
        Gauge("mattekit_workers", "Workers in the pool", registry=r, multiprocess_mode="livesum").set(pool.workers)
        Gauge(
            "mattekit_queue_capacity", "Requests accepted (running + waiting) before 503", registry=r, multiprocess_mode="livesum"
        ).set(pool.capacity)
        self.ready = Gauge(
            "mattekit_model_ready",
            "1 once the model is loaded (every process, when several)",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.ready.set(0)
        self.started = time.time()

    def refresh(self) -> None:
        """Write this process's queue gauges (several processes: at each request's start and end)."""
        if self.multiprocess:
            self.queue.set(self.pool.waiting)
            self.running.set(self.pool.running)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        self.refresh()

    def observe_timings(self, timings: dict[str, float]) -> None:
        for stage, seconds in timings.items():
            self.stage.labels(stage).observe(seconds)
        if "matte" in timings:
            self.inference.observe(timings["matte"])

    def close(self) -> None:
        """This process is stopping: its live gauges leave the sums (counters stay, as they should)."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            cast(Callable[[int], None], multiprocess.mark_process_dead)(os.getpid())

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        self.refresh()
        combined = CollectorRegistry()
        cast(Callable[[CollectorRegistry], object], multiprocess.MultiProcessCollector)(combined)
        return generate_latest(combined)
