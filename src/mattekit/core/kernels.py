"""The per-frame kernels of RVM's split path, in numpy and OpenCV: the model's own downsample
(the network's input) and the full-resolution tail (its output), with the foreground computed
only where it is seen.

Why they exist: at the ratios stills and video use (0.125-0.375), 40-60 % of the full model's
time is its full-resolution tail (bilinear upsample of the deep-guided-filter coefficients, then
Mul/Add/Clip on full-size float tensors for ``fgr`` and ``pha``) — memory-bound work that ONNX
Runtime does single-pass per op. With the graph cut at the guided filter's coefficients ``A``
and ``b`` (:mod:`mattekit.core.derive`), both ``[1, 4, h, w]`` (channels 0-2 for the
foreground, 3 for alpha), the tail becomes::

    pha   = clip(up(A3) * mean_c(src) + up(b3), 0, 1)
    fgr_c = clip((up(A_c) + 1) * src_c + up(b_c), 0, 1)

with ``up`` = bilinear, half-pixel centres (OpenCV ``INTER_LINEAR`` on float32 matches ONNX
Runtime's Resize to ~5e-7). The network's input is the model's own first op, ``Resize_3(src)``
(linear, ``pytorch_half_pixel``, scales ``[1, 1, r, r]``), recomputed here exactly: a separable
bilinear gather at the same sample positions, so the low-resolution pixels are the ones the full
model sees, at any ratio (an OpenCV ``INTER_AREA``/``INTER_LINEAR`` shrink instead changes alpha
visibly). ``tests/test_fastpath.py`` checks the split against the full graph on real photos.
"""

from __future__ import annotations

import numpy as np

from ..deadline import Deadline
from ..deadline import check as check_deadline
from .backends import cpu_cores
from .passes import pass_size

Taps = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


# -- the model's own downsample, reproduced -------------------------------------------------
def _taps(length_in: int, length_out: int, ratio: float) -> Taps:
    """Source indices and weights of ONNX Runtime's linear Resize, pytorch_half_pixel, along one axis."""
    r = np.float32(ratio)
    x = np.arange(length_out, dtype=np.float32)
    if length_out > 1:
        pos = (x + np.float32(0.5)) / r - np.float32(0.5)
    else:
        pos = np.zeros_like(x)
    pos = np.clip(pos, np.float32(0), np.float32(length_in - 1))
    i0 = np.minimum(pos.astype(np.int64), length_in - 1)
    i1 = np.minimum(i0 + 1, length_in - 1)
    w1 = (pos - i0.astype(np.float32)).astype(np.float32)  # weight of i1
    w0 = (np.float32(1) - w1).astype(np.float32)
    same = i0 == i1
    w0[same] = 0.5
    w1[same] = 0.5
    return i0, i1, w0, w1


def downsample(rgb: np.ndarray, ratio: float) -> np.ndarray:
    """``Resize_3(src / 255)`` of the full model: uint8 HxWx3 → float32 [1, 3, h, w] in [0, 1].

    Bilinear is four taps per output pixel: gather just those (uint8, output-sized) and blend,
    so the cost follows the small output, never the full frame.
    """
    h, w = rgb.shape[:2]
    oh, ow = pass_size(h, w, ratio)
    if oh < 1 or ow < 1:
        raise ValueError(f"ratio {ratio} leaves no pixels of a {w}x{h} image")
    r0, r1, rw0, rw1 = _taps(h, oh, ratio)
    c0, c1, cw0, cw1 = _taps(w, ow, ratio)
    scale = np.float32(1.0 / 255.0)
    # Channels first from the start (the network's layout: no transpose at the end, and numpy's
    # loops run along rows instead of 3-long pixels), in place where it can (each new temporary
    # of this size costs page faults): 6 ms instead of 9.5 for 720p -> 640x360, the same bits.
    out: np.ndarray | None = None
    for rows, row_weight in ((r0, rw0), (r1, rw1)):
        band = np.ascontiguousarray(rgb[rows].transpose(2, 0, 1))  # 3 x oh x W, uint8: one row gather
        part = np.take(band, c0, axis=2).astype(np.float32)  # np.take: ~3x faster than fancy indexing
        part *= cw0
        right = np.take(band, c1, axis=2).astype(np.float32)
        right *= cw1
        part += right
        part *= (row_weight * scale)[:, None]
        if out is None:
            out = part
        else:
            out += part
    assert out is not None
    return out[None]


# -- the tail -------------------------------------------------------------------------------
STRIP_ROWS = 32  # rows per work item: a strip's temporaries stay in cache instead of RAM


def _up(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    return cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)


