"""The ``mattekit`` command. Thin: parse flags into Options, call the library, report.

Kept import-light at module level so ``mattekit --version`` and ``--help`` stay fast.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional, Union

import typer

from . import __version__
from .errors import InvalidOption, MattekitError

CUTOUT_SUFFIX = "-cutout"  # NAME-cutout.png beside NAME.jpg when no -o is given
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}

app = typer.Typer(
    name="mattekit",
    help="Remove the background from photos and videos of people (RVM matting, CPU-friendly).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Manage the RVM model file (fetch, path, verify).", no_args_is_help=True)
app.add_typer(model_app, name="model")


def _err(message: str) -> None:
    typer.echo(f"mattekit: error: {message}", err=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mattekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens (model, providers, timings)."),
    device: Optional[str] = typer.Option(None, "--device", help="Where the model runs: auto (CUDA when available, else CPU) | cpu | cuda. Default: MATTEKIT_DEVICE, else auto."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if device is not None:
        if device.strip().lower() not in ("auto", "cpu", "cuda"):
            _err(f"--device must be auto, cpu or cuda, not {device!r}")
            raise typer.Exit(2)
        os.environ["MATTEKIT_DEVICE"] = device.strip().lower()  # every engine this run creates reads it


# -- still-image flags, shared by `remove` and `batch` so an option means the same in both --------
FORMAT_FLAG = typer.Option("png", "--format", "-f", help="png | webp | jpg (jpg needs --bg).")
PRESET_FLAG = typer.Option("balanced", "--preset", "-p", help="fast | balanced | best.")
MASK_FLAG = typer.Option(False, "--mask", help="Write the alpha matte alone (greyscale).")
BG_FLAG = typer.Option(None, "--bg", help="Background: a colour (white, '#00ff00'), blur[:RADIUS], or an image file.")
BG_FIT_FLAG = typer.Option("fill", "--bg-fit", help="How a background image fits: fill (crop) | fit (letterbox).")
CROP_FLAG = typer.Option(False, "--crop", help="Crop to the subject.")
MARGIN_FLAG = typer.Option("0", "--margin", help="Crop margin: pixels ('16') or percent ('5%').")
RATIO_FLAG = typer.Option("auto", "--ratio", help="RVM downsample ratio: auto or (0, 1]; 0.25 = the original demo.")
MAX_SIZE_FLAG = typer.Option(None, "--max-size", help="Shrink inputs so the longer side is at most this.")
QUALITY_FLAG = typer.Option(90, "--quality", help="JPEG/WebP quality (WebP 100 = lossless).")
DECONTAMINATE_FLAG = typer.Option(None, "--decontaminate/--no-decontaminate", help="Clean edge colours with RVM's foreground (default: preset's choice).")


def still_options(*, fmt: str, **flags):
    """The Options the still-image flags above describe (raises InvalidOption)."""
    from .options import Options

    return Options.from_fields(dict(format=fmt, **flags), allow_paths=True)


# -- remove ----------------------------------------------------------------------------------
@dataclass
class Job:
    source: Union[str, bytes]  # a path, "-" for stdin, or stdin's bytes once read
    target: str  # a path, or "-" for stdout
    display: str


def _is_image_file(p: Path) -> bool:
    # Hidden files include our own half-written ".NAME.PID.part" results.
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _expand(inputs: List[str], output: Optional[str]) -> Iterator[tuple[str, Optional[Path], Path]]:
    """(input, base folder or None, file) for every image the arguments name.

    A folder never yields our own results again: files under the output folder are left out,
    and without ``-o`` so are the ``*-cutout.*`` files a previous run wrote beside its inputs.
    """
    out_dir = Path(output).resolve() if output not in (None, "-") else None
    for arg in inputs:
        if arg == "-":
            yield arg, None, Path("-")
            continue
        path = Path(arg)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if _is_image_file(p)):
                if out_dir is not None and out_dir in f.resolve().parents:
                    continue
                if output is None and f.stem.endswith(CUTOUT_SUFFIX):
                    continue
                yield arg, path, f
        elif path.exists():
            yield arg, None, path
        elif glob.has_magic(arg):
            files = sorted(Path(m) for m in glob.glob(arg, recursive=True) if _is_image_file(Path(m)))
            if not files:
                raise InvalidOption(f"no images match {arg!r}")
            for f in files:
                yield arg, None, f
        else:
            raise InvalidOption(f"no such file or folder: {arg}")


def plan_jobs(inputs: List[str], output: Optional[str], fmt: str) -> List[Job]:
    """Where each input's result goes. Folders keep their relative paths under ``output``."""
    found = list(_expand(inputs, output))
    if not found:
        raise InvalidOption(f"no images found in {', '.join(inputs)} ({', '.join(sorted(IMAGE_SUFFIXES))})")
    ext = {"png": ".png", "webp": ".webp", "jpg": ".jpg"}[fmt]
    many = len(found) > 1 or any(base is not None for _, base, _ in found)
    if any(str(f) == "-" for _, _, f in found) and len(found) > 1:
        raise InvalidOption("'-' (stdin) cannot be combined with other inputs")
    if many and output not in (None, "-") and not Path(output).is_dir() and Path(output).suffix.lower() in IMAGE_SUFFIXES:
        raise InvalidOption(f"{len(found)} inputs need a folder for -o, not the file name {output!r}")
    jobs: List[Job] = []
    for _arg, base, f in found:
        if str(f) == "-":
            jobs.append(Job("-", output or "-", "<stdin>"))
            continue
        if output is None:
            target = f.with_name(f"{f.stem}{CUTOUT_SUFFIX}{ext}")
        elif output == "-":
            if many:
                raise InvalidOption("'-o -' (stdout) takes a single input")
            jobs.append(Job(str(f), "-", str(f)))
            continue
        elif many or Path(output).is_dir() or output.endswith(("/", os.sep)):
            rel = f.relative_to(base) if base is not None else Path(f.name)
            target = Path(output) / rel.with_suffix(ext)
        else:
            target = Path(output)
        if target.resolve() == f.resolve():
            raise InvalidOption(f"{f} would be overwritten by its own result; choose another -o")
        jobs.append(Job(str(f), str(target), str(f)))
    targets = [str(Path(j.target).resolve()) for j in jobs if j.target != "-"]
    if len(set(targets)) != len(targets):
        raise InvalidOption("two inputs would write the same output file; use a folder with -o")
    return jobs


