"""RVM split in two: ONNX Runtime runs only the low-resolution network; the full-resolution
tail runs here, in OpenCV.

Why: at the ratios stills and video use (0.125-0.375), 40-60 % of the full model's time is its
full-resolution tail (bilinear upsample of the deep-guided-filter coefficients, then Mul/Add/Clip
on full-size float tensors for ``fgr`` and ``pha``) — memory-bound work that ONNX Runtime does
single-pass per op. Cut the graph at the guided-filter coefficients ``A`` (tensor ``777``) and
``b`` (``779``), both ``[1, 4, h, w]`` (channels 0-2 for the foreground, 3 for alpha), and the
tail becomes::

    pha   = clip(up(A3) * mean_c(src) + up(b3), 0, 1)
    fgr_c = clip((up(A_c) + 1) * src_c + up(b_c), 0, 1)

with ``up`` = bilinear, half-pixel centres (OpenCV ``INTER_LINEAR`` on float32 matches ONNX
Runtime's Resize to ~5e-7). The network's input is the model's own first op, ``Resize_3(src)``
(linear, ``pytorch_half_pixel``, scales ``[1, 1, r, r]``), recomputed here exactly: a separable
bilinear gather at the same sample positions, so the low-resolution pixels are the ones the full
model sees, at any ratio (an OpenCV ``INTER_AREA``/``INTER_LINEAR`` shrink instead changes alpha
visibly). ``tests/test_fastpath.py`` checks the split against the full graph on real photos.

Several passes over one photo (the quality presets) split the low-resolution network once more,
at the recurrent state: the encoder runs once, every pass but the last only updates the state
(see ``PARTS``).

The sub-models are derived once from the verified model file and cached beside it, named by the
source's SHA-256, so later start-ups only load them.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from ..deadline import Deadline
from ..deadline import check as check_deadline
from .backends import cpu_cores

log = logging.getLogger("mattekit.core.fastpath")

# Bump when the derivation below changes, so stale cached sub-models are never reused.
DERIVATION_VERSION = 3
LOWRES_INPUT = "389"  # Resize_3(src, scales=[1, 1, r, r]): the low-resolution source
COEFF_A = "777"
COEFF_B = "779"
STATE_IN = ("r1i", "r2i", "r3i", "r4i")
STATE_OUT = ("r1o", "r2o", "r3o", "r4o")

# The sub-models derived from RVM, each cached as its own file:
#   lowres   389 + r*i -> A, b + r*o       one frame: the whole low-resolution network
#   encoder  389 -> features                the part that never reads the recurrent state
#   warmup   features + r*i -> r*o          a repeated pass whose A, b nobody reads
#   decoder  features + r*i -> A, b + r*o   the last of several passes
#   backbone   389 -> staged features           the encoder, handing over less (see _pull_back)
#   recurrent  staged features + r*i -> handover + r*o   the decoder's blocks that read the state
#   output     staged features + handover -> A, b        the rest: never reads the state
# Several passes over one photo (the presets) run the encoder once, ``warmup`` for all but the
# last pass and ``decoder`` for the last: the encoder's output does not depend on the state, and
# a warm-up pass skips the full-size output block and guided filter, whose only use is A and b.
# Measured at 1080p (a 640x360 low-res pass, 2 threads): encoder ~47 ms, warmup ~41 ms, decoder
# ~90 ms, the whole network ~125 ms; 4 passes cost ~0.5x of 4 whole ones, with identical outputs.
# A video's frames run backbone, recurrent and output as stages that overlap from frame to frame
# (:mod:`mattekit.core.stages`): only the recurrent part has to wait for the previous frame.
PARTS = ("lowres", "encoder", "warmup", "decoder", "backbone", "recurrent", "output")


# -- the sub-models -------------------------------------------------------------------------
def derived_path(model_path: Path, sha256: str, cache_dir: Path | None = None, part: str = "lowres") -> Path:
    """Where sub-model ``part`` of ``model_path`` is cached (keyed by the model's hash)."""
    folder = cache_dir or model_path.parent
    return folder / f"rvm_{part}_{sha256[:16]}_v{DERIVATION_VERSION}.onnx"


def _state_free_features(graph) -> list[str]:
    """Tensors computed without the recurrent state and read by nodes that use it (the encoder's
    outputs), in graph order; constants and weights excluded: each sub-model keeps its own."""
    state_dependent = set(STATE_IN)
    for node in graph.node:  # ONNX graphs are topologically sorted
        if any(i in state_dependent for i in node.input):
            state_dependent.update(node.output)
    constants = {t.name for t in graph.initializer}
    constants.update(o for n in graph.node if n.op_type == "Constant" for o in n.output)
    found: list[str] = []
    for node in graph.node:
        if any(i in state_dependent for i in node.input):
            for name in node.input:
                if name and name not in state_dependent and name not in constants and name not in found:
                    found.append(name)
    return found


def _pull_back(graph, features: list[str]) -> list[str]:
    """``features`` with each output of a stride-1 convolution that widens its input replaced by
    that input: what the stages (``backbone`` → ``recurrent``/``output``) hand over then. Why:
    every tensor that crosses from one ONNX Runtime session to another is copied out of its
    blocked layout and back in; the widening convolutions' outputs were 59 MB a frame at 640x360,
    their inputs a third of that, and the convolution runs as well in the stage that reads it.
    Measured (one thread each, OpenVINO bf16 decoder): backbone 72 -> 52 ms, recurrent 46 -> 52,
    output 39 -> 35."""
    weights = {t.name: t.dims for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    found: list[str] = []
    for name in features:
        node = producer.get(name)
        if node is not None and node.op_type == "Conv" and node.input[1] in weights:
            attrs = {a.name: a for a in node.attribute}
            strides = list(attrs["strides"].ints) if "strides" in attrs else [1, 1]
            group = attrs["group"].i if "group" in attrs else 1
            out_channels, in_per_group = weights[node.input[1]][:2]
            if set(strides) == {1} and in_per_group * group < out_channels:
                name = node.input[0]
        if name not in found:
            found.append(name)
    return found


def _walk_back(graph, outputs, inputs) -> tuple[set[int], set[str], set[str]]:
    """The nodes (by index) that compute ``outputs`` from ``inputs``, the tensors they need
    (inputs excluded) and the inputs they read. By index: protobuf may wrap one node in a new
    Python object at each access, so ``id()`` is no name for a node beyond one loop."""
    producer = {out: (index, node) for index, node in enumerate(graph.node) for out in node.output}
    inputs = set(inputs)
    nodes: set[int] = set()
    needed: set[str] = set()
    read: set[str] = set()
    stack = list(outputs)
    while stack:
        tensor = stack.pop()
        if tensor in inputs:
            read.add(tensor)
            continue
        if tensor in needed:
            continue
        needed.add(tensor)
        found = producer.get(tensor)
        if found is not None and found[0] not in nodes:
            nodes.add(found[0])
            stack.extend(i for i in found[1].input if i)
    return nodes, needed, read


def _handover(graph, features: list[str]) -> list[str]:
    """What the state-reading part of the decoder hands to the rest: tensors computed by the
    nodes that ``STATE_OUT`` needs and read by the nodes only ``A``/``b`` need, in graph order.
    (In RVM: the last recurrent block's output, half of it the new ``r1o``.)"""
    recurrent = _walk_back(graph, STATE_OUT, [*features, *STATE_IN])[0]
    made = {out for index, node in enumerate(graph.node) if index in recurrent for out in node.output}
    rest = _walk_back(graph, [COEFF_A, COEFF_B], [*features, *STATE_IN])[0] - recurrent
    found: list[str] = []
    for index, node in enumerate(graph.node):
        if index in rest:
            if any(i in STATE_IN for i in node.input):
                raise ValueError(f"{node.name} reads the recurrent state outside the recurrent blocks")
            found.extend(i for i in node.input if i in made and i not in found)
    return found


def _extract(model, typed, inputs: list[str], outputs: list[str], name: str):
    """The sub-graph of ``model`` computing ``outputs`` from ``inputs`` (inputs it does not need
    are dropped), as a checked ONNX model. ``typed``: value infos by tensor name."""
    import onnx
    from onnx import helper

    graph = model.graph
    kept, needed, used_inputs = _walk_back(graph, outputs, inputs)
    if "src" in needed or "downsample_ratio" in needed:
        raise ValueError("this model's low-resolution network depends on src beyond Resize_3")
    sub = helper.make_graph(
        [n for index, n in enumerate(graph.node) if index in kept],
        name,
        [typed[n] for n in inputs if n in used_inputs],
        [typed[n] for n in outputs],
        [t for t in graph.initializer if t.name in needed],
    )
    derived = helper.make_model(sub, opset_imports=model.opset_import, producer_name="mattekit.core.fastpath")
    derived.ir_version = model.ir_version
    onnx.checker.check_model(derived)
    return derived


def _channels(typed: dict, name: str) -> int | None:
    dims = typed[name].type.tensor_type.shape.dim if name in typed else []
    return dims[1].dim_value if len(dims) > 1 and dims[1].HasField("dim_value") else None


def split_concat_convs(model) -> int:
    """Rewrite each ``Conv(Concat(x1, x2, ...))`` as ``Conv(x1, W1) + Conv(x2, W2) + ...`` in
    place; returns how many were rewritten.

    The same sum, in another order (outputs change by ~1e-5 at most). Why: RVM's decoder concatenates
    odd channel counts (e.g. 32 upsampled + 3 source channels), which keeps ONNX Runtime's
    blocked (NCHWc) convolutions off those layers and copies the tensors into the concat; per
    part, the big ones run blocked. Measured on the low-resolution network: 0.87x the time at
    480x270, 0.90x at 640x426.
    """
    from onnx import helper, numpy_helper, shape_inference

    graph = model.graph
    typed = {v.name: v for v in (*shape_inference.infer_shapes(model).graph.value_info, *graph.input)}
    weights = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, int] = {o.name: 1 for o in graph.output}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    nodes, added, rewritten = [], [], 0
    for node in graph.node:
        concat = producer.get(node.input[0]) if node.op_type == "Conv" else None
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (
            concat is None
            or concat.op_type != "Concat"
            or readers[concat.output[0]] != 1
            or attrs.get("group", 1) != 1
            or node.input[1] not in weights
            or {a.name: a.i for a in concat.attribute}.get("axis") != 1
        ):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weights[node.input[1]])
        found = [_channels(typed, x) for x in concat.input]
        if found.count(None) == 1:  # the one unknown count is what the weights have left
            found[found.index(None)] = w.shape[1] - sum(c for c in found if c)
        counts = [c for c in found if c is not None]
        if len(counts) != len(found) or sum(counts) != w.shape[1] or min(counts) < 1:
            nodes.append(node)
            continue
        terms, start = [], 0
        for k, (x, count) in enumerate(zip(concat.input, counts)):
            name = f"{node.name}_w{k}"
            added.append(numpy_helper.from_array(np.ascontiguousarray(w[:, start : start + count]), name))
            start += count
            bias = node.input[2:] if k == 0 else []
            terms.append(f"{node.name}_term{k}")
            nodes.append(helper.make_node("Conv", [x, name, *bias], [terms[-1]], name=f"{node.name}_{k}", **attrs))
        total = terms[0]
        for k, term in enumerate(terms[1:], 1):
            out = node.output[0] if k == len(terms) - 1 else f"{node.name}_sum{k}"
            nodes.append(helper.make_node("Add", [total, term], [out], name=f"{node.name}_add{k}"))
            total = out
        rewritten += 1
    used = {name for node in nodes for name in node.input} | {o.name for o in graph.output}
    kept_nodes = [n for n in nodes if n.op_type != "Concat" or n.output[0] in used]
    kept_weights = [t for t in graph.initializer if t.name in used]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept_weights + added)
    return rewritten


