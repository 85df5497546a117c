"""``mattekit video``: format from the extension, clear errors, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from samples import sample_path

from mattekit.cli import app
from mattekit.video import read_frames

runner = CliRunner()


def _text(result: Any) -> str:
    return " ".join(result.output.split())  # Rich wraps long lines


@pytest.fixture(scope="module")
def clip() -> Path:
    return sample_path("carphone")


@pytest.mark.parametrize("name", ["out.webm", "out.zip", "frames/"])
def test_output_type_follows_the_extension(tmp_path: Path, clip: Any, name: Any) -> None:
    target = tmp_path / name
    r = runner.invoke(app, ["video", str(clip), "-o", str(target), "--max-frames", "5", "--preset", "fast"])
    assert r.exit_code == 0, r.output
    if name.endswith(".webm"):
        frames = list(read_frames(target))
        assert len(frames) == 5 and frames[0].shape == (144, 176, 4)
    elif name.endswith(".zip"):
        assert len(zipfile.ZipFile(target).namelist()) == 5
    else:
        assert len(list(target.glob("frame_*.png"))) == 5


def test_composite_with_a_colour_and_a_time_range(tmp_path: Path, clip: Any) -> None:
    target = tmp_path / "white.mp4"
    r = runner.invoke(app, ["video", str(clip), "-o", str(target), "--bg", "white", "--start", "1", "--end", "1.3"])
    assert r.exit_code == 0, r.output
    assert len(list(read_frames(target))) == 9  # 0.3 s at 29.97 fps


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["-o", "{tmp}/x.mp4"], 2, "needs a background"),
        (["-o", "{tmp}/x.gif"], 2, "cannot tell the output type"),
        (["-o", "{tmp}/x.webm", "--ratio", "3"], 2, "ratio"),
        (["-o", "{tmp}/x.webm", "--start", "2", "--end", "1"], 2, "end must be after start"),
    ],
)
def test_bad_flags_are_clear(tmp_path: Path, clip: Any, args: Any, code: Any, message: Any) -> None:
    r = runner.invoke(app, ["video", str(clip)] + [a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == code and message in _text(r)
    assert list(tmp_path.iterdir()) == []


def test_missing_input_and_existing_output(tmp_path: Path, clip: Any) -> None:
    r = runner.invoke(app, ["video", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "x.webm")])
    assert r.exit_code == 1 and "no such file" in _text(r)
    existing = tmp_path / "exists.webm"
    existing.write_bytes(b"keep me")
    r = runner.invoke(app, ["video", str(clip), "-o", str(existing)])
    assert r.exit_code == 2 and "exists" in _text(r) and existing.read_bytes() == b"keep me"


def test_ctrl_c_leaves_no_half_written_file(tmp_path: Path, clip: Any) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "clip.mov"
    # A suite started in the background (`make test &` in a shell without job control) inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler: the child gets the
    # default disposition back, as a terminal's foreground job has it.
    proc = subprocess.Popen(
        [sys.executable, "-m", "mattekit", "video", str(clip), "-o", str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "MATTEKIT_THREADS": "2"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    # The writer's temp file exists from its first frame on; its bytes may reach the disk only
    # at the end (FFmpeg buffers them), so waiting for a size left the signal no window at all.
    while not any(p.name.endswith(".part.mov") for p in out_dir.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    assert list(out_dir.iterdir()) == []


def test_background_can_be_another_clip(tmp_path: Path, clip: Any) -> None:
    bg = tmp_path / "bg.webm"
    assert runner.invoke(app, ["video", str(clip), "-o", str(bg), "--max-frames", "3", "--preset", "fast"]).exit_code == 0
    target = tmp_path / "over.mp4"
    r = runner.invoke(app, ["video", str(clip), "-o", str(target), "--bg", str(bg), "--max-frames", "7", "--preset", "fast"])
    assert r.exit_code == 0, r.output
    assert len(list(read_frames(target))) == 7  # the 3-frame background loops


def test_without_o_the_result_goes_beside_the_clip_and_stdout_is_refused(
    tmp_path: Path, clip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 28: `-o -` made a folder named '-' of PNGs; `video` had no default -o like `remove`."""
    import shutil

    monkeypatch.chdir(tmp_path)
    source = tmp_path / "talk.mp4"
    shutil.copy(clip, source)
    r = runner.invoke(app, ["video", str(source), "-o", "-", "--max-frames", "2"])
    assert r.exit_code == 2 and "cannot go to stdout" in _text(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.mp4"]
    r = runner.invoke(app, ["video", str(source), "--max-frames", "3", "--preset", "fast"])
    assert r.exit_code == 0, r.output
    assert len(list(read_frames(tmp_path / "talk-cutout.webm"))) == 3
    r = runner.invoke(app, ["video", str(source), "--max-frames", "3", "--preset", "fast"])
    assert r.exit_code == 2 and "talk-cutout.webm exists" in _text(r)
    from mattekit.cli.video import default_target

    assert default_target("a/talk.mp4", "composite") == str(Path("a/talk-cutout.mp4"))
    assert default_target("talk.mov", "png-dir") == "talk-cutout"


def _copy_of(clip: Path, folder: Path, name: str) -> Path:
    import shutil

    folder.mkdir(exist_ok=True)
    return Path(shutil.copy(clip, folder / name))


@pytest.mark.parametrize("how", ["same name", "symlink", "hard link", "webm"])
def test_a_clip_is_never_overwritten_by_its_own_result(tmp_path: Path, clip: Any, how: str, named_again: Any) -> None:
    """The reviewer's data loss: `-o victim.mp4` on victim.mp4 replaced it, even without a
    --overwrite that was given only to make it go through. Refused as `remove` refuses stills."""
    victim = _copy_of(clip, tmp_path, "victim.webm" if how == "webm" else "victim.mp4")
    before = victim.read_bytes()
    target = named_again(victim, how)
    args = ["-o", str(target), "--overwrite", "--max-frames", "2"] + ([] if how == "webm" else ["--mask"])
    r = runner.invoke(app, ["video", str(victim), *args])
    assert r.exit_code == 2 and "would be overwritten by its own result" in _text(r), r.output
    assert victim.read_bytes() == before and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_background_clip_is_never_overwritten_either(tmp_path: Path, clip: Any) -> None:
    bg = _copy_of(clip, tmp_path, "bg.mp4")
    before = bg.read_bytes()
    r = runner.invoke(app, ["video", str(clip), "-o", str(bg), "--bg", str(bg), "--overwrite", "--max-frames", "2"])
    assert r.exit_code == 2 and "would be overwritten by its own result" in _text(r)
    assert bg.read_bytes() == before


@pytest.mark.parametrize(
    "name, flags, fix",
    [
        ("out.webm", ["--bg", "white"], "--output-type composite"),
        ("out.mov", ["--bg", "blur"], "--output-type composite"),
        ("out.zip", ["--bg", "white"], "--output-type composite"),
        ("out.webm", ["--mask"], "--output-type matte"),
        ("out.mov", ["--mask"], "--output-type matte"),
        ("frames/", ["--mask"], "--output-type matte"),
        ("out.mp4", ["--mask", "--bg", "white"], "give one"),
    ],
)
def test_an_output_that_cannot_carry_bg_or_mask_is_refused(
    tmp_path: Path, clip: Any, name: str, flags: list[str], fix: str
) -> None:
    """These wrote a plain transparent cut-out and said ✓: only a composite draws a background,
    only a matte type writes the matte. The message names the types that do."""
    r = runner.invoke(app, ["video", str(clip), "-o", str(tmp_path / name), "--max-frames", "2", *flags])
    assert r.exit_code == 2 and fix in _text(r), r.output
    assert ".mp4" in _text(r) or "give one" in fix
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kind, name",
    [("png-zip", "y.webm"), ("matte", "z.webm"), ("webm", "x.mov"), ("composite", "c.avi"), ("png-dir", "f.zip")],
)
def test_an_output_type_that_contradicts_the_name_is_refused(tmp_path: Path, clip: Any, kind: str, name: str) -> None:
    """`-t png-zip -o y.webm` wrote a ZIP named .webm: the name would lie about its bytes."""
    flags = ["--bg", "white"] if kind == "composite" else []
    r = runner.invoke(app, ["video", str(clip), "-t", kind, "-o", str(tmp_path / name), "--max-frames", "2", *flags])
    assert r.exit_code == 2 and f"the output type {kind}" in _text(r) and "contradicts the name" in _text(r), r.output
    assert list(tmp_path.iterdir()) == []


