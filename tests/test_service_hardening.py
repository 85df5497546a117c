"""Hostile clients against the real server on 127.0.0.1 (issue 25, the service side): uploads that
stall, with every hostile input made here by the test. Each server is small (capacity 1, a short
deadline) so that each hole would show with small files and in seconds."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from bench import load  # a real server with its own TMPDIR
from live_server import record_summary

ROOT = Path(__file__).resolve().parents[1]

DEADLINE = 2.0  # MATTEKIT_REQUEST_TIMEOUT and MATTEKIT_JOB_UPLOAD_TIMEOUT of these servers
DECLARED = 16 * 1024 * 1024  # what each stalled upload announces
SENT = 8 * 1024 * 1024  # what each sends before it stalls: 8 of them held would be > 64 MB
STALLED = 8


def _connect(url: str) -> socket.socket:
    host, port = url.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    return s


def _head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=B\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _stalled_upload(url: str, path: str, wait: float) -> tuple[int, float, int]:
    """Announce DECLARED bytes, send SENT (or until answered), then stall; (status, seconds, sent).

    Status 0: no answer within ``wait`` seconds of stalling.
    """
    start = time.monotonic()
    with contextlib.closing(_connect(url)) as s:
        field = "image_file" if path.startswith("/v1.0/") else "file"
        s.sendall(
            _head(path, DECLARED) + b'--B\r\nContent-Disposition: form-data; name="%s"; filename="a"\r\n\r\n' % field.encode()
        )
        s.setblocking(False)
        chunk, sent = b"\xff" * 65536, 0
        while sent < SENT:
            readable, writable, _ = select.select([s], [s], [], 1.0)
            if readable:
                break
            if writable:
                try:
                    sent += s.send(chunk[: SENT - sent])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    break
            if time.monotonic() - start > wait:
                break
        s.setblocking(True)
        s.settimeout(wait)
        answer = b""
        try:
            while b"\r\n" not in answer:
                more = s.recv(4096)
                if not more:
                    break
                answer += more
        except OSError:
            pass
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, time.monotonic() - start, sent


class _PeakRss:
    """The server's largest RSS while the block runs (sampled every 20 ms)."""

    def __init__(self, server: load.Server) -> None:
        self.server, self.peak, self._stop = server, server.rss_mb(), threading.Event()

    def __enter__(self) -> _PeakRss:
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss_mb())
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


@pytest.fixture(scope="module")
def one_slot() -> Iterator[load.Server]:
    env = {
        "MATTEKIT_WORKERS": "1",
        "MATTEKIT_QUEUE_SIZE": "0",
        "MATTEKIT_THREADS": "2",
        "MATTEKIT_REQUEST_TIMEOUT": str(DEADLINE),
        "MATTEKIT_MAX_UPLOAD_BYTES": str(DECLARED),
        "MATTEKIT_JOB_WORKERS": "1",
        "MATTEKIT_JOB_QUEUE": "0",
        "MATTEKIT_JOB_UPLOAD_TIMEOUT": str(DEADLINE),
        "MATTEKIT_JOB_MAX_UPLOAD_BYTES": str(DECLARED),
    }
    with load.serve(env) as srv:
        yield srv


@pytest.fixture(scope="module")
def photo() -> bytes:
    return load.sample_images((256,))[0]


def _stall_many(server: load.Server, path: str) -> tuple[list[tuple[int, float, int]], float]:
    """STALLED stalled uploads at once; their outcomes and the server's RSS growth in MB."""
    before = server.rss_mb()
    with _PeakRss(server) as rss, ThreadPoolExecutor(STALLED) as ex:
        outcomes = list(ex.map(lambda _: _stalled_upload(server.url, path, DEADLINE + 8), range(STALLED)))
    return outcomes, rss.peak - before


