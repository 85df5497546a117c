"""Decode: any still (path, bytes, file, PIL image, numpy array) to upright sRGB ``uint8`` and the
input's own alpha, within the size limits. The first step of a still's way
(decode → model → :mod:`~mattekit.compose` → :mod:`~mattekit.encode`); nothing here knows the model.
"""

from __future__ import annotations

import io
import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps

from .deadline import Deadline
from .deadline import check as check_deadline
from .errors import Cancelled, DeadlineExceeded, InvalidInput, InvalidOption, TooLarge, option
from .options import DEFAULT_MAX_PIXELS, MIN_SIDE, Options

log = logging.getLogger("mattekit.decode")

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | Image.Image | np.ndarray

_heif_lock = threading.Lock()
_heif_registered = False


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        with _heif_lock:
            if not _heif_registered:
                try:
                    import pillow_heif

                    pillow_heif.register_heif_opener()
                except ImportError:  # optional at run time; decode then says "not an image"
                    log.debug("pillow-heif not installed: HEIC input unavailable")
                Image.init()  # load every plugin now, so READ_FORMATS can name them
                _heif_registered = True


# Only the formats we document. Pillow would otherwise try every plugin it has on untrusted bytes,
# including EPS (which runs Ghostscript when installed), FITS, GRIB, WMF... (tests/test_fuzz.py).
READ_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF", "AVIF")


@dataclass
class Decoded:
    """An upright RGB image and, when the input had one, its own alpha channel."""

    rgb: np.ndarray  # HxWx3 uint8
    alpha: np.ndarray | None = None  # HxW uint8, None when fully opaque
    format: str | None = None  # e.g. "JPEG", "PNG"

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


READABLE = "JPEG, PNG, WebP, BMP, TIFF, GIF, HEIC"

# libjpeg decodes a progressive JPEG scan by scan, and each scan walks the whole coefficient
# buffer, so the time grows with scans x pixels (0.69 ms a scan per megapixel here) while a
# repeated scan costs the sender ~12 bytes: 20,000 scans of a 1 MP picture in 250 KB held a
# worker 14 s, and Pillow sets no limit. Encoders write 10 (libjpeg's standard progression; 6 for
# grey) to a few dozen (mozjpeg, jpegtran scripts); 256 is the limit NVIDIA's nvImageCodec sets for
# the same attack. At the 50 MP default that bounds a decode to ~9 s, at 1 MP to ~0.2 s.
MAX_JPEG_SCANS = 256
_SOS = b"\xff\xda"