def build_submodels(model_path: Path, parts: tuple[str, ...] = PARTS) -> dict:
    """The sub-models ``parts`` of RVM (see ``PARTS``), as ONNX models by name."""
    import onnx
    from onnx import TensorProto, helper, shape_inference

    def value_infos(model) -> dict:
        typed = {v.name: v for v in shape_inference.infer_shapes(model).graph.value_info}
        typed.update({v.name: v for v in (*model.graph.input, *model.graph.output)})
        return typed

    model = onnx.load(str(model_path))
    typed = value_infos(model)
    for name, channels in ((LOWRES_INPUT, 3), (COEFF_A, 4), (COEFF_B, 4)):
        typed[name] = helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", channels, "height", "width"])
    lowres = _extract(model, typed, [LOWRES_INPUT, *STATE_IN], [COEFF_A, COEFF_B, *STATE_OUT], "rvm_lowres")
    # Rewritten here, where the low-res source is an input of known channel count, so shape
    # inference knows every concatenated part's; the other parts are cut from the result.
    split_concat_convs(lowres)
    onnx.checker.check_model(lowres)
    model, typed = lowres, value_infos(lowres)
    features = _state_free_features(lowres.graph)
    encoded = [f for f in features if f != LOWRES_INPUT]
    missing = [f for f in encoded if f not in typed]
    if missing:
        raise ValueError(f"no type known for the encoder outputs {missing}")
    staged = _pull_back(lowres.graph, features)
    handover = _handover(lowres.graph, staged)
    recipes = {
        "lowres": None,
        "encoder": ([LOWRES_INPUT], encoded),
        "warmup": ([*features, *STATE_IN], list(STATE_OUT)),
        "decoder": ([*features, *STATE_IN], [COEFF_A, COEFF_B, *STATE_OUT]),
        "backbone": ([LOWRES_INPUT], [f for f in staged if f != LOWRES_INPUT]),
        "recurrent": ([*staged, *STATE_IN], [*(t for t in handover if t not in STATE_OUT), *STATE_OUT]),
        "output": ([*staged, *handover], [COEFF_A, COEFF_B]),
    }
    built = {}
    for part in parts:
        spec = recipes[part]
        built[part] = lowres if spec is None else _extract(model, typed, spec[0], spec[1], f"rvm_{part}")
    return built


