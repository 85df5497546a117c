"""The frames of one video through a model, carrying its recurrent state: one declared
interface, :class:`MatteStream`, and the engine's two ways to run it.

Every stream (:class:`Stream`, :class:`StagedStream`, :class:`mattekit.presets.PresetStream`)
mattes frames one at a time (:meth:`~MatteStream.process`), starts afresh at a scene cut
(:meth:`~MatteStream.reset`), counts its frames, and offers its work as *stages*
(:meth:`~MatteStream.stages`): functions from :class:`Frame` to :class:`Frame`, called in order
on each frame, each of which may run in its own thread (:func:`mattekit.video.process_video`
does). The first stage takes ``Frame(rgb)``; after the last, ``frame.matte`` is set.

:class:`StagedStream` runs the network's three parts (:data:`mattekit.core.derive.PARTS`) as
three stages that overlap::

    backbone    the model's downsample, MobileNetV3 backbone, LR-ASPP    never reads the state
    recurrent   the decoder's recurrent blocks                            reads frame t-1's, writes t's
    output      the decoder's output block and the guided filter's        reads what recurrent hands on
                coefficients, then the full-resolution tail (OpenCV)

so while frame t's recurrent blocks run, frame t+1's backbone and frame t-1's output can run,
each stage in its own thread, each on its share of the cores. Why it pays: one frame's network
spread over all the cores loses time at every op's hand-off (on 2 cores a 2-thread run took
~0.65x of a 1-thread run's time, not 0.5x), while stages side by side on one thread each lose
none of it. ``bench/backends.py`` measures it.

The mattes are :meth:`mattekit.core.engine.Engine.step`'s, number for number: a first frame
runs as a still does (ONNX Runtime fp32, with the recipe's warm-up passes), later frames as the
engine's three part methods on its backend, which ``step`` runs in turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidOption
from . import kernels
from .backends import cpu_cores
from .derive import COEFF_A, COEFF_B, PARTS, STATE_OUT
from .engine import Engine, Matte, RecurrentState, check_rgb
from .passes import pass_ratio

log = logging.getLogger("mattekit.core.streams")


@dataclass
class Frame:
    """One frame on its way through a stream's stages."""

    rgb: np.ndarray  # RGB uint8 HxWx3
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # the network's tensors so far
    matte: Matte | None = None  # set by the last stage (a first frame's: by the first)
    state: list[np.ndarray] | None = None  # the state a first frame leaves, for the recurrent stage


Stage = Callable[[Frame], Frame]


@runtime_checkable
class MatteStream(Protocol):
    """What every stream offers (see the module docstring)."""

    frames: int  # frames matted so far

    def process(self, rgb: np.ndarray) -> Matte:
        """Matte the next frame (RGB uint8 HxWx3)."""
        ...

    def reset(self) -> None:
        """Start afresh at the next frame (a scene cut); between frames, with none in flight."""
        ...

    def stages(self) -> list[Stage]:
        """A new run of this stream's frames as stages to call in order."""
        ...


def run_stages(stages: Sequence[Stage], rgb: np.ndarray) -> Matte:
    """One frame through ``stages`` in turn: its matte."""
    frame = Frame(rgb)
    for stage in stages:
        frame = stage(frame)
    assert frame.matte is not None, "the last stage sets the matte"
    return frame.matte


class Stream:
    """Frames of one video through the engine, carrying RVM's recurrent state; one stage.

    The state resets by itself when the frame size changes; call :meth:`reset` at a scene cut.
    """

    def __init__(self, engine: Engine, ratio: str | float = "auto", *, foreground: bool = False) -> None:
        self.engine = engine
        self.ratio = ratio
        self.foreground = foreground
        self.state = RecurrentState.empty()
        self.frames = 0

    def process(self, rgb: np.ndarray) -> Matte:
        matte, self.state = self.engine.step(rgb, self.ratio, self.state, foreground=self.foreground)
        self.frames += 1
        return matte

    def reset(self) -> None:
        self.state = RecurrentState.empty()

    def stages(self) -> list[Stage]:
        return [one_stage(self.process)]