def test_an_output_type_for_one_file_is_refused_for_a_folder(tmp_path: Path, clip: Any) -> None:
    r = runner.invoke(app, ["video", str(clip), "-t", "png-zip", "-o", f"{tmp_path}/frames/", "--max-frames", "2"])
    assert r.exit_code == 2 and "is a folder" in _text(r) and "frames.zip" in _text(r)
    assert list(tmp_path.iterdir()) == []


def test_a_type_with_a_name_that_says_nothing_is_written(tmp_path: Path, clip: Any) -> None:
    target = tmp_path / "frames.bin"  # like `remove -f png -o result`: the name does not contradict
    r = runner.invoke(app, ["video", str(clip), "-t", "png-zip", "-o", str(target), "--max-frames", "2", "--preset", "fast"])
    assert r.exit_code == 0, r.output
    assert len(zipfile.ZipFile(target).namelist()) == 2


def test_a_clip_without_a_person_is_written_but_not_a_success(tmp_path: Path) -> None:
    """Big Buck Bunny has no person: RVM keeps nothing, which said ✓ before. The file stays (an
    editor may look), the warning says why, and the exit status is 1 so scripts stop."""
    target = tmp_path / "bunny.webm"
    r = runner.invoke(app, ["video", str(sample_path("bigbuckbunny")), "-o", str(target), "--max-frames", "3"])
    assert r.exit_code == 1, r.output
    assert "no person found in any of its 3 frames" in _text(r) and "✓" not in r.output
    assert len(list(read_frames(target))) == 3


def test_help_says_what_subject_does_for_a_clip() -> None:
    r = runner.invoke(app, ["video", "--help"])
    text = _text(r)
    assert r.exit_code == 0 and "people only" in text and "exit status 1" in text
    assert "general model when no person" not in text  # video never falls back to it
