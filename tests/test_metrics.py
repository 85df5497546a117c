"""The matting errors on tiny arrays whose answers can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mattekit import metrics

pytestmark = pytest.mark.unit  # make unit: in-process and fast


def test_sad_is_the_sum_of_absolute_differences_in_thousands() -> None:
    true = np.zeros((10, 10))
    pred = true.copy()
    pred[0, :4] = 0.5  # 4 pixels off by 0.5 → 2.0
    pred[1, 0] = 1.0  # 1 pixel off by 1 → 1.0
    assert metrics.sad(pred, true) == pytest.approx(3.0 / 1000)
    assert metrics.sad(true, pred) == metrics.sad(pred, true)


def test_mse_is_the_mean_squared_error_times_a_thousand() -> None:
    true = np.zeros((2, 2))
    pred = np.array([[1.0, 0.0], [0.5, 0.0]])  # (1 + 0.25) / 4
    assert metrics.mse(pred, true) == pytest.approx(0.3125 * 1000)


def test_uint8_alphas_are_read_as_fractions() -> None:
    true = np.zeros((4, 4), np.uint8)
    pred = np.full((4, 4), 255, np.uint8)
    e = metrics.alpha_errors(pred, true)
    assert e.sad == pytest.approx(16 / 1000)
    assert e.mse == pytest.approx(1000.0)


def test_identical_alphas_have_no_error() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((32, 48))
    e = metrics.alpha_errors(a, a)
    assert e == metrics.AlphaErrors(0.0, 0.0, 0.0, 0.0)


def test_gradient_filters_match_the_published_kernel() -> None:
    fx, fy = metrics.gauss_derivative_filters(1.4)
    # DIM: half size ceil(1.4*sqrt(-2 ln(sqrt(2 pi) 1.4 0.01))) = 4 → 9x9, unit L2 norm.
    assert fx.shape == (9, 9)
    assert np.sqrt((fx**2).sum()) == pytest.approx(1.0)
    assert np.allclose(fy, fx.T)
    assert np.allclose(fx[:, 4], 0.0)  # derivative is zero at the centre column
    assert np.allclose(fx, -fx[:, ::-1])  # odd in x


def test_gradient_error_sees_a_blurred_edge_but_not_a_flat_offset() -> None:
    true = np.zeros((40, 40))
    true[:, 20:] = 1.0
    blurred = np.clip((np.arange(40) - 14) / 12.0, 0, 1)[None, :].repeat(40, 0)
    assert metrics.grad(blurred, true) > 0.001
    # min-max normalisation makes a scaled copy of the same edge gradient-identical
    assert metrics.grad(true * 0.5, true) == pytest.approx(0.0, abs=1e-12)


def test_connectivity_error_punishes_a_detached_island() -> None:
    true = np.zeros((20, 20))
    true[5:15, 2:8] = 1.0
    pred = true.copy()
    pred[8:10, 14:16] = 1.0  # an island not connected to the subject
    # The island's 4 pixels are not connected at any level: round-down 0, phi_pred = 1 - 1 = 0,
    # phi_true = 1 → error 4 px x 1.0.
    assert metrics.conn(pred, true) == pytest.approx(4 / 1000)
    assert metrics.conn(true, true) == 0.0


def test_dtssd_of_a_sequence_that_moves_like_the_truth_is_zero() -> None:
    frames = [np.full((4, 4), v) for v in (0.0, 0.5, 1.0)]
    assert metrics.dtssd(frames, frames) == 0.0
    flicker = [frames[0], frames[1] + 0.1, frames[2]]
    # pair 1: diff 0.1 everywhere → sqrt(mean 0.01) = 0.1; pair 2: -0.1 → 0.1; mean 0.1 → x100
    assert metrics.dtssd(flicker, frames) == pytest.approx(10.0)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        metrics.sad(np.zeros((2, 2)), np.zeros((2, 3)))
