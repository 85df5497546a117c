"""`mattekit.remove` / `Matter` end to end with the real model on a real photo of a person
(scikit-image's astronaut, 512x512). Kept small (max_size 256, the fast preset) where the point is
the plumbing rather than matte quality; quality is bench/quality.py's job on ../shared/eval."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mattekit
from mattekit import Color, InvalidInput, InvalidOption, Matter, Options, TooLarge

pytestmark = pytest.mark.unit  # make unit: in-process and fast

FAST = dict(preset="fast", max_size=256)


def alpha_of(img: Image.Image) -> np.ndarray:
    return np.asarray(img.getchannel("A") if img.mode == "RGBA" else img).astype(np.float32) / 255.0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a > 0.5, b > 0.5
    return float((x & y).sum() / max(1, (x | y).sum()))


@pytest.fixture(scope="module")
def cutout(sample_photo: Path) -> Image.Image:
    return mattekit.remove(sample_photo, **FAST)


def test_cutout_finds_the_person(cutout: Image.Image) -> None:
    assert cutout.mode == "RGBA" and cutout.size == (256, 256)
    a = alpha_of(cutout)
    assert a[50:80, 100:130].mean() > 0.95  # her face
    assert a[128:200, 40:120].mean() > 0.95  # her suit
    assert a[:40, 180:].mean() < 0.05  # the studio backdrop, top right
    assert 0.2 < a.mean() < 0.7


def test_default_options_at_full_size(sample_photo: Path, cutout: Image.Image) -> None:
    full = mattekit.remove(sample_photo)  # preset balanced, ratio auto, PNG-ready RGBA
    assert full.mode == "RGBA" and full.size == (512, 512)
    small = alpha_of(full.resize((256, 256), Image.Resampling.BILINEAR))
    assert iou(small, alpha_of(cutout)) > 0.9


def test_every_source_kind_gives_the_same_cutout(sample_photo: Path, cutout: Image.Image) -> None:
    data = sample_photo.read_bytes()
    want = np.asarray(cutout)
    for source in (
        str(sample_photo),
        data,
        io.BytesIO(data),
        Image.open(sample_photo),
        np.asarray(Image.open(sample_photo).convert("RGB")),
    ):
        assert np.array_equal(np.asarray(mattekit.remove(source, **FAST)), want), type(source)


def test_exif_rotated_photo_comes_out_upright(sample_photo: Path, tmp_path: Path) -> None:
    upright = np.asarray(Image.open(sample_photo).convert("RGB"))[:, 64:448]  # 384x512, portrait
    stored = np.rot90(upright, 1)  # what a camera held sideways stores; Orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=95, exif=exif.tobytes())
    out = mattekit.remove(path, **FAST)
    ref = mattekit.remove(upright, **FAST)
    assert out.size == ref.size == (192, 256)
    assert iou(alpha_of(out), alpha_of(ref)) > 0.95


def test_input_transparency_bounds_the_cutout(sample_photo: Path) -> None:
    rgb = np.asarray(Image.open(sample_photo).convert("RGB"))
    own = np.full(rgb.shape[:2], 255, np.uint8)
    own[:, :256] = 0  # the left half was already cut away
    own[:, 256:300] = 100
    out = alpha_of(mattekit.remove(Image.fromarray(np.dstack([rgb, own]), "RGBA"), preset="fast"))
    assert out[:, :256].max() == 0
    assert (out <= own / 255.0 + 1e-6).all()
    assert out[:, 300:].max() > 0.99  # the rest of her is still there


def test_mask(sample_photo: Path, cutout: Image.Image) -> None:
    mask = mattekit.remove(sample_photo, mask=True, **FAST)
    assert mask.mode == "L" and mask.size == cutout.size
    assert np.abs(alpha_of(mask) - alpha_of(cutout)).max() <= 1 / 255 + 1e-6


def test_solid_colour_background(sample_photo: Path, cutout: Image.Image) -> None:
    out = np.asarray(mattekit.remove(sample_photo, background="#00ff00", **FAST))
    assert out.shape == (256, 256, 3)
    clear = alpha_of(cutout) < 0.01
    assert (np.abs(out[clear].astype(int) - [0, 255, 0]) <= 3).all()
    assert mattekit.remove(sample_photo, background=Color((0, 0, 255)), **FAST).mode == "RGB"


def test_background_image_and_blur(sample_photo: Path, sample_grey_photo: Path, cutout: Image.Image) -> None:
    clear = alpha_of(cutout) < 0.01
    square = mattekit.remove(sample_photo, background=str(sample_grey_photo), **FAST)  # a path, as the CLI gives
    grey_bg = np.asarray(Image.open(sample_grey_photo).resize((256, 256), Image.Resampling.LANCZOS))
    assert square.mode == "RGB" and square.size == (256, 256)
    assert np.abs(np.asarray(square)[clear][:, 1].astype(int) - grey_bg[clear]).mean() < 3  # he shows through

    wide = np.asarray(Image.open(sample_grey_photo))[128:384]  # 512x256
    fill = np.asarray(mattekit.remove(sample_photo, background=mattekit.BackgroundImage(wide, "fill"), **FAST))
    fit = np.asarray(mattekit.remove(sample_photo, background=mattekit.BackgroundImage(wide, "fit"), **FAST))
    top = clear.copy()
    top[64:] = False  # fit letterboxes the 2:1 picture: rows 0..63 are bars
    assert top.any() and fit[top].max() <= 3 and fill[top].max() > 50  # alpha < 0.01 lets <= 3 levels through

    blurred = np.asarray(mattekit.remove(sample_photo, background="blur", **FAST))
    original = np.asarray(Image.open(sample_photo).convert("RGB").resize((256, 256), Image.Resampling.LANCZOS))
    assert blurred.shape == original.shape

    def roughness(img: np.ndarray) -> float:
        return float(np.abs(np.diff(img.astype(int), axis=1))[clear[:, 1:]].mean())

    assert roughness(blurred) < 0.7 * roughness(original)  # the old background is softened


def test_crop_with_margins(sample_photo: Path, cutout: Image.Image) -> None:
    a = alpha_of(cutout)
    rows, cols = np.flatnonzero((a > 0.05).any(axis=1)), np.flatnonzero((a > 0.05).any(axis=0))
    box_w, box_h = int(cols[-1] + 1 - cols[0]), int(rows[-1] + 1 - rows[0])
    tight = mattekit.remove(sample_photo, crop=True, **FAST)
    assert tight.size == (box_w, box_h) and tight.size != (256, 256)
    assert alpha_of(tight).sum() == pytest.approx(a.sum(), rel=1e-4)  # nothing of her was cut off
    padded = mattekit.remove(sample_photo, crop=True, margin="4", **FAST)
    left, top = int(cols[0]), int(rows[0])
    assert padded.size == (box_w + min(4, left) + min(4, 256 - cols[-1] - 1), box_h + min(4, top) + min(4, 256 - rows[-1] - 1))
    pct = mattekit.remove(sample_photo, crop=True, margin="100%", **FAST)
    assert pct.size == (256, 256)  # a margin as large as the subject reaches every border


def test_encoded_formats(sample_photo: Path) -> None:
    m = Matter(Options(**FAST))
    png = Image.open(io.BytesIO(m.remove_bytes(sample_photo)))
    assert (png.format, png.mode) == ("PNG", "RGBA")
    webp = Image.open(io.BytesIO(m.remove_bytes(sample_photo, format="webp")))
    assert (webp.format, webp.mode) == ("WEBP", "RGBA")
    jpg = Image.open(io.BytesIO(m.remove_bytes(sample_photo, format="jpg", background="white")))
    assert (jpg.format, jpg.mode, jpg.size) == ("JPEG", "RGB", (256, 256))
    mask_jpg = Image.open(io.BytesIO(m.remove_bytes(sample_photo, format="jpg", mask=True)))
    assert (mask_jpg.format, mask_jpg.mode) == ("JPEG", "L")
    with pytest.raises(InvalidOption, match="JPEG has no transparency"):
        m.remove_bytes(sample_photo, format="jpg")


def test_max_size_and_timings(sample_photo: Path) -> None:
    res = Matter().process(sample_photo, Options(preset="fast", max_size=100))
    assert res.image.size == (100, 100)
    assert set(res.timings) >= {"decode", "matte", "compose"}
    res.encode("png")
    assert "encode" in res.timings


def test_errors_are_ours(sample_photo: Path) -> None:
    with pytest.raises(InvalidInput):
        mattekit.remove(b"definitely not an image")
    with pytest.raises(InvalidInput, match="is a folder, not an image"):
        mattekit.remove(sample_photo.parent)
    # A max_size too small for the photo is the option's fault, with one that works.
    from samples import sample_path

    rocket = sample_path("rocket")  # a 640x427 JPEG: checked on its header, before libjpeg's reduced decode
    with pytest.raises(InvalidOption, match="max.size 20 would shrink this 640x427 photo to 20x13 pixels.*max.size 24 or more"):
        mattekit.remove(rocket, max_size=20)
    with pytest.raises(InvalidOption, match="16x4000 photo to 4x1000 pixels.*max.size 4000 or more"):
        mattekit.remove(np.zeros((4000, 16, 3), np.uint8), max_size=1000)
    with pytest.raises(TooLarge):
        mattekit.remove(sample_photo, max_pixels=1000)
    with pytest.raises(InvalidOption):
        mattekit.remove(sample_photo, preset="ultra")
    with pytest.raises(mattekit.MattekitError):
        mattekit.remove(sample_photo, margin="-5")
    with pytest.raises(InvalidInput, match="^background image: the input is not an image"):
        mattekit.remove(sample_photo, background=mattekit.BackgroundImage(b"junk"), **FAST)


def test_an_empty_result_is_an_error_from_remove_and_a_notice_from_process() -> None:
    """A plain black picture has no subject: ``remove`` (which returns only the picture) raises
    instead of handing back a blank cut-out; ``process`` returns the result, flagged, for a
    caller that wants it anyway."""
    black = np.zeros((96, 128, 3), np.uint8)
    with pytest.raises(mattekit.EmptyResult):
        mattekit.remove(black, **FAST)
    with pytest.raises(mattekit.EmptyResult):
        Matter().remove_bytes(black, **FAST)
    result = Matter().process(black, Options(**FAST))  # type: ignore[arg-type]
    assert result.empty and result.notice and alpha_of(result.image).max() < 0.5


def test_float_arrays_outside_zero_to_one_are_refused_not_clipped(sample_photo: Path) -> None:
    rgb = np.asarray(Image.open(sample_photo).convert("RGB"))
    want = alpha_of(mattekit.remove(rgb, **FAST))
    same = alpha_of(mattekit.remove(rgb.astype(np.float32) / 255.0, **FAST))  # [0, 1]: the same photo
    assert np.abs(same - want).max() <= 1 / 255
    with pytest.raises(InvalidInput, match=r"values in \[0, 1\]; this one holds 0 to 255 \(divide by 255"):
        mattekit.remove(rgb.astype(np.float32), **FAST)
    broken = rgb.astype(np.float32) / 255.0
    broken[0, 0, 0] = np.nan
    with pytest.raises(InvalidInput, match="NaN or infinite"):
        mattekit.remove(broken, **FAST)


def test_max_lowres_pixels_caps_the_ratio_not_the_photo(sample_photo: Path) -> None:
    """The library allows any ratio by default; with a limit, a ratio that would run the network
    on more pixels fails before the model runs, and the automatic size always fits."""
    with pytest.raises(TooLarge, match="smaller ratio"):
        mattekit.remove(sample_photo, ratio=1.0, max_lowres_pixels=100_000)
    assert mattekit.remove(sample_photo, ratio=0.5, max_lowres_pixels=100_000).size == (512, 512)
    assert mattekit.remove(sample_photo, preset="fast", max_lowres_pixels=300_000).mode == "RGBA"
    with pytest.raises(InvalidOption):
        Options(max_lowres_pixels=0)
