"""One typed ``Options`` object, validated once, shared by the library, CLI, API and video.

Form fields and CLI flags arrive as strings; :meth:`Options.from_fields` turns them into the same
dataclass the library takes, so an option means the same thing everywhere.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import InvalidOption, option

PresetName = Literal["fast", "balanced", "best"]
Format = Literal["png", "webp", "jpg"]
Fit = Literal["fill", "fit"]
Subject = Literal["auto", "person", "general"]

PRESET_NAMES: tuple[str, ...] = ("fast", "balanced", "best")
FORMATS: tuple[str, ...] = ("png", "webp", "jpg")
SUBJECTS: tuple[str, ...] = ("auto", "person", "general")
DEFAULT_MAX_PIXELS = 64_000_000  # ~8K x 8K: larger is almost surely a mistake or a bomb
MIN_SIDE = 16  # the smallest side a photo may have for the model (and so max_size's floor)
MAX_SIZE_LIMIT = 100_000  # the largest max_size taken
MAX_BLUR_RADIUS = 500.0  # the largest blur radius taken (bg=blur:R and blur=R alike)
# How a yes/no field may be written (forms, flags, query strings): one vocabulary for all of them.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Color:
    """A solid background colour, RGB 0..255."""

    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Blur:
    """A blurred copy of the original photo behind the subject."""

    radius: float = 20.0


@dataclass(frozen=True)
class BackgroundImage:
    """Another picture behind the subject: a path, encoded bytes, a PIL image or an RGB array."""

    source: Any = field(compare=False)
    fit: Fit = "fill"


Background = Color | Blur | BackgroundImage | None


@dataclass(frozen=True)
class Margin:
    """Crop margin around the subject: pixels, or a percentage of the subject's box."""

    value: float = 0.0
    percent: bool = False

    def pixels(self, box_w: int, box_h: int) -> int:
        if self.percent:
            return int(round(max(box_w, box_h) * self.value / 100.0))
        return int(round(self.value))


def parse_ratio(value: str | float | None) -> str | float:
    """``"auto"`` or a downsample ratio in (0, 1]."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return "auto"
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise InvalidOption(f"ratio must be 'auto' or a number in (0, 1], not {value!r}") from None
    if not 0.0 < ratio <= 1.0:
        raise InvalidOption(f"ratio must be in (0, 1], not {ratio}")
    return ratio


def parse_color(value: str) -> Color:
    """``#rrggbb``, ``#rgb``, ``rgb(…)`` or a CSS colour name."""
    from PIL import ImageColor

    try:
        rgb = ImageColor.getrgb(value.strip())
    except (ValueError, AttributeError):
        raise InvalidOption(f"unknown colour {value!r}: use a name like 'white' or a hex value like '#00ff00'") from None
    if len(rgb) == 4 and rgb[3] != 255:
        # Refused, not made opaque without a word: a see-through background is not drawn (yet).
        raise InvalidOption(
            f"the colour {value!r} is partly transparent: give an opaque colour, e.g. '#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}'"
        )
    return Color(tuple(int(c) for c in rgb[:3]))  # type: ignore[arg-type]


def parse_margin(value: str | int | float | Margin | None) -> Margin:
    """``"12"`` pixels or ``"5%"`` of the subject's size."""
    if value is None or value == "":
        return Margin()
    if isinstance(value, Margin):
        number, percent = value.value, value.percent
    else:
        text = str(value).strip().lower()
        percent = text.endswith("%")
        try:
            number = float(text[:-1] if percent else text.removesuffix("px"))
        except ValueError:
            raise InvalidOption(f"margin must be pixels like '16' or a percentage like '5%', not {value!r}") from None
    if not math.isfinite(number) or number < 0 or (percent and number > 1000) or (not percent and number > 100_000):
        raise InvalidOption(f"margin {value!r} is out of range")
    return Margin(number, percent)


