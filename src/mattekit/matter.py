"""The one path every face uses for stills: decode → engine → compose → encode."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from PIL import Image

from . import compose, decode, encode, presets
from .core import models, route
from .core.engine import Engine, Matte, get_engine
from .deadline import Deadline
from .deadline import check as check_deadline
from .decode import Decoded, ImageSource
from .errors import EmptyResult, MattekitError, ModelUnavailable
from .options import BackgroundImage, Options

if TYPE_CHECKING:
    from .core.models import StillEngine


class Routed(NamedTuple):
    """A matte and the model that made it (``person`` | ``general``); ``kept``, ``notice`` and
    ``empty`` as in :class:`Result`."""

    matte: Matte
    model: str
    kept: float
    notice: str | None
    empty: bool


@dataclass
class Result:
    """A processed still: the picture, and how long each stage took (seconds).

    ``crop_box`` is where a crop cut the frame, ``(left, top, right, bottom)`` in pixels of the
    decoded (upright, resized) photo of ``frame_size`` ``(width, height)``; None when nothing was
    cut. With it a viewer can crop the original to compare like with like.

    ``subject_box`` is the subject's bounding box (alpha above ``crop_threshold``) in pixels of
    ``image``, ``(left, top, right, bottom)``; None when no pixel is that opaque.

    ``model`` is the model that made the matte: ``person`` (RVM) or ``general`` (ISNet).
    ``kept`` is the share of the photo's area the matte keeps (sum of alpha / area). ``empty``
    is True when the result is no cut-out: the person model found no person (no body, by
    :func:`mattekit.core.route.judge`), the general model kept (almost) nothing, or ``subject=auto``
    found no person and the general model is not installed. ``notice`` says so, and how to fix
    it, in words for the user; it is also set, with ``empty`` False, when ``auto`` was unsure
    and the general model was not there to decide. The faces refuse an empty result
    (:meth:`raise_if_empty`) and show a notice as a warning.
    """

    image: Image.Image
    timings: dict[str, float] = field(default_factory=dict)
    crop_box: tuple[int, int, int, int] | None = None
    frame_size: tuple[int, int] | None = None
    subject_box: tuple[int, int, int, int] | None = None
    model: str = "person"
    kept: float = 1.0
    empty: bool = False
    notice: str | None = None

    def raise_if_empty(self) -> Result:
        """:class:`EmptyResult` with :attr:`notice` when the result is empty, else ``self``."""
        if self.empty:
            raise EmptyResult(self.notice or "nothing was kept: no subject found in this photo")
        return self

    def encode(self, fmt: str = "png", quality: int = 90) -> bytes:
        t = time.perf_counter()
        data = encode.encode(self.image, fmt, quality)
        self.timings["encode"] = time.perf_counter() - t
        return data


class Matter:
    """Removes backgrounds with one engine and default options.

    >>> m = Matter()                                        # doctest: +SKIP
    >>> m.remove("portrait.jpg").save("cutout.png")         # doctest: +SKIP
    >>> m.remove("portrait.jpg", Options(background=parse_background("white")))  # doctest: +SKIP
    """

    def __init__(self, options: Options | None = None, engine: Engine | None = None, general: StillEngine | None = None) -> None:
        self.options = options or Options()
        self._engine = engine
        self.general_engine = general  # None: the process-wide one (mattekit.core.models.engine)

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    @property
    def general(self) -> StillEngine:
        """The general model's engine (ISNet; :data:`mattekit.core.models.MODELS`), loaded on first use."""
        return self.general_engine or models.engine("general", threads=self.engine.threads or None)

    def process(
        self, source: ImageSource, options: Options | None = None, *, deadline: Deadline | None = None, **changes: Any
    ) -> Result:
        """``deadline``: checked between the steps and the model's passes (the service's time limit)."""
        opts = (options or self.options).replace(**changes) if changes else (options or self.options)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        decoded = decode.decode(source, opts, deadline=deadline, offer_size=True)  # a refusal may name max_size
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
        routed = self.matte(decoded.rgb, opts, foreground=want_fg, full_foreground=decoded.alpha is not None, deadline=deadline)
        matte = routed.matte
        check_deadline(deadline)
        t2 = time.perf_counter()
        composed = compose.compose(
            decoded,
            matte.alpha,
            matte.foreground,
            opts,
            decontaminate_edges=want_fg,
            foreground_boxes=matte.foreground_boxes,
            deadline=deadline,
        )
        t3 = time.perf_counter()
        timings.update(decode=t1 - t0, matte=t2 - t1, compose=t3 - t2)
        h, w = decoded.rgb.shape[:2]
        box = composed.crop_box
        if box == (0, 0, w, h):
            box = None  # the subject filled the frame: nothing was cut
        return Result(
            composed.image, timings, box, (w, h), composed.subject_box, routed.model, routed.kept, routed.empty, routed.notice
        )

    def matte(
        self,
        rgb: np.ndarray,
        options: Options | None = None,
        *,
        foreground: bool = False,
        full_foreground: bool = False,
        deadline: Deadline | None = None,
    ) -> Routed:
        """The matte of an RGB uint8 array, by the model ``options.subject`` chooses, and what
        came of the choice (:class:`Routed`); nothing composed. ``auto``: RVM first, exactly as
        ``person``; the general model only when RVM's answer does not show a person
        (:mod:`mattekit.core.route`). ``full_foreground``: see :meth:`mattekit.core.engine.Engine.step`."""
        opts = options or self.options
        matte, model, notice, empty = self._matte(rgb, opts, foreground, full_foreground, deadline)
        kept = route.kept_share(matte.alpha)
        if not empty and route.is_empty(matte.alpha, kept):
            notice, empty = _nothing_kept(model, opts, faint=kept >= route.EMPTY_SHARE), True
        return Routed(matte, model, kept, notice, empty)

    def _matte(
        self, rgb: np.ndarray, opts: Options, want_fg: bool, full_fg: bool, deadline: Deadline | None
    ) -> tuple[Matte, str, str | None, bool]:
        unsure: Matte | None = None  # RVM's matte when auto could not tell from it alone
        if opts.subject != "general":
            matte = presets.run(
                self.engine, rgb, opts.preset, opts.ratio, foreground=want_fg, full_foreground=full_fg, deadline=deadline
            )
            verdict = route.judge(matte.alpha)
            if verdict.answer == "none":  # a person too small in the frame? RVM looks closer
                closer = self._closer(rgb, matte.alpha, opts, want_fg, full_fg, deadline)
                if closer is not None:
                    return closer, "person", None, False
            if opts.subject == "person":
                # No body RVM could call a person: its haze over a cat is no cut-out either.
                found = verdict.answer != "none"
                return matte, "person", None if found else _nothing_kept("person", opts), not found
            if verdict.person:
                return matte, "person", None, False
            if not self.general.available():
                if verdict.answer == "none":
                    return matte, "person", f"no person found in this photo, and {models.missing_hint('general')}", True
                return matte, "person", f"no clear person in this photo; {models.missing_hint('general')}", False
            if verdict.answer == "unsure":
                unsure = matte
        elif not self.general.available():
            raise ModelUnavailable(models.missing_hint("general"))
        check_deadline(deadline)
        alpha = self.general.matte(rgb, deadline=deadline)
        if unsure is not None and route.covered(unsure.alpha, alpha) >= route.MIN_COVERED:
            return unsure, "person", None, False  # both models see the same subject: RVM's person
        foreground = compose.estimate_foreground(rgb, alpha) if want_fg else None
        return Matte(alpha, foreground), "general", None, False

    def _closer(
        self, rgb: np.ndarray, alpha: np.ndarray, opts: Options, want_fg: bool, full_fg: bool, deadline: Deadline | None
    ) -> Matte | None:
        """RVM on the crop :func:`mattekit.core.route.zoom_box` names, placed in the whole frame,
        if RVM sees a clear person there; else None."""
        box = route.zoom_box(alpha)
        if box is None:
            return None
        top, bottom, left, right = box
        check_deadline(deadline)
        crop = np.ascontiguousarray(rgb[top:bottom, left:right])
        seen = presets.run(
            self.engine, crop, opts.preset, opts.ratio, foreground=want_fg, full_foreground=full_fg, deadline=deadline
        )
        if not route.judge(seen.alpha).person:
            return None
        placed = Matte(np.zeros(rgb.shape[:2], np.float32))
        placed.alpha[top:bottom, left:right] = seen.alpha
        if seen.foreground is not None:
            placed.foreground = np.zeros((*rgb.shape[:2], 3), np.float32)
            placed.foreground[top:bottom, left:right] = seen.foreground
            inner = seen.foreground_boxes or [(0, bottom - top, 0, right - left)]
            placed.foreground_boxes = [(t + top, b + top, lo + left, r + left) for t, b, lo, r in inner]
        return placed

    def remove(self, source: ImageSource, options: Options | None = None, **changes: Any) -> Image.Image:
        """The cut-out (RGBA), mask (L) or composite (RGB) of ``source`` as a PIL image;
        :class:`EmptyResult` when no subject was found (:meth:`process` returns the empty result
        with its notice instead, for a caller that wants it anyway)."""
        return self.process(source, options, **changes).raise_if_empty().image

    def remove_bytes(self, source: ImageSource, options: Options | None = None, **changes: Any) -> bytes:
        """Like :meth:`remove`, encoded in ``options.format``."""
        opts = (options or self.options).replace(**changes) if changes else (options or self.options)
        return self.process(source, opts).raise_if_empty().encode(opts.format, opts.quality)


