"""The original demo's pipeline, exactly as it did it: the yardstick of every speed figure.

PIL open → RVM full graph (fp32, ONNX Runtime), ``downsample_ratio`` 0.25, zero recurrent state
→ ``putalpha`` → PNG with Pillow's defaults. It imports nothing of mattekit but the model's
path, so ``python bench/demo.py IN.jpg OUT.png`` is the demo's own cold run (python start,
imports, model load, one photo) that ``bench/speed.py`` times against ``mattekit remove``.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def model_path() -> str:
    # The store's path rule only (no hash check: the demo did none), so no mattekit import.
    import os

    home = os.environ.get("MATTEKIT_HOME") or str(Path.home() / ".cache" / "mattekit")
    return os.environ.get("MATTEKIT_MODEL") or str(Path(home).expanduser() / "rvm_mobilenetv3_fp32.onnx")


class Demo:
    """The original demo's pipeline, stage by stage."""

    def __init__(self, path: str | None = None) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(path or model_path(), providers=["CPUExecutionProvider"])
        self.rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4

    def run(self, data: bytes, t: dict[str, float] | None = None, clock: Callable[[], float] = time.perf_counter) -> bytes:
        t0 = clock()
        img = Image.open(io.BytesIO(data)).convert("RGB")
        src = np.asarray(img).astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        t1 = clock()
        _fgr, pha, *_ = self.session.run(
            None,
            {
                "src": src,
                "r1i": self.rec[0],
                "r2i": self.rec[1],
                "r3i": self.rec[2],
                "r4i": self.rec[3],
                "downsample_ratio": np.array([0.25], np.float32),
            },
        )
        t2 = clock()
        img.putalpha(Image.fromarray((pha[0, 0] * 255).astype(np.uint8), "L"))
        t3 = clock()
        buf = io.BytesIO()
        img.save(buf, "PNG")
        t4 = clock()
        if t is not None:
            for k, v in zip(("decode", "model", "compose", "encode"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                t[k] = t.get(k, 0.0) + v
        return buf.getvalue()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python bench/demo.py IN.jpg OUT.png")
    Path(sys.argv[2]).write_bytes(Demo().run(Path(sys.argv[1]).read_bytes()))
