"""The foreground computed only in alpha's partial band (engine.Matte.foreground_boxes) against
the whole-frame computation it replaces: every output a user sees must stay the same (1/255)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit import compose, decode, video
from mattekit.core import kernels
from mattekit.core.engine import Engine, Matte
from mattekit.matter import Matter
from mattekit.options import BackgroundImage, Blur, Color, Options

pytestmark = pytest.mark.unit  # make unit: in-process and fast

ONE_LEVEL = 1  # uint8 levels: float rounding of the foreground may tip a pixel by one


@pytest.fixture(scope="module")
def split() -> Engine:
    e = Engine(threads=1).load()
    assert e.split, "the fast path did not load; see the log for why"
    return e


def _pair(engine: Engine, path: Path, ratio: float = 0.25) -> tuple[np.ndarray, Matte, Matte]:
    rgb = np.asarray(Image.open(path).convert("RGB"))
    full = engine.matte(rgb, ratio, passes=2, foreground=True, full_foreground=True)
    band = engine.matte(rgb, ratio, passes=2, foreground=True)
    return rgb, full, band


def _covered(shape: tuple[int, int], boxes) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for top, bottom, left, right in boxes:
        mask[top:bottom, left:right] = True
    return mask


def _check_foreground(rgb: np.ndarray, full: Matte, band: Matte) -> None:
    assert full.foreground_boxes is None and band.foreground_boxes is not None
    np.testing.assert_array_equal(band.alpha, full.alpha)
    inside = _covered(rgb.shape[:2], band.foreground_boxes)
    partial = (full.alpha > 0) & (full.alpha < 1)
    assert partial.any(), "a photo of a person has soft edges"
    assert inside[partial].all(), "a partially transparent pixel was left out of the boxes"
    assert inside.mean() < 0.5, f"the boxes cover {inside.mean():.0%} of the frame: no saving"
    assert np.abs(band.foreground - full.foreground)[inside].max() < 1e-5


def _check_outputs(rgb: np.ndarray, full: Matte, band: Matte) -> None:
    decoded = decode.Decoded(rgb)
    picture = decode.Decoded(np.ascontiguousarray(rgb[::-1, ::-1]))
    backgrounds = [None, Color((0, 200, 40)), Blur(20.0), BackgroundImage(picture, "fill")]
    for background in backgrounds:
        for crop in (False, True):
            opts = Options(background=background, crop=crop)
            ref = np.asarray(compose.compose(decoded, full.alpha, full.foreground, opts).image)
            got = np.asarray(
                compose.compose(decoded, band.alpha, band.foreground, opts, foreground_boxes=band.foreground_boxes).image
            )
            assert ref.shape == got.shape
            diff = np.abs(ref.astype(int) - got.astype(int))
            if background is None:  # RGBA: every visible pixel, and the alpha itself
                visible = ref[..., 3] > 0
                assert diff[..., 3].max() == 0
                assert diff[visible].max() <= ONE_LEVEL, (background, crop)
            else:
                assert diff.max() <= ONE_LEVEL, (background, crop)


def test_band_foreground_matches_the_whole_frame_on_a_sample_photo(split, sample_photo):
    rgb, full, band = _pair(split, sample_photo)
    _check_foreground(rgb, full, band)
    _check_outputs(rgb, full, band)


@pytest.mark.eval
def test_band_foreground_matches_the_whole_frame_on_a_portrait(split, portrait):
    rgb, full, band = _pair(split, portrait, 0.25)
    _check_foreground(rgb, full, band)
    _check_outputs(rgb, full, band)


def test_video_frames_match_the_whole_frame(split, sample_photo):
    rgb, full, band = _pair(split, sample_photo)
    bg = np.asarray(compose.gaussian_blur(rgb, 9.0))
    for kind in ("composite", "transparent"):
        ref = video.compose_frame(kind, rgb, full, bg, True)
        got = video.compose_frame(kind, rgb, band, bg, True)
        diff = np.abs(ref.astype(int) - got.astype(int))
        if kind == "transparent":
            diff = diff[ref[..., 3] > 0]
        assert diff.max() <= ONE_LEVEL, kind


def test_transparent_pixels_outside_the_band_keep_the_photos_colours(split, sample_photo):
    rgb, _, band = _pair(split, sample_photo)
    out = compose.decontaminate(rgb, band.alpha, band.foreground, band.foreground_boxes)
    outside = ~_covered(rgb.shape[:2], band.foreground_boxes)
    assert outside.any()
    np.testing.assert_array_equal(out[outside], rgb[outside])


def test_band_boxes_cover_partial_pixels_at_any_frame_size():
    rng = np.random.default_rng(0)
    for h, w in ((17, 33), (64, 64), (100, 31)):
        alpha = rng.choice(np.array([0.0, 1.0, 0.5], np.float32), size=(h, w), p=[0.6, 0.38, 0.02])
        boxes = kernels.band_boxes(alpha)
        inside = _covered((h, w), boxes)
        assert inside[(alpha > 0) & (alpha < 1)].all()
        assert all(0 <= t < b <= h and 0 <= left < r <= w for t, b, left, r in boxes)
    assert kernels.band_boxes(np.ones((40, 40), np.float32)) == []


def test_a_photos_own_transparency_gets_the_whole_foreground(split, sample_photo):
    """Own alpha can make pixels partial where RVM's alpha is 1, outside the band."""
    rgb = np.asarray(Image.open(sample_photo).convert("RGB"))
    own = np.full(rgb.shape[:2], 255, np.uint8)
    own[:, : rgb.shape[1] // 2] = 128
    rgba = Image.fromarray(np.dstack([rgb, own]), "RGBA")
    opts = Options(background=Color((255, 255, 255)), ratio=0.25, preset="fast")
    got = np.asarray(Matter(opts, split).process(rgba).image)
    full = split.matte(rgb, 0.25, foreground=True, full_foreground=True)
    ref = np.asarray(compose.compose(decode.Decoded(rgb, own), full.alpha, full.foreground, opts).image)
    assert np.abs(ref.astype(int) - got.astype(int)).max() <= ONE_LEVEL