def parse_background(value: str | Background, fit: Fit = "fill", *, allow_paths: bool = True) -> Background:
    """``transparent`` | a colour | ``blur`` / ``blur:RADIUS`` | an existing image path.

    ``allow_paths=False`` refuses file paths: text from a web form must never read server files.
    """
    if value is None or isinstance(value, (Color, Blur, BackgroundImage)):
        return value
    if not isinstance(value, str):
        return BackgroundImage(value, fit)
    text = value.strip()
    low = text.lower()
    if low in ("", "none", "transparent"):
        return None
    if low == "blur" or low.startswith("blur:"):
        radius = 20.0
        if ":" in low:
            try:
                radius = float(low.split(":", 1)[1])
            except ValueError:
                raise InvalidOption(f"blur radius must be a number, as in 'blur:20', not {value!r}") from None
        if not 0 < radius <= MAX_BLUR_RADIUS:
            raise InvalidOption(f"blur radius must be in (0, {MAX_BLUR_RADIUS:g}]")
        return Blur(radius)
    from pathlib import Path

    looks_like_path = any(sep in text for sep in ("/", "\\")) or Path(text).suffix.lower() in (
        ".jpg",
        ".jpeg",
        ".png",
        ".webp",
        ".bmp",
        ".tif",
        ".tiff",
        ".gif",
        ".heic",
        ".heif",
    )
    if looks_like_path and not allow_paths:
        raise InvalidOption("a background image must be uploaded, not named by a path")
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise InvalidOption(f"background image not found: {text}")
        return BackgroundImage(path, fit)
    try:
        return parse_color(text)
    except InvalidOption:
        if allow_paths and Path(text).expanduser().is_file():  # an image file without a suffix
            return BackgroundImage(Path(text).expanduser(), fit)
        raise


def _as_int(name: str, value: Any) -> int:
    """``int(value)``, or an InvalidOption instead of Python's TypeError/OverflowError (fuzzing)."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidOption(f"{name} must be an integer, not {value!r}") from None


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise InvalidOption(f"{name} must be true or false, not {value!r}")


def _parse_blur(value: Any) -> Blur | None:
    """The ``blur`` field: true (the default radius), false or empty (no blur), or a radius.
    Its own parser, not ``bg=blur:...``'s, so a refusal quotes what the client sent in ``blur``."""
    if isinstance(value, bool):
        return Blur() if value else None
    text = str(value).strip().lower()
    if text in FALSE_WORDS:
        return None
    if text in TRUE_WORDS:
        return Blur()
    refusal = f"blur must be true, false or a radius in (0, {MAX_BLUR_RADIUS:g}], not {value!r}"
    try:
        radius = float(text)
    except ValueError:
        raise InvalidOption(refusal) from None
    if not 0 < radius <= MAX_BLUR_RADIUS:  # nan included
        raise InvalidOption(refusal)
    return Blur(radius)


