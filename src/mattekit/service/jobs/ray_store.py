"""Video jobs on a Ray cluster (``MATTEKIT_RAY_ADDRESS``): any API replica answers for any job.

- **State in the cluster**: every job's record lives in one detached, named Ray actor
  (:class:`Registry`, ``mattekit-job-registry`` in the ``mattekit`` namespace), not in a process:
  a replica that accepted a job can stop, crash or restart and the job goes on, and every
  replica reads and cancels it through the same actor.
- **Work in the cluster**: each job runs in a detached actor of its own (:class:`Runner`,
  ``num_cpus=0``) that cuts the clip into chunks and mattes them as Ray tasks across the nodes
  (:func:`mattekit.video.chunks.process_chunked`: each chunk's recurrent state warmed on the
  frames before it, the segments joined without re-encoding). Progress counts the chunks done.
  The runner sends the job's webhook itself, so it is sent even when the accepting replica is gone.
- **Files where every replica reads**: uploads and results live in ``MATTEKIT_JOB_DIR``, which
  must then be a folder every replica and every Ray node sees (the same path: one machine, or
  a shared volume).

Cancelling a queued or running job kills its runner (its chunk tasks die with their owner) and
deletes its files.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi.responses import Response, StreamingResponse

from ...core.engine import Engine
from ...deadline import Deadline
from ...errors import Cancelled, ClusterUnavailable, MattekitError
from ...options import Options
from ...video import VideoOptions
from ...video.pipeline import NO_PERSON
from ..errors import NoSpace, NotFound, ShuttingDown
from ..executor import Reservation
from ..settings import JobSettings
from .store import (
    BACKGROUND,
    JOB_ID,
    OUT_OF_ROOM,
    UPLOAD,
    JobStore,
    VideoJob,
    Work,
    disk_full,
    job_from_record,
    record_of,
    result_name,
)
from .webhooks import EVENTS, Delivery, body_of, deliver

log = logging.getLogger("mattekit.service.jobs")

NAMESPACE = "mattekit"
REGISTRY = "mattekit-job-registry"
RUNNER_START_SECONDS = 60  # a job's actor up (a worker process started, its imports done)


def runner_name(job_id: str) -> str:
    return f"mattekit-job-{job_id}"


@dataclass(frozen=True)
class ObjectStorage:
    """Where the jobs' uploads and results live when no folder is shared (``MATTEKIT_JOB_STORAGE``:
    any URI pyarrow opens, ``s3://bucket/prefix?endpoint_override=…``, ``gs://…``, as batch
    reads them); one folder a job, ``<prefix>/<id>/``. Holds the URI only, so it travels to Ray."""

    uri: str

    def _where(self, job_id: str, name: str = "") -> tuple[Any, str]:
        import pyarrow.fs as pafs

        fs, base = pafs.FileSystem.from_uri(self.uri)
        return fs, "/".join(part for part in (base.rstrip("/"), job_id, name) if part)

    def put(self, job_id: str, name: str, local: Path) -> None:
        fs, key = self._where(job_id, name)
        with open(local, "rb") as src, fs.open_output_stream(key) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def get(self, job_id: str, name: str, local: Path) -> None:
        fs, key = self._where(job_id, name)
        with fs.open_input_stream(key) as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def size(self, job_id: str, name: str) -> int:
        fs, key = self._where(job_id, name)
        return int(fs.get_file_info(key).size)

    def read(self, job_id: str, name: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        fs, key = self._where(job_id, name)
        with fs.open_input_stream(key) as src:
            while block := src.read(chunk):
                yield block

    def remove(self, job_id: str, name: str) -> None:
        fs, key = self._where(job_id, name)
        try:
            fs.delete_file(key)
        except (OSError, FileNotFoundError):  # never written (a job without a background)
            pass

    def delete(self, job_id: str) -> None:
        fs, key = self._where(job_id)
        try:
            fs.delete_dir(key)
        except (OSError, FileNotFoundError):  # never written, or gone already
            pass


class Registry:
    """Every job's record by id (a detached Ray actor: one per cluster, outliving any replica)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def put(self, job_id: str, record: dict[str, Any]) -> None:
        self.records[job_id] = record

    def update(self, job_id: str, fields: dict[str, Any]) -> bool:
        """Merge ``fields`` (``progress`` merged too) into a job's record; False if it is gone."""
        record = self.records.get(job_id)
        if record is None:
            return False
        progress = {**record.get("progress", {}), **fields.pop("progress", {})}
        record.update(fields, progress=progress)
        return True

    def end(self, job_id: str, fields: dict[str, Any]) -> bool:
        """Record how a job ended, if it has not ended yet; whether this call ended it (the one
        caller that did sends the webhook, so it goes once however many replicas see the end)."""
        record = self.records.get(job_id)
        if record is None or record.get("state") not in ("queued", "running"):
            return False
        record.update(fields)
        return True

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self.records.get(job_id)

    def delete(self, job_id: str) -> bool:
        return self.records.pop(job_id, None) is not None

    def finished_before(self, when: float) -> list[str]:
        return [i for i, r in self.records.items() if r.get("finished") is not None and r["finished"] < when]


