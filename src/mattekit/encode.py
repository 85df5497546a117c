"""Encode: a composed still to PNG (fpng, or Pillow at a fast zlib level), WebP or JPEG bytes, the
last step of a still's way. Video frames go through :mod:`mattekit.video.writers` instead.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from .deadline import Deadline
from .deadline import check as check_deadline
from .errors import InvalidOption, TooLarge, option

CONTENT_TYPES = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg"}
EXTENSIONS = {"png": ".png", "webp": ".webp", "jpg": ".jpg"}

_FORMAT_LIMITS = {"webp": 16383, "jpg": 65500}  # the formats' own size fields

# For L/P/16-bit PNGs (fpng writes 8-bit RGB/RGBA only): zlib level 1 is ~4x faster than
# Pillow's default (6) for ~10 % larger files (bench/speed.py, "encoders").
PNG_COMPRESS_LEVEL = 1


def _png(img: Image.Image, buf: io.BytesIO) -> None:
    """RGB/RGBA through fpng (~14x faster than zlib level 1, ~9 % larger; bench/speed.py),
    anything else — or no fpng on this platform — through Pillow at a fast zlib level."""
    if img.mode in ("RGB", "RGBA") and not img.info.get("icc_profile"):
        try:
            import fpng
        except ImportError:
            pass
        else:
            buf.write(fpng.from_pil(img))
            return
    img.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)


class _CheckedBuffer(io.BytesIO):
    """The encoded bytes, checking ``deadline`` at every write: Pillow's JPEG and zlib PNG
    encoders write one block at a time (64 KiB), so an encode past its deadline stops at the next
    block. fpng's PNG and libwebp's WebP are one call each, checked before only: 0.58 s and 3.7 s
    (lossy) for a 50 MP RGBA picture here (bench/stopping.py)."""

    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def write(self, data: Any) -> int:
        self._deadline.check()
        return super().write(data)


def encode(img: Image.Image, fmt: str = "png", quality: int = 90, *, deadline: Deadline | None = None) -> bytes:
    """PNG (fast zlib level), WebP (lossless at quality 100, else lossy with exact alpha) or JPEG.

    ``deadline``: checked before and, for PNG and JPEG, at every block written."""
    fmt = "jpg" if fmt.lower() == "jpeg" else fmt.lower()
    limit = _FORMAT_LIMITS.get(fmt)
    if limit and max(img.size) > limit:
        raise TooLarge(
            f"{fmt.upper()} images can be at most {limit} pixels on a side; this one is "
            f"{img.width}x{img.height}: use png, or {option('max_size')}"
        )
    check_deadline(deadline)
    buf = io.BytesIO() if deadline is None else _CheckedBuffer(deadline)
    if fmt == "png":
        _png(img, buf)
    elif fmt == "webp":
        if quality >= 100:
            # For lossless WebP "quality" is effort: 0 takes ~8x less CPU than the default 80 for
            # the same size on a 1080p cut-out (bench/speed.py, "encoders").
            img.save(buf, "WEBP", lossless=True, method=0, quality=0, exact=True)
        else:
            img.save(buf, "WEBP", quality=quality, alpha_quality=100, method=4)
    elif fmt == "jpg":
        if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            raise InvalidOption("JPEG has no transparency: choose png or webp, or give a background")
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        # Full-resolution chroma at high quality: a cut-out's hard colour edges against a solid
        # background bleed visibly with 4:2:0; below 90 the user asked for small files.
        img.save(buf, "JPEG", quality=quality, optimize=False, subsampling="4:2:0" if quality < 90 else "4:4:4")
    else:
        raise InvalidOption(f"unknown format {fmt!r}")
    return buf.getvalue()
