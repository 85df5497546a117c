"""The stages a video's frames go through (mattekit.core.streams): the same mattes as Engine.step,
frame for frame, from sub-models that split the network exactly; errors in a stage's thread
reach the caller and leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from mattekit.core import backends, derive, kernels
from mattekit.core.derive import PARTS
from mattekit.core.engine import Engine, RecurrentState
from mattekit.core.models import rvm
from mattekit.core.passes import pass_ratio, pass_size
from mattekit.core.streams import Frame, MatteStream, StagedStream, Stream, run_stages
from mattekit.errors import InvalidOption
from mattekit.options import Options
from mattekit.video import VideoOptions, process_video, read_frames

pytestmark = pytest.mark.unit  # make unit: in-process and fast


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(backend="onnxruntime").load()


def _ratio(height: int, width: int) -> float:
    return 0.5


def test_the_three_parts_compute_the_whole_network(engine, sample_photo):
    """backbone -> recurrent -> output gives the one-piece network's A, b and state (ONNX
    Runtime fp32), with no state and with a carried one."""
    rgb = np.asarray(Image.open(sample_photo).convert("RGB"))
    state = RecurrentState.empty().tensors
    for _ in range(2):
        x = kernels.downsample(rgb, 0.5)
        whole = engine.run_submodel("network", {derive.LOWRES_INPUT: x, **dict(zip(derive.STATE_IN, state))})
        tensors = engine.network(x, state)  # backbone -> recurrent -> output
        for name in (derive.COEFF_A, derive.COEFF_B, *derive.STATE_OUT):
            assert np.abs(tensors[name] - whole[name]).max() < 1e-5, name
        state = [whole[n] for n in derive.STATE_OUT]


def test_the_backbone_hands_over_inputs_of_widening_convolutions(tmp_path: Path):
    """What crosses from the backbone to the other stages is never the output of a convolution
    that widens its input (that input is handed over instead: fewer bytes to copy)."""
    info = rvm.locate()
    paths = derive.ensure_submodels(info.path, info.sha256, tmp_path)
    graph = onnx.load(str(paths["backbone"])).graph
    producer = {o: n for n in graph.node for o in n.output}
    weights = {t.name: t.dims for t in graph.initializer}
    for out in graph.output:
        node = producer[out.name]
        if node.op_type == "Conv":
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            out_channels, in_per_group = weights[node.input[1]][:2]
            assert out_channels <= in_per_group * group, out.name
    assert [i.name for i in onnx.load(str(paths["recurrent"])).graph.output][-4:] == list(derive.STATE_OUT)


def test_every_stream_keeps_the_one_stream_interface(engine, sample_clip):
    """The engine's stream, a preset's and the staged one are MatteStreams: process() and a run
    of their stages() give step's mattes frame for frame, each stage handing on a Frame."""
    from mattekit import presets

    frames = list(read_frames(sample_clip, limit=3))
    streams: list[MatteStream] = [Stream(engine, 0.5), presets.stream(engine, "fast", 0.5), StagedStream(engine, _ratio)]
    for stream in streams:
        assert isinstance(stream, MatteStream), type(stream).__name__
        run = stream.stages()
        state = None
        for rgb in frames:
            want, state = engine.step(rgb, 0.5, state)
            frame = Frame(rgb)
            for stage in run:
                frame = stage(frame)
                assert isinstance(frame, Frame)
            assert frame.matte is not None and np.array_equal(frame.matte.alpha, want.alpha), type(stream).__name__
        stream.reset()
        assert np.array_equal(stream.process(frames[0]).alpha, engine.step(frames[0], 0.5)[0].alpha)
        assert stream.frames == len(frames) + 1


def test_the_stages_give_the_mattes_of_step(engine, sample_clip):
    """Frame for frame, the stages give Engine.step's mattes, the first frame warmed up as a
    still with passes; after a reset, and when the size changes, a first frame again."""
    frames = list(read_frames(sample_clip, limit=8))
    staged = StagedStream(engine, _ratio, foreground=True, first_passes=3)
    state = None
    for i, rgb in enumerate(frames):
        if i == 5:
            staged.reset()
            state = None
        got = staged.process(rgb)
        want, state = engine.step(rgb, 0.5, state, foreground=True, passes=3 if state is None else 1)
        assert np.array_equal(got.alpha, want.alpha), i
        assert np.array_equal(got.foreground, want.foreground) and got.foreground_boxes == want.foreground_boxes
    smaller = np.ascontiguousarray(frames[0][:96, :128])
    assert np.array_equal(staged.process(smaller).alpha, engine.step(smaller, 0.5, None, passes=3)[0].alpha)
    assert staged.frames == len(frames) + 1


