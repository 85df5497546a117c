"""The standard alpha-matting errors, as in Deep Image Matting (Xu et al. 2017) and RVM's evaluation.

All take ``pred`` and ``true`` as float arrays HxW with alpha in [0, 1] and compare whole images
(no trimap). Scales follow the published tables:

- SAD: sum of absolute differences, in thousands.
- MSE: mean squared error, x 1e3.
- Grad: sum of squared differences of the Gaussian-derivative gradient magnitudes (sigma 1.4,
  each alpha min-max normalised first, as in RVM's ``MetricGRAD``), in thousands.
- Conn: connectivity error with threshold step 0.1 (DIM's ``compute_connectivity_error``), in
  thousands.
- dtSSD: temporal coherence of a sequence (RVM's ``MetricDTSSD``), x 1e2.

Pure functions on numpy arrays; OpenCV does the filtering and connected components.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np


def _pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"alphas must be two HxW arrays of one shape, got {pred.shape} and {true.shape}")
    return pred, true


def to_unit(alpha: np.ndarray) -> np.ndarray:
    """uint8 0..255 → float 0..1; floats pass through."""
    alpha = np.asarray(alpha)
    if alpha.dtype == np.uint8:
        return alpha.astype(np.float64) / 255.0
    return alpha.astype(np.float64)


def sad(pred: np.ndarray, true: np.ndarray) -> float:
    pred, true = _pair(pred, true)
    return float(np.abs(pred - true).sum() / 1000.0)


def mse(pred: np.ndarray, true: np.ndarray) -> float:
    pred, true = _pair(pred, true)
    return float(((pred - true) ** 2).mean() * 1000.0)


@lru_cache(maxsize=4)
def gauss_derivative_filters(sigma: float = 1.4, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """DIM's ``gaussgradient`` kernels: Gaussian in one axis times its derivative in the other,
    sized where the Gaussian falls below ``epsilon`` and normalised to unit L2 norm."""
    half = int(np.ceil(sigma * np.sqrt(-2.0 * np.log(np.sqrt(2.0 * np.pi) * sigma * epsilon))))
    t = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(t**2) / (2.0 * sigma**2)) / (sigma * np.sqrt(2.0 * np.pi))
    dg = -t * g / sigma**2
    fx = np.outer(g, dg)  # rows: Gaussian, columns: derivative → d/dx
    fx /= np.sqrt((fx**2).sum())
    return fx, fx.T.copy()


def _gradient_magnitude(alpha: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    fx, fy = gauss_derivative_filters(sigma)
    gx = cv2.filter2D(alpha, cv2.CV_64F, fx, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(alpha, cv2.CV_64F, fy, borderType=cv2.BORDER_REPLICATE)
    magnitude: np.ndarray = np.sqrt(gx**2 + gy**2)
    return magnitude


def _minmax(alpha: np.ndarray) -> np.ndarray:
    lo, hi = float(alpha.min()), float(alpha.max())
    return (alpha - lo) / (hi - lo) if hi > lo else np.zeros_like(alpha)


def grad(pred: np.ndarray, true: np.ndarray, sigma: float = 1.4) -> float:
    pred, true = _pair(pred, true)
    diff = _gradient_magnitude(_minmax(pred), sigma) - _gradient_magnitude(_minmax(true), sigma)
    return float((diff**2).sum() / 1000.0)


def conn(pred: np.ndarray, true: np.ndarray, step: float = 0.1) -> float:
    """Connectivity error: how far each pixel's alpha stands above the level at which it stops
    being connected (4-neighbourhood) to the largest component shared by prediction and truth."""
    import cv2

    pred, true = _pair(pred, true)
    thresholds = np.arange(0.0, 1.0 + step / 2.0, step)
    round_down = -np.ones_like(true)
    for i in range(1, len(thresholds)):
        both = ((true >= thresholds[i]) & (pred >= thresholds[i])).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(both, connectivity=4)
        omega = np.zeros(true.shape, dtype=bool)
        if n > 1:
            omega = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        fresh = (round_down == -1) & ~omega
        round_down[fresh] = thresholds[i - 1]
    round_down[round_down == -1] = 1.0
    true_d = true - round_down
    pred_d = pred - round_down
    true_phi = 1.0 - true_d * (true_d >= 0.15)
    pred_phi = 1.0 - pred_d * (pred_d >= 0.15)
    return float(np.abs(true_phi - pred_phi).sum() / 1000.0)


def dtssd(preds: Iterable[np.ndarray], trues: Iterable[np.ndarray]) -> float:
    """Temporal error of a sequence (RVM's dtSSD x 1e2): per frame pair,
    sqrt(sum(((p_t - p_{t-1}) - (g_t - g_{t-1}))^2)) / sqrt(pixels), averaged over pairs."""
    values = []
    prev_p: np.ndarray | None = None
    prev_t: np.ndarray | None = None
    for p, t in zip(preds, trues):
        p, t = _pair(p, t)
        if prev_p is not None:
            d = (p - prev_p) - (t - prev_t)
            values.append(np.sqrt((d**2).sum()) / np.sqrt(d.size))
        prev_p, prev_t = p, t
    if not values:
        raise ValueError("dtSSD needs at least two frames")
    return float(np.mean(values) * 100.0)


@dataclass(frozen=True)
class AlphaErrors:
    sad: float
    mse: float
    grad: float
    conn: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def alpha_errors(pred: np.ndarray, true: np.ndarray, *, with_conn: bool = True) -> AlphaErrors:
    """All four errors of one alpha against its ground truth (uint8 or float in [0, 1])."""
    pred, true = to_unit(pred), to_unit(true)
    return AlphaErrors(
        sad=sad(pred, true),
        mse=mse(pred, true),
        grad=grad(pred, true),
        conn=conn(pred, true) if with_conn else float("nan"),
    )
