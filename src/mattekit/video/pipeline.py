"""The pipeline: read, matte each frame carrying RVM's recurrent state, write.

Threads with small bounded queues between them, so memory does not grow with the clip and
decoding, inference and encoding overlap (PyAV and ONNX Runtime release the GIL):

    reader (demux + decode + rotate)  →  model stages  →  writer (compose + encode + mux)

The model's work on a frame comes as stages (:meth:`mattekit.presets.PresetStream.stages`; on
the CPU the network's three parts, :class:`mattekit.core.streams.StagedStream`), one thread each,
so that frames overlap there too.

Audio packets travel through the same queues in demux order, so the writer muxes them
interleaved with the video they belong to. The result is written to a hidden temp name beside
the target and renamed only when complete; on any error, cancel or Ctrl-C it is deleted.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .. import presets
from ..core import route
from ..core.engine import Engine, get_engine
from ..core.streams import Frame
from ..deadline import Deadline
from ..deadline import check as check_deadline
from ..errors import Cancelled, InvalidInput, InvalidOption, MattekitError, TooLarge, ffmpeg_reason
from ..files import delete_path, move_into_place, temp_path
from ..options import Options
from .backgrounds import Backgrounds, compose_frame
from .outputs import OUTPUTS, VideoOptions, check_not_an_input, resolve_output
from .reader import (
    END,
    AudioItem,
    Part,
    Range,
    ReadState,
    Stop,
    VideoInfo,
    VideoItem,
    frame_rate,
    get,
    is_webp,
    open_input,
    probe,
    put,
    read_av,
    read_webp,
)
from .writers import is_frame_file

QUEUE_FRAMES = 4  # frames in flight per queue: enough to overlap stages, small for memory
# Between two model stages a frame also carries the network's tensors (~20 MB at 640x360), and
# the stages take about as long as each other, so a short queue is enough to keep them busy.
STAGE_QUEUE_FRAMES = 2


@dataclass(frozen=True)
class Progress:
    done: int
    total: int  # best estimate; 0 when unknown
    fps: float  # frames per second so far


# What every face says of a clip whose result is empty (VideoResult.empty): the file is written,
# but it must not pass for a cut-out.
NO_PERSON = "no person found in any frame (video is matted for people only): the result holds no subject"


@dataclass
class VideoResult:
    path: Path
    output: str
    frames: int
    width: int
    height: int
    fps: float
    audio: bool
    seconds: float
    # seconds: "matte" summed over the model's stages (they overlap, so it may exceed "total"),
    # "write" compose + encode, "total" the whole run
    timings: dict[str, float] = field(default_factory=dict)
    # No written frame's matte holds a subject (each one under route.EMPTY_SHARE kept, or half
    # opaque, as a still's "empty"): RVM found no person, and the result is (almost) all background.
    empty: bool = False


@dataclass
class _Run:
    """All the threads share. Each field has one writer thread (the reader sets ``read``,
    the writer ``written`` and ``write_s``, stage i's thread ``stage_s[i]``); any may ``fail``, and the
    caller's thread reads them all once the others have stopped."""

    read: ReadState = field(default_factory=ReadState)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    written: int = 0
    subject_seen: bool = False  # a written frame's matte held a subject (checked until one does)
    stage_s: list[float] = field(default_factory=list)  # seconds in each model stage (its thread's)
    write_s: float = 0.0  # seconds in compose + encode
    started: float = field(default_factory=time.perf_counter)

    def fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()


def process_video(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    options: Options | None = None,
    video: VideoOptions | None = None,
    *,
    engine: Engine | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    overwrite: bool = True,
    deadline: Deadline | None = None,
    part: Part | None = None,
) -> VideoResult:
    """Remove the background from every frame of ``source`` and write ``target``.

    Args:
        source: a video file PyAV can read (MP4, MOV, WebM, MKV, AVI, animated GIF/WebP, ...).
        target: where to write; its extension picks the output unless ``video.output`` is set.
        options: what to do to each frame (background, mask, ratio, preset, decontaminate).
        video: output type, frame range, limits, audio; see :class:`VideoOptions`.
        progress: called after each written frame with frames done, total and fps (from the
            writer thread: keep it quick and thread-safe).
        cancel: polled between frames; when it returns True the work stops with
            :class:`~mattekit.errors.Cancelled` and nothing is left at ``target``.
        deadline: checked between frames, likewise (:class:`~mattekit.errors.DeadlineExceeded`).
        part: this run is one chunk of a longer one (:mod:`.chunks`): where it sits, see
            :class:`~.reader.Part` (its warm-up frames are matted and not written).

    Raises:
        InvalidInput (unreadable, corrupt or truncated clip), InvalidOption, TooLarge, Cancelled.
    """
    options = options or Options()
    if options.subject == "general":
        # The general model sees one photo at a time: frame by frame it would flicker, and at
        # ~1 s a frame it could not keep up. RVM's recurrent state is what makes video steady.
        raise InvalidOption("video is matted for people only (RVM): use subject auto or person for a clip")
    vopts = video or VideoOptions()
    target = Path(target)
    kind = resolve_output(target, options, vopts)
    spec = OUTPUTS[kind]
    check_not_an_input(source, target, vopts.background_video)
    if target.exists() and not overwrite:
        raise InvalidOption(f"{target} exists")
    if target.is_dir() and (not spec.folder or any(not is_frame_file(p) for p in target.iterdir())):
        # Replacing a folder means deleting it: only ever one that holds nothing but our frames.
        raise InvalidOption(f"{target} is a folder with other files in it; write the frames to a new or empty folder")
    engine = engine or get_engine()
    recipe = presets.video_recipe(options.preset)
    clean = (recipe.decontaminate if options.decontaminate is None else options.decontaminate) and spec.frame != "alpha"

    info = probe(source, options.max_pixels)
    if vopts.background_video is not None:  # held to the same limit as the clip, before any work
        probe(vopts.background_video, options.max_pixels)
    fps = info.fps
    span_end = vopts.end if vopts.end is not None else (info.duration or None)
    span = (span_end - vopts.start) if span_end is not None else None
    total = int(round(span * fps)) if span is not None else info.frames
    if vopts.max_frames is not None:
        total = min(total, vopts.max_frames) if total else vopts.max_frames
    if vopts.max_duration is not None and span is not None:
        limited = min(span, (vopts.max_frames / fps) if vopts.max_frames else span)
        if limited > vopts.max_duration + 0.5 / fps:
            raise TooLarge(f"the clip is {limited:.1f} s long; the limit is {vopts.max_duration:g} s")
    if info.width * info.height > options.max_pixels:
        raise TooLarge(f"frames are {info.width}x{info.height}; the limit is {options.max_pixels:,} pixels")
    presets.check_lowres(options.preset, options.ratio, info.height, info.width, options.max_lowres_pixels, video=True)

    backgrounds = (
        Backgrounds(options, vopts, skip=part.first if part else 0) if spec.needs_background else None
    )  # a bad picture fails here
    stages = presets.stream(engine, options.preset, options.ratio, foreground=clean).stages()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    webp = is_webp(source)
    if webp:
        container, in_audio, tb = None, None, Fraction(1, 1000)
        rate = Fraction(fps).limit_denominator(1001)
    else:
        container = open_input(source)
        vs = container.streams.video[0]
        in_audio = container.streams.audio[0] if (vopts.audio and spec.audio and container.streams.audio) else None
        tb, rate = vs.time_base or Fraction(1, 90000), frame_rate(vs)
    try:
        writer = spec.make_writer(tmp, in_audio, rate, tb)
    except BaseException:
        delete_path(tmp)
        if container is not None:
            container.close()
        raise

    run = _Run(stage_s=[0.0] * len(stages))
    # queues[i] feeds stage i; the last one feeds the writer
    queues: list[queue.Queue[Any]] = [
        queue.Queue(QUEUE_FRAMES if i in (0, len(stages)) else STAGE_QUEUE_FRAMES) for i in range(len(stages) + 1)
    ]
    decoded_q, matted_q = queues[0], queues[-1]

    def reader() -> None:
        try:
            rng = Range(vopts.start, vopts.end, vopts.max_frames, *((part.warm_from, part.origin) if part else ()))
            if container is None:
                read_webp(source, rng, decoded_q, run.stop, run.read, options.max_pixels)
            else:
                read_av(
                    container, rng, in_audio is not None, decoded_q, run.stop, Path(source).name, run.read, options.max_pixels
                )
            put(decoded_q, END, run.stop)
        except Stop:
            pass
        except BaseException as exc:  # handed to the caller's thread, which raises it
            run.fail(exc)

    def stage(index: int, item: Any) -> None:
        """Stage ``index`` on a video item (audio passes by): the first takes the frame, the last
        leaves its matte."""
        if isinstance(item, VideoItem):
            t = time.perf_counter()
            frame = stages[index](item.frame or Frame(item.rgb))
            run.stage_s[index] += time.perf_counter() - t
            if index == len(stages) - 1:
                item.matte, item.frame = frame.matte, None
            else:
                item.frame = frame

    def stage_loop(index: int) -> None:
        try:
            while True:
                item = get(queues[index], run.stop)
                if item is not END:
                    stage(index, item)
                put(queues[index + 1], item, run.stop)
                if item is END:
                    return
        except Stop:
            pass
        except BaseException as exc:
            run.fail(exc)

    def write_loop() -> None:
        try:
            while True:
                item = get(matted_q, run.stop)
                if item is END:
                    writer.close()
                    return
                if isinstance(item, AudioItem):
                    writer.audio(item.packet)
                    continue
                if item.warm:  # it has warmed the model's state; it is before the range
                    continue
                if run.written == 0:
                    writer.start_sec = run.read.t0
                t = time.perf_counter()
                if not run.subject_seen:
                    run.subject_seen = holds_subject(item.matte.alpha)
                layer = backgrounds.layer(item.rgb) if backgrounds is not None else None
                writer.write(compose_frame(kind, item.rgb, item.matte, layer, clean), item.pts)
                run.write_s += time.perf_counter() - t
                run.written += 1
                if progress is not None:
                    elapsed = time.perf_counter() - run.started
                    progress(Progress(run.written, max(total, run.written), run.written / elapsed if elapsed > 0 else 0.0))
        except Stop:
            pass
        except BaseException as exc:
            run.fail(_encoding_error(exc, kind))

    threads = [
        threading.Thread(target=reader, name="mattekit-video-read", daemon=True),
        threading.Thread(target=write_loop, name="mattekit-video-write", daemon=True),
        *(
            threading.Thread(target=stage_loop, args=(i,), name=f"mattekit-video-stage{i}", daemon=True)
            for i in range(1, len(stages))
        ),
    ]
    ok = False
    try:
        for th in threads:
            th.start()
        while True:
            if cancel is not None and cancel():
                raise Cancelled("the video was cancelled")
            check_deadline(deadline)
            try:
                item = get(decoded_q, run.stop)
            except Stop:
                break
            if item is not END:
                stage(0, item)  # the first stage runs here, between the cancel and deadline checks
            put(queues[1], item, run.stop)
            if item is END:
                break
        while threads[1].is_alive():  # the writer finishes (or fails); keep honouring cancel
            threads[1].join(timeout=0.1)
            if cancel is not None and cancel():
                raise Cancelled("the video was cancelled")
            check_deadline(deadline)
        if run.errors:
            raise run.errors[0]
        if run.written == 0:
            raise InvalidInput(f"{Path(source).name}: no frames in the asked range")
        _check_complete(run.read, info, vopts, run.written, Path(source).name)
        move_into_place(tmp, target)
        ok = True
    except Stop:
        raise run.errors[0] if run.errors else Cancelled("the video was cancelled") from None
    finally:
        run.stop.set()
        for th in threads:
            th.join(timeout=30)
        if not ok:
            writer.abort()
            delete_path(tmp)
        if container is not None:
            container.close()
        if backgrounds is not None:
            backgrounds.close()
    seconds = time.perf_counter() - run.started
    size = writer.size or (info.width, info.height)
    timings = {"matte": sum(run.stage_s), "write": run.write_s, "total": seconds}
    return VideoResult(
        target, kind, run.written, size[0], size[1], fps, writer.audio_written > 0, seconds, timings, not run.subject_seen
    )


def holds_subject(alpha: np.ndarray) -> bool:
    """Whether a frame's matte (float HxW) holds a subject: not empty by the rule stills use
    (:func:`mattekit.core.route.is_empty`). Judged on every ``step``-th pixel of each row and
    column, about the pass's size: the shares hardly move, and a 4K frame costs what 720p does."""
    step = max(1, max(alpha.shape[:2]) // route.PASS_PX)
    sample = np.ascontiguousarray(alpha[::step, ::step])
    return not route.is_empty(sample, route.kept_share(sample))


def _encoding_error(exc: BaseException, kind: str) -> BaseException:
    """FFmpeg's own errors from the writer, said in our words (the reader's are InvalidInput)."""
    import av

    if isinstance(exc, av.FFmpegError):
        return MattekitError(f"writing the {kind} output failed: {ffmpeg_reason(exc)}")
    return exc


def write_frames(
    frames: Iterable[np.ndarray],
    target: str | os.PathLike[str],
    *,
    codec: str = "libx264",
    rate: int | Fraction = 25,
    fmt: str | None = None,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    rotation: int = 0,
) -> Path:
    """Encode RGB uint8 frames as a clip (no matting): test clips, upscaled bench clips.

    ``rotation`` sets the display rotation a phone would, so the stored pixels should be turned
    the other way.
    """
    import av

    target = Path(target)
    with av.open(str(target), "w", format=fmt) as out:
        stream = None
        for i, rgb in enumerate(frames):
            if stream is None:
                stream = out.add_stream(codec, rate=rate, options=dict(options or {}))
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = pix_fmt
                if rotation:
                    stream.set_display_rotation(rotation)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode(None):
                out.mux(packet)
    return target


def _check_complete(read: ReadState, info: VideoInfo, vopts: VideoOptions, written: int, name: str) -> None:
    """A clip that ends well before its header says it should is truncated: say so, write nothing."""
    if read.complete or not info.frames:
        return
    expected = info.frames
    if vopts.start > 0 and info.fps:
        expected -= int(vopts.start * info.fps)
    # A frame or two of slack: headers round, and B-frame tails vary by muxer.
    if written < expected - max(2, int(0.02 * expected)):
        raise InvalidInput(f"{name} is truncated: it ends after {written} of {expected} frames")
