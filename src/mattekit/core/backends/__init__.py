"""The runtimes that can run RVM's low-resolution network (the split's sub-models, see
:mod:`mattekit.core.fastpath`), one module each, registered in :data:`BACKENDS`.

Every backend loads a sub-model as an object with ONNX Runtime's ``run(None, feeds, options)``,
``get_inputs()`` and ``get_outputs()``, so the engine runs them all the same way. ONNX Runtime
fp32 is always there and is the reference; another backend is chosen only where the CPU has
what makes it faster (``auto``), or when asked (``--backend`` / ``MATTEKIT_BACKEND``). The
engine runs the chosen backend on frames that carry a recurrent state (video, camera) and ONNX
Runtime on first runs (stills, a video's first frame): see :meth:`mattekit.core.engine.Engine.step`.

Adding one: a module with ``load(part, paths, threads, ort_options, plain)`` and a row here.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidOption

__all__ = ["BACKENDS", "DEFAULT", "Backend", "cpu_cores", "cpu_flags", "for_pass", "load", "resolve", "unavailable"]


@dataclass(frozen=True)
class Backend:
    name: str
    summary: str
    module: str  # mattekit.core.backends.<module> holds load()
    package: str | None = None  # the import it needs beyond the base install
    extra: str | None = None  # the pip extra that installs it
    cpu_needs: frozenset[str] = frozenset()  # /proc/cpuinfo flags, any of which makes it pay off
    max_pixels: int | None = None  # larger low-resolution passes run on ONNX Runtime instead


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("onnxruntime", "ONNX Runtime, fp32 (the reference; every CPU)", "onnxruntime"),
        # The decoder tolerates bf16 (alpha within the fp32 model's own noise); the MobileNetV3
        # backbone does not, so it stays on ONNX Runtime fp32 (see openvino.py).
        Backend(
            "openvino-bf16",
            "backbone on ONNX Runtime fp32, decoder on OpenVINO bf16 (CPUs with bf16)",
            "openvino",
            package="openvino",
            extra="openvino",
            cpu_needs=frozenset({"avx512_bf16", "amx_bf16"}),
            # OpenVINO's first run at a new size costs seconds at 1024x1024 (see openvino.py)
            max_pixels=500_000,
        ),
    )
}
DEFAULT = "onnxruntime"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo is absent)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_cores() -> int:
    """The cores this process may run on: its affinity mask where the OS has one (``taskset``, a
    container's cpuset), which ``os.cpu_count()`` ignores; thread counts derive from this."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def unavailable(name: str) -> str | None:
    """Why backend ``name`` cannot run here, or None when it can."""
    backend = BACKENDS[name]
    if backend.package and importlib.util.find_spec(backend.package) is None:
        return f"{backend.package} is not installed (pip install 'mattekit[{backend.extra}]')"
    return None


def resolve(requested: str | None = None) -> str:
    """The backend to use: ``requested``, else ``MATTEKIT_BACKEND``, else ``auto``.

    ``auto`` takes the first backend after ONNX Runtime whose CPU flags this machine has and
    which is installed; ONNX Runtime otherwise. An explicit name that cannot run is an error.
    """
    value = (requested or os.environ.get("MATTEKIT_BACKEND") or "auto").strip().lower()
    if value == "auto":
        flags = cpu_flags()
        for backend in BACKENDS.values():
            if backend.cpu_needs & flags and unavailable(backend.name) is None:
                return backend.name
        return DEFAULT
    if value not in BACKENDS:
        raise InvalidOption(f"backend must be auto or one of {', '.join(BACKENDS)}, not {value!r}")
    reason = unavailable(value)
    if reason:
        raise InvalidOption(f"backend {value} cannot run here: {reason}")
    return value


def for_pass(name: str, lowres_pixels: int) -> str:
    """The backend that runs a low-resolution pass this large: ``name``, or ONNX Runtime above
    the backend's ``max_pixels``."""
    limit = BACKENDS[name].max_pixels
    return name if limit is None or lowres_pixels <= limit else DEFAULT


def load(name: str, part: str, paths: dict, threads: int, ort_options: Any, plain: Callable[[str], Any]) -> Any:
    """Sub-model ``part`` (one of :data:`mattekit.core.fastpath.PARTS`; ``paths`` holds all of them)
    on backend ``name``, as an object with ONNX Runtime's session interface. ``plain(part)``
    gives the engine's own ONNX Runtime session of a part, for a backend that runs some of the
    work there (shared, not loaded twice)."""
    module = importlib.import_module(f"{__name__}.{BACKENDS[name].module}")
    return module.load(part, paths, threads, ort_options, plain)
