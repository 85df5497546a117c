"""Faults: each ends with a clear log line and error, leaves no temp files or threads behind, and
the server keeps serving.

Client disconnects and a corrupt/missing model run against a real server process on 127.0.0.1
(bench/load.py's); a worker exception, a killed video job and a full temp disk run in-process,
where the fault can be injected exactly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench import load

from mattekit.service.state import service_of

ROOT = Path(__file__).resolve().parents[1]

FAST = {"preset": "fast"}


def _multipart(data: bytes, query: str = "") -> tuple[bytes, bytes]:
    body = (
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--BOUNDARY--\r\n"
    )
    head = (
        f"POST /api/v1/remove{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary=BOUNDARY\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


def _connect(url: str) -> socket.socket:
    host, port = url.split("//")[1].split(":")
    assert host == "127.0.0.1"
    return socket.create_connection((host, int(port)), timeout=30)


def _wait_for(predicate, seconds: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return load.sample_images((256, 1024))


@pytest.fixture(scope="module")
def server() -> Iterator[load.Server]:
    with load.serve({"MATTEKIT_WORKERS": "2", "MATTEKIT_QUEUE_SIZE": "2"}) as srv:
        yield srv


def _still_serving(server: load.Server, image: bytes) -> None:
    r = httpx.post(server.url + "/api/v1/remove", files={"file": ("a.jpg", image, "image/jpeg")}, data=FAST, timeout=120)
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG", r.text[:300]


# -- a real server: clients that go away ----------------------------------------------------------
def test_client_disconnect_mid_upload(server: load.Server, images: list[bytes]) -> None:
    # Both workers busy with both sizes once, so every lazily created thread exists before we count.
    assert load.run_load(server.url, 2, 60, images, fields=FAST, max_requests=4)["ok"] == 4
    threads = load.threads_of(server.pid)
    head, body = _multipart(images[1])
    for _ in range(3):
        with contextlib.closing(_connect(server.url)) as s:
            s.sendall(head + body[: len(body) // 2])
            time.sleep(0.2)
    _wait_for(
        lambda: server.log().count("client disconnected before its upload") >= 3, 30, "the log line for each dropped upload"
    )
    assert "Traceback" not in server.log(), server.log()[-3000:]
    _still_serving(server, images[1])
    assert load.threads_of(server.pid) <= threads
    assert server.temp_files() == []
    metrics = httpx.get(server.url + "/metrics").text
    # Counted as dropped by the client (499), not as a server error.
    assert 'mattekit_http_requests_total{method="POST",route="/api/v1/remove",status="499"} 3.0' in metrics
    assert 'status="500"' not in metrics


def test_client_disconnect_mid_download(server: load.Server, images: list[bytes]) -> None:
    threads = load.threads_of(server.pid)
    head, body = _multipart(images[1], "?preset=fast")
    for _ in range(3):
        with contextlib.closing(_connect(server.url)) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(head + body)
            first = s.recv(1024)  # the status line and a few bytes of the ~1 MB result, then hang up
            assert first.startswith(b"HTTP/1.1 200"), first[:100]
    _still_serving(server, images[1])
    assert "Traceback" not in server.log(), server.log()[-3000:]
    assert load.threads_of(server.pid) <= threads
    assert server.temp_files() == []


# -- a real server: the model file is corrupt or missing at start-up -------------------------------
@pytest.mark.parametrize("fault", ["corrupt", "missing"])
def test_bad_model_at_startup_keeps_process_up_and_says_why(tmp_path: Path, images: list[bytes], fault: str) -> None:
    model = tmp_path / "rvm.onnx"
    if fault == "corrupt":  # a truncated download: the right name, the wrong bytes
        model.write_bytes(os.urandom(64 * 1024))
    env = {"MATTEKIT_MODEL": str(model), "MATTEKIT_HOME": str(tmp_path / "home")}
    with load.serve(env, wait_ready=False) as srv:
        _wait_for(lambda: "model not available" in srv.log(), 60, "the model error in the log")
        ready = httpx.get(srv.url + "/readyz")
        assert ready.status_code == 503
        err = ready.json()["error"]
        # The reason, not where the server keeps its model: the path is in the log only (L2).
        assert err["code"] == "model_unavailable" and "model" in err["message"], err
        assert str(model) not in ready.text and str(tmp_path) not in ready.text, ready.text
        assert httpx.get(srv.url + "/healthz").status_code == 200
        r = httpx.post(srv.url + "/api/v1/remove", files={"file": ("a.jpg", images[0], "image/jpeg")}, timeout=60)
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable", r.text
        assert str(tmp_path) not in r.text, r.text
        assert "Retry-After" in r.headers
        assert srv.proc.poll() is None, "the server process died"
        assert "Traceback" not in srv.log(), srv.log()[-3000:]
        line = next(ln for ln in srv.log().splitlines() if "model not available" in ln)
        assert str(model) in line


# -- in-process: faults injected exactly -------------------------------------------------------------
@pytest.fixture(scope="module")
def app_client():
    from starlette.testclient import TestClient

    from mattekit.service import Settings, create_app

    app = create_app(Settings(workers=1, queue_size=1))
    with TestClient(app, raise_server_exceptions=False) as client:
        _wait_for(lambda: client.get("/readyz").status_code == 200, 120, "the model to load")
        yield client


@pytest.mark.parametrize(
    "fault,status,code",
    [
        (RuntimeError("injected fault"), 500, "internal"),
        (MemoryError(), 503, "out_of_memory"),
    ],
)
def test_worker_exception_is_contained(app_client, images, monkeypatch, caplog, fault, status, code) -> None:
    from mattekit.service import api

    real = api.process
    calls = []

    def failing(*args, **kwargs):
        calls.append(threading.current_thread().name)
        raise fault

    monkeypatch.setattr(api, "process", failing)
    with caplog.at_level(logging.WARNING, logger="mattekit.service"):
        r = app_client.post("/api/v1/remove", files={"file": ("a.jpg", images[0], "image/jpeg")}, data=FAST)
    assert calls and calls[0].startswith("mattekit-stills"), calls  # it failed in a worker thread
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    assert "Traceback" not in r.text and "injected" not in r.text
    assert any(rec.levelno >= logging.ERROR and "/api/v1/remove" in rec.getMessage() for rec in caplog.records)
    pool = service_of(app_client.app).pool
    assert pool.running == 0 and pool.waiting == 0  # the slot came back
    monkeypatch.setattr(api, "process", real)
    ok = app_client.post("/api/v1/remove", files={"file": ("a.jpg", images[0], "image/jpeg")}, data=FAST)
    assert ok.status_code == 200


def _clip(name: str) -> bytes:
    from samples import sample_path

    return sample_path(name).read_bytes()


def _job_state(client, job_id: str) -> dict:
    return client.get(f"/api/v1/jobs/{job_id}").json()


def _own_threads() -> int:
    """Threads that a job could leak. The event loop's default executor (``asyncio_N``, the
    route's ``to_thread``) and AnyIO's worker threads grow on demand, by a race between one
    call's return and the next call: not a leak, and not ours to count."""
    return sum(1 for t in threading.enumerate() if not t.name.startswith(("asyncio_", "AnyIO worker")))


