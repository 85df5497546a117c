"""RVM's low-resolution network cut out of the full graph, and cut again into its three parts:
the sub-models the engine runs, derived once from the verified model file and cached beside it.

The network's three parts (:data:`PARTS`, the one set of names the package uses for them)::

    backbone    the model's downsample, MobileNetV3 backbone, LR-ASPP    never reads the state
    recurrent   the decoder's recurrent blocks                            reads frame t-1's, writes t's
    output      the decoder's output block and the guided filter's        reads what recurrent hands on
                coefficients A and b

The full graph is cut at its input ``Resize_3(src)`` (``LOWRES_INPUT``: the engine computes it,
:func:`mattekit.core.kernels.downsample`) and at the guided filter's coefficients ``A`` and
``b`` (``COEFF_A``, ``COEFF_B``: the engine's full-resolution tail reads them,
:func:`mattekit.core.kernels.tail`). The sub-models (:data:`SUBMODELS`) are combinations of the
parts, each cut where its caller needs it.

The sub-models are cached named by the source's SHA-256 and their name, so later start-ups only
load them; a cache without one of them (a fresh machine, a renamed sub-model) derives the
missing ones, and drops this model's files from earlier derivations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files import write_atomic

if TYPE_CHECKING:
    from onnx import GraphProto, ModelProto, ValueInfoProto

    Typed = dict[str, ValueInfoProto]  # value infos by tensor name

log = logging.getLogger("mattekit.core.derive")

# Bump when the derivation or the sub-models' names change, so stale cached sub-models are never
# reused (4: the sub-models took the parts' names; lowres, encoder, warmup, decoder are gone).
DERIVATION_VERSION = 4
LOWRES_INPUT = "389"  # Resize_3(src, scales=[1, 1, r, r]): the low-resolution source
COEFF_A = "777"
COEFF_B = "779"
STATE_IN = ("r1i", "r2i", "r3i", "r4i")
STATE_OUT = ("r1o", "r2o", "r3o", "r4o")

PARTS = ("backbone", "recurrent", "output")  # the network's three parts, in order

# The sub-models derived from RVM, each cached as its own file:
#   network           389 + r*i -> A, b + r*o       one frame: all three parts
#   backbone          389 -> staged features        the backbone, handing over less (see _pull_back)
#   recurrent         staged features + r*i -> handover + r*o
#   output            staged features + handover -> A, b
#   backbone_all      389 -> features               the backbone, handing on every feature
#   recurrent_state   features + r*i -> r*o         a repeated pass whose A, b nobody reads
#   recurrent_output  features + r*i -> A, b + r*o  the last of several passes
# Several passes over one photo (the presets) run backbone_all once, recurrent_state for all but
# the last pass and recurrent_output for the last: the backbone's output does not depend on the
# state, and an inner pass skips the full-size output block and guided filter, whose only use
# is A and b. Measured at 1080p (a 640x360 low-res pass, 2 threads): backbone_all ~47 ms,
# recurrent_state ~41 ms, recurrent_output ~90 ms, the whole network ~125 ms; 4 passes cost ~0.5x
# of 4 whole ones, with identical outputs. A video's frames run backbone, recurrent and output as
# stages that overlap from frame to frame (:mod:`mattekit.core.streams`): only the recurrent part
# has to wait for the previous frame.
SUBMODELS = ("network", *PARTS, "backbone_all", "recurrent_state", "recurrent_output")


def derived_path(model_path: Path, sha256: str, cache_dir: Path | None = None, submodel: str = "network") -> Path:
    """Where ``submodel`` of ``model_path`` is cached (keyed by the model's hash and the name)."""
    folder = cache_dir or model_path.parent
    return folder / f"rvm_{submodel}_{sha256[:16]}_v{DERIVATION_VERSION}.onnx"


def _state_free_features(graph: GraphProto) -> list[str]:
    """Tensors computed without the recurrent state and read by nodes that use it (the
    backbone's outputs), in graph order; constants and weights excluded: each sub-model keeps its own."""
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


def _pull_back(graph: GraphProto, features: list[str]) -> list[str]:
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


def _walk_back(graph: GraphProto, outputs: Iterable[str], inputs: Iterable[str]) -> tuple[set[int], set[str], set[str]]:
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


def _handover(graph: GraphProto, features: list[str]) -> list[str]:
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


def _extract(model: ModelProto, typed: Typed, inputs: list[str], outputs: list[str], name: str) -> ModelProto:
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
    derived = helper.make_model(sub, opset_imports=model.opset_import, producer_name="mattekit.core.derive")
    derived.ir_version = model.ir_version
    onnx.checker.check_model(derived)
    return derived


def _channels(typed: Typed, name: str) -> int | None:
    dims = typed[name].type.tensor_type.shape.dim if name in typed else []
    return dims[1].dim_value if len(dims) > 1 and dims[1].HasField("dim_value") else None


def split_concat_convs(model: ModelProto) -> int:
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


def build_submodels(model_path: Path, names: tuple[str, ...] = SUBMODELS) -> dict[str, ModelProto]:
    """The sub-models ``names`` of RVM (see :data:`SUBMODELS`), as ONNX models by name."""
    import onnx
    from onnx import TensorProto, helper, shape_inference

    def value_infos(model: ModelProto) -> Typed:
        typed = {v.name: v for v in shape_inference.infer_shapes(model).graph.value_info}
        typed.update({v.name: v for v in (*model.graph.input, *model.graph.output)})
        return typed

    model = onnx.load(str(model_path))
    typed = value_infos(model)
    for name, channels in ((LOWRES_INPUT, 3), (COEFF_A, 4), (COEFF_B, 4)):
        typed[name] = helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", channels, "height", "width"])
    lowres = _extract(model, typed, [LOWRES_INPUT, *STATE_IN], [COEFF_A, COEFF_B, *STATE_OUT], "rvm_network")
    # Rewritten here, where the low-res source is an input of known channel count, so shape
    # inference knows every concatenated part's; the other parts are cut from the result.
    split_concat_convs(lowres)
    onnx.checker.check_model(lowres)
    model, typed = lowres, value_infos(lowres)
    features = _state_free_features(lowres.graph)
    encoded = [f for f in features if f != LOWRES_INPUT]
    missing = [f for f in encoded if f not in typed]
    if missing:
        raise ValueError(f"no type known for the backbone's outputs {missing}")
    staged = _pull_back(lowres.graph, features)
    handover = _handover(lowres.graph, staged)
    recipes = {
        "network": None,
        "backbone": ([LOWRES_INPUT], [f for f in staged if f != LOWRES_INPUT]),
        "recurrent": ([*staged, *STATE_IN], [*(t for t in handover if t not in STATE_OUT), *STATE_OUT]),
        "output": ([*staged, *handover], [COEFF_A, COEFF_B]),
        "backbone_all": ([LOWRES_INPUT], encoded),
        "recurrent_state": ([*features, *STATE_IN], list(STATE_OUT)),
        "recurrent_output": ([*features, *STATE_IN], [COEFF_A, COEFF_B, *STATE_OUT]),
    }
    built = {}
    for name in names:
        spec = recipes[name]
        built[name] = lowres if spec is None else _extract(model, typed, spec[0], spec[1], f"rvm_{name}")
    return built


def ensure_submodels(model_path: Path, sha256: str, cache_dir: Path | None = None) -> dict[str, Path]:
    """Every sub-model's cached path, deriving the missing ones first (atomic writes: concurrent
    builders write the same bytes, the last rename wins)."""
    targets = {name: derived_path(model_path, sha256, cache_dir, name) for name in SUBMODELS}
    missing = tuple(name for name, path in targets.items() if not path.is_file())
    if not missing:
        return targets
    for name, derived in build_submodels(model_path, missing).items():
        write_atomic(targets[name], derived.SerializeToString())
        log.info("derived the sub-model %s", targets[name])
    _remove_stale(targets[SUBMODELS[0]].parent, sha256, set(targets.values()))
    return targets


def _remove_stale(folder: Path, sha256: str, current: set[Path]) -> None:
    """Delete sub-models of this model from earlier derivations (the cache would grow by ~30 MB
    with every version); another process may still have one open, which is harmless on POSIX.
    Only earlier versions: a newer release sharing the cache keeps its own files."""
    for path in folder.glob(f"rvm_*_{sha256[:16]}_v*.onnx"):
        version = path.stem.rpartition("_v")[2]
        if path not in current and version.isdigit() and int(version) < DERIVATION_VERSION:
            try:
                path.unlink()
                log.info("removed the outdated sub-model %s", path)
            except OSError:
                pass
