"""The ground-floor file rules: one temp-name rule every writer uses, and the one parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from mattekit.errors import InvalidOption
from mattekit.files import is_temp_name, temp_name, temp_path, write_atomic
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


def test_formats() -> None:
    assert extension("jpg") == ".jpg" and ".gif" in IMAGE_SUFFIXES and ".gif" not in CLIP_SUFFIXES
    with pytest.raises(InvalidOption, match="format must be one of"):
        extension("gif")
