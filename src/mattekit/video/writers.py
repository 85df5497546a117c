"""The writers behind one small interface: a frame at a time into a temp path, then close
(complete) or abort (failing; the pipeline deletes the temp path next).

A writer is built from its row of the outputs table (:class:`~.outputs.OutputSpec`), so a new
output type that an existing writer can produce (another FFmpeg codec, say) needs no code here.
"""

from __future__ import annotations

import zipfile
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .. import encode

if TYPE_CHECKING:  # pragma: no cover
    # Only for annotations: the table names its writers ("module:Class"), so a runtime import
    # back would be a cycle.
    from .outputs import OutputSpec


class Writer(Protocol):
    """What the pipeline's writer thread needs of a writer."""

    size: tuple[int, int] | None  # (width, height) written, once the first frame is
    audio_written: int  # audio packets written (0: the result has no sound)
    start_sec: float  # source time of the first frame, set before it is written: audio shifts by it

    def write(self, frame: np.ndarray, pts: int) -> None:
        """One composed frame (HxW, HxWx3 or HxWx4 uint8) at ``pts`` in the source's time base."""

    def audio(self, packet: Any) -> None:
        """One of the source's audio packets, in demux order (ignore it if the output has none)."""

    def close(self) -> None:
        """Flush and close: the temp path now holds the whole result."""

    def abort(self) -> None:
        """Release what is open, quietly: something failed, the temp path is deleted next."""


class WriterFactory(Protocol):
    def __call__(self, tmp: Path, spec: OutputSpec, in_audio: Any, rate: Fraction, tb: Fraction) -> Writer: ...


# Audio codecs each container takes as they are; anything else is re-encoded.
_AUDIO_COPY = {
    "webm": {"opus", "vorbis"},
    "mov": {"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_s16be", "pcm_f32le", "ac3"},
    "mp4": {"aac", "mp3", "opus", "alac", "ac3", "flac"},
}
_AUDIO_ENCODE = {"webm": ("libopus", 48000), "mov": ("aac", None), "mp4": ("aac", None)}


class AvWriter:
    """Video (and audio) into a container with FFmpeg; opened on the first frame, when its size
    is known. The container, codec, pixel format and options come from the output's row."""

    def __init__(self, tmp: Path, spec: OutputSpec, in_audio: Any, rate: Fraction, tb: Fraction) -> None:
        self.tmp = tmp
        self.spec = spec
        self.fmt = spec.container or "mp4"
        self.in_audio = in_audio
        self.rate = rate
        self.tb = tb
        self.container: Any = None
        self.vs: Any = None
        self.aus: Any = None
        self.pending_audio: list[Any] = []
        self.audio_written = 0
        self.size: tuple[int, int] | None = None
        self._resampler: Any = None
        self._copy_audio = False
        self._remuxing = False
        self.start_sec = 0.0  # source time of the first frame written

    def _open(self, w: int, h: int) -> None:
        import av

        self.container = av.open(str(self.tmp), "w", format=self.fmt)
        vs = self.container.add_stream(self.spec.codec or "libx264", rate=self.rate, options=dict(self.spec.codec_options))
        vs.pix_fmt = self.spec.pix_fmt or "yuv420p"
        vs.width, vs.height = w, h
        vs.codec_context.time_base = self.tb
        vs.time_base = self.tb
        vs.thread_type = "AUTO"
        self.vs = vs
        self.size = (w, h)
        self._open_audio()

    def open_remux(self, template: Any) -> Any:
        """Open the container with a video stream copied from ``template`` (a stream of an
        already-encoded segment: its packets go in through :meth:`remux`, not re-encoded) and
        the audio as :meth:`audio` writes it. Returns the new video stream."""
        import av

        self.container = av.open(str(self.tmp), "w", format=self.fmt)
        self.vs = self.container.add_stream_from_template(template)
        self._remuxing = True
        self.size = (template.codec_context.width, template.codec_context.height)
        self._open_audio()
        return self.vs

    def remux(self, packet: Any) -> None:
        """One encoded video packet (from :meth:`open_remux`'s template's kind), timestamps set."""
        packet.stream = self.vs
        self.container.mux(packet)

    def _open_audio(self) -> None:
        import av

        if self.in_audio is not None:
            codec = self.in_audio.codec_context.name
            if codec in _AUDIO_COPY.get(self.fmt, set()):
                self.aus = self.container.add_stream_from_template(self.in_audio)
                self._copy_audio = True
            else:
                name, rate = _AUDIO_ENCODE.get(self.fmt, ("aac", None))
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
        if self.spec.even_sides:
            w, h = w - w % 2, h - h % 2  # H.264 4:2:0 and ProRes need even sides: drop the odd last line
        if self.container is None:
            self._open(w, h)
        assert self.size is not None
        if arr.shape[1] != self.size[0] or arr.shape[0] != self.size[1]:
            arr = fit(arr, self.size)
        fmt = {2: "gray", 3: "rgb24", 4: "rgba"}[arr.ndim if arr.ndim == 2 else arr.shape[2]]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt)
        frame.pts = pts
        frame.time_base = self.tb
        for packet in self.vs.encode(frame):
            self.container.mux(packet)

    def audio(self, packet: Any) -> None:
        if self.container is None:
            self.pending_audio.append(packet)  # before the first frame: wait for the container
        else:
            self._audio(packet)

    def _audio(self, packet: Any) -> None:
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

    def close(self) -> None:
        if self.container is None:
            return
        if not self._remuxing:  # a remuxed stream's packets came encoded: nothing to flush
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


class PngWriter:
    """RGBA PNG frames into a ZIP (``container="zip"``) or a folder (no audio: PNG frames carry none)."""

    def __init__(self, tmp: Path, spec: OutputSpec, in_audio: Any = None, rate: Any = None, tb: Any = None) -> None:
        self.tmp = tmp
        self.zip = zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) if spec.container == "zip" else None
        if self.zip is None:
            tmp.mkdir(parents=True)
        self.index = 0
        self.audio_written = 0
        self.size: tuple[int, int] | None = None
        self.start_sec = 0.0

    def write(self, arr: np.ndarray, pts: int) -> None:
        from PIL import Image

        if self.size is None:
            self.size = (arr.shape[1], arr.shape[0])
        elif (arr.shape[1], arr.shape[0]) != self.size:
            arr = fit(arr, self.size)
        mode = "L" if arr.ndim == 2 else ("RGBA" if arr.shape[2] == 4 else "RGB")
        data = encode.encode(Image.fromarray(arr, mode), "png")
        name = f"frame_{self.index:06d}.png"
        if self.zip is not None:
            self.zip.writestr(name, data)  # PNG is compressed already: store
        else:
            (self.tmp / name).write_bytes(data)
        self.index += 1

    def audio(self, packet: Any) -> None:
        pass

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()

    def abort(self) -> None:
        if self.zip is not None:
            try:
                self.zip.close()
            except Exception:  # already failing: the temp file is deleted next anyway
                pass


def fit(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A frame whose size changed mid-clip, scaled to the output's (an encoder keeps one size)."""
    import cv2

    if arr.shape[1] >= size[0] and arr.shape[0] >= size[1] and (arr.shape[1] - size[0]) < 2 and (arr.shape[0] - size[1]) < 2:
        return arr[: size[1], : size[0]]
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA)


def is_frame_file(path: Path) -> bool:
    return path.is_file() and path.name.startswith("frame_") and path.suffix == ".png"
