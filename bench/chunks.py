"""Chunked video against one-piece runs: quality at the seams, time, and the overhead per chunk.

    .venv/bin/python -m bench.chunks                          # everything (~6 minutes on 2 cores)
    .venv/bin/python -m bench.chunks --part seams --warmups 0,20
    .venv/bin/python -m bench.chunks --part speed --frames 60

Seams, on the dev GT clip ``comp_D`` (``$MATTEKIT_EVAL_DIR/video``, 1280x720, 90 frames, the
default preset): one ``process_video`` run, then ``process_chunked`` in 3 chunks with each warm-up
W, chunks run one after another in this process (``executor="local"``: the code a Ray task runs,
without Ray). PNG frames, so the alpha compared is the model's, not a codec's. Scores: dtSSD and
mean SAD against the GT alpha; the seam frames (each chunk's first but the first) against the
one-piece run's, mean and p99.9 of |difference| in 1/255; the worst frame's SAD over its one-piece
SAD; the wall time.

Speed, on the street clip upscaled to 1920x1080 (as bench/video.py does), transparent WebM:
one piece; the same in K chunks in this process (what each chunk costs beyond its frames:
seeking to the keyframe before its warm-up, W frames of warm-up, a pipeline and an encoder
started, its share of the join); and K chunks on embedded Ray (Ray's start-up and one engine per
worker). Writes ``bench/out/chunks.json`` and prints Markdown tables for docs/video.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mattekit import metrics
from mattekit.core.engine import get_engine
from mattekit.options import Options
from mattekit.video import VideoOptions, process_video
from mattekit.video.chunks import plan_chunks, process_chunked

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / "bench" / "out"
EVAL = Path(os.environ.get("MATTEKIT_EVAL_DIR") or ROOT.parent / "shared" / "eval")


def _alphas(path: Path) -> list[np.ndarray]:
    from PIL import Image

    with zipfile.ZipFile(path) as z:
        return [np.asarray(Image.open(io.BytesIO(z.read(n))))[..., 3].astype(np.float64) / 255.0 for n in sorted(z.namelist())]


def _gt(limit: int) -> list[np.ndarray]:
    from bench import quality

    return [g for _, g in quality.video_frames(EVAL, limit)]


def seams(warmups: list[int], chunks: int) -> list[dict[str, Any]]:
    source = EVAL / "video" / "comp_D.mp4"
    if not source.is_file():
        print(f"skip seams: {source} not found", file=sys.stderr)
        return []
    gts = _gt(10_000)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mattekit-bench-chunks-") as tmpname:
        tmp = Path(tmpname)
        get_engine().load()
        t = time.perf_counter()
        process_video(source, tmp / "one.zip")
        one_s = time.perf_counter() - t
        one = _alphas(tmp / "one.zip")
        sad_one = [metrics.sad(a, g) for a, g in zip(one, gts)]
        rows.append(
            {
                "run": "one piece",
                "warmup": None,
                "frames": len(one),
                "seconds": one_s,
                "dtssd": metrics.dtssd(one, gts),
                "sad": float(np.mean(sad_one)),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        for w in warmups:
            t = time.perf_counter()
            result = process_chunked(source, tmp / f"w{w}.zip", chunks=chunks, warmup=w, executor="local")
            seconds = time.perf_counter() - t
            alphas = _alphas(tmp / f"w{w}.zip")
            starts = [c.first for c in plan_chunks(len(alphas), chunks=chunks, warmup=w)[1:]]
            diff = np.concatenate([np.abs(alphas[i] - one[i]).ravel() * 255 for i in starts])
            sad = [metrics.sad(a, g) for a, g in zip(alphas, gts)]
            rows.append(
                {
                    "run": f"{chunks} chunks",
                    "warmup": w,
                    "frames": len(alphas),
                    "seconds": seconds,
                    "join_s": result.timings["join"],
                    "dtssd": metrics.dtssd(alphas, gts),
                    "sad": float(np.mean(sad)),
                    "seam_mean": float(diff.mean()),
                    "seam_p999": float(np.percentile(diff, 99.9)),
                    "worst_sad_ratio": max(b / a for a, b in zip(sad_one, sad)),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def speed(frames: int, chunk_counts: list[int], ray_chunks: int) -> list[dict[str, Any]]:
    import video as video_bench

    src = EVAL / "video" / "openpose_street.mp4"
    if not src.is_file():
        print(f"skip speed: {src} not found", file=sys.stderr)
        return []
    rows = []
    opts = Options(preset="fast")
    vopts = VideoOptions(max_frames=frames)
    with tempfile.TemporaryDirectory(prefix="mattekit-bench-chunks-") as tmpname:
        tmp = Path(tmpname)
        clip = video_bench._upscaled(src, frames, (1920, 1080), tmp)
        get_engine().load()
        process_video(clip, tmp / "warm.webm", opts, VideoOptions(max_frames=3))
        t = time.perf_counter()
        r = process_video(clip, tmp / "one.webm", opts, vopts)
        one_s = time.perf_counter() - t
        rows.append(
            {
                "run": "one piece",
                "chunks": 1,
                "where": "this process",
                "frames": r.frames,
                "seconds": one_s,
                "fps": r.frames / one_s,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        for k in chunk_counts:
            t = time.perf_counter()
            c = process_chunked(clip, tmp / f"local{k}.webm", opts, vopts, chunks=k, executor="local")
            s = time.perf_counter() - t
            rows.append(
                {
                    "run": f"{k} chunks",
                    "chunks": k,
                    "where": "this process, one after another",
                    "frames": c.frames,
                    "seconds": s,
                    "fps": c.frames / s,
                    "join_s": c.timings["join"],
                    "overhead_per_chunk_s": (s - one_s) / (k - 1) if k > 1 else 0.0,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        if ray_chunks:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            t = time.perf_counter()
            c = process_chunked(clip, tmp / "ray.webm", opts, vopts, chunks=ray_chunks, executor="ray")
            s = time.perf_counter() - t
            rows.append(
                {
                    "run": f"{ray_chunks} chunks",
                    "chunks": ray_chunks,
                    "where": "embedded Ray, one 1-thread task per core",
                    "frames": c.frames,
                    "seconds": s,
                    "fps": c.frames / s,
                    "join_s": c.timings["join"],
                    "chunk_s": c.timings["chunks"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(seam_rows: list[dict[str, Any]], speed_rows: list[dict[str, Any]]) -> str:
    lines = []
    if seam_rows:
        lines += [
            "| run | warm-up W | dtSSD | mean SAD | seam frames vs one piece (mean / p99.9, 1/255) | "
            "worst frame SAD / one piece | seconds |",
            "|---|---:|---:|---:|---|---:|---:|",
        ]
        for r in seam_rows:
            seam = f"{r['seam_mean']:.2f} / {r['seam_p999']:.0f}" if "seam_mean" in r else "–"
            worst = f"{r['worst_sad_ratio']:.3f}" if "worst_sad_ratio" in r else "–"
            w = "–" if r["warmup"] is None else r["warmup"]
            lines.append(f"| {r['run']} | {w} | {r['dtssd']:.3f} | {r['sad']:.2f} | {seam} | {worst} | {r['seconds']:.1f} |")
    if speed_rows:
        lines += [
            "",
            "| run | where | frames | seconds | fps | join s | overhead per chunk s |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in speed_rows:
            over = f"{r['overhead_per_chunk_s']:.2f}" if "overhead_per_chunk_s" in r else "–"
            join = f"{r['join_s']:.2f}" if "join_s" in r else "–"
            lines.append(f"| {r['run']} | {r['where']} | {r['frames']} | {r['seconds']:.1f} | {r['fps']:.2f} | {join} | {over} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "seams", "speed"), default="all")
    ap.add_argument("--warmups", default="0,3,10,20")
    ap.add_argument("--chunks", type=int, default=3, help="chunks for the seam runs")
    ap.add_argument("--frames", type=int, default=60, help="1080p frames for the speed runs")
    ap.add_argument("--speed-chunks", default="2,4", help="chunk counts for the in-process speed runs")
    ap.add_argument("--ray-chunks", type=int, default=4, help="chunks on embedded Ray (0: skip)")
    args = ap.parse_args()
    seam_rows = seams([int(w) for w in args.warmups.split(",")], args.chunks) if args.part in ("all", "seams") else []
    speed_rows = (
        speed(args.frames, [int(k) for k in args.speed_chunks.split(",")], args.ray_chunks)
        if args.part in ("all", "speed")
        else []
    )
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "chunks.json").write_text(
        json.dumps({"cpu": cpu, "cores": os.cpu_count(), "seams": seam_rows, "speed": speed_rows}, indent=1)
    )
    print(f"\nCPU: {cpu}, {os.cpu_count()} cores\n")
    print(markdown(seam_rows, speed_rows))


if __name__ == "__main__":
    main()
