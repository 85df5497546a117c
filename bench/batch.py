"""Batch bench: images per second through `mattekit batch` on an embedded Ray, 1 vs 2 workers.

    .venv/bin/python -m bench.batch                     # 14 real photos, each configuration
    .venv/bin/python -m bench.batch --images 4 --max-size 640   # a quick look while developing

The photos are the evaluation set's people images (``$MATTEKIT_EVAL_DIR/people/image``, default
``../shared/eval``; JPEGs of 1191x894 to 1930x1281), copied to a temporary folder and processed
at full size with the default options (transparent PNG, preset ``balanced``); without the
evaluation set, the test-suite's sample photos are used. Every configuration runs the library's
``mattekit.batch.run`` (what the command runs) into a fresh output folder, so each one pays Ray's
start-up, the actors' start and the model load — reported apart from the steady rate:

- ``end-to-end``: images / wall time of the whole run, start-up included;
- ``steady``: images per second between the first and the last finished image (by the workers'
  clock), as a long batch sees it once started; ``per core`` divides it by the cores the workers use (workers x threads): the figure to
  multiply by a cluster's cores.

A plain in-process loop over the same files (``Matter`` on one thread, no Ray) is the baseline
that shows what Ray costs. Writes ``bench/out/batch.json`` and ``bench/out/batch.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from mattekit import batch
from mattekit.options import Options

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / "bench" / "out"
EVAL = Path(os.environ.get("MATTEKIT_EVAL_DIR") or ROOT.parent / "shared" / "eval")
CONFIGS = [  # (workers, threads per worker)
    (1, 1),
    (2, 1),
    (1, 2),
]


def photos(count: int) -> tuple[list[Path], str]:
    people = sorted((EVAL / "people" / "image").glob("*.jpg"))
    if people:
        return (people * (count // len(people) + 1))[:count], "evaluation set people/ (JPEG, 1191x894 to 1930x1281)"
    from tests.samples import sample_path  # the test-suite's own real photos

    files = [sample_path("astronaut"), sample_path("camera"), sample_path("rocket")]
    return (files * (count // len(files) + 1))[:count], "scikit-image sample photos (512x512, 640x427)"


def run_config(src: Path, options: Options, workers: int, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mattekit-bench-out-") as dst:
        spec = batch.Spec(batch.resolve(str(src)), batch.resolve(dst), options)
        finished: list[float] = []
        t0 = time.time()
        # When each image finished, by the worker's clock: the driver receives results in bursts.
        summary = batch.run(spec, workers=workers, threads=threads, on_record=lambda rec: finished.append(rec.at))
        wall = time.time() - t0
        finished.sort()
    n = summary.done
    if summary.failed:
        raise SystemExit(f"{summary.failed} images failed: {[r.error for r in summary.failures]}")
    pool = summary.pool
    cores = (min(pool.size, n) * pool.threads) if pool else workers * threads
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 2 and finished[-1] > finished[0] else 0.0
    return {
        "config": f"{workers} worker{'s' if workers > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}",
        "workers": workers,
        "threads": threads,
        "cores": cores,
        "images": n,
        "wall_s": round(wall, 2),
        "startup_s": round(finished[0] - t0, 2) if finished else None,
        "end_to_end_ips": round(n / wall, 3),
        "steady_ips": round(steady, 3),
        "steady_ips_per_core": round(steady / cores, 3) if cores else None,
    }


def baseline(files: list[Path], options: Options) -> dict[str, Any]:
    """The same work without Ray: one engine, one thread, one file after another."""
    import cv2

    from mattekit.core.engine import Engine
    from mattekit.matter import Matter

    cv2.setNumThreads(1)  # as a 1-thread batch worker does
    matter = Matter(options, engine=Engine(threads=1).load())
    matter.remove_bytes(files[0], options)  # warm-up, as the actors' first image is not timed either
    t0 = time.perf_counter()
    for f in files:
        matter.remove_bytes(f, options)
    secs = time.perf_counter() - t0
    ips = len(files) / secs
    return {
        "config": "no Ray: in-process loop, 1 thread",
        "workers": 0,
        "threads": 1,
        "cores": 1,
        "images": len(files),
        "wall_s": round(secs, 2),
        "startup_s": None,
        "end_to_end_ips": round(ips, 3),
        "steady_ips": round(ips, 3),
        "steady_ips_per_core": round(ips, 3),
    }


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        f"Images per second through `mattekit batch` (embedded Ray) on {meta['cpus']} CPUs, "
        f"{meta['images']} photos ({meta['photos']}), {meta['options']}.",
        "",
        "| configuration | cores | wall (s) | start-up (s) | end-to-end img/s | steady img/s | steady img/s per core |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        start = "–" if r["startup_s"] is None else f"{r['startup_s']:.1f}"
        lines.append(
            f"| {r['config']} | {r['cores']} | {r['wall_s']:.1f} | {start} | {r['end_to_end_ips']:.2f} | "
            f"{r['steady_ips']:.2f} | {r['steady_ips_per_core']:.2f} |"
        )
    by = {(r["workers"], r["threads"]): r for r in rows}
    if (1, 1) in by and (2, 1) in by and by[(1, 1)]["steady_ips"]:
        lines += ["", f"2 workers / 1 worker (steady): {by[(2, 1)]['steady_ips'] / by[(1, 1)]['steady_ips']:.2f}x."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=14)
    ap.add_argument("--max-size", type=int, default=None, help="shrink photos first (quicker runs)")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()

    files, where = photos(args.images)
    options = Options(max_size=args.max_size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mattekit-bench-in-") as tmp:
        src = Path(tmp)
        for i, f in enumerate(files):
            shutil.copy(f, src / f"{i:03d}{f.suffix}")
        if not args.no_baseline:
            rows.append(baseline(sorted(src.iterdir()), options))
            print(json.dumps(rows[-1]), flush=True)
        for workers, threads in CONFIGS:
            rows.append(run_config(src, options, workers, threads))
            print(json.dumps(rows[-1]), flush=True)
    meta = {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "images": len(files),
        "photos": where,
        "options": f"max size {args.max_size}" if args.max_size else "full size, default options (transparent PNG)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "batch.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    md = markdown(meta, rows)
    (OUT / "batch.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
