"""``mattekit serve``: the web page and HTTP API."""

from __future__ import annotations

from typing import Optional

import click

from ..errors import InvalidOption
from .params import Command, current_device
from .report import exit_on_errors

__all__ = ["serve"]


@click.command(cls=Command)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=5003, show_default=True, help="TCP port.")
@click.option("--workers", type=int, default=None,
              help="Inference threads (default: MATTEKIT_WORKERS, else the CPU count, at most 4).")
@click.option("--queue-size", type=int, default=None,
              help="Requests waiting for a worker before 503 Busy (default: MATTEKIT_QUEUE_SIZE, else 16).")
@click.option("--max-concurrency", type=int, default=None,
              help="Open connections before uvicorn itself answers 503 (default: no limit).")
def serve(host: str, port: int, workers: Optional[int], queue_size: Optional[int], max_concurrency: Optional[int]) -> None:
    """Serve the web page and HTTP API (the same app as `uvicorn app:app`). Limits: MATTEKIT_* variables."""
    from ..service import Settings, create_app

    with exit_on_errors():
        settings = Settings.from_env(workers=workers, queue_size=queue_size)
        if max_concurrency is not None and max_concurrency < 1:
            raise InvalidOption("--max-concurrency must be at least 1")
    import uvicorn

    device = current_device()
    matter = None
    if device is not None:
        from ..engine import Engine
        from ..matter import Matter

        matter = Matter(engine=Engine(device=device))
    click.echo(
        f"mattekit: serving on http://{host}:{port}/ ({settings.workers} workers, queue {settings.queue_size}); "
        "Ctrl-C stops", err=True,
    )
    uvicorn.run(create_app(settings, matter=matter), host=host, port=port, limit_concurrency=max_concurrency)