@pytest.mark.parametrize("path", ["/api/v1/remove", "/v1.0/removebg"])
def test_stalled_still_uploads_are_refused_or_cut_off_and_hold_no_memory(one_slot: load.Server, photo: bytes, path: str) -> None:
    warm = httpx.post(
        one_slot.url + "/api/v1/remove", files={"file": ("a.jpg", photo, "image/jpeg")}, data={"preset": "fast"}, timeout=30
    )
    assert warm.status_code == 200, warm.text  # the server's own allocations are made before measuring
    outcomes, grew = _stall_many(one_slot, path)
    statuses = sorted(status for status, _, _ in outcomes)
    # One upload holds the only slot until its deadline; the others are refused before their bodies.
    busy = 429 if path.startswith("/v1.0/") else 503  # remove.bg's word for busy
    assert statuses == sorted([504] + [busy] * (STALLED - 1)), outcomes
    cut = next(took for status, took, _ in outcomes if status == 504)
    assert DEADLINE - 0.5 < cut < DEADLINE + 3, outcomes
    assert all(took < 2 for status, took, _ in outcomes if status == busy), outcomes
    assert grew < 20, f"the server grew by {grew:.1f} MB holding {STALLED} stalled uploads"
    if path == "/api/v1/remove":
        record_summary(
            "stalled_uploads",
            {
                "uploads": STALLED,
                "sent_mib": SENT / 2**20,
                "deadline_s": DEADLINE,
                "refused": statuses.count(busy),
                "cut_s": round(cut, 2),
                "grew_mb": round(grew, 1),
            },
        )
    # The slot is free again at once.
    ok = httpx.post(
        one_slot.url + "/api/v1/remove", files={"file": ("a.jpg", photo, "image/jpeg")}, data={"preset": "fast"}, timeout=30
    )
    assert ok.status_code == 200, ok.text


def _fds(server: load.Server) -> int:
    return len(list(Path(f"/proc/{server.pid}/fd").iterdir()))


def test_stalled_video_uploads_are_refused_or_cut_off_and_leave_nothing(one_slot: load.Server) -> None:
    fds = _fds(one_slot)
    outcomes, grew = _stall_many(one_slot, "/api/v1/jobs")
    statuses = sorted(status for status, _, _ in outcomes)
    # One upload takes the only jobs slot and is cut off at MATTEKIT_JOB_UPLOAD_TIMEOUT (408); the
    # others are refused before their bodies: none stays open holding a file and descriptors.
    assert statuses == [408] + [503] * (STALLED - 1), outcomes
    cut = next(took for status, took, _ in outcomes if status == 408)
    assert DEADLINE - 0.5 < cut < DEADLINE + 3, outcomes
    assert all(took < 2 for status, took, _ in outcomes if status == 503), outcomes
    assert grew < 20, f"the server grew by {grew:.1f} MB holding {STALLED} stalled video uploads"
    record_summary(
        "stalled_video_uploads",
        {"uploads": STALLED, "refused": statuses.count(503), "cut_s": round(cut, 2), "grew_mb": round(grew, 1)},
    )
    give_up = time.monotonic() + 5
    while (_fds(one_slot) > fds or one_slot.temp_files()) and time.monotonic() < give_up:
        time.sleep(0.1)
    assert _fds(one_slot) <= fds and not one_slot.temp_files(), (fds, _fds(one_slot), one_slot.temp_files())
    # The slot is free again: a new upload is admitted (and, being no video, refused as such).
    r = httpx.post(one_slot.url + "/api/v1/jobs", files={"file": ("c.mp4", b"not a video", "video/mp4")}, timeout=30)
    assert r.status_code == 415, r.text


# -- the low findings, each against the real server ---------------------------------------------
def _tiny_clip(path: Path, frames: int = 3, size: tuple[int, int] = (128, 96)) -> bytes:
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            pixels = np.full((size[1], size[0], 3), 40 * i, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))
    return path.read_bytes()


def _log_lines_with(server: load.Server, needle: str) -> list[str]:
    give_up = time.monotonic() + 10
    while needle not in server.log() and time.monotonic() < give_up:
        time.sleep(0.1)  # the access line is written just after the response
    return [line for line in server.log().splitlines() if needle in line]


def test_a_newline_in_the_path_stays_inside_one_log_line(one_slot: load.Server) -> None:
    r = httpx.get(one_slot.url + "/x%0AINFO:%20mattekit.access:%20forged%22", headers={"X-Request-ID": "newline-1"})
    assert r.status_code == 404
    mine = _log_lines_with(one_slot, "id=newline-1")
    assert len(mine) == 1 and "/x\\x0aINFO: mattekit.access: forged\\x22 HTTP/1.1" in mine[0], mine
    assert not [line for line in one_slot.log().splitlines() if line.startswith("INFO: mattekit.access: forged")]


