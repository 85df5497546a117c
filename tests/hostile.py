"""Hostile inputs, generated: small files that cost a decoder far more than their size says.

Shared by the unit tests (tests/test_imaging.py, tests/test_video.py), the fuzz suite
(tests/test_fuzz.py) and the tests against the real server (tests/test_hostile.py); issue 25's
audit found each of them holding a worker or memory.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_scan_bomb(side: int = 1000, copies: int = 20_000) -> bytes:
    """A progressive JPEG whose last scan is repeated ``copies`` times before EOI.

    A flat picture makes the last (refinement) scan ~12 bytes, so 20,000 copies of a 1 MP picture
    fit in ~250 KB; libjpeg decodes each copy over the whole coefficient buffer (14 s here).
    """
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    last = data.rfind(b"\xff\xda")
    assert data.endswith(b"\xff\xd9") and last > 0
    return data[:-2] + data[last:-2] * copies + data[-2:]


def tiff_ifd_chain(pages: int = 48_000, side: int = 1) -> bytes:
    """A little-endian TIFF of ``pages`` grey pages of ``side`` x ``side``, all sharing one strip of
    pixels: 102 bytes a page. Pillow's ``n_frames`` walks the whole chain in Python: 48,000 pages
    (4.9 MB) took 26 s.
    """
    pixels = side * side + (side * side) % 2  # an IFD starts on a word boundary
    tags = [
        (256, 3, side),
        (257, 3, side),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8),
        (278, 3, side),
        (279, 4, side * side),
    ]
    ifd = 2 + 12 * len(tags) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", 8 + pixels))  # the header, then the pixels
    out += bytes((i * 7) % 256 for i in range(pixels))  # a diagonal ramp, so it is not flat
    for i in range(pages):
        nxt = len(out) + ifd if i + 1 < pages else 0
        out += struct.pack("<H", len(tags))
        for tag, kind, value in tags:
            out += struct.pack("<HHII", tag, kind, 1, value)
        out += struct.pack("<I", nxt)
    return bytes(out)


def _ts(size: tuple[int, int], frames: int, first_pts: int, codec: str = "mpeg2video") -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        grey = np.full((size[1], size[0], 3), 100, np.uint8)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(grey, format="rgb24")
            frame.pts = first_pts + i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def growing_clip(
    path: Path,
    sizes: Sequence[tuple[int, int]] = ((320, 240), (4000, 3000)),
    frames: Sequence[int] = (5, 3),
    codec: str = "mpeg2video",
) -> Path:
    """An MPEG-TS clip whose frame size changes mid-stream: MPEG-TS segments of one stream (same
    PID) simply concatenate, and each starts with a new sequence header (MPEG-2) or SPS (H.264). The header
    and the first frame say ``sizes[0]``; the audit's 49 KB clip switched to 4000x3000 after 5."""
    data, pts = b"", 0
    for size, n in zip(sizes, frames):
        if n:  # a segment of no frames would be an empty file
            data += _ts(size, n, pts, codec)
            pts += n
    path.write_bytes(data)
    return path


def flat_clip(path: Path, size: tuple[int, int], frames: int = 3) -> Path:
    """A plain MPEG-TS clip of ``frames`` grey frames of ``size``."""
    path.write_bytes(_ts(size, frames, 0))
    return path
