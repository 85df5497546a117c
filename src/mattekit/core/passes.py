"""The size of the model's low-resolution pass: the one place that decides it.

RVM runs its network on the frame shrunk by a *ratio* (``downsample_ratio``), then brings the
result back to full size (:func:`mattekit.core.kernels.tail`). Every caller that needs a ratio
(the engine, the presets' recipes, the video stages, the benches) asks :func:`pass_ratio`, and
every caller that needs the pass's pixel size asks :func:`pass_size`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidOption

# RVM's guidance: the low-resolution pass works best at roughly 256-512 px on its longer side
# (their table: 1080p -> 0.25, 4K -> 0.125, i.e. ~480 px). This is the plain engine's default,
# and the default preset's for stills; the other presets and video choose their own sizes
# (presets.PRESETS, with the reason for each).
AUTO_TARGET_PX = 512
# Below ~32 px on its shorter side the network has nothing left to see: the ratio is raised to
# reach it rather than fail. "auto" too: on a 30000x30 strip it would leave no rows at all
# (found by tests/test_fuzz.py).
MIN_PASS_PX = 32


def pass_ratio(ratio: str | float, height: int, width: int, target: int = AUTO_TARGET_PX) -> float:
    """The downsample ratio of a ``height`` x ``width`` frame's pass.

    ``ratio``: ``"auto"`` brings the longer side to about ``target`` pixels (never above 1);
    a number in (0, 1] is taken as it is. Either way the shorter side keeps at least
    :data:`MIN_PASS_PX` pixels where the frame has them.
    """
    if ratio == "auto":
        r = min(1.0, target / max(height, width))
    else:
        r = float(ratio)
        if not 0.0 < r <= 1.0:
            raise InvalidOption(f"ratio must be in (0, 1], not {ratio}")
    return float(max(r, min(1.0, MIN_PASS_PX / min(height, width))))


def pass_size(height: int, width: int, ratio: float) -> tuple[int, int]:
    """The pass's (height, width) at ``ratio``, as the model's own Resize computes it:
    floor(size * scale) in float32."""
    r = np.float32(ratio)
    return int(np.float32(height) * r), int(np.float32(width) * r)
