"""Video: read any clip PyAV decodes, matte each frame carrying RVM's recurrent state, write.

Three threads with small bounded queues between them, so memory does not grow with the clip
and decoding, inference and encoding overlap (PyAV and ONNX Runtime release the GIL):

    reader (demux + decode + rotate)  →  inference (engine stream)  →  writer (compose + encode + mux)

Audio packets travel through the same queues in demux order, so the writer muxes them
interleaved with the video they belong to. The result is written to a hidden temp name beside
the target and renamed only when complete; on any error, cancel or Ctrl-C it is deleted.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Optional, Union

import numpy as np

from . import imaging, presets
from .deadline import Deadline
from .deadline import check as check_deadline
from .engine import Engine, Matte, get_engine
from .errors import Cancelled, InvalidInput, InvalidOption, MattekitError, TooLarge
from .files import temp_path
from .formats import VIDEO_SUFFIXES  # noqa: F401  (kept importable from here)
from .imaging import alpha_to_u8
from .options import BackgroundImage, Blur, Options

log = logging.getLogger("mattekit.video")

OutputType = Literal["webm", "mov", "png-zip", "png-dir", "matte", "composite"]
OUTPUT_TYPES: tuple[str, ...] = ("webm", "mov", "png-zip", "png-dir", "matte", "composite")

# Measured on this project's machines (KNOWN_GROUND.md): realtime/cpu-used 8 is ~6x faster than
# libvpx's defaults; prores_aw is ~5x faster than prores_ks for the same ap4h output.
VP9_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "28", "b": "0"}
PRORES_OPTIONS = {"profile": "4"}
X264_OPTIONS = {"preset": "veryfast", "crf": "18"}

QUEUE_FRAMES = 4  # frames in flight per queue: enough to overlap stages, small for memory


@dataclass(frozen=True)
class VideoOptions:
    """How to write a video (what to do to each frame is :class:`~mattekit.Options`).

    Attributes:
        output: ``webm`` (VP9 with alpha) | ``mov`` (ProRes 4444 with alpha) | ``png-zip`` |
            ``png-dir`` (RGBA PNG frames) | ``matte`` (greyscale H.264 MP4) | ``composite``
            (H.264 MP4 over the background). ``None`` infers it from the target's name.
        start, end: the time range to process, in seconds of the source (end exclusive).
        max_frames: process at most this many frames (after ``start``).
        max_duration: refuse clips (after the range) longer than this many seconds.
        audio: keep the source's audio (copied, or re-encoded where the container needs it).
        background_video: a clip to put behind the subject (looped or cut to length); overrides
            ``Options.background`` for ``composite``.
    """

    output: Optional[OutputType] = None
    start: float = 0.0
    end: Optional[float] = None
    max_frames: Optional[int] = None
    max_duration: Optional[float] = None
    audio: bool = True
    background_video: Optional[Union[str, os.PathLike]] = None

    def __post_init__(self) -> None:
        if self.output is not None and self.output not in OUTPUT_TYPES:
            raise InvalidOption(f"output type must be one of {', '.join(OUTPUT_TYPES)}, not {self.output!r}")
        if self.start < 0:
            raise InvalidOption("start must be 0 or more seconds")
        if self.end is not None and self.end <= self.start:
            raise InvalidOption("end must be after start")
        if self.max_frames is not None and self.max_frames < 1:
            raise InvalidOption("max_frames must be at least 1")
        if self.max_duration is not None and self.max_duration <= 0:
            raise InvalidOption("max_duration must be positive")
        if self.background_video is not None and not Path(self.background_video).is_file():
            raise InvalidOption(f"background video not found: {self.background_video}")


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
    audio_codec: Optional[str] = None


@dataclass(frozen=True)
class Progress:
    done: int
    total: int  # best estimate; 0 when unknown
    fps: float  # frames per second so far


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
    timings: dict[str, float] = field(default_factory=dict)


# -- choosing the output ------------------------------------------------------------------------
def infer_output(target: Union[str, os.PathLike], options: Options, requested: Optional[str] = None) -> str:
    """The output type for ``target``: asked for, or from its extension (a folder → PNG frames)."""
    text = str(target)
    suffix = Path(text).suffix.lower()
    if requested:
        kind = requested
    elif suffix == ".webm":
        kind = "webm"
    elif suffix == ".mov":
        kind = "mov"
    elif suffix == ".zip":
        kind = "png-zip"
    elif suffix in (".mp4", ".m4v", ".mkv"):
        kind = "matte" if options.mask else "composite"
    elif suffix == "" or text.endswith(("/", os.sep)) or Path(text).is_dir():
        kind = "png-dir"
    else:
        raise InvalidOption(
            f"cannot tell the output type from {Path(text).name!r}: use .webm or .mov (transparent), "
            ".zip or a folder (PNG frames), .mp4 (with --bg, or --mask), or --output-type"
        )
    if kind not in OUTPUT_TYPES:
        raise InvalidOption(f"output type must be one of {', '.join(OUTPUT_TYPES)}, not {kind!r}")
    return kind


def resolve_output(target: Union[str, os.PathLike], options: Options, vopts: VideoOptions) -> str:
    """The output type for ``target``, after checking the options make sense for it."""
    kind = infer_output(target, options, vopts.output)
    if options.crop:
        raise InvalidOption("crop is for stills: a video keeps one frame size")
    if kind == "composite" and options.background is None and vopts.background_video is None:
        raise InvalidOption(
            "an MP4 composite needs a background (e.g. --bg white, blur, an image or a video); "
            "for transparency write .webm or .mov, for the matte use --mask"
        )
    return kind


# -- reading ----------------------------------------------------------------------------------
def _open_input(path: Union[str, os.PathLike]):
    import av

    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"no such file: {p}")
    if p.stat().st_size == 0:
        raise InvalidInput(f"{p} is empty")
    try:
        container = av.open(str(p), "r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InvalidInput(f"{p.name} is not a video we can read (truncated, corrupt or not a video): {exc}") from None
    if not container.streams.video:
        container.close()
        raise InvalidInput(f"{p.name} has no video stream")
    return container


def _rate(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return Fraction(25)


def _is_webp(path: Union[str, os.PathLike]) -> bool:
    """Animated WebP: FFmpeg cannot decode it (its WebP decoder takes stills), Pillow can."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _webp_frames(path: Union[str, os.PathLike]) -> Iterator[tuple[np.ndarray, int]]:
    """(RGB or RGBA frame, start time in ms) of an animated WebP, via Pillow."""
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as img:
            t = 0
            for frame in ImageSequence.Iterator(img):
                rgba = frame.convert("RGBA")
                arr = np.asarray(rgba)
                yield (arr if arr[:, :, 3].min() < 255 else np.ascontiguousarray(arr[:, :, :3])), t
                t += int(frame.info.get("duration") or 40)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidInput(f"{Path(path).name} could not be decoded (truncated or corrupt): {exc}") from None


