"""Stills: decode any image to upright RGB, compose the cut-out, encode the result.

Pure functions on numpy arrays and PIL images; nothing here knows about the model.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps

from .deadline import Deadline
from .deadline import check as check_deadline
from .errors import Cancelled, DeadlineExceeded, InvalidInput, InvalidOption, TooLarge, option
from .options import DEFAULT_MAX_PIXELS, BackgroundImage, Blur, Color, Margin, Options

__all__ = [
    "BLUR_FULL_SIGMA",
    "CONTENT_TYPES",
    "EXTENSIONS",
    "MAX_JPEG_SCANS",
    "PNG_COMPRESS_LEVEL",
    "READABLE",
    "READ_FORMATS",
    "Box",
    "Decoded",
    "ImageSource",
    "alpha_to_u8",
    "background_array",
    "combine_alpha",
    "compose",
    "crop_boxes",
    "decode",
    "decontaminate",
    "encode",
    "estimate_foreground",
    "gaussian_blur",
    "open_image",
    "over",
    "shrink",
    "subject_box",
    "to_rgb_alpha",
    "with_alpha",
]

log = logging.getLogger("mattekit.imaging")

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


# -- decode ----------------------------------------------------------------------------------
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
    source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS, max_size: int | None = None, *, offer_size: bool = False
) -> Image.Image:
    """Open (lazily, header only) and check the pixel count before anything is decoded.

    With ``max_size``, a JPEG is set to decode at 1/2, 1/4 or 1/8 scale (libjpeg's own reduction)
    when that still leaves ``max_size`` pixels on its longer side, and the limit holds for what
    is decoded: a 54 MP photo asked for at 1024 px is decoded at 1/8 scale, 0.8 MP, however
    large the limit is. See :data:`REDUCED_JPEG_BOUND` for how far past the limit that goes.
    ``offer_size``: the caller can ask for a smaller size (the photo, not a background), so a
    refusal that one would avoid says so.

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
        return fp.tell() == 0
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
    img = opened = open_image(source, options.max_pixels, options.max_size, offer_size=offer_size)
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


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """uint8 as is; uint16 scaled from 0..65535; bool; float in [0, 1]."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        clean = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(clean * 255.0 + 0.5, 0, 255).astype(np.uint8)
    raise InvalidInput(f"unsupported array dtype {arr.dtype}: use uint8, uint16, bool or float in [0, 1]")


# -- compose ---------------------------------------------------------------------------------
def combine_alpha(alpha: np.ndarray, own_alpha: np.ndarray | None) -> np.ndarray:
    """Our alpha, never more opaque than the input's own transparency. float32 in [0, 1]."""
    if own_alpha is None:
        return alpha
    return np.minimum(alpha, own_alpha.astype(np.float32) * np.float32(1.0 / 255.0))


Box = tuple[int, int, int, int]  # (top, bottom, left, right), as in engine.Matte.foreground_boxes


def _blur_fusion(
    image: np.ndarray, fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    k = (radius, radius)
    a3 = alpha[:, :, None]
    blurred_a = cv2.blur(alpha, k)[:, :, None]
    blurred_f = cv2.blur(fg * a3, k) / (blurred_a + 1e-5)
    blurred_b = cv2.blur(bg * (1.0 - a3), k) / ((1.0 - blurred_a) + 1e-5)
    out = blurred_f + a3 * (image - a3 * blurred_f - (1.0 - a3) * blurred_b)
    return np.clip(out, 0.0, 1.0, out=out), blurred_b


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The subject's own colour (float32 HxWx3 in [0, 1]) where alpha is partial, for a model
    that predicts alpha only (the general model): Forte and Pitié's blur-fusion estimator
    (*Approximate Fast Foreground Colour Estimation*, ICIP 2021), two passes of box filters
    (radius 90, then 6). Box filters cost the same at any radius: ~0.1 s at 1080p, where
    PyMatting's multi-level solver takes seconds."""
    image = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    a = np.ascontiguousarray(alpha, dtype=np.float32)
    fg, bg = _blur_fusion(image, image, image, a, 90)
    fg, _ = _blur_fusion(image, fg, bg, a, 6)
    return fg


def decontaminate(
    rgb: np.ndarray, alpha: np.ndarray, foreground: np.ndarray | None, boxes: Sequence[Box] | None = None
) -> np.ndarray:
    """Edge colours from RVM's predicted foreground where alpha is partial; opaque pixels untouched.

    Where alpha < 1 the observed colour is a mix of subject and old background; the predicted
    foreground is RVM's estimate of the subject's own colour there. The blend weight rises
    smoothly from 0 (opaque) to 1 (alpha <= 0.9) so no seam appears at the band's inner edge.

    ``boxes`` (``Matte.foreground_boxes``): blend only inside them and keep the original colours
    elsewhere, where alpha is exactly 0 or 1; ``None`` blends the whole frame. Composites and
    visible pixels are the same either way; fully transparent pixels outside the boxes keep the
    photo's colour (as other cut-out tools do) instead of RVM's guess.
    """
    if foreground is None:
        return rgb
    if boxes is None:
        return _blend(rgb, alpha, foreground)
    out = rgb.copy()
    for top, bottom, left, right in boxes:
        tile = (slice(top, bottom), slice(left, right))
        out[tile] = _blend(rgb[tile], alpha[tile], foreground[tile])
    return out


def _blend(rgb: np.ndarray, alpha: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    weight = np.clip((1.0 - alpha) * 10.0, 0.0, 1.0)[:, :, None]
    fg = foreground * np.float32(255.0)
    out = rgb.astype(np.float32) * (1.0 - weight) + fg * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# Rows of a picture converted between two deadline checks: the whole of a 50 MP matte took 0.96 s
# here in one go; 256 rows of it take ~40 ms.
_ALPHA_ROWS = 256


def alpha_to_u8(alpha: np.ndarray, deadline: Deadline | None = None) -> np.ndarray:
    """A float matte in [0, 1] as 8-bit alpha, rounded to nearest (``deadline``: checked every
    ``_ALPHA_ROWS`` rows)."""
    if deadline is None:
        return np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out = np.empty(alpha.shape, np.uint8)
    for y in range(0, alpha.shape[0], _ALPHA_ROWS):
        check_deadline(deadline)
        rows = slice(y, y + _ALPHA_ROWS)
        out[rows] = np.clip(alpha[rows] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def with_alpha(rgb: np.ndarray, a8: np.ndarray) -> np.ndarray:
    """HxWx4 RGBA from HxWx3 RGB and HxW uint8 alpha.

    OpenCV's channel conversion then one strided write: 1.2 ms at 1080p against 8.1 ms for
    ``np.dstack``, which interleaves through numpy's generic copy (measured side by side).
    """
    import cv2

    out = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2RGBA)
    out[:, :, 3] = a8
    return out


def crop_boxes(boxes: Sequence[Box] | None, crop: tuple[int, int, int, int]) -> list[Box] | None:
    """``boxes`` in the coordinates of ``crop`` = (left, top, right, bottom), clipped to it."""
    if boxes is None:
        return None
    x0, y0, x1, y1 = crop
    out = []
    for top, bottom, left, right in boxes:
        top, bottom, left, right = max(top, y0) - y0, min(bottom, y1) - y0, max(left, x0) - x0, min(right, x1) - x0
        if top < bottom and left < right:
            out.append((top, bottom, left, right))
    return out


BLUR_FULL_SIGMA = 8.0


def gaussian_blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur whose cost does not grow with ``sigma``.

    OpenCV's cost is pixels × sigma: blur:500 on a 1 MP photo took 30 s, and on the service's
    largest image hours (tests/test_fuzz.py). A wide blur keeps no fine detail, so above
    ``BLUR_FULL_SIGMA`` the blur runs on a copy shrunk to bring sigma down to it and is scaled
    back up: at sigma 10-80 on a real photo this differs from the exact blur by at most 2/255
    (mean 0.2) and is 2-200x faster.
    """
    import cv2

    h, w = rgb.shape[:2]
    if sigma <= BLUR_FULL_SIGMA:
        return cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    scale = BLUR_FULL_SIGMA / sigma
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma * sw / w, sigmaY=sigma * sh / h, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def background_array(bg: Color | Blur | BackgroundImage, rgb: np.ndarray) -> np.ndarray:
    """The background layer as RGB uint8 of the same size as ``rgb``."""
    h, w = rgb.shape[:2]
    if isinstance(bg, Color):
        # A real array, not a broadcast view: over() needs contiguous input, and video caches
        # this layer once per clip instead of copying a view on every frame.
        return np.full((h, w, 3), bg.rgb, np.uint8)
    if isinstance(bg, Blur):
        sigma = max(0.5, bg.radius * max(h, w) / 1000.0)  # radius is per 1000 px: same look at any size
        return gaussian_blur(rgb, sigma)
    if isinstance(bg, BackgroundImage):
        src = bg.source
        if isinstance(src, Decoded):
            pic = Image.fromarray(src.rgb)
        else:
            pic = Image.fromarray(decode(src).rgb)
        if bg.fit == "fill":
            pic = ImageOps.fit(pic, (w, h), Image.Resampling.LANCZOS)
            return np.asarray(pic)
        pic = ImageOps.contain(pic, (w, h), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (w, h), (0, 0, 0))
        canvas.paste(pic, ((w - pic.width) // 2, (h - pic.height) // 2))
        return np.asarray(canvas)
    raise InvalidOption(f"unknown background {bg!r}")


def over(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """``fg·α + bg·(1-α)``, rounded to uint8.

    One fused, multi-threaded OpenCV pass: the same sum in numpy float32 took ~8 passes over
    full-size float copies (the slowest stage of a 1080p video composite). OpenCV divides by
    ``α + (1-α) + 1e-5``, which moves a result by at most 0.003 of a level before rounding.
    """
    import cv2

    a = np.ascontiguousarray(alpha, dtype=np.float32)
    return cv2.blendLinear(np.ascontiguousarray(fg), np.ascontiguousarray(bg), a, np.float32(1.0) - a)


def subject_box(alpha: np.ndarray, threshold: float, margin: Margin) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) around alpha > threshold, widened by ``margin``; None if empty."""
    mask = alpha > threshold
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    pad = margin.pixels(right - left, bottom - top)
    h, w = alpha.shape
    return max(0, left - pad), max(0, top - pad), min(w, right + pad), min(h, bottom + pad)


def compose(
    decoded: Decoded,
    alpha: np.ndarray,
    foreground: np.ndarray | None,
    options: Options,
    *,
    decontaminate_edges: bool = True,
    foreground_boxes: Sequence[Box] | None = None,
    deadline: Deadline | None = None,
) -> Image.Image:
    """The picture the user asked for: cut-out (RGBA), mask (L) or composite (RGB).

    ``foreground_boxes``: where ``foreground`` is valid (``Matte.foreground_boxes``; None: everywhere).
    ``deadline``: checked between the steps, each one pass over the picture, and inside
    ``alpha_to_u8`` (which took 0.96 s at 50 MP here in one go).
    """
    alpha = combine_alpha(alpha, decoded.alpha)
    check_deadline(deadline)
    box = subject_box(alpha, options.crop_threshold, options.margin) if options.crop else None
    if options.crop and box is None:
        log.warning("nothing above the crop threshold: kept the whole image instead of cropping")
    rgb = decoded.rgb
    if box is not None:
        x0, y0, x1, y1 = box
        alpha, rgb = alpha[y0:y1, x0:x1], rgb[y0:y1, x0:x1]
        foreground = foreground[y0:y1, x0:x1] if foreground is not None else None
        foreground_boxes = crop_boxes(foreground_boxes, box)
    a8 = alpha_to_u8(alpha, deadline)
    check_deadline(deadline)
    # Where the subject is in the result, also when a background hides the alpha (remove.bg's
    # X-Foreground-*): a few ms on a still, against hundreds in the model.
    subject = subject_box(alpha, options.crop_threshold, Margin())
    if options.mask:
        return _cropped(Image.fromarray(a8, "L"), box, subject)
    colours = decontaminate(rgb, alpha, foreground, foreground_boxes) if decontaminate_edges else rgb
    check_deadline(deadline)
    if options.background is None:
        return _cropped(Image.fromarray(with_alpha(colours, a8), "RGBA"), box, subject)
    bg = background_array(options.background, rgb)
    return _cropped(Image.fromarray(over(colours, alpha, bg), "RGB"), box, subject)


def _cropped(image: Image.Image, box: tuple[int, int, int, int] | None, subject: tuple[int, int, int, int] | None) -> Image.Image:
    """Records where :func:`compose` cut the frame (``info["crop_box"]``, None = not cut), so the
    caller can line the original up with the result, and the subject's box in the result
    (``info["subject_box"]``); :class:`mattekit.matter.Matter` pops both."""
    image.info["crop_box"] = box
    image.info["subject_box"] = subject
    return image


# -- encode ----------------------------------------------------------------------------------
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
