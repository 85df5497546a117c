"""Many stills in a row: decode, matte, compose and encode each, reporting progress.

Consecutive images overlap: on a CPU with N cores, N workers each take one image through the
whole chain, and the model runs single-threaded inside each (one shared ONNX Runtime session;
``run`` is thread-safe). Pillow's codecs, ONNX Runtime, OpenCV and fpng release the GIL, so one
image's decode, compose and encode fill the time another image's model would leave cores idle —
and no stage waits on a straggling thread of a multi-threaded op (a single all-cores engine with
decode/encode threads beside it measured slower here: its parallel ops stall whenever another
thread holds a core). At most ``2 × N`` images are in flight, so memory stays flat on any batch;
results come out in input order.

Failures are values, not exceptions: one bad file never stops the others. An empty result (no
subject found: :attr:`mattekit.matter.Result.empty`) is a failure too, an
:class:`~mattekit.errors.EmptyResult` saying why and what to do; a result with a notice comes
back as :class:`Encoded` bytes that carry it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .core.backends import cpu_cores
from .core.engine import Engine
from .core.runtime import choose_providers
from .errors import InternalError, MattekitError
from .matter import Matter
from .options import Options

if TYPE_CHECKING:
    from rich.progress import Progress

log = logging.getLogger("mattekit.pipeline")

T = TypeVar("T")


class Encoded(bytes):
    """A result's encoded bytes, with its notice for the user (None when there is nothing to say)."""

    notice: str | None = None


Outcome = bytes | MattekitError


class FileJob(Protocol):
    source: Any  # path or bytes
    display: str


def _guard(display: str, fn: Callable[[], T]) -> T | MattekitError:
    """``fn()``, or the error it raised as a value (a bug costs one file, not the batch)."""
    try:
        return fn()
    except MattekitError as exc:
        return exc
    except MemoryError:
        return MattekitError("out of memory while processing this image")
    except Exception as exc:
        log.info("internal error on %s", display, exc_info=True)  # shown with -v
        return InternalError(
            f"internal error ({type(exc).__name__}: {exc}); the other files go on. "
            "Please report it with this file and the output of `mattekit -v remove ...`"
        )


def process_files(
    jobs: Iterable[FileJob],
    options: Options,
    *,
    matter: Matter | None = None,
    progress: Any = None,
) -> Iterator[tuple[FileJob, Outcome]]:
    """Yield ``(job, encoded bytes)`` or ``(job, error)`` for each job, in order.

    ``progress`` is a rich Console to draw a progress bar on (files, rate, ETA), or None.
    """
    jobs = list(jobs)
    matter = matter or Matter(options)
    workers = _workers(len(jobs), matter.engine)
    if workers > 1:
        matter = Matter(matter.options, matter.engine.single_threaded(), matter.general_engine)
    bar = _progress(progress, len(jobs))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="mattekit-still")
    running: deque[tuple[FileJob, Future[Outcome]]] = deque()
    ahead = iter(jobs)

    def encoded(job: FileJob) -> Encoded:
        result = matter.process(job.source, options).raise_if_empty()
        data = Encoded(result.encode(options.format, options.quality))
        data.notice = result.notice
        return data

    def work(job: FileJob) -> Outcome:
        return _guard(job.display, lambda: encoded(job))

    try:
        task = bar.add_task("removing backgrounds", total=len(jobs)) if bar else None
        while True:
            while len(running) < 2 * workers:
                job = next(ahead, None)
                if job is None:
                    break
                running.append((job, pool.submit(work, job)))
            if not running:
                break
            job, fut = running.popleft()
            outcome = fut.result()
            if bar is not None and task is not None:
                bar.advance(task)
            yield job, outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.stop()


def _workers(jobs: int, engine: Engine) -> int:
    """Images processed side by side: one per core for a CPU batch, else one."""
    if jobs < 2 or engine.device == "cuda" or engine.threads == 1:
        return 1
    if engine.device == "auto" and choose_providers("auto")[0] != "CPUExecutionProvider":
        return 1  # one image at a time keeps a GPU busy; CPU copies of the session would not help
    cores = engine.threads or cpu_cores()
    return max(1, min(jobs, cores))


def _progress(console: Any, total: int) -> Progress | None:
    if console is None or total < 2:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    bar.start()
    return bar
