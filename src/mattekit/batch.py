"""Batch at scale: a folder or bucket of photos and videos, on Ray (embedded, or a cluster).

    SRC (any pyarrow/fsspec filesystem) ── list, skip what DST already has
      images → Ray Data: read_binary_files → map_batches(actor pool, one engine per actor)
               → each actor writes its results to DST and returns a small record
      videos → one Ray task per clip (RVM's recurrent state belongs to one video)
      driver  → appends every record to DST/_mattekit_manifest.jsonl, draws the progress bar

Resuming is by output: a result is written under a temporary name (local) or published on close
(object stores), so an output that exists is complete and is skipped on the next run. Failures
are records in the manifest, never a failed job.

Ray is an optional extra; this module imports it only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .cluster import ACTOR_CPU_SHARE, READ_CPUS, Pool, check_reachable, connect, portable, size_pool
from .cluster import node_cpus as _node_cpus
from .errors import ClusterUnavailable, InvalidInput, InvalidOption, MattekitError, MissingExtra
from .files import is_temp_name, temp_name
from .formats import CLIP_SUFFIXES, IMAGE_SUFFIXES
from .options import Options

log = logging.getLogger("mattekit.batch")

MANIFEST = "_mattekit_manifest.jsonl"
INSTALL_HINT = "batch runs on Ray, an optional extra: pip install 'mattekit[cluster]'"


def require_ray() -> None:
    from .cluster import require_ray as require

    require(INSTALL_HINT, data=True)


_portable = portable  # the name batch had


@dataclass(frozen=True)
class VideoSettings:
    """How videos found in a batch are written (see :class:`mattekit.video.VideoOptions`)."""

    output: str | None = None  # None: webm (transparent), composite mp4 with a background, matte mp4 with mask
    start: float = 0.0
    end: float | None = None
    max_frames: int | None = None
    max_duration: float | None = None
    audio: bool = True
    # Clips longer than twice this are cut into chunks of this many seconds, spread over the
    # cluster like files and joined when their last chunk is done (video/chunks.py).
    chunk_seconds: float | None = None

    def kind(self, options: Options) -> str:
        from .video.outputs import default_output

        return self.output or default_output(options)

    def video_options(self, options: Options):
        """The library's :class:`~mattekit.video.VideoOptions` (validates the values)."""
        from .video import VideoOptions

        return VideoOptions(
            output=self.kind(options),
            start=self.start,
            end=self.end,
            max_frames=self.max_frames,
            max_duration=self.max_duration,
            audio=self.audio,
        )

    def suffix(self, options: Options) -> str:
        from .video.outputs import OUTPUTS

        kind = self.kind(options)
        suffixes = {name: spec.extension for name, spec in OUTPUTS.items() if spec.batch}  # one file per video
        if kind not in suffixes:
            raise InvalidOption(f"batch writes videos as {', '.join(suffixes)}, not {kind!r}")
        return suffixes[kind]


# -- where files are ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Location:
    """A folder on a filesystem pyarrow can reach (local, S3, GCS, HDFS, or any fsspec one)."""

    fs: Any  # pyarrow.fs.FileSystem (picklable, so it travels to Ray workers)
    path: str  # the folder inside ``fs``, '/'-separated, no trailing slash
    scheme: str = ""  # '' for local paths

    @property
    def local(self) -> bool:
        return self.fs.type_name == "local"

    def join(self, rel: str) -> str:
        """``rel`` under this folder, never outside it: an object key may hold an empty segment
        (``in//abs/x.jpg``, which a plain join makes absolute) or ``..``."""
        parts = _segments(rel)
        if not parts or ".." in parts:
            raise InvalidInput(f"{rel!r} would be written outside {self.display(self.path)}")
        return posixpath.join(self.path, *parts) if self.path else "/".join(parts)

    def display(self, path: str) -> str:
        return f"{self.scheme}://{path}" if self.scheme else path


