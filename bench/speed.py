"""Speed: the original demo's pipeline vs mattekit, measured side by side in one run.

    .venv/bin/python -m bench.speed                         # everything (several minutes on 2 cores)
    .venv/bin/python -m bench.speed --quick                 # fewer images and repeats
    .venv/bin/python -m bench.speed --parts stills,model    # some parts only

Parts (each a row group in ``bench/out/speed.json`` and ``bench/out/speed.md``):

``model``
    RVM alone, same frame: the plain full graph in ONNX Runtime (``Engine(fast=False)``) vs our
    split (low-resolution network in ONNX Runtime + OpenCV tail), alpha only, in alternating
    blocks of calls (medians).
``stills``
    JPEG bytes → RGBA PNG bytes on a batch of real photos (``$MATTEKIT_EVAL_DIR/people``,
    centre-cropped to 16:9 and resized to 720p/1080p/4K in memory; the sample photos of
    tests/samples.py when the evaluation set is absent). ``demo`` is the original demo exactly:
    PIL open → RVM full graph fp32, ratio 0.25, zero state → ``putalpha`` → PNG with Pillow's
    defaults. ``ours`` is the library with the model loaded (``pipeline.process_files``, default
    options: preset ``balanced``), and ``ours (fast)`` the same with preset ``fast``. Batches
    alternate (demo, ours, ours fast, demo, ...) so load from other processes hits all alike;
    the per-stage split comes from single-image runs.
``work``
    CPU time per image with everything single-threaded (model plain vs split; demo vs ours per
    stage): robust when other processes share the machine, unlike the wall-time parts.
``encoders``
    one real 1080p cut-out (RGBA) and composite (RGB) through each encoder considered: time
    (fastest of the repeats) and size.
``cli``
    ``mattekit remove FOLDER`` as a subprocess (start-up included) vs the demo looping over the
    same files in-process (model loaded once); a cold ``mattekit remove one.jpg``; ``--version``.
``objects``
    a photo without a person, end to end (JPEG bytes → RGBA PNG bytes, ``Matter.process`` +
    ``Result.encode``, default options: ``subject=auto``): the dev things centre-cropped to
    1080p, against the same people photos with ``subject=auto`` and ``subject=person`` (auto
    must cost a person photo nothing). Median seconds per image and per stage, and the model
    auto chose (issue 27).
``video``
    ``bench/video.py``'s end-to-end fps (720p and 1080p) when the video bench is present.
``server``
    images/s at 1, 4 and 16 concurrent clients through ``bench/load.py`` (a real server).

Every ratio in the README comes from one run of this script; absolute numbers depend on the
machine (and on what else runs on it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

from mattekit.core.engine import Engine, set_engine  # noqa: E402
from mattekit.core.models import rvm  # noqa: E402
from mattekit.matter import Matter  # noqa: E402
from mattekit.options import Options  # noqa: E402
from mattekit.pipeline import process_files  # noqa: E402

OUT = ROOT / "bench" / "out"
EVAL = Path(os.environ.get("MATTEKIT_EVAL_DIR") or ROOT.parent / "shared" / "eval")
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}
MATTEKIT = Path(sys.executable).with_name("mattekit")


# -- inputs ------------------------------------------------------------------------------------
def source_photos(limit: int) -> list[Image.Image]:
    """Real photos of people: the evaluation set's, else the fetched samples."""
    paths = sorted((EVAL / "people" / "image").glob("*.jpg"))
    if not paths:
        from tests.samples import sample_path

        paths = [sample_path("astronaut"), sample_path("rocket")]
        print(f"evaluation set not found at {EVAL}: using the sample photos", file=sys.stderr)
    # spread over people and backgrounds rather than the first few of one person
    step = max(1, len(paths) // limit)
    return [Image.open(p).convert("RGB") for p in paths[::step][:limit]]


def photo_batch(photos: Sequence[Image.Image], size: tuple[int, int]) -> list[bytes]:
    """Centre-crop each photo to the aspect of ``size``, resize, JPEG q95 — as a camera gives it."""
    from PIL import ImageOps

    out = []
    for p in photos:
        img = ImageOps.fit(p, size, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=95)
        out.append(buf.getvalue())
    return out


# -- the original demo (bench/demo.py) -------------------------------------------------------
from bench.demo import Demo  # noqa: E402


@dataclass
class Job:
    source: Any
    display: str


def ours_batch(matter: Matter, options: Options, batch: Sequence[bytes]) -> int:
    """The library's batch path; returns the bytes written (and fails loudly on any error)."""
    total = 0
    for job, outcome in process_files([Job(b, f"#{i}") for i, b in enumerate(batch)], options, matter=matter):
        if not isinstance(outcome, bytes):
            raise RuntimeError(f"{job.display}: {outcome}")
        total += len(outcome)
    return total


def ours_split(matter: Matter, options: Options, data: bytes) -> dict[str, float]:
    t = time.perf_counter()
    result = matter.process(data, options)
    result.encode(options.format, options.quality)
    total = time.perf_counter() - t
    return {**result.timings, "total": total}


def thing_photos(limit: int) -> list[Image.Image]:
    """Photos without a person: the evaluation set's things, else the fetched samples."""
    paths = sorted((EVAL / "things" / "image").glob("*.jpg"))
    if not paths:
        from tests.samples import sample_path

        paths = [sample_path(n) for n in ("cat", "coffee", "motorcycle", "rocket")]
    step = max(1, len(paths) // limit)
    return [Image.open(p).convert("RGB") for p in paths[::step][:limit]]


# -- parts -------------------------------------------------------------------------------------
MODEL_BLOCK = 4  # timed calls per engine per block in part_model


def part_model(reps: int) -> list[dict]:
    plain, split = Engine(fast=False).load(), Engine(fast=True).load()
    photo = source_photos(1)[0]
    rows = []
    for label, ratio in (("720p", 0.25), ("1080p", 0.25), ("4K", 0.125)):
        from PIL import ImageOps

        rgb = np.asarray(ImageOps.fit(photo, SIZES[label], Image.Resampling.LANCZOS))
        times: dict[str, list[float]] = {"plain": [], "split": []}
        # Alternating blocks, not single calls: right after a run, the plain session's idle
        # threads spin on the cores (its default, and good for it alone), which would slow
        # whichever call comes next. Each block's first call is a warm-up, not timed.
        for _ in range(reps):
            for name, engine in (("plain", plain), ("split", split)):
                engine.step(rgb, ratio)
                for _ in range(MODEL_BLOCK):
                    t = time.perf_counter()
                    engine.step(rgb, ratio)
                    times[name].append(time.perf_counter() - t)
        p, s = statistics.median(times["plain"]), statistics.median(times["split"])
        pairs = [b / a for a, b in zip(times["plain"], times["split"])]
        row = {
            "size": label,
            "ratio": ratio,
            "plain_ms": p * 1e3,
            "split_ms": s * 1e3,
            "split_over_plain": s / p,
            "split_over_plain_pairs_median": statistics.median(pairs),
            "reps": reps,
        }
        rows.append(row)
        print(
            f"model {label}@{ratio}: plain {p * 1e3:.0f} ms, split {s * 1e3:.0f} ms, "
            f"ratio {s / p:.2f} (median of per-pair ratios {row['split_over_plain_pairs_median']:.2f})",
            flush=True,
        )
    return rows


def part_stills(n_images: int, reps: int, sizes: Sequence[str]) -> list[dict]:
    photos = source_photos(n_images)
    demo = Demo()
    engine = Engine().load()
    set_engine(engine)
    matter = Matter(Options(), engine)
    variants: list[tuple[str, Options]] = [("ours", Options()), ("ours (fast)", Options(preset="fast"))]
    rows = []
    for label in sizes:
        batch = photo_batch(photos, SIZES[label])
        demo.run(batch[0])
        for _, opts in variants:
            # two images, so the per-core engine a batch uses is created before the timing
            ours_batch(matter, opts, batch[:2])
        wall: dict[str, list[float]] = {"demo": [], **{name: [] for name, _ in variants}}
        size_bytes: dict[str, int] = {}
        for _ in range(reps):
            t = time.perf_counter()
            size_bytes["demo"] = sum(len(demo.run(b)) for b in batch)
            wall["demo"].append(time.perf_counter() - t)
            for name, opts in variants:
                t = time.perf_counter()
                size_bytes[name] = ours_batch(matter, opts, batch)
                wall[name].append(time.perf_counter() - t)
        # per-stage split, one image at a time (no overlap), averaged over the batch
        split_demo: dict[str, float] = {}
        for b in batch:
            demo.run(b, split_demo)
        stages: dict[str, dict[str, float]] = {"demo": {k: v / len(batch) for k, v in split_demo.items()}}
        for name, opts in variants:
            acc: dict[str, float] = {}
            for b in batch:
                for k, v in ours_split(matter, opts, b).items():
                    acc[k] = acc.get(k, 0.0) + v
            stages[name] = {k: v / len(batch) for k, v in acc.items()}
        for name in wall:
            ips = [len(batch) / w for w in wall[name]]
            row = {
                "size": label,
                "pipeline": name,
                "images": len(batch),
                "reps": reps,
                "images_per_s": statistics.median(ips),
                "images_per_s_all": ips,
                "mb_per_image": size_bytes[name] / len(batch) / 1e6,
                "stage_ms": {k: v * 1e3 for k, v in stages[name].items()},
            }
            if name != "demo":
                pairs = [d / w for d, w in zip(wall["demo"], wall[name])]
                row["speedup_vs_demo"] = statistics.median(ips) / statistics.median([len(batch) / w for w in wall["demo"]])
                row["speedup_vs_demo_pairs"] = pairs
            rows.append(row)
            extra = f", {row['speedup_vs_demo']:.2f}x demo" if "speedup_vs_demo" in row else ""
            print(
                f"stills {label} {name}: {row['images_per_s']:.2f} images/s{extra}; stages (ms) "
                + ", ".join(f"{k} {v:.0f}" for k, v in row["stage_ms"].items()),
                flush=True,
            )
    return rows


def part_work(n_images: int, reps: int, sizes: Sequence[str]) -> list[dict]:
    """CPU time per image, everything single-threaded (ONNX Runtime, OpenCV): the work each
    pipeline does, which — unlike wall time — barely moves when other processes share the CPU.
    On an idle machine with N cores a batch runs at about N / (this) images per second for ours
    (one image per core); the demo's own wall time is measured in ``stills``."""
    import cv2
    import onnxruntime as ort

    cv2.setNumThreads(1)
    clock = time.process_time
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    demo = Demo()
    demo.session = ort.InferenceSession(str(rvm.locate().path), opts, providers=["CPUExecutionProvider"])
    plain, split = Engine(threads=1, fast=False).load(), Engine(threads=1).load()
    photos = source_photos(n_images)
    rows = []
    try:
        for label in sizes:
            batch = photo_batch(photos, SIZES[label])
            ratio = 0.125 if label == "4K" else 0.25
            rgb = np.asarray(Image.open(io.BytesIO(batch[0])).convert("RGB"))
            model: dict[str, list[float]] = {"plain": [], "split": []}
            for _ in range(reps + 1):
                for name, engine in (("plain", plain), ("split", split)):
                    t = clock()
                    engine.step(rgb, ratio)
                    model[name].append(clock() - t)
            row: dict[str, Any] = {
                "size": label,
                "ratio": ratio,
                "model_plain_ms": min(model["plain"][1:]) * 1e3,
                "model_split_ms": min(model["split"][1:]) * 1e3,
            }
            row["model_split_over_plain"] = row["model_split_ms"] / row["model_plain_ms"]
            stages: dict[str, dict[str, float]] = {}
            for _ in range(reps):
                acc: dict[str, float] = {}
                for b in batch:
                    demo.run(b, acc, clock)
                stages["demo"] = _keep_min(stages.get("demo"), acc, len(batch))
                for name, preset in (("ours", "balanced"), ("ours (fast)", "fast")):
                    matter = Matter(Options(preset=preset), split)
                    acc = {}
                    for b in batch:
                        t0 = clock()
                        result = matter.process(b)
                        t1 = clock()
                        result.encode("png")
                        t2 = clock()
                        acc["matte+compose"] = acc.get("matte+compose", 0.0) + t1 - t0
                        acc["encode"] = acc.get("encode", 0.0) + t2 - t1
                    stages[name] = _keep_min(stages.get(name), acc, len(batch))
            row["cpu_ms_per_image"] = {k: {s: v * 1e3 for s, v in d.items()} for k, d in stages.items()}
            row["cpu_ms_total"] = {k: sum(d.values()) * 1e3 for k, d in stages.items()}
            rows.append(row)
            print(
                f"work {label}: model plain {row['model_plain_ms']:.0f} / split {row['model_split_ms']:.0f} CPU-ms "
                f"({row['model_split_over_plain']:.2f}x); per image CPU-ms "
                + ", ".join(f"{k} {v:.0f}" for k, v in row["cpu_ms_total"].items()),
                flush=True,
            )
    finally:
        cv2.setNumThreads(-1)
    return rows


def _keep_min(best: dict[str, float] | None, acc: dict[str, float], n: int) -> dict[str, float]:
    per = {k: v / n for k, v in acc.items()}
    if best is None or sum(per.values()) < sum(best.values()):
        return per
    return best


def part_objects(n_images: int, reps: int) -> list[dict]:
    """Object photos with subject=auto, and people photos with auto and person, at 1080p."""
    matter = Matter()
    matter.process(photo_batch(thing_photos(1), SIZES["1080p"])[0])  # load both models
    runs = [
        ("objects", "auto", photo_batch(thing_photos(n_images), SIZES["1080p"])),
        ("people", "auto", photo_batch(source_photos(n_images), SIZES["1080p"])),
        ("people", "person", photo_batch(source_photos(n_images), SIZES["1080p"])),
    ]
    rows = []
    for what, subject, batch in runs:
        options = Options(subject=subject)  # type: ignore[arg-type]
        splits: list[dict[str, float]] = []
        chosen: list[str] = []
        for rep in range(reps):
            for data in batch:
                t = time.perf_counter()
                result = matter.process(data, options)
                result.encode(options.format, options.quality)
                splits.append({**result.timings, "total": time.perf_counter() - t})
                if rep == 0:
                    chosen.append(result.model)
        stage = {k: 1000 * statistics.median(sp.get(k, 0.0) for sp in splits) for k in splits[0]}
        rows.append(
            {
                "photos": what,
                "subject": subject,
                "median_s": stage.pop("total") / 1000,
                "stage_ms": stage,
                "models": {m: chosen.count(m) for m in sorted(set(chosen))},
            }
        )
    return rows


def part_encoders(reps: int) -> list[dict]:
    """Encode one real 1080p cut-out (RGBA) and composite (RGB) every way we considered
    (CPU time, least of the repeats: robust on a shared machine)."""
    photo = source_photos(1)[0]
    data = photo_batch([photo], SIZES["1080p"])[0]
    matter = Matter(Options(preset="fast"))
    cutout = matter.remove(data)
    composite = Image.alpha_composite(Image.new("RGBA", cutout.size, (255, 255, 255, 255)), cutout).convert("RGB")

    def pil(img: Image.Image, fmt: str, **kw: Any) -> Callable[[], bytes]:
        def run() -> bytes:
            buf = io.BytesIO()
            img.save(buf, fmt, **kw)
            return buf.getvalue()

        return run

    from mattekit import encode

    cases = [
        ("RGBA", "PNG, Pillow default (zlib 6; the demo)", pil(cutout, "PNG")),
        ("RGBA", "PNG, Pillow zlib level 1", pil(cutout, "PNG", compress_level=1)),
        ("RGBA", "PNG, fpng (ours)", lambda: encode.encode(cutout, "png")),
        ("RGBA", "WebP lossless, method 0, default effort", pil(cutout, "WEBP", lossless=True, method=0, exact=True)),
        ("RGBA", "WebP lossless, method 0, effort 0 (ours, --quality 100)", lambda: encode.encode(cutout, "webp", 100)),
        ("RGBA", "WebP lossy q90, exact alpha (ours)", lambda: encode.encode(cutout, "webp", 90)),
        ("RGB", "JPEG q90 4:4:4 (ours)", lambda: encode.encode(composite, "jpg", 90)),
        ("RGB", "JPEG q85 4:2:0 (ours)", lambda: encode.encode(composite, "jpg", 85)),
    ]
    rows = []
    for mode, label, run in cases:
        out = run()
        times = []
        for _ in range(max(3, reps)):
            t = time.process_time()  # CPU time: these encoders are single-threaded
            run()
            times.append(time.process_time() - t)
        rows.append({"image": f"1080p {mode}", "encoder": label, "ms": min(times) * 1e3, "mb": len(out) / 1e6})
        print(f"encode {mode} {label}: {min(times) * 1e3:.0f} ms, {len(out) / 1e6:.2f} MB", flush=True)
    return rows


def _run(cmd: list[str], **kw) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-500:]}")
    return took


