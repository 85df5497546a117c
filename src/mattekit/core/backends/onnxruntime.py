"""ONNX Runtime with the engine's own session options and providers: fp32 on every CPU (the
reference), and the full graph wherever it runs (CUDA included)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import Session


def load(
    submodel: str,
    paths: Mapping[str, Path],
    threads: int,
    ort_options: tuple[Any, list[str]],
    plain: Callable[[str], Session],
) -> Session:
    import onnxruntime as ort

    options, providers = ort_options
    session: Session = ort.InferenceSession(str(paths[submodel]), sess_options=options, providers=providers)
    return session
