"""How the commands talk to the user on stderr: errors with an exit status, and progress.

rich is imported only when something is drawn, so ``--version`` and ``--help`` never pay for it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..errors import MattekitError

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

USAGE = 2  # bad flags or arguments: nothing was done
FAILED = 1  # the command ran and something failed


def error(message: str) -> None:
    """``mattekit: error: MESSAGE`` on stderr."""
    click.echo(f"mattekit: error: {message}", err=True)


def fail(message: str, code: int = USAGE) -> NoReturn:
    """:func:`error`, then exit with ``code``."""
    error(message)
    raise SystemExit(code)


@contextlib.contextmanager
def exit_on_errors(code: int = USAGE, *, codes: Mapping[type, int] | None = None) -> Iterator[None]:
    """Turn a :class:`MattekitError` raised inside into :func:`fail` with ``code``.

    ``codes`` gives other statuses for particular error types (the first match wins), e.g.
    ``{MissingExtra: FAILED}``: the flags were fine, the machine lacks something.
    """
    try:
        yield
    except MattekitError as exc:
        status = next((c for kind, c in (codes or {}).items() if isinstance(exc, kind)), code)
        fail(str(exc), status)


def console() -> Console:
    """A rich console on stderr; each message one plain line (no wrapping, no auto-highlight)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False)


class ProgressBar:
    """A progress bar on stderr, drawn only where it can be (a terminal; ``enabled``).

    Off a terminal a command prints its own ``[i/N]`` lines instead (logs, CI); this object then
    only counts (and never imports rich.progress), so ``completed`` and ``rate`` work either way.
    ``columns`` are extra rich ``TextColumn`` templates over ``fields`` (``"{task.fields[fps]:.1f} fps"``).
    """

    def __init__(
        self,
        out: Console,
        description: str,
        *,
        total: int | None = None,
        columns: Sequence[str] = (),
        fields: Mapping[str, Any] | None = None,
        elapsed: bool = True,
        transient: bool = False,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self._completed = 0.0
        self._started = time.perf_counter()
        self._bar: Any = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        parts: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        parts += [TextColumn(c) for c in columns]
        parts += [TimeElapsedColumn()] if elapsed else []
        parts.append(TimeRemainingColumn())
        self._bar = RichProgress(*parts, console=out, transient=transient)
        self._task = self._bar.add_task(description, total=total, **dict(fields or {}))

    def __enter__(self) -> ProgressBar:
        self._started = time.perf_counter()
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, **changes: Any) -> None:
        """``completed``, ``total``, ``description`` or any of the ``fields``."""
        if changes.get("completed") is not None:
            self._completed = float(changes["completed"])
        if self._bar is not None:
            self._bar.update(self._task, **changes)

    def advance(self, steps: int = 1) -> None:
        self._completed += steps
        if self._bar is not None:
            self._bar.advance(self._task, steps)

    @property
    def completed(self) -> float:
        return self._completed

    @property
    def rate(self) -> float:
        """Steps per second since the bar started."""
        seconds = time.perf_counter() - self._started
        return self._completed / seconds if seconds > 0 else 0.0
