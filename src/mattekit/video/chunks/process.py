"""The whole chunked run, :func:`process_chunked`: the chunks on Ray (embedded, or a cluster;
:func:`chunk_task` is one), or in this process, then the join; progress as :class:`ChunkProgress`.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ...errors import InvalidOption
from ...options import Options
from ..outputs import OUTPUTS, VideoOptions, check_not_an_input, resolve_output
from ..writers import is_frame_file
from .join import join_segments
from .segments import WARMUP_FRAMES, Chunk, FrameTimes, frame_times, plan_chunks, run_chunk, segment_kind

_INSTALL_HINT = "chunked video runs on Ray, an optional extra: pip install 'mattekit[cluster]'"


@dataclass(frozen=True)
class ChunkProgress:
    done: int  # chunks finished
    total: int
    frames: int  # frames written by the finished chunks


@dataclass
class ChunkedResult:
    path: Path
    output: str
    frames: int
    chunks: int
    warmup: int
    audio: bool
    seconds: float
    # "chunks": seconds each chunk took where it ran (model load included), "join": the join
    timings: dict[str, Any] = field(default_factory=dict)
    empty: bool = False  # no chunk's frames held a subject (VideoResult.empty, over the whole clip)


_ENGINES: dict[tuple[Any, ...], Any] = {}  # one engine per worker process, kept across the chunks it runs


def _engine(threads: int | None, device: str | None, backend: str | None) -> Any:
    from ...core.engine import Engine

    key = (threads, device, backend)
    if key not in _ENGINES:
        _ENGINES[key] = Engine(threads=threads, device=device, backend=backend).load()
    return _ENGINES[key]


def chunk_task(
    source: str | bytes,
    suffix: str,
    options: Options,
    video: VideoOptions,
    kind: str,
    times: FrameTimes,
    chunk: Chunk,
    engine_spec: tuple[int | None, str | None, str | None],
    background: bytes | None = None,
) -> tuple[bytes, float, bool]:
    """One chunk where it runs (a Ray task, or this process): the source as a path or its bytes
    (a cluster's other machines cannot read this one's files), and likewise a background clip's
    bytes in ``background`` (``video.background_video`` names its suffix); returns the segment's
    bytes, the seconds it took, and whether the segment is empty (:attr:`VideoResult.empty`).
    ``engine_spec``: the engine's (threads, device, backend)."""
    started = time.perf_counter()
    threads, device, backend = engine_spec
    if threads:
        import cv2

        cv2.setNumThreads(threads)  # OpenCV would start a thread per core of the node otherwise
    engine = _engine(threads, device, backend)
    ext = OUTPUTS[segment_kind(kind)].extension
    with tempfile.TemporaryDirectory(prefix="mattekit-chunk-") as tmp:
        path = source if isinstance(source, str) else os.path.join(tmp, "in" + suffix)
        if isinstance(source, bytes):
            Path(path).write_bytes(source)
        if background is not None and video.background_video is not None:
            bg = Path(tmp) / ("bg" + Path(video.background_video).suffix)
            bg.write_bytes(background)
            video = replace(video, background_video=bg)
        segment = Path(tmp) / f"segment{ext}"
        result = run_chunk(path, segment, options, video, kind, times, chunk, engine=engine)
        return segment.read_bytes(), time.perf_counter() - started, result.empty