def open_image(
    source: ImageSource,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_size: int | None = None,
    *,
    offer_size: bool = False,
    min_side: int = MIN_SIDE,
) -> Image.Image:
    """Open (lazily, header only) and check the pixel count before anything is decoded.

    With ``max_size``, a JPEG is set to decode at 1/2, 1/4 or 1/8 scale (libjpeg's own reduction)
    when that still leaves ``max_size`` pixels on its longer side, and the limit holds for what
    is decoded: a 54 MP photo asked for at 1024 px is decoded at 1/8 scale, 0.8 MP, however
    large the limit is. See :data:`REDUCED_JPEG_BOUND` for how far past the limit that goes.
    ``offer_size``: the caller can ask for a smaller size (the photo, not a background), so a
    refusal that one would avoid says so. ``min_side``: the shorter side the model needs, which
    ``max_size`` must not shrink it below (:func:`min_side_for`).

    The caller closes the returned image when it is not ``source`` itself.
    """
    if isinstance(source, Image.Image):
        img = source
    else:
        _register_heif()
        if isinstance(source, (bytes, bytearray, memoryview)):
            if len(source) == 0:
                raise InvalidInput("the file is empty")
            fp: Any = io.BytesIO(bytes(source))
            name = "the input"
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_dir():
                raise InvalidInput(f"{path} is a folder, not an image (the command line takes folders)")
            if not path.is_file():
                raise InvalidInput(f"no such file: {path}")
            if path.stat().st_size == 0:
                raise InvalidInput("the file is empty")
            fp, name = path, "the file"  # callers show the path already (CLI: "a.jpg: the file ...")
        elif hasattr(source, "read"):
            fp, name = source, "the input"
        else:
            raise InvalidInput(
                f"cannot read an image from a {type(source).__name__}: give a path, bytes, "
                "a file object, a PIL image or a numpy array"
            )
        try:
            img = Image.open(fp, formats=[f for f in READ_FORMATS if f in Image.OPEN])
        except Image.DecompressionBombError:
            raise TooLarge(f"{name} declares more pixels than allowed (the limit is {max_pixels:,})") from None
        except Exception as exc:  # Pillow raises many types on hostile headers; all mean "not an image"
            if isinstance(exc, MemoryError):
                raise
            empty = hasattr(source, "read") and _is_empty_stream(source)
            raise InvalidInput(f"{name} is empty" if empty else f"{name} is not an image we can read ({READABLE})") from None
    try:
        full = img.size
        refuse_a_size_too_small(full, max_size, min_side)
        if max_size and img.format == "JPEG" and full[0] * full[1] <= REDUCED_JPEG_BOUND * max_pixels:
            _draft(img, max_size)  # img.size is now what libjpeg will decode
        _check_header(img, max_pixels, full, offer_size)
    except BaseException:
        if img is not source:
            img.close()
        raise
    return img


# A JPEG asked for at a smaller size may declare up to this many times the pixel limit, when its
# reduced decode is within the limit: libjpeg then never holds the full picture, but a progressive
# JPEG keeps every DCT coefficient (2 bytes each, 3-6 bytes a pixel) until its last scan, so the
# header's size still bounds memory. Measured (peak RSS of the decode): a 54 MP progressive JPEG
# at 1024 px 175 MB, the same baseline 33 MB, a 50 MP baseline decoded in full 686 MB; so at 2x
# the limit a progressive JPEG costs about half what the limit in full does.
REDUCED_JPEG_BOUND = 2


def _check_header(img: Image.Image, max_pixels: int, full: tuple[int, int] | None = None, offer_size: bool = False) -> None:
    """What the header tells before any pixel is decoded: the size (``img.size``, reduced by a
    JPEG's draft mode; ``full`` before it), and a JPEG's number of scans."""
    w, h = img.size
    if w * h > max_pixels:
        fw, fh = full or (w, h)
        hint = "shrink it first"
        if offer_size and img.format == "JPEG" and fw * fh <= REDUCED_JPEG_BOUND * max_pixels:
            # Reduced on decode, a JPEG this large fits the limit: say how to ask for that.
            hint += f", or ask for a smaller size (e.g. {option('max_size', '2048')}): a JPEG is then shrunk as it is decoded"
        raise TooLarge(f"image is {fw}x{fh} = {fw * fh:,} pixels; the limit is {max_pixels:,}: {hint}")
    if w < 1 or h < 1:
        raise InvalidInput("image has no pixels")
    fp = getattr(img, "fp", None)
    if img.format in ("JPEG", "MPO") and fp is not None:
        scans = 1 + _count_markers(fp, _SOS, MAX_JPEG_SCANS)  # Pillow stops after the first
        if scans > MAX_JPEG_SCANS:
            raise TooLarge(
                f"the JPEG has more than {MAX_JPEG_SCANS} progressive scans (photos have about 10); "
                "save it again as a baseline or standard progressive JPEG"
            )


def _count_markers(fp: Any, marker: bytes, limit: int) -> int:
    """How many times ``marker`` occurs from ``fp``'s position on, counting no further than past
    ``limit``; the position is put back.

    A byte scan, not a parse: entropy-coded JPEG data stuffs every 0xFF with 0x00 (or a restart
    marker), so an FF DA there is always a real scan header. ~1 ms a megabyte.
    """
    start = fp.tell()
    count, tail = 0, b""
    try:
        while count <= limit:
            block = fp.read(1 << 20)
            if not block:
                break
            data = tail + block
            count += data.count(marker)
            tail = data[1 - len(marker) :]  # a marker split across two blocks is counted once, in the next
    finally:
        fp.seek(start)
    return count


