"""The video jobs' store: every job by id, its folder, its record for the other processes.

One folder per job under a private temporary folder, or under ``MATTEKIT_JOB_DIR`` shared by
every server process: then each job's state is also written to ``job.json`` in its folder, so
any process answers for it (see :mod:`mattekit.service.jobs`).
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.responses import FileResponse, Response

from ...core.engine import Engine
from ...errors import Cancelled, MattekitError
from ...files import delete_path, write_atomic
from ...options import Options
from ...video import VideoOptions
from ...video.outputs import OUTPUTS
from ..errors import NoSpace, NotFound, ShuttingDown
from ..executor import Reservation, WorkPool
from ..settings import JobSettings
from .webhooks import EVENTS, Delivery, Notifier, body_of

log = logging.getLogger("mattekit.service.jobs")

# What runs a job in this process: (store, job, source, options, video options, engine).
Work = Callable[["JobStore", "VideoJob", Path, Options, VideoOptions, Engine], None]


def _media_types() -> dict[str, tuple[str, str]]:
    """(content type, file suffix) of each output a job can write: those the table gives one."""
    return {name: (spec.media_type, spec.extension) for name, spec in OUTPUTS.items() if spec.media_type}


MEDIA_TYPES = _media_types()  # read from the outputs table: a type registered later is not offered here
JOB_OUTPUTS = tuple(MEDIA_TYPES)
UPLOAD, BACKGROUND = "upload", "background"  # a job's uploaded clip and background, in its folder
RECORD = "job.json"  # a job's state, in its folder, when the folder is shared (MATTEKIT_JOB_DIR)
CANCEL = "cancel"  # left in a job's folder by a process that is not its owner
# Why a job stopped when the jobs' files passed MATTEKIT_JOB_DISK_BYTES while it wrote.
OUT_OF_ROOM = (
    "this video's output filled the server's video storage (MATTEKIT_JOB_DISK_BYTES); "
    "send a shorter clip (start/end) or a more compact output (webm)"
)
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what secrets.token_urlsafe makes: never a path


def disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == errno.ENOSPC


def folder_bytes(root: Path) -> int:
    """Bytes of every file under ``root`` (the jobs' uploads, results and records)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:  # deleted meanwhile
                pass
    return total


@dataclass
class VideoJob:
    """One video job: its state, progress and files (``owned``: run by this process)."""

    id: str
    folder: Path
    output: str
    state: str = "queued"  # queued | running | done | failed | cancelled
    done: int = 0
    total: int = 0
    fps: float = 0.0
    chunks_done: int = 0  # on a cluster: chunks finished (each runs on a node of its own)
    chunks_total: int = 0
    created: float = field(default_factory=time.time)
    finished: float | None = None
    error: MattekitError | None = None
    result: Path | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Future[None] | None = None
    stopped: MattekitError | None = None  # why the server (not the client) cancelled it
    owned: bool = True  # False: read from another process's record
    owner: str = ""  # common.key_owner of the key that made it: another key gets 404
    webhook_url: str | None = None  # POSTed to once when the job is done or has failed (webhooks.py)
    notified: bool = False  # its webhook was sent (once, whatever the outcome of the delivery)
    notice: str | None = None  # done, but not what was hoped for (no person in any frame)

    def view(self, ttl: float) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "output": self.output,
            "progress": {
                "frames_done": self.done,
                "frames_total": self.total,
                "fps": round(self.fps, 2),
                "percent": round(100.0 * self.done / self.total, 1) if self.total else (100.0 if self.state == "done" else 0.0),
            },
            "created": self.created,
            "status_url": f"/api/v1/jobs/{self.id}",  # what to poll (also the 202's Location)
        }
        if self.chunks_total:
            body["progress"].update(chunks_done=self.chunks_done, chunks_total=self.chunks_total)
        if self.error is not None:
            body["error"] = {"code": self.error.code, "message": self.error.worded("api")}
        if self.notice:
            body["notice"] = self.notice
        if self.state == "done":
            body["result_url"] = f"/api/v1/jobs/{self.id}/result"
            body["media_type"], ext = MEDIA_TYPES[self.output]
            body["filename"] = f"video-{self.id}{ext}"  # what the result is saved as (the page's download name)
        if self.finished is not None:
            body["expires"] = self.finished + ttl
        return body


