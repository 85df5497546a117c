"""Reading a clip: probe it, decode it upright (PyAV, or Pillow for animated WebP), and the
reader thread's work of putting frames and audio packets on the pipeline's first queue.

PyAV is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.engine import Matte
from ..errors import InvalidInput, MattekitError, TooLarge, ffmpeg_reason
from ..options import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from ..core.streams import Frame

log = logging.getLogger("mattekit.video")


@dataclass(frozen=True)
class VideoInfo:
    """What a clip holds, as shown (width/height after its rotation)."""

    width: int
    height: int
    fps: float
    frames: int  # 0 when the container does not say
    duration: float  # seconds, 0 when unknown
    rotation: int
    codec: str
    has_audio: bool
    audio_codec: str | None = None


@dataclass
class ReadState:
    """What the reader thread found, read by the others once it is set (see :func:`read_av`)."""

    t0: float = 0.0  # source time of the first kept frame
    frames: int = 0
    complete: bool = False  # the range was read to its end (not cut short by a truncated file)


# FFmpeg guesses a file's container from its bytes and would open it with any demuxer it has: a
# playlist (hls, dash) or a concat list then opens the files and URLs it names, which an upload
# must never make the server do. Only the containers of formats.VIDEO_SUFFIXES are allowed, by
# FFmpeg's names for their demuxers ("mov" is mp4/mov/m4v/3gp, "matroska" also webm, "mpeg" is
# .mpg, "asf" .wmv; animated WebP is read by Pillow), and only plain files.
DEMUXERS = ("mov", "matroska", "avi", "gif", "mpeg", "mpegts", "mpegvideo", "ogg", "flv", "asf")
CONTAINERS = "mp4/mov, webm/mkv, avi, MPEG-TS, MPEG-PS, ogg, flv, wmv or GIF"
_OPEN_OPTIONS = {"format_whitelist": ",".join(DEMUXERS), "protocol_whitelist": "file"}


def open_input(path: str | os.PathLike[str]) -> Any:
    import av

    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"no such file: {p}")
    if p.stat().st_size == 0:
        raise InvalidInput(f"{p} is empty")
    try:
        container = av.open(str(p), "r", container_options=_OPEN_OPTIONS)
    except av.ArgumentError:  # FFmpeg's EINVAL: a container found, but not one of DEMUXERS
        raise InvalidInput(f"{p.name} is not a video in a container we read ({CONTAINERS})") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InvalidInput(
            f"{p.name} is not a video we can read (truncated, corrupt or not a video: {ffmpeg_reason(exc)})"
        ) from None
    if not container.streams.video:
        container.close()
        raise InvalidInput(f"{p.name} has no video stream")
    return container


# A clip may change its frame size at any packet (an MPEG-TS that switched from 320x240 to 4000x3000
# after 5 frames passed a first-frame check), so every frame is held to the limit. FFmpeg's own
# check (the decoder's ``max_pixels``, in ff_set_dimensions and ff_get_buffer) refuses a frame before
# allocating it: without it one ~100 KB upload can make FFmpeg allocate 16384x16384 frames, one per
# decoder thread. It pads the width to its stride alignment first, so it gets twice our limit, and
# :func:`check_frame` applies the exact limit to each decoded frame before it becomes an array.
FFMPEG_PIXEL_SLACK = 2


def bound_decoder(ctx: Any, max_pixels: int) -> None:
    """Make FFmpeg refuse, before allocating, any frame far past ``max_pixels`` (set before it opens)."""
    ctx.options = {**ctx.options, "max_pixels": str(max_pixels * FFMPEG_PIXEL_SLACK)}


def check_frame(width: int, height: int, max_pixels: int, name: str) -> None:
    """:class:`TooLarge` for a frame of more than ``max_pixels``, before it is converted to numpy."""
    if width * height > max_pixels:
        raise TooLarge(f"{name} has a {width}x{height} frame = {width * height:,} pixels; the limit is {max_pixels:,}")


def _decode_error(exc: Exception, ctx: Any, max_pixels: int, name: str, what: str, sized: bool) -> MattekitError:
    """An FFmpeg error while decoding, in our words: :class:`TooLarge` when the decoder refused a
    frame's size (it then leaves its size at the refused one, or resets a size it had, ``sized``,
    to 0x0), else :class:`InvalidInput` (a corrupt header may say 0x0 from the start)."""
    w, h = int(ctx.width or 0), int(ctx.height or 0)
    if (w * h == 0 and sized) or w * h > max_pixels:
        shown = f" ({w}x{h})" if w * h else ""
        return TooLarge(f"{name} has a frame{shown} past the limit of {max_pixels:,} pixels")
    return InvalidInput(f"{name} could not be decoded (truncated or corrupt){what}: {ffmpeg_reason(exc)}")


def frame_rate(stream: Any) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return Fraction(25)


def is_webp(path: str | os.PathLike[str]) -> bool:
    """Animated WebP: FFmpeg cannot decode it (its WebP decoder takes stills), Pillow can."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _webp_frames(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[tuple[np.ndarray, int]]:
    """(RGB or RGBA frame, start time in ms) of an animated WebP, via Pillow (every frame is the canvas's size)."""
    from PIL import Image, ImageSequence

    try:
        with Image.open(path, formats=["WEBP"]) as img:
            check_frame(img.width, img.height, max_pixels, Path(path).name)
            t = 0
            for frame in ImageSequence.Iterator(img):
                rgba = frame.convert("RGBA")
                arr = np.asarray(rgba)
                yield (arr if arr[:, :, 3].min() < 255 else np.ascontiguousarray(arr[:, :, :3])), t
                t += int(frame.info.get("duration") or 40)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidInput(f"{Path(path).name} could not be decoded (truncated or corrupt): {exc}") from None


