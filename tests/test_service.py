"""The HTTP API in process (httpx against the ASGI app): every status, on real photos.

Quality is not the point here, so most requests use the ``fast`` preset and ``max_size``; the
correctness checks compare the service's bytes with the library's output for the same options.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mattekit.core.engine import Engine
from mattekit.matter import Matter
from mattekit.options import Options
from mattekit.service import Settings, create_app
from mattekit.service.api import STATIC_DIR
from mattekit.service.state import service_of

FAST = {"preset": "fast", "max_size": "384"}


def wait_ready(client: TestClient, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the model did not load in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(max_upload_bytes=4_000_000, max_pixels=2_000_000, workers=2, queue_size=4))
    with TestClient(app) as c:
        wait_ready(c)
        yield c


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    return body["error"]


def library_alpha(data: bytes, fields: dict) -> np.ndarray:
    image = Matter().remove(data, Options.from_fields(fields))
    return np.asarray(image.getchannel("A"))


def assert_alpha_matches(got: Image.Image, expected: np.ndarray) -> None:
    alpha = np.asarray(got.getchannel("A")).astype(int)
    assert alpha.shape == expected.shape
    diff = np.abs(alpha - expected.astype(int))
    # Same library, same options: equal up to float rounding in the model's threads.
    assert diff.max() <= 2 and diff.mean() < 0.01, (diff.max(), diff.mean())


# -- 200 ---------------------------------------------------------------------------------------
@pytest.mark.eval
def test_cutout_is_rgba_same_size_and_matches_library(client, people_images):
    photo = next(p for p in people_images if p.name.startswith("D_"))  # 1191x894, under the limit
    data = photo.read_bytes()
    fields = {"preset": "fast"}
    r = client.post("/api/v1/remove", data=fields, files={"file": ("anything.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert float(r.headers["x-process-time"]) > 0
    assert re.search(r"matte;dur=[0-9.]+", r.headers["server-timing"])
    out = Image.open(io.BytesIO(r.content))
    assert out.mode == "RGBA"
    assert out.size == Image.open(photo).size
    assert_alpha_matches(out, library_alpha(data, fields))


@pytest.mark.eval
def test_exif_rotated_photo_comes_back_upright(client, people_images):
    original = Image.open(people_images[1]).convert("RGB")
    original.thumbnail((512, 512))
    stored = original.transpose(Image.Transpose.ROTATE_90)  # pixels as a sideways camera stores them
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    stored.save(buf, "PNG", exif=exif)
    r = client.post("/api/v1/remove", data={"preset": "fast"}, files={"file": ("x.png", buf.getvalue())})
    assert r.status_code == 200, r.text
    out = Image.open(io.BytesIO(r.content))
    assert out.size == original.size
    plain = io.BytesIO()
    original.save(plain, "PNG")
    assert_alpha_matches(out, library_alpha(plain.getvalue(), {"preset": "fast"}))


def test_raw_body_with_query_options_and_webp(client, sample_photo):
    data = sample_photo.read_bytes()
    r = client.post(
        "/api/v1/remove", params={**FAST, "format": "webp", "quality": "100"}, content=data, headers={"content-type": "image/png"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/webp"
    out = Image.open(io.BytesIO(r.content))
    assert out.format == "WEBP" and out.mode == "RGBA" and out.size == (384, 384)
    assert_alpha_matches(out, library_alpha(data, {**FAST, "format": "webp", "quality": "100"}))


def test_colour_and_uploaded_background(client, sample_photo, sample_grey_photo):
    data = sample_photo.read_bytes()
    r = client.post("/api/v1/remove", data={**FAST, "bg": "#00ff00", "format": "jpg"}, files={"file": ("a", data)})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).mode == "RGB"

    bg = sample_grey_photo.read_bytes()
    r = client.post("/api/v1/remove", data=FAST, files={"file": ("a", data), "bg_file": ("b", bg)})
    assert r.status_code == 200, r.text
    composite = np.asarray(Image.open(io.BytesIO(r.content)))
    alpha = library_alpha(data, FAST)
    upright = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((384, 384), Image.Resampling.LANCZOS))
    grey = np.asarray(Image.open(io.BytesIO(bg)).convert("RGB").resize((384, 384), Image.Resampling.LANCZOS))
    solid, clear = alpha == 255, alpha == 0
    assert solid.sum() > 1000 and clear.sum() > 1000
    # The subject stays where alpha is opaque; the uploaded picture shows where it is clear.
    assert np.abs(composite[solid].astype(int) - upright[solid]).mean() < 3
    assert np.abs(composite[clear].astype(int) - grey[clear]).mean() < 3


def test_mask_and_crop(client, sample_photo):
    data = sample_photo.read_bytes()
    mask = client.post("/api/v1/remove", data={**FAST, "mask": "true"}, files={"file": ("a", data)})
    assert mask.status_code == 200
    m = Image.open(io.BytesIO(mask.content))
    assert m.mode == "L" and m.size == (384, 384)
    crop = client.post("/api/v1/remove", data={**FAST, "crop": "true"}, files={"file": ("a", data)})
    assert crop.status_code == 200
    c = Image.open(io.BytesIO(crop.content))
    assert c.width < 384 or c.height < 384
    assert crop.headers["x-image-size"] == f"{c.width}x{c.height}"
    # Where the crop cut the 384x384 frame: a box of the cut-out's size, inside that frame, and
    # the mask's alpha inside it is the cropped cut-out's alpha.
    assert crop.headers["x-frame-size"] == "384x384"
    left, top, right, bottom = (int(v) for v in crop.headers["x-crop-box"].split(","))
    assert 0 <= left < right <= 384 and 0 <= top < bottom <= 384
    assert (right - left, bottom - top) == c.size
    inside = np.asarray(m, dtype=int)[top:bottom, left:right]
    assert np.abs(inside - np.asarray(c.getchannel("A"), dtype=int)).mean() < 1
    assert "x-crop-box" not in mask.headers  # nothing cut, no box


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields, word",
    [
        ({"format": "gif"}, "format"),
        ({"ratio": "2"}, "ratio"),
        ({"colour": "red"}, "unknown option"),
        ({"max_pixels": "999999999"}, "unknown option"),  # the server's limit, not the client's
        ({"bg": "/etc/passwd"}, "bg"),
        ({"bg": "../secret.png"}, "bg"),
        ({"bg": "not-a-colour"}, "colour"),
    ],
)
def test_bad_option_is_400(client, sample_photo, fields, word):
    r = client.post("/api/v1/remove", data=fields, files={"file": ("a", sample_photo.read_bytes())})
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "invalid_option" and word in err["message"]


def test_missing_file_and_malformed_multipart_are_4xx(client):
    assert error_of(client.post("/api/v1/remove", data={"preset": "fast"}))["code"] == "invalid_input"
    r = client.post(
        "/api/v1/remove", content=b"--xyz\r\nnot a header\r\n", headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert r.status_code == 400 and error_of(r)["code"] == "bad_request"


@pytest.mark.eval
def test_upload_too_large_is_413(client, people_images):
    photo = people_images[0].read_bytes()
    data = photo * (1 + 4_000_000 // len(photo))  # a real JPEG with junk after it, > 4 MB
    r = client.post("/api/v1/remove", files={"file": ("a.jpg", data)})
    assert r.status_code == 413 and error_of(r)["code"] == "upload_too_large"

    def chunks():  # no Content-Length: the limit holds while the body streams in
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    r = client.post("/api/v1/remove", content=chunks(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and error_of(r)["code"] == "upload_too_large"


def test_not_an_image_is_415(client, sample_photo):
    for data in (b"this is plain text, not a picture", sample_photo.read_bytes()[:3000]):
        r = client.post("/api/v1/remove", data=FAST, files={"file": ("a.png", data)})
        assert r.status_code == 415, r.text
        assert error_of(r)["code"] == "invalid_input"


def test_subject_chooses_the_model_and_an_empty_result_is_422(client):
    """Issue 27: ``subject`` (auto | person | general); no subject found is 422 empty_result
    with what to do, never a transparent 200; X-Model says which model made the matte."""
    from samples import sample_path

    from mattekit.core.models import isnet

    cat = sample_path("cat").read_bytes()
    r = client.post("/api/v1/remove", data={**FAST, "subject": "person"}, files={"file": ("cat.png", cat)})
    assert r.status_code == 422 and error_of(r)["code"] == "empty_result"
    assert "subject auto or general" in error_of(r)["message"]
    r = client.post("/api/v1/remove", data={**FAST, "subject": "cats"}, files={"file": ("cat.png", cat)})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_option"
    assert client.get("/api/v1/limits").json()["subjects"] == ["auto", "person", "general"]
    try:
        isnet.locate()
    except Exception as exc:
        pytest.skip(f"{exc} (`make model` fetches it for the tests)")
    for subject in ("auto", "general"):
        r = client.post("/api/v1/remove", data={**FAST, "subject": subject}, files={"file": ("cat.png", cat)})
        assert r.status_code == 200 and r.headers["x-model"] == "general", r.text
        assert np.asarray(Image.open(io.BytesIO(r.content)).getchannel("A")).mean() > 50


def test_ratio_beyond_the_lowres_limit_is_422(sample_photo):
    """A client's ratio cannot make the network run on more pixels than the server allows."""
    app = create_app(Settings(max_lowres_pixels=100_000, workers=1, queue_size=1))
    data = sample_photo.read_bytes()  # 512x512: 262,144 pixels at ratio 1
    with TestClient(app) as c:
        wait_ready(c)
        assert c.get("/api/v1/limits").json()["max_lowres_pixels"] == 100_000
        r = c.post("/api/v1/remove", data={"ratio": "1", "preset": "fast"}, files={"file": ("a.png", data)})
        assert r.status_code == 422 and error_of(r)["code"] == "too_large", r.text
        assert "smaller ratio" in error_of(r)["message"]
        ok = c.post("/api/v1/remove", data={"ratio": "0.5", "preset": "fast"}, files={"file": ("a.png", data)})
        assert ok.status_code == 200, ok.text
        r = c.post("/api/v1/remove", data={"max_lowres_pixels": "10"}, files={"file": ("a.png", data)})
        assert r.status_code == 400  # the server's to decide, never the client's


