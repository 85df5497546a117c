"""Load and soak: a real server on 127.0.0.1, N clients for T seconds, bounded in count and time.

    .venv/bin/python -m bench.load                       # 1, then 4, 16 and 32 clients, then a soak
    .venv/bin/python -m bench.load --clients 1,4 --seconds 10 --soak-requests 300   # quick look

Starts ``uvicorn app:app`` on a free loopback port as a subprocess (its own process, so its RSS is
the service's), waits for ``/readyz``, then runs each phase and writes ``bench/out/load.json`` and
``bench/out/load.md`` (the README "Reliability" table). Traffic goes to 127.0.0.1 only; every loop
stops after ``seconds`` or ``max_requests``, whichever comes first.

Reusable pieces (bench/speed.py, tests/test_load.py):

- :func:`run_load` ``(url, clients, seconds, images) -> dict``: throughput, p50/p95/p99, errors by
  status, /healthz latency while loaded, server RSS over time (when ``server_pid`` is given).
- :func:`serve` (context manager): a real server on a free loopback port; yields a :class:`Server`.
- :func:`sample_images`: real photos (tests/samples.py) at a mix of sizes, JPEG-encoded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
LOOPBACK = "127.0.0.1"
MAX_SECONDS = 600  # no phase runs longer than this, whatever it is asked
MAX_REQUESTS = 100_000


# -- the server --------------------------------------------------------------------------------
@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    tmpdir: Path  # the server's TMPDIR: requests may leave nothing in it
    log_path: Path
    baseline: frozenset[str] = frozenset()  # what was there when it became ready (ORT's .ses id file)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def temp_files(self) -> list[str]:
        """Files in the server's TMPDIR that were not there when it became ready."""
        return sorted(
            str(p.relative_to(self.tmpdir))
            for p in self.tmpdir.rglob("*")
            if str(p.relative_to(self.tmpdir)) not in self.baseline
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def rss_mb(pid: int) -> float:
    """Resident set size of a process from /proc (no psutil needed)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _live_server() -> Any:
    """tests/live_server.py: the one way this project starts a server on a free loopback port."""
    from tests import live_server

    return live_server


@contextlib.contextmanager
def serve(env: Mapping[str, str] | None = None, *, ready_timeout: float = 180.0, wait_ready: bool = True) -> Iterator[Server]:
    """``uvicorn app:app`` on a free 127.0.0.1 port with its own TMPDIR; stopped on exit."""
    work = Path(tempfile.mkdtemp(prefix="mattekit-load-"))
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    log_path = work / "server.log"
    full_env = {"TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1", **(env or {})}
    live = _live_server()
    command = [*live.UVICORN, "--log-level", "info", "--timeout-graceful-shutdown", "5"]
    try:
        with live.start_server(
            command,
            env=full_env,
            log_path=log_path,
            ready_timeout=ready_timeout,
            ready_path="/readyz" if wait_ready else "/healthz",
            stop_timeout=15,
        ) as (url, proc):
            server = Server(url, proc, tmpdir, log_path)
            server.baseline = frozenset(str(p.relative_to(tmpdir)) for p in tmpdir.rglob("*"))
            yield server
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


# -- the images --------------------------------------------------------------------------------
def sample_images(sides: Sequence[int] = (256, 512, 1024)) -> list[bytes]:
    """A real photo of a person (scikit-image's astronaut, via tests/samples.py) as JPEG at each
    longer side; used in turn by every client, so the load mixes small and large requests."""
    from PIL import Image
    from tests.samples import sample_path

    photo = Image.open(sample_path("astronaut")).convert("RGB")
    out = []
    for side in sides:
        buf = io.BytesIO()
        photo.resize((side, side), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


# -- the load ----------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
    return ordered[k]


def _summary(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "n": len(values),
        "mean": statistics.fmean(values) if values else None,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


async def _load(
    url: str,
    clients: int,
    seconds: float,
    images: Sequence[bytes],
    *,
    fields: Mapping[str, str],
    max_requests: int,
    server_pid: int | None,
    timeout: float,
) -> dict[str, Any]:
    import httpx

    seconds = min(seconds, MAX_SECONDS)
    max_requests = min(max_requests, MAX_REQUESTS)
    records: list[tuple[float, float, int]] = []  # (start offset, latency, status; 0 = no answer)
    health: list[float] = []
    failures: list[str] = []
    rss: list[tuple[float, float]] = []
    issued = 0
    start = time.perf_counter()
    stop_at = start + seconds
    done = asyncio.Event()

    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as http:

        async def client(i: int) -> None:
            nonlocal issued
            k = i
            while time.perf_counter() < stop_at and issued < max_requests:
                issued += 1
                data = images[k % len(images)]
                k += 1
                t0 = time.perf_counter()
                try:
                    r = await http.post("/api/v1/remove", files={"file": ("x.jpg", data, "image/jpeg")}, data=dict(fields))
                    status = r.status_code
                    failure = ""
                except httpx.TimeoutException:
                    status, failure = -1, "timeout"
                except httpx.HTTPError as exc:
                    status, failure = 0, f"connection error ({type(exc).__name__})"
                records.append((t0 - start, time.perf_counter() - t0, status))
                if failure:
                    failures.append(failure)
                if status == 503:  # a polite client waits a little, as Retry-After asks
                    await asyncio.sleep(min(0.5, max(0.0, stop_at - time.perf_counter())))

        async def prober() -> None:
            # /healthz every 100 ms while loaded: it must not wait behind inference.
            async with httpx.AsyncClient(base_url=url, timeout=timeout) as probe:
                while not done.is_set():
                    t0 = time.perf_counter()
                    try:
                        await probe.get("/healthz")
                        health.append(time.perf_counter() - t0)
                    except httpx.HTTPError:
                        health.append(float("inf"))
                    if server_pid is not None:
                        with contextlib.suppress(OSError):
                            rss.append((time.perf_counter() - start, rss_mb(server_pid)))
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(done.wait(), 0.1)

        probe_task = asyncio.create_task(prober())
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
        done.set()
        await probe_task

    by_status: dict[str, int] = {}
    for key in [str(st) for _, _, st in records if st > 0] + failures:
        by_status[key] = by_status.get(key, 0) + 1
    ok = [lat for _, lat, st in records if st == 200]
    busy = [lat for _, lat, st in records if st == 503]
    return {
        "clients": clients,
        "seconds": elapsed,
        "requests": len(records),
        "ok": len(ok),
        "throughput_rps": len(ok) / elapsed if elapsed else 0.0,
        "latency_s": _summary(ok),
        "busy_latency_s": _summary(busy),
        "status": dict(sorted(by_status.items())),
        "server_errors": sum(1 for _, _, st in records if st >= 500 and st != 503),
        "healthz_s": _summary([h for h in health if h != float("inf")]),
        "healthz_failures": sum(1 for h in health if h == float("inf")),
        "rss_mb": rss,
    }


def run_load(
    url: str,
    clients: int,
    seconds: float,
    images: Sequence[bytes],
    *,
    fields: Mapping[str, str] | None = None,
    max_requests: int = MAX_REQUESTS,
    server_pid: int | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """``clients`` concurrent clients POSTing ``images`` in turn to ``url`` for ``seconds``.

    ``url`` must be a loopback address. Returns throughput (successful requests per second),
    latency percentiles of successes and of 503s, counts by status, /healthz latency while
    loaded and, with ``server_pid``, the server's RSS over time as ``(seconds, MiB)`` pairs.
    """
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname
    if host not in (LOOPBACK, "localhost", "::1"):
        raise ValueError(f"load is generated against loopback only, not {host!r}")
    return asyncio.run(
        _load(
            url, clients, seconds, images, fields=fields or {}, max_requests=max_requests, server_pid=server_pid, timeout=timeout
        )
    )


# -- the report --------------------------------------------------------------------------------
def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v * 1000:.0f} ms"


def _other(status: Mapping[str, int]) -> str:
    """Answers other than 200 and 503 (other 5xx, timeouts, dropped connections), by kind."""
    other = {k: v for k, v in status.items() if k not in ("200", "503")}
    return ", ".join(f"{v} {k}" for k, v in sorted(other.items())) or "0"


def markdown(report: dict[str, Any]) -> str:
    s = report["server"]
    single = report["phases"][0]["throughput_rps"] or 1e-9
    lines = [
        f"Server: `uvicorn app:app` on 127.0.0.1, {s['workers']} workers, queue {s['queue_size']}, "
        f"{report['cores']} cores; images: {', '.join(report['image_sides'])} px JPEG (real photo), "
        f"options `{report['fields'] or 'defaults'}`.",
        "",
        "| clients | requests | ok/s | vs 1 client | p50 | p95 | p99 | 503s (p99) | other failures | /healthz p99 | RSS after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in report["phases"]:
        busy = p["status"].get("503", 0)
        lines.append(
            f"| {p['clients']} | {p['requests']} | {p['throughput_rps']:.2f} | {p['throughput_rps'] / single:.2f}× "
            f"| {_ms(p['latency_s']['p50'])} | {_ms(p['latency_s']['p95'])} | {_ms(p['latency_s']['p99'])} "
            f"| {busy} ({_ms(p['busy_latency_s']['p99'])}) | {_other(p['status'])} "
            f"| {_ms(p['healthz_s']['p99'])} | {p['rss_after_mb']:.0f} MiB |"
        )
    soak = report.get("soak")
    if soak:
        lines += [
            "",
            f"Soak: {soak['requests']} requests ({soak['sides']} px) by {soak['clients']} clients in "
            f"{soak['seconds']:.0f} s, status {soak['status']}; "
            f"server RSS {report['rss_ready_mb']:.0f} MiB when ready, {soak['rss_first_mb']:.0f} MiB after "
            f"the first tenth of the soak, {soak['rss_last_mb']:.0f} MiB at its end "
            f"({soak['rss_last_mb'] - soak['rss_first_mb']:+.0f} MiB over the remaining "
            f"{soak['requests_after_first']} requests); threads {soak['threads_before']} → {soak['threads_after']}; "
            f"temp files left: {report['temp_files_left']}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="1,4,16,32", help="comma-separated client counts, 1 first")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    ap.add_argument("--sides", default="256,512,1024", help="image sizes (longer side, px)")
    ap.add_argument("--soak-requests", type=int, default=2000, help="requests in the soak (0 = none)")
    ap.add_argument("--soak-clients", type=int, default=8)
    ap.add_argument("--soak-sides", default="256,384", help="image sizes in the soak (small: many requests)")
    ap.add_argument("--soak-seconds", type=float, default=MAX_SECONDS, help="time limit of the soak")
    ap.add_argument("--preset", default="fast", help="option sent with every request")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    sides = [int(x) for x in args.sides.split(",")]
    images = sample_images(sides)
    fields = {"preset": args.preset} if args.preset else {}
    counts = [int(x) for x in args.clients.split(",")]
    report: dict[str, Any] = {"cores": os.cpu_count(), "image_sides": [str(s) for s in sides], "fields": fields, "phases": []}
    with serve() as server:
        import httpx

        report["server"] = httpx.get(server.url + "/api/v1/limits").json()
        report["rss_ready_mb"] = server.rss_mb()
        run_load(server.url, 1, 3, images, fields=fields)  # warm-up: first-touch allocations
        for n in counts:
            phase = run_load(server.url, n, args.seconds, images, fields=fields, server_pid=server.pid)
            phase["rss_after_mb"] = server.rss_mb()
            report["phases"].append(phase)
            print(
                f"{n:3d} clients: {phase['throughput_rps']:.2f} ok/s, p99 {_ms(phase['latency_s']['p99'])}, "
                f"status {phase['status']}, healthz p99 {_ms(phase['healthz_s']['p99'])}, "
                f"RSS {phase['rss_after_mb']:.0f} MiB",
                flush=True,
            )
        if args.soak_requests:
            soak_images = sample_images([int(x) for x in args.soak_sides.split(",")])
            threads_before = threads_of(server.pid)
            first = run_load(
                server.url,
                args.soak_clients,
                args.soak_seconds,
                soak_images,
                fields=fields,
                max_requests=max(1, args.soak_requests // 10),
                server_pid=server.pid,
            )
            rss_first = server.rss_mb()
            rest = run_load(
                server.url,
                args.soak_clients,
                args.soak_seconds,
                soak_images,
                fields=fields,
                max_requests=args.soak_requests - first["requests"],
                server_pid=server.pid,
            )
            report["soak"] = {
                "clients": args.soak_clients,
                "sides": args.soak_sides,
                "requests": first["requests"] + rest["requests"],
                "requests_after_first": rest["requests"],
                "seconds": first["seconds"] + rest["seconds"],
                "status": {
                    k: first["status"].get(k, 0) + rest["status"].get(k, 0) for k in set(first["status"]) | set(rest["status"])
                },
                "rss_first_mb": rss_first,
                "rss_last_mb": server.rss_mb(),
                "rss_mb": first["rss_mb"] + [(t + first["seconds"], m) for t, m in rest["rss_mb"]],
                "threads_before": threads_before,
                "threads_after": threads_of(server.pid),
            }
            print(
                f"soak: {report['soak']['requests']} requests, RSS {rss_first:.0f} → "
                f"{report['soak']['rss_last_mb']:.0f} MiB, status {report['soak']['status']}",
                flush=True,
            )
        report["temp_files_left"] = len(server.temp_files())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(report, indent=1))
    (args.out / "load.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
