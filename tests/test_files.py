"""The ground-floor file rules: one temp-name rule every writer uses, and the one parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from mattekit.errors import InvalidOption
from mattekit.files import delete_path, is_temp_name, move_into_place, temp_name, temp_path, write_atomic
from mattekit.formats import CLIP_SUFFIXES, IMAGE_SUFFIXES, extension

pytestmark = pytest.mark.unit  # make unit: in-process and fast


@pytest.mark.parametrize("name", ["a.png", "clip.webm", "frames", "x.y.mov", "photo.JPG"])
def test_every_temp_name_is_hidden_keeps_the_suffix_and_is_recognised(name: str) -> None:
    tmp = temp_name(name)
    assert tmp.startswith(f".{name}.") and tmp.endswith(Path(name).suffix)
    assert is_temp_name(tmp) and not is_temp_name(name)
    assert temp_name(name) != tmp  # two writers of one target never share a temp file


def test_names_older_versions_left_are_recognised_too() -> None:
    assert is_temp_name(".a.png.12345.part")  # the CLI's, by PID
    assert is_temp_name(".clip.webm.123.456.part.webm")  # video's, by PID and thread
    assert not is_temp_name(".keep") and not is_temp_name("a.part")


def test_write_atomic_leaves_only_the_result(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.png"
    write_atomic(target, b"data")
    assert target.read_bytes() == b"data" and sorted(p.name for p in target.parent.iterdir()) == ["a.png"]
    assert temp_path(target).parent == target.parent
    write_atomic(target, b"new")  # replaces
    assert target.read_bytes() == b"new" and len(list(target.parent.iterdir())) == 1


def test_write_atomic_without_parents_leaves_a_deleted_folder_deleted(tmp_path: Path) -> None:
    target = tmp_path / "gone" / "job.json"
    with pytest.raises(FileNotFoundError):
        write_atomic(target, b"{}", parents=False)
    assert not target.parent.exists()


def test_move_into_place_replaces_a_file_or_a_folder_of_frames(tmp_path: Path) -> None:
    clip = tmp_path / "clip.webm"
    clip.write_bytes(b"old")
    tmp = temp_path(clip)
    tmp.write_bytes(b"new")
    move_into_place(tmp, clip)
    assert clip.read_bytes() == b"new" and not tmp.exists()

    frames = tmp_path / "frames"
    (frames / "old.png").parent.mkdir()
    (frames / "old.png").write_bytes(b"old")
    tmp = temp_path(frames)
    tmp.mkdir()
    (tmp / "frame_000000.png").write_bytes(b"new")
    move_into_place(tmp, frames)  # a rename alone cannot replace a folder
    assert [p.name for p in frames.iterdir()] == ["frame_000000.png"] and not tmp.exists()


def test_a_file_never_replaces_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "out.zip"
    (target / "keep").mkdir(parents=True)
    tmp = temp_path(target)
    tmp.write_bytes(b"zip")
    with pytest.raises(OSError):
        move_into_place(tmp, target)
    assert (target / "keep").is_dir()
    delete_path(tmp)
    delete_path(target)
    assert list(tmp_path.iterdir()) == []


def test_formats() -> None:
    assert extension("jpg") == ".jpg" and ".gif" in IMAGE_SUFFIXES and ".gif" not in CLIP_SUFFIXES
    with pytest.raises(InvalidOption, match="format must be one of"):
        extension("gif")