def process_chunked(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    options: Options | None = None,
    video: VideoOptions | None = None,
    *,
    chunks: int | None = None,
    chunk_seconds: float | None = None,
    warmup: int = WARMUP_FRAMES,
    executor: str = "ray",
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    device: str | None = None,
    backend: str | None = None,
    progress: Callable[[ChunkProgress], None] | None = None,
    overwrite: bool = True,
    verbose: bool = False,
) -> ChunkedResult:
    """:func:`~.pipeline.process_video` in chunks that run in parallel, joined into one file.

    Args:
        chunks / chunk_seconds: how to cut the range (one of the two).
        warmup: frames before each chunk that warm RVM's state (run, not written).
        executor: ``"ray"`` (embedded Ray, or the cluster at ``address``) or ``"local"`` (the
            chunks one after another in this process: the same result, for tests and measuring).
        workers / threads: Ray tasks at a time and inference threads each, as ``mattekit batch``
            sizes its pool (default: one single-threaded task per CPU).
    """
    options = options or Options()
    video = video or VideoOptions()
    target = Path(target)
    kind = resolve_output(target, options, video)
    if options.subject == "general":
        raise InvalidOption("video is matted for people only (RVM): use subject auto or person for a clip")
    check_not_an_input(source, target, video.background_video)
    if target.exists() and not overwrite:
        raise InvalidOption(f"{target} exists")
    if target.is_dir() and (not OUTPUTS[kind].folder or any(not is_frame_file(p) for p in target.iterdir())):
        # Replacing a folder means deleting it: only one that holds nothing but our frames (as process_video).
        raise InvalidOption(f"{target} is a folder with other files in it; write the frames to a new or empty folder")
    if executor not in ("ray", "local"):
        raise InvalidOption("executor must be 'ray' or 'local'")
    if chunk_seconds is not None and not (math.isfinite(chunk_seconds) and chunk_seconds > 0):
        raise InvalidOption("--chunk-seconds must be a positive number of seconds")
    started = time.perf_counter()
    # Ray's workers do not share this process's working directory: paths go to them absolute.
    source = Path(source).resolve()
    if video.background_video is not None:
        video = replace(video, background_video=Path(video.background_video).resolve())
    times = frame_times(source, video)
    per = None if chunk_seconds is None else max(1, int(round(chunk_seconds * times.fps)))
    plan = plan_chunks(len(times), chunks=chunks if per is None else None, chunk_frames=per, warmup=warmup)
    target.parent.mkdir(parents=True, exist_ok=True)
    seg_video = replace(video, output=None)
    with tempfile.TemporaryDirectory(prefix="mattekit-segments-", dir=target.parent) as tmp:
        segs = [Path(tmp) / f"{c.index:05d}{OUTPUTS[segment_kind(kind)].extension}" for c in plan]
        if executor == "local":
            took, empty = _run_local(source, segs, options, seg_video, kind, times, plan, threads, device, backend, progress)
        else:
            took, empty = _run_ray(
                source,
                segs,
                options,
                seg_video,
                kind,
                times,
                plan,
                address=address,
                workers=workers,
                threads=threads,
                device=device,
                backend=backend,
                progress=progress,
                verbose=verbose,
            )
        t = time.perf_counter()
        audio = join_segments(segs, target, kind, source, video, times, plan)
        join_s = time.perf_counter() - t
    return ChunkedResult(
        target,
        kind,
        len(times),
        len(plan),
        warmup,
        audio,
        time.perf_counter() - started,
        {"chunks": took, "join": join_s},
        all(empty),
    )


def _run_local(
    source: Any,
    segs: list[Path],
    options: Options,
    video: VideoOptions,
    kind: str,
    times: FrameTimes,
    plan: list[Chunk],
    threads: int | None,
    device: str | None,
    backend: str | None,
    progress: Callable[[ChunkProgress], None] | None,
) -> tuple[list[float], list[bool]]:
    """The chunks one after another here: the seconds each took, and whether each was empty."""
    took, empty, frames = [], [], 0
    for chunk, seg in zip(plan, segs):
        t = time.perf_counter()
        result = run_chunk(source, seg, options, video, kind, times, chunk, engine=_engine(threads, device, backend))
        took.append(time.perf_counter() - t)
        empty.append(result.empty)
        frames += chunk.frames
        if progress is not None:
            progress(ChunkProgress(chunk.index + 1, len(plan), frames))
    return took, empty


def _run_ray(
    source: Any,
    segs: list[Path],
    options: Options,
    video: VideoOptions,
    kind: str,
    times: FrameTimes,
    plan: list[Chunk],
    *,
    address: str | None,
    workers: int | None,
    threads: int | None,
    device: str | None,
    backend: str | None,
    progress: Callable[[ChunkProgress], None] | None,
    verbose: bool,
) -> tuple[list[float], list[bool]]:
    from ...cluster import connect, node_cpus, portable, require_ray, size_pool

    require_ray(_INSTALL_HINT)
    import ray

    owned = not ray.is_initialized()
    if owned:
        connect(address, verbose=verbose)
    try:
        pool = size_pool(node_cpus(), workers, threads)
        # On a cluster the other machines cannot open this machine's file: its bytes go through
        # Ray's object store, once (each task fetches them to its node).
        shipped: Any = str(source) if not address else ray.put(Path(source).read_bytes())
        bg = video.background_video
        background = ray.put(Path(bg).read_bytes()) if (address and bg is not None) else None
        task: Any = ray.remote(chunk_task).options(num_cpus=pool.actor_cpus, max_retries=1)  # Ray types 9 arguments at most
        shipped_options = portable(options)
        pending = {
            task.remote(
                shipped, Path(source).suffix, shipped_options, video, kind, times, c, (pool.threads, device, backend), background
            ): c
            for c in plan
        }
        took = [0.0] * len(plan)
        empty = [False] * len(plan)
        done = frames = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                chunk = pending.pop(ref)
                data, seconds, empty[chunk.index] = ray.get(ref)
                segs[chunk.index].write_bytes(data)
                took[chunk.index] = seconds
                done, frames = done + 1, frames + chunk.frames
                if progress is not None:
                    progress(ChunkProgress(done, len(plan), frames))
        return took, empty
    finally:
        if owned:
            ray.shutdown()
