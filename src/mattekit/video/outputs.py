"""The output types of a video, in one table: a new type is one row here (plus its writer).

Everything that names, offers or checks an output type reads this table: ``infer_output`` and
``resolve_output`` (the library), ``mattekit video --output-type`` (the CLI), the batch's video
suffixes, the jobs API's media types and the page. Light on purpose: the CLI imports it for its
help text, so nothing heavy (numpy, PyAV) is loaded here; writers are named, and imported only
when a clip is written.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOption, option
from ..files import same_file
from ..formats import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from ..options import Options

if TYPE_CHECKING:  # pragma: no cover
    from .writers import Writer, WriterFactory

OutputType = str  # a key of OUTPUTS ("webm", "mov", ...)

# Measured on this project's machines (KNOWN_GROUND.md): realtime/cpu-used 8 is ~6x faster than
# libvpx's defaults; prores_aw is ~5x faster than prores_ks for the same ap4h output.
VP9_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "28", "b": "0"}
PRORES_OPTIONS = {"profile": "4"}
X264_OPTIONS = {"preset": "veryfast", "crf": "18"}


@dataclass(frozen=True)
class OutputSpec:
    """One output type: how a target name picks it, what it carries, and what writes it.

    Attributes:
        name: the type's name (``--output-type``, the jobs API's ``output``).
        suffixes: target extensions that pick this type; the first is the one we name files with
            (``""``: a folder).
        writer: the writer class, or ``"module:Class"`` (imported on first use, so this table
            stays light); it is called as ``writer(tmp_path, spec, audio_stream, rate, time_base)``.
        container, codec, pix_fmt, codec_options: what an FFmpeg writer opens; for the PNG
            writer, ``container`` is ``"zip"`` or ``None`` (a folder).
        alpha: frames are RGBA (transparent); audio: the source's sound can go along.
        frame: what each written frame is: ``"rgba"`` (cut-out), ``"rgb"`` (over the background)
            or ``"alpha"`` (the matte).
        even_sides: the codec needs even width and height (the odd last line is dropped).
        mask: for a suffix several types share (.mp4), this type is picked when ``Options.mask``
            equals it; ``None``: the suffix is its alone.
        media_type: the HTTP content type of the result (the jobs API); ``None``: the jobs API
            does not offer it (a folder cannot be downloaded).
        batch: batch writes videos as this type when asked.
        label: how the web page offers it (``None``: not offered there).
    """

    name: str
    suffixes: tuple[str, ...]
    writer: str | WriterFactory
    container: str | None = None
    codec: str | None = None
    pix_fmt: str | None = None
    codec_options: dict[str, str] = field(default_factory=dict)
    alpha: bool = False
    audio: bool = False
    frame: str = "rgba"
    even_sides: bool = False
    mask: bool | None = None
    media_type: str | None = None
    batch: bool = True
    label: str | None = None

    @property
    def extension(self) -> str:
        """The suffix a file of this type is named with (``""`` for a folder)."""
        return self.suffixes[0]

    @property
    def folder(self) -> bool:
        """The output is a folder of files (its suffix is ``""``), not one file."""
        return self.extension == ""

    @property
    def needs_background(self) -> bool:
        return self.frame == "rgb"

    def make_writer(self, tmp: Path, in_audio: Any, rate: Any, time_base: Any) -> Writer:
        factory = self.writer
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
        return factory(tmp, self, in_audio, rate, time_base)


_AV = "mattekit.video.writers:AvWriter"
_PNG = "mattekit.video.writers:PngWriter"
_MP4 = (".mp4", ".m4v", ".mkv")

# The table. Order is the order types are listed in help texts and error messages.
OUTPUTS: dict[str, OutputSpec] = {
    spec.name: spec
    for spec in (
        OutputSpec(
            "webm",
            (".webm",),
            _AV,
            "webm",
            "libvpx-vp9",
            "yuva420p",
            VP9_OPTIONS,
            alpha=True,
            audio=True,
            media_type="video/webm",
            label="Transparent WebM",
        ),
        OutputSpec(
            "mov",
            (".mov",),
            _AV,
            "mov",
            "prores_aw",
            "yuva444p10le",
            PRORES_OPTIONS,
            alpha=True,
            audio=True,
            even_sides=True,
            media_type="video/quicktime",
            label="Transparent MOV (ProRes)",
        ),
        OutputSpec("png-zip", (".zip",), _PNG, "zip", alpha=True, media_type="application/zip"),
        OutputSpec("png-dir", ("",), _PNG, alpha=True, batch=False),
        OutputSpec(
            "matte",
            _MP4,
            _AV,
            "mp4",
            "libx264",
            "yuv420p",
            X264_OPTIONS,
            audio=True,
            frame="alpha",
            even_sides=True,
            mask=True,
            media_type="video/mp4",
            label="Alpha matte MP4",
        ),
        OutputSpec(
            "composite",
            _MP4,
            _AV,
            "mp4",
            "libx264",
            "yuv420p",
            X264_OPTIONS,
            audio=True,
            frame="rgb",
            even_sides=True,
            mask=False,
            media_type="video/mp4",
            label="MP4 on the background above",
        ),
    )
}

# The built-in names, for code that wants a tuple; OUTPUTS itself is the truth once a type is registered.
OUTPUT_TYPES: tuple[str, ...] = tuple(OUTPUTS)


def register_output(spec: OutputSpec, *, replace: bool = False) -> OutputSpec:
    """Add an output type to the table (``replace``: redefine an existing one). Returns ``spec``."""
    if spec.name in OUTPUTS and not replace:
        raise ValueError(f"output type {spec.name!r} exists (pass replace=True to redefine it)")
    if not spec.suffixes:
        raise ValueError("an output type needs at least one suffix")
    OUTPUTS[spec.name] = spec
    return spec


def output_spec(name: str) -> OutputSpec:
    try:
        return OUTPUTS[name]
    except KeyError:
        raise InvalidOption(f"output type must be one of {', '.join(OUTPUTS)}, not {name!r}") from None


@dataclass(frozen=True)
class VideoOptions:
    """How to write a video (what to do to each frame is :class:`~mattekit.Options`).

    Attributes:
        output: ``webm`` (VP9 with alpha) | ``mov`` (ProRes 4444 with alpha) | ``png-zip`` |
            ``png-dir`` (RGBA PNG frames) | ``matte`` (greyscale H.264 MP4) | ``composite``
            (H.264 MP4 over the background), or a registered type. ``None`` infers it from the
            target's name.
        start, end: the time range to process, in seconds of the source (end exclusive).
        max_frames: process at most this many frames (after ``start``).
        max_duration: refuse clips (after the range) longer than this many seconds.
        audio: keep the source's audio (copied, or re-encoded where the container needs it).
        background_video: a clip to put behind the subject (looped or cut to length); overrides
            ``Options.background`` for ``composite``.
    """

    output: OutputType | None = None
    start: float = 0.0
    end: float | None = None
    max_frames: int | None = None
    max_duration: float | None = None
    audio: bool = True
    background_video: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if self.output is not None:
            output_spec(self.output)
        # nan passes every comparison below (and inf reads to the end of time): refuse both.
        for name in ("start", "end", "max_duration"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise InvalidOption(f"{name} must be a finite number of seconds")
        if self.start < 0:
            raise InvalidOption("start must be 0 or more seconds")
        if self.end is not None and self.end <= self.start:
            raise InvalidOption("end must be after start")
        if self.max_frames is not None and self.max_frames < 1:
            raise InvalidOption("max_frames must be at least 1")
        if self.max_duration is not None and self.max_duration <= 0:
            raise InvalidOption("max_duration must be positive")
        if self.background_video is not None and not Path(self.background_video).is_file():
            raise InvalidOption(f"background video not found: {self.background_video}")


def default_output(options: Options, has_background: bool = False) -> str:
    """The type written when none is asked for and no name says: matte, composite or transparent."""
    if options.mask:
        return "matte"
    return "composite" if options.background is not None or has_background else "webm"


def _by_suffix(suffix: str, options: Options) -> str | None:
    found = [spec for spec in OUTPUTS.values() if suffix in spec.suffixes]
    if len(found) > 1:  # a shared suffix (.mp4): the mask decides
        found = [spec for spec in found if spec.mask is None or spec.mask == bool(options.mask)]
    return found[0].name if found else None


def infer_output(target: str | os.PathLike[str], options: Options, requested: str | None = None) -> str:
    """The output type for ``target``: asked for, or from its extension (a folder → PNG frames).

    A type asked for must agree with the name: ``-t png-zip -o y.webm`` would write a ZIP named
    .webm, so it is refused, as ``mattekit remove`` refuses ``--format jpg -o out.png``.
    """
    text = str(target)
    suffix = Path(text).suffix.lower()
    kind: str | None = requested or None
    if kind:
        output_spec(kind)
        _check_name(text, kind, options)
    if not kind and suffix:
        kind = _by_suffix(suffix, options)
    if not kind and _names_a_folder(text):
        kind = _by_suffix("", options)
    if not kind:
        raise InvalidOption(
            f"cannot tell the output type from {Path(text).name!r}: use .webm or .mov (transparent), "
            f".zip or a folder (PNG frames), .mp4 (with {option('bg')}, or {option('mask')}), or {option('output_type')}"
        )
    output_spec(kind)
    return kind


def _names_a_folder(text: str) -> bool:
    return Path(text).suffix == "" or text.endswith(("/", os.sep)) or Path(text).is_dir()


def _media_suffixes() -> frozenset[str]:
    """Every suffix that says what a file holds: our output types' and the media we read. A name
    with another suffix (``result.bin``) says nothing, so any type may have it."""
    ours = {s for spec in OUTPUTS.values() for s in spec.suffixes if s}
    return frozenset(ours) | VIDEO_SUFFIXES | IMAGE_SUFFIXES


def _check_name(text: str, kind: str, options: Options) -> None:
    """Refuse a target whose name says it holds something other than output type ``kind``:
    the file's name would lie about its bytes."""
    spec = OUTPUTS[kind]
    name = Path(text).name or text
    suffix = Path(text).suffix.lower()
    if spec.folder:
        if suffix in _media_suffixes() and not Path(text).is_dir():
            raise InvalidOption(
                f"the output type {kind} (a folder of PNG frames) contradicts the name {name}: "
                f"name a folder (e.g. {Path(text).stem}/) or leave {option('output_type')} out"
            )
        return
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        raise InvalidOption(
            f"the output type {kind} is one file, and {name} is a folder: "
            f"name a file (e.g. {Path(text.rstrip('/' + os.sep)).name}{spec.extension})"
        )
    if suffix in spec.suffixes or suffix not in _media_suffixes():
        return
    named = _by_suffix(suffix, options) or suffix
    raise InvalidOption(
        f"the output type {kind} contradicts the name {name} ({named}): "
        f"name the file {Path(text).stem}{spec.extension} or leave {option('output_type')} out"
    )


