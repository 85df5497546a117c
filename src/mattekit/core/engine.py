"""The matting engine: one ONNX Runtime session for RVM, and the recurrent state it carries.

RVM is a recurrent video model: each call takes the previous frame's hidden state (r1..r4) and
returns the next. For stills the state starts empty; for video a :class:`Stream` carries it from
frame to frame. The session is created lazily, once per process, and ONNX Runtime's ``run`` is
thread-safe, so one engine serves every thread.

On the CPU the engine runs RVM split in two (:mod:`mattekit.core.fastpath`): ONNX Runtime computes
only the low-resolution network, from a sub-model derived once and cached beside the model, and
OpenCV applies the full-resolution tail. ``Engine(fast=False)`` runs the full graph instead: the
reference the split is tested and benchmarked against.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..deadline import Deadline
from ..deadline import check as check_deadline
from ..errors import InvalidInput, InvalidOption, ModelUnavailable
from .fastpath import STATE_IN as _STATE_IN  # RVM's recurrent inputs, in RecurrentState.tensors order
from .lazy import Lazy

log = logging.getLogger("mattekit.core.engine")

Device = Literal["auto", "cpu", "cuda"]

# RVM's guidance: the low-resolution pass works best at roughly 256-512 px on its longer side
# (their table: 1080p -> 0.25, 4K -> 0.125, i.e. ~480 px). This is the plain engine's default,
# and the default preset's for stills; the other presets and video choose their own sizes
# (presets.PRESETS, with the reason for each).
AUTO_TARGET_PX = 512
MIN_SIDE = 16


def auto_ratio(height: int, width: int, target: int = AUTO_TARGET_PX) -> float:
    """The downsample ratio that brings the longer side to about ``target`` pixels (never > 1)."""
    return float(min(1.0, target / max(height, width)))


def resolve_ratio(ratio: str | float, height: int, width: int) -> float:
    if ratio == "auto":
        r = auto_ratio(height, width)
    else:
        r = float(ratio)
        if not 0.0 < r <= 1.0:
            raise InvalidOption(f"ratio must be in (0, 1], not {ratio}")
    # Below ~32 px the network has nothing left to see; clamp rather than fail. "auto" too: on a
    # 30000x30 strip it would leave no rows at all (found by tests/test_fuzz.py).
    return max(r, min(1.0, 32.0 / min(height, width)))


@dataclass
class RecurrentState:
    """RVM's hidden state r1..r4 (NCHW float32). Empty (1x1x1x1 zeros) means 'first frame'."""

    tensors: list = field(default_factory=lambda: [np.zeros((1, 1, 1, 1), np.float32)] * 4)
    shape: tuple[int, int] | None = None  # frame size the state belongs to
    lowres: tuple[int, int] | None = None  # size of the low-resolution pass that made it (the ratio's)

    @classmethod
    def empty(cls) -> RecurrentState:
        return cls()

    @property
    def is_empty(self) -> bool:
        return self.shape is None


@dataclass
class Matte:
    """What the model says about one frame.

    ``alpha`` is float32 HxW in [0, 1]. ``foreground`` is RVM's predicted foreground colour,
    float32 HxWx3 in [0, 1], present when asked for.

    ``foreground_boxes``: where ``foreground`` holds RVM's colour, as (top, bottom, left, right)
    boxes; ``None`` means everywhere. The CPU engine computes it only in boxes covering every
    pixel with 0 < alpha < 1 (:func:`mattekit.core.fastpath.band_boxes`) and leaves zeros elsewhere,
    where alpha is exactly 0 or 1 and the colour is never seen: decontamination
    (:func:`mattekit.compose.decontaminate`, which takes the boxes) gives opaque pixels weight 0,
    and a composite multiplies transparent ones by 0. Consumers must pass the boxes on, or ask
    for ``full_foreground``.
    """

    alpha: np.ndarray
    foreground: np.ndarray | None = None
    foreground_boxes: list[tuple[int, int, int, int]] | None = None

    def alpha_u8(self) -> np.ndarray:
        from ..compose import alpha_to_u8  # the one rounding rule; compose (Pillow) loads only here

        return alpha_to_u8(self.alpha)


