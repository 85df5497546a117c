"""Chunked video (video/chunks/): cut, matte each chunk with a warm state, join without re-encoding.

Most tests run the chunks in this process (``executor="local"``: the same functions a Ray task
calls, without Ray's start-up); one runs the command on embedded Ray. The quality test reads the
dev GT clip in ../shared/eval.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from samples import sample_path

from mattekit import metrics
from mattekit.cli import app
from mattekit.errors import InvalidOption
from mattekit.options import Options, parse_background
from mattekit.video import VideoOptions, process_video
from mattekit.video.chunks import WARMUP_FRAMES, Chunk, plan_chunks, process_chunked

try:  # the two-node cluster fixture (needs Ray; without it the cluster test is skipped below)
    from test_batch import RAY_ENV, ray_cluster  # noqa: F401
except pytest.skip.Exception:
    RAY_ENV = {}

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _video_stamps(path: Path) -> list[Fraction]:
    import av

    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def _audio_stamps(path: Path, lo: float = 0.0, hi: float = float("inf")) -> list[float]:
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        ps = [p for p in c.demux(audio=0) if p.size and p.pts is not None]
        return [float(p.pts * p.time_base) for p in ps if lo - 1e-6 <= float(p.pts * p.time_base) < hi]


# -- planning: pure -----------------------------------------------------------------------------
def test_chunks_cover_every_frame_once_and_warm_on_the_frames_before() -> None:
    plan = plan_chunks(90, chunks=3, warmup=20)
    assert plan == [Chunk(0, 0, 30, 0), Chunk(1, 30, 60, 10), Chunk(2, 60, 90, 40)]
    for n, k in ((7, 3), (1000, 7), (5, 9)):
        plan = plan_chunks(n, chunks=k)
        covered = [i for c in plan for i in range(c.first, c.stop)]
        assert covered == list(range(n)) and all(c.frames > 0 for c in plan)
        assert all(c.warm == max(0, c.first - WARMUP_FRAMES) for c in plan)
    assert [c.frames for c in plan_chunks(100, chunk_frames=40)] == [40, 40, 20]
    with pytest.raises(InvalidOption):
        plan_chunks(10, chunks=2, chunk_frames=3)
    with pytest.raises(InvalidOption):
        plan_chunks(10, chunks=0)


# -- joining: every output type, the same frames and timestamps as one piece ----------------------
@pytest.fixture(scope="module")
def clip() -> Path:
    return sample_path("carphone")


@pytest.mark.parametrize(
    "name,options",
    [
        ("out.webm", Options(preset="fast")),
        ("out.mov", Options(preset="fast")),
        ("matte.mp4", Options(preset="fast", mask=True)),
        ("comp.mp4", Options(preset="fast", background=parse_background("white"))),
    ],
)
def test_chunks_join_with_the_frames_and_timestamps_of_one_piece(tmp_path: Path, clip: Any, name: Any, options: Any) -> None:
    video = VideoOptions(start=0.5, max_frames=30)
    one = process_video(clip, tmp_path / f"one-{name}", options, video)
    joined = process_chunked(clip, tmp_path / name, options, video, chunks=3, warmup=5, executor="local")
    assert joined.frames == one.frames == 30 and joined.chunks == 3
    assert _video_stamps(tmp_path / name) == _video_stamps(tmp_path / f"one-{name}")


def test_a_background_clip_goes_on_from_where_the_chunk_before_left_it(tmp_path: Path, clip: Any) -> None:
    """A 7-frame background clip of solid colours, looped: chunk k picks it up at its first frame."""
    from mattekit.video import read_frames, write_frames

    colours = [np.full((144, 176, 3), (40 * i, 255 - 40 * i, 128 if i % 2 else 0), np.uint8) for i in range(7)]
    bg = write_frames(colours, tmp_path / "bg.mp4", options={"crf": "0"})
    video = VideoOptions(max_frames=24, background_video=bg)
    process_video(clip, tmp_path / "one.mp4", Options(preset="fast"), video)
    process_chunked(clip, tmp_path / "three.mp4", Options(preset="fast"), video, chunks=3, warmup=4, executor="local")
    one, three = list(read_frames(tmp_path / "one.mp4")), list(read_frames(tmp_path / "three.mp4"))
    assert len(one) == len(three) == 24
    corner = [float(np.abs(a[:8, :8].astype(int) - b[:8, :8]).mean()) for a, b in zip(one, three)]
    assert max(corner) < 4, corner  # the same background colour in every frame (a wrong one is >= 40 off)

    # On a cluster the clip and the background travel as bytes (another node cannot read our paths).
    from mattekit.video.chunks import chunk_task, frame_times

    times = frame_times(clip, video)
    chunk = plan_chunks(len(times), chunks=3, warmup=4)[2]
    moved = replace(video, background_video=bg)  # on the task's side its name gives the suffix only
    background = bg.read_bytes()
    bg.unlink()
    data, _, _ = chunk_task(
        clip.read_bytes(), ".mp4", Options(preset="fast"), moved, "composite", times, chunk, (None, None, None), background
    )
    (tmp_path / "segment.mp4").write_bytes(data)
    seg = list(read_frames(tmp_path / "segment.mp4"))
    assert len(seg) == chunk.frames
    assert max(float(np.abs(a[:8, :8].astype(int) - b[:8, :8]).mean()) for a, b in zip(seg, one[chunk.first :])) < 4


def test_a_joined_webm_keeps_its_alpha_and_the_first_chunk_is_the_one_piece_run(tmp_path: Path, clip: Any) -> None:
    from mattekit.video import read_frames

    video = VideoOptions(max_frames=30)
    process_video(clip, tmp_path / "one.webm", Options(), video)
    process_chunked(clip, tmp_path / "two.webm", Options(), video, chunks=2, executor="local")
    one, two = list(read_frames(tmp_path / "one.webm")), list(read_frames(tmp_path / "two.webm"))
    assert len(one) == len(two) == 30 and two[0].shape == (144, 176, 4)
    assert all(np.array_equal(a, b) for a, b in zip(one[:15], two[:15]))  # chunk 1 starts fresh, as one piece does
    assert min(int(f[..., 3].min()) for f in two) == 0 and max(int(f[..., 3].max()) for f in two) == 255


def test_png_frames_are_renumbered_into_one_zip_or_folder(tmp_path: Path, clip: Any) -> None:
    video = VideoOptions(start=1.0, max_frames=12)
    process_video(clip, tmp_path / "one.zip", Options(), video)
    process_chunked(clip, tmp_path / "two.zip", Options(), video, chunks=3, executor="local")
    with zipfile.ZipFile(tmp_path / "one.zip") as a, zipfile.ZipFile(tmp_path / "two.zip") as b:
        assert b.namelist() == a.namelist() == [f"frame_{i:06d}.png" for i in range(12)]
        assert a.read("frame_000000.png") == b.read("frame_000000.png")
    process_chunked(clip, tmp_path / "frames", Options(), video, chunks=2, executor="local")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"frame_{i:06d}.png" for i in range(12)]
    (tmp_path / "frames" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidOption, match="other files"):  # a folder is replaced only if it holds our frames
        process_chunked(clip, tmp_path / "frames", Options(), video, chunks=2, executor="local")


def test_the_source_audio_is_muxed_once_in_sync(tmp_path: Path) -> None:
    """bigbuckbunny has AAC audio: copied into MOV, every source packet of the range once, shifted
    by the start as one piece shifts it."""
    src = sample_path("bigbuckbunny")
    video = VideoOptions(start=1.0, max_frames=12)
    result = process_chunked(src, tmp_path / "out.mov", Options(), video, chunks=2, executor="local", warmup=3)
    assert result.audio and result.frames == 12
    stamps = _video_stamps(tmp_path / "out.mov")
    assert len(stamps) == 12 and stamps[0] == 0
    end = float(stamps[-1]) + 1.0 / 25  # the picture's last frame ends here
    expected = [t - 1.0 for t in _audio_stamps(src, 1.0, 1.0 + end)]
    got = _audio_stamps(tmp_path / "out.mov")
    assert len(got) == len(expected) == len(set(got)) and got == sorted(got)
    assert np.allclose(got, expected, atol=1e-3)


# -- the command, on embedded Ray --------------------------------------------------------------
def test_the_command_runs_chunks_on_embedded_ray(tmp_path: Path, clip: Any) -> None:
    pytest.importorskip("ray", reason="chunks run on Ray: pip install 'mattekit[cluster]'")
    target = tmp_path / "out.webm"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mattekit",
            "video",
            str(clip),
            "-o",
            str(target),
            "--chunks",
            "2",
            "--max-frames",
            "20",
            "--preset",
            "fast",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "20 frames in 2 chunks" in " ".join((r.stdout + r.stderr).split())
    assert len(_video_stamps(target)) == 20
    assert not any(p.name.startswith("mattekit-segments-") for p in tmp_path.iterdir())  # segments cleaned up


def test_the_command_refuses_what_chunks_cannot_do(tmp_path: Path, clip: Any) -> None:
    def text(*args: str) -> tuple[int, str]:
        r = runner.invoke(app, ["video", str(clip), *args])
        return r.exit_code, " ".join(r.output.split())

    code, out = text("-o", str(tmp_path / "a.webm"), "--warmup", "5")
    assert code == 2 and "add --chunks" in out
    code, out = text("-o", str(tmp_path / "a.webm"), "--chunks", "2", "--chunk-seconds", "3")
    assert code == 2 and "not both" in out


def test_without_ray_the_command_says_how_to_get_it(tmp_path: Path, clip: Any) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # what `import ray` sees without the extra
        "from mattekit.cli import app\n"
        f"app(['video', {str(clip)!r}, '-o', {str(tmp_path / 'a.webm')!r}, '--chunks', '2', '--max-frames', '4'])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "pip install 'mattekit[cluster]'" in " ".join((r.stdout + r.stderr).split())


# -- quality on the dev GT clip ------------------------------------------------------------------
@pytest.mark.eval
def test_three_chunks_keep_every_frame_and_the_one_piece_quality(evaldir: Any, tmp_path: Path) -> None:
    """comp_D in 3 chunks of 30 frames (W = 20): every frame, dtSSD within 2 % of the one-piece run,
    no frame's SAD more than 10 % above its one-piece SAD. PNG frames: lossless alpha."""
    from bench import quality as bench

    gts = [g for _, g in bench.video_frames(evaldir)]
    source = evaldir / "video" / "comp_D.mp4"
    process_video(source, tmp_path / "one.zip")
    result = process_chunked(source, tmp_path / "three.zip", chunks=3, executor="local")
    one, three = _alphas(tmp_path / "one.zip"), _alphas(tmp_path / "three.zip")
    assert result.chunks == 3 and len(three) == len(one) == len(gts) == 90
    d1, d3 = metrics.dtssd(one, gts), metrics.dtssd(three, gts)
    assert d3 <= d1 * 1.02, (d1, d3)
    sad1 = [metrics.sad(a, g) for a, g in zip(one, gts)]
    sad3 = [metrics.sad(a, g) for a, g in zip(three, gts)]
    worst = max(b / a for a, b in zip(sad1, sad3))
    assert worst <= 1.10, worst