def _probe_webp(path: Union[str, os.PathLike]) -> VideoInfo:
    from PIL import Image

    try:
        with Image.open(path) as img:
            n = getattr(img, "n_frames", 1)
            total_ms = 0
            for i in range(n):
                img.seek(i)
                total_ms += int(img.info.get("duration") or 40)
            w, h = img.size
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidInput(f"{Path(path).name} is not a video we can read: {exc}") from None
    duration = total_ms / 1000.0
    return VideoInfo(w, h, n / duration if duration else 25.0, n, duration, 0, "webp", False)


def probe(path: Union[str, os.PathLike]) -> VideoInfo:
    """Size (upright), frame rate, frames, duration and audio of a clip; decodes one frame."""
    import av

    if Path(path).is_file() and _is_webp(path):
        return _probe_webp(path)
    container = _open_input(path)
    try:
        vs = container.streams.video[0]
        rotation = 0
        try:
            for frame in container.decode(vs):
                rotation = int(getattr(frame, "rotation", 0) or 0) % 360
                break
        except av.FFmpegError as exc:
            raise InvalidInput(f"{Path(path).name} could not be decoded: {exc}") from None
        w, h = vs.codec_context.width, vs.codec_context.height
        if rotation in (90, 270):
            w, h = h, w
        fps = float(_rate(vs))
        duration = 0.0
        if vs.duration is not None and vs.time_base:
            duration = float(vs.duration * vs.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        frames = int(vs.frames or 0) or (int(round(duration * fps)) if duration else 0)
        aud = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(w, h, fps, frames, duration, rotation, vs.codec_context.name,
                         aud is not None, aud.codec_context.name if aud is not None else None)
    finally:
        container.close()


def read_frames(path: Union[str, os.PathLike], limit: Optional[int] = None) -> Iterator[np.ndarray]:
    """Decode a clip upright, keeping its alpha: HxWx4 RGBA when it has one, else HxWx3 RGB.

    FFmpeg's own VP9 decoder drops the alpha plane (it travels in Matroska side data), so VP9 is
    decoded with libvpx, which keeps it.
    """
    import av

    if Path(path).is_file() and _is_webp(path):
        for n, (arr, _) in enumerate(_webp_frames(path)):
            if limit is not None and n >= limit:
                return
            yield arr
        return
    container = _open_input(path)
    try:
        vs = container.streams.video[0]
        if vs.codec_context.name == "vp9":
            codec = av.CodecContext.create("libvpx-vp9", "r")
            frames = (f for packet in container.demux(vs) for f in codec.decode(packet))
        else:
            frames = container.decode(vs)
        n = 0
        for frame in frames:
            if limit is not None and n >= limit:
                return
            fmt = "rgba" if _has_alpha(frame.format) else "rgb24"
            yield upright(frame.to_ndarray(format=fmt), int(getattr(frame, "rotation", 0) or 0))
            n += 1
    finally:
        container.close()


def _has_alpha(fmt) -> bool:
    # FFmpeg's pixel formats with alpha have 4 components, or 2 for grey + alpha ("ya8").
    n = len(fmt.components)
    return n == 4 or (n == 2 and not fmt.is_rgb and fmt.name.startswith("ya"))


@dataclass
class _VideoItem:
    rgb: np.ndarray
    pts: int  # in the output time base, 0 at the first kept frame
    matte: Optional[Matte] = None


@dataclass
class _AudioItem:
    packet: Any


_END = object()


class _Stop(Exception):
    """Another stage failed or the work was cancelled: unwind quietly."""


def _put(q: "queue.Queue", item: Any, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stop()
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: "queue.Queue", stop: threading.Event) -> Any:
    while True:
        if stop.is_set():
            raise _Stop()
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue


def upright(arr: np.ndarray, rotation: int) -> np.ndarray:
    """Pixels as shown: PyAV hands frames as stored, with the display rotation beside them."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(arr, k=k)) if k else arr


@dataclass
class _Range:
    start: float
    end: Optional[float]
    max_frames: Optional[int]


def _read(container, rng: _Range, audio: bool, out: "queue.Queue", stop: threading.Event, name: str, meta: dict) -> dict:
    """Demux and decode; put upright RGB frames and audio packets on ``out`` in demux order."""
    import av

    vs = container.streams.video[0]
    vs.thread_type = "AUTO"  # frame threads in FFmpeg's decoder: no GIL, free speed
    aus = container.streams.audio[0] if (audio and container.streams.audio) else None
    tb = vs.time_base or Fraction(1, 90000)
    rate = _rate(vs)
    if rng.start > 0:
        try:
            container.seek(int(rng.start / tb), stream=vs, backward=True, any_frame=False)
        except av.FFmpegError:
            log.debug("seek failed; decoding from the start")
    streams = [vs] + ([aus] if aus is not None else [])
    first_pts: Optional[int] = None
    count = 0
    decoded_any = False
    t0_sec = rng.start
    try:
        for packet in container.demux(*streams):
            if stop.is_set():
                raise _Stop()
            if packet.stream.type == "audio":
                if packet.dts is None or packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base)
                if t < t0_sec - 1e-6 or (rng.end is not None and t >= rng.end):
                    continue
                _put(out, _AudioItem(packet), stop)
                continue
            for frame in packet.decode():
                decoded_any = True
                pts = frame.pts
                sec = float(pts * tb) if pts is not None else count / float(rate)
                if sec < rng.start - 0.5 / float(rate):
                    continue
                if rng.end is not None and sec >= rng.end - 1e-9:
                    return {"frames": count, "complete": True}
                if first_pts is None:
                    first_pts = pts if pts is not None else 0
                    t0_sec = sec
                    meta["t0"] = sec  # before the first frame is queued: the writer shifts audio by it
                rgb = upright(frame.to_ndarray(format="rgb24"), int(getattr(frame, "rotation", 0) or 0))
                out_pts = (pts - first_pts) if pts is not None else int(round(count / float(rate) / tb))
                _put(out, _VideoItem(rgb, out_pts), stop)
                count += 1
                if rng.max_frames is not None and count >= rng.max_frames:
                    return {"frames": count, "complete": True}
    except av.FFmpegError as exc:
        raise InvalidInput(f"{name} could not be decoded (truncated or corrupt) after {count} frames: {exc}") from None
    if not decoded_any:
        raise InvalidInput(f"{name} has no frames we can decode (truncated or corrupt)")
    return {"frames": count, "complete": False}


def _read_webp(path: Union[str, os.PathLike], rng: _Range, out: "queue.Queue", stop: threading.Event, meta: dict) -> dict:
    """The animated-WebP twin of :func:`_read` (no audio; times in ms)."""
    count = 0
    first: Optional[int] = None
    for arr, ms in _webp_frames(path):
        if stop.is_set():
            raise _Stop()
        sec = ms / 1000.0
        if sec < rng.start - 1e-9:
            continue
        if rng.end is not None and sec >= rng.end - 1e-9:
            return {"frames": count, "complete": True}
        if first is None:
            first = ms
            meta["t0"] = sec
        _put(out, _VideoItem(np.ascontiguousarray(arr[:, :, :3]), ms - first), stop)
        count += 1
        if rng.max_frames is not None and count >= rng.max_frames:
            return {"frames": count, "complete": True}
    if count == 0 and first is None and rng.start == 0:
        raise InvalidInput(f"{Path(path).name} has no frames we can decode")
    return {"frames": count, "complete": True}


# -- backgrounds ------------------------------------------------------------------------------
class _Backgrounds:
    """The background layer for each frame: fixed (colour, image), per frame (blur) or a clip."""

    def __init__(self, options: Options, vopts: VideoOptions) -> None:
        self.bg = options.background
        self.video = vopts.background_video
        self._fixed: Optional[np.ndarray] = None
        self._frames: Optional[Iterator[np.ndarray]] = None
        if isinstance(self.bg, BackgroundImage) and not isinstance(self.bg.source, imaging.Decoded):
            self.bg = BackgroundImage(imaging.decode(self.bg.source, Options()), self.bg.fit)

    def layer(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        if self.video is not None:
            return self._next_video_frame(w, h)
        if isinstance(self.bg, Blur):
            return imaging.background_array(self.bg, rgb)
        if self._fixed is None or self._fixed.shape[:2] != (h, w):
            self._fixed = imaging.background_array(self.bg, rgb)  # type: ignore[arg-type]
        return self._fixed

    def _clip_frames(self) -> Iterator[np.ndarray]:
        while True:  # loop the clip for as long as the foreground lasts
            got = 0
            for frame in read_frames(self.video):  # type: ignore[arg-type]
                got += 1
                yield frame[:, :, :3]
            if got == 0:
                raise InvalidInput(f"background video {self.video} has no frames")

    def _next_video_frame(self, w: int, h: int) -> np.ndarray:
        import cv2

        if self._frames is None:
            self._frames = self._clip_frames()
        pic = next(self._frames)
        ph, pw = pic.shape[:2]
        scale = max(w / pw, h / ph)  # cover, then centre-crop: like a 'fill' background image
        nw, nh = max(w, round(pw * scale)), max(h, round(ph * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        pic = cv2.resize(pic, (nw, nh), interpolation=interp)
        x, y = (nw - w) // 2, (nh - h) // 2
        return pic[y:y + h, x:x + w]

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()


def compose_frame(
    kind: str, rgb: np.ndarray, matte: Matte, background: Optional[np.ndarray], clean: bool
) -> np.ndarray:
    """One output frame: HxW alpha (matte), HxWx4 RGBA (transparent) or HxWx3 RGB (composite)."""
    a8 = alpha_to_u8(matte.alpha)
    if kind == "matte":
        return a8
    colours = imaging.decontaminate(rgb, matte.alpha, matte.foreground, matte.foreground_boxes) if clean else rgb
    if kind == "composite":
        assert background is not None
        return imaging.over(colours, matte.alpha, background)
    return imaging.with_alpha(colours, a8)


# -- writing ----------------------------------------------------------------------------------
# Audio codecs each container takes as they are; anything else is re-encoded.
_AUDIO_COPY = {
    "webm": {"opus", "vorbis"},
    "mov": {"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_s16be", "pcm_f32le", "ac3"},
    "mp4": {"aac", "mp3", "opus", "alac", "ac3", "flac"},
}
_AUDIO_ENCODE = {"webm": ("libopus", 48000), "mov": ("aac", None), "mp4": ("aac", None)}


class _AvWriter:
    """Video (and audio) into a container; opened on the first frame, when its size is known."""

    def __init__(self, tmp: Path, kind: str, in_audio, rate: Fraction, tb: Fraction) -> None:
        self.tmp = tmp
        self.kind = kind
        self.fmt = {"webm": "webm", "mov": "mov"}.get(kind, "mp4")
        self.in_audio = in_audio
        self.rate = rate
        self.tb = tb
        self.container = None
        self.vs = None
        self.aus = None
        self.pending_audio: list = []
        self.audio_written = 0
        self.size: Optional[tuple[int, int]] = None
        self._resampler = None
        self._copy_audio = False
        self.start_sec = 0.0  # source time of the first frame written

    def _open(self, w: int, h: int) -> None:
        import av

        self.container = av.open(str(self.tmp), "w", format=self.fmt)
        if self.kind == "webm":
            vs = self.container.add_stream("libvpx-vp9", rate=self.rate, options=dict(VP9_OPTIONS))
            vs.pix_fmt = "yuva420p"
        elif self.kind == "mov":
            vs = self.container.add_stream("prores_aw", rate=self.rate, options=dict(PRORES_OPTIONS))
            vs.pix_fmt = "yuva444p10le"
        else:
            vs = self.container.add_stream("libx264", rate=self.rate, options=dict(X264_OPTIONS))
            vs.pix_fmt = "yuv420p"
        vs.width, vs.height = w, h
        vs.codec_context.time_base = self.tb
        vs.time_base = self.tb
        vs.thread_type = "AUTO"
        self.vs = vs
        self.size = (w, h)
        if self.in_audio is not None:
            codec = self.in_audio.codec_context.name
            if codec in _AUDIO_COPY[self.fmt]:
                self.aus = self.container.add_stream_from_template(self.in_audio)
                self._copy_audio = True
            else:
                name, rate = _AUDIO_ENCODE[self.fmt]
                rate = rate or self.in_audio.codec_context.sample_rate or 48000
                layout = self.in_audio.codec_context.layout.name if self.in_audio.codec_context.layout else "stereo"
                if layout not in ("mono", "stereo"):
                    layout = "stereo"
                self.aus = self.container.add_stream(name, rate=rate, layout=layout)
                fmt = "flt" if name == "libopus" else "fltp"
                self._resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        for packet in self.pending_audio:
            self._audio(packet)
        self.pending_audio.clear()

    def write(self, arr: np.ndarray, pts: int) -> None:
        import av

        h, w = arr.shape[:2]
        if self.kind in ("matte", "composite", "mov"):
            w, h = w - w % 2, h - h % 2  # H.264 4:2:0 and ProRes need even sides: drop the odd last line
        if self.container is None:
            self._open(w, h)
        assert self.size is not None
        if arr.shape[1] != self.size[0] or arr.shape[0] != self.size[1]:
            arr = _fit(arr, self.size)
        fmt = {2: "gray", 3: "rgb24", 4: "rgba"}[arr.ndim if arr.ndim == 2 else arr.shape[2]]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt)
        frame.pts = pts
        frame.time_base = self.tb
        for packet in self.vs.encode(frame):
            self.container.mux(packet)

    def audio(self, packet) -> None:
        if self.container is None:
            self.pending_audio.append(packet)  # before the first frame: wait for the container
        else:
            self._audio(packet)

    def _audio(self, packet) -> None:
        if self.aus is None:
            return
        if self._copy_audio:
            # The picture starts at 0 in the output; so must the sound it belongs with.
            shift = int(round(self.start_sec / packet.time_base)) if packet.time_base else 0
            if packet.pts - shift < 0:
                return
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = self.aus
            self.container.mux(packet)
            self.audio_written += 1
            return
        for frame in packet.decode():
            frame.pts = None
            for out in self._resampler.resample(frame):
                for p in self.aus.encode(out):
                    self.container.mux(p)
                    self.audio_written += 1

    def finish(self) -> None:
        if self.container is None:
            return
        for packet in self.vs.encode(None):
            self.container.mux(packet)
        if self.aus is not None and not self._copy_audio:
            for out in self._resampler.resample(None):
                for p in self.aus.encode(out):
                    self.container.mux(p)
            for p in self.aus.encode(None):
                self.container.mux(p)
        self.container.close()
        self.container = None

    def abort(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # already failing: the temp file is deleted next anyway
                pass
            self.container = None


class _PngWriter:
    """RGBA PNG frames into a ZIP or a folder (no audio: PNG frames carry none)."""

    def __init__(self, tmp: Path, kind: str) -> None:
        self.tmp = tmp
        self.zip = zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) if kind == "png-zip" else None
        if self.zip is None:
            tmp.mkdir(parents=True)
        self.index = 0
        self.audio_written = 0
        self.size: Optional[tuple[int, int]] = None

    def write(self, arr: np.ndarray, pts: int) -> None:
        from PIL import Image

        if self.size is None:
            self.size = (arr.shape[1], arr.shape[0])
        elif (arr.shape[1], arr.shape[0]) != self.size:
            arr = _fit(arr, self.size)
        mode = "L" if arr.ndim == 2 else ("RGBA" if arr.shape[2] == 4 else "RGB")
        data = imaging.encode(Image.fromarray(arr, mode), "png")
        name = f"frame_{self.index:06d}.png"
        if self.zip is not None:
            self.zip.writestr(name, data)  # PNG is compressed already: store
        else:
            (self.tmp / name).write_bytes(data)
        self.index += 1

    def audio(self, packet) -> None:
        pass

    def finish(self) -> None:
        if self.zip is not None:
            self.zip.close()

    def abort(self) -> None:
        if self.zip is not None:
            try:
                self.zip.close()
            except Exception:  # already failing: the temp file is deleted next anyway
                pass


def _fit(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A frame whose size changed mid-clip, scaled to the output's (an encoder keeps one size)."""
    import cv2

    if arr.shape[1] >= size[0] and arr.shape[0] >= size[1] and (arr.shape[1] - size[0]) < 2 and (arr.shape[0] - size[1]) < 2:
        return arr[: size[1], : size[0]]
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA)