def tail(
    coeff_a: np.ndarray,
    coeff_b: np.ndarray,
    rgb: np.ndarray,
    *,
    foreground: bool = False,
    workers: int = 0,
    deadline: Deadline | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The full-resolution tail of RVM: ``(pha HxW, fgr HxWx3 or None)``, float32 in [0, 1].

    pha = clip(up(A3) * mean_c(src) + up(b3), 0, 1); fgr_c = clip((up(A_c) + 1) * src_c + up(b_c), 0, 1).
    The upsampled coefficients are made whole-frame (OpenCV's resize is multi-threaded); the
    per-pixel arithmetic runs in row strips across ``workers`` threads (0 = every core), since
    done whole-frame each step would stream ~100 MB through memory at 4K.
    :func:`band_foreground` computes fgr only where it is seen.
    ``deadline``: checked between the resizes and at every strip (the whole tail is ~2 s at 50 MP
    here, a strip well under a millisecond).
    """
    import cv2

    h, w = rgb.shape[:2]
    a3 = _up(coeff_a[0, 3], h, w)  # becomes pha in place
    check_deadline(deadline)
    b3 = _up(coeff_b[0, 3], h, w)
    fgr = afg = bfg = None
    if foreground:
        check_deadline(deadline)
        afg = _up(np.ascontiguousarray(coeff_a[0, :3].transpose(1, 2, 0)), h, w)  # becomes fgr in place
        check_deadline(deadline)
        bfg = _up(np.ascontiguousarray(coeff_b[0, :3].transpose(1, 2, 0)), h, w)
    mean_weights = np.full((1, 3), 1.0 / 765.0, np.float32)
    inv255 = 1.0 / 255.0

    def strip(y: int) -> None:
        check_deadline(deadline)
        rows = slice(y, min(h, y + STRIP_ROWS))
        src = rgb[rows].astype(np.float32)
        pha = a3[rows]
        cv2.multiply(pha, cv2.transform(src, mean_weights), dst=pha)
        cv2.add(pha, b3[rows], dst=pha)
        np.clip(pha, 0.0, 1.0, out=pha)
        if afg is not None and bfg is not None:  # set together
            fg = afg[rows]
            cv2.multiply(fg, src, dst=fg, scale=inv255)
            cv2.scaleAdd(src, inv255, fg, dst=fg)  # (A + 1) * src = A * src + src
            cv2.add(fg, bfg[rows], dst=fg)
            np.clip(fg, 0.0, 1.0, out=fg)

    starts = range(0, h, STRIP_ROWS)
    n = workers or cpu_cores()
    if n > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(n, len(starts)), thread_name_prefix="mattekit-tail") as pool:
            list(pool.map(strip, starts))  # list(): re-raise a worker's exception here
    else:
        for y in starts:
            strip(y)
    if foreground:
        fgr = afg
    return a3, fgr


# -- the foreground, only where it is seen ----------------------------------------------------
BAND_TILE = 32  # the band is covered by runs of tiles this size: ~2x the band's own area on photos

Box = tuple[int, int, int, int]  # (top, bottom, left, right)


def band_boxes(alpha: np.ndarray, tile: int = BAND_TILE) -> list[Box]:
    """Boxes covering every pixel with 0 < alpha < 1: per strip of ``tile`` rows, the runs of
    ``tile``-wide columns that hold one.

    Outside them alpha is exactly 0 or 1 (the tail clips), where the foreground colour is never
    seen: decontamination's weight is 0 at alpha 1 and a composite multiplies it by 0 at alpha 0.
    """
    h, w = alpha.shape
    rows, cols = -(-h // tile), -(-w // tile)
    padded = np.zeros((rows * tile, cols * tile), bool)
    np.logical_and(alpha > 0, alpha < 1, out=padded[:h, :w])
    grid: np.ndarray = np.any(padded.reshape(rows, tile, cols, tile), axis=(1, 3))
    boxes: list[Box] = []
    for ty in np.flatnonzero(grid.any(axis=1)):
        edges = np.diff(np.concatenate(([0], grid[ty].astype(np.int8), [0])))
        for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            boxes.append((int(ty) * tile, min(h, (int(ty) + 1) * tile), int(s) * tile, min(w, int(e) * tile)))
    return boxes


def _up_taps(length_in: int, length_out: int, start: int, stop: int) -> Taps:
    """Indices and weights of OpenCV's INTER_LINEAR upsample (half-pixel) for outputs start..stop."""
    x = np.arange(start, stop, dtype=np.float64)
    pos = (x + 0.5) * (length_in / length_out) - 0.5
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    low, high = i0 < 0, i0 >= length_in - 1
    frac[low | high] = 0.0
    i0 = np.clip(i0, 0, length_in - 1)
    i1 = np.minimum(i0 + 1, length_in - 1)
    return i0, i1, (np.float32(1) - frac), frac


def band_foreground(
    coeff_a: np.ndarray, coeff_b: np.ndarray, rgb: np.ndarray, boxes: list[Box], deadline: Deadline | None = None
) -> np.ndarray:
    """RVM's fgr (as :func:`tail` computes it, within ~1e-6) inside ``boxes``; zero elsewhere.

    The coefficients are upsampled per box from the low-resolution maps (separable bilinear at
    OpenCV's sample positions), so the cost follows the boxes, not the frame.
    ``deadline``: checked at every box (all of them took 1.0 s for a 50 MP photo here).
    """
    h, w = rgb.shape[:2]
    fgr = np.zeros((h, w, 3), np.float32)  # calloc: pages outside the boxes are never touched
    if not boxes:
        return fgr
    # Across in OpenCV, on the low-resolution rows only (a same-height resize leaves rows exact);
    # then down, per box, at OpenCV's sample positions.
    hs = coeff_a.shape[2]
    across_a = _up(np.ascontiguousarray(coeff_a[0, :3].transpose(1, 2, 0)), hs, w)  # hs x W x 3
    across_b = _up(np.ascontiguousarray(coeff_b[0, :3].transpose(1, 2, 0)), hs, w)
    r0, r1, rw0, rw1 = _up_taps(hs, h, 0, h)
    inv255 = np.float32(1.0 / 255.0)
    for top, bottom, left, right in boxes:
        check_deadline(deadline)
        rows = slice(top, bottom)
        w0, w1 = rw0[rows, None, None], rw1[rows, None, None]
        up_a = across_a[r0[rows], left:right]
        up_a *= w0
        tap = across_a[r1[rows], left:right]
        tap *= w1
        up_a += tap
        up_b = across_b[r0[rows], left:right]
        up_b *= w0
        tap = across_b[r1[rows], left:right]
        tap *= w1
        up_b += tap
        src = rgb[rows, left:right].astype(np.float32)
        src *= inv255
        up_a += np.float32(1)
        up_a *= src
        up_a += up_b
        np.clip(up_a, 0.0, 1.0, out=fgr[rows, left:right])
    return fgr