def _nothing_kept(model: str, opts: Options, *, faint: bool = False) -> str:
    if model == "person" and opts.subject == "person":
        return (
            "the person model (RVM) found no person in this photo: it cuts out people only; "
            "choose the subject auto or general for other subjects (CLI: --subject)"
        )
    if faint:
        return "no clear subject found in this photo: the model kept only a faint haze, nowhere half opaque"
    return "the model kept nothing of this photo: no subject found"


def _decode_background(source: Any, opts: Options) -> Decoded:
    """The background picture, upright RGB; its errors say they are about the background."""
    try:
        return decode.decode(source, Options(max_pixels=opts.max_pixels))
    except MattekitError as exc:
        raise type(exc)(f"background image: {exc}") from None


def remove(source: ImageSource, options: Options | None = None, **changes: Any) -> Image.Image:
    """Remove the background of a photo: of people (RVM), or of any subject (the general model,
    when installed; ``subject``).

    Args:
        source: a path, encoded bytes, a file object, a PIL image or a numpy array (HxW[x3|4]).
        options: an :class:`~mattekit.Options`; keyword arguments change single fields of it,
            e.g. ``remove("a.jpg", background=Color((255, 255, 255)), crop=True)``.

    Returns:
        RGBA cut-out by default; L mask with ``mask=True``; RGB composite with a background.

    Raises:
        EmptyResult (no subject found: the message says what to do), InvalidInput, TooLarge,
        InvalidOption, ModelUnavailable (all :class:`MattekitError`).
    """
    return Matter(options).remove(source, **changes)
