"""ONNX Runtime, fp32: the reference backend, on every machine."""

from __future__ import annotations

from typing import Any, Callable, Optional

__all__ = ["load"]


def load(part: str, paths: dict, threads: int, ort_options: Any, plain: Optional[Callable[[str], Any]] = None) -> Any:
    import onnxruntime as ort

    options, providers = ort_options
    return ort.InferenceSession(str(paths[part]), sess_options=options, providers=providers)
