"""A real server on 127.0.0.1 under more clients than it can hold: it sheds load, stays fast to
probe, keeps its memory and leaves no temp files.

Every bound here is derived from figures measured in the same run (the single-client time of
one request, the memory one request needs), not fixed numbers, so the test means the same on a
quiet laptop and on a busy 2-core CI runner. The load generator is bench/load.py's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import load

ROOT = Path(__file__).resolve().parents[1]

WORKERS = 2
QUEUE = 2
CLIENTS = 4 * (WORKERS + QUEUE)  # four times what the server holds: it must shed, not stall
FIELDS = {"preset": "fast"}
# The machine is shared (other jobs on the same cores): timings measured a moment apart can differ
# by this factor without anything being wrong with the server.
NOISE = 2.0


@pytest.fixture(scope="module")
def server():
    env = {"MATTEKIT_WORKERS": str(WORKERS), "MATTEKIT_QUEUE_SIZE": str(QUEUE)}
    with load.serve(env) as srv:
        yield srv


@pytest.fixture(scope="module")
def images():
    return load.sample_images((256, 384))


def test_saturated_server_sheds_load_and_keeps_memory(server: load.Server, images: list[bytes]) -> None:
    rss_ready = server.rss_mb()
    single = load.run_load(server.url, 1, 60, images, fields=FIELDS, max_requests=6, server_pid=server.pid)
    assert single["ok"] == 6, single["status"]
    # One request's own time, queueing excluded: the slowest of the mix, alone on the server.
    t_one = single["latency_s"]["max"]
    # What one request in flight costs in memory (decode + model + compose + encode buffers).
    m_one = max(m for _, m in single["rss_mb"]) - rss_ready
    threads_before = load.threads_of(server.pid)

    seconds = max(8.0, 6 * t_one)
    busy = load.run_load(server.url, CLIENTS, seconds, images, fields=FIELDS, max_requests=500, server_pid=server.pid)
    # The machine may have got busier meanwhile (other jobs): measure one request alone again and
    # take the slower of the two, so the bounds follow the machine, not the moment.
    again = load.run_load(server.url, 1, 60, images, fields=FIELDS, max_requests=2)
    t_one = max(t_one, again["latency_s"]["max"] or 0.0)
    status = busy["status"]
    print(
        f"\nt_one {t_one:.2f} s, m_one {m_one:.0f} MiB, RSS ready {rss_ready:.0f} MiB; {CLIENTS} clients: "
        f"{status}, p99 {busy['latency_s']['p99']:.2f} s, 503 p99 {busy['busy_latency_s']['p99']:.2f} s, "
        f"healthz p99 {busy['healthz_s']['p99']:.3f} s, RSS max {max(m for _, m in busy['rss_mb']):.0f} MiB"
    )
    assert busy["server_errors"] == 0, f"5xx other than 503: {status}\n{server.log()[-3000:]}"
    assert set(status) <= {"200", "503"}, f"timeouts, connection errors or other codes: {status}"
    assert status.get("503", 0) > 0, f"{CLIENTS} clients never filled {WORKERS + QUEUE} slots: {status}"
    assert busy["ok"] >= WORKERS, status

    # An accepted request waits for at most WORKERS running + QUEUE - 1 queued requests and then
    # runs itself: WORKERS + QUEUE requests' worth of CPU work. While the CPU is the limit (no
    # lock serialising the workers), the server gets through that at no less than single-client
    # speed, so its latency is at most (WORKERS + QUEUE) * t_one, times the machine's noise.
    bound = (WORKERS + QUEUE) * t_one * NOISE
    assert busy["latency_s"]["p99"] <= bound, (busy["latency_s"], t_one, bound)
    # Excess load is answered at once: a 503 costs less than doing one request's work.
    assert busy["busy_latency_s"]["p99"] <= t_one * NOISE, (busy["busy_latency_s"], t_one)
    # /healthz never waits behind inference.
    assert busy["healthz_failures"] == 0
    assert busy["healthz_s"]["p99"] <= t_one * NOISE, (busy["healthz_s"], t_one)

    # Memory: after the first half of the run every worker has held the largest image, so any
    # growth in the second half is a leak. Allow one request's working set (allocator slack);
    # leaking even a tenth of that per request would exceed it over the run's requests.
    half = busy["seconds"] / 2
    first = max(m for t, m in busy["rss_mb"] if t <= half)
    second = max(m for t, m in busy["rss_mb"] if t > half)
    assert second - first <= max(m_one, 16.0), (first, second, m_one)
    assert server.rss_mb() <= rss_ready + (WORKERS + QUEUE) * max(m_one, 16.0) * NOISE

    assert server.temp_files() == [], server.temp_files()
    # Worker threads are a fixed pool: none started per request.
    assert load.threads_of(server.pid) <= threads_before + WORKERS