def test_stages_share_the_cores(engine):
    cores = engine.threads or backends.cpu_cores()
    assert StagedStream(engine, _ratio).engine.threads == max(1, cores // len(PARTS))
    assert StagedStream(engine, _ratio, threads=2).engine.threads == 2


def test_a_failing_stage_fails_the_video_and_leaves_nothing(tmp_path, sample_clip, monkeypatch):
    """An error in a stage's own thread reaches the caller as itself; no output is left."""
    original, calls = Engine.output, []

    def output(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the fourth frame: the first frame runs as a still, not in stages
            raise RuntimeError("stage failed")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "output", output)
    target = tmp_path / "out.zip"
    with pytest.raises(RuntimeError, match="stage failed"):
        process_video(
            sample_clip, target, Options(preset="fast"), VideoOptions(max_frames=10), engine=Engine(backend="onnxruntime")
        )
    assert not target.exists() and not list(tmp_path.iterdir())


def test_a_strip_gets_the_clamped_ratio_on_every_frame(engine, sample_photo):
    """A 1280x40 strip: the automatic ratio (0.5 for a 640 px pass) leaves too few rows, so it is
    clamped, on the first frame (a still's run) and on every later one alike."""
    rgb = np.asarray(Image.open(sample_photo).convert("RGB").resize((1280, 40)))
    staged = StagedStream(engine, lambda h, w: pass_ratio("auto", h, w, 640))
    state = None
    for _ in range(3):
        want, state = engine.step(rgb, pass_ratio("auto", 40, 1280, 640), state)
        assert np.array_equal(staged.process(rgb).alpha, want.alpha)


def test_a_state_from_another_ratio_starts_afresh(engine, sample_clip):
    """A state made at one ratio, handed to a step at another (a different pass size), is
    dropped like one from another frame size: the step runs as a first frame instead of
    failing inside the runtime."""
    first, second = list(read_frames(sample_clip, limit=2))
    _, state = engine.step(first, 0.5)
    assert state.lowres == pass_size(*first.shape[:2], 0.5)
    got, _ = engine.step(second, 0.75, state)
    assert np.array_equal(got.alpha, engine.step(second, 0.75)[0].alpha)
    # the same ratio keeps the state (a frame that carries it differs from a first frame)
    carried, _ = engine.step(second, 0.5, state)
    assert not np.array_equal(carried.alpha, engine.step(second, 0.5)[0].alpha)


def test_the_stages_refuse_an_engine_without_the_split():
    with pytest.raises(InvalidOption, match="split"):
        StagedStream(Engine(fast=False), _ratio)


def test_a_preset_streams_reset_reaches_its_stages(engine, sample_clip):
    """PresetStream.stages(): reset() makes the next frame a first frame there too, and the
    frames are counted as process() counts them."""
    from mattekit import presets

    frames = list(read_frames(sample_clip, limit=4))
    stream = presets.stream(engine, "fast", 0.5)
    run = stream.stages()
    assert len(run) == len(PARTS)

    def through(rgb):
        return run_stages(run, rgb)

    for rgb in frames[:3]:
        through(rgb)
    stream.reset()
    got = through(frames[3])
    fresh = presets.stream(engine, "fast", 0.5)
    assert np.array_equal(got.alpha, fresh.process(frames[3]).alpha)
    assert stream.frames == 4


def test_cancelling_a_deadline_stops_the_pass_in_progress(engine, sample_photo):
    """A server's worker whose request got its 504 cancels the deadline: the network pass running
    then stops within milliseconds (ONNX Runtime's terminate flag), not at the end of the pass,
    and the next run on the same engine is unaffected."""
    import threading
    import time

    from mattekit.deadline import Deadline
    from mattekit.errors import Cancelled

    rgb = np.asarray(Image.open(sample_photo).convert("RGB").resize((1280, 960)))
    start = time.perf_counter()
    want, _ = engine.step(rgb, 1.0, passes=3)
    whole = time.perf_counter() - start
    deadline = Deadline.after(60)
    assert deadline is not None
    threading.Timer(whole / 10, deadline.cancel).start()
    start = time.perf_counter()
    with pytest.raises(Cancelled) as stopped:
        engine.step(rgb, 1.0, passes=3, deadline=deadline)
    assert time.perf_counter() - start < whole / 2, (time.perf_counter() - start, whole)
    assert "terminate" in str(stopped.value.__cause__)  # stopped inside a run, not between two
    again, _ = engine.step(rgb, 1.0, passes=3, deadline=Deadline.after(60))
    assert np.array_equal(again.alpha, want.alpha)