def ensure_submodels(model_path: Path, sha256: str, cache_dir: Path | None = None) -> dict[str, Path]:
    """Every sub-model's cached path, deriving the missing ones first (atomic writes)."""
    targets = {part: derived_path(model_path, sha256, cache_dir, part) for part in PARTS}
    missing = tuple(part for part, path in targets.items() if not path.is_file())
    if not missing:
        return targets
    for part, derived in build_submodels(model_path, missing).items():
        target = targets[part]
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".rvm_{part}-", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(derived.SerializeToString())
            os.replace(tmp, target)  # concurrent builders write the same bytes; last rename wins
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        log.info("derived the sub-model %s", target)
    _remove_stale(targets[PARTS[0]].parent, sha256, set(targets.values()))
    return targets


def _remove_stale(folder: Path, sha256: str, current: set[Path]) -> None:
    """Delete sub-models of this model from earlier derivations (the cache would grow by ~30 MB
    with every version); another process may still have one open, which is harmless on POSIX."""
    for path in folder.glob(f"rvm_*_{sha256[:16]}_v*.onnx"):
        if path not in current:
            try:
                path.unlink()
                log.info("removed the outdated sub-model %s", path)
            except OSError:
                pass


# -- the model's own downsample, reproduced -------------------------------------------------
def lowres_size(height: int, width: int, ratio: float) -> tuple[int, int]:
    """Output size of ONNX Runtime's Resize with float32 scales: floor(size * scale) in float32."""
    r = np.float32(ratio)
    return int(np.float32(height) * r), int(np.float32(width) * r)