def resolve(uri: str) -> Location:
    """A :class:`Location` for a local path or a URI (``s3://bucket/prefix``, ``gs://…``, …)."""
    import pyarrow.fs as pafs

    if "://" not in uri:
        path = os.path.abspath(os.path.expanduser(uri))
        return Location(pafs.LocalFileSystem(), path.rstrip("/") or "/")
    scheme = uri.split("://", 1)[0].lower()
    if scheme == "file":
        return resolve(uri[len("file://") :])
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except Exception as native_error:  # pyarrow knows s3/gs/hdfs; fsspec knows many more
        try:
            import fsspec.core

            ffs, path = fsspec.core.url_to_fs(uri)
        except Exception as exc:
            raise InvalidOption(f"cannot open {uri}: {native_error}; fsspec: {exc}") from None
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(ffs))
    return Location(fs, path.rstrip("/"), scheme)


# -- what to do ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    kind: str  # "image" | "video"
    source: str  # path inside the source filesystem
    target: str  # path inside the destination filesystem
    rel: str  # source path relative to SRC (what the manifest and messages show)


@dataclass(frozen=True)
class Spec:
    """Everything a worker needs: travels to each actor/task once."""

    src: Location
    dst: Location
    options: Options
    video: VideoSettings = field(default_factory=VideoSettings)
    device: str | None = None  # auto | cpu | cuda for every worker's engine; None: MATTEKIT_DEVICE, else auto
    backend: str | None = None  # every worker's engine backend; None: MATTEKIT_BACKEND, else auto


def image_suffixes() -> frozenset[str]:
    return IMAGE_SUFFIXES


def video_suffixes() -> frozenset[str]:
    # A .gif/.webp is a still for `remove` too; batch follows remove.
    return CLIP_SUFFIXES


def target_for(rel: str, kind: str, spec: Spec) -> str:
    """Where ``rel`` (relative to SRC) goes under DST: same relative path, the output's suffix."""
    stem, _ = posixpath.splitext(rel)
    suffix = spec.video.suffix(spec.options) if kind == "video" else f".{spec.options.format}"
    return spec.dst.join(stem + suffix)


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def list_files(loc: Location) -> list[str]:
    """Every file under ``loc`` (recursive), as paths inside its filesystem, sorted."""
    import pyarrow.fs as pafs

    infos = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=True, allow_not_found=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


def _segments(rel: str) -> list[str]:
    return [part for part in rel.split("/") if part not in ("", ".")]


def relative(path: str, base: str) -> str:
    """``path`` relative to ``base``, without empty or ``.`` segments (``in//a.jpg`` → ``a.jpg``)."""
    prefix = base.rstrip("/") + "/"
    rel = path[len(prefix) :] if path.startswith(prefix) else posixpath.basename(path)
    return "/".join(_segments(rel))


@dataclass
class Plan:
    todo: list[Item]
    done: list[Item]  # outputs already there: skipped (resume)
    clashes: list[Item]  # a second input that would write an output another input writes
    ignored: int  # files that are neither images nor videos (or are hidden)
    stale: list[str] = field(default_factory=list)  # temp files a killed run left in DST