def test_deep_json_and_non_finite_times_are_4xx_without_a_traceback(one_slot: load.Server) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    r = httpx.post(one_slot.url + "/v1.0/removebg", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "invalid_request", r.text
    for name, value in (("start", "nan"), ("start", "inf"), ("end", "-inf"), ("end", "NaN")):
        r = httpx.post(
            one_slot.url + "/api/v1/jobs", data={name: value}, files={"file": ("c.mp4", b"\x00" * 64, "video/mp4")}, timeout=30
        )
        assert r.status_code == 400 and "finite" in r.json()["error"]["message"], (name, value, r.text)
    assert "Traceback" not in one_slot.log() and "RecursionError" not in one_slot.log()


@pytest.fixture(scope="module")
def slow_jpeg() -> bytes:
    """The slowest JPEG the server accepts: 47.6 MP, 250 progressive scans (the limit is 256), a
    flat picture so the upload is small. libjpeg decodes each scan over the whole picture: ~10 s
    here, far past the 2 s deadline. No other slow part: decode is where the work must stop."""
    import hostile

    return hostile.jpeg_scan_bomb(6900, 240)


@pytest.mark.parametrize("path", ["/api/v1/remove", "/v1.0/removebg"])
def test_a_still_past_its_deadline_frees_its_slot_at_the_504(
    one_slot: load.Server, photo: bytes, slow_jpeg: bytes, path: str
) -> None:
    field = "image_file" if path.startswith("/v1.0/") else "file"
    start = time.monotonic()
    r = httpx.post(one_slot.url + path, files={field: ("slow.jpg", slow_jpeg, "image/jpeg")}, timeout=60)
    answered = time.monotonic() - start
    assert r.status_code == 504, r.text[:300]
    assert answered < DEADLINE + 1.5, answered
    # At once, at capacity 1: the slot is free at the 504 (503 before), and the decode stopped at
    # its next scan, so this one does not wait ~8 s for it.
    start = time.monotonic()
    ok = httpx.post(one_slot.url + path, files={field: ("a.jpg", photo, "image/jpeg")}, timeout=60)
    took = time.monotonic() - start
    assert ok.status_code == 200, ok.text[:300]
    assert took < DEADLINE, took
    assert "Traceback" not in one_slot.log()
    record_summary(
        f"slot_after_504{'_removebg' if field == 'image_file' else ''}",
        {
            "deadline_s": DEADLINE,
            "answered_s": round(answered, 2),
            "next_s": round(took, 2),
            "megapixels": 47.6,
            "scans": 250,
            "upload_kb": round(len(slow_jpeg) / 1024),
        },
    )


def test_errors_echo_no_paths_and_no_huge_values(one_slot: load.Server, photo: bytes) -> None:
    huge = "a" * 1_000_000
    r = httpx.post(one_slot.url + "/api/v1/remove", data={"bg": huge}, timeout=30)
    assert r.status_code == 400 and len(r.content) < 1000 and "aaaaaaaa" not in r.text, r.text[:300]
    r = httpx.post(
        one_slot.url + "/api/v1/remove?bg=" + "b" * 8000, content=photo, headers={"Content-Type": "image/jpeg"}, timeout=30
    )
    assert r.status_code == 400 and "bbbbbbbb" not in r.text, r.text[:300]
    # Not a video: FFmpeg's message names the file it read; the client sees no server path.
    r = httpx.post(one_slot.url + "/api/v1/jobs", files={"file": ("c.mp4", b"\x00" * 4096, "video/mp4")}, timeout=30)
    assert r.status_code == 415, r.text
    assert str(one_slot.tmpdir) not in r.text and "mattekit-jobs" not in r.text, r.text


def test_a_foreign_host_and_a_cross_site_post_are_refused(one_slot: load.Server, photo: bytes) -> None:
    port = one_slot.url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.", "[::2]"):
        r = httpx.get(one_slot.url + "/api/v1/limits", headers={"Host": host})
        expected = 200 if host == "localhost." else 400
        assert r.status_code == expected, (host, r.status_code, r.text)
        if expected == 400:
            assert r.json()["error"]["code"] == "host_not_allowed" and "MATTEKIT_ALLOWED_HOSTS" in r.text
        page = httpx.get(one_slot.url + "/", headers={"Host": host})
        assert page.status_code == expected, host
    for host in (f"localhost:{port}", f"[::1]:{port}", "LOCALHOST", f"127.0.0.1:{port}"):
        assert httpx.get(one_slot.url + "/api/v1/limits", headers={"Host": host}).status_code == 200, host
    for probe in ("/healthz", "/readyz", "/metrics"):  # orchestrators address pods by IP
        assert httpx.get(one_slot.url + probe, headers={"Host": "10.1.2.3:5003"}).status_code == 200, probe

    upload = {"files": {"file": ("a.jpg", photo, "image/jpeg")}, "data": {"preset": "fast"}, "timeout": 30}
    for headers in (
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": f"http://localhost:{port}", "Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ):
        r = httpx.post(one_slot.url + "/api/v1/remove", headers=headers, **upload)
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_site", (headers, r.text)
        r = httpx.post(one_slot.url + "/v1.0/removebg", headers=headers, data={"size": "preview"})
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "cross_site", (headers, r.text)
    for headers in ({"Origin": one_slot.url, "Sec-Fetch-Site": "same-origin"}, {"Origin": one_slot.url}, {}):
        r = httpx.post(one_slot.url + "/api/v1/remove", headers=headers, **upload)
        assert r.status_code == 200, (headers, r.text[:300])

    docs = httpx.get(one_slot.url + "/docs")
    assert docs.status_code == 200 and docs.headers["x-frame-options"] == "DENY"
    policy = docs.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "'sha256-" in policy and "unsafe-eval" not in policy


@pytest.fixture(scope="module")
def keyed() -> Iterator[load.Server]:
    env = {
        "MATTEKIT_WORKERS": "1",
        "MATTEKIT_THREADS": "2",
        "MATTEKIT_API_KEYS": "key-one,key-two",
        "MATTEKIT_ALLOWED_HOSTS": "matte.example, Other.Example.:8080",
        "MATTEKIT_JOB_MAX_UPLOAD_BYTES": str(JOB_UPLOAD),
        "MATTEKIT_JOB_DISK_BYTES": str(JOB_DISK),
    }
    with load.serve(env) as srv:
        yield srv


JOB_UPLOAD, JOB_DISK = 1_000_000, 1_500_000  # the keyed server's jobs: room for one upload and a little more


def _wait_job(url: str, job_id: str, key: str) -> dict:
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        job = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}).json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_a_job_is_seen_only_by_its_own_key_and_keeps_no_uploads(keyed: load.Server, photo: bytes, tmp_path: Path) -> None:
    clip = _tiny_clip(tmp_path / "c.mp4")
    one, two = {"X-API-Key": "key-one"}, {"Authorization": "Bearer key-two"}
    r = httpx.post(
        keyed.url + "/api/v1/jobs",
        headers=one,
        data={"preset": "fast", "output": "composite"},
        timeout=30,
        files={"file": ("c.mp4", clip, "video/mp4"), "bg_file": ("bg.jpg", photo, "image/jpeg")},
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    # The background picture is decoded into the job's options: its file is gone before the job runs.
    assert not [p for p in keyed.temp_files() if p.endswith("/background")], keyed.temp_files()
    for method, path in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
        other = httpx.request(method, f"{keyed.url}/api/v1/jobs/{job_id}{path}", headers=two)
        assert other.status_code == 404 and other.json()["error"]["code"] == "not_found", (method, path, other.text)
    assert _wait_job(keyed.url, job_id, "key-one")["state"] == "done"
    mine = [p for p in keyed.temp_files() if job_id in p]
    assert [Path(p).name for p in mine if Path(p).name != job_id] == ["result.mp4"], mine  # no upload left
    assert httpx.get(f"{keyed.url}/api/v1/jobs/{job_id}/result", headers=one).status_code == 200
    assert httpx.get(f"{keyed.url}/api/v1/jobs/{job_id}/result", headers=two).status_code == 404

    r = httpx.post(
        keyed.url + "/api/v1/jobs", headers=one, data={"preset": "fast"}, timeout=30, files={"file": ("c.mp4", clip, "video/mp4")}
    )
    assert r.status_code == 202, r.text
    assert not [p for p in keyed.temp_files() if p.endswith("/background")]  # none made for a job without one
    assert _wait_job(keyed.url, r.json()["id"], "key-one")["state"] == "done"


def test_a_job_whose_output_outgrows_the_disk_budget_fails_and_leaves_nothing(keyed: load.Server, tmp_path: Path) -> None:
    import av
    import numpy as np

    path = tmp_path / "noise.mp4"  # noise: small as MPEG-4 at low quality, large as PNG frames
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"qscale": "31"}
        rng = np.random.default_rng(0)
        for _ in range(60):
            pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))
    clip = path.read_bytes()
    assert len(clip) < JOB_UPLOAD
    r = httpx.post(
        keyed.url + "/api/v1/jobs",
        headers={"X-API-Key": "key-two"},
        timeout=30,
        data={"preset": "fast", "output": "png-zip"},
        files={"file": ("n.mp4", clip, "video/mp4")},
    )
    assert r.status_code == 202, r.text
    job = _wait_job(keyed.url, r.json()["id"], "key-two")
    assert job["state"] == "failed" and job["error"]["code"] == "no_space", job
    assert "MATTEKIT_JOB_DISK_BYTES" in job["error"]["message"]
    assert job["progress"]["frames_done"] < job["progress"]["frames_total"], job  # stopped part-way
    assert not [p for p in keyed.temp_files() if r.json()["id"] in p and not p.endswith(r.json()["id"])]