class _Stepwise(io.BytesIO):
    """An upload's bytes as Pillow reads them while it decodes, checking ``deadline`` at every
    read: Pillow feeds its decoder one read at a time (64 KiB), so a decode past its deadline
    stops at the next read instead of running to its end (the client has its 504 by then).

    A JPEG's reads also stop just past the next scan marker, so libjpeg is given one scan per
    call: a progressive scan is decoded over the whole picture however few bytes it has (41 ms a
    scan at 50 MP here; 256 of them, our limit, took 10.6 s in one call of 64 KiB). Checking is
    off while the header is parsed (:meth:`start` turns it on), since parsers expect whole reads.
    """

    def __init__(self, data: bytes, deadline: Deadline) -> None:
        super().__init__(data)
        self._data = data
        self._deadline = deadline
        self._checking = False
        self._by_scan = False

    def start(self, fmt: str | None) -> None:
        self._checking, self._by_scan = True, fmt in ("JPEG", "MPO")

    def read(self, size: int | None = -1) -> bytes:
        if self._checking:
            self._deadline.check()
            if self._by_scan and size != 0:
                pos = self.tell()
                stop = None if size is None or size < 0 else pos + size
                marker = self._data.find(_SOS, pos + 1, stop)
                if marker >= 0:
                    size = marker + len(_SOS) - pos
        return super().read(size)


def _is_empty_stream(fp: Any) -> bool:
    try:
        fp.seek(0, io.SEEK_END)
        return bool(fp.tell() == 0)
    except Exception:
        return False


def to_rgb_alpha(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any PIL mode → RGB uint8 + alpha uint8 (or None when the image has no transparency)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's own I/F → RGB conversion clips at 255 instead of scaling: a 16-bit photo
        # would come out nearly white. Scale the sample range to 8 bits instead.
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(arr.max(initial=0.0))
        if mode.startswith("I;16") or peak > 255.0:
            top = 65535.0
        elif mode == "F" and peak <= 1.0:
            top = 1.0  # float samples in [0, 1]
        else:
            top = 255.0
        grey = np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2), None
    if mode == "La":
        img = img.convert("LA")  # Pillow has no La → RGBA conversion
    if "transparency" in img.info or img.mode in ("PA", "LA", "RGBa", "RGBA"):
        img = img.convert("RGBA")  # a tRNS colour key or palette transparency becomes real alpha
    if img.mode == "RGBA":
        arr = np.asarray(img)
        alpha = arr[:, :, 3]
        rgb = np.ascontiguousarray(arr[:, :, :3])
        return rgb, (None if alpha.min() == 255 else np.ascontiguousarray(alpha))
    if img.mode != "RGB":
        img = img.convert("RGB")  # P, L, 1, CMYK, YCbCr, LAB, HSV
    return np.asarray(img), None


