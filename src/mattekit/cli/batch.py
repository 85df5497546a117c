"""``mattekit batch``: a whole folder or bucket of photos and videos, on Ray."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from ..errors import ClusterUnavailable, InvalidOption, MattekitError, MissingExtra
from ..video.outputs import OUTPUTS
from .params import Argument, Command, current_backend, current_device, still_flags
from .report import FAILED, USAGE, ProgressBar, console, error, exit_on_errors

if TYPE_CHECKING:  # pragma: no cover
    from ..batch import Spec

INTERRUPTED = 130

# Ray Data's actor pool always hands its workers a constructor argument through the object store
# and asks for restarts, and Ray's core then logs this ERROR once per run (ray-project/ray#57733):
# Ray Data keeps that argument alive for the whole run, so it is noise. The pattern is this line only.
RAY_NOISE = re.compile(rb"core_worker\.cc:\d+: Actor with class name: .* max_restarts > 0")


@contextlib.contextmanager
def without_ray_noise() -> Iterator[None]:
    """Drop :data:`RAY_NOISE` from what this process writes to file descriptor 2.

    Ray's C++ core writes its errors to fd 2 itself, and its only level knob prints a line of its
    own, so fd 2 goes through a filter thread; Python's ``sys.stderr`` (our messages, the progress
    bar, which must still see the terminal) writes to the real stderr directly meanwhile. The
    filter thread is left running to the end of the process (a Ray process started meanwhile may
    still hold the pipe), so nothing written late is lost.
    """
    sys.stderr.flush()
    real = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    python_stderr = sys.stderr
    sys.stderr = io.TextIOWrapper(
        io.FileIO(real, "w", closefd=False), encoding=python_stderr.encoding, errors=python_stderr.errors, line_buffering=True
    )

    drained = threading.Event()

    def forward() -> None:
        with open(read, "rb", buffering=0) as pipe:
            for line in pipe:
                if line == _DRAINED:
                    drained.set()
                elif not RAY_NOISE.search(line):
                    os.write(real, line)

    threading.Thread(target=forward, name="mattekit-stderr", daemon=True).start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.write(2, _DRAINED)  # what came before it is forwarded when the thread reaches it
        drained.wait(timeout=2.0)
        sys.stderr = python_stderr
        os.dup2(real, 2)


_DRAINED = b"\0mattekit: stderr drained\n"


@click.command(cls=Command)
@click.argument(
    "src", cls=Argument, help="Folder of photos and videos: a path, or a URI pyarrow/fsspec opens (s3://bucket/in, gs://…)."
)
@click.argument("dst", cls=Argument, help="Output folder (path or URI); relative paths are kept. Holds _mattekit_manifest.jsonl.")
@still_flags(help={"format": "Photos as png | webp | jpg (jpg needs --bg). Default: png."})
@click.option(
    "--video-output",
    default=None,
    help=f"Videos as {' | '.join(n for n, spec in OUTPUTS.items() if spec.batch)} "
    "(default: webm; composite MP4 with --bg; matte MP4 with --mask).",
)
@click.option("--start", default=0.0, show_default=True, help="Videos: start at this many seconds.")
@click.option("--end", type=float, default=None, help="Videos: stop at this many seconds.")
@click.option("--max-frames", type=int, default=None, help="Videos: process at most this many frames.")
@click.option(
    "--max-duration", type=float, default=None, help="Videos: refuse (record as failed) clips longer than this many seconds."
)
@click.option("--no-audio", is_flag=True, help="Videos: drop the source's audio.")
@click.option(
    "--chunk-seconds",
    type=float,
    default=None,
    help="Videos longer than twice this are cut into chunks of this many seconds, matted across the "
    "cluster and joined (as mattekit video --chunk-seconds).",
)
@click.option(
    "--address",
    default=None,
    help="Join a Ray cluster: auto | host:port | ray://host:port. Default: an embedded Ray on this machine's cores.",
)
@click.option(
    "--workers", "-w", type=int, default=None, help="Engines (Ray actors) to run; default: as many as the cluster's CPUs hold."
)
@click.option("--threads", default=0, show_default=True, help="Inference threads (= CPUs) per worker; 0 = CPUs / workers, or 1.")
@click.option("--overwrite", is_flag=True, help="Redo files whose output exists (default: skip them, so a rerun resumes).")
def batch(
    src: str,
    dst: str,
    stills: dict[str, Any],
    video_output: str | None,
    start: float,
    end: float | None,
    max_frames: int | None,
    max_duration: float | None,
    no_audio: bool,
    chunk_seconds: float | None,
    address: str | None,
    workers: int | None,
    threads: int,
    overwrite: bool,
) -> None:
    """Remove backgrounds from a whole folder or bucket of photos and videos, on Ray.

    Exit status: 0 the batch ran (files that failed are listed in DST/_mattekit_manifest.jsonl),
    1 the batch could not run (Ray not installed, cluster unreachable), 2 bad usage.
    """
    from .. import batch as batching
    from ..options import Options

    with exit_on_errors(codes={MissingExtra: FAILED}):
        batching.require_ray()
        options = Options.from_fields(stills, allow_paths=True)
        if threads < 0 or (workers is not None and workers < 1):
            raise InvalidOption("--workers must be 1 or more and --threads 0 or more")
        if chunk_seconds is not None and not chunk_seconds > 0:
            raise InvalidOption("--chunk-seconds must be a positive number of seconds")
        video = batching.VideoSettings(
            output=video_output,
            start=start,
            end=end,
            max_frames=max_frames,
            max_duration=max_duration,
            audio=not no_audio,
            chunk_seconds=chunk_seconds,
        )
        video.suffix(options)
        video.video_options(options)
        spec = batching.Spec(
            batching.resolve(src), batching.resolve(dst), options, video, device=current_device(), backend=current_backend()
        )
    raise SystemExit(run_batch(spec, address=address, workers=workers, threads=threads or None, overwrite=overwrite))


def run_batch(spec: Spec, *, address: str | None, workers: int | None, threads: int | None, overwrite: bool) -> int:
    """Run a batch with a progress bar (files done, files/s). Exit status."""
    from .. import batch as batching

    out = console()
    failed = 0
    bar = ProgressBar(out, "starting Ray", columns=["{task.fields[rate]}"], fields={"rate": ""})

    def planned(plan: Any) -> None:
        if plan.done:
            out.print(f"{len(plan.done)} already done (outputs exist), skipped")
        bar.update(total=len(plan.todo) + len(plan.clashes), description="removing backgrounds")

    def finished(rec: Any) -> None:
        nonlocal failed
        if rec.status != "ok":
            failed += 1
            out.print(f"[red]✗[/] {rec.input}: {rec.error}")
        bar.advance()
        bar.update(rate=f"{bar.rate:.2f} files/s" + (f", {failed} failed" if failed else ""))

    verbose = logging.getLogger().getEffectiveLevel() <= logging.INFO
    try:
        with without_ray_noise() if not verbose else contextlib.nullcontext(), bar:
            summary = batching.run(
                spec,
                address=address,
                workers=workers,
                threads=threads,
                overwrite=overwrite,
                on_plan=planned,
                on_record=finished,
                verbose=verbose,
            )
    except KeyboardInterrupt:
        out.print("[yellow]interrupted[/]: finished files are kept; run the same command again to resume")
        return INTERRUPTED
    except ClusterUnavailable as exc:
        error(str(exc))
        return FAILED
    except MattekitError as exc:
        error(str(exc))
        return USAGE
    except Exception as exc:  # Ray's own errors (cluster unreachable, lost nodes): a message, not a trace
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error(f"the batch could not run: {type(exc).__name__}: {first}")
        return FAILED
    pool = f" on {summary.pool.size} workers x {summary.pool.threads} threads" if summary.pool else ""
    manifest = spec.dst.display(spec.dst.join(batching.MANIFEST))
    out.print(
        f"[green]✓[/] {summary.done} done, {summary.failed} failed, {summary.skipped} skipped "
        f"in {summary.seconds:.1f} s ({summary.rate:.2f} files/s){pool}; manifest: {manifest}"
    )
    return 0