# What each kind of frame is, in the words an error uses (OutputSpec.frame).
_FRAME_WORDS = {"rgba": "a transparent cut-out", "rgb": "the subject over a background", "alpha": "the matte alone"}


def _fix(frame: str) -> str:
    """``name the output .mp4, .m4v or .mkv (--output-type matte)``: how to get frames of kind
    ``frame`` (an OutputSpec.frame), from the table, registered types included."""
    specs = [spec for spec in OUTPUTS.values() if spec.frame == frame]
    suffixes = [s for spec in specs for s in spec.suffixes if s]
    named = ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}" if len(suffixes) > 1 else "".join(suffixes)
    return f"name the output {named} ({' or '.join(option('output_type', spec.name) for spec in specs)})"


def _check_asked(kind: str, options: Options, vopts: VideoOptions) -> None:
    """Refuse options the output type ``kind`` cannot carry: a background (``--bg``) is drawn
    only into a composite, and the matte (``--mask``) is written only by a matte type; any other
    type would silently write a transparent cut-out instead of what was asked."""
    spec = OUTPUTS[kind]
    background = options.background is not None or vopts.background_video is not None
    if options.mask and background:
        raise InvalidOption(
            f"{option('mask')} (the matte alone) and {option('bg')} (a composite) ask for two different videos: give one"
        )
    if options.mask and spec.frame != "alpha":
        raise InvalidOption(
            f"{option('mask')} asks for the matte, and a {kind} output is {_FRAME_WORDS.get(spec.frame, spec.frame)}: "
            f"{_fix('alpha')}, or drop {option('mask')}"
        )
    if background and spec.frame != "rgb":
        raise InvalidOption(
            f"{option('bg')} asks for a background, and a {kind} output is {_FRAME_WORDS.get(spec.frame, spec.frame)}: "
            f"{_fix('rgb')}, or drop {option('bg')}"
        )


def resolve_output(target: str | os.PathLike[str], options: Options, vopts: VideoOptions) -> str:
    """The output type for ``target``, after checking the options make sense for it."""
    kind = infer_output(target, options, vopts.output)
    if options.crop:
        raise InvalidOption("crop is for stills: a video keeps one frame size")
    if OUTPUTS[kind].needs_background and options.background is None and vopts.background_video is None:
        raise InvalidOption(
            f"an MP4 composite needs a background (e.g. {option('bg', 'white')}, blur, an image or a video); "
            f"for transparency write .webm or .mov, for the matte use {option('mask')}"
        )
    _check_asked(kind, options, vopts)
    return kind


def check_not_an_input(
    source: str | os.PathLike[str], target: str | os.PathLike[str], background_video: str | os.PathLike[str] | None = None
) -> None:
    """Refuse a target that is the clip itself (or the background clip): writing it would replace
    the input with its own result, as ``mattekit remove`` refuses for stills. The same file under
    another name (a symlink, a hard link) counts: compared by inode once the target exists."""
    for name in (source, background_video):
        if name is not None and same_file(Path(name), Path(target)):
            raise InvalidOption(f"{name} would be overwritten by its own result; write the video to another file")
