"""Joining the segments without re-encoding: their packets remuxed into the final container,
each shifted to its place, the source's audio muxed once; PNG frames renumbered into one ZIP or
folder.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from ...files import delete_path, move_into_place, temp_path
from ..outputs import OUTPUTS, VideoOptions
from .segments import Chunk, FrameTimes, segment_kind


def join_segments(
    segments: Sequence[Path],
    target: Path,
    kind: str,
    source: str | os.PathLike[str],
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
    source: str | os.PathLike[str],
    video: VideoOptions,
    times: FrameTimes,
    chunks: Sequence[Chunk],
) -> bool:
    import heapq
    import itertools

    import av

    from ..reader import frame_rate, open_input
    from ..writers import AvWriter

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
