"""The one path every face uses for stills: decode → engine → compose → encode."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

from PIL import Image

from . import imaging, presets
from .deadline import Deadline
from .deadline import check as check_deadline
from .engine import Engine, get_engine
from .errors import MattekitError
from .imaging import Decoded, ImageSource
from .options import BackgroundImage, Options

__all__ = ["Result", "Matter", "remove"]


@dataclass
class Result:
    """A processed still: the picture, and how long each stage took (seconds).

    ``crop_box`` is where a crop cut the frame, ``(left, top, right, bottom)`` in pixels of the
    decoded (upright, resized) photo of ``frame_size`` ``(width, height)``; None when nothing was
    cut. With it a viewer can crop the original to compare like with like.

    ``subject_box`` is the subject's bounding box (alpha above ``crop_threshold``) in pixels of
    ``image``, ``(left, top, right, bottom)``; None when no pixel is that opaque.
    """

    image: Image.Image
    timings: dict[str, float] = field(default_factory=dict)
    crop_box: Optional[tuple[int, int, int, int]] = None
    frame_size: Optional[tuple[int, int]] = None
    subject_box: Optional[tuple[int, int, int, int]] = None

    def encode(self, fmt: str = "png", quality: int = 90) -> bytes:
        t = time.perf_counter()
        data = imaging.encode(self.image, fmt, quality)
        self.timings["encode"] = time.perf_counter() - t
        return data


class Matter:
    """Removes backgrounds with one engine and default options.

    >>> m = Matter()                                        # doctest: +SKIP
    >>> m.remove("portrait.jpg").save("cutout.png")         # doctest: +SKIP
    >>> m.remove("portrait.jpg", Options(background=parse_background("white")))  # doctest: +SKIP
    """

    def __init__(self, options: Optional[Options] = None, engine: Optional[Engine] = None) -> None:
        self.options = options or Options()
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    def process(self, source: ImageSource, options: Optional[Options] = None, *,
                deadline: Optional[Deadline] = None, **changes: Any) -> Result:
        """``deadline``: checked between the steps and the model's passes (the service's time limit)."""
        opts = (options or self.options).replace(**changes) if changes else (options or self.options)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        decoded = imaging.decode(source, opts, deadline=deadline)
        bg = opts.background
        if isinstance(bg, BackgroundImage) and not isinstance(bg.source, Decoded) and not opts.mask:
            # before the model runs: a bad background image should cost nothing
            opts = opts.replace(background=BackgroundImage(_decode_background(bg.source, opts), bg.fit))
        height, width = decoded.rgb.shape[:2]
        presets.check_lowres(opts.preset, opts.ratio, height, width, opts.max_lowres_pixels)
        check_deadline(deadline)
        t1 = time.perf_counter()
        recipe = presets.recipe(opts.preset)
        clean = recipe.decontaminate if opts.decontaminate is None else opts.decontaminate
        want_fg = clean and not opts.mask
        # The photo's own transparency can make alpha partial where RVM's is 1, outside the band
        # where the engine computes the foreground: ask for all of it then.
        matte = presets.run(self.engine, decoded.rgb, opts.preset, opts.ratio, foreground=want_fg,
                            full_foreground=decoded.alpha is not None, deadline=deadline)
        check_deadline(deadline)
        t2 = time.perf_counter()
        image = imaging.compose(decoded, matte.alpha, matte.foreground, opts, decontaminate_edges=want_fg,
                                foreground_boxes=matte.foreground_boxes, deadline=deadline)
        t3 = time.perf_counter()
        timings.update(decode=t1 - t0, matte=t2 - t1, compose=t3 - t2)
        h, w = decoded.rgb.shape[:2]
        box = image.info.pop("crop_box", None)
        subject = image.info.pop("subject_box", None)
        if box == (0, 0, w, h):
            box = None  # the subject filled the frame: nothing was cut
        return Result(image, timings, box, (w, h), subject)

    def remove(self, source: ImageSource, options: Optional[Options] = None, **changes: Any) -> Image.Image:
        """The cut-out (RGBA), mask (L) or composite (RGB) of ``source`` as a PIL image."""
        return self.process(source, options, **changes).image

    def remove_bytes(self, source: ImageSource, options: Optional[Options] = None, **changes: Any) -> bytes:
        """Like :meth:`remove`, encoded in ``options.format``."""
        opts = (options or self.options).replace(**changes) if changes else (options or self.options)
        return self.process(source, opts).encode(opts.format, opts.quality)


def _decode_background(source: Any, opts: Options) -> Decoded:
    """The background picture, upright RGB; its errors say they are about the background."""
    try:
        return imaging.decode(source, Options(max_pixels=opts.max_pixels))
    except MattekitError as exc:
        raise type(exc)(f"background image: {exc}") from None


def remove(source: ImageSource, options: Optional[Options] = None, **changes: Any) -> Image.Image:
    """Remove the background of a photo of people.

    Args:
        source: a path, encoded bytes, a file object, a PIL image or a numpy array (HxW[x3|4]).
        options: an :class:`~mattekit.Options`; keyword arguments change single fields of it,
            e.g. ``remove("a.jpg", background=Color((255, 255, 255)), crop=True)``.

    Returns:
        RGBA cut-out by default; L mask with ``mask=True``; RGB composite with a background.

    Raises:
        InvalidInput, TooLarge, InvalidOption, ModelUnavailable (all :class:`MattekitError`).
    """
    return Matter(options).remove(source, **changes)