@pytest.mark.eval
def test_too_many_pixels_is_422(client, people_images):
    big = next(p for p in people_images if Image.open(p).width >= 1920)  # 1920x1279 > 2 MP
    r = client.post("/api/v1/remove", files={"file": ("a.jpg", big.read_bytes())})
    assert r.status_code == 422 and error_of(r)["code"] == "too_large"
    # With max_size the JPEG is decoded reduced and gets through (tests/test_large_photos.py);
    # a PNG cannot be: the limit holds.
    png = io.BytesIO()
    Image.new("RGB", (1920, 1280), (90, 120, 150)).save(png, "PNG")
    r = client.post("/api/v1/remove", data={"max_size": "256"}, files={"file": ("a.png", png.getvalue())})
    assert r.status_code == 422 and error_of(r)["code"] == "too_large"


def test_full_queue_is_503_with_retry_after_then_recovers(sample_photo):
    app = create_app(Settings(workers=1, queue_size=0, load_model=False))
    data = sample_photo.read_bytes()

    async def main() -> tuple[list[httpx.Response], httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=120) as ac:

            async def one() -> httpx.Response:
                return await ac.post(
                    "/api/v1/remove", data={"preset": "fast", "max_size": "256"}, files={"file": ("a.png", data)}
                )

            burst = await asyncio.gather(*(one() for _ in range(4)))
            return list(burst), await one()

    burst, after = asyncio.run(main())
    codes = sorted(r.status_code for r in burst)
    assert codes[0] == 200 and codes[-1] == 503, codes
    for r in burst:
        if r.status_code == 503:
            assert error_of(r)["code"] == "busy"
            assert int(r.headers["retry-after"]) >= 1
    assert after.status_code == 200
    assert service_of(app).pool.waiting == 0 and service_of(app).pool.running == 0


