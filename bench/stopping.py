"""How long a still holds its worker after its deadline, and what it costs to stop it sooner.

    .venv/bin/python -m bench.stopping                 # overruns + the costs of both remedies (~3 min)
    .venv/bin/python -m bench.stopping --part overrun  # only the overruns (also: sweep, process, checks)

``sweep``: the same on a 50 MP photo with deadlines every 0.25 s, and where each one stopped.
``overrun``: the service's own work function (``service.api.process``: decode, model, compose,
encode) on the worst legitimate inputs, with a deadline shorter than the work; the figure is how
long after the deadline (the client's 504) the worker was still busy. ``process``: what a killable
worker process would cost (start-up to a warm engine, its memory, moving a 12 MP photo's upload
and result through a pipe). ``checks``: what the deadline checks inside decode and encode cost on
a normal 12 MP JPEG (small input blocks, a checking writer), against Pillow's defaults.

Writes ``bench/out/stopping.json`` and ``bench/out/stopping.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import multiprocessing as mp
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mattekit.deadline import Deadline
from mattekit.errors import Cancelled, DeadlineExceeded
from mattekit.options import Options

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"

FIFTY_MP = (8660, 5773)  # the service's default MATTEKIT_MAX_PIXELS is 50,000,000
TWELVE_MP = (4000, 3000)


def _photo(size: tuple[int, int]) -> Image.Image:
    from tests.samples import sample_path

    return Image.open(sample_path("astronaut")).convert("RGB").resize(size, Image.Resampling.BILINEAR)


def _jpeg(img: Image.Image, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def scan_bomb(size: tuple[int, int], scans: int) -> bytes:
    """The worst JPEG we accept: a flat progressive picture whose last scan is repeated up to
    ``scans`` scans in all (the limit, decode.MAX_JPEG_SCANS)."""
    data = _jpeg(Image.new("RGB", size, (120, 130, 140)), progressive=True)
    have = data.count(b"\xff\xda")
    last = data.rfind(b"\xff\xda")
    return data[:-2] + data[last:-2] * (scans - have) + data[-2:]


def cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def service_options() -> Options:
    """What a request starts from on a server with the default settings (its pixel limits)."""
    from mattekit.service.common import server_options
    from mattekit.service.settings import Settings

    return server_options(Settings())


def largest_ratio(opts: Options, size: tuple[int, int]) -> float:
    """The largest ratio (in steps of 0.05) ``best`` may use on a photo of ``size`` under the
    server's MATTEKIT_MAX_LOWRES_PIXELS."""
    from mattekit import presets
    from mattekit.errors import TooLarge

    for step in range(20, 0, -1):
        try:
            presets.check_lowres("best", step / 20, size[1], size[0], opts.max_lowres_pixels)
            return step / 20
        except TooLarge:
            continue
    return 0.05


# -- overruns ------------------------------------------------------------------------------------
@contextlib.contextmanager
def cancelled_at_its_time(deadline: Deadline) -> Iterator[None]:
    """Cancel ``deadline`` when it passes, as the server does at its 504
    (``Reservation.run_until``): work in progress is stopped then, not only at its next check."""
    timer = threading.Timer(max(0.0, deadline.remaining()), deadline.cancel)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def overrun_case(name: str, data: bytes, options: Options, seconds: float) -> dict[str, Any]:
    """Run the service's work function under a deadline of ``seconds``; how long past it the
    worker stayed busy (what a 504's slot cost)."""
    from mattekit.matter import Matter
    from mattekit.service.api import process

    matter = Matter()
    deadline = Deadline.after(seconds, "this photo")
    assert deadline is not None
    start = time.monotonic()
    outcome = "done"
    try:
        with cancelled_at_its_time(deadline):
            process(matter, data, options, None, "fill", deadline)
    except (DeadlineExceeded, Cancelled):
        outcome = "deadline_exceeded"
    end = time.monotonic()
    return {
        "case": name,
        "deadline_s": seconds,
        "outcome": outcome,
        "busy_s": round(end - start, 3),
        "past_deadline_s": round(max(0.0, end - deadline.at), 3),
    }


def unbounded(name: str, fn: Callable[[], Any], repeat: int = 1) -> dict[str, Any]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"case": name, "seconds": round(min(times), 3)}