def _taps(length_in: int, length_out: int, ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of ONNX Runtime's linear Resize, pytorch_half_pixel, along one axis."""
    r = np.float32(ratio)
    x = np.arange(length_out, dtype=np.float32)
    if length_out > 1:
        pos = (x + np.float32(0.5)) / r - np.float32(0.5)
    else:
        pos = np.zeros_like(x)
    pos = np.clip(pos, np.float32(0), np.float32(length_in - 1))
    i0 = np.minimum(pos.astype(np.int64), length_in - 1)
    i1 = np.minimum(i0 + 1, length_in - 1)
    w1 = (pos - i0.astype(np.float32)).astype(np.float32)  # weight of i1
    w0 = (np.float32(1) - w1).astype(np.float32)
    same = i0 == i1
    w0[same] = 0.5
    w1[same] = 0.5
    return i0, i1, w0, w1


def downsample(rgb: np.ndarray, ratio: float) -> np.ndarray:
    """``Resize_3(src / 255)`` of the full model: uint8 HxWx3 → float32 [1, 3, h, w] in [0, 1].

    Bilinear is four taps per output pixel: gather just those (uint8, output-sized) and blend,
    so the cost follows the small output, never the full frame.
    """
    h, w = rgb.shape[:2]
    oh, ow = lowres_size(h, w, ratio)
    if oh < 1 or ow < 1:
        raise ValueError(f"ratio {ratio} leaves no pixels of a {w}x{h} image")
    r0, r1, rw0, rw1 = _taps(h, oh, ratio)
    c0, c1, cw0, cw1 = _taps(w, ow, ratio)
    scale = np.float32(1.0 / 255.0)
    # Channels first from the start (the network's layout: no transpose at the end, and numpy's
    # loops run along rows instead of 3-long pixels), in place where it can (each new temporary
    # of this size costs page faults): 6 ms instead of 9.5 for 720p -> 640x360, the same bits.
    out: np.ndarray | None = None
    for rows, row_weight in ((r0, rw0), (r1, rw1)):
        band = np.ascontiguousarray(rgb[rows].transpose(2, 0, 1))  # 3 x oh x W, uint8: one row gather
        part = np.take(band, c0, axis=2).astype(np.float32)  # np.take: ~3x faster than fancy indexing
        part *= cw0
        right = np.take(band, c1, axis=2).astype(np.float32)
        right *= cw1
        part += right
        part *= (row_weight * scale)[:, None]
        if out is None:
            out = part
        else:
            out += part
    assert out is not None
    return out[None]


# -- the tail -------------------------------------------------------------------------------
STRIP_ROWS = 32  # rows per work item: a strip's temporaries stay in cache instead of RAM


def _up(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    return cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)


def tail(
    coeff_a: np.ndarray,
    coeff_b: np.ndarray,
    rgb: np.ndarray,
    *,
    foreground: bool = False,
    workers: int = 0,
    deadline: Deadline | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The full-resolution tail of RVM: ``(pha HxW, fgr HxWx3 or None)``, float32 in [0, 1].

    pha = clip(up(A3) * mean_c(src) + up(b3), 0, 1); fgr_c = clip((up(A_c) + 1) * src_c + up(b_c), 0, 1).
    The upsampled coefficients are made whole-frame (OpenCV's resize is multi-threaded); the
    per-pixel arithmetic runs in row strips across ``workers`` threads (0 = every core), since
    done whole-frame each step would stream ~100 MB through memory at 4K.
    :func:`band_foreground` computes fgr only where it is seen.
    ``deadline``: checked between the resizes and at every strip (the whole tail is ~2 s at 50 MP
    here, a strip well under a millisecond).
    """
    import cv2

    h, w = rgb.shape[:2]
    a3 = _up(coeff_a[0, 3], h, w)  # becomes pha in place
    check_deadline(deadline)
    b3 = _up(coeff_b[0, 3], h, w)
    fgr = afg = bfg = None
    if foreground:
        check_deadline(deadline)
        afg = _up(np.ascontiguousarray(coeff_a[0, :3].transpose(1, 2, 0)), h, w)  # becomes fgr in place
        check_deadline(deadline)
        bfg = _up(np.ascontiguousarray(coeff_b[0, :3].transpose(1, 2, 0)), h, w)
    mean_weights = np.full((1, 3), 1.0 / 765.0, np.float32)
    inv255 = 1.0 / 255.0

    def strip(y: int) -> None:
        check_deadline(deadline)
        rows = slice(y, min(h, y + STRIP_ROWS))
        src = rgb[rows].astype(np.float32)
        pha = a3[rows]
        cv2.multiply(pha, cv2.transform(src, mean_weights), dst=pha)
        cv2.add(pha, b3[rows], dst=pha)
        np.clip(pha, 0.0, 1.0, out=pha)
        if afg is not None and bfg is not None:  # set together
            fg = afg[rows]
            cv2.multiply(fg, src, dst=fg, scale=inv255)
            cv2.scaleAdd(src, inv255, fg, dst=fg)  # (A + 1) * src = A * src + src
            cv2.add(fg, bfg[rows], dst=fg)
            np.clip(fg, 0.0, 1.0, out=fg)

    starts = range(0, h, STRIP_ROWS)
    n = workers or cpu_cores()
    if n > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(n, len(starts)), thread_name_prefix="mattekit-tail") as pool:
            list(pool.map(strip, starts))  # list(): re-raise a worker's exception here
    else:
        for y in starts:
            strip(y)
    if foreground:
        fgr = afg
    return a3, fgr


# -- the foreground, only where it is seen ----------------------------------------------------
BAND_TILE = 32  # the band is covered by runs of tiles this size: ~2x the band's own area on photos

Box = tuple[int, int, int, int]  # (top, bottom, left, right)


def band_boxes(alpha: np.ndarray, tile: int = BAND_TILE) -> list[Box]:
    """Boxes covering every pixel with 0 < alpha < 1: per strip of ``tile`` rows, the runs of
    ``tile``-wide columns that hold one.

    Outside them alpha is exactly 0 or 1 (the tail clips), where the foreground colour is never
    seen: decontamination's weight is 0 at alpha 1 and a composite multiplies it by 0 at alpha 0.
    """
    h, w = alpha.shape
    rows, cols = -(-h // tile), -(-w // tile)
    padded = np.zeros((rows * tile, cols * tile), bool)
    np.logical_and(alpha > 0, alpha < 1, out=padded[:h, :w])
    grid: np.ndarray = np.any(padded.reshape(rows, tile, cols, tile), axis=(1, 3))
    boxes: list[Box] = []
    for ty in np.flatnonzero(grid.any(axis=1)):
        edges = np.diff(np.concatenate(([0], grid[ty].astype(np.int8), [0])))
        for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            boxes.append((int(ty) * tile, min(h, (int(ty) + 1) * tile), int(s) * tile, min(w, int(e) * tile)))
    return boxes


def _up_taps(length_in: int, length_out: int, start: int, stop: int):
    """Indices and weights of OpenCV's INTER_LINEAR upsample (half-pixel) for outputs start..stop."""
    x = np.arange(start, stop, dtype=np.float64)
    pos = (x + 0.5) * (length_in / length_out) - 0.5
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    low, high = i0 < 0, i0 >= length_in - 1
    frac[low | high] = 0.0
    i0 = np.clip(i0, 0, length_in - 1)
    i1 = np.minimum(i0 + 1, length_in - 1)
    return i0, i1, (np.float32(1) - frac), frac


def band_foreground(
    coeff_a: np.ndarray, coeff_b: np.ndarray, rgb: np.ndarray, boxes: list[Box], deadline: Deadline | None = None
) -> np.ndarray:
    """RVM's fgr (as :func:`tail` computes it, within ~1e-6) inside ``boxes``; zero elsewhere.

    The coefficients are upsampled per box from the low-resolution maps (separable bilinear at
    OpenCV's sample positions), so the cost follows the boxes, not the frame.
    ``deadline``: checked at every box (all of them took 1.0 s for a 50 MP photo here).
    """
    h, w = rgb.shape[:2]
    fgr = np.zeros((h, w, 3), np.float32)  # calloc: pages outside the boxes are never touched
    if not boxes:
        return fgr
    # Across in OpenCV, on the low-resolution rows only (a same-height resize leaves rows exact);
    # then down, per box, at OpenCV's sample positions.
    hs = coeff_a.shape[2]
    across_a = _up(np.ascontiguousarray(coeff_a[0, :3].transpose(1, 2, 0)), hs, w)  # hs x W x 3
    across_b = _up(np.ascontiguousarray(coeff_b[0, :3].transpose(1, 2, 0)), hs, w)
    r0, r1, rw0, rw1 = _up_taps(hs, h, 0, h)
    inv255 = np.float32(1.0 / 255.0)
    for top, bottom, left, right in boxes:
        check_deadline(deadline)
        rows = slice(top, bottom)
        w0, w1 = rw0[rows, None, None], rw1[rows, None, None]
        up_a = across_a[r0[rows], left:right]
        up_a *= w0
        tap = across_a[r1[rows], left:right]
        tap *= w1
        up_a += tap
        up_b = across_b[r0[rows], left:right]
        up_b *= w0
        tap = across_b[r1[rows], left:right]
        tap *= w1
        up_b += tap
        src = rgb[rows, left:right].astype(np.float32)
        src *= inv255
        up_a += np.float32(1)
        up_a *= src
        up_a += up_b
        np.clip(up_a, 0.0, 1.0, out=fgr[rows, left:right])
    return fgr
