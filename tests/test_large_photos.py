"""A photo past the pixel limit with a smaller size asked for (issue 28 item 4): a JPEG is decoded
reduced by libjpeg (1/2, 1/4, 1/8) and the limit holds for what is decoded, up to
REDUCED_JPEG_BOUND times the limit; past that, or without a size, the 422 says what to do."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mattekit import decode
from mattekit.errors import TooLarge
from mattekit.options import Options
from mattekit.service import Settings, create_app

pytestmark = pytest.mark.unit  # make unit: in-process and fast

LIMIT = 2_000_000


def _jpeg(size: tuple[int, int], progressive: bool = False) -> bytes:
    # Flat colour: encoded and decoded in milliseconds, and the model has a clear nothing to find.
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buf, "JPEG", quality=80, progressive=progressive)
    return buf.getvalue()


def test_a_54_mp_jpeg_at_1024_px_is_decoded_at_an_eighth() -> None:
    data = _jpeg((9000, 6000))  # 54 MP, past the server's default limit of 50 MP
    t0 = time.perf_counter()
    decoded = decode.decode(data, Options(max_pixels=50_000_000, max_size=1024))
    assert decoded.rgb.shape == (683, 1024, 3)
    assert time.perf_counter() - t0 < 5.0
    with pytest.raises(TooLarge) as caught:
        decode.decode(data, Options(max_pixels=50_000_000), offer_size=True)
    assert "max_size=2048" in caught.value.worded("api") and "--max-size 2048" in str(caught.value)
    with pytest.raises(TooLarge) as caught:  # a background: no size to ask for, so none is offered
        decode.decode(data, Options(max_pixels=50_000_000))
    assert "shrink it first" in str(caught.value) and "max" not in str(caught.value).split("limit is")[1]


@pytest.mark.parametrize("progressive", [False, True])
def test_reduced_decode_stays_within_the_limit(progressive: Any) -> None:
    data = _jpeg((2400, 1500), progressive)  # 3.6 MP: 1.8x the limit
    with pytest.raises(TooLarge):
        decode.decode(data, Options(max_pixels=LIMIT))
    # 512 px: libjpeg's 1/4 (600x375) is the smallest reduction that still has 512 px.
    assert decode.decode(data, Options(max_pixels=LIMIT, max_size=512)).rgb.shape == (320, 512, 3)
    # 2048 px needs the whole picture: the limit holds as before.
    with pytest.raises(TooLarge):
        decode.decode(data, Options(max_pixels=LIMIT, max_size=2048))


def test_past_the_bound_a_size_does_not_help() -> None:
    data = _jpeg((3000, 2000))  # 6 MP: 3x the limit, past REDUCED_JPEG_BOUND
    assert decode.REDUCED_JPEG_BOUND * LIMIT < 6_000_000
    with pytest.raises(TooLarge) as caught:
        decode.decode(data, Options(max_pixels=LIMIT, max_size=256))
    assert "shrink it first" in str(caught.value) and "max" not in str(caught.value).split("limit is")[1]
    png = io.BytesIO()
    Image.new("RGB", (2400, 1500)).save(png, "PNG")
    with pytest.raises(TooLarge) as caught:  # only JPEG decodes reduced: no size is offered
        decode.decode(png.getvalue(), Options(max_pixels=LIMIT, max_size=256))
    assert "max" not in str(caught.value).split("limit is")[1]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(Settings(max_upload_bytes=4_000_000, max_pixels=LIMIT, workers=1, queue_size=2))
    with TestClient(app) as c:
        deadline = time.monotonic() + 120
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the model did not load in time"
            time.sleep(0.1)
        yield c


def test_the_size_option_gets_a_large_jpeg_past_the_limit(client: Any, sample_photo: Path) -> None:
    """The page's "Size 1024 px" is the API's max_size: with it the photo is matted, without it
    the 422 says to ask for one (in the API's words, not the CLI's)."""
    buf = io.BytesIO()
    with Image.open(sample_photo) as img:  # a real photo, enlarged past the limit
        img.convert("RGB").resize((2400, 1500)).save(buf, "JPEG", quality=85)
    data = buf.getvalue()
    r = client.post("/api/v1/remove", files={"file": ("big.jpg", data, "image/jpeg")})
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "max_size=2048" in message and "--" not in message, message
    r = client.post("/api/v1/remove", data={"max_size": "512", "preset": "fast"}, files={"file": ("big.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.headers["x-image-size"] == "512x320"


def test_remove_bg_sizes_also_decode_a_large_jpeg_reduced(client: Any, sample_photo: Path) -> None:
    """remove.bg's size presets become a max_size (removebg.py): they reach the reduced decode
    too, and its refusals name its own parameters (size=preview), not ours or the CLI's."""
    buf = io.BytesIO()
    with Image.open(sample_photo) as img:
        img.convert("RGB").resize((2400, 1500)).save(buf, "JPEG", quality=85)
    data = buf.getvalue()
    headers = {"X-Api-Key": "any"}
    r = client.post(
        "/v1.0/removebg", data={"size": "preview"}, headers=headers, files={"image_file": ("big.jpg", data, "image/jpeg")}
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/v1.0/removebg", data={"size": "full"}, headers=headers, files={"image_file": ("big.jpg", data, "image/jpeg")}
    )
    assert r.status_code == 422, r.text
    title = r.json()["errors"][0]["title"]
    assert "size=preview" in title and "max_size" not in title and "--" not in title, title
