"""ONNX Runtime with the engine's own session options and providers: fp32 on every CPU (the
reference), and the full graph wherever it runs (CUDA included)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def load(part: str, paths: dict, threads: int, ort_options: Any, plain: Callable[[str], Any]) -> Any:
    import onnxruntime as ort

    options, providers = ort_options
    return ort.InferenceSession(str(paths[part]), sess_options=options, providers=providers)