def plan(spec: Spec, *, overwrite: bool = False) -> Plan:
    """Which inputs still need doing. Inputs under DST (when DST lies inside SRC) are ignored."""
    import pyarrow.fs as pafs

    src, dst = spec.src, spec.dst
    info = src.fs.get_file_info(src.path)
    if info.type != pafs.FileType.Directory:
        raise InvalidOption(f"not a folder: {src.display(src.path)} (batch takes folders; `mattekit remove` takes files)")
    base = src.path
    same_fs = src.fs.type_name == dst.fs.type_name
    images, videos = image_suffixes(), video_suffixes()
    in_dst = list_files(dst)
    existing = set(in_dst) if not overwrite else set()
    stale = [p for p in in_dst if is_temp_name(posixpath.basename(p))]
    todo: list[Item] = []
    done: list[Item] = []
    clashes: list[Item] = []
    seen: set[str] = set()
    ignored = 0
    for path in list_files(src):
        if same_fs and (path == dst.path or path.startswith(dst.path.rstrip("/") + "/")):
            continue
        rel = relative(path, base)
        suffix = posixpath.splitext(rel)[1].lower()
        kind = "image" if suffix in images else "video" if suffix in videos else None
        if kind is None or _hidden(rel):  # hidden: also any ``..`` segment of an object key
            ignored += 1
            continue
        item = Item(kind, path, target_for(rel, kind, spec), rel)
        if item.target in seen:
            clashes.append(item)
            continue
        seen.add(item.target)
        (done if item.target in existing else todo).append(item)
    return Plan(todo, done, clashes, ignored, stale)


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


def _error_text(exc: BaseException) -> str:
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
        status, error = "error", _error_text(exc)
    return Record(spec.src.display(source), spec.dst.display(target), "image", status, error, time.perf_counter() - t0)


class ImageWorker:
    """A Ray Data actor: one engine (one ONNX Runtime session) with ``threads`` threads."""

    def __init__(self, spec: Spec, threads: int) -> None:
        from .core.engine import Engine
        from .matter import Matter

        _limit_threads(threads)
        self.spec = spec
        self.matter = Matter(spec.options, engine=Engine(threads=threads, device=spec.device, backend=spec.backend).load())
        self.node = _node_id()

    def __call__(self, batch: dict) -> dict:
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


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()[:12]


def process_video_item(spec: Spec, item: Item, threads: int) -> Record:
    """Matte one clip end to end (a Ray task). Remote files go through a local temp folder."""
    from .core.engine import Engine
    from .video import process_video

    t0 = time.perf_counter()
    try:
        vopts = spec.video.video_options(spec.options)
        _limit_threads(threads)
        engine = Engine(threads=threads, device=spec.device, backend=spec.backend)
        with tempfile.TemporaryDirectory(prefix="mattekit-batch-") as tmp:
            source = item.source if spec.src.local else _download(spec.src, item.source, tmp)
            if spec.dst.local:
                # process_video writes a hidden temp file beside the target and renames it.
                process_video(source, item.target, spec.options, vopts, engine=engine)
            else:
                local = os.path.join(tmp, "out" + posixpath.splitext(item.target)[1])
                process_video(source, local, spec.options, vopts, engine=engine)
                _upload(local, spec.dst, item.target)
        status, error = "ok", None
    except Exception as exc:
        status, error = "error", _error_text(exc)
    return Record(
        spec.src.display(item.source),
        spec.dst.display(item.target),
        "video",
        status,
        error,
        time.perf_counter() - t0,
        node=_node_id(),
    )


