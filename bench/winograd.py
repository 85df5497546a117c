"""Winograd for RVM's dense 3x3 convolutions (issue 31): does a runtime with Winograd kernels beat
ONNX Runtime fp32 on this CPU? Measured, one run, the CPU named.

    pip install --no-deps ncnn pnnx                   # ~40 MB: ncnn's runtime, pnnx's converter binary
    .venv/bin/python -m bench.winograd                # ~2 minutes on 2 cores
    .venv/bin/python -m bench.winograd --part layers  # (also: network)

``network``: the low-resolution network (the engine's derived one-piece ``network``, state as
inputs) at a 640x360 pass, fixed to that shape and constant-folded by ONNX Runtime, converted by
pnnx to ncnn: ncnn with Winograd, and without, against ONNX Runtime fp32 on the same inputs
(median ms, blocks alternated; the largest difference of any output).

``layers``: RVM's largest dense 3x3 convolutions alone at their shapes in that pass, random
weights: ONNX Runtime, ncnn Winograd, ncnn direct. And the first step of Winograd F(2x2, 3x3)
written as ONNX Runtime ops (how a graph rewrite would run it on ONNX Runtime's own kernels):
the input transform ``B^T d B`` alone, as one depthwise 4x4 stride-2 convolution giving the 16
transformed planes of each channel, against the whole direct convolution. If that step alone is
not much cheaper than the whole convolution, the rewrite cannot win (the batched products and
the output transform come on top).

Writes ``bench/out/winograd.json`` and ``bench/out/winograd.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.speed import cpu_name

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
THREADS = 2
PASS = (360, 640)  # a 720p frame's default pass
# The network's largest dense 3x3 convolutions at a 640x360 pass (in, out, height, width): the
# output block, the decoder's blocks at 1/2, 1/4, 1/8, and the recurrent block at 1/16.
LAYERS = [
    (35, 16, 360, 640),
    (16, 16, 360, 640),
    (59, 32, 180, 320),
    (32, 32, 180, 320),
    (107, 40, 90, 160),
    (171, 80, 45, 80),
    (128, 64, 23, 40),
]
# Winograd F(2x2, 3x3)'s input transform: V = B^T d B on each 4x4 tile (stride 2).
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)


def _tools() -> tuple[Any, Path]:
    import importlib.util

    # pnnx's package imports torch; only its converter binary is used here, found without importing
    spec = importlib.util.find_spec("pnnx")
    try:
        import ncnn
    except ImportError:
        spec = None
    if spec is None or spec.origin is None:
        sys.exit("bench.winograd needs ncnn and pnnx's converter: pip install --no-deps ncnn pnnx")
    return ncnn, Path(spec.origin).parent / "pnnx"


def _median_ms(fn: Callable[[], Any], runs: int = 15) -> float:
    fn()
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _ort(model: Any) -> Any:
    """ONNX Runtime as the engine sets it up (mattekit.core.runtime), on ``THREADS`` threads."""
    import onnxruntime as ort

    from mattekit.core import runtime

    return ort.InferenceSession(model, runtime.session_options(THREADS), providers=["CPUExecutionProvider"])


def _ncnn_net(ncnn: Any, param: Path, winograd: bool) -> Any:
    net = ncnn.Net()
    net.opt.num_threads = THREADS
    # fp32 throughout, as ONNX Runtime's: no fp16/bf16 storage or arithmetic
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.opt.use_winograd_convolution = winograd
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    return net


def _ncnn_run(ncnn: Any, net: Any, inputs: list[np.ndarray], outputs: int) -> list[np.ndarray]:
    ex = net.create_extractor()
    for i, x in enumerate(inputs):
        ex.input(f"in{i}", ncnn.Mat(np.ascontiguousarray(x[0])))
    return [np.array(ex.extract(f"out{i}")[1])[None] for i in range(outputs)]


def _convert(pnnx: Path, onnx_path: Path, shapes: list[tuple[int, ...]]) -> Path:
    spec = ",".join("[" + ",".join(map(str, s)) + "]" for s in shapes)
    done = subprocess.run(
        [str(pnnx), onnx_path.name, f"inputshape={spec}", "fp16=0"], cwd=onnx_path.parent, capture_output=True, text=True
    )
    param = onnx_path.with_suffix(".ncnn.param")
    if done.returncode or not param.exists():
        raise RuntimeError(f"pnnx could not convert {onnx_path.name}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return param


def part_network(tmp: Path) -> list[dict[str, Any]]:
    import onnx
    import onnxruntime as ort

    from mattekit.core import derive, store
    from mattekit.core.models import rvm

    ncnn, pnnx = _tools()
    info = rvm.locate()
    network = derive.ensure_submodels(info.path, info.sha256, store.home())["network"]
    base = _ort(str(network))
    rng = np.random.default_rng(0)
    feeds: dict[str, np.ndarray] = {derive.LOWRES_INPUT: rng.random((1, 3, *PASS), dtype=np.float32)}
    feeds.update({n: np.zeros((1, 1, 1, 1), np.float32) for n in derive.STATE_IN})
    first = dict(zip((o.name for o in base.get_outputs()), base.run(None, feeds)))
    # the state a second frame carries (shapes and values of a real one)
    feeds.update({i: first[o] for i, o in zip(derive.STATE_IN, derive.STATE_OUT)})
    want = base.run(None, feeds)
    shapes = {derive.LOWRES_INPUT: (1, 3, *PASS), **{n: feeds[n].shape for n in derive.STATE_IN}}
    fixed = onnx.load(str(network))
    for value in fixed.graph.input:
        for dim, size in zip(value.type.tensor_type.shape.dim, shapes[value.name]):
            dim.ClearField("dim_param")
            dim.dim_value = size
    static = tmp / "net_static.onnx"
    onnx.save(fixed, str(static))
    folded = tmp / "net.onnx"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # folds the shape arithmetic
    opts.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(static), opts, providers=["CPUExecutionProvider"])
    order = [i.name for i in fixed.graph.input]
    param = _convert(pnnx, folded, [shapes[n] for n in order])
    inputs = [feeds[n] for n in order]
    candidates: dict[str, Callable[[], Any]] = {"onnxruntime fp32 (one piece)": lambda: base.run(None, feeds)}
    nets = {w: _ncnn_net(ncnn, param, w) for w in (True, False)}
    candidates["ncnn fp32, Winograd"] = lambda: _ncnn_run(ncnn, nets[True], inputs, len(want))
    candidates["ncnn fp32, no Winograd"] = lambda: _ncnn_run(ncnn, nets[False], inputs, len(want))
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(3):  # alternating blocks: a drifting machine load hits every candidate alike
        for name, fn in candidates.items():
            times[name].append(_median_ms(fn, 7))
    rows = []
    base_ms = statistics.median(times["onnxruntime fp32 (one piece)"])
    for name, fn in candidates.items():
        got = fn()
        diff = max(float(np.abs(np.asarray(a) - b).max()) for a, b in zip(got, want))
        ms = statistics.median(times[name])
        rows.append({"what": name, "ms": round(ms, 1), "ratio": round(ms / base_ms, 2), "max_abs_diff": diff})
        print(rows[-1], flush=True)
    return rows


def _conv_model(cin: int, cout: int, h: int, w: int) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array((rng.standard_normal((cout, cin, 3, 3)) * 0.1).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), "B")
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, h, w])],
        [weights, bias],
    )
    # IR 8: pnnx's own ONNX Runtime reads up to IR 13
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString())


def _input_transform_model(cin: int, h: int, w: int) -> bytes:
    """Winograd F(2x2, 3x3)'s input transform as one ONNX Runtime op: a depthwise 4x4 stride-2
    convolution whose 16 kernels per channel are the 16 rows of ``B^T (x) B^T``."""
    from onnx import TensorProto, helper, numpy_helper

    kernels = np.einsum("ai,bj->abij", B_T, B_T).reshape(16, 4, 4)  # V[a, b] = sum B_T[a, i] d[i, j] B_T[b, j]
    weights = numpy_helper.from_array(np.tile(kernels[None], (cin, 1, 1, 1)).reshape(cin * 16, 1, 4, 4), "W")
    node = helper.make_node("Conv", ["x", "W"], ["v"], kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1], group=cin)
    graph = helper.make_graph(
        [node],
        "winograd_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, cin * 16, h // 2, w // 2])],
        [weights],
    )
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString())


def _layer(ncnn: Any, pnnx: Path, tmp: Path, cin: int, cout: int, h: int, w: int) -> dict[str, Any]:
    model = tmp / f"conv{cin}x{cout}_{h}x{w}.onnx"
    model.write_bytes(_conv_model(cin, cout, h, w))
    x = np.random.default_rng(1).standard_normal((1, cin, h, w)).astype(np.float32)
    direct = _ort(str(model))
    (want,) = direct.run(None, {"x": x})
    param = _convert(pnnx, model, [(1, cin, h, w)])
    transform = _ort(_input_transform_model(cin, h, w))
    ort_ms = _median_ms(lambda: direct.run(None, {"x": x}))
    row: dict[str, Any] = {
        "layer": f"{cin}->{cout} @ {w}x{h}",
        "gmac": round(cin * cout * 9 * h * w / 1e9, 3),
        "onnxruntime_ms": round(ort_ms, 2),
    }
    for winograd, key in ((True, "ncnn_winograd"), (False, "ncnn_direct")):
        net = _ncnn_net(ncnn, param, winograd)

        def run(net: Any = net) -> list[np.ndarray]:
            return _ncnn_run(ncnn, net, [x], 1)

        got = run()[0]
        row[key] = round(_median_ms(run) / ort_ms, 2)
        row[key + "_max_abs_diff"] = float(np.abs(got - want).max())
    row["ort_input_transform_alone"] = round(_median_ms(lambda: transform.run(None, {"x": x})) / ort_ms, 2)
    return row


def part_layers(tmp: Path) -> list[dict[str, Any]]:
    ncnn, pnnx = _tools()
    rows = []
    for cin, cout, h, w in LAYERS:
        rows.append(_layer(ncnn, pnnx, tmp, cin, cout, h, w))
        print(rows[-1], flush=True)
    return rows


def markdown(report: dict[str, Any]) -> str:
    lines = [f"CPU: {report['cpu']}, {THREADS} threads. Ratios to ONNX Runtime fp32 in the same run (lower is faster).", ""]
    if report.get("network"):
        lines += ["| the network at 640x360, state carried | ms | ratio | max abs diff |", "|---|---:|---:|---:|"]
        lines += [f"| {r['what']} | {r['ms']} | {r['ratio']}x | {r['max_abs_diff']:.1e} |" for r in report["network"]]
        lines.append("")
    if report.get("layers"):
        lines += [
            "| 3x3 conv | G mult-adds | ONNX Runtime ms | ncnn Winograd | ncnn direct | F(2,3) input transform alone on ORT |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['layer']} | {r['gmac']} | {r['onnxruntime_ms']} | {r['ncnn_winograd']}x | {r['ncnn_direct']}x | "
            f"{r['ort_input_transform_alone']}x |"
            for r in report["layers"]
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["network", "layers", "all"], default="all")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    report: dict[str, Any] = {"cpu": cpu_name(), "threads": THREADS}
    tmp = Path(tempfile.mkdtemp(prefix="mattekit-winograd-"))
    try:
        if args.part in ("network", "all"):
            report["network"] = part_network(tmp)
        if args.part in ("layers", "all"):
            report["layers"] = part_layers(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "winograd.json").write_text(json.dumps(report, indent=2))
    (args.out / "winograd.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