def _srgb(img: Image.Image) -> Image.Image:
    """Convert an embedded ICC profile (Display P3, Adobe RGB, CMYK…) to sRGB when present."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
        return img
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if img.mode != "CMYK" and "srgb" in ImageCms.getProfileDescription(src).lower().replace(" ", ""):
            return img  # already sRGB: converting would cost time and change nothing visible
        dst = ImageCms.createProfile("sRGB")
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(img, src, dst, outputMode=out_mode) or img
    except Exception:  # a broken profile must not cost the user the picture
        log.debug("ignoring unusable ICC profile")
        return img


def _upright(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception:  # malformed EXIF: keep the pixels as stored
        log.debug("ignoring malformed EXIF orientation")
        return img


def decode(
    source: ImageSource, options: Options | None = None, *, deadline: Deadline | None = None, offer_size: bool = False
) -> Decoded:
    """Decode a still: first frame, EXIF-upright, sRGB, RGB uint8 (+ its own alpha).

    Raises :class:`InvalidInput` (not an image, truncated, corrupt) or :class:`TooLarge`
    (more than ``options.max_pixels``), before decoding any pixel data where the header tells.
    ``deadline``: checked between the steps and, for encoded bytes, at every read of the decoder
    (:class:`DeadlineExceeded` when past it). ``offer_size``: see :func:`open_image`.
    """
    options = options or Options()
    if isinstance(source, np.ndarray):
        return _decode_array(source, options)
    if deadline is not None and isinstance(source, (bytes, bytearray, memoryview)) and len(source):
        source = _Stepwise(bytes(source), deadline)
    # With max_size, a JPEG is decoded reduced (draft mode), and the limit holds for that size.
    img = opened = open_image(source, options.max_pixels, options.max_size, offer_size=offer_size, min_side=min_side_for(options))
    fmt = img.format
    try:
        if img.tell() != 0:  # a PIL image handed in on another frame: n_frames would walk them all
            img.seek(0)  # (a TIFF's IFD chain, in Python: 48,000 pages took 26 s)
        if isinstance(source, _Stepwise):
            source.start(fmt)
        img.load()
        # Each step below is one call on the whole picture (0.1-0.3 s at 50 MP): checked between.
        check_deadline(deadline)
        img = _upright(img)
        check_deadline(deadline)
        img = _srgb(img)
        check_deadline(deadline)
        rgb, alpha = to_rgb_alpha(img)
    except (MemoryError, TooLarge, InvalidInput, DeadlineExceeded, Cancelled):
        raise
    except Image.DecompressionBombError:
        raise TooLarge(f"the image declares more pixels than allowed (the limit is {options.max_pixels:,})") from None
    except Exception as exc:  # anything a corrupt file makes the decoder raise
        raise InvalidInput(f"the image could not be decoded (truncated or corrupt): {exc}") from None
    finally:
        if opened is not source:
            opened.close()
    if options.max_size and max(rgb.shape[:2]) > options.max_size:
        check_deadline(deadline)
        rgb, alpha = shrink(rgb, alpha, options.max_size)
    return Decoded(np.ascontiguousarray(rgb), alpha, fmt)


def _draft(img: Image.Image, max_size: int) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still leaves >= max_size pixels."""
    w, h = img.size
    scale = max_size / max(w, h)
    try:
        img.draft(img.mode, (max(1, int(w * scale + 1)), max(1, int(h * scale + 1))))
    except Exception:
        log.debug("JPEG draft mode unavailable")


def with_alpha(rgb: np.ndarray, a8: np.ndarray) -> np.ndarray:
    """HxWx4 RGBA from HxWx3 RGB and HxW uint8 alpha.

    OpenCV's channel conversion then one strided write: 1.2 ms at 1080p against 8.1 ms for
    ``np.dstack``, which interleaves through numpy's generic copy (measured side by side).
    """
    import cv2

    out = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2RGBA)
    out[:, :, 3] = a8
    return out


def min_side_for(options: Options) -> int:
    """The shorter side a photo needs for the model ``options.subject`` runs: RVM (person, and
    auto, which runs RVM first) needs :data:`MIN_SIDE`; the general model resizes to its own
    input, so any size will do."""
    return 1 if options.subject == "general" else MIN_SIDE


def smallest_max_size(size: tuple[int, int], min_side: int = MIN_SIDE) -> int:
    """The smallest ``max_size`` that leaves a photo of ``size`` (w, h) at least ``min_side`` on
    its shorter side, once its longer side is shrunk to it."""
    return math.ceil(min_side * max(size) / max(1, min(size)))