def _available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_device(device: str | None = None) -> Device:
    """``device`` or ``MATTEKIT_DEVICE`` or ``auto``, checked."""
    value = (device or os.environ.get("MATTEKIT_DEVICE") or "auto").strip().lower()
    if value not in ("auto", "cpu", "cuda"):
        raise InvalidOption(f"device must be auto, cpu or cuda, not {value!r}")
    return value  # type: ignore[return-value]


def choose_providers(device: Device = "auto", *, quiet: bool = False) -> list[str]:
    """ONNX Runtime providers for ``device``; ``cuda`` without a CUDA build is an error.
    ``quiet``: say the choice at debug level only."""
    available = _available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise InvalidOption(
            "CUDA was asked for, but this ONNX Runtime has no CUDA provider "
            f"(available: {', '.join(available)}). Install the GPU extra "
            "(pip install 'mattekit[gpu]', which needs onnxruntime-gpu in place of onnxruntime) "
            "or use --device cpu."
        )
    (log.debug if quiet else log.info)("device auto: no CUDA provider in this ONNX Runtime; running on the CPU")
    return ["CPUExecutionProvider"]


class Engine:
    """RVM on ONNX Runtime. Create one per process (see :func:`get_engine`); share it freely.

    Args:
        model: path to the ONNX file; ``None`` uses the model store (fetching if needed).
        threads: intra-op threads; ``None``/0 lets ONNX Runtime use every core.
        device: ``auto`` (CUDA when it works, else CPU), ``cpu`` or ``cuda``; ``None`` reads
            ``MATTEKIT_DEVICE`` (default ``auto``).
        fast: on CPU, run only RVM's low-resolution network in ONNX Runtime and the
            full-resolution tail in OpenCV (:mod:`mattekit.core.fastpath`; same output within
            ~0.01/255). ``False`` runs the full graph: the reference the fast path is tested
            and benchmarked against.
        backend: the runtime of the fast path's low-resolution network on frames that carry a
            recurrent state (video, camera; see :meth:`step`), from
            :data:`mattekit.core.backends.BACKENDS`: ``auto`` picks per CPU, ``None`` reads
            ``MATTEKIT_BACKEND`` (default ``auto``). Stills, first frames and the full graph
            always run on ONNX Runtime fp32.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        threads: int | None = None,
        device: str | None = None,
        fast: bool = True,
        backend: str | None = None,
    ) -> None:
        from . import backends

        if threads is not None and threads < 0:
            raise InvalidOption("threads must be 0 (all cores) or a positive number")
        self._model_arg = model
        self.threads = threads or int(os.environ.get("MATTEKIT_THREADS", "0") or 0)
        self.device: Device = resolve_device(device)
        self.fast = fast
        self.backend = backends.resolve(backend)  # onnxruntime once _configure finds no split
        self._prepared = False
        self._split = False  # True when the model runs as fastpath's sub-models + OpenCV tail
        self._paths: dict[str, Path] = {}  # model file of each session: "full", or fastpath.PARTS
        self._sessions: dict[str, object] = {}  # created on first use
        self._session_options: tuple[Any, list[str]] | None = None  # (ort.SessionOptions, providers), by _configure
        self._siblings: dict[int, Engine] = {}  # see with_threads()
        self._quiet = False  # a sibling: its set-up is its parent's, said once, by the parent
        self._lock = threading.RLock()
        self.providers: list[str] = []
        self.model_path: Path | None = None

    # -- sessions ------------------------------------------------------------------------
    @property
    def session(self):
        """The ONNX Runtime session of one model run: the full graph, or on the CPU the
        low-resolution network (:mod:`mattekit.core.fastpath`)."""
        self._prepare()
        return self._part("lowres" if self._split else "full")

    def single_threaded(self) -> Engine:
        """An engine like this one whose model runs on the calling thread only (created once).

        For throughput: N such runs side by side on N cores beat one all-cores run at a time
        (see :mod:`mattekit.pipeline`). Returns ``self`` when this engine is single-threaded.
        """
        return self.with_threads(1)

    def with_threads(self, threads: int) -> Engine:
        """An engine like this one with ``threads`` intra-op threads (created once per count;
        ``self`` when it has that many already): for callers that run several models at once."""
        if threads == self.threads:
            return self
        with self._lock:
            sibling = self._siblings.get(threads)
            if sibling is None:
                sibling = self._siblings[threads] = Engine(
                    self._model_arg, threads=threads, device=self.device, fast=self.fast, backend=self.backend
                )
                sibling._quiet = True
            return sibling

    @property
    def model_arg(self) -> str | Path | None:
        """The model path this engine was created with (None: the model store)."""
        return self._model_arg

    def load(self) -> Engine:
        """Create every session now (e.g. at server start-up) instead of on first use."""
        self._prepare()
        for name in self._paths:
            self._part(name)
        return self

    @property
    def loaded(self) -> bool:
        return bool(self._sessions)

    def _prepare(self) -> None:
        """Find the model, choose providers and options, derive the split's sub-models; once."""
        if self._prepared:
            return
        with self._lock:
            if not self._prepared:
                self._configure()
                self._prepared = True
        if not self._split:  # the full graph's session says now whether CUDA really starts
            self._part("full")

    def _configure(self) -> None:
        import onnxruntime as ort

        from . import store

        info = store.locate(self._model_arg)
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = choose_providers(self.device, quiet=self._quiet)
        # The split pays off where the tail is memory-bound CPU work; on a GPU the full graph's
        # tail is cheap and a host-side tail would cost a copy of A/b plus CPU time.
        parts = {}
        if self.fast and providers[0] == "CPUExecutionProvider":
            parts = self._submodels(info)
        if parts and _share_cpu_arena():
            opts.add_session_config_entry("session.use_env_allocators", "1")
        if parts and self.threads != 1:
            # ONNX Runtime's idle workers spin after a run, on the very cores the OpenCV tail
            # (or the next sub-model's session) then needs; measured, the split was faster without.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._split = bool(parts)
        if not parts:
            self.backend = "onnxruntime"
        self._paths = parts or {"full": info.path}
        self._session_options = (opts, providers)
        self.model_path = info.path
        (log.debug if self._quiet else log.info)(
            "RVM from %s (%s); backend: %s; threads: %s",
            info.path,
            "low-resolution network in sub-models + OpenCV tail" if parts else "full graph",
            self.backend
            if self.backend == "onnxruntime"
            else f"{self.backend} for video frames after the first, onnxruntime for stills",
            self.threads or "all cores",
        )

    def _submodels(self, info) -> dict[str, Path]:
        """The cached sub-models of the split, or {} when they cannot be derived."""
        from . import fastpath, store

        try:
            return fastpath.ensure_submodels(info.path, info.sha256, store.home())
        except Exception as exc:  # e.g. a read-only cache: slower, never broken
            log.warning("using the full graph: could not derive the fast sub-models (%s)", exc)
            return {}

    def _part(self, name: str, backend: str = "onnxruntime"):
        """The session of model ``name`` ("full", or one of fastpath.PARTS) on ``backend``,
        created on first use: a one-pass caller (video, preset ``fast``) never loads the
        multi-pass parts, nor a preset the one-pass network, nor a still another backend."""
        key = name if backend == "onnxruntime" else f"{backend}:{name}"
        session = self._sessions.get(key)
        if session is None:
            from . import backends

            with self._lock:  # re-entrant: a backend may load ONNX Runtime's sessions through plain()
                session = self._sessions.get(key)
                if session is None:
                    assert self._session_options is not None, "_prepare() runs first"
                    path = self._paths[name]
                    try:  # the full graph's backend is always onnxruntime (see _configure)
                        session = backends.load(backend, name, self._paths, self.threads, self._session_options, plain=self._part)
                    except Exception as exc:  # the runtimes raise their own untyped errors for unreadable files
                        raise ModelUnavailable(f"could not load the model {path}: {exc}") from None
                    if not self.providers and hasattr(session, "get_providers"):
                        self.providers = list(session.get_providers())
                        (log.debug if self._quiet else log.info)("ONNX Runtime providers: %s", ", ".join(self.providers))
                    if self.device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
                        raise InvalidOption(
                            "CUDA was asked for, but ONNX Runtime could not start it (driver or CUDA/cuDNN "
                            "libraries missing?); run with --device cpu, or --verbose for ONNX Runtime's reason."
                        )
                    self._sessions[key] = session
        return session

    @property
    def split(self) -> bool:
        """Whether this engine runs the split (fast) path; prepares the engine."""
        self._prepare()
        return self._split

    # -- inference -------------------------------------------------------------------------
    def step(
        self,
        rgb: np.ndarray,
        ratio: str | float = "auto",
        state: RecurrentState | None = None,
        *,
        foreground: bool = False,
        full_foreground: bool = False,
        passes: int = 1,
        deadline: Deadline | None = None,
    ) -> tuple[Matte, RecurrentState]:
        """Run the model on an RGB uint8 HxWx3 frame, carrying ``state``.

        A state recorded at another frame size or another ratio's pass size is dropped (RVM's
        state is spatial).
        ``full_foreground``: the foreground over the whole frame (``foreground_boxes`` None),
        e.g. to average several mattes whose partial bands differ.
        ``passes`` > 1 runs the same frame again with the state it produced (RVM's memory
        settles, as on the frames of a video); the matte is the last pass's.
        ``deadline``: checked before every pass (raises :class:`~mattekit.errors.DeadlineExceeded`).
        A frame that carries a ``state`` runs on the engine's :attr:`backend`; a first run (no
        state: a still, a video's first frame) on ONNX Runtime fp32.
        """
        if passes < 1:
            raise InvalidOption("passes must be at least 1")
        rgb = check_rgb(rgb)
        h, w = rgb.shape[:2]
        r = resolve_ratio(ratio, h, w)
        from .fastpath import lowres_size

        size = lowres_size(h, w, r)
        if state is None or state.shape != (h, w) or state.lowres not in (None, size):
            state = RecurrentState.empty()
        if self.split:
            return self._split_passes(rgb, r, size, state, passes, foreground, full_foreground, deadline)
        session = self.session
        src = (rgb.transpose(2, 0, 1)[None].astype(np.float32)) * np.float32(1.0 / 255.0)
        ratio_feed = np.array([r], dtype=np.float32)
        run_options = arena_run_options(h * w * r * r)
        tensors = state.tensors
        for _ in range(passes):
            check_deadline(deadline)
            feeds = {"src": src, "downsample_ratio": ratio_feed, **dict(zip(_STATE_IN, tensors))}
            fgr, pha, *tensors = session.run(None, feeds, run_options)
        fg = fgr[0].transpose(1, 2, 0) if foreground else None
        return Matte(pha[0, 0], fg), RecurrentState(list(tensors), (h, w), size)

    def _split_passes(
        self,
        rgb: np.ndarray,
        ratio: float,
        size: tuple[int, int],
        state: RecurrentState,
        passes: int,
        foreground: bool,
        full_foreground: bool = False,
        deadline: Deadline | None = None,
    ) -> tuple[Matte, RecurrentState]:
        """``passes`` runs of the low-resolution network on one frame (``size``: its pass size at
        ``ratio``), then the tail once.

        Only the last pass's coefficients reach the output, so repeated passes (presets) cost
        the low-resolution network alone; and of that, the encoder once and the warm-up part of
        the decoder for all but the last pass (:data:`mattekit.core.fastpath.PARTS`).

        The chosen backend runs the frames that carry a state from an earlier frame (a video's,
        a camera's: one size, so a backend's start-up and per-size costs are paid once), one
        pass each as the three stages :mod:`mattekit.core.stages` overlaps, here in turn (the same
        numbers). A first run (every still, a video's first frame) runs on ONNX Runtime fp32, so
        a still's result never depends on what the process ran before, and equals a video's
        first frame.
        """
        from . import fastpath

        check_deadline(deadline)
        if passes == 1 and not state.is_empty:
            staged = self.stage_recur(self.stage_encode(rgb, ratio), state.tensors)
            matte = self.stage_finish(staged, rgb, foreground, full_foreground)
            return matte, RecurrentState([staged[n] for n in fastpath.STATE_OUT], rgb.shape[:2], size)
        lowres = fastpath.downsample(rgb, ratio)
        run_options = _run_options(lowres)
        tensors = state.tensors
        if passes == 1:  # a first run: always ONNX Runtime fp32
            coeff_a, coeff_b, *tensors = self._part("lowres").run(
                None, {fastpath.LOWRES_INPUT: lowres, **dict(zip(_STATE_IN, tensors))}, run_options
            )
        else:
            backend = "onnxruntime" if state.is_empty else self._backend_for(lowres)
            features = self.run_part("encoder", {fastpath.LOWRES_INPUT: lowres}, backend, run_options)
            features[fastpath.LOWRES_INPUT] = lowres
            for name in ["warmup"] * (passes - 1) + ["decoder"]:
                check_deadline(deadline)
                out = self.run_part(name, {**features, **dict(zip(_STATE_IN, tensors))}, backend, run_options)
                tensors = [out[n] for n in fastpath.STATE_OUT]
            coeff_a, coeff_b = out[fastpath.COEFF_A], out[fastpath.COEFF_B]
        check_deadline(deadline)
        return (
            self.finish(coeff_a, coeff_b, rgb, foreground, full_foreground, deadline),
            RecurrentState(list(tensors), rgb.shape[:2], size),
        )

    # -- the three stages of a frame that carries a state (mattekit.core.stages runs them side by side)
    def stage_encode(self, rgb: np.ndarray, ratio: float) -> dict[str, np.ndarray]:
        """Stage 1 of a frame with a state: the model's downsample and its backbone (state-free).
        Returns the tensors the later stages read."""
        from . import fastpath

        return self._backbone(fastpath.downsample(rgb, ratio))

    def _backbone(self, lowres: np.ndarray) -> dict[str, np.ndarray]:
        from . import fastpath

        tensors = self.run_part("backbone", {fastpath.LOWRES_INPUT: lowres}, self._backend_for(lowres), _run_options(lowres))
        tensors[fastpath.LOWRES_INPUT] = lowres
        return tensors

    def stage_recur(self, tensors: dict[str, np.ndarray], state: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Stage 2: the decoder's recurrent blocks, from the previous frame's ``state`` (r1..r4).
        Returns ``tensors`` with what stage 3 reads and the new state (``fastpath.STATE_OUT``)."""
        from . import fastpath

        lowres = tensors[fastpath.LOWRES_INPUT]
        backend = self._backend_for(lowres)
        feeds = {**tensors, **dict(zip(_STATE_IN, state))}
        out = self.run_part("recurrent", feeds, backend, _run_options(lowres))
        # on to stage 3: what it reads (the backbone's other outputs would only use memory)
        read = {i.name for i in self._part("output", backend).get_inputs()}
        return {**{k: v for k, v in tensors.items() if k in read}, **out}

    def network(self, lowres: np.ndarray, state: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """The low-resolution network on ``lowres`` (the model's downsample of a frame) carrying
        ``state`` from an earlier frame, as :meth:`step` runs it: the stage parts in turn, on the
        backend. Its tensors by name, among them A and b (``fastpath.COEFF_A``, ``COEFF_B``) and
        the new state (``fastpath.STATE_OUT``)."""
        tensors = self.stage_recur(self._backbone(lowres), state)
        return {**tensors, **self._output(tensors)}

    def stage_finish(
        self, tensors: dict[str, np.ndarray], rgb: np.ndarray, foreground: bool, full_foreground: bool = False
    ) -> Matte:
        """Stage 3: the rest of the decoder (state-free) and the full-resolution tail."""
        from . import fastpath

        out = self._output(tensors)
        return self.finish(out[fastpath.COEFF_A], out[fastpath.COEFF_B], rgb, foreground, full_foreground)

    def _output(self, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The ``output`` part on what stage 2 handed on: A and b."""
        from . import fastpath

        lowres = tensors[fastpath.LOWRES_INPUT]
        return self.run_part("output", tensors, self._backend_for(lowres), _run_options(lowres))

    def _backend_for(self, lowres: np.ndarray) -> str:
        from . import backends

        return backends.for_pass(self.backend, lowres.shape[2] * lowres.shape[3])

    def run_part(
        self, name: str, feeds: dict[str, np.ndarray], backend: str = "onnxruntime", run_options: Any = None
    ) -> dict[str, np.ndarray]:
        """Sub-model ``name`` of the split (:data:`mattekit.core.fastpath.PARTS`) on ``backend``: its
        outputs by name. ``feeds`` may hold more than the part reads."""
        self._prepare()
        part = self._part(name, backend)
        wanted = {i.name: feeds[i.name] for i in part.get_inputs()}
        return dict(zip((o.name for o in part.get_outputs()), part.run(None, wanted, run_options)))

    def finish(
        self,
        coeff_a: np.ndarray,
        coeff_b: np.ndarray,
        rgb: np.ndarray,
        foreground: bool,
        full_foreground: bool = False,
        deadline: Deadline | None = None,
    ) -> Matte:
        """The split's full-resolution tail: the matte of ``rgb`` from the guided filter's
        coefficients (``foreground``, ``full_foreground``, ``deadline``: see :meth:`step`)."""
        from . import fastpath

        # The foreground only matters in alpha's partial band: computing it there alone cut
        # bench/speed.py "work" (preset fast, CPU-ms per photo) from ~340 to ~295 at 1080p and
        # from ~930 to ~545 at 4K.
        band = foreground and not full_foreground
        alpha, fg = fastpath.tail(
            coeff_a, coeff_b, rgb, foreground=foreground and not band, workers=self.threads, deadline=deadline
        )
        boxes = None
        if band:
            check_deadline(deadline)
            boxes = fastpath.band_boxes(alpha)
            fg = fastpath.band_foreground(coeff_a, coeff_b, rgb, boxes, deadline)
        return Matte(alpha, fg, boxes)

    def matte(
        self,
        rgb: np.ndarray,
        ratio: str | float = "auto",
        *,
        passes: int = 1,
        foreground: bool = False,
        full_foreground: bool = False,
        deadline: Deadline | None = None,
    ) -> Matte:
        """Matte a still. ``passes`` > 1 runs the same image again with the state it produced,
        letting RVM's recurrent memory settle (a measured gain on stills; see bench/quality.py)."""
        return self.step(
            rgb, ratio, None, foreground=foreground, full_foreground=full_foreground, passes=passes, deadline=deadline
        )[0]

    def stream(self, ratio: str | float = "auto", *, foreground: bool = False) -> Stream:
        return Stream(self, ratio, foreground=foreground)


class Stream:
    """Frames of one video through the engine, carrying RVM's recurrent state between them.

    The state resets by itself when the frame size changes; call :meth:`reset` at a scene cut.
    """

    def __init__(self, engine: Engine, ratio: str | float = "auto", *, foreground: bool = False):
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


# From this many low-resolution pixels on (a 1080p frame at ratio 1; the presets' automatic pass
# is at most 0.41 MP), every run hands the memory ONNX Runtime's arena took back to the system
# instead of keeping its largest run's buffers: 4 passes of a 3000x2000 photo at ratio 1 peaked
# at 5.2 GB against 9.2 GB kept, and ran faster (bench/memory.py). Below, re-allocating costs
# more than it saves (+28 % time at 1 MP).
ARENA_SHRINK_PIXELS = 2_000_000


def _run_options(lowres: np.ndarray):
    return arena_run_options(lowres.shape[2] * lowres.shape[3])


def arena_run_options(lowres_pixels: float):
    """``RunOptions`` that shrink the CPU arena after a run this large, else ``None``."""
    if lowres_pixels < ARENA_SHRINK_PIXELS:
        return None
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as a C-contiguous uint8 HxWx3 array, or :class:`InvalidInput` saying what is wrong."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidInput(f"expected an RGB image array HxWx3, got shape {getattr(rgb, 'shape', None)}")
    if rgb.dtype != np.uint8:
        raise InvalidInput(f"expected uint8 pixels, got {rgb.dtype}")
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise InvalidInput(f"image is {rgb.shape[1]}x{rgb.shape[0]} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    return np.ascontiguousarray(rgb)


_arena_lock = threading.Lock()
_arena_shared: bool | None = None  # registered with ONNX Runtime (once per process)?


def _share_cpu_arena() -> bool:
    """Register one CPU memory arena for every session that asks for it (once per process).

    Each session otherwise grows its own arena to its largest run and keeps it: the split's
    four sessions held four peaks (a process that ran every preset on square photos: 969 MB
    peak RSS against 578 MB for one whole-network session). Shared, the sessions reuse the same
    buffers one after another: 413 against 735 MB for 4 passes at 640x640, same speed.
    """
    global _arena_shared
    with _arena_lock:
        if _arena_shared is None:
            import onnxruntime as ort

            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
                _arena_shared = True
            except Exception as exc:  # an ONNX Runtime without it: per-session arenas, as before
                log.info("no shared CPU arena (%s)", exc)
                _arena_shared = False
        return _arena_shared


_engine: Lazy[Engine] = Lazy(Engine)


def get_engine(**kwargs) -> Engine:
    """The process-wide engine, created on first use (thread-safe). ``kwargs`` apply only then."""
    return _engine.get(**kwargs)


def set_engine(engine: Engine | None) -> None:
    """Replace the process-wide engine (e.g. with other threads or an explicit model path)."""
    _engine.set(engine)


def providers_summary(providers: Sequence[str]) -> str:
    return "GPU (CUDA)" if "CUDAExecutionProvider" in providers else "CPU"
