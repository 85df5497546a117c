"""Running a batch (the Ray driver): images through Ray Data (an actor pool), clips as tasks (long ones in
chunks, joined when their last chunk is done), records into the manifest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cluster import READ_CPUS, Pool, connect, portable, size_pool
from ..cluster import node_cpus as _node_cpus
from ..errors import InvalidOption
from .manifest import Manifest, read_manifest
from .sources import Item, Plan, Spec, plan, require_ray
from .work import ImageWorker, Record, clip_outcome, download, error_text, item_record, process_video_item, upload

if TYPE_CHECKING:  # pragma: no cover
    from ..video.chunks import Chunk

log = logging.getLogger("mattekit.batch")


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
    spec = replace(spec, options=portable(spec.options))
    if spec.video.kind(spec.options) == "composite" and spec.options.background is None:
        raise InvalidOption("composite videos need a background (--bg)")
    work = plan(spec, overwrite=overwrite)
    if any(item.kind == "video" for item in work.todo):
        # Refused before Ray starts, not video by video: --mask or --bg with a --video-output that
        # cannot carry it (the video library's own check; --crop is the photos', videos leave it out).
        from ..video.outputs import resolve_output

        kind_name = f"video{spec.video.suffix(spec.options)}"
        resolve_output(kind_name, spec.options.replace(crop=False), spec.video.video_options(spec.options))
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
                    manifest.add(item_record(spec, item, "ok", None, 0.0, note="output found complete when resuming"))
        for item in work.clashes:
            record(item_record(spec, item, "error", "another input writes the same output (same name, other extension)", 0.0))
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
                    yield item_record(spec, what, "error", error_text(exc), 0.0)


@dataclass
class _Split:
    """A long clip cut into chunks: where its segments gather until the last is done."""

    item: Item
    local: str  # the clip on this machine (the join reads its audio)
    shipped: Any  # what each chunk task gets: the path (SRC is local) or the bytes in the object store
    times: Any  # video.chunks.FrameTimes
    plan: list[Chunk]
    folder: str
    started: float = field(default_factory=time.perf_counter)
    segments: dict[int, Path] = field(default_factory=dict)  # chunk index → segment path
    failed: bool = False
    subject_seen: bool = False  # a chunk's matte held a subject (VideoResult.empty, over the clip)

    def submit(self, spec: Spec, pool: Pool) -> Iterator[tuple[Any, Any]]:
        import ray

        from ..video.chunks import chunk_task

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

        from ..video.chunks import join_segments, segment_kind
        from ..video.outputs import OUTPUTS

        if self.failed:
            return None
        item = self.item

        def record(status: str, error: str | None) -> Record:
            return item_record(spec, item, status, error, time.perf_counter() - self.started, note=f"in {len(self.plan)} chunks")

        try:
            data, _, empty = ray.get(ref)
            self.subject_seen = self.subject_seen or not empty
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
                upload(str(joined), spec.dst, item.target)
            for seg in segments:
                seg.unlink(missing_ok=True)
            return record(*clip_outcome(empty=not self.subject_seen))
        except Exception as exc:  # one chunk failed: the clip failed, the batch goes on
            self.failed = True
            return record("error", error_text(exc))


def _split(spec: Spec, item: Item, folder: str) -> _Split | None:
    """``item`` as chunks when it is longer than twice ``chunk_seconds``; None to run it whole
    (short, or its length cannot be read here: the whole-clip task then says what is wrong)."""
    from ..video.chunks import frame_times, plan_chunks

    seconds = spec.video.chunk_seconds
    assert seconds is not None
    try:
        local = item.source if spec.src.local else download(spec.src, item.source, tempfile.mkdtemp(dir=folder))
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
