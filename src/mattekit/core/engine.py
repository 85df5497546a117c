"""The matting engine: RVM on ONNX Runtime, one method per part of its network, and the
recurrent state it carries.

RVM is a recurrent video model: each call takes the previous frame's hidden state (r1..r4) and
returns the next. For stills the state starts empty; for video a stream
(:mod:`mattekit.core.streams`) carries it from frame to frame. The sessions are created lazily,
once per process, and ONNX Runtime's ``run`` is thread-safe, so one engine serves every thread.

On the CPU the engine runs RVM split: ONNX Runtime (or another backend,
:mod:`mattekit.core.backends`) computes only the low-resolution network, from sub-models derived
once and cached beside the model (:mod:`mattekit.core.derive`), and numpy/OpenCV the model's
downsample and full-resolution tail (:mod:`mattekit.core.kernels`). The network's three parts
are methods: :meth:`Engine.backbone`, :meth:`Engine.recurrent`, :meth:`Engine.output`; then
:meth:`Engine.tail`. ``Engine(fast=False)`` runs the full graph instead: the reference the split
is tested and benchmarked against.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..deadline import Deadline
from ..deadline import check as check_deadline
from ..errors import InvalidInput, InvalidOption, ModelUnavailable
from ..options import MIN_SIDE
from . import backends, kernels, runtime
from .derive import COEFF_A, COEFF_B, LOWRES_INPUT, STATE_IN, STATE_OUT
from .lazy import Lazy
from .passes import pass_ratio, pass_size

if TYPE_CHECKING:
    from .backends import Session
    from .store import ModelInfo

log = logging.getLogger("mattekit.core.engine")

Tensors = dict[str, np.ndarray]


def _empty_state() -> list[np.ndarray]:
    return [np.zeros((1, 1, 1, 1), np.float32)] * 4


@dataclass
class RecurrentState:
    """RVM's hidden state r1..r4 (NCHW float32). Empty (1x1x1x1 zeros) means 'first frame'."""

    tensors: list[np.ndarray] = field(default_factory=_empty_state)
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
    pixel with 0 < alpha < 1 (:func:`mattekit.core.kernels.band_boxes`) and leaves zeros elsewhere,
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


