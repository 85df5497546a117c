"""Quality presets: how many model runs, at which downsample ratios, with what extras.

A preset is a still :class:`Recipe` and a video :class:`Recipe` over the public engine API
(:meth:`Engine.step`). Each recipe is chosen for a reason that does not depend on two dev people
(README, "Quality"; ``bench/quality.py`` measures them):

``fast`` (stills: one pass, 448 px long side)
    The network's cost follows its input's pixels: a smaller pass is cheaper, for bulk work.
    448 px is one step below RVM's published rule; at 384 px a half-body portrait's hair thins
    out (worse than the demo for person C on 6 of 7 backgrounds).
``balanced`` (stills, the default: one pass, 512 px long side)
    RVM's published rule (its authors' ``downsample_ratio`` table: the low-resolution pass's
    longer side about 512 px), so the model costs about what the original demo's fixed 0.25 did
    on a 1080p photo: its gain is in speed, clean colours and a size rule that holds at every
    photo size, not in a dev-set margin.
``best`` (stills: the default's 512 px pass and its mirror image, three passes each, averaged)
    Two mechanisms, each of which holds whatever the photo, and neither a size picked on the
    dev set. *Averaging*: for every pixel |mean(aᵢ) − g| ≤ mean(|aᵢ − g|), so the average's SAD is
    never above its members' mean; the mirror image is a draw of the same model on the same
    content (RVM was trained with flips), so its expected error is the default pass's own, and
    the average's expected error is at most that. It stays at RVM's size rule on purpose:
    averaging larger passes (the previous ``best``: 576, 640 and 768 px) brought in their
    failures, which differ by person and background (person E on ``seeding``: 2.7-5x the demo at
    640-768 px). *Passes*: RVM is a video model; on a still its recurrent state starts empty,
    and a few repeated passes let it settle as it does on video frames (more than a few did not
    hold on other people). It promises no margin over the demo on new people; see
    docs/quality.md for what it measured per person.

Stills (``run``)
    Each recipe runs RVM once per *member* — one low-resolution size (``targets``) and, with
    ``flip``, its mirror image — and averages the members' alphas (and foregrounds). Each
    member repeats the same photo ``passes`` times, carrying RVM's recurrent state.

    A fixed ``ratio`` (a float, e.g. ``0.25`` as in the original demo) replaces ``targets``: the
    recipe then runs that one ratio, still with its passes and flip.

Video (``stream``)
    Every preset runs one 640 px pass per frame: on video a larger pass than the stills' rule
    *is* steadier (dtSSD on the GT clip, and on another clip in the independent check), and the
    recurrent state carried from frame to frame is the warm-up, so the video recipe's ``passes``
    only apply to the first frame after a start or :meth:`PresetStream.reset`. Frame by frame::

        s = presets.stream(engine, options.preset, options.ratio, foreground=want_fg)
        for rgb in frames:            # RGB uint8 HxWx3
            matte = s.process(rgb)    # Matte(alpha, foreground)
        s.reset()                     # at a scene cut

    :func:`mattekit.video.process_video` runs ``s.stages()`` instead, each in its own thread
    (:mod:`mattekit.core.streams`): the same mattes, more frames per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .core.engine import Engine, Matte, RecurrentState
from .core.passes import AUTO_TARGET_PX, pass_ratio
from .deadline import Deadline
from .errors import InvalidOption, TooLarge

if TYPE_CHECKING:
    from .core.streams import Frame, MatteStream, Stage, StagedStream


@dataclass(frozen=True)
class Recipe:
    name: str
    targets: tuple[int, ...]  # low-resolution long side (px) of each member, for ratio="auto"
    passes: int  # runs of the same image per member, carrying RVM's recurrent state
    flip: bool  # also run each member on the mirror image
    decontaminate: bool  # default for Options.decontaminate=None

    def ratios(self, ratio: str | float, height: int, width: int) -> list[float]:
        """The downsample ratio of each member for an image of this size (duplicates dropped)."""
        if ratio != "auto":
            return [pass_ratio(ratio, height, width)]
        found: list[float] = []
        for target in self.targets:
            r = pass_ratio(ratio, height, width, target)
            if r not in found:
                found.append(r)
        return found

    def members(self, ratio: str | float, height: int, width: int) -> list[tuple[float, bool]]:
        """(ratio, mirrored) of each model input, in run order."""
        flips = (False, True) if self.flip else (False,)
        return [(r, f) for r in self.ratios(ratio, height, width) for f in flips]

    def runs(self, ratio: str | float, height: int, width: int) -> int:
        """Model runs one still costs (the time a preset takes is about proportional to it)."""
        return len(self.members(ratio, height, width)) * self.passes


@dataclass(frozen=True)
class Preset:
    name: str
    still: Recipe
    video: Recipe  # one member at the video size; its passes warm up the first frame


# Why each recipe: the module docstring. Video keeps the sizes and first-frame warm-ups it had.
PRESETS: dict[str, Preset] = {
    "fast": Preset(
        "fast",
        still=Recipe("fast", targets=(448,), passes=1, flip=False, decontaminate=True),
        video=Recipe("fast", targets=(640,), passes=1, flip=False, decontaminate=True),
    ),
    "balanced": Preset(
        "balanced",
        still=Recipe("balanced", targets=(AUTO_TARGET_PX,), passes=1, flip=False, decontaminate=True),
        video=Recipe("balanced", targets=(640,), passes=4, flip=False, decontaminate=True),
    ),
    "best": Preset(
        "best",
        still=Recipe("best", targets=(AUTO_TARGET_PX,), passes=3, flip=True, decontaminate=True),
        video=Recipe("best", targets=(640,), passes=10, flip=False, decontaminate=True),
    ),
}
RECIPES: dict[str, Recipe] = {name: p.still for name, p in PRESETS.items()}  # the stills' recipes


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidOption(f"preset must be one of {', '.join(PRESETS)}, not {name!r}") from None


def recipe(name: str) -> Recipe:
    """The preset's recipe for stills."""
    return preset(name).still