# -- probes, metrics, docs, page -------------------------------------------------------------
def test_readyz_reports_a_model_that_cannot_load(tmp_path: Path, sample_photo):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    app = create_app(Settings(workers=1, queue_size=1), matter=Matter(engine=Engine(model=broken)))
    with TestClient(app) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        # Load balancers and uptime checkers often probe with HEAD: same status, no body.
        for path in ("/healthz", "/"):
            head = c.head(path)
            assert head.status_code == 200 and head.content == b"", path
        deadline = time.monotonic() + 30
        while service_of(app).load_error is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = c.get("/readyz")
        assert r.status_code == 503 and error_of(r)["code"] == "model_unavailable"
        assert c.head("/readyz").status_code == 503
        r = c.post("/api/v1/remove", files={"file": ("a", sample_photo.read_bytes())})
        assert r.status_code == 503 and error_of(r)["code"] == "model_unavailable"
        assert "retry-after" in r.headers


def test_readyz_says_whether_the_general_model_is_installed(client, tmp_path: Path):
    """A server without the general model is ready (people are served) and says so: /readyz's
    body names the missing model, as the log does."""
    from mattekit.core.models.isnet import GeneralEngine

    body = client.get("/readyz").json()
    assert body["status"] == "ready" and body["models"]["person"] == "ready"
    assert body["models"]["general"] == ("installed" if GeneralEngine().available() else "not installed")
    missing = Matter(general=GeneralEngine(tmp_path / "missing.onnx"))
    app = create_app(Settings(workers=1, queue_size=1), matter=missing)
    with TestClient(app) as c:
        wait_ready(c)
        assert c.get("/readyz").json()["models"] == {"person": "ready", "general": "not installed"}


