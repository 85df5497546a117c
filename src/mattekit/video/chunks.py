"""Chunked video: cut a clip's frames into chunks, matte each on its own (on Ray, across a
cluster), and join the encoded segments into one file without re-encoding the whole.

    plan_chunks      frame ranges, each with the W frames before it to warm RVM's state
    frame_times      the clip's frames' timestamps (demuxed, not decoded): frame-accurate cuts
    run_chunk        one chunk → one segment: seek to the keyframe before its warm-up, decode,
                     warm the state on W frames (not written), matte and encode its own frames
    join_segments    the segments' packets remuxed into the final container, shifted to their
                     place; the source's audio muxed once; PNG frames renumbered into one ZIP/folder
    process_chunked  the whole, with the chunks on Ray (embedded, or a cluster) or in this process

Every segment is a fresh encode, so it starts on a keyframe, and every segment is encoded with the
same row of the outputs table at the same size, so their packets belong in one stream: H.264 (the
matte and composite MP4s), VP9 with alpha (WebM) and ProRes 4444 (MOV) all join this way.

Why W = 20 (:data:`WARMUP_FRAMES`): on the dev clip comp_D (1280x720, 90 frames, default preset),
3 chunks of 30 frames against one continuous run (bench/chunks.py --part seams, Sapphire Rapids,
2 cores): W = 0 gives dtSSD 2.110 against 2.069, seam frames 1.18/255 mean and 92/255 at p99.9
off the continuous run's, the worst frame's SAD 1.197x its one-piece SAD; W = 3 2.087, 0.68 / 56,
1.091x; W = 10 2.076, 0.40 / 34, 1.038x; W = 20 2.071, 0.19 / 16, 1.010x. Twenty frames is under a
second at 25 fps: ~1.3 % more model runs for 60-second chunks, ~3 s a chunk at 1080p there.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, InvalidOption
from ..files import delete_path, move_into_place, temp_path
from ..options import Options
from .outputs import OUTPUTS, VideoOptions, resolve_output
from .writers import is_frame_file

# Frames each chunk runs through the model before its own, to warm RVM's recurrent state (see the
# module's docstring for the measurement).
WARMUP_FRAMES = 20


_INSTALL_HINT = "chunked video runs on Ray, an optional extra: pip install 'mattekit[cluster]'"


@dataclass(frozen=True)
class Chunk:
    """One chunk, in frame indices of the range being processed (0 = its first frame)."""

    index: int
    first: int  # first frame written
    stop: int  # one past the last frame written
    warm: int  # first warm-up frame (== first: none, the run's first chunk)

    @property
    def frames(self) -> int:
        return self.stop - self.first


def plan_chunks(
    frames: int, *, chunks: int | None = None, chunk_frames: int | None = None, warmup: int = WARMUP_FRAMES
) -> list[Chunk]:
    """Cut ``frames`` frames into ``chunks`` near-equal chunks, or chunks of ``chunk_frames``
    (the last takes the rest), each warmed on up to ``warmup`` frames before it."""
    if frames < 1:
        raise InvalidInput("no frames to cut into chunks")
    if (chunks is None) == (chunk_frames is None):
        raise InvalidOption("give either a number of chunks or a chunk length")
    if warmup < 0:
        raise InvalidOption("the warm-up must be 0 frames or more")
    if chunks is not None:
        if chunks < 1:
            raise InvalidOption("--chunks must be 1 or more")
        n = min(chunks, frames)
        bounds = [frames * i // n for i in range(n + 1)]
    else:
        assert chunk_frames is not None
        if chunk_frames < 1:
            raise InvalidOption("a chunk must hold at least one frame")
        bounds = [*list(range(0, frames, chunk_frames)), frames]
    return [Chunk(i, a, b, max(0, a - warmup)) for i, (a, b) in enumerate(itertools.pairwise(bounds))]


@dataclass(frozen=True)
class FrameTimes:
    """The presentation times (seconds) of the frames in the range, in order, and of the frame
    just after it (``None`` at the end of the clip): a chunk is cut at a frame's own timestamp."""

    seconds: tuple[float, ...]
    after: float | None
    fps: float

    def __len__(self) -> int:
        return len(self.seconds)