def video_recipe(name: str) -> Recipe:
    """The preset's recipe for the frames of a video."""
    return preset(name).video


def check_lowres(name: str, ratio: str | float, height: int, width: int, limit: int | None, *, video: bool = False) -> None:
    """:class:`TooLarge` when the preset's largest low-resolution pass exceeds ``limit`` pixels.

    The network's memory follows its input, not the photo: ``ratio`` 1 on a 12 MP photo needs
    gigabytes (``bench/memory.py``), an automatic pass (640 px at most) about 0.3 megapixel.
    """
    if limit is None:
        return
    rec = video_recipe(name) if video else recipe(name)
    largest = max(rec.ratios(ratio, height, width))
    pixels = height * width * largest * largest
    if pixels > limit:
        raise TooLarge(
            f"ratio {ratio} on a {width}x{height} image runs the model on {pixels / 1e6:.1f} MP; "
            f"the limit here is {limit / 1e6:.1f} MP: use a smaller ratio (or auto), or max_size"
        )


def _mirror(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, ::-1])


def _average(mattes: list[Matte], mirrored: list[bool]) -> Matte:
    alpha = np.zeros_like(mattes[0].alpha)
    fg: np.ndarray | None = None
    for m, f in zip(mattes, mirrored):
        alpha += m.alpha[:, ::-1] if f else m.alpha
        if m.foreground is not None:
            part = m.foreground[:, ::-1] if f else m.foreground
            fg = part.copy() if fg is None else fg + part
    n = np.float32(1.0 / len(mattes))
    return Matte(alpha * n, None if fg is None else fg * n)


