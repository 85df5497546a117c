"""Backends bench: every engine backend (mattekit.core.backends) against ONNX Runtime fp32, in one run.

    .venv/bin/python -m bench.backends                   # everything (~5 minutes on 2 cores)
    .venv/bin/python -m bench.backends --part model      # the network's time only

1. model: the low-resolution network alone (what a backend replaces), at 640x360 (a 720p video
   frame's default pass) and 480x272, recurrent state fed back, in alternating blocks of calls;
   median ms per frame and the ratio to ONNX Runtime fp32's one-piece network run one frame at a
   time. Each backend as the engine runs it: its three stage parts one after another (a camera
   frame, ``Engine.step``) and overlapped in three threads (a video, ``mattekit.core.streams``).
2. accuracy: on the dev photos (``$MATTEKIT_EVAL_DIR/people``, default ``../shared/eval``), each
   backend's alpha against the fp32 full graph: mean and p99.9 of |difference| in 1/255, beside
   the yardstick: the fp32 network's own alpha change under ±0.001 of input noise (what "exact
   enough" means for a model this sensitive). On the ground-truth clip ``comp_D``: dtSSD with the
   recurrent state carried, per backend.
3. video: ``process_video`` end to end, 720p transparent WebM and 1080p composite MP4 at the
   default preset and size, per backend.
4. profile (only with ``--part profile``): where ONNX Runtime fp32's time goes in the three stage
   parts at 640x360, at one thread and at the engine's thread count, by op type, convolutions by
   kind: how far exact fp32 graph work could go (its floor is the convolutions' share, if every
   other op cost nothing), and Winograd's ceiling (issue 31): the whole network's time if every
   dense 3x3 stride-1 convolution ran with 2.25x, 4x or 5.06x fewer multiplies and free
   transforms, or took no time at all. Then a variant tried and left out: the backbone's blocks
   at 1/16 resolution (over half its time) in bf16 as well, their time on each runtime and the
   alpha that results on the dev photos (stills).

Writes ``bench/out/backends.json`` and ``bench/out/backends.md`` (the docs' table).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

from bench.speed import cpu_name  # noqa: E402
from bench.video import _street_clip, _upscaled  # noqa: E402
from mattekit import metrics  # noqa: E402
from mattekit.core import backends, derive, kernels  # noqa: E402
from mattekit.core.derive import PARTS  # noqa: E402
from mattekit.core.engine import Engine  # noqa: E402
from mattekit.core.passes import pass_ratio  # noqa: E402
from mattekit.options import Options, parse_background  # noqa: E402
from mattekit.video import VideoOptions, alpha_sequence, process_video, read_frames  # noqa: E402

OUT = ROOT / "bench" / "out"
EVAL = Path(os.environ.get("MATTEKIT_EVAL_DIR") or ROOT.parent / "shared" / "eval")
BASE = "onnxruntime"
DEEP = "bf16 decoder + bf16 backbone blocks at 1/16"


def _names() -> list[str]:
    return [n for n in backends.BACKENDS if backends.unavailable(n) is None]


class _Staged:
    """Engine.network (a backend's network as the engine runs it) with a session's ``run``."""

    def __init__(self, engine: Engine) -> None:
        self.network = engine.network

    def run(self, _names, feeds: dict) -> list:
        out = self.network(feeds[derive.LOWRES_INPUT], [feeds[n] for n in derive.STATE_IN])
        return [out[n] for n in (derive.COEFF_A, derive.COEFF_B, *derive.STATE_OUT)]


def _overlapped(engine: Engine, x: np.ndarray, frames: int) -> None:
    """``frames`` runs of the network as mattekit.core.streams runs a video: the three parts in three
    threads (one intra-op thread each), the state carried through the middle one."""
    engine = engine.with_threads(max(1, (engine.threads or backends.cpu_cores()) // len(PARTS)))  # as StagedStream does
    backend = engine.backend
    q1: queue.Queue = queue.Queue(4)
    q2: queue.Queue = queue.Queue(4)

    def backbone() -> None:
        for _ in range(frames):
            tensors = engine.run_submodel("backbone", {derive.LOWRES_INPUT: x}, backend)
            tensors[derive.LOWRES_INPUT] = x
            q1.put(tensors)

    def recurrent() -> None:
        state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        for _ in range(frames):
            tensors = engine.recurrent(q1.get(), state)
            state = [tensors[n] for n in derive.STATE_OUT]
            q2.put(tensors)

    threads = [threading.Thread(target=backbone, daemon=True), threading.Thread(target=recurrent, daemon=True)]
    for t in threads:
        t.start()
    for _ in range(frames):
        engine.run_submodel("output", q2.get(timeout=60), backend)  # a stage that failed: no hang
    for t in threads:
        t.join()


def part_model(reps: int, calls: int) -> list[dict]:
    """Per frame of a stream (state fed back): ONNX Runtime fp32's one-piece network one frame at
    a time (the reference); each backend's network as the engine runs it, one frame at a time
    (Engine.step) and with the stages overlapped (a video, mattekit.core.streams)."""
    engines = {n: Engine(backend=n).load() for n in _names()}
    rows = []
    for h, w in ((360, 640), (272, 480)):
        x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
        runs = {}

        def in_turn(session, x=x):
            state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
            for _ in range(calls):
                *_, r1, r2, r3, r4 = session.run(None, {derive.LOWRES_INPUT: x, **dict(zip(derive.STATE_IN, state))})
                state = [r1, r2, r3, r4]

        runs[(BASE, "one piece, in turn")] = lambda: in_turn(engines[BASE]._session("network"))
        for name, engine in engines.items():
            runs[(name, "stages, in turn")] = lambda engine=engine: in_turn(_Staged(engine))
            runs[(name, "stages overlapped")] = lambda engine=engine, x=x: _overlapped(engine, x, calls)
        for run in runs.values():
            run()  # warm-up: first-shape costs
        times: dict[tuple[str, str], list[float]] = {k: [] for k in runs}
        for _ in range(reps):  # alternating blocks: drift in the machine hits every variant alike
            for key, run in runs.items():
                t = time.perf_counter()
                run()
                times[key].append((time.perf_counter() - t) / calls)
        base = statistics.median(times[(BASE, "one piece, in turn")])
        for (name, mode), ts in times.items():
            row = {
                "size": f"{w}x{h}",
                "backend": name,
                "mode": mode,
                "ms": statistics.median(ts) * 1e3,
                "vs_onnxruntime": statistics.median(ts) / base,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


# Winograd F(m x m, 3x3) needs (m+2)^2 multiplies per m^2 outputs instead of 9 m^2: the most it can
# take off a 3x3 convolution's multiplies, if its transforms cost nothing (issue 31).
WINOGRAD = {"F(2x2,3x3)": 9 * 4 / 16, "F(4x4,3x3)": 9 * 16 / 36, "F(6x6,3x3)": 9 * 36 / 64}
WINOGRAD_KIND = "Conv 3x3 dense, stride 1"


def _conv_kind(args: dict) -> str:
    """Which kind of convolution a profiled Conv node is, from its shapes: Winograd applies only to
    the dense 3x3 ones with stride 1 (same height in and out)."""
    x, w = (next(iter(d.values())) for d in args["input_type_shape"][:2])
    y = next(iter(args["output_type_shape"][0].values()))
    if w[2:] == [1, 1]:
        return "Conv 1x1"
    if w[1] == 1 and w[0] > 1:
        return "Conv depthwise"
    if w[2:] == [3, 3] and y[2] == x[2]:
        return WINOGRAD_KIND
    return "Conv other"


def part_profile(threads: int, runs: int = 13) -> list[dict]:
    """ONNX Runtime's own profile of the stage parts as the engine loads them (default graph
    optimisations, so fused and blocked nodes), ``threads`` intra-op threads, a second frame (state
    carried); the median of each node's time over the runs after the first three. Convolutions are
    split by kind; the last row is the whole network's and Amdahl's ceiling for Winograd: the
    network's time if every Winograd-eligible convolution took 1/r of its time (r the multiply
    reduction of each tile size, transforms free), and if those convolutions took no time at all."""
    engine = Engine(backend=BASE, threads=threads).load()
    x = np.random.default_rng(0).random((1, 3, 360, 640), dtype=np.float32)
    zero = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    state = [engine.network(x, zero)[n] for n in derive.STATE_OUT]
    tensors = engine.run_submodel("backbone", {derive.LOWRES_INPUT: x})
    pool = {derive.LOWRES_INPUT: x, **dict(zip(derive.STATE_IN, state)), **tensors}
    pool.update(engine.recurrent({**tensors, derive.LOWRES_INPUT: x}, state))
    import onnxruntime as ort

    rows = []
    with tempfile.TemporaryDirectory(prefix="mattekit-bench-profile-") as tmp:
        for part in PARTS:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / part)
            session = ort.InferenceSession(str(engine._paths[part]), options, providers=["CPUExecutionProvider"])
            feeds = {i.name: pool[i.name] for i in session.get_inputs()}
            for _ in range(runs):
                session.run(None, feeds)
            events = json.loads(Path(session.end_profiling()).read_text())
            per_node: dict[str, list[float]] = {}
            kind_of = {}
            for e in events:
                if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                    per_node.setdefault(e["name"], []).append(e["dur"] / 1e3)
                    op = e["args"]["op_name"]
                    kind_of[e["name"]] = _conv_kind(e["args"]) if op == "Conv" else op
            by_op: dict[str, float] = {}
            for name, ms in per_node.items():
                by_op[kind_of[name]] = by_op.get(kind_of[name], 0.0) + statistics.median(ms[3:])
            row = {
                "part": part,
                "threads": threads,
                "ms": sum(by_op.values()),
                "by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    total = sum(r["ms"] for r in rows)
    conv = sum(ms for r in rows for op, ms in r["by_op"].items() if op.startswith("Conv"))
    eligible = sum(r["by_op"].get(WINOGRAD_KIND, 0.0) for r in rows)
    share = eligible / total
    ceiling = {tile: 1 - share * (1 - 1 / r) for tile, r in WINOGRAD.items()}
    ceiling["3x3 convolutions free"] = 1 - share
    rows.append(
        {
            "part": "all",
            "threads": threads,
            "ms": total,
            "conv_ms": conv,
            "conv_share": conv / total,
            "winograd_ms": eligible,
            "winograd_share": share,
            "ceiling": ceiling,
        }
    )
    print(json.dumps(rows[-1]), flush=True)
    return rows


def _deep_blocks(backbone: Path, tmp: Path, h: int = 360, w: int = 640) -> tuple[Path, str, list[str]]:
    """The backbone part's blocks at 1/16 resolution as a model of their own (found by shape: the
    nodes whose output has 1/16 of the rows): its file, its one input (the last 1/8-resolution
    tensor) and its outputs (the backbone's outputs at 1/16)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(backbone))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 3, h, w)):
        dim.ClearField("dim_param")
        dim.dim_value = value
    inferred = shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    rows = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
    deep_rows = -(-h // 16)
    is_deep = {name: len(shape) == 4 and shape[2] == deep_rows for name, shape in rows.items()}
    weights = {i.name for i in model.graph.initializer}
    boundary = {
        i
        for n in inferred.graph.node
        if is_deep.get(n.output[0])
        for i in n.input
        if i and i not in weights and len(rows.get(i, [])) == 4 and rows[i][2] > deep_rows
    }
    assert len(boundary) == 1, f"expected one tensor into the 1/16 blocks, found {sorted(boundary)}"
    outputs = [o.name for o in model.graph.output if is_deep.get(o.name)]
    path = tmp / "deep.onnx"
    onnx.utils.extract_model(str(backbone), str(path), sorted(boundary), outputs)
    return path, boundary.pop(), outputs


def part_deep_bf16() -> list[dict]:
    """The variant: the decoder in bf16 (the openvino-bf16 backend) and the backbone's 1/16 blocks
    too, against the fp32 full graph on the dev photos as stills; and those blocks' time."""
    if "openvino-bf16" not in _names():
        print("skip the bf16 backbone variant: no openvino-bf16 backend here", file=sys.stderr)
        return []
    import onnx
    import onnxruntime as ort

    from mattekit.core.backends.openvino import _PerShape

    engine = Engine(backend="openvino-bf16", threads=1).load()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mattekit-bench-deep-") as tmpname:
        tmp = Path(tmpname)
        backbone = engine._paths["backbone"]
        deep_path, into, deep_out = _deep_blocks(backbone, tmp)
        onnx.utils.extract_model(str(backbone), str(tmp / "early.onnx"), [derive.LOWRES_INPUT], [into])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        early = ort.InferenceSession(str(tmp / "early.onnx"), options, providers=["CPUExecutionProvider"])
        deep32 = ort.InferenceSession(str(deep_path), options, providers=["CPUExecutionProvider"])
        deep16 = _PerShape(deep_path, 1)
        x = np.random.default_rng(0).random((1, 3, 360, 640), dtype=np.float32)
        boundary = early.run(None, {derive.LOWRES_INPUT: x})[0]
        for name, session in (
            ("backbone (whole part), ONNX Runtime fp32", None),
            ("its 1/16 blocks, ONNX Runtime fp32", deep32),
            ("its 1/16 blocks, OpenVINO bf16", deep16),
        ):

            def call(session=session):
                if session is None:
                    engine.run_submodel("backbone", {derive.LOWRES_INPUT: x})
                else:
                    session.run(None, {into: boundary})

            for _ in range(3):
                call()
            times = []
            for _ in range(15):
                t = time.perf_counter()
                call()
                times.append(time.perf_counter() - t)
            rows.append({"what": name, "ms_640x360_1thread": statistics.median(times) * 1e3})
            print(json.dumps(rows[-1]), flush=True)
        photos = sorted((EVAL / "people" / "image").glob("*.jpg"))
        reference = Engine(fast=False).load()
        zero = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        found: dict[str, list[tuple[float, float]]] = {"openvino-bf16": [], DEEP: []}
        for path in photos:
            rgb = np.asarray(Image.open(path).convert("RGB"))
            ratio = pass_ratio("auto", *rgb.shape[:2])
            want = reference.step(rgb, ratio)[0].alpha
            lowres = kernels.downsample(rgb, ratio)
            full = engine.run_submodel("backbone", {derive.LOWRES_INPUT: lowres})
            boundary = early.run(None, {derive.LOWRES_INPUT: lowres})[0]
            deep = dict(zip(deep_out, deep16.run(None, {into: boundary})))
            for name, tensors in (("openvino-bf16", full), (DEEP, {**full, **deep})):
                tensors = engine.recurrent({**tensors, derive.LOWRES_INPUT: lowres}, zero)
                out = engine.output(tensors)
                alpha = kernels.tail(out[derive.COEFF_A], out[derive.COEFF_B], rgb)[0]
                found[name].append(_difference(alpha, want))
            print(path.name, {n: f"{v[-1][0]:.3f}/{v[-1][1]:.2f}" for n, v in found.items()}, flush=True)
        for name, v in found.items():
            if v:
                rows.append(_summary(name, "still", v))
                print(json.dumps(rows[-1]), flush=True)
    return rows


def _difference(alpha: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """Mean and p99.9 of |alpha - want|, in 1/255."""
    d = np.abs(alpha - want)
    return float(d.mean()) * 255, float(np.percentile(d, 99.9)) * 255


def _summary(what: str, mode: str, found: list[tuple[float, float]]) -> dict:
    """One row over the photos' (mean, p99.9) differences: their means, and the worst p99.9."""
    return {
        "what": what,
        "mode": mode,
        "photos": len(found),
        "mean_255": float(np.mean([a for a, _ in found])),
        "p999_255": float(np.mean([p for _, p in found])),
        "worst_p999_255": float(np.max([p for _, p in found])),
    }


def _network_alpha(session, rgb: np.ndarray, ratio: float, state: list, noise: bool = False) -> np.ndarray:
    x = kernels.downsample(rgb, ratio)
    if noise:
        x = np.clip(x + np.random.default_rng(0).uniform(-1e-3, 1e-3, x.shape).astype(np.float32), 0, 1)
    a, b = session.run(None, {derive.LOWRES_INPUT: x, **dict(zip(derive.STATE_IN, state))})[:2]
    return kernels.tail(a, b, rgb)[0]


NOISE = "fp32 under ±0.001 input noise"


def part_accuracy(frames_cap: int) -> list[dict]:
    """Each backend's network on each dev photo, against the fp32 full graph: as a still (zero
    state: the issue's measure) and as the second frame of a still clip (the state of the first
    carried: what the engine runs a backend on). The noise yardstick under the same state."""
    photos = sorted((EVAL / "people" / "image").glob("*.jpg"))
    if not photos:
        print(f"skip accuracy: no photos under {EVAL}", file=sys.stderr)
        return []
    reference = Engine(fast=False).load()
    engines = {n: Engine(backend=n).load() for n in _names()}
    plain = engines[BASE]._session("network")
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for path in photos:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        ratio = pass_ratio("auto", *rgb.shape[:2])
        zero = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        first, state = reference.step(rgb, ratio)
        second = reference.step(rgb, ratio, state)[0].alpha
        for mode, st, want in (("still", zero, first.alpha), ("second frame", state.tensors, second)):
            diffs = {NOISE: _difference(_network_alpha(plain, rgb, ratio, st, True), _network_alpha(plain, rgb, ratio, st))}
            for name, engine in engines.items():
                diffs[name] = _difference(_network_alpha(_Staged(engine), rgb, ratio, st), want)
            for name, d in diffs.items():
                found.setdefault((name, mode), []).append(d)
        print(path.name, {f"{n}/{m}": f"{v[-1][0]:.3f}/{v[-1][1]:.2f}" for (n, m), v in found.items()}, flush=True)
    rows = [_summary(n, m, v) for (n, m), v in found.items()]
    clip = EVAL / "video" / "comp_D.mp4"
    if clip.is_file():
        frames = list(read_frames(clip, limit=frames_cap))
        gt = [np.asarray(Image.open(EVAL / "video" / "comp_D_alpha" / f"{i:06d}.png")) / 255.0 for i in range(len(frames))]
        for row in rows:
            if row["mode"] == "second frame":
                engine = reference if row["what"] == NOISE else engines[row["what"]]
                row["dtssd_comp_D"] = metrics.dtssd(alpha_sequence(frames, engine=engine), gt)
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def part_video(frames_cap: int) -> list[dict]:
    src = _street_clip("video")
    if src is None:
        return []
    rows = []
    with tempfile.TemporaryDirectory(prefix="mattekit-bench-backends-") as tmpname:
        tmp = Path(tmpname)
        clips = {720: src, 1080: _upscaled(src, frames_cap, (1920, 1080), tmp)}
        runs = [
            (720, "transparent WebM (VP9 alpha)", "out.webm", Options()),
            (1080, "composite MP4 on colour", "out.mp4", Options(background=parse_background("white"))),
        ]
        for name in _names():
            engine = Engine(backend=name).load()
            process_video(src, tmp / "warm.webm", Options(), VideoOptions(max_frames=3), engine=engine)
            for height, label, target, options in runs:
                result = process_video(clips[height], tmp / target, options, VideoOptions(max_frames=frames_cap), engine=engine)
                row = {
                    "backend": name,
                    "size": f"{result.width}x{result.height}",
                    "output": label,
                    "fps": result.frames / result.seconds,
                    "frames": result.frames,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def markdown(report: dict) -> str:
    lines = [f"Machine: {report['cpu']}; auto picks `{report['auto']}` here.", ""]
    if report["model"]:
        lines += ["| low-resolution network, per frame | backend | run | ms | vs ONNX Runtime fp32 |", "|---|---|---|---:|---:|"]
        lines += [
            f"| {r['size']} | {r['backend']} | {r['mode']} | {r['ms']:.1f} | {r['vs_onnxruntime']:.2f}x |"
            for r in report["model"]
        ]
        lines.append("")
    if report["accuracy"]:
        lines += [
            "| alpha vs the fp32 full graph (dev photos) | run | mean (1/255) | p99.9 (1/255), mean / worst photo | dtSSD comp_D |",
            "|---|---|---:|---:|---:|",
        ]
        for r in report["accuracy"]:
            dt = f"{r['dtssd_comp_D']:.3f}" if "dtssd_comp_D" in r else "–"
            label = r["what"] if r["what"] == NOISE else f"backend {r['what']}"
            lines.append(
                f"| {label} | {r['mode']} | {r['mean_255']:.3f} | {r['p999_255']:.2f} / {r['worst_p999_255']:.2f} | {dt} |"
            )
        lines.append("")
        lines.append("(the noise rows' dtSSD is the fp32 full graph's own)")
        lines.append("")
    if report.get("profile"):
        for rows in report["profile"]:
            n = rows[0]["threads"]
            lines += [f"| ONNX Runtime fp32, 640x360, {n} thread{'s' * (n > 1)} | ms | top ops (ms) |", "|---|---:|---|"]
            for r in rows[:-1]:
                top = ", ".join(f"{op} {ms:.1f}" for op, ms in list(r["by_op"].items())[:5])
                lines.append(f"| {r['part']} | {r['ms']:.1f} | {top} |")
            r = rows[-1]
            lines.append(
                f"| all three | {r['ms']:.1f} | every Conv {r['conv_ms']:.1f} ({r['conv_share']:.0%}); "
                f"{WINOGRAD_KIND} {r['winograd_ms']:.1f} ({r['winograd_share']:.0%}) |"
            )
            lines.append("")
            best = ", ".join(f"{tile} {ratio:.2f}x" for tile, ratio in r["ceiling"].items())
            lines += [f"Winograd's ceiling at {n} thread{'s' * (n > 1)} (the network's time vs today's): {best}.", ""]
    if report.get("deep_bf16"):
        lines += [
            "| the bf16 backbone variant | ms at 640x360, 1 thread | alpha vs fp32, stills: mean / p99.9 mean / worst (1/255) |",
            "|---|---:|---:|",
        ]
        for r in report["deep_bf16"]:
            if "ms_640x360_1thread" in r:
                lines.append(f"| {r['what']} | {r['ms_640x360_1thread']:.1f} | |")
            else:
                lines.append(f"| {r['what']} | | {r['mean_255']:.3f} / {r['p999_255']:.2f} / {r['worst_p999_255']:.2f} |")
        lines.append("")
    if report["video"]:
        lines += ["| video, default preset and size | backend | fps |", "|---|---|---:|"]
        lines += [f"| {r['size']} {r['output']} | {r['backend']} | {r['fps']:.1f} |" for r in report["video"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["model", "accuracy", "video", "profile", "all"], default="all")
    ap.add_argument("--reps", type=int, default=5, help="alternating blocks per backend (model)")
    ap.add_argument(
        "--calls", type=int, default=20, help="frames per block (model; overlapped stages fill and drain once a block)"
    )
    ap.add_argument("--frames", type=int, default=60, help="frames per clip (accuracy dtSSD, video)")
    args = ap.parse_args()
    report = {"cpu": cpu_name(), "auto": backends.resolve("auto"), "model": [], "accuracy": [], "video": []}
    print(report["cpu"], "auto:", report["auto"], flush=True)
    if args.part in ("model", "all"):
        report["model"] = part_model(args.reps, args.calls)
    if args.part in ("accuracy", "all"):
        report["accuracy"] = part_accuracy(args.frames)
    if args.part in ("video", "all"):
        report["video"] = part_video(args.frames)
    if args.part == "profile":
        report["profile"] = [part_profile(1), part_profile(backends.cpu_cores())]
        report["deep_bf16"] = part_deep_bf16()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "backends.json").write_text(json.dumps(report, indent=1))
    (OUT / "backends.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
