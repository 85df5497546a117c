"""``mattekit remove``: images → cutouts, one file or thousands."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from ..errors import InvalidOption, MattekitError
from .params import Argument, Command, current_backend, current_device, still_flags
from .report import FAILED, ProgressBar, console, exit_on_errors

if TYPE_CHECKING:  # pragma: no cover
    from ..options import Options
    from ..plan import PlannedFile


@click.command(cls=Command)
@click.argument(
    "inputs", nargs=-1, required=True, cls=Argument, help="Image files, folders (recursive), globs, or '-' for stdin."
)
@click.option(
    "-o",
    "--output",
    default=None,
    help="Output file, or folder for several inputs; '-' for stdout. Default: NAME-cutout.EXT beside each input.",
)
@still_flags()
@click.option("--threads", default=0, show_default=True, help="Inference threads (0 = all cores).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone and go on.")
def remove(
    inputs: Sequence[str], output: str | None, stills: dict[str, Any], threads: int, overwrite: bool, skip_existing: bool
) -> None:
    """Remove the background from images.

    Exit status: 0 all done, 1 some inputs failed (each one is reported; a photo where no
    subject was found is a failure, with what to do), 2 bad usage.
    """
    from ..options import Options
    from ..plan import output_format, plan_files

    with exit_on_errors():
        # -o out.jpg asks for a JPEG when --format does not say (issue 28: it held PNG bytes).
        fmt = output_format(output, stills["format"])
        transparent_jpeg = fmt == "jpg" and stills["format"] is None and stills["bg"] is None and not stills["mask"]
        options = Options.from_fields({**stills, "format": None if transparent_jpeg else fmt}, allow_paths=True)
        if threads < 0:
            raise InvalidOption("--threads must be 0 (all cores) or more")
        if overwrite and skip_existing:
            raise InvalidOption("--overwrite and --skip-existing exclude each other")
        jobs = plan_files(list(inputs), output, options.format)  # first: several inputs need a folder, not a name
        if transparent_jpeg:
            raise InvalidOption(
                f"{output} names a JPEG, which has no transparency: name it .png or .webp, or give a background (e.g. --bg white)"
            )
        if any(j.source == "-" for j in jobs) and sys.stdin.isatty():
            raise InvalidOption("'-' reads an image from stdin: pipe one in, as in `mattekit remove - < photo.jpg`")
        if any(j.target == "-" for j in jobs) and sys.stdout.isatty():
            raise InvalidOption("the result would go to the terminal: redirect it (`> out.png`) or use -o FILE")
    failed = run_jobs(
        jobs,
        options,
        threads=threads,
        overwrite=overwrite,
        skip_existing=skip_existing,
        device=current_device(),
        backend=current_backend(),
    )
    raise SystemExit(FAILED if failed else 0)


def run_jobs(
    jobs: list[PlannedFile],
    options: Options,
    *,
    threads: int,
    overwrite: bool,
    skip_existing: bool,
    device: str | None = None,
    backend: str | None = None,
) -> int:
    """Process every job, reporting (not raising) per-file failures. Returns the failure count.

    Progress goes to stderr: a live bar on a terminal, one ``[i/N]`` line per file otherwise
    (logs, CI), so a long batch always shows where it is.
    """
    from rich.markup import escape

    from ..core.engine import Engine, set_engine
    from ..files import write_atomic
    from ..pipeline import process_files

    out = console()
    todo: list[PlannedFile] = []
    failed = skipped = 0
    for job in jobs:
        if job.target != "-" and Path(job.target).exists() and not overwrite:
            if skip_existing:
                skipped += 1
                continue
            out.print(f"[red]✗[/] {escape(job.display)}: {escape(job.target)} exists (use --overwrite or --skip-existing)")
            failed += 1
            continue
        todo.append(job)
    if skipped:
        out.print(f"skipping {skipped} input(s) whose output exists")
    if not todo:
        if len(jobs) > 1:
            out.print(f"0 done, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
        return failed
    set_engine(Engine(threads=threads or None, device=device, backend=backend))
    for job in todo:
        if job.source == "-":
            job.source = sys.stdin.buffer.read()
    many = len(todo) > 1
    live = many and out.is_terminal
    done = ok = 0
    with ProgressBar(out, "removing backgrounds", total=len(todo), elapsed=False, enabled=live) as bar:
        for item, outcome in process_files(todo, options):
            job = cast("PlannedFile", item)  # process_files hands back the jobs it was given
            done += 1
            bar.advance()
            where = f"[{done}/{len(todo)}] " if many else ""
            name = escape(job.display)
            if isinstance(outcome, MattekitError):
                out.print(f"{where}[red]✗[/] {name}: {escape(str(outcome))}")
                failed += 1
                continue
            notice = getattr(outcome, "notice", None)
            if notice:
                out.print(f"{where}[yellow]![/] {name}: {escape(notice)}")
            if job.target == "-":
                try:
                    sys.stdout.buffer.write(outcome)
                    sys.stdout.buffer.flush()
                except BrokenPipeError:
                    raise  # the reader left: main() ends quietly
                except OSError as exc:  # a full disk behind a redirect, a closed terminal
                    out.print(f"{where}[red]✗[/] {name}: cannot write to stdout: {exc.strerror or exc}")
                    failed += 1
                    continue
                ok += 1
                continue
            try:
                write_atomic(Path(job.target), outcome)
            except OSError as exc:
                out.print(f"{where}[red]✗[/] {name}: cannot write {escape(job.target)}: {exc.strerror or exc}")
                failed += 1
                continue
            ok += 1
            if not live:
                out.print(f"{where}[green]✓[/] {name} → {escape(job.target)}")
    if len(jobs) > 1:
        out.print(f"{ok} done, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return failed