def run_recipe(
    engine: Engine,
    rgb: np.ndarray,
    rec: Recipe,
    ratio: str | float = "auto",
    *,
    foreground: bool = False,
    full_foreground: bool = False,
    deadline: Deadline | None = None,
) -> Matte:
    """Matte one still with a recipe: every member, ``passes`` runs each, averaged.

    ``full_foreground``, ``deadline``: see :meth:`mattekit.core.engine.Engine.step`."""
    h, w = rgb.shape[:2]
    mattes, mirrored = [], []
    members = list(rec.members(ratio, h, w))
    for r, flip in members:
        src = _mirror(rgb) if flip else rgb
        # Members' partial bands differ (alpha 0 in one and 1 in another averages to 0.5):
        # averaging needs each member's foreground everywhere.
        mattes.append(
            engine.matte(
                src,
                r,
                passes=rec.passes,
                foreground=foreground,
                full_foreground=full_foreground or len(members) > 1,
                deadline=deadline,
            )
        )
        mirrored.append(flip)
    return mattes[0] if len(mattes) == 1 else _average(mattes, mirrored)


def run(
    engine: Engine,
    rgb: np.ndarray,
    preset: str,
    ratio: str | float,
    *,
    foreground: bool,
    full_foreground: bool = False,
    deadline: Deadline | None = None,
) -> Matte:
    """Matte one still with a preset."""
    return run_recipe(
        engine, rgb, recipe(preset), ratio, foreground=foreground, full_foreground=full_foreground, deadline=deadline
    )


class PresetStream:
    """A preset applied to the frames of one video: one recurrent state per member.

    A :class:`mattekit.core.streams.MatteStream`, as the engine's own streams are.
    """

    def __init__(self, engine: Engine, rec: Recipe, ratio: str | float = "auto", *, foreground: bool = False) -> None:
        self.engine = engine
        self.recipe = rec
        self.ratio = ratio
        self.foreground = foreground
        self.frames = 0
        self._states: dict[tuple[float, bool], RecurrentState] = {}
        self._staged: StagedStream | None = None  # the run of stages(), where it has stages

    def reset(self) -> None:
        """Start afresh at the next frame (a scene cut), on :meth:`process` and on the run of
        :meth:`stages` alike; between frames, with none in flight."""
        self._states = {}
        if self._staged is not None:
            self._staged.reset()

    def process(self, rgb: np.ndarray) -> Matte:
        h, w = rgb.shape[:2]
        mattes, mirrored = [], []
        members = list(self.recipe.members(self.ratio, h, w))
        for key in members:
            r, flip = key
            src = _mirror(rgb) if flip else rgb
            state = self._states.get(key)
            # A missing state or one from another frame size means a first frame: warm it up.
            warm = self.recipe.passes if state is None or state.shape != (h, w) else 1
            matte, state = self.engine.step(
                src, r, state, foreground=self.foreground, full_foreground=len(members) > 1, passes=warm
            )
            self._states[key] = state
            mattes.append(matte)
            mirrored.append(flip)
        self.frames += 1
        return mattes[0] if len(mattes) == 1 else _average(mattes, mirrored)

    def stages(self) -> list[Stage]:
        """A new run of this stream's frames as stages (:class:`mattekit.core.streams.Stage`),
        each of which may run in its own thread. A one-member recipe (every video recipe) on the
        split engine runs as :class:`mattekit.core.streams.StagedStream`'s three stages, which
        overlap from frame to frame; others as one stage, :meth:`process`."""
        from .core.streams import StagedStream, one_stage

        self._staged = None
        self.reset()
        if len(self.recipe.targets) == 1 and not self.recipe.flip and self.engine.split:

            def ratio(height: int, width: int) -> float:
                return self.recipe.ratios(self.ratio, height, width)[0]

            self._staged = StagedStream(self.engine, ratio, foreground=self.foreground, first_passes=self.recipe.passes)
            *first, last = self._staged.stages()

            def output(frame: Frame) -> Frame:
                frame = last(frame)
                self.frames += 1  # as process() counts
                return frame

            return [*first, output]
        return [one_stage(self.process)]


def stream(engine: Engine, preset: str, ratio: str | float = "auto", *, foreground: bool = False) -> PresetStream:
    """The preset's way through the frames of a video (see the module docstring)."""
    return PresetStream(engine, video_recipe(preset), ratio, foreground=foreground)


if TYPE_CHECKING:
    _STREAM: type[MatteStream] = PresetStream  # mypy checks it has the one stream interface
