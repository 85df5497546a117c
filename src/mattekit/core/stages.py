"""A video's frames through the model in three stages that overlap, for more frames per second.

RVM carries a recurrent state from frame to frame, so a frame's network cannot start before the
previous frame's is done; but only part of the network reads that state. The split's
low-resolution network is cut in three (the ``backbone``, ``recurrent`` and ``output`` parts of
:data:`mattekit.core.fastpath.PARTS`)::

    encode   the model's own downsample, MobileNetV3 backbone, LR-ASPP    never reads the state
    recur    the decoder's recurrent blocks                                reads frame t-1's, writes t's
    finish   the decoder's output block and the guided filter's            reads what recur hands on
             coefficients, then the full-resolution tail (OpenCV)

so while frame t's recurrent blocks run, frame t+1 can be encoded and frame t-1 finished, each
stage in its own thread (:func:`mattekit.video.process_video` runs them so), each on its share
of the cores. Why it pays: one frame's network spread over all the cores loses time at every
op's hand-off (on 2 cores a 2-thread run took ~0.65x of a 1-thread run's time, not 0.5x), while
stages side by side on one thread each lose none of it. ``bench/backends.py`` measures it.

The mattes are :meth:`mattekit.core.engine.Engine.step`'s, number for number: a first frame runs as a
still does (ONNX Runtime fp32, with the recipe's warm-up passes), later frames as the engine's
three stage methods on its backend, which ``step`` runs in turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidOption
from .backends import cpu_cores
from .engine import Engine, Matte, RecurrentState, check_rgb, resolve_ratio
from .fastpath import STATE_OUT

STAGES = ("encode", "recur", "finish")

log = logging.getLogger("mattekit.core.stages")


@dataclass
class Frame:
    """One frame on its way from one stage to the next."""

    rgb: np.ndarray
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # the network's tensors so far
    matte: Matte | None = None  # a first frame's, matted whole by the first stage
    state: list[np.ndarray] | None = None  # ... and the state it leaves


class StagedStream:
    """The frames of one video through :data:`STAGES`, carrying RVM's recurrent state.

    ``ratio(height, width)`` gives a frame's downsample ratio; ``first_passes`` runs of the
    network warm up a first frame (at the start, after :meth:`reset`, or when the frame size
    changes). Each stage method must see the frames in order, one at a time; different stages
    may run in different threads. ``threads``: intra-op threads per stage (default: the engine's
    cores shared among the stages, at least 1).
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
        self.engine = engine.with_threads(threads or max(1, cores // len(STAGES)))
        # A first frame (the start, a reset, a new size) runs as a still on all of the engine's
        # threads: at the start the later stages wait for it, mid-stream it shares the cores with
        # them for that frame. Same numbers: a run's results do not depend on its thread count.
        self._first_engine = engine
        log.info(
            "video frames after the first: %d overlapping model stages, %d thread%s each",
            len(STAGES),
            self.engine.threads,
            "" if self.engine.threads == 1 else "s",
        )
        self.ratio = ratio
        self.foreground = foreground
        self.first_passes = max(1, first_passes)
        self.frames = 0
        self._shape: tuple[int, int] | None = None  # of the last frame encoded
        self._state: list[np.ndarray] = RecurrentState.empty().tensors

    def stages(self) -> list[Callable[[Any], Any]]:
        """The stages in order: the first takes an RGB uint8 frame, the last returns its Matte."""
        return [self.encode, self.recur, self.finish]

    def process(self, rgb: np.ndarray) -> Matte:
        """One frame through every stage in turn."""
        value: Any = rgb
        for stage in self.stages():
            value = stage(value)
        return value

    def reset(self) -> None:
        """Start afresh at the next frame (a scene cut); call it between frames, with none in flight."""
        self._shape = None

    def encode(self, rgb: np.ndarray) -> Frame:
        rgb = check_rgb(rgb)
        h, w = rgb.shape[:2]
        ratio = resolve_ratio(self.ratio(h, w), h, w)  # clamped as Engine.step clamps it
        if self._shape != (h, w):  # a first frame (RVM's state is spatial): as a still, Engine.step
            matte, state = self._first_engine.step(rgb, ratio, None, foreground=self.foreground, passes=self.first_passes)
            self._shape = (h, w)
            return Frame(rgb, matte=matte, state=state.tensors)
        return Frame(rgb, self.engine.stage_encode(rgb, ratio))

    def recur(self, frame: Frame) -> Frame:
        if frame.state is not None:
            self._state = frame.state
            return frame
        frame.tensors = self.engine.stage_recur(frame.tensors, self._state)
        self._state = [frame.tensors[n] for n in STATE_OUT]
        return frame

    def finish(self, frame: Frame) -> Matte:
        matte = frame.matte if frame.matte is not None else self.engine.stage_finish(frame.tensors, frame.rgb, self.foreground)
        self.frames += 1
        return matte
