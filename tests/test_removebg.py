"""remove.bg's v1.0 API on our server, driven by real, unmodified remove.bg client libraries.

Each library's endpoint is a module constant; the tests point it at a real server
(``uvicorn app:app`` on loopback, tests/live_server.py) exactly as a user would. Results are
checked against the library (same alpha for the same options) on real photos (tests/samples.py).
"""

from __future__ import annotations

import asyncio
import base64
import io
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from live_server import live_server
from PIL import Image

from mattekit.matter import Matter
from mattekit.options import Color, Options
from mattekit.service import Settings, create_app
from mattekit.service.removebg import UNLIMITED
from mattekit.service.state import service_of

KEY = "test-key"
MAX_PIXELS = 600_000
MAX_UPLOAD = 3_000_000
PREVIEW = 500  # 512x512 at remove.bg's default size, 0.25 MP


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    env = {
        "MATTEKIT_API_KEYS": f"other,{KEY}",
        "MATTEKIT_MAX_PIXELS": str(MAX_PIXELS),
        "MATTEKIT_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "MATTEKIT_QUEUE_SIZE": "8",
    }
    with live_server(env) as base:
        yield base


@pytest.fixture(scope="module")
def api(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, headers={"X-Api-Key": KEY}, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def photo(sample_photo: Path) -> bytes:
    return sample_photo.read_bytes()


_reference: dict[tuple, np.ndarray] = {}


def library_alpha(data: bytes, **options) -> np.ndarray:
    """Our library's alpha (or mask) for the same photo and options."""
    key = (len(data), tuple(sorted(options.items())))
    if key not in _reference:
        image = Matter().remove(data, Options(**options))
        _reference[key] = np.asarray(image if image.mode == "L" else image.getchannel("A"))
    return _reference[key]


def assert_alpha_equal(alpha: Image.Image, expected: np.ndarray) -> None:
    got = np.asarray(alpha).astype(int)
    assert got.shape == expected.shape
    diff = np.abs(got - expected.astype(int))
    # Same library, same options, another process: equal up to float rounding in the model's threads.
    assert diff.max() <= 2 and diff.mean() < 0.01, (diff.max(), diff.mean())


def errors_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert set(error) == {"title", "code", "detail"} and error["title"], error
    assert "Traceback" not in error["title"]
    return error


def box_of(alpha: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, width, height) of alpha above the library's crop threshold (0.05)."""
    rows = np.flatnonzero((alpha > 0.05 * 255).any(axis=1))
    cols = np.flatnonzero((alpha > 0.05 * 255).any(axis=0))
    return int(rows[0]), int(cols[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


# -- PyPI `removebg` 0.4 -----------------------------------------------------------------------
def test_pypi_removebg(server, sample_photo, tmp_path, monkeypatch):
    import requests
    from removebg import RemoveBg, removebg

    monkeypatch.setattr(removebg, "API_ENDPOINT", f"{server}/v1.0/removebg")
    client = RemoveBg(KEY, str(tmp_path / "errors.log"))
    upload = tmp_path / "portrait.jpg"  # a PNG named .jpg: the server reads the bytes, not the name
    shutil.copy(sample_photo, upload)

    client.remove_background_from_img_file(str(upload))  # size=regular: 0.25 MP
    out = Image.open(f"{upload}_no_bg.png")
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (PREVIEW, PREVIEW)
    data = sample_photo.read_bytes()
    assert_alpha_equal(out.getchannel("A"), library_alpha(data, max_size=PREVIEW))

    b64 = base64.b64encode(data).decode()
    client.remove_background_from_base64_img(b64, size="hd", new_file_name=str(tmp_path / "b.png"), bg_color="81d4fa")
    composite = Image.open(tmp_path / "b.png")  # auto: opaque, so JPEG (whatever the client names it)
    assert composite.format == "JPEG" and composite.mode == "RGB" and composite.size == (512, 512)
    clear = library_alpha(data) == 0
    assert clear.sum() > 10_000
    assert np.abs(np.asarray(composite)[clear].astype(int) - (0x81, 0xD4, 0xFA)).mean() < 4

    with pytest.raises(requests.HTTPError) as url:
        client.remove_background_from_img_url("http://example.invalid/a.jpg", new_file_name=str(tmp_path / "u.png"))
    assert url.value.response.status_code == 400
    assert "fetches nothing from URLs" in errors_of(url.value.response)["title"]

    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(requests.HTTPError) as bad:
        client.remove_background_from_img_file(str(text))
    assert bad.value.response.status_code == 415
    assert errors_of(bad.value.response)["code"] == "failed_to_read_image"

    with pytest.raises(requests.HTTPError) as denied:
        RemoveBg("wrong-key", str(tmp_path / "errors.log")).remove_background_from_img_file(str(upload))
    assert denied.value.response.status_code == 403
    assert errors_of(denied.value.response) == {"title": "API Key invalid", "code": "auth_failed", "detail": "API Key invalid"}


# -- PyPI `remove-bg-api` 0.2.1 ------------------------------------------------------------------
def test_pypi_remove_bg_api(server, sample_photo, monkeypatch):
    import remove_bg_api

    monkeypatch.setattr(remove_bg_api, "API_URL", f"{server}/v1.0")
    client = remove_bg_api.RemoveBg(KEY)  # reads GET /v1.0/account at once
    assert client.account.balance() == UNLIMITED and client.account.free_api_calls() == UNLIMITED
    data = sample_photo.read_bytes()

    out = Image.open(io.BytesIO(client.remove_bg_bytes(data)))  # format auto, type auto, size preview
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (PREVIEW, PREVIEW)
    assert_alpha_equal(out.getchannel("A"), library_alpha(data, max_size=PREVIEW))
    assert client.account.balance() == UNLIMITED  # it subtracts int(X-Credits-Charged)

    # The official clients ask for zip when the user wants PNG: color.jpg + alpha.png.
    archive = client.remove_bg_file(str(sample_photo), data={"size": "full", "format": "zip", "channels": "alpha"})
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert z.namelist() == ["color.jpg", "alpha.png"]
        colour, alpha = Image.open(io.BytesIO(z.read("color.jpg"))), Image.open(io.BytesIO(z.read("alpha.png")))
    assert (colour.format, colour.mode, colour.size) == ("JPEG", "RGB", (512, 512))
    assert (alpha.format, alpha.mode, alpha.size) == ("PNG", "L", (512, 512))
    assert_alpha_equal(alpha, library_alpha(data))

    mask = Image.open(
        io.BytesIO(client.remove_bg_base64(base64.b64encode(data).decode(), data={"size": "medium", "channels": "alpha"}))
    )
    assert mask.mode == "L" and mask.size == (512, 512)
    assert_alpha_equal(mask, library_alpha(data, mask=True))

    with pytest.raises(remove_bg_api.Errors.ApiErrorCode400):
        client.remove_bg_url("http://example.invalid/a.jpg")
    with pytest.raises(remove_bg_api.Errors.ApiErrorCode400):
        client.remove_bg_bytes(data, data={"type": "banana"})
    with pytest.raises(remove_bg_api.Errors.ApiErrorCode403):
        remove_bg_api.RemoveBg("wrong-key")


# PyPI `remove-bg` 0.2.1 is not tested: its decorators.py does `from collections import Callable`,
# which fails on Python >= 3.10 (the project needs >= 3.10), it pins requests==2.23.0, and it
# installs a package named `removebg` over the one above. No user can run it against any server.


# -- the JSON mode, as npm `remove.bg` 1.3 uses it ------------------------------------------------
def test_json_mode_as_the_npm_client_uses_it(api, photo):
    # Its base64 call: a JSON body with every option, unset ones null, crop a JSON boolean.
    body = {
        "image_file_b64": base64.b64encode(photo).decode(),
        "size": "preview",
        "type": "auto",
        "scale": None,
        "position": None,
        "crop": False,
        "crop_margin": None,
        "roi": None,
        "bg_color": None,
        "bg_image_url": None,
        "channels": None,
        "add_shadow": None,
    }
    r = api.post("/v1.0/removebg", json=body, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    out = Image.open(io.BytesIO(base64.b64decode(data["result_b64"])))
    assert out.mode == "RGBA" and out.size == (PREVIEW, PREVIEW)
    alpha = library_alpha(photo, max_size=PREVIEW)
    assert_alpha_equal(out.getchannel("A"), alpha)
    assert (r.headers["x-width"], r.headers["x-height"], r.headers["x-type"]) == (str(PREVIEW), str(PREVIEW), "person")
    assert r.headers["x-credits-charged"] == "0"
    box = (data["foreground_top"], data["foreground_left"], data["foreground_width"], data["foreground_height"])
    assert box == tuple(int(r.headers[f"x-foreground-{k}"]) for k in ("top", "left", "width", "height"))
    assert all(abs(a - b) <= 1 for a, b in zip(box, box_of(alpha)))

    # Its file call: multipart, each option a string field ("false" for crop), Accept JSON too.
    r = api.post(
        "/v1.0/removebg",
        headers={"Accept": "application/json"},
        data={"size": "preview", "type": "auto", "crop": "false"},
        files={"image_file": ("photo.png", photo, "image/png")},
    )
    assert r.status_code == 200 and "result_b64" in r.json()["data"]

    # And it rejects with body.errors.
    r = api.post("/v1.0/removebg", json={"image_url": "https://example.invalid/a.jpg"}, headers={"Accept": "application/json"})
    assert r.status_code == 400 and errors_of(r)["code"] == "image_url_not_supported"


# -- every parameter on a real photo ------------------------------------------------------------
def post(api: httpx.Client, photo: bytes, **fields) -> httpx.Response:
    return api.post("/v1.0/removebg", data=fields, files={"image_file": ("upload", photo)})


def test_sizes_never_upscale(api, photo):
    small = Image.open(io.BytesIO(photo)).resize((300, 200))
    buf = io.BytesIO()
    small.save(buf, "PNG")
    for size, expected in (("small", (300, 200)), ("medium", (512, 512)), ("4k", (512, 512))):
        source = buf.getvalue() if size == "small" else photo
        r = post(api, source, size=size)
        assert r.status_code == 200, r.text
        assert Image.open(io.BytesIO(r.content)).size == expected
        assert (r.headers["x-width"], r.headers["x-height"]) == tuple(str(v) for v in expected)
    assert errors_of(post(api, photo, size="huge"))["code"] == "invalid_size"


def test_formats_channels_and_type_level(api, photo):
    r = post(api, photo, format="webp", type_level="none")
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(r.content)).mode == "RGBA" and "x-type" not in r.headers
    r = post(api, photo, format="jpg", channels="alpha")
    assert r.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(r.content)).mode == "L"
    r = post(api, photo, format="png", bg_color="white")
    assert r.headers["content-type"] == "image/png" and Image.open(io.BytesIO(r.content)).mode == "RGB"
    err = errors_of(post(api, photo, format="jpg"))
    assert err["code"] == "invalid_format" and "transparency" in err["title"]
    assert errors_of(post(api, photo, format="gif"))["code"] == "invalid_format"
    assert errors_of(post(api, photo, channels="rgb"))["code"] == "invalid_channels"


def test_backgrounds(api, photo, sample_grey_photo):
    alpha = library_alpha(photo, max_size=PREVIEW)
    clear, solid = alpha == 0, alpha == 255
    for colour, rgb in (("0f0", (0, 255, 0)), ("#ff0000ff", (255, 0, 0)), ("navy", (0, 0, 128))):
        r = post(api, photo, bg_color=colour)
        assert r.status_code == 200, r.text
        out = np.asarray(Image.open(io.BytesIO(r.content)))
        assert np.abs(out[clear].astype(int) - rgb).mean() < 4, colour
    for bad in ("12345", "notacolour", "ff000080"):
        assert errors_of(post(api, photo, bg_color=bad))["code"] == "invalid_bg_color", bad

    picture = sample_grey_photo.read_bytes()
    r = api.post("/v1.0/removebg", files={"image_file": ("a", photo), "bg_image_file": ("b", picture)})
    assert r.status_code == 200, r.text
    out = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)
    grey = np.asarray(Image.open(io.BytesIO(picture)).convert("RGB").resize((PREVIEW, PREVIEW), Image.Resampling.LANCZOS))
    upright = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB").resize((PREVIEW, PREVIEW), Image.Resampling.LANCZOS))
    assert np.abs(out[clear] - grey[clear]).mean() < 4 and np.abs(out[solid] - upright[solid]).mean() < 4
    r = api.post("/v1.0/removebg", data={"bg_color": "red"}, files={"image_file": ("a", photo), "bg_image_file": ("b", picture)})
    assert errors_of(r)["code"] == "multiple_bg_sources"
    r = post(api, photo, bg_image_url="https://example.invalid/b.jpg")
    assert r.status_code == 400 and errors_of(r)["code"] == "bg_image_url_not_supported"


def test_crop_and_crop_margin(api, photo):
    top, left, width, height = box_of(library_alpha(photo, max_size=PREVIEW))
    for margin, pad in (("", 0), ("10px", 10), ("4%", round(max(width, height) * 0.04)), ("6px 6px", 6)):
        r = post(api, photo, crop="true", crop_margin=margin)
        assert r.status_code == 200, r.text
        out = Image.open(io.BytesIO(r.content))
        right, bottom = min(PREVIEW, left + width + pad), min(PREVIEW, top + height + pad)
        assert abs(out.width - (right - max(0, left - pad))) <= 1 and abs(out.height - (bottom - max(0, top - pad))) <= 1
        assert abs(int(r.headers["x-foreground-left"]) - min(pad, left)) <= 1, margin
        assert abs(int(r.headers["x-foreground-width"]) - width) <= 1, margin
    assert post(api, photo, crop="false", crop_margin="whatever").status_code == 200  # read only with crop
    for bad, code in (
        ("600px", "invalid_crop_margin"),
        ("60%", "invalid_crop_margin"),
        ("5px 10px", "unsupported_crop_margin"),
        ("five", "invalid_crop_margin"),
    ):
        assert errors_of(post(api, photo, crop="true", crop_margin=bad))["code"] == code, bad


def test_refused_and_ignored_parameters(api, photo):
    for fields, code in (
        ({"type": "banana"}, "invalid_type"),
        ({"roi": "10% 10% 90% 90%"}, "unsupported_roi"),
        ({"roi": "0 0"}, "invalid_roi"),
        ({"scale": "50%"}, "unsupported_scale"),
        ({"scale": "5%"}, "invalid_scale"),
        ({"position": "center"}, "unsupported_position"),
        ({"position": "left"}, "invalid_position"),
        ({"type_level": "3"}, "invalid_type_level"),
    ):
        r = post(api, photo, **fields)
        assert r.status_code == 400 and errors_of(r)["code"] == code, (fields, r.text)
    # The official CLI sends every field, "" when unset; rembgpy sends the defaults spelled out.
    r = post(
        api,
        photo,
        size="",
        type="",
        type_level="",
        roi="0 0 100% 100%",
        crop="",
        crop_margin="",
        scale="",
        position="original",
        channels="",
        add_shadow="true",
        semitransparency="false",
        bg_color="",
        shadow_type="drop",
        mystery="1",
        **{"bad name\u00e9": "x"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-ignored-parameters"] == "add_shadow,mystery,semitransparency,shadow_type"
    assert Image.open(io.BytesIO(r.content)).size == (PREVIEW, PREVIEW)


def test_type_chooses_the_model(api):
    """remove.bg's type: person → the person model; product, animal, car… → the general model;
    auto → the person model, or the general model when no person is found (issue 27)."""
    from samples import sample_path

    from mattekit.core.models import isnet

    try:
        isnet.locate()
    except Exception as exc:
        pytest.skip(f"{exc} (`make model` fetches it for the tests)")
    cat = sample_path("cat").read_bytes()
    for kind, x_type in (("animal", "animal"), ("auto", "other"), ("other", "other")):
        r = post(api, cat, type=kind)
        assert r.status_code == 200 and r.headers["x-type"] == x_type, (kind, r.text)
        assert np.asarray(Image.open(io.BytesIO(r.content)).getchannel("A")).mean() > 50
    r = post(api, cat, type="person")
    assert r.status_code == 400 and errors_of(r)["code"] == "unknown_foreground"
    assert "subject auto or general" in errors_of(r)["title"]
    r = post(api, sample_path("astronaut").read_bytes(), type="car")
    assert r.status_code == 200 and r.headers["x-type"] == "car"


def test_a_server_without_the_general_model_refuses_other_types(engine, tmp_path):
    from mattekit.core.models.isnet import GeneralEngine
    from mattekit.service.errors import RemoveBgError
    from mattekit.service.removebg import RemoveBgRequest, render

    matter = Matter(engine=engine, general=GeneralEngine(tmp_path / "missing.onnx"))
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buf, "PNG")
    job = RemoveBgRequest(buf.getvalue(), Options(subject="general"), None, "png", True, (), "product")
    with pytest.raises(RemoveBgError, match="mattekit model fetch general") as caught:
        render(matter, job)
    assert caught.value.code == "unsupported_type"


def test_photo_without_a_person_is_400_unknown_foreground(api):
    # What is tested is the answer when the matte is empty, not the model's judgement of a
    # borderline photo (on the rocket sample a few pixels reach 85/255, and that moves with the
    # preset's pass size): a plain grey frame gives alpha 0 everywhere.
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(buf, "JPEG")
    r = post(api, buf.getvalue(), size="full")
    assert r.status_code == 400 and errors_of(r)["code"] == "unknown_foreground"


def test_sources_and_sniffing(api, photo):
    # Names and part types lie: a PNG sent as "photo.gif", application/pdf.
    r = api.post("/v1.0/removebg", files={"image_file": ("photo.gif", photo, "application/pdf")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    b64 = base64.b64encode(photo).decode()
    r = api.post("/v1.0/removebg", data={"image_file_b64": b64, "size": "preview"})  # urlencoded
    assert r.status_code == 200
    r = api.post("/v1.0/removebg", data={"image_file_b64": "data:image/png;base64," + b64})  # multipart text part
    assert r.status_code == 200
    assert errors_of(api.post("/v1.0/removebg", data={"size": "preview"}))["code"] == "missing_source"
    assert errors_of(api.post("/v1.0/removebg"))["code"] == "missing_source"
    r = api.post("/v1.0/removebg", data={"image_file_b64": b64}, files={"image_file": ("a", photo)})
    assert errors_of(r)["code"] == "multiple_sources"
    assert errors_of(api.post("/v1.0/removebg", json={"image_file_b64": "%%%"}))["code"] == "invalid_image_file_b64"
    r = api.post("/v1.0/removebg", content=photo, headers={"content-type": "image/png"})
    assert r.status_code == 400 and errors_of(r)["code"] == "invalid_content_type"


def test_limits_keys_and_metrics(server, api, photo, sample_grey_photo):
    too_many = io.BytesIO()
    Image.open(io.BytesIO(photo)).resize((800, 800)).save(too_many, "JPEG")  # 640,000 > 600,000 pixels
    r = post(api, too_many.getvalue())
    assert r.status_code == 422 and errors_of(r)["code"] == "resolution_too_high"
    r = post(api, photo * (1 + MAX_UPLOAD // len(photo)))
    assert r.status_code == 413 and errors_of(r)["code"] == "file_too_large"
    r = post(api, sample_grey_photo.read_bytes()[:2000])  # a truncated real PNG
    assert r.status_code == 415 and errors_of(r)["code"] == "failed_to_read_image"

    for path in ("/v1.0/account", "/v1.0/removebg"):
        missing = httpx.request("GET" if "account" in path else "POST", server + path)
        assert missing.status_code == 403 and "Missing API Key" in errors_of(missing)["title"]
        wrong = httpx.request("GET" if "account" in path else "POST", server + path, headers={"X-Api-Key": "nope"})
        assert wrong.status_code == 403 and errors_of(wrong)["code"] == "auth_failed"
    assert httpx.get(server + "/v1.0/account", headers={"x-api-key": "other"}).status_code == 200
    # remove.bg's spec also allows the key as an OAuth2 token.
    assert httpx.get(server + "/v1.0/account", headers={"Authorization": "Bearer other"}).status_code == 200
    assert httpx.get(server + "/v1.0/account", headers={"Authorization": "Bearer nope"}).status_code == 403

    text = httpx.get(server + "/metrics").text
    assert 'mattekit_http_requests_total{method="POST",route="/v1.0/removebg",status="200"}' in text
    assert 'route="/v1.0/removebg",status="403"' in text and 'mattekit_errors_total{code="auth_failed"}' in text


# -- in process: the queue, the model, keys off, docs ------------------------------------------
def test_full_queue_is_429_with_retry_after(sample_photo):
    app = create_app(Settings(workers=1, queue_size=0, load_model=False))
    data = sample_photo.read_bytes()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=120) as c:
            return list(
                await asyncio.gather(
                    *(c.post("/v1.0/removebg", data={"size": "preview"}, files={"image_file": ("a", data)}) for _ in range(3))
                )
            )

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert codes[0] == 200 and codes[-1] == 429, codes
    for r in responses:
        if r.status_code == 429:
            assert errors_of(r)["code"] == "rate_limit_exceeded" and int(r.headers["retry-after"]) >= 1


def test_past_the_request_timeout_is_504_in_the_errors_envelope(sample_photo):
    # best at full size takes far longer than 50 ms: the deadline is met between passes.
    app = create_app(Settings(workers=1, queue_size=1, request_timeout=0.05))
    with TestClient(app) as c:
        r = c.post(
            "/v1.0/removebg",
            data={"size": "full"},
            files={"image_file": ("a", sample_photo.read_bytes())},
            headers={"X-Api-Key": "any"},
        )
        assert r.status_code == 504 and errors_of(r)["code"] == "deadline_exceeded", r.text
        # What to try, in remove.bg's parameters: it has no preset or ratio.
        assert "size=preview" in errors_of(r)["title"] and "preset" not in r.text, r.text
        assert 'mattekit_deadline_exceeded_total{kind="request"} 1.0' in c.get("/metrics").text


def test_model_unavailable_is_503(tmp_path, sample_photo):
    from mattekit.core.engine import Engine

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    app = create_app(Settings(workers=1, queue_size=1), matter=Matter(engine=Engine(model=broken)))
    with TestClient(app) as c:
        deadline = time.monotonic() + 30
        while service_of(app).load_error is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = c.post("/v1.0/removebg", files={"image_file": ("a", sample_photo.read_bytes())})
        assert r.status_code == 503 and errors_of(r)["code"] == "model_unavailable" and "retry-after" in r.headers


def test_without_keys_any_key_works_and_docs_list_the_routes():
    with TestClient(create_app(Settings(workers=1, queue_size=1, load_model=False))) as c:
        for headers in ({}, {"X-Api-Key": "anything"}):
            body = c.get("/v1.0/account", headers=headers).json()
            credits = body["data"]["attributes"]["credits"]
            assert set(credits) == {"total", "subscription", "payg", "enterprise"} and credits["total"] == UNLIMITED
            assert body["data"]["attributes"]["api"] == {"free_calls": UNLIMITED, "sizes": "all"}
        spec = c.get("/openapi.json").json()
        assert "post" in spec["paths"]["/v1.0/removebg"] and "get" in spec["paths"]["/v1.0/account"]
        body = spec["paths"]["/v1.0/removebg"]["post"]["requestBody"]["content"]
        assert {"multipart/form-data", "application/json", "application/x-www-form-urlencoded"} <= set(body)
        assert "image_file" in body["multipart/form-data"]["schema"]["properties"]
        assert c.get("/docs").status_code == 200
        r = c.get("/v1.0/removebg")  # our envelope shape for routing errors too
        assert r.status_code == 405 and errors_of(r)["code"] == "method_not_allowed"


def test_colour_parsing_matches_the_library():
    from mattekit.service.removebg import _colour

    assert _colour("81d4fa") == Color((0x81, 0xD4, 0xFA)) == _colour("#81D4FA") == _colour("81d4faff")
    assert _colour("fff") == Color((255, 255, 255)) == _colour("ffff") == _colour("white")


# -- in process: requests refused while they are read ----------------------------------------
@pytest.fixture(scope="module")
def local() -> Iterator[TestClient]:
    # Nothing here reaches the model: each request is refused while it is read or decoded.
    with TestClient(create_app(Settings(workers=1, queue_size=1, load_model=False, max_pixels=MAX_PIXELS))) as c:
        yield c


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` (its pixel data never decoded)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_a_cut_off_multipart_body_is_a_malformed_request(local):
    head = b'--B\r\nContent-Disposition: form-data; name="image_file"; filename="a.jpg"\r\n\r\n\xff\xd8\xff\xe0'
    r = local.post("/v1.0/removebg", content=head, headers={"content-type": "multipart/form-data; boundary=B"})
    error = errors_of(r)
    assert r.status_code == 400 and error["code"] == "invalid_request" and "cut off" in error["title"], r.text


def test_an_empty_bg_image_file_is_refused_not_dropped(local, sample_photo):
    files = {"image_file": ("a.jpg", sample_photo.read_bytes()), "bg_image_file": ("bg.jpg", b"")}
    r = local.post("/v1.0/removebg", files=files)
    error = errors_of(r)
    assert r.status_code == 400 and error["code"] == "invalid_bg_image_file" and "bg_image_file is empty" in error["detail"]
    # Text where the file belongs (JSON cannot carry one) is refused too, never dropped.
    r = local.post("/v1.0/removebg", json={"image_file_b64": "AAAA", "bg_image_file": "x" * 5000})
    assert r.status_code == 400 and errors_of(r)["code"] == "invalid_bg_image_file", r.text


def test_too_many_pixels_states_the_servers_limit(local):
    # Past twice the limit: not the doubled bound a JPEG is allowed when decoded reduced.
    for size in ((100_000, 100_000), (1000, 1000)):  # 1 MP: within the bound, past the limit
        r = local.post("/v1.0/removebg", files={"image_file": ("a.png", _png_header(*size))})
        error = errors_of(r)
        assert r.status_code == 422 and error["code"] == "resolution_too_high", r.text
        assert f"{MAX_PIXELS:,}" in error["title"] and f"{2 * MAX_PIXELS:,}" not in error["title"], error


@pytest.mark.parametrize("name,code", [("image_file", "invalid_image_file"), ("image_base64", "missing_source")])
def test_a_base64_photo_under_another_name_gets_the_hint(local, sample_photo, name, code):
    b64 = base64.b64encode(sample_photo.read_bytes()).decode()
    for send in ({"json": {name: b64}}, {"data": {name: b64}}):
        r = local.post("/v1.0/removebg", **send)
        error = errors_of(r)
        assert r.status_code == 400 and error["code"] == code and "image_file_b64" in error["title"], r.text
        assert "4096" not in error["title"], error


def test_the_preview_size_keeps_a_strip_wide_enough_for_the_model():
    from mattekit.service.removebg import _longest_side

    # 20x40000 at 0.25 MP would be 2x5590: kept at 16 px across, a little past the cap.
    assert _longest_side(_png_header(20, 40_000), 50_000_000, 250_000) == 32_000
    assert _longest_side(_png_header(16, 20_000), 50_000_000, 250_000) is None  # never shrunk below 16
    assert _longest_side(_png_header(2000, 2000), 50_000_000, 250_000) == 500
