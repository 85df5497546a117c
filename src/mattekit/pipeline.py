"""Many stills in a row: decode, matte, compose and encode each, reporting progress.

Failures are values, not exceptions: one bad file never stops the others.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator, Optional, Protocol, Union

from .errors import InternalError, MattekitError
from .matter import Matter
from .options import Options

log = logging.getLogger("mattekit.pipeline")


class FileJob(Protocol):
    source: Any  # path or bytes
    display: str


def process_files(
    jobs: Iterable[FileJob],
    options: Options,
    *,
    matter: Optional[Matter] = None,
    progress: Any = None,
) -> Iterator[tuple[FileJob, Union[bytes, MattekitError]]]:
    """Yield ``(job, encoded bytes)`` or ``(job, error)`` for each job, in order.

    ``progress`` is a rich Console to draw a progress bar on (files, rate, ETA), or None.
    """
    jobs = list(jobs)
    matter = matter or Matter(options)
    bar = _progress(progress, len(jobs))
    try:
        task = bar.add_task("removing backgrounds", total=len(jobs)) if bar else None
        for job in jobs:
            try:
                outcome: Union[bytes, MattekitError] = matter.remove_bytes(job.source, options)
            except MattekitError as exc:
                outcome = exc
            except MemoryError:
                outcome = MattekitError("out of memory while processing this image")
            except Exception as exc:  # a bug must cost one file, not the batch
                log.info("internal error on %s", job.display, exc_info=True)  # shown with -v
                outcome = InternalError(
                    f"internal error ({type(exc).__name__}: {exc}); the other files go on. "
                    "Please report it with this file and the output of `mattekit -v remove ...`"
                )
            if bar is not None:
                bar.advance(task)
            yield job, outcome
    finally:
        if bar is not None:
            bar.stop()


def _progress(console: Any, total: int):
    if console is None or total < 2:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console,
    )
    bar.start()
    return bar
