"""The files the page's Camera mode runs on: onnxruntime-web and the RVM model.

The camera's frames never reach the server: the page runs RVM itself (WebGPU, else WebAssembly)
and the server only serves

- ``/camera/ort/NAME``: onnxruntime-web's files, from the npm package our setup installs into
  ``web/node_modules`` (``make web``; ``MATTEKIT_WEB_RUNTIME`` names another ``dist`` folder).
  Only the six files the page loads are served, ``.mjs`` as ``text/javascript`` and ``.wasm``
  as ``application/wasm`` (browsers compile WebAssembly in a stream only then).
- ``/camera/model.onnx``: the same ONNX file the server uses, from the model store, served only
  when its SHA-256 is one the store accepts (:meth:`mattekit.core.store.ModelStore.verify`).

WebAssembly threads need a cross-origin isolated page: the page (``/``) carries
``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``
(api.PAGE_HEADERS), and these files the same, plus ``Cross-Origin-Resource-Policy: same-origin``.
None of them needs an API key: they are public files, and serving them costs no inference.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from ..core.models import rvm as store
from ..core.store import ModelInfo
from ..errors import ModelUnavailable
from .errors import RuntimeMissing
from .state import service_of

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# The WASM build (threads + SIMD) and the WebGPU build; nothing else of the package is served.
RUNTIME_FILES = {
    "ort.wasm.min.mjs": "text/javascript",
    "ort-wasm-simd-threaded.mjs": "text/javascript",
    "ort-wasm-simd-threaded.wasm": "application/wasm",
    "ort.webgpu.min.mjs": "text/javascript",
    "ort-wasm-simd-threaded.asyncify.mjs": "text/javascript",
    "ort-wasm-simd-threaded.asyncify.wasm": "application/wasm",
}
log = logging.getLogger("mattekit.service")

REPO_RUNTIME = Path(__file__).resolve().parents[3] / "web" / "node_modules" / "onnxruntime-web" / "dist"


def runtime_dir() -> Path:
    """Where onnxruntime-web's ``dist`` files are: ``MATTEKIT_WEB_RUNTIME``, else ``web/`` in the checkout."""
    return Path(os.environ.get("MATTEKIT_WEB_RUNTIME") or REPO_RUNTIME).expanduser()


router = APIRouter(prefix="/camera", tags=["camera"], include_in_schema=False)


@router.get("/ort/{name}")
async def runtime_file(name: str) -> FileResponse:
    media_type = RUNTIME_FILES.get(name)
    path = runtime_dir() / name
    if media_type is None:
        raise RuntimeMissing(f"{name} is not among the camera's runtime files on this server")
    if not path.is_file():
        log.warning("the camera's in-browser runtime is missing: %s (run `make web`)", path)
        raise RuntimeMissing(
            "the in-browser runtime is not installed on this server (its log says where it looked): run `make web`"
        )
    return FileResponse(path, media_type=media_type, headers={**ISOLATION_HEADERS, "Cache-Control": "no-cache"})


class _Digests:
    """SHA-256 of the model file by (path, size, mtime): the hash is checked once per file version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple[str, int, int], str] = {}

    def verified(self, model_arg: str | None) -> ModelInfo:
        # The file the engine uses: its explicit path, else MATTEKIT_MODEL, else the store's cache
        # (the server fetched it at start; nothing is fetched here).
        explicit = model_arg or os.environ.get("MATTEKIT_MODEL")
        path = Path(explicit).expanduser() if explicit else store.cached_path()
        try:
            st = path.stat()
        except OSError:
            raise ModelUnavailable(f"model file not found: {path}; run `mattekit model fetch`") from None
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            digest = self._known.get(key)
        if digest is None:
            digest = store.verify(path)  # raises ModelUnavailable (503) for an unknown file
            with self._lock:
                self._known = {key: digest}
        return ModelInfo(path, digest, "explicit" if explicit else "cache")


_digests = _Digests()


@router.get("/model.onnx")
async def model_file(request: Request) -> FileResponse:
    import asyncio

    matter = service_of(request).matter
    model_arg = matter.engine.model_arg
    info = await asyncio.to_thread(_digests.verified, str(model_arg) if model_arg else None)
    return FileResponse(
        info.path,
        media_type="application/octet-stream",
        headers={**ISOLATION_HEADERS, "ETag": f'"{info.sha256}"', "Cache-Control": "no-cache", "X-Model-SHA256": info.sha256},
    )
