"""decode / compose / encode on real photos (scikit-image's astronaut and cameraman, fetched by
tests/samples.py), written out in every format and mode we promise to read. No model here."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import hostile
import numpy as np
import pytest
from PIL import Image, ImageCms

from mattekit import compose, decode, encode
from mattekit.errors import InvalidInput, InvalidOption, TooLarge
from mattekit.options import BackgroundImage, Blur, Color, Options, parse_margin

pytestmark = pytest.mark.unit  # make unit: in-process and fast


@pytest.fixture(scope="module")
def photo(sample_photo: Path) -> np.ndarray:
    """The astronaut, cropped to 512x384 so that a rotation changes the shape."""
    cropped: np.ndarray = np.asarray(Image.open(sample_photo).convert("RGB"))[64:448, :, :].copy()
    return cropped


@pytest.fixture(scope="module")
def grey(sample_grey_photo: Path) -> np.ndarray:
    return np.asarray(Image.open(sample_grey_photo))


def save(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference in 8-bit levels."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# -- EXIF orientation ------------------------------------------------------------------------
# Orientation tag → how the stored pixels must turn to be upright (EXIF 2.3, table of tag 274).
UPRIGHT = {3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(photo: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = save(Image.fromarray(photo), "JPEG", quality=95, exif=exif.tobytes())
    dec = decode.decode(data)
    expected = UPRIGHT[orientation](photo)
    assert dec.rgb.shape == expected.shape
    assert mad(dec.rgb, expected) < 3.0  # JPEG q95 noise only
    if orientation != 3:  # the wrong quarter turn is far off: the check can tell them apart
        assert mad(dec.rgb, np.rot90(expected, 2)) > 20.0


# -- modes -----------------------------------------------------------------------------------
def test_rgba_keeps_its_own_alpha(photo: np.ndarray) -> None:
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:, :100] = 0
    alpha[:, 100:200] = np.linspace(0, 255, 100, dtype=np.uint8)[None, :]
    dec = decode.decode(save(Image.fromarray(np.dstack([photo, alpha]), "RGBA"), "PNG"))
    assert dec.alpha is not None
    assert np.array_equal(dec.rgb, photo) and np.array_equal(dec.alpha, alpha)


def test_opaque_rgba_has_no_alpha(photo: np.ndarray) -> None:
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    assert decode.decode(save(Image.fromarray(rgba, "RGBA"), "PNG")).alpha is None


def test_palette_without_transparency(photo: np.ndarray) -> None:
    pal = Image.fromarray(photo).quantize(256)
    dec = decode.decode(save(pal, "PNG"))
    assert dec.alpha is None
    assert np.array_equal(dec.rgb, np.asarray(pal.convert("RGB")))
    assert mad(dec.rgb, photo) < 6.0


def test_palette_with_transparency(photo: np.ndarray) -> None:
    pal = Image.fromarray(photo).quantize(255)
    idx = np.asarray(pal).copy()
    idx[:50, :50] = 255  # a palette entry no photo pixel uses, marked transparent
    pal2 = Image.fromarray(idx, "P")
    palette = pal.getpalette() or []
    pal2.putpalette(palette + [0] * (768 - len(palette)))
    dec = decode.decode(save(pal2, "PNG", transparency=255))
    assert dec.alpha is not None
    assert (dec.alpha[:50, :50] == 0).all() and (dec.alpha[50:, 50:] == 255).all()


def test_greyscale_l(grey: np.ndarray) -> None:
    dec = decode.decode(save(Image.fromarray(grey, "L"), "PNG"))
    assert dec.rgb.shape == (*grey.shape, 3) and dec.alpha is None
    for c in range(3):
        assert np.array_equal(dec.rgb[:, :, c], grey)


def test_greyscale_with_alpha_la(grey: np.ndarray) -> None:
    alpha = np.zeros_like(grey)
    alpha[100:400, 100:400] = 255
    dec = decode.decode(save(Image.merge("LA", [Image.fromarray(grey), Image.fromarray(alpha)]), "PNG"))
    assert dec.alpha is not None
    assert np.array_equal(dec.alpha, alpha) and np.array_equal(dec.rgb[:, :, 1], grey)


def test_cmyk_jpeg(photo: np.ndarray) -> None:
    data = save(Image.fromarray(photo).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    dec = decode.decode(data)
    assert dec.rgb.shape == photo.shape and mad(dec.rgb, photo) < 4.0


def test_16bit_greyscale_png(grey: np.ndarray) -> None:
    data = save(Image.fromarray(grey.astype(np.uint16) * 257), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    dec = decode.decode(data)
    assert np.array_equal(dec.rgb[:, :, 0], grey)  # scaled, not clipped to white


def test_16bit_rgb_png(photo: np.ndarray) -> None:
    import cv2  # Pillow cannot write 16-bit RGB; OpenCV can

    ok, buf = cv2.imencode(".png", photo[:, :, ::-1].astype(np.uint16) * 257)
    assert ok
    dec = decode.decode(buf.tobytes())
    assert mad(dec.rgb, photo) < 0.01


def test_heic(photo: np.ndarray) -> None:
    import pillow_heif

    heif = pillow_heif.from_pillow(Image.fromarray(photo))
    buf = io.BytesIO()
    heif.save(buf, quality=92)
    dec = decode.decode(buf.getvalue())
    assert dec.format in ("HEIF", "HEIC") and dec.rgb.shape == photo.shape
    assert mad(dec.rgb, photo) < 5.0


def test_heic_with_exif_orientation(photo: np.ndarray) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="HEIF", quality=92, exif=exif.tobytes())
    dec = decode.decode(buf.getvalue())  # upright once: never turned twice (container + EXIF)
    assert dec.rgb.shape == (512, 384, 3) and mad(dec.rgb, np.rot90(photo, -1)) < 5.0


def test_gif_first_frame(photo: np.ndarray) -> None:
    frames = [Image.fromarray(photo).quantize(256), Image.fromarray(255 - photo).quantize(256)]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    dec = decode.decode(data)
    assert mad(dec.rgb, photo) < 8.0 and mad(dec.rgb, 255 - photo) > 50.0


@pytest.mark.parametrize("fmt,kw", [("TIFF", {}), ("BMP", {}), ("WEBP", {"lossless": True}), ("PNG", {})])
def test_lossless_formats_roundtrip(photo: np.ndarray, fmt: str, kw: dict[str, Any]) -> None:
    dec = decode.decode(save(Image.fromarray(photo), fmt, **kw))
    assert np.array_equal(dec.rgb, photo) and dec.alpha is None


def test_lossy_webp(photo: np.ndarray) -> None:
    assert mad(decode.decode(save(Image.fromarray(photo), "WEBP", quality=90)).rgb, photo) < 4.0


def test_adobe_rgb_is_converted_to_srgb(sample_icc_photo: Path) -> None:
    img = Image.open(sample_icc_photo)
    naive = np.asarray(img.convert("RGB"))
    profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
    want = np.asarray(ImageCms.profileToProfile(img, profile, ImageCms.createProfile("sRGB"), outputMode="RGB"))
    dec = decode.decode(sample_icc_photo)
    assert np.array_equal(dec.rgb, want)
    assert mad(dec.rgb, naive) > 1.0  # the conversion really changed the colours


def test_icc_conversion_keeps_rgba_transparency(sample_icc_photo: Path) -> None:
    img = Image.open(sample_icc_photo)
    rgba = np.dstack([np.asarray(img.convert("RGB")), np.full(img.size[::-1], 128, np.uint8)])
    data = save(Image.fromarray(rgba, "RGBA"), "PNG", icc_profile=img.info["icc_profile"])
    dec = decode.decode(data)
    assert dec.alpha is not None
    assert np.array_equal(dec.rgb, decode.decode(sample_icc_photo).rgb) and (dec.alpha == 128).all()


def test_srgb_tagged_png_is_unchanged(sample_photo: Path) -> None:
    assert np.array_equal(decode.decode(sample_photo).rgb, np.asarray(Image.open(sample_photo).convert("RGB")))


# -- sources ---------------------------------------------------------------------------------
def test_every_source_kind_decodes_the_same(sample_photo: Path) -> None:
    want = decode.decode(sample_photo).rgb
    data = sample_photo.read_bytes()
    for source in (
        str(sample_photo),
        data,
        bytearray(data),
        memoryview(data),
        io.BytesIO(data),
        Image.open(sample_photo),
        want.copy(),
    ):
        assert np.array_equal(decode.decode(source).rgb, want), type(source)


def test_arrays_of_other_dtypes(photo: np.ndarray) -> None:
    assert np.array_equal(decode.decode(photo.astype(np.float32) / 255.0).rgb, photo)
    assert np.array_equal(decode.decode(photo.astype(np.uint16) * 257).rgb, photo)
    assert decode.decode(np.ones((20, 30), bool)).rgb.min() == 255
    nan = photo.astype(np.float32) / 255.0
    nan[0, 0] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):  # a bug upstream, not black pixels
        decode.decode(nan)
    assert decode.decode(np.full((20, 30, 3), 1.0005, np.float32)).rgb.min() == 255  # rounding overshoot
    rgba = np.dstack([photo, np.full(photo.shape[:2], 7, np.uint8)])
    own = decode.decode(rgba).alpha
    assert own is not None and (own == 7).all()


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((0, 5, 3), np.uint8),
        np.zeros((4, 4, 3), np.int64),
        np.zeros((2, 2, 2, 3), np.uint8),
    ],
)
def test_bad_arrays(bad: np.ndarray) -> None:
    with pytest.raises(InvalidInput):
        decode.decode(bad)


def test_unknown_source_type() -> None:
    with pytest.raises(InvalidInput, match="cannot read an image from a int"):
        decode.decode(42)  # type: ignore[arg-type]


# -- broken and hostile files ----------------------------------------------------------------
def test_truncated_jpeg(photo: np.ndarray) -> None:
    data = save(Image.fromarray(photo), "JPEG", quality=90)
    with pytest.raises(InvalidInput, match="truncated or corrupt"):
        decode.decode(data[: len(data) // 2])


def test_truncated_png(photo: np.ndarray) -> None:
    data = save(Image.fromarray(photo), "PNG")
    with pytest.raises(InvalidInput, match="truncated or corrupt"):
        decode.decode(data[: len(data) // 3])


@pytest.mark.parametrize("data", [b"hello, this is text\n" * 10, b"%PDF-1.4\n" + bytes(range(256)), b"\x89PNG\r\n"])
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="not an image we can read"):
        decode.decode(data)


def test_empty_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for source in (b"", empty, io.BytesIO(b"")):
        with pytest.raises(InvalidInput, match="empty"):
            decode.decode(source)
    with pytest.raises(InvalidInput, match="no such file"):
        decode.decode(tmp_path / "missing.png")


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` pixels, with one tiny compressed row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(TooLarge, match="limit"):
        decode.decode(png_declaring(100_000, 100_000))  # 10 gigapixels in a few bytes
    with pytest.raises(TooLarge, match="limit is 1,000"):
        decode.decode(png_declaring(100, 11), Options(max_pixels=1000))


def test_a_jpeg_with_thousands_of_scans_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = hostile.jpeg_scan_bomb(1000, 20_000)  # ~250 KB; libjpeg took 14 s over it here
    (tmp_path / "bomb.jpg").write_bytes(bomb)
    for source in (bomb, io.BytesIO(bomb), tmp_path / "bomb.jpg"):
        t0 = time.perf_counter()
        with pytest.raises(TooLarge, match="progressive scans"):
            decode.decode(source)
        assert time.perf_counter() - t0 < 0.5  # ~1 ms: one byte scan, no decode
    # Up to the limit it decodes: libjpeg writes 10 scans, so 10 + 246 copies = 256.
    assert decode.decode(hostile.jpeg_scan_bomb(64, decode.MAX_JPEG_SCANS - 10)).size == (64, 64)
    with pytest.raises(TooLarge):
        decode.decode(hostile.jpeg_scan_bomb(64, decode.MAX_JPEG_SCANS - 9))


def test_progressive_and_baseline_photos_still_decode(photo: np.ndarray) -> None:
    for kw in ({"progressive": True}, {"progressive": True, "optimize": True}, {}):
        data = save(Image.fromarray(photo), "JPEG", quality=95, **kw)
        stream = io.BytesIO(data)
        assert decode.decode(stream).size == (512, 384)


def test_a_tiff_with_a_long_page_chain_is_read_without_walking_it() -> None:
    chain = hostile.tiff_ifd_chain(48_000)  # 4.9 MB; Pillow's n_frames took 26 s over it
    t0 = time.perf_counter()
    decoded = decode.decode(chain)
    assert time.perf_counter() - t0 < 0.5  # the first page only (~1 ms)
    assert decoded.size == (1, 1) and decoded.rgb[0, 0].tolist() == [0, 0, 0]


def test_a_pil_image_on_a_later_frame_gives_its_first(photo: np.ndarray) -> None:
    frames = [Image.fromarray(photo), Image.fromarray(255 - photo)]
    img = Image.open(io.BytesIO(save(frames[0], "GIF", save_all=True, append_images=frames[1:])))
    img.seek(1)
    first = decode.decode(img).rgb
    img.seek(0)
    assert np.array_equal(first, np.asarray(img.convert("RGB")))


def test_max_pixels_applies_to_arrays_and_pil(photo: np.ndarray) -> None:
    with pytest.raises(TooLarge):
        decode.decode(photo, Options(max_pixels=1000))
    with pytest.raises(TooLarge):
        decode.decode(Image.fromarray(photo), Options(max_pixels=1000))


# -- max_size --------------------------------------------------------------------------------
def test_max_size_keeps_aspect(photo: np.ndarray) -> None:
    for source in (photo, save(Image.fromarray(photo), "JPEG", quality=95), save(Image.fromarray(photo), "PNG")):
        dec = decode.decode(source, Options(max_size=128))
        assert dec.size == (128, 96)
        small = np.asarray(Image.fromarray(photo).resize((128, 96), Image.Resampling.LANCZOS))
        assert mad(dec.rgb, small) < 4.0


def test_max_size_shrinks_alpha_without_dark_fringes(photo: np.ndarray) -> None:
    red = np.zeros_like(photo)
    red[:, :, 0] = 255
    alpha = np.zeros(photo.shape[:2], np.uint8)
    alpha[:, 256:] = 255
    dec = decode.decode(np.dstack([red, alpha]), Options(max_size=100))
    assert dec.alpha is not None
    partial = (dec.alpha > 0) & (dec.alpha < 255)
    assert np.any(partial)
    assert (dec.rgb[partial][:, 0] == 255).all()  # premultiplied resize: edge stays red, not dark


def test_max_size_16bit_is_not_clipped(grey: np.ndarray) -> None:
    dec = decode.decode(save(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"), Options(max_size=64))
    assert dec.size == (64, 64) and abs(float(dec.rgb.mean()) - float(grey.mean())) < 2.0


# -- compose ---------------------------------------------------------------------------------
def soft_alpha(h: int, w: int) -> np.ndarray:
    a = np.zeros((h, w), np.float32)
    a[100:300, 200:400] = 1.0
    a[300:310, 200:400] = 0.5
    return a


def test_input_alpha_bounds_ours(photo: np.ndarray) -> None:
    own = np.full(photo.shape[:2], 255, np.uint8)
    own[:, :250] = 0
    dec = decode.Decoded(photo, own)
    out = np.asarray(compose.compose(dec, soft_alpha(*photo.shape[:2]), None, Options()).image)
    assert (out[:, :250, 3] == 0).all() and (out[150, 260:400, 3] == 255).all()


def test_compose_outputs(photo: np.ndarray) -> None:
    dec = decode.Decoded(photo)
    alpha = soft_alpha(*photo.shape[:2])
    cut = compose.compose(dec, alpha, None, Options()).image
    assert cut.mode == "RGBA" and cut.size == (512, 384)
    assert np.array_equal(np.asarray(cut)[:, :, :3], photo)
    mask = compose.compose(dec, alpha, None, Options(mask=True)).image
    assert mask.mode == "L" and np.asarray(mask)[305, 300] == 128 and np.asarray(mask)[0, 0] == 0
    green = np.asarray(compose.compose(dec, alpha, None, Options(background=Color((0, 255, 0)))).image)
    assert green[0, 0].tolist() == [0, 255, 0] and green[150, 300].tolist() == photo[150, 300].tolist()
    blur = np.asarray(compose.compose(dec, alpha, None, Options(background=Blur(10))).image)
    assert blur.shape == photo.shape and mad(blur[:50], photo[:50]) > 2.0
    assert np.array_equal(blur[150, 300], photo[150, 300])


def test_background_image_fill_and_fit(photo: np.ndarray, grey: np.ndarray) -> None:
    dec = decode.Decoded(photo)
    alpha = np.zeros(photo.shape[:2], np.float32)
    wide = np.repeat(grey[:128, :, None], 3, axis=2)  # 512x128: much wider than the 512x384 photo
    filled = np.asarray(compose.compose(dec, alpha, None, Options(background=BackgroundImage(wide, "fill"))).image)
    fitted = np.asarray(compose.compose(dec, alpha, None, Options(background=BackgroundImage(wide, "fit"))).image)
    assert filled.shape == fitted.shape == photo.shape
    assert (filled.max(axis=(1, 2)) > 0).all()  # fill: the picture covers every row
    assert (fitted[:100] == 0).all() and (fitted[-100:] == 0).all()  # fit: letterboxed...
    assert fitted[192].std() > 5  # ...with the picture across the middle


def test_crop_with_margin_px_and_percent(photo: np.ndarray) -> None:
    dec = decode.Decoded(photo)
    alpha = soft_alpha(*photo.shape[:2])  # subject box: x 200..400, y 100..310
    assert compose.compose(dec, alpha, None, Options(crop=True)).image.size == (200, 210)
    assert compose.compose(dec, alpha, None, Options(crop=True, margin=parse_margin("10"))).image.size == (220, 230)
    assert compose.compose(dec, alpha, None, Options(crop=True, margin=parse_margin("10%"))).image.size == (
        242,
        252,
    )  # 10 % of 210
    assert compose.compose(dec, alpha, None, Options(crop=True, margin=parse_margin("1000"))).image.size == (512, 384)  # clamped


def test_compose_says_where_it_cut_and_where_the_subject_is(photo: np.ndarray) -> None:
    dec = decode.Decoded(photo)
    alpha = soft_alpha(*photo.shape[:2])  # subject box: x 200..400, y 100..310
    cut = compose.compose(dec, alpha, None, Options(crop=True, margin=parse_margin("10")))
    assert cut.crop_box == (190, 90, 410, 320)
    assert cut.subject_box == (10, 10, 210, 220)  # in the result's pixels
    assert "crop_box" not in cut.image.info and "subject_box" not in cut.image.info
    whole = compose.compose(dec, alpha, None, Options(background=Color((0, 0, 0))))
    assert whole.crop_box is None and whole.subject_box == (200, 100, 400, 310)


def test_crop_with_empty_alpha_keeps_the_whole_image(photo: np.ndarray) -> None:
    out = compose.compose(decode.Decoded(photo), np.zeros(photo.shape[:2], np.float32), None, Options(crop=True)).image
    assert out.size == (512, 384) and np.asarray(out)[:, :, 3].max() == 0


# -- encode ----------------------------------------------------------------------------------
def test_encode_formats(photo: np.ndarray) -> None:
    rgba = Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)]), "RGBA")
    png = Image.open(io.BytesIO(encode.encode(rgba, "png")))
    assert png.format == "PNG" and np.array_equal(np.asarray(png), np.asarray(rgba))
    lossless = Image.open(io.BytesIO(encode.encode(rgba, "webp", 100)))
    assert lossless.format == "WEBP" and np.array_equal(np.asarray(lossless), np.asarray(rgba))
    lossy = Image.open(io.BytesIO(encode.encode(rgba, "webp", 80)))
    assert lossy.mode == "RGBA" and (np.asarray(lossy)[:, :, 3] == 200).all()
    jpg = Image.open(io.BytesIO(encode.encode(Image.fromarray(photo), "jpeg", 95)))
    assert jpg.format == "JPEG" and mad(np.asarray(jpg), photo) < 3.0
    with pytest.raises(InvalidOption, match="no transparency"):
        encode.encode(rgba, "jpg")
    with pytest.raises(InvalidOption):
        encode.encode(rgba, "gif")


def test_encode_refuses_sizes_the_format_cannot_hold() -> None:
    with pytest.raises(TooLarge, match="16383"):
        encode.encode(Image.new("RGBA", (16384, 2)), "webp")
    assert encode.encode(Image.new("RGBA", (16384, 2)), "png")


def test_with_alpha_interleaves_like_dstack(photo: np.ndarray) -> None:
    a8 = (np.arange(photo.shape[0] * photo.shape[1]) % 256).astype(np.uint8).reshape(photo.shape[:2])
    np.testing.assert_array_equal(decode.with_alpha(photo, a8), np.dstack([photo, a8]))
    view = photo[10:200, 7:300]  # a crop: not contiguous
    np.testing.assert_array_equal(decode.with_alpha(view, a8[10:200, 7:300]), np.dstack([view, a8[10:200, 7:300]]))


def test_a_decode_past_its_deadline_stops_at_its_next_scan_and_the_result_is_unchanged() -> None:
    from mattekit.deadline import Deadline
    from mattekit.errors import DeadlineExceeded

    # 250 scans of 4 MP: ~0.7 s of libjpeg in one 64 KiB read before; now one scan a read.
    bomb = hostile.jpeg_scan_bomb(2000, 240)
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        decode.decode(bomb, deadline=Deadline.after(0.05, "this photo"))
    assert time.monotonic() - start < 0.3
    far = Deadline.after(60)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    for fmt, kw in (("JPEG", {"progressive": True}), ("JPEG", {}), ("PNG", {}), ("WEBP", {})):
        buf = io.BytesIO()
        photo.save(buf, fmt, **kw)
        plain = decode.decode(buf.getvalue())
        assert np.array_equal(decode.decode(buf.getvalue(), deadline=far).rgb, plain.rgb), fmt
    cutout = Image.fromarray(np.dstack([np.asarray(photo), np.full((300, 400), 128, np.uint8)]), "RGBA")
    for fmt in ("png", "webp"):
        assert encode.encode(cutout, fmt, deadline=far) == encode.encode(cutout, fmt), fmt
    assert encode.encode(photo, "jpg", deadline=far) == encode.encode(photo, "jpg")
    alpha = np.random.default_rng(1).random((700, 300), dtype=np.float32)  # strips of 256 rows
    assert np.array_equal(compose.alpha_to_u8(alpha, far), compose.alpha_to_u8(alpha))
    with pytest.raises(DeadlineExceeded):
        encode.encode(photo, "jpg", deadline=Deadline(time.monotonic() - 1))
