"""Ray, at the edge: joining a cluster (or starting an embedded one) and sizing work to its CPUs.

Shared by ``mattekit batch`` (a folder of files) and chunked video (one long clip): both put one
engine per CPU slot, and both need the same clear messages when Ray is missing or unreachable.
Ray is an optional extra (``mattekit[cluster]``); it is imported only inside these functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .core.backends import cpu_cores
from .errors import ClusterUnavailable, InvalidOption, MissingExtra
from .options import BackgroundImage, Options

log = logging.getLogger("mattekit.cluster")

# Ray Data's read tasks need a CPU slot beside the actor pool, or the pipeline deadlocks with
# every CPU held by an actor (KNOWN_GROUND.md). Reads are I/O, so they ask for a sliver of a CPU
# and each actor asks for a little less than the cores its engine uses.
READ_CPUS = 0.05
ACTOR_CPU_SHARE = 0.9


@dataclass(frozen=True)
class Pool:
    size: int  # actors
    threads: int  # ONNX Runtime threads per actor (= the CPUs it stands for)
    actor_cpus: float  # what each actor asks Ray for (a little under ``threads``)


def size_pool(node_cpus: Sequence[float], workers: int | None = None, threads: int | None = None) -> Pool:
    """How many actors fit the cluster so that each node keeps a slot for Ray Data's reads.

    ``workers`` (actors) and ``threads`` (per actor) are what the user asked for; by default one
    single-threaded actor per CPU, which gives the most images per second on CPU inference
    (no intra-op synchronisation; see bench/batch.py).
    """
    cpus = [float(c) for c in node_cpus if c >= 1]
    if not cpus:
        raise InvalidOption("the Ray cluster has no node with a whole CPU to run on")
    total = sum(cpus)
    if threads is None or threads <= 0:
        threads = max(1, int(total // workers)) if workers else 1
    threads = max(1, min(threads, int(max(cpus))))
    actor_cpus = round(threads * ACTOR_CPU_SHARE, 3)
    fits = sum(min(int(c // threads), int((c - READ_CPUS) // actor_cpus)) for c in cpus)
    if fits < 1:
        raise InvalidOption(f"no node has {threads} CPUs free for a worker")
    if workers is not None and workers > fits:
        log.warning("only %d workers of %d threads fit this cluster; using %d", fits, threads, fits)
    size = min(workers, fits) if workers else fits
    return Pool(size, threads, actor_cpus)


def require_ray(hint: str = "this runs on Ray, an optional extra: pip install 'mattekit[cluster]'", data: bool = False) -> None:
    """:class:`MissingExtra` with ``hint`` when Ray (and, with ``data``, Ray Data) is not installed."""
    try:
        import ray

        if data:
            import ray.data  # noqa: F401
    except ImportError:
        raise MissingExtra(hint) from None


def portable(options: Options) -> Options:
    """Options whose background image travels to other machines as bytes, not a local path."""
    bg = options.background
    if isinstance(bg, BackgroundImage) and isinstance(bg.source, (str, os.PathLike)):
        return options.replace(background=BackgroundImage(Path(bg.source).read_bytes(), bg.fit))
    return options


def connect(address: str | None, *, verbose: bool = False) -> None:
    """Join a cluster at ``address`` (``auto``, ``host:port``, ``ray://host:port``), or start an
    embedded one with this machine's cores."""
    import ray

    # Ray's INFO/WARNING chatter (token-auth notice, executor summaries) would break the progress
    # bar; --verbose brings it back along with the workers' logs.
    level = logging.INFO if verbose else logging.ERROR
    quiet: dict[str, Any] = dict(logging_level=level, log_to_driver=verbose, configure_logging=True)  # mixed types
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(level)
    if address:
        check_reachable(address)
        ray.init(address=address, **quiet)
    else:
        # "local": a new instance even when RAY_ADDRESS or a `ray start` on this machine exists
        # (ray.init() would join those); --address auto is the way to ask for them.
        ray.init(address="local", num_cpus=cpu_cores(), include_dashboard=False, **quiet)


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast with a clear message: Ray itself retries an unreachable GCS for minutes."""
    import socket

    text = address.split("://", 1)[-1]
    if text == "auto" or ":" not in text:
        return  # Ray resolves these itself (RAY_ADDRESS, or the cluster started on this machine)
    host, _, port = text.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise ClusterUnavailable(
            f"cannot reach a Ray cluster at {address} ({getattr(exc, 'strerror', None) or exc}); "
            "start one with `ray start --head`, or check the host, port and firewall"
        ) from None


def node_cpus() -> list[float]:
    """The CPUs of each live node of the cluster this process is connected to."""
    import ray

    nodes = cast("Callable[[], list[dict[str, Any]]]", ray.nodes)  # Ray's nodes() has no annotations
    return [n["Resources"].get("CPU", 0.0) for n in nodes() if n.get("Alive")]