def _write_atomic(target: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, then rename: never a half-written result."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@app.command()
def remove(
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive), globs, or '-' for stdin."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output file, or folder for several inputs; '-' for stdout. Default: NAME-cutout.EXT beside each input."),
    fmt: str = FORMAT_FLAG,
    preset: str = PRESET_FLAG,
    mask: bool = MASK_FLAG,
    bg: Optional[str] = BG_FLAG,
    bg_fit: str = BG_FIT_FLAG,
    crop: bool = CROP_FLAG,
    margin: str = MARGIN_FLAG,
    ratio: str = RATIO_FLAG,
    max_size: Optional[int] = MAX_SIZE_FLAG,
    quality: int = QUALITY_FLAG,
    decontaminate: Optional[bool] = DECONTAMINATE_FLAG,
    threads: int = typer.Option(0, "--threads", help="Inference threads (0 = all cores)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Leave existing outputs alone and go on."),
) -> None:
    """Remove the background from images.

    Exit status: 0 all done, 1 some inputs failed (each one is reported), 2 bad usage.
    """
    try:
        options = still_options(fmt=fmt, preset=preset, mask=mask, bg=bg, bg_fit=bg_fit, crop=crop, margin=margin,
                                ratio=ratio, max_size=max_size, quality=quality, decontaminate=decontaminate)
        if threads < 0:
            raise InvalidOption("--threads must be 0 (all cores) or more")
        if overwrite and skip_existing:
            raise InvalidOption("--overwrite and --skip-existing exclude each other")
        jobs = plan_jobs(inputs, output, options.format)
        if any(j.source == "-" for j in jobs) and sys.stdin.isatty():
            raise InvalidOption("'-' reads an image from stdin: pipe one in, as in `mattekit remove - < photo.jpg`")
        if any(j.target == "-" for j in jobs) and sys.stdout.isatty():
            raise InvalidOption("the result would go to the terminal: redirect it (`> out.png`) or use -o FILE")
    except MattekitError as exc:
        _err(str(exc))
        raise typer.Exit(2)
    failed = run_jobs(jobs, options, threads=threads, overwrite=overwrite, skip_existing=skip_existing)
    raise typer.Exit(1 if failed else 0)