def frame_times(source: str | os.PathLike, video: VideoOptions) -> FrameTimes:
    """Every frame's timestamp in ``video``'s range, from the packets (demuxed, not decoded: a
    10-minute clip's are read in the time it takes to read the file)."""
    from .reader import frame_rate, is_webp, open_input

    if is_webp(source):
        raise InvalidOption("an animated WebP cannot be cut into chunks (Pillow decodes it from the start); leave --chunks out")
    container = open_input(source)
    try:
        vs = container.streams.video[0]
        tb = vs.time_base or Fraction(1, 90000)
        rate = float(frame_rate(vs))
        stamps = []
        for packet in container.demux(vs):
            if packet.size == 0:
                continue  # the demuxer's flush packet
            if packet.pts is None:
                raise InvalidInput(
                    f"{Path(source).name} cannot be cut into chunks: its frames carry no timestamps (leave --chunks out)"
                )
            stamps.append(packet.pts)
    finally:
        container.close()
    # The same test as the reader's (read_av), on the same floats, so a chunk holds exactly its frames.
    half = 0.5 / rate
    times = [float(p * tb) for p in sorted(set(stamps))]
    inside = [t for t in times if t >= video.start - half and (video.end is None or t < video.end - 1e-9)]
    if video.max_frames is not None:
        inside = inside[: video.max_frames]
    if not inside:
        raise InvalidInput(f"{Path(source).name}: no frames in the asked range")
    later = [t for t in times if t > inside[-1]]
    return FrameTimes(tuple(inside), later[0] if later else None, rate)


def chunk_options(video: VideoOptions, kind: str, times: FrameTimes, chunk: Chunk) -> tuple[VideoOptions, float]:
    """What :func:`~.pipeline.process_video` is asked for one chunk: its frames (by their own
    timestamps and count), no audio (the join muxes it once), and where its warm-up starts."""
    t = times.seconds
    end = t[chunk.stop] if chunk.stop < len(t) else video.end
    vopts = VideoOptions(
        output=segment_kind(kind),
        start=t[chunk.first],
        end=end,
        max_frames=chunk.frames,
        audio=False,
        background_video=video.background_video,
    )
    return vopts, t[chunk.warm]


def segment_kind(kind: str) -> str:
    """Segments of PNG frames travel as one ZIP each (one object to hand back from a Ray task)."""
    return "png-zip" if OUTPUTS[kind].writer == OUTPUTS["png-zip"].writer else kind


def run_chunk(
    source: str | os.PathLike,
    segment: str | os.PathLike,
    options: Options,
    video: VideoOptions,
    kind: str,
    times: FrameTimes,
    chunk: Chunk,
    *,
    engine: Any = None,
) -> int:
    """Matte one chunk of ``source`` into ``segment`` (a file of ``segment_kind(kind)``). Frames written."""
    from .pipeline import process_video
    from .reader import Part

    vopts, warm_from = chunk_options(video, kind, times, chunk)
    result = process_video(source, segment, options, vopts, engine=engine, part=Part(warm_from, times.seconds[0], chunk.first))
    if result.frames != chunk.frames:
        raise InvalidInput(
            f"{Path(source).name}: chunk {chunk.index + 1} gave {result.frames} frames "
            f"of {chunk.frames} (a clip whose timestamps jump cannot be cut frame-accurately)"
        )
    return result.frames


# -- joining ------------------------------------------------------------------------------------
def join_segments(
    segments: Sequence[Path],
    target: Path,
    kind: str,
    source: str | os.PathLike,
    video: VideoOptions,
    times: FrameTimes,
    chunks: Sequence[Chunk],
) -> bool:
    """Join the chunks' segments at ``target`` (written whole, or not at all). Video packets are
    copied, not re-encoded, each segment shifted to its first frame's place; the source's audio
    for the range is muxed once. Returns whether audio was written."""
    spec = OUTPUTS[kind]
    if segment_kind(kind) == "png-zip":
        _join_frames(segments, target, spec.container == "zip")
        return False
    return _join_av(segments, target, kind, source, video, times, chunks)


def _join_frames(segments: Sequence[Path], target: Path, as_zip: bool) -> None:
    """PNG frames renumbered in order into one ZIP (stored, as the writer stores them) or a folder."""

    tmp = temp_path(target)
    index = 0
    try:
        out = zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) if as_zip else None
        if out is None:
            tmp.mkdir(parents=True)
        for seg in segments:
            with zipfile.ZipFile(seg) as z:
                for name in sorted(n for n in z.namelist() if n.startswith("frame_")):
                    data = z.read(name)
                    new = f"frame_{index:06d}.png"
                    if out is not None:
                        out.writestr(new, data)
                    else:
                        (tmp / new).write_bytes(data)
                    index += 1
        if out is not None:
            out.close()
        move_into_place(tmp, target)
    except BaseException:
        delete_path(tmp)
        raise