def _download(loc: Location, path: str, folder: str) -> str:
    local = os.path.join(folder, "in" + posixpath.splitext(path)[1])
    with loc.fs.open_input_stream(path) as src, open(local, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return local


def _upload(local: str, loc: Location, path: str) -> None:
    with open(local, "rb") as src, loc.fs.open_output_stream(path) as out:
        shutil.copyfileobj(src, out, 1 << 20)


# -- the manifest -------------------------------------------------------------------------------
class Manifest:
    """``DST/_mattekit_manifest.jsonl``: one JSON line per file attempted, in every run.

    Appended line by line where the filesystem can append (local disks, HDFS); object stores
    cannot, so there it is rewritten whole, at most every ``rewrite_every`` seconds and at close.
    """

    def __init__(self, loc: Location, rewrite_every: float = 10.0) -> None:
        self.loc = loc
        self.path = loc.join(MANIFEST)
        self.rewrite_every = rewrite_every
        self._lines: list[str] | None = None
        self._last = 0.0
        loc.fs.create_dir(loc.path, recursive=True)
        try:
            self._stream = loc.fs.open_append_stream(self.path)
        except Exception:  # pyarrow raises NotImplemented for S3/GCS appends
            self._stream = None
            self._lines = self._read_existing()

    def _read_existing(self) -> list[str]:
        try:
            with self.loc.fs.open_input_stream(self.path) as f:
                return f.read().decode("utf-8").splitlines()
        except (FileNotFoundError, OSError):
            return []

    def add(self, record: Record) -> None:
        line = record.to_json()
        if self._stream is not None:
            self._stream.write((line + "\n").encode("utf-8"))
            self._stream.flush()
        else:
            assert self._lines is not None
            self._lines.append(line)
            if time.monotonic() - self._last > self.rewrite_every:
                self._rewrite()

    def _rewrite(self) -> None:
        assert self._lines is not None
        write_bytes(self.loc, self.path, ("\n".join(self._lines) + "\n").encode("utf-8"))
        self._last = time.monotonic()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        elif self._lines is not None:
            self._rewrite()


def read_manifest(loc: Location) -> list[dict]:
    """Every record of DST's manifest, oldest first (empty if there is none)."""
    try:
        with loc.fs.open_input_stream(loc.join(MANIFEST)) as f:
            text = f.read().decode("utf-8")
    except (FileNotFoundError, OSError):
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- running ------------------------------------------------------------------------------------
@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    clashes: int = 0
    ignored: int = 0
    seconds: float = 0.0
    pool: Pool | None = None
    failures: list[Record] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0


def run(
    spec: Spec,
    *,
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    overwrite: bool = False,
    on_plan: Callable[[Plan], None] | None = None,
    on_record: Callable[[Record], None] | None = None,
    verbose: bool = False,
) -> Summary:
    """Process every image and video under ``spec.src`` into ``spec.dst``.

    ``on_plan`` sees what will be done before Ray starts; ``on_record`` sees each finished file.
    Returns counts; failed files are in the summary and in the manifest, never raised.
    """
    require_ray()
    spec = replace(spec, options=_portable(spec.options))
    if spec.video.kind(spec.options) == "composite" and spec.options.background is None:
        raise InvalidOption("composite videos need a background (--bg)")
    work = plan(spec, overwrite=overwrite)
    summary = Summary(skipped=len(work.done), clashes=len(work.clashes), ignored=work.ignored)
    if on_plan:
        on_plan(work)
    manifest = Manifest(spec.dst)
    started = time.perf_counter()

    def record(rec: Record) -> None:
        manifest.add(rec)
        if rec.status == "ok":
            summary.done += 1
        else:
            summary.failed += 1
            summary.failures.append(rec)
        if on_record:
            on_record(rec)

    try:
        for path in work.stale:  # a killed run's half-written files: one batch per DST at a time
            with contextlib.suppress(OSError):
                spec.dst.fs.delete_file(path)
        if work.done:
            # A crash between writing an output and logging it leaves a complete file without a
            # record: log it now, so the manifest lists every success exactly once.
            logged = {r["input"] for r in read_manifest(spec.dst) if r.get("status") == "ok"}
            for item in work.done:
                if spec.src.display(item.source) not in logged:
                    manifest.add(
                        Record(
                            spec.src.display(item.source),
                            spec.dst.display(item.target),
                            item.kind,
                            "ok",
                            None,
                            0.0,
                            note="output found complete when resuming",
                        )
                    )
        for item in work.clashes:
            record(
                Record(
                    spec.src.display(item.source),
                    spec.dst.display(item.target),
                    item.kind,
                    "error",
                    "another input writes the same output (same name, other extension)",
                    0.0,
                )
            )
        if not work.todo:
            return summary
        import ray

        # A library caller that set Ray up itself keeps its session; ours ends with the batch.
        owned = not ray.is_initialized()
        if owned:
            connect(address, verbose=verbose)
        try:
            pool = size_pool(_node_cpus(), workers, threads)
            summary.pool = pool
            log.info("actor pool: %d workers x %d threads (%.2f CPUs each)", pool.size, pool.threads, pool.actor_cpus)
            images = [i for i in work.todo if i.kind == "image"]
            videos = [i for i in work.todo if i.kind == "video"]
            if images:
                for rec in _run_images(spec, images, pool):
                    record(rec)
            if videos:
                for rec in _run_videos(spec, videos, pool):
                    record(rec)
        finally:
            if owned:
                ray.shutdown()
    finally:
        manifest.close()
        summary.seconds = time.perf_counter() - started
    return summary


def _run_images(spec: Spec, items: list[Item], pool: Pool) -> Iterator[Record]:
    import ray
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours counts files, not blocks
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    ds = ray.data.read_binary_files(
        [i.source for i in items],
        include_paths=True,
        filesystem=spec.src.fs,
        num_cpus=READ_CPUS,
        ignore_missing_paths=True,
        # Small read tasks keep memory flat and let results stream back while reading goes on.
        override_num_blocks=max(1, min(len(items), max(pool.size * 4, len(items) // 16))),
    )
    results = ds.map_batches(
        ImageWorker,
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=max(1, min(pool.size, len(items)))),
        num_cpus=pool.actor_cpus,
        fn_constructor_kwargs={"spec": spec, "threads": pool.threads},
    )
    for row in results.iter_rows():
        yield Record(
            str(row["input"]),
            str(row["output"]),
            str(row["kind"]),
            str(row["status"]),
            str(row["error"]) or None,
            float(row["seconds"]),
            node=str(row["node"]),
            at=float(row["at"]),
        )


def _run_videos(spec: Spec, items: list[Item], pool: Pool) -> Iterator[Record]:
    import ray

    task = ray.remote(process_video_item).options(num_cpus=pool.actor_cpus, max_retries=1)
    pending: dict[Any, Any] = {}  # task → the clip it is for (or, for a chunk, its _Split and index)
    splits: list[_Split] = []
    with tempfile.TemporaryDirectory(prefix="mattekit-batch-join-") as folder:
        for item in items:
            split = _split(spec, item, folder) if spec.video.chunk_seconds else None
            if split is None:
                pending[task.remote(spec, item, pool.threads)] = item
                continue
            splits.append(split)
            for ref, chunk in split.submit(spec, pool):
                pending[ref] = (split, chunk)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                what = pending.pop(ref)
                if isinstance(what, tuple):
                    split, chunk = what
                    record = split.finished(spec, ref, chunk)
                    if record is not None:
                        for other in [r for r, w in pending.items() if isinstance(w, tuple) and w[0] is split]:
                            ray.cancel(other)  # the clip has failed: its other chunks are wasted work
                            pending.pop(other)
                        yield record
                    continue
                try:
                    yield ray.get(ref)
                except Exception as exc:  # the task itself died (e.g. its worker was killed)
                    yield Record(
                        spec.src.display(what.source), spec.dst.display(what.target), "video", "error", _error_text(exc), 0.0
                    )


@dataclass
class _Split:
    """A long clip cut into chunks: where its segments gather until the last is done."""

    item: Item
    local: str  # the clip on this machine (the join reads its audio)
    shipped: Any  # what each chunk task gets: the path (SRC is local) or the bytes in the object store
    times: Any  # video.chunks.FrameTimes
    plan: list
    folder: str
    started: float = field(default_factory=time.perf_counter)
    segments: dict = field(default_factory=dict)  # chunk index → segment path
    failed: bool = False

    def submit(self, spec: Spec, pool: Pool) -> Iterator[tuple[Any, Any]]:
        import ray

        from .video.chunks import chunk_task

        task: Any = ray.remote(chunk_task).options(num_cpus=pool.actor_cpus, max_retries=1)  # Ray types 9 arguments at most
        vopts = spec.video.video_options(spec.options)
        for chunk in self.plan:
            yield (
                task.remote(
                    self.shipped,
                    posixpath.splitext(self.item.source)[1],
                    spec.options,
                    vopts,
                    spec.video.kind(spec.options),
                    self.times,
                    chunk,
                    (pool.threads, spec.device, spec.backend),
                ),
                chunk,
            )

    def finished(self, spec: Spec, ref: Any, chunk: Any) -> Record | None:
        """A chunk is done: its segment is kept; the last one joins the clip. A record when the clip
        is finished (joined, or failed at its first failed chunk), else None."""
        import ray

        from .video.chunks import join_segments, segment_kind
        from .video.outputs import OUTPUTS

        if self.failed:
            return None
        item = self.item

        def record(status: str, error: str | None) -> Record:
            return Record(
                spec.src.display(item.source),
                spec.dst.display(item.target),
                "video",
                status,
                error,
                time.perf_counter() - self.started,
                note=f"in {len(self.plan)} chunks",
            )

        try:
            data, _ = ray.get(ref)
            ext = OUTPUTS[segment_kind(spec.video.kind(spec.options))].extension
            path = os.path.join(self.folder, f"{id(self)}-{chunk.index:05d}{ext}")
            Path(path).write_bytes(data)
            self.segments[chunk.index] = Path(path)
            if len(self.segments) < len(self.plan):
                return None
            segments = [self.segments[i] for i in range(len(self.plan))]
            vopts = spec.video.video_options(spec.options)
            kind = spec.video.kind(spec.options)
            if spec.dst.local:
                spec.dst.fs.create_dir(posixpath.dirname(item.target), recursive=True)
                join_segments(segments, Path(item.target), kind, self.local, vopts, self.times, self.plan)
            else:
                joined = Path(self.folder) / f"{id(self)}-joined{OUTPUTS[kind].extension}"
                join_segments(segments, joined, kind, self.local, vopts, self.times, self.plan)
                _upload(str(joined), spec.dst, item.target)
            for seg in segments:
                seg.unlink(missing_ok=True)
            return record("ok", None)
        except Exception as exc:  # one chunk failed: the clip failed, the batch goes on
            self.failed = True
            return record("error", _error_text(exc))


def _split(spec: Spec, item: Item, folder: str) -> _Split | None:
    """``item`` as chunks when it is longer than twice ``chunk_seconds``; None to run it whole
    (short, or its length cannot be read here: the whole-clip task then says what is wrong)."""
    from .video.chunks import frame_times, plan_chunks

    seconds = spec.video.chunk_seconds
    assert seconds is not None
    try:
        local = item.source if spec.src.local else _download(spec.src, item.source, tempfile.mkdtemp(dir=folder))
        vopts = spec.video.video_options(spec.options)
        times = frame_times(local, vopts)
    except Exception:  # unreadable here: the whole-clip task records the reason
        return None
    length = len(times) / times.fps
    if length <= 2 * seconds or (vopts.max_duration is not None and length > vopts.max_duration + 0.5 / times.fps):
        return None  # short: whole; too long for --max-duration: the whole-clip task refuses it
    import ray

    plan = plan_chunks(len(times), chunk_frames=max(1, int(round(seconds * times.fps))))
    # A local SRC is read where the task runs, as whole clips are (the same path on every node:
    # a shared disk on a cluster); a bucket's clip goes through the object store once.
    shipped = local if spec.src.local else ray.put(Path(local).read_bytes())
    return _Split(item, local, shipped, times, plan, folder)


__all__ = [
    "ACTOR_CPU_SHARE",
    "INSTALL_HINT",
    "MANIFEST",
    "READ_CPUS",
    "ClusterUnavailable",
    "Item",
    "Location",
    "Manifest",
    "MissingExtra",
    "Plan",
    "Pool",
    "Record",
    "Spec",
    "Summary",
    "VideoSettings",
    "check_reachable",
    "connect",
    "plan",
    "read_manifest",
    "require_ray",
    "resolve",
    "run",
    "size_pool",
]