def test_metrics_count_requests_latency_queue_and_inference(client):
    text = client.get("/metrics").text
    assert 'mattekit_http_requests_total{method="POST",route="/api/v1/remove",status="200"}' in text
    assert "mattekit_http_request_duration_seconds_bucket" in text
    assert "mattekit_queue_depth 0.0" in text
    count = re.search(r"^mattekit_inference_seconds_count (\S+)$", text, re.M)
    assert count and float(count.group(1)) >= 1
    assert "mattekit_model_ready 1.0" in text


def test_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
    for url in urls:
        assert client.get(url).status_code == 200, url
    spec = client.get("/openapi.json").json()
    assert "/api/v1/remove" in spec["paths"]


def test_page_and_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200, asset
    for f in STATIC_DIR.iterdir():
        assert not re.search(r"(?:src|href|url)\s*[=(]\s*[\"']?(?:https?:)?//", f.read_text()), f
    # Issue 27: any photo, not only people; the subject is a clear control the page sends.
    headline = re.search(r"<h1>(.*?)</h1>", page.text)
    assert headline and "people" not in headline.group(1)
    assert '<select id="subject"' in page.text and "subject:" in client.get("/static/app.js").text


def test_api_keys_when_configured(sample_photo):
    app = create_app(Settings(workers=1, queue_size=1, api_keys=("k1", "k2"), load_model=False))
    with TestClient(app) as c:
        r = c.get("/api/v1/limits")
        assert r.status_code == 401 and error_of(r)["code"] == "unauthorized"
        assert c.get("/api/v1/limits", headers={"x-api-key": "k2"}).status_code == 200
        assert c.get("/api/v1/limits", headers={"authorization": "Bearer k1"}).status_code == 200
        assert c.get("/healthz").status_code == 200


# -- the pool and the settings, without the model --------------------------------------------
def test_pool_refuses_beyond_capacity_and_frees_slots():
    import threading

    from mattekit.errors import Busy
    from mattekit.service.executor import WorkPool

    pool = WorkPool(1, 1, name="test")
    gate = threading.Event()
    running = pool.submit(gate.wait, 10)
    waiting = pool.submit(lambda: "second")
    with pytest.raises(Busy):
        pool.submit(lambda: "third")
    assert pool.rejected == 1 and pool.waiting == 1 and 1 <= pool.retry_after() <= 60
    assert waiting.cancel()  # a client that gives up while queued frees its slot
    extra = pool.submit(lambda: "fourth")
    gate.set()
    assert running.result(5) is True and extra.result(5) == "fourth"
    assert pool.waiting == 0 and pool.running == 0
    pool.shutdown()
    with pytest.raises(Busy):
        pool.submit(lambda: None)


def test_serve_answers_the_address_it_binds():
    """`mattekit serve --host 192.168.1.20` is reached at that address: it joins the Host allow-list."""
    from mattekit.cli.serve import with_listen_address

    local = ("localhost", "127.0.0.1", "::1")
    assert with_listen_address(local, "192.168.1.20") == (*local, "192.168.1.20")
    assert with_listen_address(local, "fe80::1") == (*local, "fe80::1")
    assert with_listen_address(local, "127.0.0.1") == local
    assert with_listen_address(local, "0.0.0.0") == local and with_listen_address(local, "::") == local
    assert with_listen_address(("*",), "192.168.1.20") == ("*",)


