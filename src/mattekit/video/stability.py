"""Temporal stability of a matte: what bench/video.py and the tests measure flicker with."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

from ..core.engine import Engine, get_engine


def alpha_sequence(
    frames: Iterable[np.ndarray], ratio: str | float = "auto", *, recurrent: bool = True, engine: Engine | None = None
) -> list[np.ndarray]:
    """Alpha of each frame, carrying RVM's state (``recurrent``) or starting afresh every frame."""
    from ..core.engine import RecurrentState

    engine = engine or get_engine()
    state = RecurrentState.empty()
    out = []
    for rgb in frames:
        matte, new_state = engine.step(rgb, ratio, state if recurrent else None)
        state = new_state
        out.append(matte.alpha)
    return out


def flicker(alphas: list[np.ndarray]) -> float:
    """Mean |α_t − α_{t−1}| over pixels and frame pairs, in 1/255 (real motion counts too)."""
    if len(alphas) < 2:
        raise ValueError("flicker needs at least two frames")
    return float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(alphas)]) * 255.0)