def overruns() -> list[dict[str, Any]]:
    from mattekit import decode, encode
    from mattekit.matter import Matter

    Matter().process(np.zeros((64, 64, 3), np.uint8))  # load the model outside the timings
    big = _photo(FIFTY_MP)
    bomb = scan_bomb(FIFTY_MP, decode.MAX_JPEG_SCANS)
    photo50 = _jpeg(big)
    prog50 = _jpeg(big, progressive=True)
    photo12 = _jpeg(_photo(TWELVE_MP))
    opts = service_options()
    ratio = largest_ratio(opts, TWELVE_MP)
    rows = [
        unbounded("decode: 50 MP JPEG of 256 scans (flat)", lambda: decode.decode(bomb, opts)),
        unbounded("decode: 50 MP baseline JPEG (photo)", lambda: decode.decode(photo50, opts)),
        unbounded("decode: 50 MP progressive JPEG (photo, 10 scans)", lambda: decode.decode(prog50, opts)),
    ]
    rgba = Image.fromarray(np.dstack([np.asarray(big), np.full(big.size[::-1], 200, np.uint8)]), "RGBA")
    rows.append(unbounded("encode: 50 MP RGBA PNG", lambda: encode.encode(rgba, "png")))
    rows.append(unbounded("encode: 50 MP RGBA WebP q90", lambda: encode.encode(rgba, "webp", 90)))
    rows.append(overrun_case("service work: 50 MP JPEG of 256 scans, deadline 1 s", bomb, opts, 1.0))
    rows.append(overrun_case("service work: 50 MP baseline JPEG, balanced, deadline 3 s", photo50, opts, 3.0))
    rows.append(
        overrun_case(
            f"service work: 12 MP, best at ratio {ratio:g} (the largest the limit allows), deadline 1 s",
            photo12,
            opts.replace(preset="best", ratio=ratio),
            1.0,
        )
    )
    rows.append(
        overrun_case("service work: 50 MP baseline JPEG, best, deadline 10 s", photo50, opts.replace(preset="best"), 10.0)
    )
    return rows


def sweep(step: float = 0.25) -> list[dict[str, Any]]:
    """A 50 MP photo through the service's work function (``balanced``) with deadlines every
    ``step`` seconds until one is met: how far past each deadline the work went, and the check
    that stopped it (the step before that check is what could not be interrupted)."""
    import traceback

    from mattekit.matter import Matter
    from mattekit.service.api import process

    matter = Matter()
    matter.process(np.zeros((64, 64, 3), np.uint8))
    data = _jpeg(_photo(FIFTY_MP))
    opts = service_options()
    rows = []
    for i in range(1, 200):
        deadline = Deadline.after(step * i, "this photo")
        assert deadline is not None
        where = "done"
        try:
            with cancelled_at_its_time(deadline):
                process(matter, data, opts, None, "fill", deadline)
        except (DeadlineExceeded, Cancelled) as exc:
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).stem != "deadline"]
            where = " <- ".join(f"{Path(f.filename).stem}.{f.name}" for f in frames[-3:][::-1])
        rows.append({"deadline_s": round(step * i, 2), "past_s": round(time.monotonic() - deadline.at, 3), "stopped_at": where})
        if where == "done":
            break
    return rows


# -- a killable worker process -------------------------------------------------------------------
def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _child(conn: Any, src: str) -> None:
    sys.path.insert(0, src)
    from mattekit.matter import Matter

    m = Matter()
    m.process(np.zeros((64, 64, 3), np.uint8))
    conn.send("ready")
    while True:
        data = conn.recv_bytes()
        if not data:
            return
        conn.send_bytes(m.process(data).encode("png"))


def _echo(conn: Any) -> None:
    while True:
        data = conn.recv_bytes()
        if not data:
            return
        conn.send_bytes(data)


def process_costs() -> dict[str, Any]:
    ctx = mp.get_context("spawn")  # fork is unsafe with ONNX Runtime's threads in the parent
    starts, rss_ready, rss_after = [], [], []
    photo12 = _jpeg(_photo(TWELVE_MP))
    result = b""
    for _ in range(3):
        parent, child = ctx.Pipe()
        t = time.perf_counter()
        proc = ctx.Process(target=_child, args=(child, str(ROOT / "src")), daemon=True)
        proc.start()
        assert parent.recv() == "ready"
        starts.append(time.perf_counter() - t)
        assert proc.pid is not None
        rss_ready.append(_rss_mb(proc.pid))
        parent.send_bytes(photo12)
        result = parent.recv_bytes()
        rss_after.append(_rss_mb(proc.pid))
        t = time.perf_counter()
        proc.kill()
        proc.join()
        kill_s = time.perf_counter() - t
    # Moving bytes only: the 12 MP photo's upload there and its PNG back, and its raw RGBA.
    parent, child = ctx.Pipe()
    echo = ctx.Process(target=_echo, args=(child,), daemon=True)
    echo.start()
    trips: dict[str, float] = {}
    raw = np.zeros((TWELVE_MP[1], TWELVE_MP[0], 4), np.uint8).tobytes()
    for name, payload in (("upload", photo12), ("result", result), ("raw_rgba", raw)):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            parent.send_bytes(payload)
            parent.recv_bytes()
            times.append(time.perf_counter() - t)
        trips[name] = round(min(times) / 2, 4)  # one way
    parent.send_bytes(b"")
    echo.join()
    return {
        "start_s": round(statistics.median(starts), 2),
        "rss_ready_mb": round(statistics.median(rss_ready)),
        "rss_after_12mp_mb": round(statistics.median(rss_after)),
        "kill_s": round(kill_s, 3),
        "upload_mb": round(len(photo12) / 2**20, 1),
        "result_mb": round(len(result) / 2**20, 1),
        "one_way_s": trips,
    }