def test_a_reservation_holds_its_slot_until_spent_or_released():
    """Admission before the body: a slot reserved for an upload counts against the capacity."""
    from mattekit.errors import Busy
    from mattekit.service.executor import WorkPool

    pool = WorkPool(1, 0, name="test")
    slot = pool.reserve()
    with pytest.raises(Busy):
        pool.reserve()  # one upload in progress fills a capacity of 1
    assert pool.waiting == 1 and pool.rejected == 1
    slot.release()
    slot.release()  # idempotent: a route releases in a finally whatever happened
    assert pool.waiting == 0
    spent = pool.reserve()
    assert spent.submit(lambda: 7).result(5) == 7
    spent.release()  # spent: releasing gives back nothing more
    with pytest.raises(RuntimeError):
        spent.submit(lambda: 8)
    assert pool.waiting == 0 and pool.running == 0
    pool.shutdown()


def test_a_task_past_its_deadline_gives_its_slot_back_at_once_and_stops_at_its_next_check():
    """The 504 means the slot is free: the next task is admitted at once and runs on the same
    thread as soon as the late one reaches its next deadline check."""
    import asyncio
    import threading
    import time

    from mattekit.deadline import Deadline
    from mattekit.errors import Busy, Cancelled, DeadlineExceeded
    from mattekit.service.executor import WorkPool

    pool = WorkPool(1, 0, name="test")
    stopped = threading.Event()

    def slow(deadline: Deadline) -> None:  # checks every 20 ms, as decode does between scans
        try:
            for _ in range(500):
                deadline.check()
                time.sleep(0.02)
        except (Cancelled, DeadlineExceeded):  # a check just past the deadline, before the cancel, stops it too
            stopped.set()
            raise

    async def scenario() -> float:
        deadline = Deadline.after(0.2, "this photo")
        with pytest.raises(DeadlineExceeded):
            await pool.reserve().run_until(deadline, slow, deadline)
        start = time.monotonic()
        assert await pool.reserve().run_until(Deadline.after(5), lambda: "next") == "next"  # no Busy
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 0.5
    assert stopped.wait(1)
    assert pool.waiting == 0 and pool.running == 0
    # With no deadline the work cannot be stopped: a caller that gives up leaves it its slot.
    gate = threading.Event()

    async def gives_up() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.reserve().run_until(None, gate.wait, 5), 0.1)

    asyncio.run(gives_up())
    with pytest.raises(Busy):
        pool.reserve()
    gate.set()
    pool.shutdown()
    assert pool.waiting == 0 and pool.running == 0


def test_settings_from_env():
    from mattekit.errors import InvalidOption

    s = Settings.from_env(
        {
            "MATTEKIT_MAX_UPLOAD_BYTES": "1000",
            "MATTEKIT_MAX_PIXELS": "2000",
            "MATTEKIT_WORKERS": "3",
            "MATTEKIT_QUEUE_SIZE": "0",
            "MATTEKIT_CORS_ORIGINS": "http://a.test, http://b.test",
            "MATTEKIT_API_KEYS": "k1,,k2",
        }
    )
    assert (s.max_upload_bytes, s.max_pixels, s.workers, s.queue_size) == (1000, 2000, 3, 0)
    assert s.cors_origins == ("http://a.test", "http://b.test") and s.api_keys == ("k1", "k2")
    assert Settings.from_env({"MATTEKIT_WORKERS": "2"}, workers=1).workers == 1  # CLI flags win
    assert 1 <= Settings.from_env({}).workers <= 4
    # A server answers the loopback names by default, and those it is told (names, ports dropped).
    assert Settings.from_env({}).allowed_hosts == ("localhost", "127.0.0.1", "::1")
    hosts = Settings.from_env({"MATTEKIT_ALLOWED_HOSTS": "Matte.Example:8080, [::2], fe80::1, 10.0.0.5:80"}).allowed_hosts
    assert hosts[3:] == ("matte.example", "::2", "fe80::1", "10.0.0.5")
    assert Settings.from_env({"MATTEKIT_ALLOWED_HOSTS": "a.example,*"}).allowed_hosts == ("*",)
    assert Settings().allowed_hosts == ("*",)  # settings made in code (tests, embedding) check no Host
    for bad in ({"MATTEKIT_WORKERS": "many"}, {"MATTEKIT_QUEUE_SIZE": "-1"}, {"MATTEKIT_MAX_PIXELS": "0"}):
        with pytest.raises(InvalidOption, match=next(iter(bad))):
            Settings.from_env(bad)
