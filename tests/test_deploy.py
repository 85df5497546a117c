"""The service in a real deployment, against real server processes on 127.0.0.1: deadlines,
early shedding of a full queue, SIGTERM under load, access logs with request ids."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from samples import sample_path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import load  # noqa: E402  (bench/load.py: a real server with its own TMPDIR)

FAST = {"preset": "fast"}
# ``best`` at ratio 1 on a 1024 px photo: ten network passes of ~1 MP, several seconds here.
SLOW = {"preset": "best", "ratio": "1"}
REQUEST_TIMEOUT = 1.5


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one series in a Prometheus text page (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:]+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
            return float(m.group(3))
    return 0.0


def _post(url: str, image: bytes, fields: dict, **kw) -> httpx.Response:
    return httpx.post(url + "/api/v1/remove", files={"file": ("a.jpg", image, "image/jpeg")}, data=fields,
                      timeout=kw.pop("timeout", 60), **kw)


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return load.sample_images((256, 1024))


@pytest.fixture(scope="module")
def timed() -> Iterator[load.Server]:
    env = {"MATTEKIT_WORKERS": "1", "MATTEKIT_QUEUE_SIZE": "2", "MATTEKIT_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
           "MATTEKIT_JOB_TIMEOUT": "1", "MATTEKIT_THREADS": "2"}
    with load.serve(env) as srv:
        yield srv


# -- deadlines ----------------------------------------------------------------------------------
def test_request_past_its_deadline_gets_504_and_frees_its_worker(timed: load.Server, images: list[bytes]) -> None:
    t0 = time.monotonic()
    r = _post(timed.url, images[1], SLOW)
    took = time.monotonic() - t0
    assert r.status_code == 504, r.text[:300]
    assert r.json()["error"]["code"] == "deadline_exceeded"
    assert "1.5 s" in r.json()["error"]["message"]
    assert took < REQUEST_TIMEOUT + 3, took  # answered at the deadline, not when the work would end
    # The one worker is free again: the next request is served, well within its own deadline.
    t0 = time.monotonic()
    ok = _post(timed.url, images[0], FAST)
    assert ok.status_code == 200 and ok.content[:4] == b"\x89PNG", ok.text[:300]
    assert time.monotonic() - t0 < REQUEST_TIMEOUT
    page = httpx.get(timed.url + "/metrics").text
    assert _metric(page, "mattekit_deadline_exceeded_total", kind="request") == 1
    assert _metric(page, "mattekit_http_requests_total", method="POST", route="/api/v1/remove", status="504") == 1
    assert _metric(page, "mattekit_errors_total", code="deadline_exceeded") == 1


def test_job_past_its_deadline_fails_with_a_reason_and_leaves_no_files(timed: load.Server) -> None:
    clip = sample_path("carphone").read_bytes()
    r = httpx.post(timed.url + "/api/v1/jobs", data={"preset": "best", "output": "webm"},
                   files={"file": ("clip.mp4", clip, "video/mp4")}, timeout=60)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    give_up = time.monotonic() + 60
    while True:
        job = httpx.get(f"{timed.url}/api/v1/jobs/{job_id}", timeout=10).json()
        if job["state"] not in ("queued", "running") or time.monotonic() > give_up:
            break
        time.sleep(0.1)
    assert job["state"] == "failed", job
    assert job["error"]["code"] == "deadline_exceeded" and "this video" in job["error"]["message"], job
    assert 0 < job["progress"]["frames_done"] < job["progress"]["frames_total"]  # stopped between frames
    assert not [p for p in timed.temp_files() if job_id in p], timed.temp_files()
    page = httpx.get(timed.url + "/metrics").text
    assert _metric(page, "mattekit_deadline_exceeded_total", kind="job") == 1
