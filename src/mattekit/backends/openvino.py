"""RVM's backbone on ONNX Runtime in fp32, its decoder on OpenVINO in bf16 (the ``openvino``
extra), for CPUs with bf16 instructions.

Why this split: the MobileNetV3 backbone is numerically touchy (±0.001 of input noise moves
alpha by up to ~11/255 at edges), so bf16 there ruins hair; the recurrent decoder tolerates it
(alpha within the fp32 model's own noise, see ``bench/backends.py``) and holds the costly
full-resolution stages, where bf16 dot products double the throughput. OpenVINO's CPU plugin
ignores per-node precision marks under a bf16 hint, so the halves are separate models: the
encoder sub-model stays on ONNX Runtime (faster than OpenVINO's f32 on it, measured), the decoder
and warm-up sub-models are compiled by OpenVINO at bf16, and the one-pass network is the two
chained. On a CPU without bf16 instructions OpenVINO runs the decoder in f32.

OpenVINO pays before it gains: importing it and compiling the decoder take ~0.3 s, and it
specializes its kernels and buffers to each input size, so its first run at a new size costs
extra (measured: ~+40 ms at a 512x341 pass, ~+250 ms at 1280x720, seconds at 1024x1024); later
runs at that size are faster than ONNX Runtime. That is why the engine uses a backend only for
frames that carry a recurrent state (one size, many frames) and why runs whose largest input
exceeds :data:`MAX_PIXELS` (explicit ratios near 1) stay on ONNX Runtime here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np


__all__ = ["PRECISION", "MAX_PIXELS", "SHAPES_KEPT", "load"]

PRECISION = "bf16"  # of the decoder and warm-up sub-models
MAX_PIXELS = 500_000  # low-resolution pixels; larger passes run on ONNX Runtime (see above)
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
        self._model = self._core.read_model(str(path))
        self._config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self._inputs = [_Arg(p.get_any_name()) for p in self._model.inputs]
        self._outputs = [_Arg(p.get_any_name()) for p in self._model.outputs]
        self._compiled: OrderedDict[tuple, tuple[Any, list[str], list[Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()

    def get_inputs(self) -> list[_Arg]:
        return list(self._inputs)

    def get_outputs(self) -> list[_Arg]:
        return list(self._outputs)

    def _for(self, feeds: dict[str, np.ndarray]) -> tuple[tuple, Any, list[str], list[Any]]:
        key = tuple(feeds[a.name].shape for a in self._inputs)
        with self._lock:
            found = self._compiled.pop(key, None)
            if found is None:
                import openvino as ov

                model = self._model.clone()
                model.reshape({a.name: ov.PartialShape(list(shape)) for a, shape in zip(self._inputs, key)})
                compiled = self._core.compile_model(model, "CPU", self._config)
                wanted = {a.name for a in self._inputs}
                # a reshaped model may name a port by another of its tensor's names: ours, by port
                names = [next(n for n in port.get_names() if n in wanted) for port in compiled.inputs]
                outputs = [next(p for p in compiled.outputs if a.name in p.get_names()) for a in self._outputs]
                found = (compiled, names, outputs)
            self._compiled[key] = found  # most recent last
            while len(self._compiled) > SHAPES_KEPT:
                self._compiled.popitem(last=False)
        return (key, *found)

    def run(self, output_names: Optional[list[str]], feeds: dict[str, np.ndarray], run_options: Any = None) -> list:
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


class _Chain:
    """The one-pass network: the encoder's outputs (and the frame) feed the decoder."""

    def __init__(self, encoder: Any, decoder: _PerShape) -> None:
        self._encoder, self._decoder = encoder, decoder
        self._features = [a.name for a in encoder.get_outputs()]

    def get_inputs(self) -> list[Any]:
        own = set(self._features)
        return list(self._encoder.get_inputs()) + [a for a in self._decoder.get_inputs() if a.name not in own]

    def get_outputs(self) -> list[_Arg]:
        return self._decoder.get_outputs()

    def run(self, output_names: Optional[list[str]], feeds: dict[str, np.ndarray], run_options: Any = None) -> list:
        wanted = {a.name for a in self._encoder.get_inputs()}
        encoded = self._encoder.run(None, {k: v for k, v in feeds.items() if k in wanted}, run_options)
        return self._decoder.run(None, {**feeds, **dict(zip(self._features, encoded))})


class _BySize:
    """Runs up to :data:`MAX_PIXELS` on OpenVINO, larger ones on ONNX Runtime (the same
    sub-model). The size is the largest input's: every part has one at (or proportional to) the
    low-resolution pass, and OpenVINO's per-size cost follows it."""

    def __init__(self, small: Any, large: Callable[[], Any]) -> None:
        self._small, self._large = small, large

    def get_inputs(self) -> list[Any]:
        return self._small.get_inputs()

    def get_outputs(self) -> list[Any]:
        return self._small.get_outputs()

    def run(self, output_names: Optional[list[str]], feeds: dict[str, np.ndarray], run_options: Any = None) -> list:
        pixels = max((v.shape[2] * v.shape[3] for v in feeds.values() if v.ndim == 4), default=0)
        runner = self._small if pixels <= MAX_PIXELS else self._large()
        return runner.run(output_names, feeds, run_options)


def load(part: str, paths: dict, threads: int, ort_options: Any, plain: Callable[[str], Any]) -> Any:
    if part == "encoder":
        return plain(part)
    if part == "lowres":
        fast: Any = _Chain(plain("encoder"), _PerShape(paths["decoder"], threads))
    else:
        fast = _PerShape(paths[part], threads)
    return _BySize(fast, lambda: plain(part))
