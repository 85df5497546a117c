"""The service in a real deployment, against real server processes on 127.0.0.1: deadlines,
early shedding of a full queue, SIGTERM under load, access logs with request ids."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from bench import load  # a real server with its own TMPDIR
from live_server import record_summary
from samples import sample_path

ROOT = Path(__file__).resolve().parents[1]

FAST = {"preset": "fast"}
# ``best`` at ratio 1 on SLOW_SIDE px: three network passes of ~1.6 MP, ~2.3 s on a 2-core Zen 4,
# well past REQUEST_TIMEOUT (a 1024 px photo took 1.25-1.7 s there once the model got faster, and
# sometimes finished in time). At the 504 the pass in progress is stopped (ONNX Runtime's terminate
# flag), so the worker is free at once; before, the next request waited up to a pass (~0.7-1.2 s).
SLOW = {"preset": "best", "ratio": "1"}
SLOW_SIDE = 1280
REQUEST_TIMEOUT = 1.5


_record = record_summary  # what a test measured, for bench/reliability.py --deploy


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one series in a Prometheus text page (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:]+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
            return float(m.group(3))
    return 0.0


def _post(url: str, image: bytes, fields: dict, **kw) -> httpx.Response:
    return httpx.post(
        url + "/api/v1/remove", files={"file": ("a.jpg", image, "image/jpeg")}, data=fields, timeout=kw.pop("timeout", 60), **kw
    )


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return load.sample_images((256, 1024))


@pytest.fixture(scope="module")
def slow_photo() -> bytes:
    """The photo SLOW requests send."""
    return load.sample_images((SLOW_SIDE,))[0]


@pytest.fixture(scope="module")
def timed() -> Iterator[load.Server]:
    env = {
        "MATTEKIT_WORKERS": "1",
        "MATTEKIT_QUEUE_SIZE": "2",
        "MATTEKIT_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
        "MATTEKIT_JOB_TIMEOUT": "1",
        "MATTEKIT_THREADS": "2",
    }
    with load.serve(env) as srv:
        yield srv


# -- deadlines ----------------------------------------------------------------------------------
def test_request_past_its_deadline_gets_504_and_frees_its_worker(
    timed: load.Server, images: list[bytes], slow_photo: bytes
) -> None:
    t0 = time.monotonic()
    r = _post(timed.url, slow_photo, SLOW)
    took = time.monotonic() - t0
    assert r.status_code == 504, r.text[:300]
    assert r.json()["error"]["code"] == "deadline_exceeded"
    assert "1.5 s" in r.json()["error"]["message"]
    assert took < REQUEST_TIMEOUT + 3, took  # answered at the deadline, not when the work would end
    # The one worker is free again: the next request is served, well within its own deadline.
    t0 = time.monotonic()
    ok = _post(timed.url, images[0], FAST)
    assert ok.status_code == 200 and ok.content[:4] == b"\x89PNG", ok.text[:300]
    next_took = time.monotonic() - t0
    assert next_took < REQUEST_TIMEOUT
    _record("deadline", {"timeout_s": REQUEST_TIMEOUT, "answered_s": round(took, 2), "next_s": round(next_took, 2)})
    page = httpx.get(timed.url + "/metrics").text
    assert _metric(page, "mattekit_deadline_exceeded_total", kind="request") == 1
    assert _metric(page, "mattekit_http_requests_total", method="POST", route="/api/v1/remove", status="504") == 1
    assert _metric(page, "mattekit_errors_total", code="deadline_exceeded") == 1


def test_job_past_its_deadline_fails_with_a_reason_and_leaves_no_files(timed: load.Server) -> None:
    clip = sample_path("carphone").read_bytes()
    r = httpx.post(
        timed.url + "/api/v1/jobs",
        data={"preset": "best", "output": "webm"},
        files={"file": ("clip.mp4", clip, "video/mp4")},
        timeout=60,
    )
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
    _record(
        "job_deadline",
        {"timeout_s": 1, "frames_done": job["progress"]["frames_done"], "frames_total": job["progress"]["frames_total"]},
    )
    assert not [p for p in timed.temp_files() if job_id in p], timed.temp_files()
    page = httpx.get(timed.url + "/metrics").text
    assert _metric(page, "mattekit_deadline_exceeded_total", kind="job") == 1


# -- early shedding -----------------------------------------------------------------------------
BIG = 30 * 1024 * 1024


def _head(length: int, expect: bool) -> bytes:
    return (
        f"POST /api/v1/remove HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {length}\r\n"
        + ("Expect: 100-continue\r\n" if expect else "")
        + "\r\n"
    ).encode()


def _connect(url: str) -> socket.socket:
    host, port = url.split("//")[1].split(":")
    assert host == "127.0.0.1"
    s = socket.create_connection((host, int(port)), timeout=10)
    # A small send buffer, so "sent" counts what the server could have read, not what the kernel took.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    return s


def _response_head(s: socket.socket) -> bytes:
    data = b""
    give_up = time.monotonic() + 10
    while b"\r\n\r\n" not in data and time.monotonic() < give_up:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _send_until_answered(s: socket.socket, total: int) -> tuple[int, bytes]:
    """Send ``total`` body bytes, stopping as soon as the server answers; returns (bytes sent, answer)."""
    s.setblocking(False)
    chunk = b"x" * 65536
    sent = 0
    give_up = time.monotonic() + 30
    while sent < total and time.monotonic() < give_up:
        readable, writable, _ = select.select([s], [s], [], 1.0)
        if readable:
            break
        if writable:
            try:
                sent += s.send(chunk[: total - sent])
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:  # the server closed the connection: it will not read the rest
                break
    s.setblocking(True)
    return sent, _response_head(s)


@pytest.fixture(scope="module")
def one_slot() -> Iterator[load.Server]:
    with load.serve({"MATTEKIT_WORKERS": "1", "MATTEKIT_QUEUE_SIZE": "0", "MATTEKIT_THREADS": "2"}) as srv:
        yield srv


def _busy_gauge(url: str) -> float:
    return _metric(httpx.get(url + "/metrics").text, "mattekit_workers_busy")


def test_full_queue_refuses_a_30_mb_upload_before_its_body(one_slot: load.Server, images: list[bytes], slow_photo: bytes) -> None:
    with ThreadPoolExecutor(1) as ex:
        slow = ex.submit(_post, one_slot.url, slow_photo, SLOW)  # takes the only slot for seconds
        give_up = time.monotonic() + 30
        while _busy_gauge(one_slot.url) < 1 and time.monotonic() < give_up and not slow.done():
            time.sleep(0.05)
        assert _busy_gauge(one_slot.url) == 1, "the slow request never started"

        # Expect: 100-continue: the answer comes instead of "100 Continue", so no body byte is sent.
        with contextlib.closing(_connect(one_slot.url)) as s:
            s.sendall(_head(BIG, expect=True))
            answer = _response_head(s)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"100 Continue" not in answer and b"retry-after:" in answer.lower()
        assert b"connection: close" in answer.lower()

        # No Expect: the client starts sending at once; the answer arrives after at most what the
        # socket buffers hold, and the server closes the connection instead of reading the rest.
        with contextlib.closing(_connect(one_slot.url)) as s:
            s.sendall(_head(BIG, expect=False))
            sent, answer = _send_until_answered(s, BIG)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert sent < BIG // 4, f"{sent} of {BIG} bytes sent before the 503"

        # A small body is in the socket buffers already: it is read and dropped, and the 503
        # keeps the connection (closing would reset it, and the client might lose the answer).
        small = httpx.post(one_slot.url + "/api/v1/remove", files={"file": ("a.jpg", images[0], "image/jpeg")})
        assert small.status_code == 503 and small.headers.get("connection") != "close", small.headers
        assert slow.result().status_code == 200
    page = httpx.get(one_slot.url + "/metrics").text
    assert _metric(page, "mattekit_http_requests_total", method="POST", route="/api/v1/remove", status="503") == 3
    assert _metric(page, "mattekit_rejected_busy_total") == 3
    _record("shedding", {"body_bytes": BIG, "sent_with_expect": 0, "sent_without_expect": sent})


# -- access logs ----------------------------------------------------------------------------------
def test_every_request_has_an_id_and_one_access_line(timed: load.Server, images: list[bytes]) -> None:
    given = httpx.get(timed.url + "/healthz", headers={"X-Request-ID": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    made = _post(timed.url, images[0], FAST)
    assert made.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    forged = httpx.get(timed.url + "/healthz", headers={"X-Request-ID": 'x" 200 0B injected'})
    assert forged.headers["x-request-id"] != 'x" 200 0B injected'  # not a token: replaced, never logged
    give_up = time.monotonic() + 10
    ids = ("trace-42.a", made.headers["x-request-id"], forged.headers["x-request-id"])
    # The line is written just after the response is sent: wait for the last of them.
    while any(f"id={rid}" not in timed.log() for rid in ids) and time.monotonic() < give_up:
        time.sleep(0.1)
    lines = timed.log().splitlines()
    for rid, status, what in (
        ("trace-42.a", 200, "GET /healthz"),
        (made.headers["x-request-id"], 200, "POST /api/v1/remove"),
        (forged.headers["x-request-id"], 200, "GET /healthz"),
    ):
        mine = [line for line in lines if f"id={rid}" in line]
        assert len(mine) == 1 and f'"{what} HTTP/1.1" {status} ' in mine[0], (mine, lines[-8:])
    assert "injected" not in timed.log()


# -- SIGTERM under load ---------------------------------------------------------------------------
GRACE, DRAIN = 8, 2.5


def _clip(path: Path, seconds: float = 8.0, size: tuple[int, int] = (640, 480)) -> Path:
    """A clip slow enough at ``ratio=1`` to still be running when the server is stopped."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        for i in range(int(seconds * 25)):
            frame = av.VideoFrame.from_ndarray(np.roll(base, i * 4, axis=1), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _client(url: str, images: list[bytes], name: str, stop: threading.Event, outcomes: list) -> None:
    """Fresh connection per request, so no request races a keep-alive connection being closed."""
    for n in range(200):
        if stop.is_set():
            return
        rid = f"{name}-{n}"
        try:
            r = _post(url, images[n % len(images)], FAST, headers={"X-Request-ID": rid}, timeout=30)
        except httpx.ConnectError:  # the listener is closed: never accepted, the client would go elsewhere
            outcomes.append((rid, "refused", time.monotonic()))
            return
        except httpx.HTTPError as exc:
            outcomes.append((rid, type(exc).__name__, time.monotonic()))
            continue
        if r.status_code == 200:
            outcomes.append((rid, "ok" if r.content[:4] == b"\x89PNG" else "bad image", time.monotonic()))
        else:
            clean = r.headers.get("content-type", "").startswith("application/json") and "error" in r.json()
            outcomes.append((rid, f"{r.status_code}" if clean else f"unclean {r.status_code}", time.monotonic()))


def test_sigterm_under_load_drains_and_exits_within_the_grace_period(images: list[bytes], tmp_path: Path) -> None:
    live = load._live_server()
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    log_path = tmp_path / "server.log"
    env = {
        "TMPDIR": str(tmpdir),
        "PYTHONUNBUFFERED": "1",
        "MATTEKIT_WORKERS": "2",
        "MATTEKIT_QUEUE_SIZE": "4",
        "MATTEKIT_THREADS": "2",
        "MATTEKIT_GRACE_PERIOD": str(GRACE),
        "MATTEKIT_DRAIN_SECONDS": str(DRAIN),
        "MATTEKIT_LOG_FORMAT": "json",
    }
    clip = _clip(tmp_path / "clip.mp4").read_bytes()
    command = ["mattekit", "serve", "--host", "127.0.0.1", "--port", "{port}"]
    with live.start_server(command, env=env, log_path=log_path, stop_timeout=5) as (url, proc):
        baseline = {p for p in tmpdir.rglob("*")}
        jobs = []
        for _ in range(2):  # the first runs (for longer than the test), the second waits behind it
            r = httpx.post(
                url + "/api/v1/jobs",
                data={"preset": "fast", "ratio": "1", "output": "webm"},
                files={"file": ("clip.mp4", clip, "video/mp4")},
                timeout=30,
            )
            assert r.status_code == 202, r.text
            jobs.append(r.json()["id"])
        stop, outcomes = threading.Event(), []
        clients = [threading.Thread(target=_client, args=(url, images, f"c{i}", stop, outcomes)) for i in range(4)]
        for t in clients:
            t.start()
        try:
            give_up = time.monotonic() + 60
            while len(outcomes) < 8 and time.monotonic() < give_up:
                time.sleep(0.05)
            assert httpx.get(f"{url}/api/v1/jobs/{jobs[0]}").json()["state"] == "running"

            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            ready = httpx.get(url + "/readyz", timeout=5)  # still accepting for DRAIN seconds
            assert ready.status_code == 503 and ready.json()["error"]["code"] == "shutting_down", ready.text
            refused = httpx.post(url + "/api/v1/jobs", files={"file": ("clip.mp4", clip, "video/mp4")}, timeout=10)
            assert refused.status_code == 503 and "retry-after" in refused.headers, refused.text
            queued = httpx.get(f"{url}/api/v1/jobs/{jobs[1]}", timeout=5).json()
            assert queued["state"] == "failed" and queued["error"]["code"] == "shutting_down", queued
            assert "submit it again" in queued["error"]["message"]

            proc.wait(timeout=DRAIN + GRACE + 15)
            took = time.monotonic() - signalled
        finally:
            stop.set()
            for t in clients:
                t.join(timeout=60)
    assert took < DRAIN + GRACE + 5, f"exited {took:.1f} s after SIGTERM"

    log_lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    logged = {line["request_id"]: line["status"] for line in log_lines if line.get("logger") == "mattekit.access"}
    kinds = Counter(kind for _, kind, _ in outcomes)
    assert kinds["ok"] >= 8 and any(kind == "ok" and at > signalled for _, kind, at in outcomes), kinds
    for rid, kind, _ in outcomes:
        if kind == "ok":
            assert logged.get(rid) == 200, rid
        elif kind not in ("refused", "503", "504"):
            # A transport error only for a connection the app never saw (the kernel's backlog when
            # the listener closed); one the server answered must have reached its client.
            assert rid not in logged, (rid, kind, logged.get(rid))
    messages = [line.get("message", "") for line in log_lines]
    assert any("1 queued video job(s) failed" in m for m in messages), messages
    assert {p for p in tmpdir.rglob("*")} <= baseline, sorted(map(str, {p for p in tmpdir.rglob("*")} - baseline))
    _record(
        "sigterm",
        {
            "drain_s": DRAIN,
            "grace_s": GRACE,
            "exit_s": round(took, 1),
            "outcomes": dict(kinds),
            "clients": len(clients),
            "ok_after_signal": sum(1 for _, k, at in outcomes if k == "ok" and at > signalled),
        },
    )


# -- several processes ----------------------------------------------------------------------------
def _wait_metric(url: str, name: str, value: float, seconds: float = 120) -> None:
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        try:
            if _metric(httpx.get(url + "/metrics", timeout=5).text, name) == value:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{name} never reached {value}")


def test_two_processes_serve_16_clients_share_jobs_and_add_up_metrics(images: list[bytes], tmp_path: Path) -> None:
    live = load._live_server()
    log_path = tmp_path / "server.log"
    env = {
        "TMPDIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
        "MATTEKIT_WORKERS": "1",
        "MATTEKIT_QUEUE_SIZE": "16",
        "MATTEKIT_LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": "",
        "MATTEKIT_JOB_DIR": "",
    }
    command = ["mattekit", "serve", "--host", "127.0.0.1", "--port", "{port}", "--processes", "2"]
    small = images[0]
    with live.start_server(command, env=env, log_path=log_path, stop_timeout=20) as (url, proc):
        _wait_metric(url, "mattekit_workers", 2)  # both processes are up (one pool worker each) ...
        _wait_metric(url, "mattekit_model_ready", 1)  # ... and both have their model loaded
        per_client = 3

        def client(i: int) -> list[tuple[int, bytes]]:
            out = []
            for n in range(per_client):  # a fresh connection each, so the kernel spreads them
                r = _post(url, small, FAST, headers={"X-Request-ID": f"m{i}-{n}"})
                out.append((r.status_code, r.content))
            return out

        with ThreadPoolExecutor(16) as ex:
            results = [res for batch in ex.map(client, range(16)) for res in batch]
        assert [code for code, _ in results] == [200] * 16 * per_client
        from PIL import Image

        sizes = {Image.open(io.BytesIO(body)).size for _, body in results}
        assert sizes == {Image.open(io.BytesIO(small)).size}

        page = httpx.get(url + "/metrics").text  # whichever process answers, the sums are the same
        assert (
            _metric(page, "mattekit_http_requests_total", method="POST", route="/api/v1/remove", status="200") == 16 * per_client
        )
        assert _metric(page, "mattekit_inference_seconds_count") == 16 * per_client
        assert _metric(page, "mattekit_queue_capacity") == 2 * 17 and _metric(page, "mattekit_queue_depth") == 0

        # A video job is found, served and deleted by whichever process a connection reaches.
        clip = sample_path("carphone").read_bytes()
        r = httpx.post(
            url + "/api/v1/jobs",
            data={"preset": "fast", "end": "0.4"},
            files={"file": ("clip.mp4", clip, "video/mp4")},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        give_up, polls = time.monotonic() + 60, []
        while time.monotonic() < give_up:
            polls.append(httpx.get(f"{url}/api/v1/jobs/{job_id}", timeout=10))
            if polls[-1].status_code != 200 or polls[-1].json()["state"] not in ("queued", "running"):
                break
            time.sleep(0.05)
        assert polls[-1].status_code == 200 and polls[-1].json()["state"] == "done", polls[-1].text
        fetched = [httpx.get(f"{url}/api/v1/jobs/{job_id}/result", timeout=30) for _ in range(6)]
        assert {f.status_code for f in fetched} == {200} and len({f.content for f in fetched}) == 1
        assert fetched[0].content[:4] == b"\x1aE\xdf\xa3"  # a WebM (Matroska) file
        assert httpx.delete(f"{url}/api/v1/jobs/{job_id}").json()["state"] == "deleted"
        assert httpx.get(f"{url}/api/v1/jobs/{job_id}").status_code == 404

    assert proc.returncode is not None
    assert not list(tmp_path.glob("mattekit-*")), list(tmp_path.glob("mattekit-*"))  # its shared folders are gone
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    served = {line["pid"] for line in lines if line.get("path") == "/api/v1/remove"}
    polled = {line["pid"] for line in lines if line.get("path", "").startswith("/api/v1/jobs/")}
    assert len(served) == 2, served  # both processes took part
    _record(
        "processes",
        {
            "processes": 2,
            "clients": 16,
            "requests": 16 * per_client,
            "ok": 16 * per_client,
            "metrics_total": 16 * per_client,
            "pids_serving": len(served),
            "pids_polled": len(polled),
        },
    )


def test_a_job_is_cancelled_through_another_process_store(tmp_path: Path) -> None:
    """Two apps on one MATTEKIT_JOB_DIR stand for two processes: B reads A's job, B's DELETE stops it."""
    from fastapi.testclient import TestClient

    from mattekit.service import Settings, create_app
    from mattekit.service.settings import JobSettings

    shared = tmp_path / "jobs"
    clip = _clip(tmp_path / "clip.mp4", seconds=4).read_bytes()
    apps = []
    for _ in range(2):
        jobs = JobSettings(folder=str(shared), max_upload_bytes=50 * 2**20)
        app = create_app(Settings(load_model=False, workers=1, jobs=jobs))
        apps.append(app)
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        r = a.post("/api/v1/jobs", data={"preset": "fast", "ratio": "1"}, files={"file": ("c.mp4", clip, "video/mp4")})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        give_up = time.monotonic() + 60
        while b.get(f"/api/v1/jobs/{job_id}").json()["progress"]["frames_done"] < 2 and time.monotonic() < give_up:
            time.sleep(0.05)
        seen = b.get(f"/api/v1/jobs/{job_id}").json()
        assert seen["state"] == "running" and seen["progress"]["frames_total"] == 100, seen
        assert b.delete(f"/api/v1/jobs/{job_id}").json()["state"] == "cancelled"
        while a.get(f"/api/v1/jobs/{job_id}").json()["state"] == "running" and time.monotonic() < give_up:
            time.sleep(0.05)
        assert a.get(f"/api/v1/jobs/{job_id}").json()["state"] == "cancelled"
        assert b.get(f"/api/v1/jobs/{job_id}").json()["state"] == "cancelled"  # the owner recorded it
        assert sorted(p.name for p in (shared / job_id).iterdir()) == ["job.json"]  # files gone, reason kept
        assert b.get(f"/api/v1/jobs/{job_id}/result").status_code == 409
        assert b.get("/api/v1/jobs/..%2F..%2Fetc").status_code == 404


# -- the faces as extras ----------------------------------------------------------------------------
def _without(modules: tuple[str, ...], code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run in a fresh interpreter where importing any of ``modules`` fails, as on a
    machine where the extra that installs them is missing."""
    hide = f"import sys\nfor name in {modules!r}:\n    sys.modules[name] = None\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-c", hide + code], capture_output=True, text=True, env=env, timeout=60)


def test_a_missing_extra_says_which_to_install() -> None:
    """The library needs neither face; each face, without its extra, says how to get it."""
    library = _without(("click", "rich", "fastapi", "uvicorn"), "import mattekit\nprint(mattekit.__version__)")
    assert library.returncode == 0, library.stderr
    server = _without(
        ("fastapi",),
        "from mattekit.errors import MissingExtra\ntry:\n    import mattekit.service\nexcept MissingExtra as exc:\n    print(exc)\n",
    )
    assert "mattekit[server]" in server.stdout and "fastapi" in server.stdout and "pip install" in server.stdout, server
    cli = _without(("click",), "import sys\nsys.argv = ['mattekit', '--version']\nfrom mattekit.__main__ import main\nmain()")
    assert cli.returncode == 1 and "pip install 'mattekit[cli]'" in cli.stderr and "Traceback" not in cli.stderr, cli
    served = _without(("uvicorn",), "import sys\nsys.argv = ['mattekit', 'serve']\nfrom mattekit.__main__ import main\nmain()")
    assert served.returncode == 1 and "mattekit[server]" in served.stderr and "Traceback" not in served.stderr, served
    # With both installed (this suite's machine), the console script is the CLI.
    ok = _without((), "import sys\nsys.argv = ['mattekit', '--version']\nfrom mattekit.__main__ import main\nmain()")
    assert ok.returncode == 0 and ok.stdout.startswith("mattekit "), ok


def test_serve_says_when_its_ray_cluster_cannot_be_reached(tmp_path: Path) -> None:
    """MATTEKIT_RAY_ADDRESS naming no cluster: one line and exit status 1, before serving."""
    from live_server import free_port

    env = {**os.environ, "MATTEKIT_RAY_ADDRESS": f"127.0.0.1:{free_port()}", "MATTEKIT_JOB_DIR": str(tmp_path / "jobs")}
    port = free_port()
    run = subprocess.run(
        [sys.executable, "-m", "mattekit", "serve", "--port", str(port)], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1 and "cannot reach a Ray cluster" in run.stderr and "Traceback" not in run.stderr, run
    assert "MATTEKIT_JOB_DIR" not in run.stderr  # the address was the problem, not the folder
    bad = subprocess.run(
        [sys.executable, "-m", "mattekit", "serve", "--port", str(port)],
        env={k: v for k, v in env.items() if k != "MATTEKIT_JOB_DIR"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "MATTEKIT_RAY_ADDRESS needs MATTEKIT_JOB_DIR" in bad.stderr, bad
