"""Video jobs end to end against the real server (uvicorn subprocess): upload → progress → result,
cancel, expiry, and the limits, on the real Carphone clip fetched by tests/samples.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from live_server import live_server
from samples import sample_path

from mattekit.options import Options
from mattekit.service.jobs.webhooks import Delivery, deliver, verify
from mattekit.video import VideoOptions, process_video, read_frames

TTL = 4.0
SECRET = "test-webhook-secret"
ENV = {
    "MATTEKIT_JOB_TTL": str(TTL),
    "MATTEKIT_JOB_MAX_SECONDS": "3",
    "MATTEKIT_JOB_MAX_UPLOAD_BYTES": str(1024 * 1024),
    "MATTEKIT_THREADS": "2",
    "MATTEKIT_WEBHOOK_HOSTS": "127.0.0.1",
    "MATTEKIT_WEBHOOK_SECRET": SECRET,
    "MATTEKIT_WEBHOOK_BACKOFF": "0.1",
}


@pytest.fixture(scope="module")
def server():
    with live_server(ENV) as base, httpx.Client(base_url=base, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def clip() -> Path:
    return sample_path("carphone")  # 4.0 s: over the server's 3 s limit unless cut with start/end


def _wait(client: httpx.Client, job_id: str, until: set[str], timeout: float = 180) -> list[dict]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        seen.append(r.json())
        if seen[-1]["state"] in until:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {seen[-1]['state']} after {timeout} s")


def test_job_runs_to_a_transparent_webm_then_expires(server, clip, tmp_path):
    fields = {"output": "webm", "preset": "fast", "end": "0.7"}
    r = server.post("/api/v1/jobs", data=fields, files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running") and r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["progress"]["frames_total"] == 21  # known from the start
    seen = _wait(server, job["id"], {"done", "failed"})
    final = seen[-1]
    assert final["state"] == "done", final
    done_counts = [s["progress"]["frames_done"] for s in seen]
    assert done_counts == sorted(done_counts) and final["progress"]["frames_done"] == 21
    assert final["progress"]["percent"] == 100.0

    result = server.get(final["result_url"])
    assert result.status_code == 200 and result.headers["content-type"] == "video/webm"
    assert final["filename"] == f"video-{job['id']}.webm"  # the page's download name, from the outputs table
    got = tmp_path / "job.webm"
    got.write_bytes(result.content)
    frames = list(read_frames(got))
    # The same clip through the library: the server adds nothing and loses nothing.
    local = tmp_path / "local.webm"
    process_video(clip, local, Options(preset="fast"), VideoOptions(end=0.7))
    expected = list(read_frames(local))
    assert len(frames) == len(expected) == 21 and frames[0].shape == (144, 176, 4)
    diff = np.mean([np.abs(a[:, :, 3].astype(int) - b[:, :, 3]).mean() for a, b in zip(frames, expected)])
    assert diff < 1.0, diff

    time.sleep(TTL + 2)  # past the TTL (the sweeper runs every TTL/4)
    assert server.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    gone = server.get(final["result_url"])
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_cancel_a_running_job(server, clip):
    r = server.post("/api/v1/jobs", data={"output": "mov", "end": "2.9"}, files={"file": ("clip.mp4", clip.read_bytes())})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    seen = _wait(server, job_id, {"running"})
    while seen[-1]["progress"]["frames_done"] < 2:  # really under way
        seen = _wait(server, job_id, {"running", "done"})
        time.sleep(0.05)
    d = server.delete(f"/api/v1/jobs/{job_id}")
    assert d.status_code == 200 and d.json()["state"] == "cancelled"
    state = server.get(f"/api/v1/jobs/{job_id}").json()
    assert state["state"] == "cancelled" and state["progress"]["frames_done"] < 87
    res = server.get(f"/api/v1/jobs/{job_id}/result")
    assert res.status_code == 409 and res.json()["error"]["code"] == "not_ready"
    # The worker is free again: a new job completes.
    r = server.post(
        "/api/v1/jobs",
        data={"output": "png-zip", "end": "0.2", "preset": "fast"},
        files={"file": ("clip.mp4", clip.read_bytes())},
    )
    assert _wait(server, r.json()["id"], {"done", "failed"})[-1]["state"] == "done"


@pytest.mark.parametrize(
    "fields,body,status,code",
    [
        ({}, "clip", 422, "too_large"),  # 4 s > the 3 s limit
        ({"end": "1"}, "noise", 415, "invalid_input"),
        ({"end": "1"}, "huge", 413, "upload_too_large"),
        ({"output": "gif"}, "clip", 400, "invalid_option"),
        ({"crop": "true"}, "clip", 400, "invalid_option"),
        ({"output": "composite"}, "clip", 400, "invalid_option"),  # no background given
        ({"start": "2", "end": "1"}, "clip", 400, "invalid_option"),
        ({"end": "1", "subject": "general"}, "clip", 400, "invalid_option"),  # video is for people only (issue 27)
    ],
)
def test_limits_and_bad_requests_are_clear(server, clip, fields, body, status, code):
    rng = np.random.default_rng(1)
    data = {
        "clip": clip.read_bytes(),
        "noise": rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes(),
        "huge": rng.integers(0, 256, 1_200_000, dtype=np.uint8).tobytes(),
    }[body]
    r = server.post("/api/v1/jobs", data=fields, files={"file": ("clip.mp4", data)})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_unknown_job_is_404(server):
    r = server.get("/api/v1/jobs/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_the_page_offers_the_outputs_the_table_labels():
    """The page's video <select> lists the outputs table's rows that have a label, in its order."""
    import re

    from mattekit.video import OUTPUTS

    page = (Path(__file__).resolve().parents[1] / "src/mattekit/service/static/index.html").read_text()
    select = re.search(r'<select id="video-output">(.*?)</select>', page, re.S).group(1)
    offered = re.findall(r'<option value="([^"]+)"[^>]*>([^<]+)</option>', select)
    labelled = [(name, spec.label) for name, spec in OUTPUTS.items() if spec.label]
    assert sorted(offered) == sorted(labelled)


# -- webhooks and the status URL ---------------------------------------------------------------------
class Receiver:
    """A webhook receiver on loopback: records each POST; answers ``statuses`` in turn, then 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes, str]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.posts.append((dict(self.headers), body, self.path))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_a_webhook_arrives_once_signed_and_status_url_is_given(server, clip, receiver):
    fields = {"output": "webm", "preset": "fast", "end": "0.3", "webhook_url": receiver.url + "/hook?job=1"}
    r = server.post("/api/v1/jobs", data=fields, files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status_url"] == f"/api/v1/jobs/{job['id']}" == r.headers["location"]
    final = _wait(server, job["id"], {"done", "failed"})[-1]
    assert final["state"] == "done", final
    give_up = time.monotonic() + 30
    while not receiver.posts and time.monotonic() < give_up:
        time.sleep(0.05)
    time.sleep(1.0)  # a second delivery, were there one, would have come by now
    assert len(receiver.posts) == 1, receiver.posts
    headers, body, path = receiver.posts[0]
    assert path == "/hook?job=1" and headers["Content-Type"] == "application/json"
    assert verify(SECRET, body, headers["X-Mattekit-Signature"])
    assert not verify("another secret", body, headers["X-Mattekit-Signature"])
    sent = json.loads(body)
    assert sent["id"] == job["id"] and sent["state"] == "done" and headers["X-Mattekit-Event"] == "job.done"
    assert sent["result_url"] == final["result_url"] and server.get(sent["result_url"]).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",  # not in MATTEKIT_WEBHOOK_HOSTS
        "http://localhost:9/hook",  # a name for loopback is not the allowed name
        "ftp://127.0.0.1/hook",
        "http://user:pw@127.0.0.1/hook",
    ],
)
def test_a_webhook_to_a_host_not_allowed_is_refused_at_submission(server, clip, url):
    data = {"output": "webm", "end": "0.3", "webhook_url": url}
    r = server.post("/api/v1/jobs", data=data, files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "webhook_refused", r.text


def test_a_webhook_is_retried_with_backoff_then_given_up(receiver):
    receiver.statuses = [503, 502]  # two failures, then 200
    waits: list[float] = []
    delivery = Delivery(receiver.url + "/hook", b'{"id":"x"}', "job.done", "x")
    assert deliver(delivery, SECRET, attempts=5, backoff=0.5, sleep=waits.append)
    assert waits == [0.5, 1.0] and len(receiver.posts) == 3
    assert len({h["X-Mattekit-Delivery"] for h, _, _ in receiver.posts}) == 1  # one delivery, three attempts
    receiver.statuses = [404]  # the receiver says no: not retried
    assert not deliver(delivery, SECRET, attempts=5, backoff=0.5, sleep=waits.append)
    assert len(receiver.posts) == 4
    receiver.statuses = [500] * 3
    assert not deliver(delivery, SECRET, attempts=3, backoff=0.5, sleep=waits.append)
    assert len(receiver.posts) == 7


# -- video jobs on a Ray cluster: two API replicas, one cluster -------------------------------------
# The same in every process of a test cluster (head, workers, replicas); the AWS variables are the
# credentials of the local S3 server (moto) the object-storage test keeps its files in.
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# A replica is up for jobs once it answers: the jobs' model runs in the cluster's workers, so its
# own (stills) model loading is not waited for.
UP = "/healthz"


def _tree(pid: int) -> set[int]:
    """``pid`` and every process below it now (Ray's workers leave the process group)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo.extend(children.get(p, []))
    return found


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory) -> Iterator[str]:
    """A one-node Ray cluster on loopback (2 CPUs, capped memory); yields its address. Only the
    processes it started are ended afterwards."""
    pytest.importorskip("ray", reason="video jobs on a cluster need the cluster extra: pip install 'mattekit[cluster]'")
    from live_server import free_port

    port = free_port()
    temp = Path(f"/tmp/mkrayj{os.getpid()}")  # Ray's socket paths must stay short
    log = tmp_path_factory.mktemp("ray") / "head.log"
    ray = Path(sys.executable).parent / "ray"
    env = {**os.environ, **RAY_ENV}
    head = subprocess.Popen(
        [str(ray), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--include-dashboard=false", "--memory=2000000000", "--object-store-memory=500000000",
         f"--temp-dir={temp}", "--disable-usage-stats", "--block"],
        env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while (
            "1 node_"
            not in subprocess.run(
                [str(ray), "status", f"--address={address}"], env=env, capture_output=True, text=True, timeout=60
            ).stdout
        ):
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(1)
        yield address
    finally:
        pids = _tree(head.pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            time.sleep(3)
        head.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.cluster
def test_two_replicas_share_jobs_on_a_ray_cluster(ray_head, clip, receiver, tmp_path):
    """A job submitted to replica A is polled, fetched and deleted through replica B; A is
    killed right after accepting it and the job goes on; a replica started afterwards sees it;
    its webhook arrives once, signed; progress counts the chunks done across the cluster."""
    from live_server import start_server

    shared = tmp_path / "jobs"
    env = {
        **RAY_ENV,
        **{k: v for k, v in ENV.items() if k != "MATTEKIT_JOB_TTL"},
        "MATTEKIT_RAY_ADDRESS": ray_head,
        "MATTEKIT_JOB_DIR": str(shared),
        "MATTEKIT_JOB_CHUNK_SECONDS": "0.25",
        "MATTEKIT_THREADS": "1",
    }
    with start_server(env=env, ready_path=UP) as (b_url, _), httpx.Client(base_url=b_url, timeout=60) as b:
        with start_server(env=env, ready_path=UP) as (a_url, a_proc):
            fields = {"output": "webm", "preset": "fast", "end": "0.8", "webhook_url": receiver.url + "/done"}
            r = httpx.post(a_url + "/api/v1/jobs", data=fields, files={"file": ("c.mp4", clip.read_bytes())}, timeout=60)
            assert r.status_code == 202, r.text
            job = r.json()
            a_proc.kill()  # the replica that accepted it dies at once
        seen = _wait(b, job["id"], {"done", "failed"}, timeout=400)
        final = seen[-1]
        assert final["state"] == "done", str(final)  # a str: pytest would shorten a dict
        assert final["progress"]["chunks_total"] == 4 and final["progress"]["chunks_done"] == 4, final
        chunk_counts = [s["progress"].get("chunks_done", 0) for s in seen]
        assert chunk_counts == sorted(chunk_counts)
        with start_server(env=env, ready_path=UP) as (c_url, _):  # a replica started since knows the job too
            assert httpx.get(c_url + job["status_url"]).json()["state"] == "done"
        result = b.get(final["result_url"])
        assert result.status_code == 200 and result.headers["content-type"] == "video/webm"
        got = tmp_path / "job.webm"
        got.write_bytes(result.content)
        frames = list(read_frames(got))
        assert len(frames) == final["progress"]["frames_total"] == final["progress"]["frames_done"] == 24  # 0.8 s at 29.97 fps
        assert frames[0].shape == (144, 176, 4)
        give_up = time.monotonic() + 30
        while not receiver.posts and time.monotonic() < give_up:
            time.sleep(0.1)
        time.sleep(1.0)
        assert len(receiver.posts) == 1, receiver.posts
        headers, body, _ = receiver.posts[0]
        assert verify(SECRET, body, headers["X-Mattekit-Signature"]) and json.loads(body)["id"] == job["id"]
        assert b.delete(f"/api/v1/jobs/{job['id']}").json()["state"] == "deleted"
        assert b.get(job["status_url"]).status_code == 404
        assert not (shared / job["id"]).exists()

        # MATTEKIT_JOB_TIMEOUT holds on the cluster: the replica that sees a job past it stops it.
        long = {"output": "mov", "end": "2.9"}
        hooked = {**long, "webhook_url": receiver.url + "/failed"}
        first = b.post("/api/v1/jobs", data=hooked, files={"file": ("c.mp4", clip.read_bytes())}).json()
        with (
            start_server(env={**env, "MATTEKIT_JOB_TIMEOUT": "1"}, ready_path=UP) as (d_url, _),
            httpx.Client(base_url=d_url) as d,
        ):
            stopped = _wait(d, first["id"], {"done", "failed", "cancelled"}, timeout=200)[-1]
        assert stopped["state"] == "failed" and stopped["error"]["code"] == "deadline_exceeded", stopped
        assert b.get(first["status_url"]).json()["state"] == "failed"  # every replica sees it so
        give_up = time.monotonic() + 30
        while len(receiver.posts) < 2 and time.monotonic() < give_up:
            time.sleep(0.1)
        headers, body, path = receiver.posts[1]  # a failure is told too, once
        sent = json.loads(body)
        assert path == "/failed" and headers["X-Mattekit-Event"] == "job.failed" and sent["id"] == first["id"]
        assert sent["error"]["code"] == "deadline_exceeded" and verify(SECRET, body, headers["X-Mattekit-Signature"])
        # A DELETE through another replica cancels a running job there and deletes its files.
        second = b.post("/api/v1/jobs", data=long, files={"file": ("c.mp4", clip.read_bytes())}).json()
        _wait(b, second["id"], {"running"}, timeout=200)
        with start_server(env=env, ready_path=UP) as (c_url, _):
            assert httpx.delete(c_url + second["status_url"]).json()["state"] == "cancelled"
        after = b.get(second["status_url"]).json()
        assert after["state"] == "cancelled", after
        assert b.get(f"{second['status_url']}/result").status_code == 409
        assert not any((shared / second["id"]).iterdir())
        assert len(receiver.posts) == 2  # a cancelled job sends none
        # MATTEKIT_JOB_DISK_BYTES holds while a job writes: a replica that sees the files past it stops it.
        third = b.post("/api/v1/jobs", data=long, files={"file": ("c.mp4", clip.read_bytes())}).json()
        _wait(b, third["id"], {"running"}, timeout=200)
        with start_server(env={**env, "MATTEKIT_JOB_DISK_BYTES": "1"}, ready_path=UP) as (e_url, _):
            full = httpx.get(e_url + third["status_url"]).json()
        assert full["state"] == "failed" and full["error"]["code"] == "no_space", full
        assert b.get(third["status_url"]).json()["state"] == "failed"


@pytest.fixture
def s3_bucket() -> Iterator[str]:
    """A local S3 server (moto) on loopback with an empty bucket; yields a URI pyarrow opens."""
    pafs = pytest.importorskip("pyarrow.fs")
    moto = Path(sys.executable).parent / "moto_server"
    if not moto.exists():
        pytest.skip("the object-storage test needs moto's server: pip install 'moto[server]'")
    from live_server import free_port

    port = free_port()
    server = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and server.poll() is None, "moto_server did not start"
                time.sleep(0.3)
        with pytest.MonkeyPatch.context() as mp:
            for name, value in RAY_ENV.items():
                mp.setenv(name, value)
            fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True)
            fs.create_dir("jobs")
        yield f"s3://jobs/mattekit?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.cluster
def test_jobs_on_a_cluster_keep_their_files_in_object_storage(ray_head, clip, s3_bucket):
    """No shared folder: each replica's own, and the uploads and results in S3 (a local moto
    server); a job submitted to one replica is fetched and deleted through the other."""
    import pyarrow.fs as pafs
    from live_server import start_server

    env = {**RAY_ENV, "MATTEKIT_RAY_ADDRESS": ray_head, "MATTEKIT_JOB_STORAGE": s3_bucket}
    env.update({k: v for k, v in ENV.items() if k != "MATTEKIT_JOB_TTL"}, MATTEKIT_JOB_CHUNK_SECONDS="0.25")
    with start_server(env=env, ready_path=UP) as (a_url, _), start_server(env=env, ready_path=UP) as (b_url, _):
        fields = {"output": "webm", "preset": "fast", "end": "0.5"}
        r = httpx.post(a_url + "/api/v1/jobs", data=fields, files={"file": ("c.mp4", clip.read_bytes())}, timeout=60)
        assert r.status_code == 202, r.text
        job = r.json()
        with httpx.Client(base_url=b_url, timeout=60) as b:
            final = _wait(b, job["id"], {"done", "failed"}, timeout=400)[-1]
            assert final["state"] == "done", str(final)  # a str: pytest would shorten a dict
            result = b.get(final["result_url"])
            assert result.status_code == 200 and result.headers["content-type"] == "video/webm"
            assert int(result.headers["content-length"]) == len(result.content) > 0
            fs, base = pafs.FileSystem.from_uri(s3_bucket)
            stored = fs.get_file_info(pafs.FileSelector(f"{base}/{job['id']}"))
            assert [Path(f.path).name for f in stored] == ["result.webm"]  # the upload is gone, the result kept
            assert b.delete(job["status_url"]).json()["state"] == "deleted"
            assert b.get(job["status_url"]).status_code == 404
            assert fs.get_file_info(pafs.FileSelector(f"{base}/{job['id']}", allow_not_found=True)) == []
