"""Options: one typed object, validated once, built the same from the library, CLI and forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from mattekit.errors import InvalidOption
from mattekit.options import (
    BackgroundImage,
    Blur,
    Color,
    Margin,
    Options,
    parse_background,
    parse_color,
    parse_margin,
    parse_ratio,
)

pytestmark = pytest.mark.unit  # make unit: in-process and fast


def test_defaults() -> None:
    o = Options()
    assert (o.preset, o.ratio, o.format, o.mask, o.background, o.crop) == ("balanced", "auto", "png", False, None, False)


@pytest.mark.parametrize("text,want", [("auto", "auto"), ("", "auto"), (None, "auto"), ("0.25", 0.25), (1, 1.0)])
def test_ratio(text, want) -> None:
    assert parse_ratio(text) == want


@pytest.mark.parametrize("bad", ["0", "-0.5", "1.5", "nan", "inf", "fast"])
def test_bad_ratio(bad: str) -> None:
    with pytest.raises(InvalidOption, match="ratio"):
        parse_ratio(bad)


def test_colours() -> None:
    assert parse_color("white") == Color((255, 255, 255))
    assert parse_color("#0f0") == Color((0, 255, 0))
    assert parse_color(" #102030 ") == Color((16, 32, 48))
    assert parse_color("rgb(1, 2, 3)") == Color((1, 2, 3))
    with pytest.raises(InvalidOption, match="unknown colour"):
        parse_color("notacolour")
    assert parse_color("#102030ff") == Color((16, 32, 48))  # opaque alpha given: fine
    with pytest.raises(InvalidOption, match="partly transparent: give an opaque colour, e.g. '#ff0000'"):
        parse_color("#ff000080")  # was made opaque without a word


@pytest.mark.parametrize(
    "text,want",
    [("16", Margin(16, False)), ("16px", Margin(16, False)), ("5%", Margin(5, True)), ("", Margin()), (None, Margin())],
)
def test_margin(text, want) -> None:
    assert parse_margin(text) == want


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "5%%", "ten", "2000%", Margin(float("nan"))])
def test_bad_margin(bad) -> None:
    with pytest.raises(InvalidOption, match="margin"):
        parse_margin(bad)


def test_margin_pixels() -> None:
    assert Margin(10).pixels(200, 100) == 10
    assert Margin(10, percent=True).pixels(200, 100) == 20  # of the subject's longer side


def test_backgrounds(tmp_path: Path) -> None:
    assert parse_background("transparent") is None and parse_background("") is None
    assert parse_background("blur") == Blur(20.0) and parse_background("blur:5") == Blur(5.0)
    assert parse_background("red") == Color((255, 0, 0))
    pic = tmp_path / "beach.jpg"
    pic.write_bytes(b"x")
    bg = parse_background(str(pic), "fit")
    assert isinstance(bg, BackgroundImage) and bg.source == pic and bg.fit == "fit"
    bare = tmp_path / "beach"  # an image file without a suffix that is no colour name
    bare.write_bytes(b"x")
    assert isinstance(parse_background(str(bare)), BackgroundImage)
    with pytest.raises(InvalidOption, match="not found"):
        parse_background(str(tmp_path / "missing.png"))
    with pytest.raises(InvalidOption, match="blur radius"):
        parse_background("blur:0")
    with pytest.raises(InvalidOption, match="blur radius"):
        parse_background("blur:wide")


def test_form_fields_never_name_server_files(tmp_path: Path) -> None:
    pic = tmp_path / "secret.png"
    pic.write_bytes(b"x")
    with pytest.raises(InvalidOption, match="uploaded"):
        Options.from_fields({"bg": str(pic)})
    assert isinstance(Options.from_fields({"bg": str(pic)}, allow_paths=True).background, BackgroundImage)
    assert isinstance(Options.from_fields({"bg": b"uploaded bytes"}).background, BackgroundImage)
    # ``background``, the field's own name, is no way round it.
    with pytest.raises(InvalidOption, match="uploaded"):
        Options.from_fields({"background": str(pic)})
    assert Options.from_fields({"background": "white"}).background == Color((255, 255, 255))
    with pytest.raises(InvalidOption, match="not both"):
        Options.from_fields({"bg": "white", "background": "black"})


def test_jpeg_needs_a_background_or_mask() -> None:
    with pytest.raises(InvalidOption, match="JPEG has no transparency"):
        Options(format="jpg")
    assert Options(format="jpeg", background=Color((0, 0, 0))).format == "jpg"
    assert Options(format="JPG", mask=True).format == "jpg"


def test_from_fields_parses_strings() -> None:
    o = Options.from_fields(
        {
            "format": "webp",
            "mask": "true",
            "crop": "1",
            "margin": "5%",
            "ratio": "0.4",
            "max_size": "800",
            "quality": "70",
            "bg": "#ffffff",
            "decontaminate": "auto",
        }
    )
    assert (o.format, o.mask, o.crop, o.margin, o.ratio, o.max_size, o.quality) == (
        "webp",
        True,
        True,
        Margin(5, True),
        0.4,
        800,
        70,
    )
    assert o.background == Color((255, 255, 255)) and o.decontaminate is None
    assert Options.from_fields({"blur": "true"}).background == Blur(20.0)
    assert Options.from_fields({"blur": "8"}).background == Blur(8.0)
    assert Options.from_fields({"quality": ""}).quality == 90  # empty form field = default


@pytest.mark.parametrize(
    "value,want",
    [("True", Blur()), ("yes", Blur()), ("ON", Blur()), ("1", Blur()), (True, Blur()), ("8", Blur(8.0)), ("2.5", Blur(2.5))]
    + [(off, None) for off in ("", "0", "false", "FALSE", "no", "off", False)],
)
def test_blur_reads_true_false_and_radii_in_any_case(value, want) -> None:
    assert Options.from_fields({"blur": value}).background == want


@pytest.mark.parametrize("value", ["wide", "-3", "0.0", "501", "nan", "blur:5"])
def test_a_bad_blur_quotes_the_value_sent(value: str) -> None:
    # Not "not 'blur:wide'": the client sent blur=wide, and the message quotes that.
    with pytest.raises(InvalidOption) as caught:
        Options.from_fields({"blur": value})
    assert caught.value.message == f"blur must be true, false or a radius in (0, 500], not {value!r}"


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"colour": "red"}, "unknown option"),
        ({"mask": "maybe"}, "mask must be true or false"),
        ({"max_size": "big"}, "max_size must be an integer"),
        ({"max_size": "5"}, "max_size must be between"),
        ({"quality": "0"}, "quality must be between"),
        ({"preset": "ultra"}, "preset must be one of"),
        ({"format": "gif"}, "format must be one of"),
        ({"bg_fit": "stretch"}, "bg_fit"),
        ({"crop_threshold": "1"}, "crop_threshold"),
        ({"crop_threshold": "nan"}, "crop_threshold"),
    ],
)
def test_from_fields_says_what_is_wrong(fields: dict, match: str) -> None:
    with pytest.raises(InvalidOption, match=match):
        Options.from_fields(fields)


def test_library_values_are_validated_too() -> None:
    assert Options(background="white").background == Color((255, 255, 255))  # type: ignore[arg-type]
    assert Options(margin="10%").margin == Margin(10, True)  # type: ignore[arg-type]
    with pytest.raises(InvalidOption, match="max_size must be an integer"):
        Options(max_size="big")  # type: ignore[arg-type]
    with pytest.raises(InvalidOption, match="fill"):
        Options(background=BackgroundImage(b"x", "stretch"))  # type: ignore[arg-type]
    with pytest.raises(InvalidOption, match="margin"):
        Options(margin=Margin(-3))


def test_replace_validates_again() -> None:
    o = Options(background=Color((1, 2, 3)))
    assert o.replace(format="jpg").format == "jpg"
    with pytest.raises(InvalidOption):
        o.replace(background=None, format="jpg")
    with pytest.raises(InvalidOption, match="unknown option 'bogus'"):  # a typo: ours, not a TypeError
        o.replace(bogus=1)
