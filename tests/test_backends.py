"""Every backend the engine may pick (mattekit.backends) against the fp32 full graph on ONNX
Runtime, the reference: photos, repeated passes (the presets), and video frames with the
recurrent state carried. "Exact enough" is measured, not assumed: the fp32 model's own alpha
change under ±0.001 of input noise is the yardstick for the rare large differences at edges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit import backends, fastpath
from mattekit.engine import Engine, auto_ratio
from mattekit.errors import InvalidOption
from mattekit.video import read_frames

MEAN_BOUND = 0.5 / 255  # mean absolute alpha difference a backend may add (issue 18)


def _available() -> list[str]:
    return [name for name in backends.BACKENDS if backends.unavailable(name) is None]


@pytest.fixture(scope="module")
def reference() -> Engine:
    return Engine(fast=False).load()


@pytest.fixture(scope="module", params=list(backends.BACKENDS))
def candidate(request) -> Engine:
    name = request.param
    reason = backends.unavailable(name)
    if reason is not None:
        # Not installed here, so the engine cannot pick it: that is what must hold.
        assert backends.resolve("auto") != name
        with pytest.raises(InvalidOption, match="cannot run here"):
            backends.resolve(name)
        pytest.skip(f"{name}: {reason}")
    engine = Engine(backend=name).load()
    assert engine.split and engine.backend == name
    return engine


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _noise_p999(rgb: np.ndarray, ratio: float) -> float:
    """p99.9 of the fp32 network's own alpha change when its input moves by ±0.001."""
    import onnxruntime as ort

    engine = Engine(backend="onnxruntime").load()
    session: ort.InferenceSession = engine._part("lowres")
    zeros = {n: np.zeros((1, 1, 1, 1), np.float32) for n in fastpath.STATE_IN}
    x = fastpath.downsample(rgb, ratio)
    noisy = np.clip(x + np.random.default_rng(0).uniform(-1e-3, 1e-3, x.shape).astype(np.float32), 0, 1)
    alphas = [fastpath.tail(*session.run(None, {fastpath.LOWRES_INPUT: inp, **zeros})[:2], rgb)[0] for inp in (x, noisy)]
    return float(np.percentile(np.abs(alphas[0] - alphas[1]), 99.9))


def _compare(candidate: Engine, reference: Engine, photos: list[Path], passes: int = 1) -> None:
    means, p999s, yardsticks = [], [], []
    for path in photos:
        rgb = _rgb(path)
        ratio = auto_ratio(*rgb.shape[:2])
        got = candidate.matte(rgb, ratio, passes=passes).alpha
        want = reference.matte(rgb, ratio, passes=passes).alpha
        diff = np.abs(got - want)
        means.append(float(diff.mean()))
        p999s.append(float(np.percentile(diff, 99.9)))
        yardsticks.append(_noise_p999(rgb, ratio))
    assert max(means) <= MEAN_BOUND, [round(m * 255, 3) for m in means]
    # On average over the photos, no worse at the edges than the fp32 model's own noise.
    assert np.mean(p999s) <= np.mean(yardsticks), (np.mean(p999s) * 255, np.mean(yardsticks) * 255)


def test_backend_matches_the_full_graph_on_sample_photos(candidate, reference, sample_photo, sample_grey_photo):
    _compare(candidate, reference, [sample_photo, sample_grey_photo])


def test_backend_matches_the_full_graph_on_the_dev_photos(candidate, reference, people_images):
    _compare(candidate, reference, people_images)


def test_backend_matches_the_full_graph_over_repeated_passes(candidate, reference, sample_photo):
    _compare(candidate, reference, [sample_photo], passes=4)


def test_backend_carries_the_recurrent_state_like_the_full_graph(candidate, reference, sample_clip):
    """60 frames of a real clip, state carried: differences must not build up over time."""
    ours, theirs = candidate.stream(), reference.stream()
    diffs = []
    for rgb in read_frames(sample_clip, limit=60):
        diffs.append(float(np.abs(ours.process(rgb).alpha - theirs.process(rgb).alpha).mean()))
    assert max(diffs) <= MEAN_BOUND, max(diffs) * 255
    assert np.mean(diffs[-20:]) <= 2 * np.mean(diffs[:20]) + 0.05 / 255, [round(d * 255, 3) for d in diffs]


def test_openvino_leaves_large_one_off_passes_to_onnxruntime(sample_photo):
    """Passes above MAX_PIXELS (explicit ratios near 1) run on ONNX Runtime: OpenVINO's first run
    at a new size costs seconds there. Same sub-model, so the same numbers."""
    if backends.unavailable("openvino-bf16"):
        pytest.skip("openvino is not installed")
    from mattekit.backends import openvino

    rgb = np.asarray(Image.open(sample_photo).convert("RGB").resize((1024, 768)))
    assert 1024 * 768 > openvino.MAX_PIXELS
    got = Engine(backend="openvino-bf16").matte(rgb, 1.0).alpha
    want = Engine(backend="onnxruntime").matte(rgb, 1.0).alpha
    assert np.abs(got - want).max() < 1e-4


# -- choosing one ------------------------------------------------------------------------------
def test_auto_takes_onnxruntime_on_a_cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    monkeypatch.delenv("MATTEKIT_BACKEND", raising=False)
    assert backends.resolve() == "onnxruntime"


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_auto_takes_the_bf16_decoder_where_the_cpu_has_bf16(monkeypatch, flag):
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", flag}))
    monkeypatch.delenv("MATTEKIT_BACKEND", raising=False)
    want = "openvino-bf16" if backends.unavailable("openvino-bf16") is None else "onnxruntime"
    assert backends.resolve() == want
    assert backends.resolve("onnxruntime") == "onnxruntime"  # an explicit choice wins


def test_the_environment_chooses_and_bad_names_are_refused(monkeypatch):
    monkeypatch.setenv("MATTEKIT_BACKEND", " ONNXRuntime ")
    assert backends.resolve() == "onnxruntime"
    assert Engine().backend == "onnxruntime"
    monkeypatch.setenv("MATTEKIT_BACKEND", "tensorrt")
    with pytest.raises(InvalidOption, match="backend must be auto or one of onnxruntime, openvino-bf16"):
        Engine()


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    assert backends.unavailable("openvino-bf16") == "openvino is not installed (pip install 'mattekit[openvino]')"
    with pytest.raises(InvalidOption, match=r"mattekit\[openvino\]"):
        backends.resolve("openvino-bf16")


def test_the_full_graph_always_runs_on_onnxruntime():
    assert Engine(fast=False, backend=_available()[-1]).load().backend == "onnxruntime"


def test_cpu_flags_are_read_from_linux():
    flags = backends.cpu_flags()
    if Path("/proc/cpuinfo").is_file():
        assert "sse2" in flags  # every x86-64 CPU
