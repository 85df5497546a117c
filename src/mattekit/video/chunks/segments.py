"""Cutting a clip into chunks and making one chunk's segment: the plan (:func:`plan_chunks`,
with the warm-up, :data:`WARMUP_FRAMES`), the frames' times (:func:`frame_times`, demuxed, not
decoded) and :func:`run_chunk` (seek, warm the state, matte and encode the chunk's own frames).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import InvalidInput, InvalidOption
from ...options import Options
from ..outputs import OUTPUTS, VideoOptions

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import VideoResult

# Frames each chunk runs through the model before its own, to warm RVM's recurrent state (see the
# module's docstring for the measurement).
WARMUP_FRAMES = 20


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


def frame_times(source: str | os.PathLike[str], video: VideoOptions) -> FrameTimes:
    """Every frame's timestamp in ``video``'s range, from the packets (demuxed, not decoded: a
    10-minute clip's are read in the time it takes to read the file)."""
    from ..reader import frame_rate, is_webp, open_input

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
    source: str | os.PathLike[str],
    segment: str | os.PathLike[str],
    options: Options,
    video: VideoOptions,
    kind: str,
    times: FrameTimes,
    chunk: Chunk,
    *,
    engine: Any = None,
) -> VideoResult:
    """Matte one chunk of ``source`` into ``segment`` (a file of ``segment_kind(kind)``): its
    result (frames written, whether it is ``empty``)."""
    from ..pipeline import process_video
    from ..reader import Part

    vopts, warm_from = chunk_options(video, kind, times, chunk)
    result = process_video(source, segment, options, vopts, engine=engine, part=Part(warm_from, times.seconds[0], chunk.first))
    if result.frames != chunk.frames:
        raise InvalidInput(
            f"{Path(source).name}: chunk {chunk.index + 1} gave {result.frames} frames "
            f"of {chunk.frames} (a clip whose timestamps jump cannot be cut frame-accurately)"
        )
    return result