def test_killed_job_cleans_up_and_next_job_runs(app_client) -> None:
    store = service_of(app_client.app).jobs
    r = app_client.post(
        "/api/v1/jobs", files={"file": ("c.mp4", _clip("carphone"), "video/mp4")}, data={"output": "matte", "preset": "fast"}
    )
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    _wait_for(lambda: _job_state(app_client, job)["progress"]["frames_done"] > 0, 60, "the job to start")
    killed = app_client.delete(f"/api/v1/jobs/{job}")
    assert killed.json()["state"] == "cancelled"
    record = store.get(job)
    _wait_for(lambda: record.future.done(), 60, "the cancelled job to stop")
    body = _job_state(app_client, job)
    assert body["state"] == "cancelled" and body["error"]["code"] == "cancelled"
    assert body["progress"]["frames_done"] < 120
    assert not record.folder.exists(), list(record.folder.rglob("*"))
    assert app_client.get(f"/api/v1/jobs/{job}/result").status_code == 409
    threads = _own_threads()  # now the jobs pool's thread exists

    r = app_client.post(
        "/api/v1/jobs",
        files={"file": ("c.mp4", _clip("carphone"), "video/mp4")},
        data={"output": "matte", "preset": "fast", "end": "0.5"},
    )
    nxt = r.json()["id"]
    _wait_for(lambda: _job_state(app_client, nxt)["state"] not in ("queued", "running"), 120, "the next job")
    assert _job_state(app_client, nxt)["state"] == "done"
    assert app_client.delete(f"/api/v1/jobs/{nxt}").json()["state"] == "deleted"
    assert sorted(p.name for p in store.root.iterdir()) == []
    assert _own_threads() <= threads, [t.name for t in threading.enumerate()]
    jobs_threads = [t for t in threading.enumerate() if t.name.startswith("mattekit-jobs")]
    assert len(jobs_threads) <= store.settings.workers


def test_a_job_on_a_clip_without_a_person_is_done_with_a_notice(app_client) -> None:
    """Video is matted for people only: a clip with no person in any frame still gives its file,
    but the job says so (``notice``), as the CLI exits 1, instead of passing for a cut-out."""
    r = app_client.post(
        "/api/v1/jobs",
        files={"file": ("b.mp4", _clip("bigbuckbunny"), "video/mp4")},
        data={"output": "png-zip", "end": "0.08"},  # two frames
    )
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    _wait_for(lambda: _job_state(app_client, job)["state"] not in ("queued", "running"), 120, "the job")
    body = _job_state(app_client, job)
    assert body["state"] == "done" and "no person found in any frame" in body["notice"], body
    assert app_client.get(body["result_url"]).status_code == 200
    r = app_client.post(
        "/api/v1/jobs",
        files={"file": ("c.mp4", _clip("carphone"), "video/mp4")},
        data={"output": "png-zip", "end": "0.1"},
    )
    job = r.json()["id"]
    _wait_for(lambda: _job_state(app_client, job)["state"] not in ("queued", "running"), 120, "the job")
    body = _job_state(app_client, job)
    assert body["state"] == "done" and "notice" not in body, body


