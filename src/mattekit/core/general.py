"""The general model at work: ISNet (any subject) on ONNX Runtime, pre- and post-processing.

The store (fetch, verify, derived sizes) is :mod:`mattekit.core.models.isnet`; this module only runs it.
ISNet takes one fixed square: the photo is resized to it (bilinear, as the model was trained),
normalised as ``(x - 128) / 256`` and its alpha resized back to the photo's size (bilinear).
It predicts alpha only: no foreground colour (see :func:`mattekit.compose.estimate_foreground`).

Size, precision and threads were chosen by measurement on the dev things (``bench/quality.py
--pipelines general768,general1024 --sets things``; docs/model.md has the figures).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..deadline import Deadline
from ..deadline import check as check_deadline
from ..errors import ModelUnavailable
from .lazy import Lazy

log = logging.getLogger("mattekit.core.general")

DEFAULT_SIZE = 768  # measured: see the module docstring
DEFAULT_FP32 = True


def preprocess(rgb: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 HxWx3 → float32 1x3xSxS, bilinear, ``(x - 128) / 256``."""
    import cv2

    small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    small -= 128.0
    small *= 1.0 / 256.0
    return np.ascontiguousarray(small.transpose(2, 0, 1)[None])


# ISNet leaves a faint haze (alpha up to ~0.05) over much of the background: a crop then cuts
# nothing (alpha > 0.05 reaches every border) and it darkens composites. Below HAZE_TO the alpha
# becomes 0, from there to HAZE_FROM it ramps up to meet the model's own value (no step). On the
# dev sets (mean SAD at the pass's size) this was slightly better everywhere: things 34.12 →
# 34.09, people 8.45 → 8.37.
HAZE_TO, HAZE_FROM = 0.02, 0.05


def postprocess(out: np.ndarray, height: int, width: int) -> np.ndarray:
    """The model's 1x1xSxS alpha → float32 HxW in [0, 1] at the photo's size, haze removed."""
    import cv2

    small = np.clip(np.ascontiguousarray(out[0, 0], dtype=np.float32), 0.0, 1.0)
    ramp = (small - HAZE_TO) * np.float32(HAZE_FROM / (HAZE_FROM - HAZE_TO))
    small = np.where(small < HAZE_FROM, np.maximum(ramp, 0.0), small).astype(np.float32)
    alpha: np.ndarray = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(alpha, 0.0, 1.0, out=alpha)


class GeneralEngine:
    """ISNet on ONNX Runtime (CPU, or CUDA where the RVM engine's providers say so).

    Args:
        model: the ONNX file; ``None`` uses the store's cached copy (never fetched here: the
            AGPL model is fetched only on request, ``mattekit model fetch general``).
        threads: intra-op threads; ``None``/0: every core.
        size: the square the photo is resized to (a multiple of 32).
        fp32: run a copy with the fp16 weights turned into fp32.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        threads: int | None = None,
        size: int = DEFAULT_SIZE,
        fp32: bool = DEFAULT_FP32,
        providers: list[str] | None = None,
    ) -> None:
        self._model_arg = model
        self.threads = threads or 0
        self.size = size
        self.fp32 = fp32
        self._providers = providers
        self._session: Any = None
        self._lock = threading.Lock()
        self.model_path: Path | None = None

    def available(self) -> bool:
        """Whether the model is installed (nothing is fetched)."""
        from .models import isnet

        try:
            isnet.locate(self._model_arg)
        except ModelUnavailable:
            return False
        return True

    @property
    def session(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._load()
        return self._session

    def _load(self) -> Any:
        import onnxruntime as ort

        from .models import isnet

        info = isnet.locate(self._model_arg)
        path = isnet.derived(info, self.size, self.fp32)
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle workers must not spin on the cores RVM's session (or the compose step) needs next.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = self._providers or ["CPUExecutionProvider"]
        try:
            session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # ONNX Runtime's own untyped errors for an unreadable file
            raise ModelUnavailable(f"could not load the general model {path}: {exc}") from None
        self.model_path = path
        log.info("general model from %s (%dx%d, %s)", path, self.size, self.size, "fp32" if self.fp32 else "fp16")
        return session

    def matte(self, rgb: np.ndarray, *, deadline: Deadline | None = None) -> np.ndarray:
        """Alpha, float32 HxW in [0, 1], of an RGB uint8 HxWx3 photo."""
        h, w = rgb.shape[:2]
        feed = preprocess(rgb, self.size)
        check_deadline(deadline)
        # Only `output`: ORT then skips the graph's side outputs and feature maps.
        (out,) = self.session.run(["output"], {"input": feed})
        return postprocess(out, h, w)


_general: Lazy[GeneralEngine] = Lazy(GeneralEngine)


def get_general(**kwargs: Any) -> GeneralEngine:
    """The process-wide general engine, created on first use (``kwargs`` apply only then)."""
    return _general.get(**kwargs)


def set_general(engine: GeneralEngine | None) -> None:
    _general.set(engine)