def part_cli(n_images: int, reps: int) -> dict:
    photos = source_photos(n_images)
    batch = photo_batch(photos, SIZES["1080p"])
    result: dict[str, Any] = {"images": len(batch), "reps": reps}
    with tempfile.TemporaryDirectory(prefix="mattekit-bench-speed-") as tmpname:
        tmp = Path(tmpname)
        folder = tmp / "in"
        folder.mkdir()
        for i, data in enumerate(batch):
            (folder / f"photo{i:02d}.jpg").write_bytes(data)
        files = sorted(folder.glob("*.jpg"))
        demo_times, cli_times, cold_times, demo_cold_times, version_times = [], [], [], [], []
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        for rep in range(reps):
            t = time.perf_counter()
            demo = Demo()  # the demo loads its model once, then loops
            for f in files:
                (tmp / f"demo-{f.stem}.png").write_bytes(demo.run(f.read_bytes()))
            demo_times.append(time.perf_counter() - t)
            out = tmp / f"out{rep}"
            cli_times.append(_run([str(MATTEKIT), "remove", str(folder), "-o", str(out)], env=env))
            cold_times.append(_run([str(MATTEKIT), "remove", str(files[0]), "-o", str(tmp / f"one{rep}.png")], env=env))
            demo_cold_times.append(
                _run([sys.executable, str(ROOT / "bench" / "demo.py"), str(files[0]), str(tmp / f"demo-one{rep}.png")], env=env)
            )
            version_times.append(_run([str(MATTEKIT), "--version"], env=env))
        d, c = statistics.median(demo_times), statistics.median(cli_times)
        result.update(
            {
                "demo_loop_s": demo_times,
                "cli_folder_s": cli_times,
                "cli_over_demo_speedup": d / c,
                "cold_one_image_s": cold_times,
                "cold_one_image_median_s": statistics.median(cold_times),
                "demo_cold_one_image_s": demo_cold_times,
                "demo_cold_one_image_median_s": statistics.median(demo_cold_times),
                "version_s": version_times,
                "version_median_s": statistics.median(version_times),
            }
        )
    print(
        f"cli: folder of {len(batch)} 1080p JPEGs: demo loop {d:.2f} s, `mattekit remove FOLDER` {c:.2f} s "
        f"({d / c:.2f}x); cold one image {result['cold_one_image_median_s']:.2f} s "
        f"(the demo's own cold run {result['demo_cold_one_image_median_s']:.2f} s); "
        f"--version {result['version_median_s']:.3f} s",
        flush=True,
    )
    return result


