"""Hostile inputs against the real server on loopback (issue 25, H1/H2), each generated here
(tests/hostile.py): small files that once held the only worker for minutes or let a video frame
past the pixel limit. Capacity 1 and a 1 MP limit, as in the audit, so each hole would show."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import hostile
import httpx
import pytest
from bench import load  # a real server with its own TMPDIR

ROOT = Path(__file__).resolve().parents[1]

LIMIT = 1_000_000


@pytest.fixture(scope="module")
def server() -> Iterator[load.Server]:
    env = {
        "MATTEKIT_WORKERS": "1",
        "MATTEKIT_QUEUE_SIZE": "0",
        "MATTEKIT_THREADS": "2",
        "MATTEKIT_REQUEST_TIMEOUT": "10",
        "MATTEKIT_MAX_PIXELS": str(LIMIT),
    }
    with load.serve(env) as srv:
        yield srv


@pytest.fixture(scope="module")
def photo() -> bytes:
    return load.sample_images((256,))[0]


def _remove(url: str, route: str, data: bytes, name: str) -> httpx.Response:
    field = "image_file" if route == "/v1.0/removebg" else "file"
    # The person model alone: these tests are about decoding, and the general model's first use
    # (its session built on the first request that needs it) would time that instead.
    return httpx.post(
        url + route,
        files={field: (name, data, "application/octet-stream")},
        data={"preset": "fast", "subject": "person"} if field == "file" else {"type": "person"},
        timeout=60,
    )


@pytest.mark.parametrize("route", ["/api/v1/remove", "/v1.0/removebg"])
@pytest.mark.parametrize(
    "name, make, status",
    [
        ("bomb.jpg", lambda: hostile.jpeg_scan_bomb(1000, 20_000), 422),  # 1 MP, 250 KB: 14 s of libjpeg
        ("pages.tif", lambda: hostile.tiff_ifd_chain(48_000, 64), 200),  # 4.9 MB: 26 s of n_frames
    ],
)
def test_a_decode_bomb_is_answered_at_once_and_the_next_photo_is_served(
    server: load.Server, photo: bytes, route: str, name: str, make, status: int
) -> None:
    t0 = time.monotonic()
    r = _remove(server.url, route, make(), name)
    took = time.monotonic() - t0
    if status == 200:  # decoded and matted: a cut-out, or the answer that the photo shows no one
        assert r.status_code == 200 or any(code in r.text for code in ("empty_result", "unknown_foreground")), r.text[:300]
    else:
        assert r.status_code == status, r.text[:300]
    if status == 422:
        assert "scans" in r.text and ("too_large" in r.text or "resolution" in r.text.lower()), r.text
    assert took < 5, took
    ok = _remove(server.url, route, photo, "a.jpg")  # at once: the only slot is free again
    assert ok.status_code == 200 and ok.content[:4] == b"\x89PNG", ok.text[:300]


def _job(url: str, files: dict) -> dict:
    """Start a job (with a ``bg_file``, the default output is the composite that reads it); its
    final state, or the refusal itself when the upload is refused at once."""
    r = httpx.post(url + "/api/v1/jobs", data={"preset": "fast"}, files=files, timeout=60)
    if r.status_code != 202:
        return {"state": "refused", "status": r.status_code, **r.json()}
    job_id = r.json()["id"]
    give_up = time.monotonic() + 60
    while True:
        job = httpx.get(f"{url}/api/v1/jobs/{job_id}", timeout=10).json()
        if job["state"] not in ("queued", "running") or time.monotonic() > give_up:
            return job
        time.sleep(0.1)


def test_a_clip_that_grows_past_the_limit_fails_as_too_large(server: load.Server, tmp_path: Path) -> None:
    clip = hostile.growing_clip(tmp_path / "grow.ts", ((320, 240), (4000, 3000)), (5, 3)).read_bytes()
    before = server.rss_mb()
    job = _job(server.url, {"file": ("grow.ts", clip, "video/mp2t")})
    assert job["state"] in ("failed", "refused") and job["error"]["code"] == "too_large", job
    assert server.rss_mb() - before < 100  # no 12 MP frame was converted (the audit saw +390 MB)


def test_a_clip_past_the_limit_from_its_start_is_refused_at_admission(server: load.Server, tmp_path: Path) -> None:
    big = hostile.flat_clip(tmp_path / "big.ts", (1280, 960), 3).read_bytes()  # 1.2 MP from the first frame
    job = _job(server.url, {"file": ("big.ts", big, "video/mp2t")})
    assert job["state"] == "refused" and job["status"] == 422 and job["error"]["code"] == "too_large", job
    assert "1280x960" in job["error"]["message"], job


def test_an_uploaded_playlist_or_concat_list_is_refused_before_ffmpeg_reads_it(server: load.Server, tmp_path: Path) -> None:
    # Either would make FFmpeg's hls/concat demuxer open the files it names, on the server. The
    # upload is saved without its name, so FFmpeg (8.x) no longer picks hls for it (it wants the
    # .m3u8 suffix), but it picks concat from the bytes: the allow-list refuses that one.
    segment = hostile.flat_clip(tmp_path / "segment.ts", (320, 240))
    for name, text, ours in (
        ("list.m3u8", f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{segment}\n#EXT-X-ENDLIST\n", False),
        ("list.ffconcat", f"ffconcat version 1.0\nfile '{segment}'\n", True),
    ):
        job = _job(server.url, {"file": (name, text.encode(), "application/octet-stream")})
        assert job["state"] == "refused" and job["error"]["code"] == "invalid_input", job
        assert not ours or "container we read" in job["error"]["message"], job
        assert str(segment) not in job["error"]["message"], job


def test_a_background_clip_past_the_limit_fails_as_too_large(server: load.Server, tmp_path: Path) -> None:
    clip = hostile.flat_clip(tmp_path / "clip.ts", (320, 240), 8).read_bytes()
    big = hostile.flat_clip(tmp_path / "bg.ts", (1280, 960), 3).read_bytes()  # 1.2 MP
    job = _job(server.url, {"file": ("clip.ts", clip, "video/mp2t"), "bg_file": ("bg.ts", big, "video/mp2t")})
    # Too large from its first frame: refused at admission, before a job exists.
    assert job["state"] == "refused" and job["status"] == 422 and job["error"]["code"] == "too_large", job
    grows = hostile.growing_clip(tmp_path / "grows.ts", ((320, 240), (1280, 960)), (2, 3)).read_bytes()
    job = _job(server.url, {"file": ("clip.ts", clip, "video/mp2t"), "bg_file": ("grows.ts", grows, "video/mp2t")})
    assert job["state"] in ("failed", "refused") and job["error"]["code"] == "too_large", job
