"""The split fast path (low-resolution network in ONNX Runtime + OpenCV tail) against the full
RVM graph, which stays available as ``Engine(fast=False)`` — the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit.core import derive, kernels
from mattekit.core.engine import Engine, RecurrentState
from mattekit.core.models import rvm
from mattekit.core.passes import pass_ratio
from mattekit.errors import InvalidOption
from mattekit.files import is_temp_name

pytestmark = pytest.mark.unit  # make unit: in-process and fast

TOLERANCE = 1.0 / 255.0  # mean absolute alpha difference allowed (the bound)


@pytest.fixture(scope="module")
def split() -> Engine:
    e = Engine(fast=True, backend="onnxruntime").load()  # the split itself, on the reference runtime
    assert e.split, "the fast path did not load; see the log for why"
    return e


@pytest.fixture(scope="module")
def plain() -> Engine:
    return Engine(fast=False).load()


def _resize_model(ratio: float):
    """ONNX Runtime's Resize exactly as RVM's Resize_3 is configured, as a one-node model."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    node = helper.make_node(
        "Resize",
        ["x", "roi", "scales"],
        ["y"],
        mode="linear",
        coordinate_transformation_mode="pytorch_half_pixel",
        nearest_mode="floor",
        cubic_coeff_a=-0.75,
    )
    graph = helper.make_graph(
        [node],
        "resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            helper.make_tensor("roi", TensorProto.FLOAT, [0], []),
            helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, ratio, ratio]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("size", [(720, 1280), (1279, 1920), (481, 333)])