def refuse_a_size_too_small(size: tuple[int, int], max_size: int | None, min_side: int = MIN_SIDE) -> None:
    """A ``max_size`` that would shrink a photo of ``size`` (w, h), which the model could run,
    below the size it can run is the option's fault, said so with a value that works: not
    "image is 20x13 pixels", as if the photo were bad (16x4000 at max_size 1000; any photo at 20).
    Read from the header's size, before a JPEG is decoded reduced."""
    if not max_size or max(size) <= max_size or min(size) < min_side:
        return  # not shrunk, or too small already: the model's own check says so
    scale = max_size / max(size)
    shrunk = tuple(max(1, round(side * scale)) for side in size)  # as shrink() rounds
    if min(shrunk) >= min_side:
        return
    raise InvalidOption(
        f"{option('max_size', str(max_size))} would shrink this {size[0]}x{size[1]} photo to "
        f"{shrunk[0]}x{shrunk[1]} pixels, and at least {min_side} are needed on each side: "
        f"use {option('max_size', str(smallest_max_size(size, min_side)))} or more, or leave {option('max_size')} out"
    )


def shrink(rgb: np.ndarray, alpha: np.ndarray | None, max_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Lanczos-shrink so the longer side is ``max_size`` (alpha-premultiplied, so no dark fringes)."""
    h, w = rgb.shape[:2]
    scale = max_size / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if alpha is None:
        return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)), None
    rgba = Image.fromarray(with_alpha(rgb, alpha), "RGBA")
    arr = np.asarray(rgba.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))  # Pillow premultiplies
    small_alpha = np.ascontiguousarray(arr[:, :, 3])
    return np.ascontiguousarray(arr[:, :, :3]), (None if small_alpha.min() == 255 else small_alpha)


def _decode_array(arr: np.ndarray, options: Options) -> Decoded:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InvalidInput(f"an image array must be HxW, HxWx3 or HxWx4, not {arr.shape}")
    h, w = arr.shape[:2]
    if h < 1 or w < 1:
        raise InvalidInput("image has no pixels")
    if h * w > options.max_pixels:
        raise TooLarge(f"image is {w}x{h} = {w * h:,} pixels; the limit is {options.max_pixels:,}")
    refuse_a_size_too_small((w, h), options.max_size, min_side_for(options))
    arr = _to_uint8(arr)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    alpha = None
    if arr.shape[2] == 4:
        alpha = np.ascontiguousarray(arr[:, :, 3])
        arr = arr[:, :, :3]
        if alpha.min() == 255:
            alpha = None
    rgb = np.ascontiguousarray(arr)
    if options.max_size and max(w, h) > options.max_size:
        rgb, alpha = shrink(rgb, alpha, options.max_size)
    return Decoded(rgb, alpha, None)


# Float arrays may overshoot [0, 1] by rounding (a resize, a colour conversion): that much is clipped.
FLOAT_SLACK = 1e-3


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """uint8 as is; uint16 scaled from 0..65535; bool; float in [0, 1]."""
    if arr.dtype == np.uint8:
        return arr
    out: np.ndarray
    if arr.dtype == np.bool_:
        out = arr.astype(np.uint8) * np.uint8(255)
        return out
    if arr.dtype == np.uint16:
        out = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        return out
    if np.issubdtype(arr.dtype, np.floating):
        # Refused, not clipped: a float photo in 0..255 clipped to [0, 1] is a white picture, and
        # NaN made black a guess; either way the cut-out would be wrong without a word.
        values = arr.astype(np.float32)
        if not np.isfinite(values).all():
            raise InvalidInput("the image array holds NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:
            hint = " (divide by 255, or pass it as uint8)" if high <= 255 + FLOAT_SLACK else ""
            raise InvalidInput(f"a float image array must hold values in [0, 1]; this one holds {low:g} to {high:g}{hint}")
        out = np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return out
    raise InvalidInput(f"unsupported array dtype {arr.dtype}: use uint8, uint16, bool or float in [0, 1]")