def part_video(frames: int) -> list[dict]:
    try:
        import video as video_bench  # bench/video.py
    except ImportError as exc:
        print(f"video: bench/video.py unavailable ({exc})", file=sys.stderr)
        return []
    return video_bench.speed(frames, [720, 1080])


def part_server(seconds: float) -> list[dict]:
    try:
        from bench import load
    except ImportError as exc:
        print(f"server: bench/load.py unavailable ({exc})", file=sys.stderr)
        return []
    images = load.sample_images((1024,))
    rows = []
    with load.serve() as server:
        load.run_load(server.url, 1, 3, images)  # warm-up
        for n in (1, 4, 16):
            phase = load.run_load(server.url, n, seconds, images, server_pid=server.pid)
            rows.append(
                {
                    "clients": n,
                    "images_per_s": phase["throughput_rps"],
                    "status": phase["status"],
                    "p95_s": phase["latency_s"]["p95"],
                }
            )
            print(f"server {n:2d} clients: {phase['throughput_rps']:.2f} images/s", flush=True)
    if rows and rows[0]["images_per_s"]:
        for r in rows:
            r["vs_single_client"] = r["images_per_s"] / rows[0]["images_per_s"]
    return rows


# -- report ------------------------------------------------------------------------------------
def cpu_name() -> str:
    """The CPU's model name and widest x86 vector extension: absolute times differ ~2.3x between
    the 2-core machines this project ran on, ratios much less."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    # "key<tabs>: value"; every core repeats the same keys
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in info.splitlines())}
    name = fields.get("model name") or platform.machine()
    flags = set(fields.get("flags", "").split())
    isa = next((f for f in ("avx512f", "avx2", "avx") if f in flags), None)
    # A VM's model name is often just "AMD EPYC": family/model tell Zen 3 (25/1) from Zen 4
    # (25/17), and the bf16/VNNI/AMX flags are what reduced-precision backends could use.
    extras = [f for f in ("avx512_bf16", "avx512_vnni", "amx_bf16") if f in flags]
    where = f"family {fields['cpu family']} model {fields['model']}" if "cpu family" in fields and "model" in fields else ""
    parts = [p for p in (isa.upper() if isa else "", ", ".join(extras), where) if p]
    return f"{name} ({'; '.join(parts)})" if parts else name


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table: first column left-aligned, the rest right-aligned (numbers)."""
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return [*lines, ""]