class Engine:
    """RVM on ONNX Runtime. Create one per process (see :func:`get_engine`); share it freely.

    Args:
        model: path to the ONNX file; ``None`` uses the model store (fetching if needed).
        threads: intra-op threads; ``None``/0 lets ONNX Runtime use every core.
        device: ``auto`` (CUDA when it works, else CPU), ``cpu`` or ``cuda``; ``None`` reads
            ``MATTEKIT_DEVICE`` (default ``auto``).
        fast: on CPU, run only RVM's low-resolution network in ONNX Runtime and the
            full-resolution tail in OpenCV (:mod:`mattekit.core.kernels`; same output within
            ~0.01/255). ``False`` runs the full graph: the reference the fast path is tested
            and benchmarked against.
        backend: the runtime of the split's low-resolution network on frames that carry a
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
        if threads is not None and threads < 0:
            raise InvalidOption("threads must be 0 (all cores) or a positive number")
        self._model_arg = model
        self.threads = threads or int(os.environ.get("MATTEKIT_THREADS", "0") or 0)
        self.device: runtime.Device = runtime.resolve_device(device)
        self.fast = fast
        self.backend = backends.resolve(backend)  # onnxruntime once _configure finds no split
        self._prepared = False
        self._split = False  # True when the model runs as derive's sub-models + the kernels' tail
        self._paths: dict[str, Path] = {}  # model file of each session: "full", or derive.SUBMODELS
        self._sessions: dict[str, Session] = {}  # created on first use
        self._session_options: tuple[Any, list[str]] | None = None  # (ort.SessionOptions, providers), by _configure
        self._siblings: dict[int, Engine] = {}  # see with_threads()
        self._quiet = False  # a sibling: its set-up is its parent's, said once, by the parent
        self._lock = threading.RLock()
        self.providers: list[str] = []
        self.model_path: Path | None = None

    # -- sessions ------------------------------------------------------------------------
    @property
    def session(self) -> Session:
        """The ONNX Runtime session of one model run: the full graph, or on the CPU the
        low-resolution network (sub-model ``network``, :mod:`mattekit.core.derive`)."""
        self._prepare()
        return self._session("network" if self._split else "full")

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
            self._session(name)
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
            self._session("full")

    def _configure(self) -> None:
        from .models import rvm

        info = rvm.STORE.locate(self._model_arg)
        providers = runtime.choose_providers(self.device, quiet=self._quiet)
        # The split pays off where the tail is memory-bound CPU work; on a GPU the full graph's
        # tail is cheap and a host-side tail would cost a copy of A/b plus CPU time.
        parts: dict[str, Path] = {}
        if self.fast and providers[0] == "CPUExecutionProvider":
            parts = self._submodels(info)
        # ONNX Runtime's idle workers spin after a run, on the very cores the OpenCV tail (or the
        # next sub-model's session) then needs; measured, the split was faster without.
        opts = runtime.session_options(
            self.threads,
            shared_arena=bool(parts) and runtime.share_cpu_arena(),
            spinning=not parts or self.threads == 1,
        )
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

    def _submodels(self, info: ModelInfo) -> dict[str, Path]:
        """The cached sub-models of the split, or {} when they cannot be derived."""
        from . import derive, store

        try:
            return derive.ensure_submodels(info.path, info.sha256, store.home())
        except Exception as exc:  # e.g. a read-only cache: slower, never broken
            log.warning("using the full graph: could not derive the fast sub-models (%s)", exc)
            return {}

    def _session(self, name: str, backend: str = "onnxruntime") -> Session:
        """The session of model ``name`` ("full", or one of derive.SUBMODELS) on ``backend``,
        created on first use: a one-pass caller (video, preset ``fast``) never loads the
        multi-pass sub-models, nor a preset the one-pass network, nor a still another backend."""
        key = name if backend == "onnxruntime" else f"{backend}:{name}"
        session = self._sessions.get(key)
        if session is None:
            with self._lock:  # re-entrant: a backend may load ONNX Runtime's sessions through plain()
                session = self._sessions.get(key)
                if session is None:
                    assert self._session_options is not None, "_prepare() runs first"
                    path = self._paths[name]
                    try:  # the full graph's backend is always onnxruntime (see _configure)
                        session = backends.load(
                            backend, name, self._paths, self.threads, self._session_options, plain=self._session
                        )
                    except Exception as exc:  # the runtimes raise their own untyped errors for unreadable files
                        raise ModelUnavailable(f"could not load the model {path}: {exc}") from None
                    # ONNX Runtime's sessions say which providers run them; another backend's do not
                    started: list[str] = list(getattr(session, "get_providers", list)())
                    if not self.providers and hasattr(session, "get_providers"):
                        self.providers = started
                        (log.debug if self._quiet else log.info)("ONNX Runtime providers: %s", ", ".join(self.providers))
                    if self.device == "cuda" and "CUDAExecutionProvider" not in started:
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
        ``deadline``: checked before every pass (raises :class:`~mattekit.errors.DeadlineExceeded`);
        its :meth:`~mattekit.deadline.Deadline.cancel` stops a pass in progress.
        A frame that carries a ``state`` runs on the engine's :attr:`backend`; a first run (no
        state: a still, a video's first frame) on ONNX Runtime fp32.
        """
        if passes < 1:
            raise InvalidOption("passes must be at least 1")
        rgb = check_rgb(rgb)
        h, w = rgb.shape[:2]
        r = pass_ratio(ratio, h, w)
        size = pass_size(h, w, r)
        if state is None or state.shape != (h, w) or state.lowres not in (None, size):
            state = RecurrentState.empty()
        if self.split:
            return self._split_passes(rgb, r, size, state, passes, foreground, full_foreground, deadline)
        session = self.session
        src = (rgb.transpose(2, 0, 1)[None].astype(np.float32)) * np.float32(1.0 / 255.0)
        ratio_feed = np.array([r], dtype=np.float32)
        run_options = runtime.arena_run_options(h * w * r * r)
        tensors = state.tensors
        with runtime.interruptible(run_options, deadline) as run_options:
            for _ in range(passes):
                check_deadline(deadline)
                feeds = {"src": src, "downsample_ratio": ratio_feed, **dict(zip(STATE_IN, tensors))}
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
        the low-resolution network alone; and of that, the backbone once and the recurrent part
        for all but the last pass (the sub-models ``backbone_all``, ``recurrent_state`` and
        ``recurrent_output``, :data:`mattekit.core.derive.SUBMODELS`).

        The chosen backend runs the frames that carry a state from an earlier frame (a video's,
        a camera's: one size, so a backend's start-up and per-size costs are paid once), one
        pass each as :meth:`backbone`, :meth:`recurrent` and :meth:`output`, the parts the
        stages of :class:`mattekit.core.streams.StagedStream` overlap, here in turn (the same
        numbers). A first run (every still, a video's first frame) runs on ONNX Runtime fp32,
        so a still's result never depends on what the process ran before, and equals a video's
        first frame.
        """
        check_deadline(deadline)
        if passes == 1 and not state.is_empty:
            tensors = self.recurrent(self.backbone(kernels.downsample(rgb, ratio)), state.tensors)
            coeffs = self.output(tensors)
            matte = self.tail(coeffs[COEFF_A], coeffs[COEFF_B], rgb, foreground, full_foreground)
            return matte, RecurrentState([tensors[n] for n in STATE_OUT], (rgb.shape[0], rgb.shape[1]), size)
        lowres = kernels.downsample(rgb, ratio)
        state_tensors = state.tensors
        with runtime.interruptible(runtime.pass_run_options(lowres), deadline) as run_options:
            if passes == 1:  # a first run: always ONNX Runtime fp32
                coeff_a, coeff_b, *state_tensors = self._session("network").run(
                    None, {LOWRES_INPUT: lowres, **dict(zip(STATE_IN, state_tensors))}, run_options
                )
            else:
                backend = "onnxruntime" if state.is_empty else self._backend_for(lowres)
                features = self.run_submodel("backbone_all", {LOWRES_INPUT: lowres}, backend, run_options)
                features[LOWRES_INPUT] = lowres
                out: Tensors = {}
                for name in ["recurrent_state"] * (passes - 1) + ["recurrent_output"]:
                    check_deadline(deadline)
                    feeds = {**features, **dict(zip(STATE_IN, state_tensors))}
                    out = self.run_submodel(name, feeds, backend, run_options)
                    state_tensors = [out[n] for n in STATE_OUT]
                coeff_a, coeff_b = out[COEFF_A], out[COEFF_B]
        check_deadline(deadline)
        return (
            self.tail(coeff_a, coeff_b, rgb, foreground, full_foreground, deadline),
            RecurrentState(list(state_tensors), (rgb.shape[0], rgb.shape[1]), size),
        )

    # -- the network's three parts (mattekit.core.streams.StagedStream runs them side by side) --
    def backbone(self, lowres: np.ndarray) -> Tensors:
        """Part 1 of a frame that carries a state, on ``lowres`` (the model's downsample of the
        frame, :func:`mattekit.core.kernels.downsample`): never reads the state. Returns the
        tensors the later parts read."""
        tensors = self.run_submodel(
            "backbone", {LOWRES_INPUT: lowres}, self._backend_for(lowres), runtime.pass_run_options(lowres)
        )
        tensors[LOWRES_INPUT] = lowres
        return tensors

    def recurrent(self, tensors: Tensors, state: Sequence[np.ndarray]) -> Tensors:
        """Part 2: the decoder's recurrent blocks, from the previous frame's ``state`` (r1..r4).
        Returns what :meth:`output` reads and the new state (``derive.STATE_OUT``)."""
        lowres = tensors[LOWRES_INPUT]
        backend = self._backend_for(lowres)
        feeds = {**tensors, **dict(zip(STATE_IN, state))}
        out = self.run_submodel("recurrent", feeds, backend, runtime.pass_run_options(lowres))
        # on to part 3: what it reads (the backbone's other outputs would only use memory)
        read = {i.name for i in self._session("output", backend).get_inputs()}
        return {**{k: v for k, v in tensors.items() if k in read}, **out}

    def output(self, tensors: Tensors) -> Tensors:
        """Part 3: the rest of the decoder (state-free) on what :meth:`recurrent` handed on: the
        guided filter's coefficients A and b (``derive.COEFF_A``, ``COEFF_B``)."""
        lowres = tensors[LOWRES_INPUT]
        return self.run_submodel("output", tensors, self._backend_for(lowres), runtime.pass_run_options(lowres))

    def network(self, lowres: np.ndarray, state: Sequence[np.ndarray]) -> Tensors:
        """The low-resolution network on ``lowres`` carrying ``state`` from an earlier frame, as
        :meth:`step` runs it: the three parts in turn, on the backend. Its tensors by name, among
        them A and b and the new state."""
        tensors = self.recurrent(self.backbone(lowres), state)
        return {**tensors, **self.output(tensors)}

    def _backend_for(self, lowres: np.ndarray) -> str:
        return backends.for_pass(self.backend, lowres.shape[2] * lowres.shape[3])

    def run_submodel(self, name: str, feeds: Tensors, backend: str = "onnxruntime", run_options: Any = None) -> Tensors:
        """Sub-model ``name`` of the split (:data:`mattekit.core.derive.SUBMODELS`) on ``backend``:
        its outputs by name. ``feeds`` may hold more than the sub-model reads."""
        self._prepare()
        session = self._session(name, backend)
        wanted = {i.name: feeds[i.name] for i in session.get_inputs()}
        return dict(zip((o.name for o in session.get_outputs()), session.run(None, wanted, run_options)))

    def tail(
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
        # The foreground only matters in alpha's partial band: computing it there alone cut
        # bench/speed.py "work" (preset fast, CPU-ms per photo) from ~340 to ~295 at 1080p and
        # from ~930 to ~545 at 4K.
        band = foreground and not full_foreground
        alpha, fg = kernels.tail(
            coeff_a, coeff_b, rgb, foreground=foreground and not band, workers=self.threads, deadline=deadline
        )
        boxes = None
        if band:
            check_deadline(deadline)
            boxes = kernels.band_boxes(alpha)
            fg = kernels.band_foreground(coeff_a, coeff_b, rgb, boxes, deadline)
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


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as a C-contiguous uint8 HxWx3 array, or :class:`InvalidInput` saying what is wrong."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidInput(f"expected an RGB image array HxWx3, got shape {getattr(rgb, 'shape', None)}")
    if rgb.dtype != np.uint8:
        raise InvalidInput(f"expected uint8 pixels, got {rgb.dtype}")
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise InvalidInput(f"image is {rgb.shape[1]}x{rgb.shape[0]} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    return np.ascontiguousarray(rgb)


_engine: Lazy[Engine] = Lazy(Engine)


def get_engine(**kwargs: Any) -> Engine:
    """The process-wide engine, created on first use (thread-safe). ``kwargs`` apply only then."""
    return _engine.get(**kwargs)


def set_engine(engine: Engine | None) -> None:
    """Replace the process-wide engine (e.g. with other threads or an explicit model path)."""
    _engine.set(engine)