def _probe_webp(path: str | os.PathLike[str], max_pixels: int) -> VideoInfo:
    from PIL import Image

    try:
        with Image.open(path, formats=["WEBP"]) as img:
            check_frame(img.width, img.height, max_pixels, Path(path).name)
            n = img.n_frames  # WebP's comes from libwebp's demuxer, which has read the chunks: no walk
            total_ms = 0
            for i in range(n):
                img.seek(i)
                total_ms += int(img.info.get("duration") or 40)
            w, h = img.size
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidInput(f"{Path(path).name} is not a video we can read: {exc}") from None
    duration = total_ms / 1000.0
    return VideoInfo(w, h, n / duration if duration else 25.0, n, duration, 0, "webp", False)


def probe(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> VideoInfo:
    """Size (upright), frame rate, frames, duration and audio of a clip; decodes one frame.

    Raises :class:`TooLarge` when the header or the first frame has more than ``max_pixels``
    (FFmpeg is told to refuse such a frame before allocating it).
    """
    import av

    name = Path(path).name
    if Path(path).is_file() and is_webp(path):
        return _probe_webp(path, max_pixels)
    container = open_input(path)
    try:
        vs = container.streams.video[0]
        check_frame(vs.codec_context.width, vs.codec_context.height, max_pixels, name)  # the header's
        sized = vs.codec_context.width * vs.codec_context.height > 0
        bound_decoder(vs.codec_context, max_pixels)
        rotation = 0
        try:
            for frame in container.decode(vs):
                check_frame(frame.width, frame.height, max_pixels, name)
                rotation = int(getattr(frame, "rotation", 0) or 0) % 360
                break
        except av.FFmpegError as exc:
            raise _decode_error(exc, vs.codec_context, max_pixels, name, "", sized) from None
        w, h = vs.codec_context.width, vs.codec_context.height
        if rotation in (90, 270):
            w, h = h, w
        fps = float(frame_rate(vs))
        duration = 0.0
        if vs.duration is not None and vs.time_base:
            duration = float(vs.duration * vs.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        frames = int(vs.frames or 0) or (int(round(duration * fps)) if duration else 0)
        aud = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            w,
            h,
            fps,
            frames,
            duration,
            rotation,
            vs.codec_context.name,
            aud is not None,
            aud.codec_context.name if aud is not None else None,
        )
    finally:
        container.close()


def read_frames(
    path: str | os.PathLike[str], limit: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[np.ndarray]:
    """Decode a clip upright, keeping its alpha: HxWx4 RGBA when it has one, else HxWx3 RGB.

    FFmpeg's own VP9 decoder drops the alpha plane (it travels in Matroska side data), so VP9 is
    decoded with libvpx, which keeps it. A frame of more than ``max_pixels`` raises :class:`TooLarge`.
    """
    import av

    name = Path(path).name
    if Path(path).is_file() and is_webp(path):
        for n, (arr, _) in enumerate(_webp_frames(path, max_pixels)):
            if limit is not None and n >= limit:
                return
            yield arr
        return
    container = open_input(path)
    try:
        vs = container.streams.video[0]
        ctx = vs.codec_context
        sized = ctx.width * ctx.height > 0
        if ctx.name == "vp9":
            ctx = av.CodecContext.create("libvpx-vp9", "r")
            bound_decoder(ctx, max_pixels)
            frames = (f for packet in container.demux(vs) for f in ctx.decode(packet))
        else:
            bound_decoder(ctx, max_pixels)
            frames = container.decode(vs)
        n = 0
        try:
            for frame in frames:
                if limit is not None and n >= limit:
                    return
                check_frame(frame.width, frame.height, max_pixels, name)
                fmt = "rgba" if _has_alpha(frame.format) else "rgb24"
                yield upright(frame.to_ndarray(format=fmt), int(getattr(frame, "rotation", 0) or 0))
                n += 1
        except av.FFmpegError as exc:
            raise _decode_error(exc, ctx, max_pixels, name, f" after {n} frames", sized or n > 0) from None
    finally:
        container.close()


def _has_alpha(fmt: Any) -> bool:
    # FFmpeg's pixel formats with alpha have 4 components, or 2 for grey + alpha ("ya8").
    n = len(fmt.components)
    return n == 4 or (n == 2 and not fmt.is_rgb and fmt.name.startswith("ya"))


@dataclass
class VideoItem:
    rgb: np.ndarray
    pts: int  # in the output time base, 0 at the first kept frame
    matte: Matte | None = None
    warm: bool = False  # a chunk's warm-up frame: through the model for its state, never written
    frame: Frame | None = None  # the model's work on it between two stages (see pipeline.py)


@dataclass
class AudioItem:
    packet: Any


END = object()  # the last item on a queue


class Stop(Exception):
    """Another stage failed or the work was cancelled: unwind quietly."""


def put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise Stop()
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def get(q: queue.Queue[Any], stop: threading.Event) -> Any:
    while True:
        if stop.is_set():
            raise Stop()
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue


def upright(arr: np.ndarray, rotation: int) -> np.ndarray:
    """Pixels as shown: PyAV hands frames as stored, with the display rotation beside them."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(arr, k=k)) if k else arr


@dataclass(frozen=True)
class Part:
    """Where one chunk of a longer run (video/chunks/) sits in it, for :func:`~.pipeline.process_video`.

    ``warm_from``: the source time (s) from which frames go through the model, up to the chunk's
    start, to warm RVM's recurrent state (not written); ``origin``: the source time the run's
    timestamps count from (its first frame), so joined chunks carry a one-piece run's timestamps;
    ``first``: the chunk's first frame's index in the run (where a background clip has got to).
    """

    warm_from: float
    origin: float
    first: int


@dataclass
class Range:
    start: float
    end: float | None
    max_frames: int | None
    # A chunk of a longer run (video/chunks/): the frames from here to ``start`` go through the
    # model first, to warm RVM's recurrent state, and are not written.
    warm_from: float | None = None
    # ... and its frames are stamped from this source time (the whole run's start), not from its own
    # first frame, so the joined segments carry the same timestamps a one-piece run writes.
    origin: float | None = None


def read_av(
    container: Any,
    rng: Range,
    audio: bool,
    out: queue.Queue[Any],
    stop: threading.Event,
    name: str,
    state: ReadState,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> None:
    """Demux and decode; put upright RGB frames and audio packets on ``out`` in demux order.

    ``state`` gets the first frame's source time before that frame is queued (the writer shifts
    audio by it), and the count and whether the range was read to its end once done. A frame of
    more than ``max_pixels`` raises :class:`TooLarge` before it is converted.
    """
    import av

    vs = container.streams.video[0]
    vs.thread_type = "AUTO"  # frame threads in FFmpeg's decoder: no GIL, free speed
    sized = vs.codec_context.width * vs.codec_context.height > 0
    bound_decoder(vs.codec_context, max_pixels)
    aus = container.streams.audio[0] if (audio and container.streams.audio) else None
    tb = vs.time_base or Fraction(1, 90000)
    rate = frame_rate(vs)
    warm_from = rng.start if rng.warm_from is None else min(rng.warm_from, rng.start)
    if warm_from > 0:
        try:  # to the keyframe at or before the first frame wanted; decoding goes on from there
            container.seek(int(warm_from / tb), stream=vs, backward=True, any_frame=False)
        except av.FFmpegError:
            log.debug("seek failed; decoding from the start")
    streams = [vs] + ([aus] if aus is not None else [])
    first_pts: int | None = None
    count = 0
    decoded_any = False
    t0_sec = rng.start
    try:
        for packet in container.demux(*streams):
            if stop.is_set():
                raise Stop()
            if packet.stream.type == "audio":
                if packet.dts is None or packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base)
                if t < t0_sec - 1e-6 or (rng.end is not None and t >= rng.end):
                    continue
                put(out, AudioItem(packet), stop)
                continue
            for frame in packet.decode():
                decoded_any = True
                check_frame(frame.width, frame.height, max_pixels, name)  # before the range: every frame
                pts = frame.pts
                sec = float(pts * tb) if pts is not None else count / float(rate)
                if sec < rng.start - 0.5 / float(rate):
                    if first_pts is None and sec >= warm_from - 0.5 / float(rate):
                        rgb = upright(frame.to_ndarray(format="rgb24"), int(getattr(frame, "rotation", 0) or 0))
                        put(out, VideoItem(rgb, 0, warm=True), stop)
                    continue
                if rng.end is not None and sec >= rng.end - 1e-9:
                    state.frames, state.complete = count, True
                    return
                if first_pts is None:
                    first_pts = pts if pts is not None else 0
                    t0_sec = sec
                    state.t0 = sec  # before the first frame is queued: the writer shifts audio by it
                rgb = upright(frame.to_ndarray(format="rgb24"), int(getattr(frame, "rotation", 0) or 0))
                base = first_pts if rng.origin is None else int(round(rng.origin / tb))
                out_pts = (pts - base) if pts is not None else int(round(count / float(rate) / tb))
                put(out, VideoItem(rgb, out_pts), stop)
                count += 1
                if rng.max_frames is not None and count >= rng.max_frames:
                    state.frames, state.complete = count, True
                    return
    except av.FFmpegError as exc:
        raise _decode_error(exc, vs.codec_context, max_pixels, name, f" after {count} frames", sized or decoded_any) from None
    if not decoded_any:
        raise InvalidInput(f"{name} has no frames we can decode (truncated or corrupt)")
    state.frames, state.complete = count, False


def read_webp(
    path: str | os.PathLike[str],
    rng: Range,
    out: queue.Queue[Any],
    stop: threading.Event,
    state: ReadState,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> None:
    """The animated-WebP twin of :func:`read_av` (no audio; times in ms)."""
    count = 0
    first: int | None = None
    for arr, ms in _webp_frames(path, max_pixels):
        if stop.is_set():
            raise Stop()
        sec = ms / 1000.0
        if sec < rng.start - 1e-9:
            continue
        if rng.end is not None and sec >= rng.end - 1e-9:
            state.frames, state.complete = count, True
            return
        if first is None:
            first = ms
            state.t0 = sec
        put(out, VideoItem(np.ascontiguousarray(arr[:, :, :3]), ms - first), stop)
        count += 1
        if rng.max_frames is not None and count >= rng.max_frames:
            state.frames, state.complete = count, True
            return
    if count == 0 and first is None and rng.start == 0:
        raise InvalidInput(f"{Path(path).name} has no frames we can decode")
    state.frames, state.complete = count, True
