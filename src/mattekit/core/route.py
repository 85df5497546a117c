"""Auto routing: does RVM's own answer say there is a person in this photo?

RVM runs first on every photo (``subject=auto``), so a photo of a person gets exactly
``subject=person``'s result. The rule reads the *shape* of RVM's alpha, measured at RVM's own
pass size (512 px long side, the default preset's rule, whatever the photo's resolution):

- **A body.** On a person it recognises, RVM commits: a connected, opaque (alpha > 0.95) body
  with a band of partial alpha around it (hair, edges). On a photo without a person it keeps
  nothing, or a haze of partial alpha over what looks a little like one (fur, a plush toy, a
  glass). ``body`` is, for the largest-scoring opaque part, its opaque area over the kept
  (alpha > 0.05) area of its bounding box: a ratio of two areas of one part, the same at any
  scale and untouched by haze elsewhere in the frame.
- **Resolvable.** ``opaque_px``, the opaque pixels at the pass's size: below ``MIN_OPAQUE_PX``
  (about 1 % of the pass; a person at a quarter of a portrait's height has more) RVM cannot
  resolve a person's shape, and what it kept is a guess.
- **Solid overall.** ``solid`` = opaque / kept pixels of the whole matte. A person alone in the
  frame is solid; when RVM also hazes over something else (a red bowl beside a child, a puppy
  beside a person in the background), it is not, and the answer is *unsure*.

- **Closer.** A person far from the camera can be too small for RVM to commit to a body in the
  whole frame, though it keeps a little of them. When the answer is ``none`` but RVM kept
  something, :func:`zoom_box` is where to look closer: the kept part holding the most alpha,
  grown by half its size on each side, so that the candidate fills half of the crop's side, as
  a person fills a portrait, with the surroundings RVM reads around a body. RVM runs again on
  that crop; only a clear ``person`` there counts (its ``unsure`` on a plush toy or a dandelion
  does not), and the matte is the crop's, in place.

``judge`` answers ``none`` (no body, or too little: the general model), ``person`` (a body,
solid overall: RVM, nothing more is run) or ``unsure``. Only when unsure does the general model
run, and the subject is RVM's person when the general model's matte holds most of what RVM kept
(``covered`` ≥ ``MIN_COVERED``: the two see the same subject); else the general model's matte.
Agreement the other way round (IoU) fails on small people: the general model often picks a
larger salient object in the background and leaves the person out.

Measured on the dev sets (docs/quality.md, "Photos without a person"): all 21 person photos go
to RVM (one of them, a child beside a red bowl, through the unsure band); every person at a
quarter of their size goes to RVM (18 of 18: four of them, a child seen from behind on a
top-down concrete photo, RVM sees only closer, at no pass size in the whole frame); every
animal and plush photo goes to the general model; a person standing in an object photo's
background is a person (4 of 35 things images), as a rule reading RVM's answer must conclude.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..options import MIN_SIDE
from .passes import AUTO_TARGET_PX

PASS_PX = AUTO_TARGET_PX  # the default preset's low-resolution long side (presets.RECIPES["balanced"])
MIN_OPAQUE_PX = 2000  # fewer opaque pixels at the pass's size: nothing RVM can call a person
MIN_BODY = 0.55  # a body: its opaque area / the kept area of its box (people: 0.56 and up on dev)
MIN_PART_PX = 200  # opaque parts smaller than this are specks, not a body
MIN_SOLID = 0.5  # opaque / kept pixels of the whole matte: at least half of it a body, a person
MIN_COVERED = 0.5  # unsure: RVM's person when the general model's matte holds this share of it
# A "cut-out" keeping this share of the frame has cut nothing away: the general model took the
# background for the subject (seen on top-down concrete), so its answer is no subject either.
FULL_FRAME = 0.9
# Looking closer (zoom_box): the candidate grown by this share of its size on each side (so it
# fills half the crop's side), the crop at least MIN_ZOOM_SIDE of the photo's short side, and no
# crop over MAX_ZOOM_AREA of the photo (nothing closer to see).
ZOOM_GROW = 0.5
MIN_ZOOM_SIDE = 1 / 3
MAX_ZOOM_AREA = 0.6
# A result is "empty" when less than this share of the image is kept (sum of alpha), or is at
# least half opaque: a faint haze over a photo (alpha nowhere near 1) is no cut-out either.
EMPTY_SHARE = 0.001

Answer = Literal["person", "none", "unsure"]


@dataclass(frozen=True)
class Verdict:
    answer: Answer
    opaque_px: int  # opaque pixels at the pass's size
    body: float  # best opaque part's area / kept area of its box
    solid: float  # opaque / kept pixels of the whole matte

    @property
    def person(self) -> bool:
        return self.answer == "person"


def at_pass_size(alpha: np.ndarray) -> np.ndarray:
    """``alpha`` (float HxW) resized (area) so its long side is :data:`PASS_PX`; smaller as is."""
    import cv2

    alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    h, w = alpha.shape
    scale = PASS_PX / max(h, w)
    if scale >= 1.0:
        return alpha
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)


def kept_share(alpha: np.ndarray) -> float:
    """How much of the image a matte keeps: sum of alpha over the image's area."""
    import cv2

    return float(cv2.mean(np.ascontiguousarray(alpha, dtype=np.float32))[0])