@pytest.mark.parametrize("ratio_of", ["auto", 0.25, 0.125, 0.375])
def test_downsample_reproduces_the_models_resize(size, ratio_of):
    h, w = size
    ratio = pass_ratio("auto", h, w) if ratio_of == "auto" else ratio_of
    rgb = np.random.default_rng(h + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    want = _resize_model(ratio).run(None, {"x": rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0})[0]
    got = kernels.downsample(rgb, ratio)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-5


def test_derived_models_are_cached_by_hash(tmp_path: Path):
    info = rvm.locate()
    stale = tmp_path / f"rvm_network_{info.sha256[:16]}_v1.onnx"  # an earlier derivation's
    stale.write_bytes(b"old")
    other = tmp_path / "rvm_network_0123456789abcdef_v1.onnx"  # another model's: not ours to delete
    other.write_bytes(b"other")
    first = derive.ensure_submodels(info.path, info.sha256, tmp_path)
    assert set(first) == set(derive.SUBMODELS)
    assert not stale.exists() and other.exists()
    for name, path in first.items():
        assert path == derive.derived_path(info.path, info.sha256, tmp_path, name)
        assert info.sha256[:16] in path.name and name in path.name
    stamps = {name: path.stat().st_mtime_ns for name, path in first.items()}
    first["recurrent_state"].unlink()  # one missing sub-model is rebuilt alone
    again = derive.ensure_submodels(info.path, info.sha256, tmp_path)
    assert again == first and again["recurrent_state"].is_file()
    assert all(again[p].stat().st_mtime_ns == stamps[p] for p in derive.SUBMODELS if p != "recurrent_state")
    assert not [p for p in tmp_path.iterdir() if is_temp_name(p.name)]


def test_a_cache_from_before_a_rename_is_derived_again(tmp_path: Path):
    """Sub-models are cached by name and derivation version: a cache holding only an earlier
    release's (v3: lowres, encoder, warmup, decoder, now network, backbone_all, recurrent_state,
    recurrent_output) derives the new ones, as a fresh machine would, and drops the old files;
    a later release's files in a shared cache are left alone."""
    from samples import sample_path

    info = rvm.locate()
    old = [tmp_path / f"rvm_{n}_{info.sha256[:16]}_v3.onnx" for n in ("lowres", "encoder", "warmup", "decoder")]
    for path in old:
        path.write_bytes(b"an earlier release's sub-model")
    later = tmp_path / f"rvm_network_{info.sha256[:16]}_v{derive.DERIVATION_VERSION + 1}.onnx"
    later.write_bytes(b"a later release's sub-model")
    paths = derive.ensure_submodels(info.path, info.sha256, tmp_path)
    assert not any(path.exists() for path in old) and later.exists()
    assert all(path.stat().st_size > 1000 for path in paths.values())
    engine = Engine(threads=1, backend="onnxruntime")
    engine._submodels = lambda _info: derive.ensure_submodels(info.path, info.sha256, tmp_path)  # type: ignore[method-assign]
    rgb = np.asarray(Image.open(sample_path("astronaut")).convert("RGB"))
    want = Engine(fast=False).matte(rgb, passes=2).alpha
    assert engine.split and np.abs(engine.matte(rgb, passes=2).alpha - want).mean() < TOLERANCE


def test_the_backbone_reads_no_state_and_inner_passes_skip_the_output_block(tmp_path: Path):
    """The derivation's claims, checked on the model: backbone_all's inputs are the low-res
    source alone; an inner pass (recurrent_state) has fewer nodes than the last one
    (recurrent_output: it computes A, b too)."""
    import onnx

    info = rvm.locate()
    paths = derive.ensure_submodels(info.path, info.sha256, tmp_path)
    graphs = {p: onnx.load(str(path)).graph for p, path in paths.items()}
    assert [i.name for i in graphs["backbone_all"].input] == [derive.LOWRES_INPUT]
    assert [o.name for o in graphs["recurrent_state"].output] == list(derive.STATE_OUT)
    assert len(graphs["recurrent_state"].node) < len(graphs["recurrent_output"].node) < len(graphs["network"].node)
    # every convolution over a concatenation nothing else reads became a sum of convolutions
    network = graphs["network"]
    reads = [i for n in network.node for i in n.input]
    private = {o for n in network.node if n.op_type == "Concat" for o in n.output if reads.count(o) == 1}
    assert not [n.name for n in network.node if n.op_type == "Conv" and n.input[0] in private]
    assert sum(n.name.endswith("_add1") for n in network.node) >= 8


def test_several_passes_match_passes_of_the_whole_network(split):
    """backbone_all once + recurrent_state passes + recurrent_output gives what repeated whole passes give, bit for bit
    up to float rounding; state carried in from a previous frame too."""
    from samples import sample_path

    rgb = np.asarray(Image.open(sample_path("astronaut")).convert("RGB"))
    whole, state = None, None
    for _ in range(3):  # the whole low-res network, one pass at a time
        whole, state = split.step(rgb, "auto", state)
    parted, parted_state = split.step(rgb, "auto", None, passes=3)
    assert np.abs(whole.alpha - parted.alpha).max() < 1e-5
    for a, b in zip(state.tensors, parted_state.tensors):
        assert np.abs(a - b).max() < 1e-5
    carried, _ = split.step(rgb, "auto", state, passes=2)
    for _ in range(2):
        whole, state = split.step(rgb, "auto", state)
    assert np.abs(whole.alpha - carried.alpha).max() < 1e-5
    with pytest.raises(InvalidOption, match="passes"):
        split.step(rgb, "auto", None, passes=0)


def test_split_matches_full_graph_on_a_sample_photo(split, plain):
    """Runs without the evaluation set: a real photo fetched by tests/samples.py."""
    from samples import sample_path

    rgb = np.asarray(Image.open(sample_path("astronaut")).convert("RGB"))
    for ratio in ("auto", 0.25):
        a = split.matte(rgb, ratio, foreground=True, full_foreground=True)
        b = plain.matte(rgb, ratio, foreground=True)
        assert np.abs(a.alpha - b.alpha).mean() < TOLERANCE / 100
        assert np.abs(a.foreground - b.foreground).mean() < TOLERANCE / 100
        band = split.matte(rgb, ratio, foreground=True)  # the default: only where alpha is partial
        for top, bottom, left, right in band.foreground_boxes:
            tile = (slice(top, bottom), slice(left, right))
            assert np.abs(band.foreground[tile] - b.foreground[tile]).mean() < TOLERANCE / 100
        assert a.alpha.dtype == np.float32 and a.alpha.shape == rgb.shape[:2]
        assert a.foreground.shape == rgb.shape and 0.0 <= a.alpha.min() <= a.alpha.max() <= 1.0


@pytest.mark.eval
def test_split_matches_full_graph_on_the_dev_set(split, plain, people_images):
    """Every dev photo at the auto ratio, the demo's 0.25 and 4K's 0.125; the 3-pass preset too."""
    worst = 0.0
    for i, path in enumerate(people_images):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        ratio = ("auto", 0.25, 0.125)[i % 3]
        passes = 3 if i % 4 == 0 else 1
        a = split.matte(rgb, ratio, passes=passes, foreground=i % 2 == 0)
        b = plain.matte(rgb, ratio, passes=passes, foreground=i % 2 == 0)
        diff = float(np.abs(a.alpha - b.alpha).mean())
        worst = max(worst, diff)
        assert diff < TOLERANCE, f"{path.name} at {ratio}: mean |Δalpha| {diff * 255:.4f}/255"
        if a.foreground is not None:
            band = (b.alpha > 0.01) & (b.alpha < 0.99)
            assert np.abs(a.foreground - b.foreground)[band].mean() < TOLERANCE
    assert worst < TOLERANCE / 50  # in practice ~1e-4/255: the split is exact up to float rounding


@pytest.mark.eval
def test_recurrent_state_carries_over_frames_like_the_full_graph(split, plain, evaldir):
    """Several frames of a real clip with state carried; the two engines' states are interchangeable."""
    from mattekit.video import read_frames

    frames = list(read_frames(evaldir / "video" / "comp_D.mp4", limit=5))
    s_split, s_plain = RecurrentState.empty(), RecurrentState.empty()
    for rgb in frames:
        a, s_split = split.step(rgb, "auto", s_split)
        b, s_plain = plain.step(rgb, "auto", s_plain)
        assert np.abs(a.alpha - b.alpha).mean() < TOLERANCE
    # a state the split made continues correctly in the full graph, and back
    a, _ = plain.step(frames[0], "auto", s_split)
    b, _ = split.step(frames[0], "auto", s_plain)
    assert np.abs(a.alpha - b.alpha).mean() < TOLERANCE


def test_cuda_asked_for_without_cuda_says_so():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA")
    with pytest.raises(InvalidOption, match="CUDA was asked for"):
        Engine(device="cuda").load()
    with pytest.raises(InvalidOption, match="device must be"):
        Engine(device="gpu")


def test_sessions_are_created_when_first_needed():
    """A one-pass caller (video, preset fast) never loads the multi-pass parts; load() loads all."""
    rgb = np.zeros((120, 160, 3), np.uint8)
    lazy = Engine()
    lazy.matte(rgb, passes=1)
    assert set(lazy._sessions) == {"network"}
    lazy.matte(rgb, passes=3)
    assert set(lazy._sessions) == {"network", "backbone_all", "recurrent_state", "recurrent_output"}  # the parts: video only
    assert set(Engine(threads=1).load()._sessions) == set(derive.SUBMODELS)


@pytest.mark.slow  # ~8 s here: several large passes through the whole network
def test_large_passes_hand_their_memory_back_and_match(split):
    """From ARENA_SHRINK_PIXELS on, runs shrink ONNX Runtime's arena; outputs stay the same."""
    from samples import sample_path

    from mattekit.core.runtime import ARENA_SHRINK_PIXELS, arena_run_options

    assert arena_run_options(ARENA_SHRINK_PIXELS - 1) is None
    assert arena_run_options(ARENA_SHRINK_PIXELS) is not None
    assert ARENA_SHRINK_PIXELS > 768 * 768  # the presets' largest automatic pass never pays for it
    rgb = np.asarray(Image.open(sample_path("astronaut")).convert("RGB").resize((1920, 1080)))
    assert ARENA_SHRINK_PIXELS <= 1920 * 1080  # ratio 1: the shrinking path
    parted, _ = split.step(rgb, 1.0, None, passes=2)
    whole, state = split.step(rgb, 1.0, None)
    whole, _ = split.step(rgb, 1.0, state)
    assert np.abs(whole.alpha - parted.alpha).max() < 1e-5