def _ended(job: VideoJob, error: MattekitError | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"state": job.state, "finished": time.time()}
    if error is not None:
        fields["error"] = {"code": error.code, "message": error.worded("api")}
    if job.state == "done":
        fields["result_name"] = result_name(job.output)
    if job.notice:  # the registry's record is what every replica shows, and what the webhook sends
        fields["notice"] = job.notice
    return fields


def _delivery(job: VideoJob, record: dict[str, Any] | None, ttl: float) -> Delivery | None:
    """The webhook for a job that has just ended as ``record`` says, if it asked for one."""
    if record is None or not job.webhook_url or record.get("state") not in EVENTS:
        return None
    view = job_from_record(job.id, job.folder, record)
    if view is None:
        return None
    return Delivery(job.webhook_url, body_of(view.view(ttl)), EVENTS[view.state], job.id)


class Runner:
    """Runs one job where the cluster puts it: a detached Ray actor that kills itself when done.

    The work starts in the actor's constructor (in a thread), not in a method call: a detached
    actor's creation belongs to the cluster, a method call to its caller, and the replica that
    called could die with the job half done."""

    def __init__(self, record: dict[str, Any], folder: str, options: Options, vopts: VideoOptions, settings: JobSettings) -> None:
        args = (record, folder, options, vopts, settings)
        threading.Thread(target=self._run_then_exit, args=args, name="mattekit-job", daemon=True).start()

    def _run_then_exit(self, *args: Any) -> None:
        import ray

        try:
            self.run(*args)
        finally:
            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    def run(
        self,
        record: dict[str, Any],
        folder: str,
        options: Options,
        vopts: VideoOptions,
        settings: JobSettings,
    ) -> str:
        import ray

        from ...video.chunks import ChunkProgress, process_chunked
        from .runner import without_paths

        registry = ray.get_actor(REGISTRY, namespace=NAMESPACE)
        job = job_from_record(record["id"], Path(folder), record)
        assert job is not None
        job_id = job.id
        ray.get(registry.update.remote(job_id, {"state": "running", "started": time.time()}))

        def progress(p: ChunkProgress) -> None:
            done = min(p.frames, job.total) if job.total else p.frames
            fields = {"progress": {"chunks_done": p.done, "chunks_total": p.total, "frames_done": done}}
            registry.update.remote(job_id, fields)

        storage = ObjectStorage(settings.storage) if settings.storage else None
        work = Path(tempfile.mkdtemp(prefix="mattekit-job-")) if storage else job.folder
        source = work / UPLOAD
        target = work / result_name(job.output)
        error: MattekitError | None = None
        try:
            address = None
            if storage is not None:  # this node's copy; the chunks get its bytes through Ray's object store
                storage.get(job_id, UPLOAD, source)
                if vopts.background_video is not None:
                    storage.get(job_id, BACKGROUND, work / BACKGROUND)
                    vopts = replace(vopts, background_video=work / BACKGROUND)
                address = settings.ray_address
            result = process_chunked(
                source, target, options, vopts, chunk_seconds=settings.chunk_seconds, progress=progress, address=address
            )
            if storage is not None:
                storage.put(job_id, result_name(job.output), target)
            job.state = "done"
            job.notice = NO_PERSON if result.empty else None
        except MattekitError as exc:
            job.state, error = "failed", without_paths(exc, work.parent)
        except Exception as exc:  # never a stack trace to the client; the worker's log has it
            if disk_full(exc):
                job.state, error = "failed", MattekitError("the server ran out of disk space while writing this video")
            else:
                log.exception("video job %s failed", job_id)
                job.state, error = "failed", MattekitError("internal error: the server logged the details")
        finally:
            source.unlink(missing_ok=True)
            (work / BACKGROUND).unlink(missing_ok=True)
            if storage is not None:  # the uploads are not needed any more: the result alone stays
                shutil.rmtree(work, ignore_errors=True)
                storage.remove(job_id, UPLOAD)
                storage.remove(job_id, BACKGROUND)
        if job.state != "done":
            target.unlink(missing_ok=True)
            if storage is not None:
                storage.delete(job_id)
        if ray.get(registry.end.remote(job_id, _ended(job, error))):
            final = ray.get(registry.get.remote(job_id))
            delivery = _delivery(job, final, settings.ttl)
            if delivery is not None:
                deliver(delivery, settings.webhook_secret, attempts=settings.webhook_attempts, backoff=settings.webhook_backoff)
        return job.state