def solid_share(alpha: np.ndarray) -> float:
    """How much of the image a matte holds at least half opaque: its pixels with alpha >= 0.5."""
    return float(np.count_nonzero(alpha >= 0.5)) / max(alpha.size, 1)


def is_empty(alpha: np.ndarray, kept: float) -> bool:
    """Whether a matte (float HxW in [0, 1]) that keeps ``kept`` (:func:`kept_share`) of the image
    has cut out nothing a person would see: see :data:`EMPTY_SHARE`."""
    return kept < EMPTY_SHARE or solid_share(alpha) < EMPTY_SHARE


def _body(opaque: np.ndarray, kept: np.ndarray) -> float:
    import cv2

    count, _, stats, _ = cv2.connectedComponentsWithStats(opaque.astype(np.uint8), connectivity=8)
    best = 0.0
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i, :5])
        if area < MIN_PART_PX:
            continue
        best = max(best, area / max(int(np.count_nonzero(kept[y : y + h, x : x + w])), 1))
    return best


def judge(alpha: np.ndarray) -> Verdict:
    """What RVM's alpha (float HxW in [0, 1]) says: a person, none, or unsure (module docstring)."""
    small = at_pass_size(alpha)
    opaque, kept = small > 0.95, small > 0.05
    opaque_px, kept_px = int(np.count_nonzero(opaque)), int(np.count_nonzero(kept))
    solid = opaque_px / kept_px if kept_px else 0.0
    body = _body(opaque, kept) if opaque_px >= MIN_OPAQUE_PX else 0.0
    answer: Answer
    if opaque_px < MIN_OPAQUE_PX or body < MIN_BODY:
        answer = "none"
    elif solid >= MIN_SOLID:
        answer = "person"
    else:
        answer = "unsure"
    return Verdict(answer, opaque_px, body, solid)


def covered(person_alpha: np.ndarray, general_alpha: np.ndarray) -> float:
    """The share of RVM's matte the general model's matte holds too: sum(min) / sum(RVM's)."""
    a, b = at_pass_size(person_alpha), at_pass_size(general_alpha)
    total = float(a.sum())
    return float(np.minimum(a, b).sum()) / total if total > 0 else 0.0


def zoom_box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    """Where to look closer at a photo whose RVM answer is ``none`` (module docstring, "Closer"):
    (top, bottom, left, right) in ``alpha``'s pixels, or None when RVM kept nothing or the crop
    would be most of the photo, or smaller than RVM can run (a strip of a photo). Read at the
    pass's size, like :func:`judge`."""
    import cv2

    small = at_pass_size(alpha)
    kept = (small > 0.05).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(kept, connectivity=8)
    if count < 2:
        return None
    weight = np.bincount(labels.ravel(), weights=small.ravel(), minlength=count)
    best = 1 + int(np.argmax(weight[1:]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    H, W = alpha.shape
    scale = H / small.shape[0], W / small.shape[1]
    side = max(h * scale[0], w * scale[1]) * (1 + 2 * ZOOM_GROW)
    side = max(side, MIN_ZOOM_SIDE * min(H, W))
    cy, cx = (y + h / 2) * scale[0], (x + w / 2) * scale[1]
    top, bottom = int(max(0, cy - side / 2)), int(min(H, cy + side / 2))
    left, right = int(max(0, cx - side / 2)), int(min(W, cx + side / 2))
    if (bottom - top) * (right - left) > MAX_ZOOM_AREA * H * W or min(bottom - top, right - left) < MIN_SIDE:
        return None
    return top, bottom, left, right