def markdown(report: dict) -> str:
    lines = [f"Machine: {report['machine']}{', ' + report['cpu'] if report.get('cpu') else ''}.", ""]
    if report.get("model"):
        lines += _table(
            ["model only", "plain ONNX Runtime", "mattekit split", "ratio"],
            [
                [
                    f"{r['size']} @ {r['ratio']}",
                    f"{r['plain_ms']:.0f} ms",
                    f"{r['split_ms']:.0f} ms",
                    f"{r['split_over_plain']:.2f}x",
                ]
                for r in report["model"]
            ],
        )
    if report.get("stills"):
        rows = []
        for r in report["stills"]:
            st = r["stage_ms"]
            rows.append(
                [
                    r["size"],
                    r["pipeline"],
                    f"{r['images_per_s']:.2f}",
                    f"{r['speedup_vs_demo']:.1f}x" if "speedup_vs_demo" in r else "1x",
                    *(f"{st.get(k, 0.0):.0f} ms" for k in ("decode", "model" if "model" in st else "matte", "compose", "encode")),
                    f"{r['mb_per_image']:.1f}",
                ]
            )
        lines += _table(
            ["stills JPEG → RGBA PNG", "pipeline", "images/s", "vs demo", "decode", "model", "compose", "encode", "MB/image"],
            rows,
        )
    if report.get("work"):
        lines += _table(
            ["CPU time per image, single-threaded", "model plain", "model split", "demo", "ours (balanced)", "ours (fast)"],
            [
                [
                    f"{r['size']} (model @ {r['ratio']})",
                    f"{r['model_plain_ms']:.0f} ms",
                    f"{r['model_split_ms']:.0f} ms ({r['model_split_over_plain']:.2f}x)",
                    *(f"{r['cpu_ms_total'][k]:.0f} ms" for k in ("demo", "ours", "ours (fast)")),
                ]
                for r in report["work"]
            ],
        )
    if report.get("encoders"):
        lines += _table(
            ["encode (CPU time, least of repeats)", "image", "ms", "MB"],
            [[r["encoder"], r["image"], f"{r['ms']:.0f}", f"{r['mb']:.2f}"] for r in report["encoders"]],
        )
    if report.get("cli"):
        c = report["cli"]
        lines += _table(
            ["command line", "seconds"],
            [
                [f"demo looping over {c['images']} 1080p JPEGs in-process", f"{statistics.median(c['demo_loop_s']):.2f}"],
                [
                    "`mattekit remove FOLDER` (start-up included)",
                    f"{statistics.median(c['cli_folder_s']):.2f} ({c['cli_over_demo_speedup']:.1f}x the demo's speed)",
                ],
                ["cold `mattekit remove one.jpg` (1080p, model load included)", f"{c['cold_one_image_median_s']:.2f}"],
                *(
                    [
                        [
                            "the demo's own cold run on the same file (`python bench/demo.py`)",
                            f"{c['demo_cold_one_image_median_s']:.2f}",
                        ]
                    ]
                    if "demo_cold_one_image_median_s" in c
                    else []
                ),
                ["`mattekit --version`", f"{c['version_median_s']:.3f}"],
            ],
        )
    if report.get("objects"):
        lines += _table(
            ["1080p JPEG → RGBA PNG, end to end", "subject", "median s", "decode", "matte", "compose", "encode", "model chosen"],
            [
                [
                    r["photos"],
                    r["subject"],
                    f"{r['median_s']:.2f}",
                    *(f"{r['stage_ms'].get(k, 0.0):.0f} ms" for k in ("decode", "matte", "compose", "encode")),
                    ", ".join(f"{m} {c}" for m, c in sorted(r["models"].items())),
                ]
                for r in report["objects"]
            ],
        )
    if report.get("video"):
        lines += _table(
            ["video", "output", "ratio", "fps"],
            [[r["size"], r["output"], str(r.get("ratio", "auto")), f"{r['fps']:.1f}"] for r in report["video"]],
        )
    if report.get("server"):
        lines += _table(
            ["server clients", "images/s", "vs 1 client"],
            [[str(r["clients"]), f"{r['images_per_s']:.2f}", f"{r.get('vs_single_client', 0):.2f}x"] for r in report["server"]],
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="model,stills,work,objects,encoders,cli,video,server")
    ap.add_argument("--quick", action="store_true", help="fewer images and repeats (a look, not a figure)")
    ap.add_argument("--images", type=int, default=None, help="photos per batch (default 8, quick 4)")
    ap.add_argument("--reps", type=int, default=None, help="alternated repeats (default 3, quick 1)")
    ap.add_argument("--sizes", default="720p,1080p,4K")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--render", type=Path, metavar="JSON", help="only print the tables of an earlier run's speed.json")
    args = ap.parse_args(argv)
    if args.render:
        print(markdown(json.loads(args.render.read_text())))
        return 0
    parts = set(args.parts.split(","))
    n = args.images or (4 if args.quick else 8)
    reps = args.reps or (1 if args.quick else 3)
    import onnxruntime as ort

    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, onnxruntime {ort.__version__}",
        "cpu": cpu_name(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "load_average_start": os.getloadavg(),
    }
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("model", lambda: part_model(max(3, reps * 2))),
        ("stills", lambda: part_stills(n, reps, args.sizes.split(","))),
        ("work", lambda: part_work(n, reps, args.sizes.split(","))),
        ("objects", lambda: part_objects(n, reps)),
        ("encoders", lambda: part_encoders(reps)),
        ("cli", lambda: part_cli(n, reps)),
        ("video", lambda: part_video(24 if args.quick else 60)),
        ("server", lambda: part_server(5.0 if args.quick else 20.0)),
    ]
    for name, step in steps:
        if name in parts:
            report[name] = step()
    report["load_average_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(report, indent=1))
    md = markdown(report)
    (args.out / "speed.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
