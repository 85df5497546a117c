"""docs/extending.md's new model and new backend, each one file and one row, registered as the
page shows them and run through the real path: a photo through Matter (decode → the model →
compose), a clip's frames through the engine's stages."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit import Options
from mattekit.core import backends, models
from mattekit.core.backends import Backend
from mattekit.core.engine import Engine
from mattekit.core.models import ModelEntry
from mattekit.core.streams import run_stages
from mattekit.errors import ModelUnavailable
from mattekit.matter import Matter

PAGE = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _section(title: str) -> tuple[str, str]:
    """The python blocks of one section of the page: the module's source and its row."""
    text = PAGE.read_text()
    body = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    module, row = re.findall(r"```python\n(.*?)```", body, re.S)
    return module, row.strip().rstrip(",")


def _install(name: str, source: str, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """``source`` as module ``name``, as if it were the file the page names."""
    module = types.ModuleType(name)
    module.__file__ = f"<docs/extending.md: {name}>"
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


@pytest.fixture
def keyer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[types.ModuleType]:
    """The page's model file and row, in a fresh cache; the general row restored afterwards."""
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEYER_MODEL", raising=False)
    source, row = _section("A new model")
    entry = eval(row, {"ModelEntry": ModelEntry})
    module = _install(entry.module, source, monkeypatch)
    monkeypatch.setitem(models.MODELS, entry.name, entry)
    models.set_engine("general", None)  # the next use builds the new row's engine
    yield module
    models.set_engine("general", None)


def _green_screen(sample_photo: Path) -> np.ndarray:
    with Image.open(sample_photo) as im:
        rgb = np.array(im.convert("RGB").resize((320, 240)))
    rgb[:, :120] = (0, 255, 0)  # the left part is the screen
    return rgb


def test_a_model_from_the_page_is_one_file_and_one_row(keyer: types.ModuleType, engine: Engine, sample_photo: Path) -> None:
    store = models.store("general")
    assert store is keyer.STORE and store.licence == "MIT"
    rgb = _green_screen(sample_photo)
    matter = Matter(engine=engine)
    with pytest.raises(ModelUnavailable, match="mattekit model fetch general"):
        matter.process(rgb, Options(subject="general"))  # not fetched yet: the store says what to do
    assert not matter.general.available()

    info = store.locate(fetch_missing=True)  # what `mattekit model fetch general` does
    assert info.source == "fetched" and info.path.parent == Path(keyer.STORE.cached_path()).parent
    assert store.locate(fetch_missing=False).source == "cache" and matter.general.available()

    result = matter.process(rgb, Options(subject="general"))
    assert result.model == "general" and not result.empty and result.image.mode == "RGBA"
    alpha = np.asarray(result.image)[..., 3].astype(int)
    r, g, b = (rgb[..., i].astype(np.float32) / 255 for i in range(3))
    want = np.rint(np.clip(1 - 4 * (g - np.maximum(r, b)), 0, 1) * 255).astype(int)
    assert np.abs(alpha - want).max() <= 1
    assert (alpha[:, :120] == 0).all() and alpha[:, 120:].mean() > 128  # the screen is gone, the photo kept

    cached = keyer.STORE.cached_path()
    cached.write_bytes(b"not the keyer")  # a corrupt cache: fetched again, as every model's is
    assert store.locate(fetch_missing=True).source == "fetched"


def test_a_backend_from_the_page_is_one_file_and_one_row(monkeypatch: pytest.MonkeyPatch, sample_clip: Path) -> None:
    from mattekit import presets
    from mattekit.video import read_frames

    source, row = _section("A new backend")
    entry = eval(row, {"Backend": Backend})
    module = _install(entry.module, source, monkeypatch)
    monkeypatch.setitem(backends.BACKENDS, entry.name, entry)
    assert backends.resolve("auto") != "counted" and backends.resolve("counted") == "counted"

    frames = list(read_frames(sample_clip, limit=4))
    counted = Engine(backend="counted")
    reference = Engine(backend="onnxruntime")
    ours = presets.stream(counted, "fast", 0.5).stages()
    theirs = presets.stream(reference, "fast", 0.5).stages()
    for rgb in frames:
        assert np.array_equal(run_stages(ours, rgb).alpha, run_stages(theirs, rgb).alpha)
    # the first frame runs as a still (ONNX Runtime fp32); the three later ones on the backend,
    # one run of each part of the network
    assert dict(module.RUNS) == {"backbone": 3, "recurrent": 3, "output": 3}
