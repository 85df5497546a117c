"""What a worker does with one item: a photo through one engine per actor
(:class:`ImageWorker`), a clip as one task (:func:`process_video_item`), each result written to
DST under a temporary name and answered with a small :class:`Record`.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import MattekitError
from ..files import temp_name
from .sources import Item, Location, Spec, relative, target_for

log = logging.getLogger("mattekit.batch")


# -- writing ------------------------------------------------------------------------------------
def write_bytes(loc: Location, path: str, data: bytes) -> None:
    """Write so that ``path`` never holds a partial file (resume trusts what exists)."""
    parent = posixpath.dirname(path)
    if loc.local:
        loc.fs.create_dir(parent, recursive=True)
        tmp = posixpath.join(parent, temp_name(posixpath.basename(path)))
        try:
            with loc.fs.open_output_stream(tmp) as out:
                out.write(data)
            loc.fs.move(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:  # object stores publish an object only when its upload completes
        with loc.fs.open_output_stream(path) as out:
            out.write(data)


@dataclass
class Record:
    """One line of the manifest."""

    input: str
    output: str
    kind: str
    status: str  # "ok" | "error"
    error: str | None
    seconds: float
    note: str | None = None
    node: str | None = None  # the Ray node that did the work, for tracing a failure to a machine
    at: float = field(default_factory=time.time)  # when it finished (epoch seconds, worker's clock)

    def to_json(self) -> str:
        line = {
            "input": self.input,
            "output": self.output,
            "kind": self.kind,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 4),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
        }
        for key in ("node", "note"):
            if getattr(self, key):
                line[key] = getattr(self, key)
        return json.dumps(line, ensure_ascii=False)


def error_text(exc: BaseException) -> str:
    if isinstance(exc, MattekitError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory while processing this file"
    return f"{type(exc).__name__}: {exc}"


def process_image(matter: Any, spec: Spec, source: str, data: bytes) -> Record:
    """Matte one image and write it to DST. Never raises: a failure is a record."""
    target = target_for(relative(source, spec.src.path), "image", spec)
    t0 = time.perf_counter()
    try:
        # An empty result (no subject found) is this file's error, never a transparent "ok".
        result = matter.process(data, spec.options).raise_if_empty()
        write_bytes(spec.dst, target, result.encode(spec.options.format, spec.options.quality))
        status, error = "ok", None
    except Exception as exc:  # one bad file must not fail the job
        status, error = "error", error_text(exc)
    return Record(spec.src.display(source), spec.dst.display(target), "image", status, error, time.perf_counter() - t0)


class ImageWorker:
    """A Ray Data actor: one engine (one ONNX Runtime session) with ``threads`` threads."""

    def __init__(self, spec: Spec, threads: int) -> None:
        from ..core.engine import Engine
        from ..matter import Matter

        _limit_threads(threads)
        self.spec = spec
        self.matter = Matter(spec.options, engine=Engine(threads=threads, device=spec.device, backend=spec.backend).load())
        self.node = _node_id()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        records = [process_image(self.matter, self.spec, str(p), bytes(d)) for p, d in zip(batch["path"], batch["bytes"])]
        return {
            "input": [r.input for r in records],
            "output": [r.output for r in records],
            "kind": [r.kind for r in records],
            "status": [r.status for r in records],
            "error": [r.error or "" for r in records],
            "seconds": [r.seconds for r in records],
            "node": [self.node] * len(records),
            "at": [r.at for r in records],
        }


def _limit_threads(threads: int) -> None:
    """Keep a worker to the CPUs Ray gave it: ONNX Runtime takes ``threads`` from the engine, but
    OpenCV (resizes, the fast path's tail) would otherwise start a thread per core of the node."""
    import cv2

    cv2.setNumThreads(threads)


def item_record(spec: Spec, item: Item, status: str, error: str | None, seconds: float, **more: Any) -> Record:
    """The manifest line of ``item``: its source and target as the manifest shows them."""
    return Record(spec.src.display(item.source), spec.dst.display(item.target), item.kind, status, error, seconds, **more)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()[:12]


def process_video_item(spec: Spec, item: Item, threads: int) -> Record:
    """Matte one clip end to end (a Ray task). Remote files go through a local temp folder."""
    from ..core.engine import Engine
    from ..video import process_video

    t0 = time.perf_counter()
    try:
        vopts = spec.video.video_options(spec.options)
        _limit_threads(threads)
        engine = Engine(threads=threads, device=spec.device, backend=spec.backend)
        with tempfile.TemporaryDirectory(prefix="mattekit-batch-") as tmp:
            source = item.source if spec.src.local else download(spec.src, item.source, tmp)
            if spec.dst.local:
                # process_video writes a hidden temp file beside the target and renames it.
                result = process_video(source, item.target, spec.options, vopts, engine=engine)
            else:
                local = os.path.join(tmp, "out" + posixpath.splitext(item.target)[1])
                result = process_video(source, local, spec.options, vopts, engine=engine)
                upload(local, spec.dst, item.target)
        status, error = clip_outcome(result.empty)
    except Exception as exc:
        status, error = "error", error_text(exc)
    return item_record(spec, item, status, error, time.perf_counter() - t0, node=_node_id())


def clip_outcome(empty: bool) -> tuple[str, str | None]:
    """A written clip's manifest status and error: one with no person in any frame is written,
    but not a success (as `mattekit video` exits 1 on it)."""
    from ..video.pipeline import NO_PERSON

    return ("error", f"{NO_PERSON} (written all the same)") if empty else ("ok", None)


def download(loc: Location, path: str, folder: str) -> str:
    local = os.path.join(folder, "in" + posixpath.splitext(path)[1])
    with loc.fs.open_input_stream(path) as src, open(local, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return local


def upload(local: str, loc: Location, path: str) -> None:
    with open(local, "rb") as src, loc.fs.open_output_stream(path) as out:
        shutil.copyfileobj(src, out, 1 << 20)