# -- the deadline checks --------------------------------------------------------------------------
def check_costs() -> list[dict[str, Any]]:
    """Decode and encode of a normal 12 MP photo with and without a deadline (its checks)."""
    from mattekit import decode, encode

    photo12 = _jpeg(_photo(TWELVE_MP))
    prog12 = _jpeg(_photo(TWELVE_MP), progressive=True)
    rgba = Image.fromarray(np.dstack([np.asarray(_photo(TWELVE_MP)), np.full(TWELVE_MP[::-1], 200, np.uint8)]), "RGBA")
    far = Deadline(time.monotonic() + 3600, "bench")
    rows = []
    cases: list[tuple[str, Callable[[Deadline | None], Any]]] = [
        ("decode 12 MP baseline JPEG", lambda d: decode.decode(photo12, Options(), deadline=d)),
        ("decode 12 MP progressive JPEG", lambda d: decode.decode(prog12, Options(), deadline=d)),
        ("encode 12 MP grey+alpha PNG (Pillow zlib)", lambda d: encode.encode(rgba.convert("LA"), "png", deadline=d)),
        ("encode 12 MP RGB JPEG", lambda d: encode.encode(rgba.convert("RGB"), "jpg", deadline=d)),
    ]
    for name, fn in cases:
        plain = unbounded(name, functools.partial(fn, None), repeat=5)["seconds"]
        checked = unbounded(name, functools.partial(fn, far), repeat=5)["seconds"]
        rows.append({"case": name, "plain_s": plain, "checked_s": checked})
    return rows


def markdown(report: dict[str, Any]) -> str:
    lines = [f"CPU: {report['cpu']}", "", "| case | busy | past the deadline |", "|---|---|---|"]
    for r in report.get("overrun", []):
        if "seconds" in r:
            lines.append(f"| {r['case']} | {r['seconds']:.2f} s | — |")
        else:
            lines.append(f"| {r['case']} ({r['outcome']}) | {r['busy_s']:.2f} s | {r['past_deadline_s']:.2f} s |")
    if "sweep" in report:
        lines += ["", "| 50 MP, balanced: deadline | past it | stopped at |", "|---|---|---|"]
        lines += [f"| {r['deadline_s']:.2f} s | {r['past_s']:.2f} s | {r['stopped_at']} |" for r in report["sweep"]]
    if "process" in report:
        p = report["process"]
        lines += [
            "",
            f"Killable worker process: start to a warm engine {p['start_s']:.2f} s, RSS {p['rss_ready_mb']} MB "
            f"ready, {p['rss_after_12mp_mb']} MB after a 12 MP photo; one way through a pipe: upload "
            f"{p['upload_mb']} MB {p['one_way_s']['upload'] * 1000:.1f} ms, result {p['result_mb']} MB "
            f"{p['one_way_s']['result'] * 1000:.1f} ms, raw RGBA 46 MB {p['one_way_s']['raw_rgba'] * 1000:.1f} ms",
        ]
    if "checks" in report:
        lines += ["", "| with deadline checks | plain | checked |", "|---|---|---|"]
        lines += [f"| {r['case']} | {r['plain_s']:.3f} s | {r['checked_s']:.3f} s |" for r in report["checks"]]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = {"overrun": overruns, "sweep": sweep, "process": process_costs, "checks": check_costs}
    ap.add_argument("--part", choices=("all", *parts), default="all")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    report: dict[str, Any] = {"cpu": cpu()}
    for name, measure in parts.items():
        if args.part in ("all", name):
            report[name] = measure()
            print(json.dumps(report[name], indent=1), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"stopping-{args.part}.json").write_text(json.dumps(report, indent=1))
    (args.out / f"stopping-{args.part}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