def test_configured_hosts_are_answered_and_keys_make_cross_site_checks_moot(keyed: load.Server) -> None:
    for host in ("matte.example", "MATTE.example:443", "other.example:8080", "localhost"):
        r = httpx.get(keyed.url + "/api/v1/limits", headers={"Host": host, "X-API-Key": "key-two"})
        assert r.status_code == 200, (host, r.text)
    assert httpx.get(keyed.url + "/api/v1/limits", headers={"Host": "evil.example", "X-API-Key": "key-two"}).status_code == 400
    # A page on another site cannot send the key: its form post is a 401, not a cross_site refusal.
    r = httpx.post(keyed.url + "/api/v1/remove", headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 401, r.text


# -- the jobs folder, in-process --------------------------------------------------------------------
def test_the_jobs_folder_is_private_bounded_and_trusts_no_record(tmp_path: Path) -> None:
    import json
    import os

    from mattekit.service.errors import NoSpace, NotFound
    from mattekit.service.jobs.store import JobStore
    from mattekit.service.settings import JobSettings

    store = JobStore(JobSettings(folder=str(tmp_path / "shared" / "jobs"), max_upload_bytes=1000, disk_bytes=5000))
    try:
        store.open()
        assert (os.stat(store.root).st_mode & 0o777) == 0o700
        job = store.new("composite")
        assert (os.stat(job.folder).st_mode & 0o777) == 0o700
        store.refuse_if_full()  # empty: room for an upload
        (job.folder / "result.mp4").write_bytes(b"x" * 4200)
        with pytest.raises(NoSpace, match="MATTEKIT_JOB_DISK_BYTES"):
            store.refuse_if_full()
        # A record written by someone else naming another file is not followed.
        other = store.root / "someoneelse"
        other.mkdir()
        record = {
            "id": "someoneelse",
            "state": "done",
            "output": "composite",
            "progress": {},
            "created": 0,
            "finished": 1e12,
            "result_name": "../../../../etc/passwd",
        }
        (other / "job.json").write_text(json.dumps(record))
        with pytest.raises(NotFound):
            store.get("someoneelse")
        (other / "job.json").write_text(json.dumps({**record, "result_name": "result.mp4"}))
        assert store.get("someoneelse").result == other / "result.mp4"
        (other / "job.json").write_text(json.dumps({**record, "output": "../x"}))
        with pytest.raises(NotFound):
            store.get("someoneelse")
    finally:
        store.close()