class RayJobStore(JobStore):
    """A :class:`JobStore` whose records live in the cluster's :class:`Registry` and whose jobs
    run as :class:`Runner` actors: nothing of a job is held by this process."""

    def __init__(self, settings: JobSettings, *, on_timeout: Any = None) -> None:
        super().__init__(settings, on_timeout=on_timeout)
        self.storage = ObjectStorage(settings.storage) if settings.storage else None
        self._registry: Any = None
        self._swept = 0.0
        self._sweep_lock = threading.Lock()

    def open(self) -> None:
        super().open()
        import ray

        from ...cluster import check_reachable, require_ray

        require_ray("video jobs on a cluster run on Ray, an optional extra: pip install 'mattekit[cluster]'")
        address = self.settings.ray_address or "auto"
        if not ray.is_initialized():
            check_reachable(address)
            ray.init(address=address, namespace=NAMESPACE, logging_level=logging.ERROR, log_to_driver=False)
        actor: Any = ray.remote(Registry)
        self._registry = actor.options(
            name=REGISTRY, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0
        ).remote()
        log.info("video jobs run on the Ray cluster at %s", address)

    @property
    def registry(self) -> Any:
        if self._registry is None:
            raise RuntimeError("the job store is not open: serve the app (its lifespan opens it)")
        return self._registry

    def _call(self, method: str, *args: Any) -> Any:
        import ray

        return ray.get(getattr(self.registry, method).remote(*args), timeout=30)

    # -- what the routes call ----------------------------------------------------------------
    def get(self, job_id: str, owner: str = "") -> VideoJob:
        import hmac

        self.sweep()
        record = self._call("get", job_id) if JOB_ID.match(job_id) else None
        job = None if record is None else job_from_record(job_id, self.root / job_id, record)
        if job is None or not hmac.compare_digest(job.owner, owner):
            raise NotFound("no such job (finished jobs are deleted after a while)")
        if job.state in ("queued", "running") and not self._runner_alive(job_id):
            # Its runner is gone (its node died) and it never will finish.
            job = self._end(job, ShuttingDown("the cluster lost the worker running this video; submit it again"))
        started = record.get("started") if record is not None else None
        if job.state == "running" and self.settings.timeout and started and time.time() - started > self.settings.timeout:
            job = self._stop_at_deadline(job)
        elif job.state == "running" and self.settings.disk_bytes and self.used_bytes(max_age=1.0) > self.settings.disk_bytes:
            # As in one process (out_of_room): outputs can be 10-100x their upload.
            self._kill_runner(job.id)
            job = self._end(job, NoSpace(OUT_OF_ROOM))
            log.warning("video job %s stopped: the jobs' files passed MATTEKIT_JOB_DISK_BYTES", job.id)
        return job

    def _stop_at_deadline(self, job: VideoJob) -> VideoJob:
        """``MATTEKIT_JOB_TIMEOUT`` on a cluster: whichever replica sees a job past it first stops it."""
        deadline = Deadline(0.0, "this video", self.settings.timeout, "send a shorter clip (start/end) or a faster preset")
        self._kill_runner(job.id)
        ended = self._end(job, deadline.exceeded())
        log.warning("video job %s stopped at its deadline (%g s)", job.id, self.settings.timeout)
        if self.on_timeout is not None:
            self.on_timeout()
        return ended

    def save(self, job: VideoJob, *, every: float = 0.0) -> None:
        if job.owned:
            self._call("put", job.id, record_of(job, self.settings.ttl))

    def start(
        self, job: VideoJob, slot: Reservation, work: Work, source: Path, options: Options, vopts: VideoOptions, engine: Engine
    ) -> None:
        """Hand ``job`` to a :class:`Runner` in the cluster (not ``work``, which runs a job in
        this process); this process's slot is free at once."""
        import ray

        if self.storage is not None:  # the cluster reads it there; this replica's copy goes
            for name in (UPLOAD, BACKGROUND):
                if (job.folder / name).exists():
                    self.storage.put(job.id, name, job.folder / name)
            shutil.rmtree(job.folder, ignore_errors=True)
        record = record_of(job, self.settings.ttl)
        self._call("put", job.id, record)
        actor: Any = ray.remote(Runner)
        options_ = actor.options(name=runner_name(job.id), namespace=NAMESPACE, lifetime="detached", num_cpus=0)
        runner = options_.remote(record, str(job.folder), options, vopts, self.settings)
        self._wait_started(job.id, runner)
        slot.release()
        job.owned = False  # from now on the cluster's: every replica reads it from the registry

    def _wait_started(self, job_id: str, runner: Any) -> None:
        """Return once ``runner`` is up, so that the 202 promises what it says. Until the actor
        exists its creation is only this process's request, and a replica killed right after
        answering took its jobs with it (Ray 2.60: a detached actor whose creator dies before
        the creation reached the cluster is never created). Up in ~0.5 s on an idle cluster."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            ray.get(runner.__ray_ready__.remote(), timeout=RUNNER_START_SECONDS)
            return
        except RayActorError:  # it ended already: a very short job, or it could not start
            record = self._call("get", job_id)
            if record is not None and record.get("state") not in ("queued", "running"):
                return
            log.warning("video job %s: its runner did not start", job_id, exc_info=True)
            why = "could not start a worker for this video"
        except GetTimeoutError:
            log.warning("video job %s: its runner was not up within %d s", job_id, RUNNER_START_SECONDS)
            why = f"did not start a worker for this video within {RUNNER_START_SECONDS} s"
        # By its handle: its name may not be registered yet, and it must not start later.
        ray.kill(runner, no_restart=True)
        raise ClusterUnavailable(f"the cluster {why}; try again shortly")

    def _end(self, job: VideoJob, error: MattekitError | None, state: str = "failed") -> VideoJob:
        """End ``job`` here (its runner is dead or was killed): in the registry, its files and
        its webhook from this replica, unless it ended meanwhile; returns the job as recorded."""
        ending = VideoJob(job.id, job.folder, job.output, state=state, error=error)
        won = self._call("end", job.id, _ended(ending, error))
        record = self._call("get", job.id)
        if won:
            self.discard_files(job)
            delivery = _delivery(job, record, self.settings.ttl)
            if delivery is not None:
                self.notifier.send(delivery)
        now = None if record is None else job_from_record(job.id, job.folder, record)
        return now if now is not None else ending

    def _kill_runner(self, job_id: str) -> None:
        import ray

        try:
            ray.kill(ray.get_actor(runner_name(job_id), namespace=NAMESPACE))
        except ValueError:  # finished (or never started) meanwhile
            pass

    def cancel(self, job: VideoJob) -> None:
        self._kill_runner(job.id)
        self._end(job, Cancelled("the video was cancelled"), "cancelled")  # no webhook: the client asked

    def drop(self, job: VideoJob) -> None:
        self._kill_runner(job.id)  # a job dropped while its runner starts (its request failed)
        self._call("delete", job.id)
        self._delete_files(job.id)

    def discard_files(self, job: VideoJob) -> None:
        super().discard_files(job)
        if self.storage is not None:
            self.storage.delete(job.id)

    def _delete_files(self, job_id: str) -> None:
        shutil.rmtree(self.root / job_id, ignore_errors=True)
        if self.storage is not None:
            self.storage.delete(job_id)

    def result_response(self, job: VideoJob, media_type: str, filename: str) -> Response:
        if self.storage is None:
            return super().result_response(job, media_type, filename)
        name = result_name(job.output)
        headers = {
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Length": str(self.storage.size(job.id, name)),
        }
        return StreamingResponse(self.storage.read(job.id, name), media_type=media_type, headers=headers)

    def sweep(self, now: float | None = None, *, shared: bool = False) -> int:
        """Delete jobs that finished more than ``ttl`` seconds ago (every replica may; at most
        once per ``sweep_every`` here, each a call to the registry)."""
        now = time.time() if now is None else now
        with self._sweep_lock:
            if now - self._swept < self.settings.sweep_every:
                return 0
            self._swept = now
        if self._registry is None:
            return 0
        old = self._call("finished_before", now - self.settings.ttl)
        for job_id in old:
            self._call("delete", job_id)
            self._delete_files(job_id)
        return len(old)

    def fail_queued(self) -> int:
        return 0  # the cluster keeps them: another replica answers for them

    def close(self, wait: float = 5.0) -> None:
        """This replica stops; the jobs, their files and their records stay in the cluster."""
        self.pool.shutdown(wait=False)

    def _runner_alive(self, job_id: str) -> bool:
        import ray

        try:
            ray.get_actor(runner_name(job_id), namespace=NAMESPACE)
        except ValueError:
            record = self._call("get", job_id)  # ended between the two reads: its record says so
            return record is not None and record.get("state") not in ("queued", "running")
        return True
