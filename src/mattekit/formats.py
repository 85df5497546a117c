"""File suffixes we read and the extension each still output format writes.

Ground floor: the CLI, batch and video all decide "is this an image, a video?" from these
tables, so a suffix added here is accepted everywhere at once.
"""

from __future__ import annotations

from pathlib import PurePath

from .errors import InvalidOption

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"})
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif", ".webp", ".mpg", ".mpeg", ".ts", ".3gp", ".ogv", ".flv", ".wmv"}
)
# Animated GIF/WebP decode as video, but `remove` and `batch` treat them as stills, and a --bg
# with these suffixes is a picture.
STILL_VIDEO_SUFFIXES = IMAGE_SUFFIXES & VIDEO_SUFFIXES
CLIP_SUFFIXES = VIDEO_SUFFIXES - STILL_VIDEO_SUFFIXES  # only ever a video

FORMAT_EXTENSIONS = {"png": ".png", "webp": ".webp", "jpg": ".jpg"}
# The other way round: the format a still output file's name asks for (.jpeg is JPEG too).
SUFFIX_FORMATS = {".png": "png", ".webp": "webp", ".jpg": "jpg", ".jpeg": "jpg"}


def extension(fmt: str) -> str:
    """``.png`` for ``png``: the suffix a still in output format ``fmt`` is written with."""
    try:
        return FORMAT_EXTENSIONS[fmt]
    except KeyError:
        raise InvalidOption(f"format must be one of {', '.join(FORMAT_EXTENSIONS)}, not {fmt!r}") from None


def format_of_name(name: str | PurePath) -> str | None:
    """``jpg`` for ``out.JPEG``: the output format a file name asks for, or None when its suffix
    names none we write (no suffix, ``.bmp``, ``.txt``)."""
    return SUFFIX_FORMATS.get(PurePath(name).suffix.lower())


def is_image_name(name: str | PurePath) -> bool:
    return PurePath(name).suffix.lower() in IMAGE_SUFFIXES


def is_clip_name(name: str | PurePath) -> bool:
    """A name only a video has (not .gif/.webp, which may be stills)."""
    return PurePath(name).suffix.lower() in CLIP_SUFFIXES
