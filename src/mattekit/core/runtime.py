"""ONNX Runtime as the models use it: which device and providers, session options, and the
memory arena.

Every model's engine (RVM's :class:`mattekit.core.engine.Engine`, the still models in
:mod:`mattekit.core.models`) takes its providers and session options from here, so a thread
count or a device means the same for all of them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal, cast

from ..deadline import Deadline
from ..errors import InvalidOption

if TYPE_CHECKING:
    import numpy as np
    from onnxruntime import RunOptions, SessionOptions

log = logging.getLogger("mattekit.core.runtime")

Device = Literal["auto", "cpu", "cuda"]


def _available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_device(device: str | None = None) -> Device:
    """``device`` or ``MATTEKIT_DEVICE`` or ``auto``, checked."""
    value = (device or os.environ.get("MATTEKIT_DEVICE") or "auto").strip().lower()
    if value not in ("auto", "cpu", "cuda"):
        raise InvalidOption(f"device must be auto, cpu or cuda, not {value!r}")
    return cast(Device, value)


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


def providers_summary(providers: Sequence[str]) -> str:
    return "GPU (CUDA)" if "CUDAExecutionProvider" in providers else "CPU"


def session_options(threads: int, *, spinning: bool = True, shared_arena: bool = False) -> SessionOptions:
    """ONNX Runtime's session options: ``threads`` intra-op threads (0: every core), every graph
    optimisation. ``spinning`` False: idle workers sleep instead of spinning on cores that other
    work (another session, an OpenCV kernel) needs next. ``shared_arena``: use the process's
    one CPU arena (:func:`share_cpu_arena` must have said True)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if shared_arena:
        opts.add_session_config_entry("session.use_env_allocators", "1")
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


# From this many low-resolution pixels on (a 1080p frame at ratio 1; the presets' automatic pass
# is at most 0.41 MP), every run hands the memory ONNX Runtime's arena took back to the system
# instead of keeping its largest run's buffers: 4 passes of a 3000x2000 photo at ratio 1 peaked
# at 5.2 GB against 9.2 GB kept, and ran faster (bench/memory.py). Below, re-allocating costs
# more than it saves (+28 % time at 1 MP).
ARENA_SHRINK_PIXELS = 2_000_000


def arena_run_options(lowres_pixels: float) -> RunOptions | None:
    """``RunOptions`` that shrink the CPU arena after a run this large, else ``None``."""
    if lowres_pixels < ARENA_SHRINK_PIXELS:
        return None
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def pass_run_options(lowres: np.ndarray) -> RunOptions | None:
    """:func:`arena_run_options` for a pass on ``lowres`` (NCHW)."""
    return arena_run_options(lowres.shape[2] * lowres.shape[3])


@contextmanager
def interruptible(run_options: RunOptions | None, deadline: Deadline | None) -> Iterator[RunOptions | None]:
    """``run_options`` (new ones if None) that ``deadline``'s :meth:`~mattekit.deadline.Deadline.cancel`
    stops mid-run: ONNX Runtime's ``terminate`` flag ends a run within milliseconds, and the run's
    error becomes the deadline's own (:class:`~mattekit.errors.Cancelled`). Without a deadline,
    ``run_options`` as they are. Other backends ignore run options: their runs end at the pass's end."""
    if deadline is None:
        yield run_options
        return
    import onnxruntime as ort

    options = run_options if run_options is not None else ort.RunOptions()

    def stop() -> None:
        options.terminate = True

    try:
        with deadline.interrupting(stop):
            yield options
    except Exception as exc:
        if options.terminate:  # ONNX Runtime's untyped "terminate flag" failure: the caller gave up
            raise deadline.cancelled_error() from exc  # stop() runs only once the deadline is cancelled
        raise


_arena_lock = threading.Lock()
_arena_shared: bool | None = None  # registered with ONNX Runtime (once per process)?


def share_cpu_arena() -> bool:
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