def _is_frame_file(path: Path) -> bool:
    return path.is_file() and path.name.startswith("frame_") and path.suffix == ".png"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# -- the pipeline -----------------------------------------------------------------------------
def _stream_for(engine: Engine, options: Options, foreground: bool):
    make = getattr(presets, "stream", None)  # the quality presets' per-frame recipe, when it exists
    if make is not None:
        return make(engine, options.preset, options.ratio, foreground=foreground)
    return engine.stream(options.ratio, foreground=foreground)


def process_video(
    source: Union[str, os.PathLike],
    target: Union[str, os.PathLike],
    options: Optional[Options] = None,
    video: Optional[VideoOptions] = None,
    *,
    engine: Optional[Engine] = None,
    progress: Optional[Callable[[Progress], None]] = None,
    cancel: Optional[Callable[[], bool]] = None,
    overwrite: bool = True,
    deadline: Optional[Deadline] = None,
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

    Raises:
        InvalidInput (unreadable, corrupt or truncated clip), InvalidOption, TooLarge, Cancelled.
    """
    options = options or Options()
    vopts = video or VideoOptions()
    target = Path(target)
    kind = resolve_output(target, options, vopts)
    if target.exists() and not overwrite:
        raise InvalidOption(f"{target} exists")
    if target.is_dir() and (kind != "png-dir" or any(not _is_frame_file(p) for p in target.iterdir())):
        # Replacing a folder means deleting it: only ever one that holds nothing but our frames.
        raise InvalidOption(f"{target} is a folder with other files in it; write the frames to a new or empty folder")
    engine = engine or get_engine()
    recipe = presets.video_recipe(options.preset)
    clean = (recipe.decontaminate if options.decontaminate is None else options.decontaminate) and kind != "matte"

    info = probe(source)
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
    presets.check_lowres(options.preset, options.ratio, info.height, info.width, options.max_lowres_pixels,
                         video=True)

    backgrounds = _Backgrounds(options, vopts) if kind == "composite" else None  # a bad picture fails here
    stream = _stream_for(engine, options, foreground=clean)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    webp = _is_webp(source)
    if webp:
        container, in_audio, tb = None, None, Fraction(1, 1000)
        rate = Fraction(fps).limit_denominator(1001)
    else:
        container = _open_input(source)
        vs = container.streams.video[0]
        in_audio = container.streams.audio[0] if (vopts.audio and container.streams.audio) else None
        tb, rate = vs.time_base or Fraction(1, 90000), _rate(vs)
    try:
        writer: Any = _PngWriter(tmp, kind) if kind.startswith("png") else _AvWriter(tmp, kind, in_audio, rate, tb)
    except BaseException:
        _remove(tmp)
        if container is not None:
            container.close()
        raise

    stop = threading.Event()
    decoded_q: "queue.Queue" = queue.Queue(QUEUE_FRAMES)
    matted_q: "queue.Queue" = queue.Queue(QUEUE_FRAMES)
    errors: list[BaseException] = []
    read_info: dict = {}
    written = [0]
    started = time.perf_counter()
    timings = {"matte": 0.0, "write": 0.0}  # seconds in the model, and in compose + encode

    def reader() -> None:
        try:
            rng = _Range(vopts.start, vopts.end, vopts.max_frames)
            if container is None:
                read_info.update(_read_webp(source, rng, decoded_q, stop, read_info))
            else:
                read_info.update(_read(container, rng, in_audio is not None, decoded_q, stop, Path(source).name, read_info))
            _put(decoded_q, _END, stop)
        except _Stop:
            pass
        except BaseException as exc:  # handed to the caller's thread, which raises it
            errors.append(exc)
            stop.set()

    def write_loop() -> None:
        try:
            while True:
                item = _get(matted_q, stop)
                if item is _END:
                    writer.finish()
                    return
                if isinstance(item, _AudioItem):
                    writer.audio(item.packet)
                    continue
                if written[0] == 0 and isinstance(writer, _AvWriter):
                    writer.start_sec = read_info.get("t0", 0.0)
                t = time.perf_counter()
                layer = backgrounds.layer(item.rgb) if backgrounds is not None else None
                writer.write(compose_frame(kind, item.rgb, item.matte, layer, clean), item.pts)
                timings["write"] += time.perf_counter() - t
                written[0] += 1
                if progress is not None:
                    elapsed = time.perf_counter() - started
                    progress(Progress(written[0], max(total, written[0]), written[0] / elapsed if elapsed > 0 else 0.0))
        except _Stop:
            pass
        except BaseException as exc:
            errors.append(_encoding_error(exc, kind))
            stop.set()

    threads = [threading.Thread(target=reader, name="mattekit-video-read", daemon=True),
               threading.Thread(target=write_loop, name="mattekit-video-write", daemon=True)]
    ok = False
    try:
        for th in threads:
            th.start()
        while True:
            if cancel is not None and cancel():
                raise Cancelled("the video was cancelled")
            check_deadline(deadline)
            try:
                item = _get(decoded_q, stop)
            except _Stop:
                break
            if item is _END:
                _put(matted_q, _END, stop)
                break
            if isinstance(item, _VideoItem):
                t = time.perf_counter()
                item.matte = stream.process(item.rgb)
                timings["matte"] += time.perf_counter() - t
            _put(matted_q, item, stop)
        while threads[1].is_alive():  # the writer finishes (or fails); keep honouring cancel
            threads[1].join(timeout=0.1)
            if cancel is not None and cancel():
                raise Cancelled("the video was cancelled")
            check_deadline(deadline)
        if errors:
            raise errors[0]
        if written[0] == 0:
            raise InvalidInput(f"{Path(source).name}: no frames in the asked range")
        _check_complete(read_info, info, vopts, written[0], Path(source).name)
        if target.exists() and target.is_dir() and kind == "png-dir":
            shutil.rmtree(target)
        os.replace(tmp, target)
        ok = True
    except _Stop:
        raise errors[0] if errors else Cancelled("the video was cancelled")
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=30)
        if not ok:
            writer.abort()
            _remove(tmp)
        if container is not None:
            container.close()
        if backgrounds is not None:
            backgrounds.close()
    seconds = time.perf_counter() - started
    size = writer.size or (info.width, info.height)
    timings["total"] = seconds
    return VideoResult(target, kind, written[0], size[0], size[1], fps,
                       writer.audio_written > 0, seconds, timings)


def _encoding_error(exc: BaseException, kind: str) -> BaseException:
    """FFmpeg's own errors from the writer, said in our words (the reader's are InvalidInput)."""
    import av

    if isinstance(exc, av.FFmpegError):
        return MattekitError(f"writing the {kind} output failed: {exc}")
    return exc


def write_frames(
    frames: Iterable[np.ndarray], target: Union[str, os.PathLike], *, codec: str = "libx264",
    rate: Union[int, Fraction] = 25, fmt: Optional[str] = None, pix_fmt: str = "yuv420p",
    options: Optional[dict] = None, rotation: int = 0,
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


# -- temporal stability (bench/video.py, tests) ---------------------------------------------------
def alpha_sequence(frames, ratio: Union[str, float] = "auto", *, recurrent: bool = True,
                   engine: Optional[Engine] = None) -> list[np.ndarray]:
    """Alpha of each frame, carrying RVM's state (``recurrent``) or starting afresh every frame."""
    from .engine import RecurrentState

    engine = engine or get_engine()
    state = RecurrentState.empty()
    out = []
    for rgb in frames:
        matte, new_state = engine.step(rgb, ratio, state if recurrent else None)
        state = new_state
        out.append(matte.alpha)
    return out


def flicker(alphas: list[np.ndarray]) -> float:
    """Mean |α_t − α_{t−1}| over pixels and frame pairs, in 1/255 (real motion counts too)."""
    if len(alphas) < 2:
        raise ValueError("flicker needs at least two frames")
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(alphas, alphas[1:])]) * 255.0)


def _check_complete(read_info: dict, info: VideoInfo, vopts: VideoOptions, written: int, name: str) -> None:
    """A clip that ends well before its header says it should is truncated: say so, write nothing."""
    if read_info.get("complete") or not info.frames:
        return
    expected = info.frames
    if vopts.start > 0 and info.fps:
        expected -= int(vopts.start * info.fps)
    # A frame or two of slack: headers round, and B-frame tails vary by muxer.
    if written < expected - max(2, int(0.02 * expected)):
        raise InvalidInput(f"{name} is truncated: it ends after {written} of {expected} frames")


__all__ = [
    "VideoOptions", "VideoInfo", "VideoResult", "Progress", "OUTPUT_TYPES",
    "process_video", "probe", "infer_output", "resolve_output", "read_frames", "write_frames", "alpha_sequence", "flicker", "compose_frame", "upright",
]