class JobStore:
    """Every job by id; files live in one folder per job (shared by all processes, or private)."""

    def __init__(self, settings: JobSettings, root: Path | None = None, *, on_timeout: Callable[[], None] | None = None) -> None:
        """No file is touched until :meth:`open` (the app's start): an app built and never served
        leaves nothing behind. ``root``: a folder of this store's own (tests); ``on_timeout``:
        called when a job stops at its deadline (the telemetry counts it)."""
        self.settings = settings
        self.shared = root is None and settings.folder is not None
        self._root = Path(root) if root is not None else Path(settings.folder) if settings.folder else None
        self.pool = WorkPool(settings.workers, settings.queue_size, name="jobs")
        self.on_timeout = on_timeout
        self.notifier = Notifier(settings.webhook_secret, settings.webhook_attempts, settings.webhook_backoff)
        self._jobs: dict[str, VideoJob] = {}
        self._lock = threading.Lock()
        self._saved: dict[str, float] = {}  # when each job's record was last written
        self._used: tuple[float, int] = (-1.0, 0)  # (when, bytes) of the last walk of the root

    def open(self) -> None:
        """Create the jobs' folder (a private temporary one unless shared or given)."""
        if self.shared:
            _private_folder(self.root)
        elif self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="mattekit-jobs-"))

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("the job store is not open: serve the app (its lifespan opens it) or call open()")
        return self._root

    async def sweep_forever(self) -> None:
        """Delete expired jobs every ``sweep_every`` seconds (the app's lifespan runs this as a task)."""
        while True:
            await asyncio.sleep(self.settings.sweep_every)
            try:
                self.sweep(shared=True)
            except Exception:  # a sweep must never stop the loop
                log.exception("sweeping expired jobs failed")

    def new(self, output: str, owner: str = "") -> VideoJob:
        job_id = secrets.token_urlsafe(12)
        folder = self.root / job_id
        folder.mkdir(mode=0o700)
        job = VideoJob(job_id, folder, output, owner=owner)
        with self._lock:
            self._jobs[job_id] = job
        return job

    def used_bytes(self, max_age: float = 0.0) -> int:
        """What every job's files take now (a walk of the root at most ``max_age`` seconds old)."""
        with self._lock:
            when, used = self._used
        if time.monotonic() - when <= max_age:
            return used
        used = folder_bytes(self.root)
        with self._lock:
            self._used = (time.monotonic(), used)
        return used

    def refuse_if_full(self) -> None:
        """507 before an upload is read when the jobs' files leave no room for one more upload."""
        budget = self.settings.disk_bytes
        if not budget:
            return
        used = self.used_bytes()
        if used + self.settings.max_upload_bytes > budget:
            raise NoSpace(
                f"the server's video storage is full ({used / 2**30:.1f} of {budget / 2**30:.1f} GiB, "
                "MATTEKIT_JOB_DISK_BYTES); try again when finished jobs have expired"
            )

    def get(self, job_id: str, owner: str = "") -> VideoJob:
        """The job, if ``owner`` (:func:`~.common.key_owner`) made it; 404 otherwise, as if it
        did not exist, so one key cannot learn about, fetch or cancel another key's jobs."""
        self.sweep()
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None and self.shared and not job.folder.is_dir():
            # Deleted through another process (a DELETE of a finished job removes its folder).
            job.cancel.set()
            with self._lock:
                self._jobs.pop(job_id, None)
            job = None
        elif job is None and self.shared and JOB_ID.match(job_id):
            job = self._read(job_id)
        if job is None or not hmac.compare_digest(job.owner, owner):
            raise NotFound("no such job (finished jobs are deleted after a while)")
        return job

    # -- the shared folder -----------------------------------------------------------------
    def save(self, job: VideoJob, *, every: float = 0.0) -> None:
        """Write ``job``'s state for the other processes (at most once per ``every`` seconds)."""
        if not self.shared or not job.owned:
            return
        with self._lock:
            now = time.monotonic()
            if every and now - self._saved.get(job.id, -every) < every:
                return
            self._saved[job.id] = now
            record = record_of(job, self.settings.ttl)
            if not job.folder.is_dir():
                return  # deleted meanwhile: nothing to describe
            try:
                # readers see the old record or the new, never half; a folder deleted meanwhile stays so
                write_atomic(job.folder / RECORD, json.dumps(record).encode(), parents=False)
            except OSError as exc:
                log.warning("could not write the state of video job %s: %s", job.id, exc)

    def notify(self, job: VideoJob) -> None:
        """Send ``job``'s webhook, once, if it has one and has ended done or failed (the process
        that runs a job sends it: a record read from another process never does)."""
        if job.webhook_url is None or job.notified or not job.owned or job.state not in EVENTS:
            return
        job.notified = True
        self.notifier.send(Delivery(job.webhook_url, body_of(job.view(self.settings.ttl)), EVENTS[job.state], job.id))

    def _read(self, job_id: str) -> VideoJob | None:
        """Another process's job, from its record (None if there is none)."""
        folder = self.root / job_id
        try:
            record = json.loads((folder / RECORD).read_text())
        except (OSError, ValueError):
            return None
        job = job_from_record(job_id, folder, record)
        if job is not None and job.state in ("queued", "running") and not _alive(record.get("pid"), record.get("host")):
            # Its process is gone (killed, or crashed) and it never will finish.
            job.state, job.finished = "failed", job.finished or time.time()
            job.error = ShuttingDown("the server process running this video stopped; submit it again")
        return job

    # -- a job's life ----------------------------------------------------------------------
    def start(
        self, job: VideoJob, slot: Reservation, work: Work, source: Path, options: Options, vopts: VideoOptions, engine: Engine
    ) -> None:
        """Run ``job`` in the reserved slot of this process's jobs pool: ``work`` (the runner's
        :func:`~.runner.run_job`, handed in so that the store does not import its runner)."""
        job.future = slot.submit(work, self, job, source, options, vopts, engine)

    def cancel(self, job: VideoJob) -> None:
        """Stop a queued or running job (its files go, its record says "cancelled")."""
        if not job.owned:
            # Another process runs it: it sees this file between frames (or before it starts),
            # stops, deletes the files and records "cancelled".
            (job.folder / CANCEL).touch()
            job.state = "cancelled"
            return
        job.cancel.set()  # a running job sees it between frames and deletes its files
        if job.future is not None and job.future.cancel():  # still waiting: it never runs
            self.discard_files(job)
        job.state, job.error, job.finished = "cancelled", Cancelled("the video was cancelled"), time.time()
        self.save(job)

    def cancel_requested(self, job: VideoJob) -> bool:
        return job.cancel.is_set() or (self.shared and (job.folder / CANCEL).exists())

    def out_of_room(self, job: VideoJob) -> bool:
        """Whether the jobs' files passed ``MATTEKIT_JOB_DISK_BYTES`` while ``job`` writes its
        output (polled between frames): it then stops, failed with ``no_space``, and its files go.
        Outputs can be 10-100x their upload, so the check at admission alone does not bound them."""
        budget = self.settings.disk_bytes
        if not budget or self.used_bytes(max_age=0.25) <= budget:
            return False
        job.stopped = job.stopped or NoSpace(OUT_OF_ROOM)
        return True

    def result_response(self, job: VideoJob, media_type: str, filename: str) -> Response:
        """A done job's result as the answer to ``GET …/result``."""
        assert job.result is not None
        return FileResponse(job.result, media_type=media_type, filename=filename, headers={"Cache-Control": "no-store"})

    def discard_files(self, job: VideoJob) -> None:
        """Delete a job's files; a shared folder keeps its record (until the TTL) to say what happened."""
        if not self.shared:
            shutil.rmtree(job.folder, ignore_errors=True)
            return
        for path in job.folder.glob("*"):
            if path.name != RECORD:
                delete_path(path)

    def drop(self, job: VideoJob) -> None:
        """Forget ``job`` and delete its files. A job already handed to the pool (its request failed
        or was cancelled after the start) is stopped first, and its files go once it has: deleted
        under a running job they would make it fail, and it would run on to its end."""
        with self._lock:
            self._jobs.pop(job.id, None)
            self._saved.pop(job.id, None)
        future = job.future
        if future is not None and not future.done() and not future.cancel():
            job.webhook_url = None  # its client never got the job's id: nobody to tell
            job.cancel.set()  # seen between frames
            future.add_done_callback(lambda _: shutil.rmtree(job.folder, ignore_errors=True))
            return
        shutil.rmtree(job.folder, ignore_errors=True)

    def sweep(self, now: float | None = None, *, shared: bool = False) -> int:
        """Delete jobs that finished more than ``ttl`` seconds ago (``shared``: every process's). Returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            old = [j for j in self._jobs.values() if j.finished is not None and now - j.finished > self.settings.ttl]
            mine = set(self._jobs)
        if shared and self.shared:
            for folder in self.root.iterdir():
                if folder.name not in mine and JOB_ID.match(folder.name):
                    other = self._read(folder.name)
                    if other is not None and other.finished is not None and now - other.finished > self.settings.ttl:
                        old.append(other)
        for job in old:
            self.drop(job)
        return len(old)

    def fail_queued(self) -> int:
        """Fail every job still waiting (it would not start before the process ends); returns how many.

        Their uploads are deleted now. A running job goes on until :meth:`close`.
        """
        with self._lock:
            queued = [j for j in self._jobs.values() if j.state == "queued"]
        for job in queued:
            job.stopped = ShuttingDown("the server restarted before this video started; submit it again")
            job.cancel.set()
            if job.future is not None and job.future.cancel():
                job.state, job.error, job.finished = "failed", job.stopped, time.time()
                self.discard_files(job)
                self.save(job)
                self.notify(job)
        if queued:
            log.warning("shutting down: %d queued video job(s) failed", len(queued))
        return len(queued)

    def close(self, wait: float = 5.0) -> None:
        """Stop every job, wait up to ``wait`` s for running ones to delete their files, delete the rest.

        A shared folder keeps finished jobs' results and records: another process serves them.
        """
        from concurrent.futures import wait as wait_for

        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            if job.state in ("queued", "running"):
                job.stopped = job.stopped or ShuttingDown("the server shut down before this video was finished; submit it again")
            job.cancel.set()
        self.pool.shutdown(wait=False)
        running = [j.future for j in jobs if j.future is not None and not j.future.done()]
        if running:
            wait_for(running, timeout=wait)
        self.notifier.wait(timeout=wait)  # deliveries in flight get as long (the first attempt, at least)
        if not self.shared and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)


def record_of(job: VideoJob, ttl: float) -> dict[str, Any]:
    """What the other processes (or the cluster's registry) keep of ``job``: its view, and who
    owns and runs it."""
    return {
        **job.view(ttl),
        "finished": job.finished,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "owner": job.owner,
        "result_name": job.result.name if job.result else None,
        "webhook_url": job.webhook_url,
    }


def job_from_record(job_id: str, folder: Path, record: dict[str, Any]) -> VideoJob | None:
    """The job a record describes, read-only (``owned`` False); None for a record not to trust."""
    if record.get("output") not in MEDIA_TYPES:
        return None
    progress = record.get("progress", {})
    job = VideoJob(
        job_id,
        folder,
        record.get("output", "webm"),
        state=record.get("state", "failed"),
        done=progress.get("frames_done", 0),
        total=progress.get("frames_total", 0),
        fps=progress.get("fps", 0.0),
        chunks_done=progress.get("chunks_done", 0),
        chunks_total=progress.get("chunks_total", 0),
        created=record.get("created", 0.0),
        finished=record.get("finished"),
        owned=False,
        owner=str(record.get("owner") or ""),
        webhook_url=record.get("webhook_url"),
        notice=record.get("notice") if isinstance(record.get("notice"), str) else None,
    )
    if record.get("error"):
        job.error = MattekitError(record["error"].get("message", "the job failed"))
        job.error.code = record["error"].get("code", "error")
    if job.state == "done" and record.get("result_name"):
        job.result = folder / result_name(job.output)
        if record["result_name"] != job.result.name:  # never a path taken from a file on disk
            return None
    return job


def result_name(output: str) -> str:
    """The one name a job's result has: a record naming another file is not trusted."""
    return f"result{MEDIA_TYPES[output][1]}"


def _private_folder(path: Path) -> None:
    """Create the shared jobs folder readable by this user alone (uploads and results of every
    client are in it); one that exists already keeps the mode its operator gave it."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask


def _alive(pid: Any, host: Any) -> bool:
    """Whether a record's owner may still be running (a process elsewhere is assumed alive)."""
    if not isinstance(pid, int) or host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
