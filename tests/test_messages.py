"""Each face speaks its user's language (issue 28 item 3): the HTTP API names its own fields,
never the CLI's flags; a file in the wrong field, a missing and an empty file each say what to
do; a video's errors carry neither FFmpeg's error numbers nor the server's paths."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mattekit.errors import InvalidOption, MattekitError, ffmpeg_reason, option
from mattekit.service import Settings, create_app
from mattekit.service.jobs.runner import without_paths
from mattekit.service.jobs.store import UPLOAD
from mattekit.video.reader import open_input

pytestmark = pytest.mark.unit  # make unit: in-process and fast


def _jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 80, 40)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client():
    # No request here reaches the model: every one is refused while it is parsed or probed.
    app = create_app(Settings(max_upload_bytes=2_000_000, max_pixels=2_000_000, workers=1, queue_size=2))
    with TestClient(app) as c:
        yield c


def _message(r) -> str:
    body = r.json()
    return body["error"]["message"]


def test_one_error_has_a_wording_per_face():
    exc = InvalidOption(f"give a background (e.g. {option('bg', 'white')}) or use {option('mask')}")
    assert str(exc) == exc.message == "give a background (e.g. --bg white) or use --mask"
    assert exc.worded("cli") == exc.message
    assert exc.worded("api") == "give a background (e.g. bg=white) or use mask=true"
    assert exc.worded("removebg") == "give a background (e.g. bg_color=ffffff) or use channels=alpha"
    exc.message = "rewritten"  # a message rewritten since is that text for every face
    assert exc.worded("api") == "rewritten"
    with pytest.raises(KeyError):
        option("no-such-option")


def test_api_answers_name_fields_not_flags(client):
    r = client.post("/api/v1/remove", data={"format": "jpg"}, files={"file": ("a.png", _jpeg(), "image/jpeg")})
    assert r.status_code == 400, r.text
    message = _message(r)
    assert "bg=white" in message and "--" not in message, message


def test_a_file_in_another_field_says_which_field(client):
    r = client.post("/api/v1/remove", files={"image": ("x.jpg", _jpeg(), "image/jpeg")})
    assert r.status_code == 400, r.text
    message = _message(r)
    assert "send the photo in the field 'file'" in message and "4096" not in message, message
    # The same mistake as a long text field (no file name) still says where the photo goes.
    r = client.post("/api/v1/remove", data={"image": "x" * 5000}, files={"file": ("a.jpg", _jpeg(), "image/jpeg")})
    assert r.status_code == 400 and "send the photo in the field 'file'" in _message(r), r.text


def test_missing_and_empty_files_are_told_apart(client):
    r = client.post("/api/v1/remove", data={"preset": "fast"})
    assert r.status_code == 415 and "multipart field 'file'" in _message(r), r.text
    r = client.post("/api/v1/remove", files={"file": ("empty.jpg", b"", "image/jpeg")})
    message = _message(r)
    assert r.status_code == 415 and "empty file" in message and "multipart field" not in message, message


def test_job_answers_have_no_flags_paths_or_error_numbers(client):
    r = client.post(
        "/api/v1/jobs", data={"output": "mp4"}, files={"file": ("clip.mp4", b"\x00\x01not a video at all" * 64, "video/mp4")}
    )
    message = _message(r)
    assert r.status_code in (400, 415) and "--" not in message, message
    r = client.post("/api/v1/jobs", files={"file": ("clip.mp4", b"\x00\x01not a video at all" * 64, "video/mp4")})
    message = _message(r)
    assert r.status_code == 415, r.text
    assert "Errno" not in message and "/tmp" not in message and "/" not in message.replace("mp4/mov", ""), message
    assert message.startswith("the clip is not a video we can read"), message
    r = client.post("/api/v1/jobs", files={"clip": ("clip.mp4", b"data", "video/mp4")})
    assert r.status_code == 400 and "send the video in the field 'file'" in _message(r), r.text


def test_a_video_error_says_what_ffmpeg_meant(tmp_path: Path):
    bad = tmp_path / "jobs" / "abc123" / UPLOAD
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x00\x01not a video" * 100)
    with pytest.raises(MattekitError) as caught:
        open_input(bad)
    message = without_paths(caught.value, tmp_path / "jobs").worded("api")
    assert "Errno" not in message and str(tmp_path) not in message, message
    assert message.startswith("the clip is not a video we can read") and "invalid data" in message, message


def test_ffmpeg_reason_drops_the_number_and_the_file():
    import av

    exc = av.InvalidDataError(1094995529, "Invalid data found when processing input", "/tmp/x/upload")
    assert ffmpeg_reason(exc) == "invalid data found when processing input"


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 80, 40)).save(buf, "PNG")
    return buf.getvalue()


NOT_AN_IMAGE = {"file": ("a.jpg", b"not an image at all", "image/jpeg")}  # 415 once the options are read


@pytest.mark.parametrize(
    "size,max_size,shrunk,works",
    [((800, 533), "20", "20x13", "25"), ((16, 4000), "1000", "4x1000", "4000"), ((533, 800), "20", "13x20", "25")],
)
def test_a_max_size_too_small_for_the_photo_is_the_options_fault(client, size, max_size, shrunk, works):
    # The library would shrink the photo below the model's 16 px and call it "not an image" (415).
    data = _png(size) if size != (533, 800) else _jpeg(size)
    r = client.post("/api/v1/remove", data={"max_size": max_size}, files={"file": ("a", data, "image/png")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_option", r.text
    message = _message(r)
    assert f"to {shrunk} pixels" in message and f"max_size={works} or more" in message and "--" not in message, message


def test_a_multipart_body_cut_off_says_so(client):
    head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n' + b"not an image at all"
    multipart = {"content-type": "multipart/form-data; boundary=B"}
    r = client.post("/api/v1/remove", content=head, headers=multipart)
    assert r.status_code == 400 and "the upload was cut off" in _message(r), r.text
    # Whole, the same part is read (and refused for what it is, past the parser).
    r = client.post("/api/v1/remove", content=head + b"\r\n--B--\r\n", headers=multipart)
    assert r.status_code == 415 and "not an image" in _message(r), r.text


def test_a_field_sent_twice_is_refused_not_overwritten(client):
    """Two photos in one request (the first would be dropped, or a video's appended to it): said,
    where the last one used to win silently."""

    def part(name: str, body: bytes, filename: str | None = None) -> bytes:
        file = f'; filename="{filename}"' if filename is not None else ""
        return f'--B\r\nContent-Disposition: form-data; name="{name}"{file}\r\n\r\n'.encode() + body + b"\r\n"

    multipart = {"content-type": "multipart/form-data; boundary=B"}
    twice = part("file", b"one", "a.jpg") + part("file", b"two", "b.jpg") + b"--B--\r\n"
    for path in ("/api/v1/remove", "/api/v1/jobs"):
        r = client.post(path, content=twice, headers=multipart)
        assert r.status_code == 400 and "the field 'file' came twice" in _message(r), (path, r.text)
    r = client.post("/v1.0/removebg", content=twice.replace(b'"file"', b'"image_file"'), headers=multipart)
    assert r.status_code == 400 and "came twice" in r.text, r.text
    # A text field twice: the last counts (HTML's hidden-then-checkbox pattern), as urlencoded.
    both = part("crop", b"false") + part("crop", b"true") + part("file", b"x", "a.jpg") + b"--B--\r\n"
    assert client.post("/api/v1/remove", content=both, headers=multipart).status_code == 415  # past the fields: not an image
    # An optional file input left blank (a browser sends filename="" and no bytes) is not sent;
    # a chosen file of 0 bytes is still refused for what it is.
    blank = part("file", b"x", "a.jpg") + part("bg_file", b"", "") + b"--B--\r\n"
    r = client.post("/api/v1/remove", content=blank, headers=multipart)
    assert r.status_code == 415 and "not an image" in _message(r), r.text
    r = client.post(
        "/v1.0/removebg",
        content=blank.replace(b'"file"', b'"image_file"').replace(b'"bg_file"', b'"bg_image_file"'),
        headers=multipart,
    )
    assert "invalid_bg_image_file" not in r.text and r.status_code in (400, 415), r.text
    chosen = part("file", b"x", "a.jpg") + part("bg_file", b"", "b.jpg") + b"--B--\r\n"
    r = client.post("/api/v1/remove", content=chosen, headers=multipart)
    assert "bg_file is empty" in _message(r), r.text
    # An empty query value is no value: it clashes with nothing.
    r = client.post("/api/v1/remove?format=", data={"format": "png"}, files=NOT_AN_IMAGE)
    assert r.status_code == 415, r.text


@pytest.mark.parametrize("fields", [{"blur": "5", "bg": "white"}, {"blur": "true", "bg": "transparent"}])
def test_blur_and_bg_together_are_refused(client, fields):
    r = client.post("/api/v1/remove", data=fields, files=NOT_AN_IMAGE)
    assert r.status_code == 400 and "either bg or blur" in _message(r), r.text


@pytest.mark.parametrize("name", ["format", "preset", "crop_threshold", "mask", "bg", "blur", "max_size", "quality", "subject"])
def test_an_empty_field_means_unset(client, name):
    r = client.post("/api/v1/remove", data={name: "", "bg_fit": ""}, files=NOT_AN_IMAGE)
    assert r.status_code == 415 and r.json()["error"]["code"] == "invalid_input", r.text


def test_blur_words_are_read_and_a_bad_one_is_quoted_as_sent(client):
    for word in ("True", "yes", "on", "FALSE", "off"):
        r = client.post("/api/v1/remove", data={"blur": word}, files=NOT_AN_IMAGE)
        assert r.status_code == 415, (word, r.text)
    r = client.post("/api/v1/remove", data={"blur": "wide"}, files=NOT_AN_IMAGE)
    assert r.status_code == 400 and _message(r).endswith("not 'wide'") and "blur:" not in _message(r), r.text


def test_a_field_in_the_query_and_the_form_must_agree(client):
    r = client.post("/api/v1/remove?bg=white", data={"bg": "black"}, files=NOT_AN_IMAGE)
    assert r.status_code == 400 and "'bg' was given twice with different values" in _message(r), r.text
    r = client.post("/api/v1/remove?bg=white&bg=black", files=NOT_AN_IMAGE)
    assert r.status_code == 400 and "'bg' was given twice" in _message(r), r.text
    r = client.post("/api/v1/remove?bg=white", data={"bg": "white"}, files=NOT_AN_IMAGE)
    assert r.status_code == 415, r.text  # the same value twice is one value


def test_an_upload_that_stalls_past_the_deadline_is_told_so():
    import asyncio

    import httpx

    app = create_app(Settings(workers=1, queue_size=1, load_model=False, request_timeout=0.3))

    async def stalled(field: str) -> AsyncIterator[bytes]:
        yield b'--B\r\nContent-Disposition: form-data; name="%s"; filename="a.jpg"\r\n\r\n' % field.encode() + _jpeg()[:100]
        await asyncio.sleep(5)  # cancelled with the request at its deadline
        yield b""

    async def send(path: str, field: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.post(path, content=stalled(field), headers={"content-type": "multipart/form-data; boundary=B"})

    for path, field in (("/api/v1/remove", "file"), ("/v1.0/removebg", "image_file")):
        r = asyncio.run(send(path, field))
        text = r.text
        assert r.status_code == 504 and "the upload did not arrive within" in text, text
        assert "preset" not in text and "ratio" not in text, text