def one_stage(process: Callable[[np.ndarray], Matte]) -> Stage:
    """A stream's ``process`` as its one stage."""

    def stage(frame: Frame) -> Frame:
        frame.matte = process(frame.rgb)
        return frame

    return stage


class StagedStream:
    """The frames of one video through the network's three parts as overlapping stages,
    carrying RVM's recurrent state.

    ``ratio(height, width)`` gives a frame's downsample ratio; ``first_passes`` runs of the
    network warm up a first frame (at the start, after :meth:`reset`, or when the frame size
    changes). Each stage must see the frames in order, one at a time; different stages may run
    in different threads. ``threads``: intra-op threads per stage (default: the engine's cores
    shared among the stages, at least 1).
    """

    def __init__(
        self,
        engine: Engine,
        ratio: Callable[[int, int], float],
        *,
        foreground: bool = False,
        first_passes: int = 1,
        threads: int | None = None,
    ) -> None:
        if not engine.split:
            raise InvalidOption(
                "the stages need the engine's split CPU model; this engine runs the full graph "
                "(fast=False, or a GPU): run its frames with Engine.step or a preset's stream"
            )
        cores = engine.threads or cpu_cores()
        self.engine = engine.with_threads(threads or max(1, cores // len(PARTS)))
        # A first frame (the start, a reset, a new size) runs as a still on all of the engine's
        # threads: at the start the later stages wait for it, mid-stream it shares the cores with
        # them for that frame. Same numbers: a run's results do not depend on its thread count.
        self._first_engine = engine
        log.info(
            "video frames after the first: %d overlapping model stages, %d thread%s each",
            len(PARTS),
            self.engine.threads,
            "" if self.engine.threads == 1 else "s",
        )
        self.ratio = ratio
        self.foreground = foreground
        self.first_passes = max(1, first_passes)
        self.frames = 0
        self._shape: tuple[int, int] | None = None  # of the last frame through the backbone
        self._state: list[np.ndarray] = RecurrentState.empty().tensors

    def stages(self) -> list[Stage]:
        """The stages in order, one per part of the network (:data:`~mattekit.core.derive.PARTS`)."""
        return [self.backbone, self.recurrent, self.output]

    def process(self, rgb: np.ndarray) -> Matte:
        """One frame through every stage in turn."""
        return run_stages(self.stages(), rgb)

    def reset(self) -> None:
        """Start afresh at the next frame (a scene cut); call it between frames, with none in flight."""
        self._shape = None

    def backbone(self, frame: Frame) -> Frame:
        rgb = frame.rgb = check_rgb(frame.rgb)
        h, w = rgb.shape[:2]
        ratio = pass_ratio(self.ratio(h, w), h, w)  # clamped as Engine.step clamps it
        if self._shape != (h, w):  # a first frame (RVM's state is spatial): as a still, Engine.step
            frame.matte, state = self._first_engine.step(rgb, ratio, None, foreground=self.foreground, passes=self.first_passes)
            frame.state = state.tensors
            self._shape = (h, w)
            return frame
        frame.tensors = self.engine.backbone(kernels.downsample(rgb, ratio))
        return frame

    def recurrent(self, frame: Frame) -> Frame:
        if frame.state is not None:
            self._state = frame.state
            return frame
        frame.tensors = self.engine.recurrent(frame.tensors, self._state)
        self._state = [frame.tensors[n] for n in STATE_OUT]
        return frame

    def output(self, frame: Frame) -> Frame:
        if frame.matte is None:
            coeffs = self.engine.output(frame.tensors)
            frame.matte = self.engine.tail(coeffs[COEFF_A], coeffs[COEFF_B], frame.rgb, self.foreground)
            frame.tensors = {}  # what the stages handed on is spent
        self.frames += 1
        return frame


# The stream classes declare what they are: mypy checks that each has MatteStream's interface.
_STREAMS: tuple[type[MatteStream], ...] = (Stream, StagedStream)