def _join_av(
    segments: Sequence[Path],
    target: Path,
    kind: str,
    source: str | os.PathLike,
    video: VideoOptions,
    times: FrameTimes,
    chunks: Sequence[Chunk],
) -> bool:
    import heapq
    import itertools

    import av

    from .reader import frame_rate, open_input
    from .writers import AvWriter

    spec = OUTPUTS[kind]
    t0 = times.seconds[0]
    end = times.after if times.after is not None else math.inf
    if video.end is not None:
        end = min(end, video.end)
    src = open_input(source) if (video.audio and spec.audio) else None
    in_audio = src.streams.audio[0] if (src is not None and src.streams.audio) else None
    first = av.open(str(segments[0]))  # the template of the output's video stream
    tmp = temp_path(target)
    writer = None
    try:
        template = first.streams.video[0]
        writer = AvWriter(tmp, spec, in_audio, frame_rate(template), template.time_base or Fraction(1, 90000))
        writer.start_sec = t0
        writer.open_remux(template)

        def video_packets(i: int) -> Iterator[tuple[float, int, Any]]:
            with av.open(str(segments[i])) as opened:  # one at a time: a 2-hour clip may have 700 segments
                yield from segment_packets(i, opened)

        def segment_packets(i: int, opened: Any) -> Iterator[tuple[float, int, Any]]:
            stream = opened.streams.video[0]
            tb = stream.time_base or Fraction(1, 90000)
            # Segments are stamped from the run's first frame (run_chunk's Part.origin), so the shift is
            # 0; a muxer that starts every file at 0 would be put right here.
            shift: int | None = None
            place = int(round((times.seconds[chunks[i].first] - t0) / tb))
            for packet in opened.demux(stream):
                if packet.size == 0:
                    continue
                if shift is None:  # a segment starts on a keyframe: its first packet is its first frame
                    # within a tick: the muxer's own rounding (WebM's ms) of the very stamp we placed
                    shift = place - (packet.pts or 0)
                    shift = 0 if abs(shift) <= 1 else shift
                packet.pts = None if packet.pts is None else packet.pts + shift
                packet.dts = None if packet.dts is None else packet.dts + shift
                stamp = packet.dts if packet.dts is not None else packet.pts
                if stamp is None:
                    continue  # nothing to place it by (encoders always stamp; a guard, not a case)
                yield float(stamp * tb), 0, packet

        def audio_packets() -> Iterator[tuple[float, int, Any]]:
            if in_audio is None or src is None:
                return
            vs = src.streams.video[0]
            if t0 > 0:
                try:
                    src.seek(int(t0 / (vs.time_base or Fraction(1, 90000))), stream=vs, backward=True)
                except av.FFmpegError:
                    pass  # decoding from the start: the packets before t0 are skipped below
            for packet in src.demux(in_audio):
                if packet.dts is None or packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base)
                if t < t0 - 1e-6:
                    continue
                if t >= end:
                    return
                yield t - t0, 1, packet

        # The segments follow each other in time, so their packets chained are in order already.
        pictures = itertools.chain.from_iterable(video_packets(i) for i in range(len(segments)))
        for _, what, packet in heapq.merge(pictures, audio_packets(), key=lambda x: (x[0], x[1])):
            if what == 0:
                writer.remux(packet)
            else:
                writer.audio(packet)
        writer.close()
        move_into_place(tmp, target)
        return writer.audio_written > 0
    except BaseException:
        if writer is not None:
            writer.abort()
        delete_path(tmp)
        raise
    finally:
        first.close()
        if src is not None:
            src.close()


# -- the whole ----------------------------------------------------------------------------------
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


_ENGINES: dict[tuple, Any] = {}  # one engine per worker process, kept across the chunks it runs


def _engine(threads: int | None, device: str | None, backend: str | None) -> Any:
    from ..core.engine import Engine

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
) -> tuple[bytes, float]:
    """One chunk where it runs (a Ray task, or this process): the source as a path or its bytes
    (a cluster's other machines cannot read this one's files), and likewise a background clip's
    bytes in ``background`` (``video.background_video`` names its suffix); returns the segment's
    bytes and the seconds it took. ``engine_spec``: the engine's (threads, device, backend)."""
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
        run_chunk(path, segment, options, video, kind, times, chunk, engine=engine)
        return segment.read_bytes(), time.perf_counter() - started


def process_chunked(
    source: str | os.PathLike,
    target: str | os.PathLike,
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
            took = _run_local(source, segs, options, seg_video, kind, times, plan, threads, device, backend, progress)
        else:
            took = _run_ray(
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
        target, kind, len(times), len(plan), warmup, audio, time.perf_counter() - started, {"chunks": took, "join": join_s}
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
) -> list[float]:
    took, frames = [], 0
    for chunk, seg in zip(plan, segs):
        t = time.perf_counter()
        run_chunk(source, seg, options, video, kind, times, chunk, engine=_engine(threads, device, backend))
        took.append(time.perf_counter() - t)
        frames += chunk.frames
        if progress is not None:
            progress(ChunkProgress(chunk.index + 1, len(plan), frames))
    return took


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
) -> list[float]:
    from ..cluster import connect, node_cpus, portable, require_ray, size_pool

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
        done = frames = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                chunk = pending.pop(ref)
                data, seconds = ray.get(ref)
                segs[chunk.index].write_bytes(data)
                took[chunk.index] = seconds
                done, frames = done + 1, frames + chunk.frames
                if progress is not None:
                    progress(ChunkProgress(done, len(plan), frames))
        return took
    finally:
        if owned:
            ray.shutdown()