def run_jobs(jobs: List[Job], options, *, threads: int, overwrite: bool, skip_existing: bool) -> int:
    """Process every job, reporting (not raising) per-file failures. Returns the failure count.

    Progress goes to stderr: a live bar on a terminal, one ``[i/N]`` line per file otherwise
    (logs, CI), so a long batch always shows where it is.
    """
    from rich.console import Console
    from rich.markup import escape

    from .engine import Engine, set_engine
    from .pipeline import process_files

    console = Console(stderr=True, soft_wrap=True, highlight=False)  # one plain line per message
    todo: List[Job] = []
    failed = skipped = 0
    for job in jobs:
        if job.target != "-" and Path(job.target).exists() and not overwrite:
            if skip_existing:
                skipped += 1
                continue
            console.print(f"[red]✗[/] {escape(job.display)}: {escape(job.target)} exists (use --overwrite or --skip-existing)")
            failed += 1
            continue
        todo.append(job)
    if skipped:
        console.print(f"skipping {skipped} input(s) whose output exists")
    if not todo:
        if len(jobs) > 1:
            console.print(f"0 done, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
        return failed
    set_engine(Engine(threads=threads or None))
    for job in todo:
        if job.source == "-":
            job.source = sys.stdin.buffer.read()
    many = len(todo) > 1
    live = many and console.is_terminal
    done = ok = 0
    for job, outcome in process_files(todo, options, progress=console if live else None):
        done += 1
        where = f"[{done}/{len(todo)}] " if many else ""
        name = escape(job.display)
        if isinstance(outcome, MattekitError):
            console.print(f"{where}[red]✗[/] {name}: {escape(str(outcome))}")
            failed += 1
            continue
        if job.target == "-":
            sys.stdout.buffer.write(outcome)
            sys.stdout.buffer.flush()
            ok += 1
            continue
        try:
            _write_atomic(Path(job.target), outcome)
        except OSError as exc:
            console.print(f"{where}[red]✗[/] {name}: cannot write {escape(job.target)}: {exc.strerror or exc}")
            failed += 1
            continue
        ok += 1
        if not live:
            console.print(f"{where}[green]✓[/] {name} → {escape(job.target)}")
    if len(jobs) > 1:
        console.print(f"{ok} done, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return failed


# -- video -----------------------------------------------------------------------------------
@app.command()
def video(
    source: str = typer.Argument(..., help="A video file: MP4, MOV, WebM, MKV, AVI, animated GIF/WebP, ..."),
    output: str = typer.Option(..., "-o", "--output", help="Output: .webm/.mov (transparent), .zip or a folder (PNG frames), .mp4 (with --bg, or --mask)."),
    output_type: Optional[str] = typer.Option(None, "--output-type", "-t", help="webm | mov | png-zip | png-dir | matte | composite (default: from OUT's extension)."),
    bg: Optional[str] = typer.Option(None, "--bg", help="Background: a colour, blur[:RADIUS], an image file or a video file (looped/cut to length)."),
    bg_fit: str = typer.Option("fill", "--bg-fit", help="How a background image fits: fill (crop) | fit (letterbox)."),
    mask: bool = typer.Option(False, "--mask", help="Write the alpha matte as a greyscale video."),
    preset: str = typer.Option("balanced", "--preset", "-p", help="fast | balanced | best."),
    ratio: str = typer.Option("auto", "--ratio", help="RVM downsample ratio: auto or (0, 1]."),
    decontaminate: Optional[bool] = typer.Option(None, "--decontaminate/--no-decontaminate", help="Clean edge colours with RVM's foreground (default: preset's choice)."),
    start: float = typer.Option(0.0, "--start", help="Start at this many seconds."),
    end: Optional[float] = typer.Option(None, "--end", help="Stop at this many seconds."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Process at most this many frames."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Drop the source's audio."),
    threads: int = typer.Option(0, "--threads", help="Inference threads (0 = all cores)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Remove the background from a video (transparent WebM/MOV, PNG frames, matte or composite)."""
    from .options import Options
    from .video import VIDEO_SUFFIXES, VideoOptions, resolve_output

    bg_video = None
    if bg and Path(bg).suffix.lower() in VIDEO_SUFFIXES - {".gif", ".webp"}:
        bg_video, bg = bg, None
    try:
        options = Options.from_fields(dict(preset=preset, mask=mask, bg=bg, bg_fit=bg_fit, ratio=ratio,
                                           decontaminate=decontaminate), allow_paths=True)
        vopts = VideoOptions(output=output_type, start=start, end=end, max_frames=max_frames,  # type: ignore[arg-type]
                             audio=not no_audio, background_video=bg_video)
        resolve_output(output, options, vopts)
        if threads < 0:
            raise InvalidOption("--threads must be 0 (all cores) or more")
        if Path(output).exists() and not overwrite and not (Path(output).is_dir() and not any(Path(output).iterdir())):
            raise InvalidOption(f"{output} exists (use --overwrite)")
    except MattekitError as exc:
        _err(str(exc))
        raise typer.Exit(2)
    raise typer.Exit(run_video(source, output, options, vopts, threads=threads))


def run_video(source: str, output: str, options, vopts, *, threads: int) -> int:
    """Process one clip with a progress bar; Ctrl-C leaves nothing at ``output``. Exit status."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .engine import Engine, set_engine
    from .video import process_video

    console = Console(stderr=True)
    set_engine(Engine(threads=threads or None))
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[fps]:.1f} fps"), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=console, transient=True)
    task = bar.add_task(Path(source).name, total=None, fps=0.0)

    def report(p) -> None:
        bar.update(task, completed=p.done, total=p.total or None, fps=p.fps)

    try:
        with bar:
            result = process_video(source, output, options, vopts, progress=report)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: nothing written to {output}")
        return 130
    except MattekitError as exc:
        console.print(f"[red]✗[/] {source}: {exc}")
        return 1
    except OSError as exc:
        console.print(f"[red]✗[/] {source}: cannot write {output}: {exc.strerror or exc}")
        return 1
    audio = ", audio kept" if result.audio else ""
    console.print(f"[green]✓[/] {source} → {output} ({result.frames} frames, {result.width}x{result.height}, "
                  f"{result.frames / result.seconds:.1f} fps{audio})")
    return 0


# -- batch -----------------------------------------------------------------------------------
@app.command()
def batch(
    src: str = typer.Argument(..., help="Folder of photos and videos: a path, or a URI pyarrow/fsspec opens (s3://bucket/in, gs://…)."),
    dst: str = typer.Argument(..., help="Output folder (path or URI); relative paths are kept. Holds _mattekit_manifest.jsonl."),
    fmt: str = FORMAT_FLAG,
    preset: str = PRESET_FLAG,
    mask: bool = MASK_FLAG,
    bg: Optional[str] = BG_FLAG,
    bg_fit: str = BG_FIT_FLAG,
    crop: bool = CROP_FLAG,
    margin: str = MARGIN_FLAG,
    ratio: str = RATIO_FLAG,
    max_size: Optional[int] = MAX_SIZE_FLAG,
    quality: int = QUALITY_FLAG,
    decontaminate: Optional[bool] = DECONTAMINATE_FLAG,
    video_output: Optional[str] = typer.Option(None, "--video-output", help="Videos as webm | mov | png-zip | matte | composite (default: webm; composite MP4 with --bg; matte MP4 with --mask)."),
    start: float = typer.Option(0.0, "--start", help="Videos: start at this many seconds."),
    end: Optional[float] = typer.Option(None, "--end", help="Videos: stop at this many seconds."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Videos: process at most this many frames."),
    max_duration: Optional[float] = typer.Option(None, "--max-duration", help="Videos: refuse (record as failed) clips longer than this many seconds."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Videos: drop the source's audio."),
    address: Optional[str] = typer.Option(None, "--address", help="Join a Ray cluster: auto | host:port | ray://host:port. Default: an embedded Ray on this machine's cores."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Engines (Ray actors) to run; default: as many as the cluster's CPUs hold."),
    threads: int = typer.Option(0, "--threads", help="Inference threads (= CPUs) per worker; 0 = CPUs / workers, or 1."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo files whose output exists (default: skip them, so a rerun resumes)."),
) -> None:
    """Remove backgrounds from a whole folder or bucket of photos and videos, on Ray.

    Exit status: 0 the batch ran (files that failed are listed in DST/_mattekit_manifest.jsonl),
    1 the batch could not run (Ray not installed, cluster unreachable), 2 bad usage.
    """
    from . import batch as batching

    try:
        batching.require_ray()
        options = still_options(fmt=fmt, preset=preset, mask=mask, bg=bg, bg_fit=bg_fit, crop=crop, margin=margin,
                                ratio=ratio, max_size=max_size, quality=quality, decontaminate=decontaminate)
        if threads < 0 or (workers is not None and workers < 1):
            raise InvalidOption("--workers must be 1 or more and --threads 0 or more")
        video = batching.VideoSettings(output=video_output, start=start, end=end, max_frames=max_frames,
                                       max_duration=max_duration, audio=not no_audio)
        video.suffix(options)
        video.video_options(options)
        spec = batching.Spec(batching.resolve(src), batching.resolve(dst), options, video)
    except batching.MissingExtra as exc:
        _err(str(exc))
        raise typer.Exit(1)
    except MattekitError as exc:
        _err(str(exc))
        raise typer.Exit(2)
    raise typer.Exit(run_batch(spec, address=address, workers=workers, threads=threads or None, overwrite=overwrite))


def run_batch(spec, *, address: Optional[str], workers: Optional[int], threads: Optional[int], overwrite: bool) -> int:
    """Run a batch with a progress bar (files done, files/s). Exit status."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from . import batch as batching

    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console)
    task = bar.add_task("starting Ray", total=None, rate="")
    failed = [0]

    def planned(plan) -> None:
        if plan.done:
            console.print(f"{len(plan.done)} already done (outputs exist), skipped")
        bar.update(task, total=len(plan.todo) + len(plan.clashes), description="removing backgrounds")

    def finished(rec) -> None:
        if rec.status != "ok":
            failed[0] += 1
            console.print(f"[red]✗[/] {rec.input}: {rec.error}")
        bar.advance(task)
        t = bar.tasks[0]
        rate = t.completed / t.elapsed if t.elapsed else 0.0
        bar.update(task, rate=f"{rate:.2f} files/s" + (f", {failed[0]} failed" if failed[0] else ""))

    verbose = logging.getLogger().getEffectiveLevel() <= logging.INFO
    try:
        with bar:
            summary = batching.run(spec, address=address, workers=workers, threads=threads, overwrite=overwrite,
                                   on_plan=planned, on_record=finished, verbose=verbose)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: finished files are kept; run the same command again to resume")
        return 130
    except batching.ClusterUnavailable as exc:
        _err(str(exc))
        return 1
    except MattekitError as exc:
        _err(str(exc))
        return 2
    except Exception as exc:  # Ray's own errors (cluster unreachable, lost nodes): a message, not a trace
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _err(f"the batch could not run: {type(exc).__name__}: {first}")
        return 1
    pool = f" on {summary.pool.size} workers x {summary.pool.threads} threads" if summary.pool else ""
    manifest = spec.dst.display(spec.dst.join(batching.MANIFEST))
    console.print(f"[green]✓[/] {summary.done} done, {summary.failed} failed, {summary.skipped} skipped "
                  f"in {summary.seconds:.1f} s ({summary.rate:.2f} files/s){pool}; manifest: {manifest}")
    return 0


# -- serve -----------------------------------------------------------------------------------
@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(5003, "--port", help="TCP port."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Inference threads (default: MATTEKIT_WORKERS, else the CPU count, at most 4)."),
    queue_size: Optional[int] = typer.Option(None, "--queue-size", help="Requests waiting for a worker before 503 Busy (default: MATTEKIT_QUEUE_SIZE, else 16)."),
    max_concurrency: Optional[int] = typer.Option(None, "--max-concurrency", help="Open connections before uvicorn itself answers 503 (default: no limit)."),
    processes: int = typer.Option(1, "--processes", help="Server processes sharing the port, each with its own engine and --workers threads (uvicorn's --workers); video jobs and /metrics are shared through MATTEKIT_JOB_DIR and PROMETHEUS_MULTIPROC_DIR (made here when unset)."),
) -> None:
    """Serve the web page and HTTP API (the same app as `uvicorn app:app`). Limits: MATTEKIT_* variables."""
    from .service import Settings, create_app
    from .service.factory import configure_logging

    try:
        settings = Settings.from_env(workers=workers, queue_size=queue_size)
        if max_concurrency is not None and max_concurrency < 1:
            raise InvalidOption("--max-concurrency must be at least 1")
        if processes < 1:
            raise InvalidOption("--processes must be at least 1")
    except MattekitError as exc:
        _err(str(exc))
        raise typer.Exit(2)
    import uvicorn

    configure_logging(settings.log_format, force=True)
    each = f"{processes} processes × " if processes > 1 else ""
    typer.echo(
        f"mattekit: serving on http://{host}:{port}/ ({each}{settings.workers} workers, queue {settings.queue_size}); "
        "Ctrl-C stops", err=True,
    )
    # Our access log (request ids, JSON when asked) replaces uvicorn's; the grace period bounds
    # how long a SIGTERM waits for in-flight requests.
    common = dict(host=host, port=port, limit_concurrency=max_concurrency,
                  timeout_graceful_shutdown=int(math.ceil(settings.grace_period)), access_log=False)
    if processes == 1:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
        return
    with _shared_folders(settings, processes):
        # Each process builds its own app (and engine) from the environment set above.
        uvicorn.run("mattekit.service.factory:create_app", factory=True, workers=processes, **common)  # type: ignore[arg-type]


@contextlib.contextmanager
def _shared_folders(settings: Any, processes: int) -> Iterator[None]:
    """The environment every server process reads: the settings given as flags, an even share of
    the cores, and the folders jobs and metrics are shared through (made, and removed, here)."""
    import shutil
    import tempfile

    os.environ["MATTEKIT_WORKERS"] = str(settings.workers)
    os.environ["MATTEKIT_QUEUE_SIZE"] = str(settings.queue_size)
    if not os.environ.get("MATTEKIT_THREADS"):  # N processes × all cores each would oversubscribe
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        os.environ["MATTEKIT_THREADS"] = str(max(1, cores // processes))
    made = []
    for name, prefix in (("PROMETHEUS_MULTIPROC_DIR", "mattekit-metrics-"), ("MATTEKIT_JOB_DIR", "mattekit-jobs-")):
        if not os.environ.get(name):
            os.environ[name] = tempfile.mkdtemp(prefix=prefix)
            made.append(os.environ[name])
    # Values left by an earlier run would be added to this one's.
    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()
    try:
        yield
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)


# -- model -----------------------------------------------------------------------------------
@model_app.command("fetch")
def model_fetch(force: bool = typer.Option(False, "--force", help="Download again even if cached.")) -> None:
    """Download the RVM model into the cache (if missing or corrupt) and verify it."""
    from . import models

    try:
        if force:
            path, digest = models.fetch(force=True)
            typer.echo(f"{path} (sha256 {digest})")
        else:
            typer.echo(models.describe(models.locate()))
    except MattekitError as exc:
        _err(str(exc))
        raise typer.Exit(1)


@model_app.command("path")
def model_path() -> None:
    """Print where the model is (fetching nothing)."""
    from . import models

    try:
        typer.echo(models.locate(fetch_missing=False).path)
    except MattekitError as exc:
        _err(str(exc))
        raise typer.Exit(1)


@model_app.command("verify")
def model_verify() -> None:
    """Check the model file's SHA-256."""
    from . import models

    try:
        info = models.locate(fetch_missing=False)
        typer.echo(f"ok: {models.describe(info)}")
    except MattekitError as exc:
        _err(str(exc))
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except BrokenPipeError:  # `mattekit remove - -o - | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(1)
    except MattekitError as exc:
        _err(str(exc))
        sys.exit(1)
    except Exception as exc:  # never a traceback for a user; -v logs it
        logging.getLogger("mattekit.cli").info("internal error", exc_info=True)
        _err(f"internal error ({type(exc).__name__}: {exc}). Please report it with the command you ran "
             "and the output of the same command with -v.")
        sys.exit(1)
