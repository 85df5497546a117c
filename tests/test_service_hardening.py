"""Hostile clients against the real server on 127.0.0.1 (issue 25, the service side): uploads that
stall, with every hostile input made here by the test. Each server is small (capacity 1, a short
deadline) so that each hole would show with small files and in seconds."""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import load  # noqa: E402  (bench/load.py: a real server with its own TMPDIR)

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
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=B\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _stalled_upload(url: str, path: str, wait: float) -> tuple[int, float, int]:
    """Announce DECLARED bytes, send SENT (or until answered), then stall; (status, seconds, sent).

    Status 0: no answer within ``wait`` seconds of stalling.
    """
    start = time.monotonic()
    with contextlib.closing(_connect(url)) as s:
        field = "image_file" if path.startswith("/v1.0/") else "file"
        s.sendall(_head(path, DECLARED) + b"--B\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"a\"\r\n\r\n"
                  % field.encode())
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

    def __enter__(self) -> "_PeakRss":
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
    env = {"MATTEKIT_WORKERS": "1", "MATTEKIT_QUEUE_SIZE": "0", "MATTEKIT_THREADS": "2",
           "MATTEKIT_REQUEST_TIMEOUT": str(DEADLINE), "MATTEKIT_MAX_UPLOAD_BYTES": str(DECLARED),
           "MATTEKIT_JOB_WORKERS": "1", "MATTEKIT_JOB_QUEUE": "0", "MATTEKIT_JOB_UPLOAD_TIMEOUT": str(DEADLINE),
           "MATTEKIT_JOB_MAX_UPLOAD_BYTES": str(DECLARED)}
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
def test_stalled_still_uploads_are_refused_or_cut_off_and_hold_no_memory(
        one_slot: load.Server, photo: bytes, path: str) -> None:
    warm = httpx.post(one_slot.url + "/api/v1/remove", files={"file": ("a.jpg", photo, "image/jpeg")},
                      data={"preset": "fast"}, timeout=30)
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
    # The slot is free again at once.
    ok = httpx.post(one_slot.url + "/api/v1/remove", files={"file": ("a.jpg", photo, "image/jpeg")},
                    data={"preset": "fast"}, timeout=30)
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
    give_up = time.monotonic() + 5
    while (_fds(one_slot) > fds or one_slot.temp_files()) and time.monotonic() < give_up:
        time.sleep(0.1)
    assert _fds(one_slot) <= fds and not one_slot.temp_files(), (fds, _fds(one_slot), one_slot.temp_files())
    # The slot is free again: a new upload is admitted (and, being no video, refused as such).
    r = httpx.post(one_slot.url + "/api/v1/jobs", files={"file": ("c.mp4", b"not a video", "video/mp4")}, timeout=30)
    assert r.status_code == 415, r.text
