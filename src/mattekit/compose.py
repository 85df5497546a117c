"""Compose: the picture the user asked for from a decoded still and its matte — cut-out (RGBA),
mask (L) or composite (RGB) — with edge decontamination, a background and the crop. Pure
functions on numpy arrays; :func:`compose` returns a :class:`Composed` (the picture and where it
was cut).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from .deadline import Deadline
from .deadline import check as check_deadline
from .decode import Decoded, decode, with_alpha
from .errors import InvalidOption
from .options import BackgroundImage, Blur, Color, Margin, Options

log = logging.getLogger("mattekit.compose")


def combine_alpha(alpha: np.ndarray, own_alpha: np.ndarray | None) -> np.ndarray:
    """Our alpha, never more opaque than the input's own transparency. float32 in [0, 1]."""
    if own_alpha is None:
        return alpha
    bounded: np.ndarray = np.minimum(alpha, own_alpha.astype(np.float32) * np.float32(1.0 / 255.0))
    return bounded


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
    out: np.ndarray = rgb.copy()
    for top, bottom, left, right in boxes:
        tile = (slice(top, bottom), slice(left, right))
        out[tile] = _blend(rgb[tile], alpha[tile], foreground[tile])
    return out


def _blend(rgb: np.ndarray, alpha: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    weight = np.clip((1.0 - alpha) * 10.0, 0.0, 1.0)[:, :, None]
    fg = foreground * np.float32(255.0)
    out = rgb.astype(np.float32) * (1.0 - weight) + fg * weight
    blended: np.ndarray = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return blended


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


@dataclass(frozen=True)
class Composed:
    """What :func:`compose` made, and where.

    Attributes:
        image: the picture: cut-out (RGBA), mask (L) or composite (RGB).
        crop_box: where a crop cut the frame, ``(left, top, right, bottom)`` in the decoded
            picture's pixels, so a caller can line the original up with the result; ``None``: not cut.
        subject_box: the subject's box in ``image`` (also when a background hides the alpha:
            remove.bg's ``X-Foreground-*``); ``None``: nothing above the crop threshold.
    """

    image: Image.Image
    crop_box: tuple[int, int, int, int] | None = None
    subject_box: tuple[int, int, int, int] | None = None


def compose(
    decoded: Decoded,
    alpha: np.ndarray,
    foreground: np.ndarray | None,
    options: Options,
    *,
    decontaminate_edges: bool = True,
    foreground_boxes: Sequence[Box] | None = None,
    deadline: Deadline | None = None,
) -> Composed:
    """The picture the user asked for: cut-out (RGBA), mask (L) or composite (RGB), and where it was cut.

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
        return Composed(Image.fromarray(a8, "L"), box, subject)
    colours = decontaminate(rgb, alpha, foreground, foreground_boxes) if decontaminate_edges else rgb
    check_deadline(deadline)
    if options.background is None:
        return Composed(Image.fromarray(with_alpha(colours, a8), "RGBA"), box, subject)
    bg = background_array(options.background, rgb)
    return Composed(Image.fromarray(over(colours, alpha, bg), "RGB"), box, subject)
