"""Quality presets for stills: how many model passes, at which ratios, with what extras.

Each preset is a small recipe over :class:`mattekit.engine.Engine`; the numbers behind each
choice come from ``bench/quality.py`` on the dev set (README, "Quality").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from .engine import Engine, Matte
from .errors import InvalidOption


@dataclass(frozen=True)
class Recipe:
    name: str
    passes: int  # runs of the same image, carrying RVM's recurrent state
    decontaminate: bool  # default for Options.decontaminate=None


RECIPES: dict[str, Recipe] = {
    "fast": Recipe("fast", passes=1, decontaminate=True),
    "balanced": Recipe("balanced", passes=3, decontaminate=True),
    "best": Recipe("best", passes=3, decontaminate=True),
}


def recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise InvalidOption(f"preset must be one of {', '.join(RECIPES)}, not {name!r}") from None


def run(engine: Engine, rgb: np.ndarray, preset: str, ratio: Union[str, float], *, foreground: bool) -> Matte:
    """Matte one still with a preset."""
    r = recipe(preset)
    return engine.matte(rgb, ratio, passes=r.passes, foreground=foreground)
