"""``mattekit video``: one clip → transparent video, PNG frames, matte or composite."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import InvalidOption, MattekitError
from ..formats import CLIP_SUFFIXES
from ..video.outputs import OUTPUTS
from .params import Argument, Command, current_backend, current_device, still_flags
from .report import FAILED, ProgressBar, console, error, exit_on_errors

if TYPE_CHECKING:  # pragma: no cover
    from ..options import Options
    from ..video import VideoOptions

INTERRUPTED = 130  # the shell's status for Ctrl-C


@click.command(cls=Command)
@click.argument("source", cls=Argument, help="A video file: MP4, MOV, WebM, MKV, AVI, animated GIF/WebP, ...")
@click.option(
    "-o",
    "--output",
    default=None,
    help="Output: .webm/.mov (transparent), .zip or a folder (PNG frames), .mp4 (with --bg, or --mask). "
    "Default: NAME-cutout.webm beside the clip (.mp4 with --bg or --mask; or --output-type's).",
)
@click.option("--output-type", "-t", default=None, help=f"{' | '.join(OUTPUTS)} (default: from OUT's extension).")
@still_flags(
    "bg",
    "bg_fit",
    "mask",
    "preset",
    "ratio",
    "decontaminate",
    "subject",
    help={
        "bg": "Background: a colour, blur[:RADIUS], an image file or a video file (looped/cut to length).",
        "mask": "Write the alpha matte as a greyscale video.",
        "ratio": "RVM downsample ratio: auto or (0, 1].",
        "subject": "auto | person, the same for a clip: video is matted for people only (RVM; general is refused). "
        "A clip with no person in any frame is still written, with a warning and exit status 1.",
    },
)
@click.option("--start", default=0.0, show_default=True, help="Start at this many seconds.")
@click.option("--end", type=float, default=None, help="Stop at this many seconds.")
@click.option("--max-frames", type=int, default=None, help="Process at most this many frames.")
@click.option("--no-audio", is_flag=True, help="Drop the source's audio.")
@click.option("--threads", default=0, show_default=True, help="Inference threads (0 = all cores).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option(
    "--chunks",
    type=int,
    default=None,
    help="Cut the clip into N chunks matted in parallel on Ray and joined into one file (no re-encode).",
)
@click.option("--chunk-seconds", type=float, default=None, help="Like --chunks, with chunks of this many seconds.")
@click.option(
    "--warmup",
    type=int,
    default=None,
    help="Chunks: frames before each chunk that warm RVM's state (default 20: seams invisible on the dev clip).",
)
@click.option(
    "--address",
    default=None,
    help="Chunks: join a Ray cluster (auto | host:port). Default: an embedded Ray on this machine's cores.",
)
@click.option("--workers", "-w", type=int, default=None, help="Chunks: tasks at a time (default: one per CPU).")
def video(
    source: str,
    output: str | None,
    output_type: str | None,
    stills: dict[str, Any],
    start: float,
    end: float | None,
    max_frames: int | None,
    no_audio: bool,
    threads: int,
    overwrite: bool,
    chunks: int | None,
    chunk_seconds: float | None,
    warmup: int | None,
    address: str | None,
    workers: int | None,
) -> None:
    """Remove the background from a video (transparent WebM/MOV, PNG frames, matte or composite)."""
    from ..options import Options
    from ..video import VideoOptions, resolve_output
    from ..video.outputs import check_not_an_input, default_output

    bg_video = None
    if stills["bg"] and Path(stills["bg"]).suffix.lower() in CLIP_SUFFIXES:
        bg_video, stills["bg"] = stills["bg"], None
    with exit_on_errors():
        options = Options.from_fields(stills, allow_paths=True)
        vopts = VideoOptions(
            output=output_type, start=start, end=end, max_frames=max_frames, audio=not no_audio, background_video=bg_video
        )
        if output == "-":  # a container is written with seeks, and PNG frames are many files
            raise InvalidOption(
                "a video cannot go to stdout ('-o -'): give a file (-o out.webm) or a folder, "
                "or leave -o out for NAME-cutout.webm beside the clip"
            )
        if output is None:
            output = default_target(source, output_type or default_output(options, bg_video is not None))
        resolve_output(output, options, vopts)
        check_not_an_input(source, output, bg_video)  # before "exists": --overwrite does not make it right
        if threads < 0:
            raise InvalidOption("--threads must be 0 (all cores) or more")
        if Path(output).exists() and not overwrite and not (Path(output).is_dir() and not any(Path(output).iterdir())):
            raise InvalidOption(f"{output} exists (use --overwrite)")
        chunked = chunks is not None or chunk_seconds is not None
        if chunks is not None and chunk_seconds is not None:
            raise InvalidOption("give --chunks or --chunk-seconds, not both")
        if not chunked and (warmup is not None or address is not None or workers is not None):
            raise InvalidOption("--warmup, --address and --workers are for chunked runs: add --chunks N or --chunk-seconds S")
        if (
            (chunks is not None and chunks < 1)
            or (chunk_seconds is not None and not chunk_seconds > 0)
            or (warmup is not None and warmup < 0)
            or (workers is not None and workers < 1)
        ):
            raise InvalidOption("--chunks and --workers must be 1 or more, --chunk-seconds positive, --warmup 0 or more")
    if chunked:
        raise SystemExit(
            run_chunked(
                source,
                output,
                options,
                vopts,
                chunks=chunks,
                chunk_seconds=chunk_seconds,
                warmup=warmup,
                address=address,
                workers=workers,
                threads=threads or None,
            )
        )
    raise SystemExit(
        run_video(source, output, options, vopts, threads=threads, device=current_device(), backend=current_backend())
    )


def default_target(source: str, kind: str) -> str:
    """``talk-cutout.webm`` beside ``talk.mp4``: where a clip's result goes without ``-o``, named as
    ``remove`` names stills, with the extension of the output type ``kind`` (a folder has none)."""
    from ..plan import CUTOUT_SUFFIX
    from ..video.outputs import output_spec

    path = Path(source)
    return str(path.with_name(f"{path.stem}{CUTOUT_SUFFIX}{output_spec(kind).extension}"))


def _ended(out: Any, source: str, output: str, exc: BaseException) -> int:
    """Say on one line why a clip's run ended early (Ctrl-C, our error, a write that failed); its
    exit status. Both runs, one piece and chunked, end the same ways."""
    if isinstance(exc, KeyboardInterrupt):
        out.print(f"[yellow]interrupted[/]: nothing written to {output}")
        return INTERRUPTED
    if isinstance(exc, OSError) and not isinstance(exc, MattekitError):
        out.print(f"[red]✗[/] {source}: cannot write {output}: {exc.strerror or exc}")
        return FAILED
    out.print(f"[red]✗[/] {source}: {exc}")
    return FAILED


def _no_person(out: Any, source: str, output: str, frames: int) -> int:
    """Say that a clip's result holds no subject; its exit status. The file stays: minutes of
    work an editor may still want to look at (a far-off person the rule missed), but a script
    must not take it for a cut-out, so the run is not a success."""
    from rich.markup import escape  # here: importing the CLI loads no Rich

    out.print(
        f"[yellow]![/] {escape(source)} → {escape(output)}: no person found in any of its {frames} frames "
        "(video is matted for people only, with RVM), so the result holds no subject; written, but not a success"
    )
    return FAILED


def run_video(
    source: str,
    output: str,
    options: Options,
    vopts: VideoOptions,
    *,
    threads: int,
    device: str | None = None,
    backend: str | None = None,
) -> int:
    """Process one clip with a progress bar; Ctrl-C leaves nothing at ``output``. Exit status."""
    from ..core.engine import Engine, set_engine
    from ..video import process_video

    out = console()
    set_engine(Engine(threads=threads or None, device=device, backend=backend))
    try:
        with ProgressBar(
            out, Path(source).name, columns=["{task.fields[fps]:.1f} fps"], fields={"fps": 0.0}, transient=True
        ) as bar:
            result = process_video(
                source, output, options, vopts, progress=lambda p: bar.update(completed=p.done, total=p.total or None, fps=p.fps)
            )
    except (KeyboardInterrupt, MattekitError, OSError) as exc:
        return _ended(out, source, output, exc)
    if result.empty:
        return _no_person(out, source, output, result.frames)
    audio = ", audio kept" if result.audio else ""
    out.print(
        f"[green]✓[/] {source} → {output} ({result.frames} frames, {result.width}x{result.height}, "
        f"{result.frames / result.seconds:.1f} fps{audio})"
    )
    return 0


def run_chunked(
    source: str,
    output: str,
    options: Options,
    vopts: VideoOptions,
    *,
    chunks: int | None,
    chunk_seconds: float | None,
    warmup: int | None,
    address: str | None,
    workers: int | None,
    threads: int | None,
) -> int:
    """One clip in chunks on Ray, with a bar counting chunks. Exit status."""
    import contextlib
    import logging

    from ..errors import ClusterUnavailable, MissingExtra
    from ..video.chunks import WARMUP_FRAMES, process_chunked
    from .batch import without_ray_noise

    out = console()
    verbose = logging.getLogger().getEffectiveLevel() <= logging.INFO
    bar = ProgressBar(
        out, f"{Path(source).name}: starting Ray", columns=["{task.fields[frames]}"], fields={"frames": ""}, transient=True
    )
    try:
        with without_ray_noise() if not verbose else contextlib.nullcontext(), bar:
            result = process_chunked(
                source,
                output,
                options,
                vopts,
                chunks=chunks,
                chunk_seconds=chunk_seconds,
                warmup=WARMUP_FRAMES if warmup is None else warmup,
                address=address,
                workers=workers,
                threads=threads,
                device=current_device(),
                backend=current_backend(),
                verbose=verbose,
                progress=lambda p: bar.update(
                    completed=p.done, total=p.total, frames=f"{p.frames} frames", description=f"{Path(source).name}: chunks"
                ),
            )
    except (MissingExtra, ClusterUnavailable) as exc:
        error(str(exc))  # as batch says it ("mattekit: error: …"), with no markup to eat "[cluster]"
        return FAILED
    except (KeyboardInterrupt, MattekitError, OSError) as exc:
        return _ended(out, source, output, exc)
    except Exception as exc:  # Ray's own errors (a lost node, a refused connection): a line, not a trace
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error(f"the chunked run could not finish: {type(exc).__name__}: {first}")
        return FAILED
    if result.empty:
        return _no_person(out, source, output, result.frames)
    audio = ", audio kept" if result.audio else ""
    out.print(
        f"[green]✓[/] {source} → {output} ({result.frames} frames in {result.chunks} chunks, "
        f"{result.frames / result.seconds:.1f} fps{audio})"
    )
    return 0