@dataclass(frozen=True)
class Options:
    """What to do with one image (or each frame of a video).

    Attributes:
        preset: quality/speed trade-off, ``fast`` | ``balanced`` (default) | ``best``.
        ratio: RVM downsample ratio, ``"auto"`` (chosen from the image size) or a float in (0, 1].
            ``0.25`` reproduces the original demo.
        format: output encoding for stills, ``png`` | ``webp`` | ``jpg``.
        mask: return the alpha matte alone (greyscale) instead of the cut-out.
        background: ``None`` (transparent), :class:`Color`, :class:`Blur` or :class:`BackgroundImage`.
        crop: crop the result to the subject (alpha above ``crop_threshold``) plus ``margin``.
        margin: crop margin, pixels or percent.
        crop_threshold: alpha (0..1) above which a pixel counts as subject for cropping.
        max_size: if set, shrink the input so its longer side is at most this many pixels.
        max_pixels: refuse inputs with more pixels than this (decompression-bomb guard).
        max_lowres_pixels: refuse a ``ratio`` that would run the network on more pixels than
            this (its memory grows with them: ~1 KB per low-resolution pixel); ``None``, the
            library's default, allows any. The presets' automatic size stays far below.
        decontaminate: replace edge colours by RVM's predicted foreground where alpha is partial,
            so no halo of the old background remains. ``None`` = the preset's choice.
        quality: JPEG/WebP quality 1..100 (WebP 100 = lossless).
        subject: which model mattes a still: ``auto`` (default: RVM first, the general model
            when RVM finds no person; see :mod:`mattekit.core.route`), ``person`` (RVM only, as
            before) or ``general`` (the general model, ISNet; fetched only on request:
            ``mattekit model fetch general``). Video and the camera are person-only.
    """

    preset: PresetName = "balanced"
    ratio: str | float = "auto"
    format: Format = "png"
    mask: bool = False
    background: Background = None
    crop: bool = False
    margin: Margin = Margin()
    crop_threshold: float = 0.05
    max_size: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_lowres_pixels: int | None = None
    decontaminate: bool | None = None
    quality: int = 90
    subject: Subject = "auto"

    def __post_init__(self) -> None:
        if self.preset not in PRESET_NAMES:
            raise InvalidOption(f"preset must be one of {', '.join(PRESET_NAMES)}, not {self.preset!r}")
        subject = str(self.subject or "auto").strip().lower()
        if subject not in SUBJECTS:
            raise InvalidOption(f"subject must be one of {', '.join(SUBJECTS)}, not {self.subject!r}")
        object.__setattr__(self, "subject", subject)
        fmt = "jpg" if str(self.format).lower() == "jpeg" else str(self.format).lower()
        if fmt not in FORMATS:
            raise InvalidOption(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        object.__setattr__(self, "format", fmt)
        object.__setattr__(self, "ratio", parse_ratio(self.ratio))
        object.__setattr__(self, "margin", parse_margin(self.margin))
        if not isinstance(self.background, (type(None), Color, Blur, BackgroundImage)):
            object.__setattr__(self, "background", parse_background(self.background))
        if isinstance(self.background, BackgroundImage) and self.background.fit not in ("fill", "fit"):
            raise InvalidOption(f"a background image fits by 'fill' or 'fit', not {self.background.fit!r}")
        if not 0.0 <= self.crop_threshold < 1.0:
            raise InvalidOption("crop_threshold must be in [0, 1)")
        if self.max_size is not None and not MIN_SIDE <= _as_int("max_size", self.max_size) <= MAX_SIZE_LIMIT:
            raise InvalidOption(f"max_size must be between {MIN_SIDE} and {MAX_SIZE_LIMIT} pixels")
        if _as_int("max_pixels", self.max_pixels) < 1:
            raise InvalidOption("max_pixels must be positive")
        if self.max_lowres_pixels is not None and _as_int("max_lowres_pixels", self.max_lowres_pixels) < 1:
            raise InvalidOption("max_lowres_pixels must be positive")
        if not 1 <= _as_int("quality", self.quality) <= 100:
            raise InvalidOption("quality must be between 1 and 100")
        if fmt == "jpg" and self.background is None and not self.mask:
            raise InvalidOption(
                f"JPEG has no transparency: choose png or webp, or give a background (e.g. {option('bg', 'white')})"
            )

    def replace(self, **changes: Any) -> Options:
        """A copy with some fields changed (validated again); an unknown name is an InvalidOption."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise InvalidOption(
                f"unknown option {unknown[0]!r}: the options are {', '.join(f.name for f in dataclasses.fields(self))}"
            )
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any], base: Options | None = None, *, allow_paths: bool = False) -> Options:
        """Build from string fields (CLI flags, form fields, query parameters).

        Unknown names raise :class:`InvalidOption`; ``bg`` is the background as text (a colour,
        ``blur``, ``transparent``, or—with ``allow_paths``, for the CLI only—an image path) or
        the background image itself (bytes, PIL image, array); ``bg_fit`` is ``fill`` or ``fit``.
        Paths are refused by default so a web form can never make the server read its own files.
        """
        base = base or cls()
        known = {f.name for f in dataclasses.fields(cls)} | {"bg", "bg_fit", "blur"}
        changes: dict[str, Any] = {}
        for name, value in fields.items():
            if value is None:
                continue
            if name not in known:
                raise InvalidOption(f"unknown option {name!r}")
            if name in ("mask", "crop"):
                changes[name] = _parse_bool(name, value)
            elif name == "decontaminate":
                changes[name] = None if str(value).lower() in ("", "auto") else _parse_bool(name, value)
            elif name in ("max_size", "max_pixels", "quality"):
                if value == "" and name != "max_size":
                    continue  # an empty form field means "the default", not "no limit"
                try:
                    changes[name] = None if value == "" else int(value)
                except (TypeError, ValueError, OverflowError):
                    raise InvalidOption(f"{name} must be an integer, not {value!r}") from None
            elif name == "crop_threshold":
                try:
                    changes[name] = float(value)
                except (TypeError, ValueError):
                    raise InvalidOption(f"crop_threshold must be a number, not {value!r}") from None
            elif name in ("bg", "bg_fit", "blur", "background"):
                continue  # read below, together
            else:
                changes[name] = value
        fit = str(fields.get("bg_fit") or "fill").lower()
        if fit not in ("fill", "fit"):
            raise InvalidOption(f"bg_fit must be 'fill' or 'fit', not {fit!r}")
        blur = _parse_blur(fields["blur"]) if fields.get("blur") is not None else None
        # ``background`` (the field's own name) is ``bg`` by another name: the same rules, paths
        # included, or a form could name a server file through it.
        given = [name for name in ("bg", "background") if fields.get(name) is not None]
        if len(given) > 1:
            raise InvalidOption("give the background as bg or as background, not both")
        if blur is not None:
            changes["background"] = blur
        elif given:
            changes["background"] = parse_background(fields[given[0]], fit, allow_paths=allow_paths)  # type: ignore[arg-type]
        return dataclasses.replace(base, **changes)
