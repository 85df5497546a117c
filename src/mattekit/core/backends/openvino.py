"""RVM's backbone on ONNX Runtime in fp32, its decoder on OpenVINO in bf16 (the ``openvino``
extra), for CPUs with bf16 instructions.

Why this split: the MobileNetV3 backbone is numerically touchy (±0.001 of input noise moves
alpha by up to ~11/255 at edges), so bf16 there ruins hair; the recurrent decoder tolerates it
(alpha within the fp32 model's own noise, see ``bench/backends.py``) and holds the costly
full-resolution stages, where bf16 dot products double the throughput. OpenVINO's CPU plugin
ignores per-node precision marks under a bf16 hint, so the halves are separate models: the
backbone sub-models (``backbone``, ``backbone_all``) stay on ONNX Runtime (faster than OpenVINO's
f32 on them, measured); the decoder's (``recurrent`` and ``output`` for video frames,
``recurrent_state`` and ``recurrent_output`` for repeated passes) are compiled by OpenVINO at
bf16. The one-piece ``network`` runs first frames only, which are ONNX Runtime's. On a CPU without bf16 instructions
OpenVINO runs the decoder in f32.

OpenVINO pays before it gains: importing it and compiling the decoder take ~0.3 s, and it
specializes its kernels and buffers to each input size, so its first run at a new size costs
extra (measured: ~+40 ms at a 512x341 pass, ~+250 ms at 1280x720, seconds at 1024x1024); later
runs at that size are faster than ONNX Runtime. That is why the engine uses a backend only for
frames that carry a recurrent state (one size, many frames) and why runs whose largest input
exceeds the backend's ``max_pixels`` (explicit ratios near 1) stay on ONNX Runtime.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ModelUnavailable

if TYPE_CHECKING:
    from . import Session

Shapes = tuple[tuple[int, ...], ...]  # the input shapes a compiled model is for

PRECISION = "bf16"  # of the decoder's sub-models
SHAPES_KEPT = 4  # compiled shapes kept per sub-model (a stream has one)


@dataclass(frozen=True)
class _Arg:
    """What ONNX Runtime's ``get_inputs()`` / ``get_outputs()`` items give the engine."""

    name: str


class _PerShape:
    """One OpenVINO sub-model behind ONNX Runtime's session interface, compiled for each input
    shape it meets (the last :data:`SHAPES_KEPT`): a static-shape compile ran the decoder at
    640x360 in ~0.82x the time of the dynamic-shape one, and a stream's frames all share one
    shape. Thread-safe: an infer request per thread and shape (a request holds its tensors)."""

    def __init__(self, path: Any, threads: int) -> None:
        import openvino as ov

        self._core = ov.Core()
        self._name = getattr(path, "name", str(path))
        self._model = self._core.read_model(str(path))
        # Unpinned: OpenVINO pins its threads to cores by default, so two 1-thread models run
        # side by side (mattekit.core.streams) both landed on one core and took turns (measured).
        self._config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": PRECISION,
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": False,
        }
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self._inputs = [_Arg(p.get_any_name()) for p in self._model.inputs]
        self._outputs = [_Arg(p.get_any_name()) for p in self._model.outputs]
        self._compiled: OrderedDict[Shapes, tuple[Any, list[str], list[Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()

    def get_inputs(self) -> list[_Arg]:
        return list(self._inputs)

    def get_outputs(self) -> list[_Arg]:
        return list(self._outputs)

    def _for(self, feeds: Mapping[str, np.ndarray]) -> tuple[Shapes, Any, list[str], list[Any]]:
        key = tuple(feeds[a.name].shape for a in self._inputs)
        with self._lock:
            found = self._compiled.pop(key, None)
            if found is None:
                import openvino as ov

                model = self._model.clone()
                try:
                    model.reshape({a.name: ov.PartialShape(list(shape)) for a, shape in zip(self._inputs, key)})
                    compiled = self._core.compile_model(model, "CPU", self._config)
                except Exception as exc:  # OpenVINO raises its own untyped errors (memory, a shape it rejects)
                    raise ModelUnavailable(
                        f"OpenVINO could not compile {self._name} for input shapes {list(key)}: {exc}; "
                        "run with --backend onnxruntime (MATTEKIT_BACKEND=onnxruntime)"
                    ) from None
                wanted = {a.name for a in self._inputs}
                # a reshaped model may name a port by another of its tensor's names: ours, by port
                names = [next(n for n in port.get_names() if n in wanted) for port in compiled.inputs]
                outputs = [next(p for p in compiled.outputs if a.name in p.get_names()) for a in self._outputs]
                found = (compiled, names, outputs)
            self._compiled[key] = found  # most recent last
            while len(self._compiled) > SHAPES_KEPT:
                self._compiled.popitem(last=False)
        return (key, *found)

    def run(self, output_names: list[str] | None, feeds: Mapping[str, np.ndarray], run_options: Any = None) -> list[np.ndarray]:
        key, compiled, names, outputs = self._for(feeds)
        requests = self._local.__dict__.setdefault("requests", {})
        request = requests.get(key)
        if request is None or request[0] is not compiled:
            if len(requests) >= SHAPES_KEPT:  # those of evicted shapes would keep their models alive
                requests.clear()
            request = requests[key] = (compiled, compiled.create_infer_request())
        # ONNX Runtime hands out int64 shape tensors as C long long, which OpenVINO's binding
        # does not map: the same bytes viewed as numpy's int64 (C long) pass.
        result = request[1].infer({n: _plain(feeds[n]) for n in names})
        # copies: the request's buffers are reused by its next run
        return [np.array(result[port]) for port in outputs]


def _plain(array: np.ndarray) -> np.ndarray:
    return array.view(np.int64) if array.dtype.kind == "i" and array.dtype.itemsize == 8 else array


def load(
    submodel: str,
    paths: Mapping[str, Path],
    threads: int,
    ort_options: tuple[Any, list[str]],
    plain: Callable[[str], Session],
) -> Session:
    # The touchy backbone stays fp32 (see above); the whole network in one piece runs only the
    # first runs, which are ONNX Runtime's (mattekit.core.engine.Engine.step).
    if submodel in ("network", "backbone", "backbone_all"):
        return plain(submodel)
    return _PerShape(paths[submodel], threads)
