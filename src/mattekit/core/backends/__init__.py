"""The runtimes that can run RVM's low-resolution network (the split's sub-models, see
:mod:`mattekit.core.derive`), one module each, registered in :data:`BACKENDS`.

Every backend loads a sub-model as a :class:`Session`: an object with ONNX Runtime's
``run(None, feeds, options)``, ``get_inputs()`` and ``get_outputs()``, so the engine runs them
all the same way. ONNX Runtime
fp32 is always there and is the reference; another backend is chosen only where the CPU has
what makes it faster (``auto``), or when asked (``--backend`` / ``MATTEKIT_BACKEND``). The
engine runs the chosen backend on frames that carry a recurrent state (video, camera) and ONNX
Runtime on first runs (stills, a video's first frame): see :meth:`mattekit.core.engine.Engine.step`.

Adding one: a module with ``load(submodel, paths, threads, ort_options, plain)`` (a
:data:`Loader`) and a row here (docs/extending.md).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the CLI imports this table: numpy loads only where a model runs
    import numpy as np

from ...errors import InvalidOption

__all__ = [
    "BACKENDS",
    "DEFAULT",
    "Backend",
    "Loader",
    "Port",
    "Session",
    "cpu_cores",
    "cpu_flags",
    "for_pass",
    "load",
    "resolve",
    "unavailable",
]


class Port(Protocol):
    """An input or output of a :class:`Session`: its tensor's name."""

    @property
    def name(self) -> str: ...


class Session(Protocol):
    """A loaded sub-model, as ONNX Runtime's ``InferenceSession`` offers it."""

    def run(
        self, output_names: list[str] | None, feeds: Mapping[str, np.ndarray], run_options: Any = None
    ) -> list[np.ndarray]: ...

    def get_inputs(self) -> Sequence[Port]: ...

    def get_outputs(self) -> Sequence[Port]: ...


# load(submodel, paths, threads, ort_options, plain): sub-model ``submodel`` (a name in
# mattekit.core.derive.SUBMODELS; ``paths`` holds every sub-model's file) with ``threads``
# intra-op threads (0: every core); ``ort_options`` is ONNX Runtime's (SessionOptions,
# providers) as the engine chose them; ``plain(submodel)`` gives the engine's own ONNX Runtime
# session of a sub-model, for a backend that leaves some of the work there (shared, not loaded
# twice).
Loader = Callable[[str, Mapping[str, Path], int, tuple[Any, list[str]], Callable[[str], Session]], Session]


@dataclass(frozen=True)
class Backend:
    name: str
    summary: str
    module: str  # the module (dotted path) that defines load(), a Loader
    package: str | None = None  # the import it needs beyond the base install
    extra: str | None = None  # the pip extra that installs it
    cpu_needs: frozenset[str] = frozenset()  # /proc/cpuinfo flags, any of which makes it pay off
    max_pixels: int | None = None  # larger low-resolution passes run on ONNX Runtime instead


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("onnxruntime", "ONNX Runtime, fp32 (the reference; every CPU)", "mattekit.core.backends.onnxruntime"),
        # The decoder tolerates bf16 (alpha within the fp32 model's own noise); the MobileNetV3
        # backbone does not, so it stays on ONNX Runtime fp32 (see openvino.py).
        Backend(
            "openvino-bf16",
            "backbone on ONNX Runtime fp32, decoder on OpenVINO bf16 (CPUs with bf16)",
            "mattekit.core.backends.openvino",
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


def load(
    name: str,
    submodel: str,
    paths: Mapping[str, Path],
    threads: int,
    ort_options: tuple[Any, list[str]],
    plain: Callable[[str], Session],
) -> Session:
    """Sub-model ``submodel`` on backend ``name`` (the arguments: see :data:`Loader`)."""
    loader: Loader = importlib.import_module(BACKENDS[name].module).load
    return loader(submodel, paths, threads, ort_options, plain)