def _alphas(path: Path) -> list[np.ndarray]:
    import io

    from PIL import Image

    with zipfile.ZipFile(path) as z:
        return [np.asarray(Image.open(io.BytesIO(z.read(n)))).astype(np.float64)[..., 3] / 255.0 for n in sorted(z.namelist())]


# -- a real two-node cluster on loopback (the fixture of tests/test_batch.py) --------------------
@pytest.mark.cluster
def test_a_chunked_clip_and_a_batch_with_a_long_clip_run_on_a_two_node_cluster(
    ray_cluster: Any, tmp_path: Path, clip: Any
) -> None:
    """The source goes to the other node through Ray's object store; segments come back the same way.
    The batch cuts its long clip into chunks spread over both nodes and joins them."""
    env = {**os.environ, **RAY_ENV}
    target = tmp_path / "out.mov"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mattekit",
            "video",
            str(clip),
            "-o",
            str(target),
            "--chunks",
            "2",
            "--max-frames",
            "24",
            "--preset",
            "fast",
            "--address",
            ray_cluster,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    one = process_video(clip, tmp_path / "one.mov", Options(preset="fast"), VideoOptions(max_frames=24))
    assert one.frames == 24 and _video_stamps(target) == _video_stamps(tmp_path / "one.mov")

    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "long.mp4").write_bytes(clip.read_bytes())
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mattekit",
            "batch",
            str(src),
            str(dst),
            "--chunk-seconds",
            "0.5",
            "--max-frames",
            "40",
            "--preset",
            "fast",
            "--video-output",
            "mov",
            "--address",
            ray_cluster,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    import json

    [record] = [json.loads(line) for line in (dst / "_mattekit_manifest.jsonl").read_text().splitlines()]
    assert record["status"] == "ok" and record["note"] == "in 3 chunks", record
    process_video(clip, tmp_path / "one40.mov", Options(preset="fast"), VideoOptions(max_frames=40))
    assert _video_stamps(dst / "long.mov") == _video_stamps(tmp_path / "one40.mov")