def test_the_notice_travels_in_a_cluster_record(tmp_path) -> None:
    """On a cluster every replica shows a job (and its webhook sends it) from the registry's record."""
    from mattekit.service.jobs.ray_store import _ended
    from mattekit.service.jobs.store import VideoJob, job_from_record
    from mattekit.video.pipeline import NO_PERSON

    job = VideoJob("a" * 16, tmp_path, "webm", state="done", notice=NO_PERSON)
    back = job_from_record(job.id, tmp_path, {**job.view(10.0), **_ended(job, None)})
    assert back is not None and back.view(10.0)["notice"] == NO_PERSON


def test_a_request_cancelled_while_its_job_starts_stops_the_job(app_client, monkeypatch, caplog) -> None:
    """A job request cancelled while its job is being started (on a cluster, while the runner comes
    up; here a slow start) waits for the start to finish, then drops the job: the job stops, its
    slot comes back and its files go, with nothing logged as a failure."""
    import asyncio

    store = service_of(app_client.app).jobs
    real_start = store.start
    entered, release = threading.Event(), threading.Event()
    started = []

    def slow_start(job, *args, **kwargs):
        started.append(job)
        entered.set()
        release.wait(30)
        real_start(job, *args, **kwargs)
        _wait_for(lambda: job.done > 0, 30, "the job to run")  # so that the drop meets a running job

    monkeypatch.setattr(store, "start", slow_start)
    clip = _clip("carphone")

    async def request_then_cancel() -> bool:
        transport = httpx.ASGITransport(app=app_client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            files = {"file": ("c.mp4", clip, "video/mp4")}
            post = asyncio.ensure_future(client.post("/api/v1/jobs", files=files, data={"output": "matte"}))
            while not entered.is_set():
                await asyncio.sleep(0.01)
            post.cancel()
            await asyncio.sleep(0.3)
            kept_while_starting = started[0].folder.exists()  # not dropped under a start in progress
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await post
            return kept_while_starting

    with caplog.at_level(logging.WARNING, logger="mattekit.service"):
        kept_while_starting = app_client.portal.call(request_then_cancel)
        assert kept_while_starting
        job = started[0]
        assert job.future is not None
        _wait_for(job.future.done, 60, "the dropped job to stop")
    assert job.state == "cancelled" and job.done < 120, (job.state, job.done)  # stopped before the clip's 120 frames
    _wait_for(lambda: not job.folder.exists(), 10, "the job's files to go")
    assert app_client.get(f"/api/v1/jobs/{job.id}").status_code == 404
    assert store.pool.running == 0 and store.pool.waiting == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


@contextlib.contextmanager
def tiny_disk(size: str = "1m") -> Iterator[Path]:
    """A real full-able file system: a 1 MiB tmpfs (needs root, as in CI and here)."""
    where = Path(tempfile.mkdtemp(prefix="mattekit-tinydisk-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def test_full_temp_disk(app_client, caplog) -> None:
    from mattekit.service.jobs.store import JobStore

    service = service_of(app_client.app)
    with tiny_disk("1m") as disk:
        old = service.jobs
        service.jobs = JobStore(old.settings, root=disk)
        try:
            with caplog.at_level(logging.ERROR, logger="mattekit.service.jobs"):
                # 1: the upload itself does not fit (1.06 MB on a 1 MiB disk).
                r = app_client.post(
                    "/api/v1/jobs", files={"file": ("b.mp4", _clip("bigbuckbunny"), "video/mp4")}, data={"output": "matte"}
                )
                assert r.status_code == 507 and r.json()["error"]["code"] == "no_space", r.text
                assert list(disk.iterdir()) == []
                # 2: the upload fits (0.59 MB) but the PNG frames it writes do not.
                r = app_client.post(
                    "/api/v1/jobs",
                    files={"file": ("c.mp4", _clip("carphone"), "video/mp4")},
                    data={"output": "png-zip", "preset": "fast"},
                )
                assert r.status_code == 202, r.text
                job = r.json()["id"]
                _wait_for(lambda: _job_state(app_client, job)["state"] not in ("queued", "running"), 120, "the job")
            body = _job_state(app_client, job)
            assert body["state"] == "failed" and body["error"]["code"] == "no_space", body
            assert "Traceback" not in str(body)
            assert sum(1 for rec in caplog.records if "disk" in rec.getMessage() and "full" in rec.getMessage()) >= 2
            assert list(disk.iterdir()) == []  # nothing left on the full disk
        finally:
            service.jobs.close()
            service.jobs = old
    # The service goes on: stills need no disk at all.
    r = app_client.post("/api/v1/remove", files={"file": ("a.jpg", load.sample_images((256,))[0], "image/jpeg")}, data=FAST)
    assert r.status_code == 200
