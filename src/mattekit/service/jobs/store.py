"""Video jobs: upload a clip, poll its progress, fetch the result, or cancel.

    POST   /api/v1/jobs               multipart: file (the video) [+ bg_file] + options → 202 {id, ...}
    GET    /api/v1/jobs/{id}          state (queued|running|done|failed|cancelled) and progress
    GET    /api/v1/jobs/{id}/result   the output file once done (409 before)
    DELETE /api/v1/jobs/{id}          cancel a queued/running job, or delete a finished one's result

Jobs run in their own small bounded pool (``MATTEKIT_JOB_WORKERS``, default 1, plus
``MATTEKIT_JOB_QUEUE`` waiting, default 4), so a long video never takes the slots stills need;
the engine underneath is the same. Each job has a private folder under a temporary directory;
finished jobs (and their files) are deleted ``MATTEKIT_JOB_TTL`` seconds after they end.

Several server processes: set ``MATTEKIT_JOB_DIR`` to one folder they all share (``mattekit
serve --processes N`` makes one). Each job then keeps its state in ``job.json`` in its folder,
so any process answers ``GET`` for it and serves its result; a ``DELETE`` that reaches another
process leaves a ``cancel`` file its owner sees between frames.

| variable                        | default            | meaning                                   |
|---------------------------------|--------------------|-------------------------------------------|
| ``MATTEKIT_JOB_MAX_UPLOAD_BYTES`` | 104857600 (100 MiB) | video upload limit (413)                |
| ``MATTEKIT_JOB_MAX_SECONDS``      | 120                | longest clip (after start/end) accepted (422) |
| ``MATTEKIT_JOB_TTL``              | 3600               | seconds a finished job and its result are kept |
| ``MATTEKIT_JOB_WORKERS``          | 1                  | videos processed at once                  |
| ``MATTEKIT_JOB_QUEUE``            | 4                  | videos waiting before 503 Busy            |
| ``MATTEKIT_JOB_TIMEOUT``          | 1800               | seconds a job may run (from its first frame) before it fails; 0: none |
| ``MATTEKIT_JOB_UPLOAD_TIMEOUT``   | 300                | seconds a video upload may take to arrive (408); 0: none |
| ``MATTEKIT_JOB_DISK_BYTES``       | 10737418240 (10 GiB) | every job's files together: a new upload is refused (507) when one more would not fit, a job whose output passes it fails; 0: none |
| ``MATTEKIT_JOB_DIR``              | (a private temp folder) | a folder shared by every server process (jobs findable from any) |
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse

from ..deadline import Deadline, within
from ..errors import Cancelled, DeadlineExceeded, InvalidInput, InvalidOption, MattekitError, UploadTimeout
from ..options import BackgroundImage, Options
from ..video.outputs import OUTPUTS, default_output
from .common import key_owner, require_api_key, server_options
from .deploy import admission
from .executor import Reservation, WorkPool
from .settings import env_number
from .uploads import Upload, check_fields, read_upload, require_file

log = logging.getLogger("mattekit.service.jobs")

# What a client may set on a video job (stills-only options such as crop or format are refused).
JOB_FIELDS = frozenset({"output", "preset", "ratio", "bg", "bg_fit", "blur", "mask", "decontaminate", "start", "end", "subject"})


def _media_types() -> dict[str, tuple[str, str]]:
    """(content type, file suffix) of each output a job can write: those the table gives one."""
    return {name: (spec.media_type, spec.extension) for name, spec in OUTPUTS.items() if spec.media_type}


MEDIA_TYPES = _media_types()  # read from the outputs table: a type registered later is not offered here
JOB_OUTPUTS = tuple(MEDIA_TYPES)
UPLOAD, BACKGROUND = "upload", "background"  # a job's uploaded clip and background, in its folder
_FILE_WORDS = {UPLOAD: "the clip", BACKGROUND: "the background"}
RECORD = "job.json"  # a job's state, in its folder, when the folder is shared (MATTEKIT_JOB_DIR)
CANCEL = "cancel"  # left in a job's folder by a process that is not its owner
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what secrets.token_urlsafe makes: never a path


class NotFound(MattekitError):
    code = "not_found"
    http_status = 404


class NotReady(MattekitError):
    code = "not_ready"
    http_status = 409


class NoSpace(MattekitError):
    """The temporary disk the jobs write to is full."""

    code = "no_space"
    http_status = 507


class ShuttingDown(MattekitError):
    """The server stopped (a restart or deploy) before the job could finish."""

    code = "shutting_down"
    http_status = 503


def _disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == errno.ENOSPC


class _FileOnWrite:
    """A sink that creates its file at the first byte written, so a part never sent leaves no
    empty file behind (a job without a background has no ``background`` file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None

    def write(self, data: bytes) -> int:
        if self._file is None:
            self._file = open(self.path, "wb")
        return self._file.write(data)

    def __enter__(self) -> _FileOnWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


def without_paths(exc: MattekitError, root: Path) -> MattekitError:
    """``exc`` with every path under the jobs folder cut to its last part: FFmpeg's messages name
    the file they read, and a client must not learn where (or whose) the server keeps files."""
    message = exc.worded("api")  # a job's error is read through the API only
    for prefix in {str(root), os.path.realpath(root)}:
        message = re.sub(re.escape(prefix) + r"/(?:[^/\s'\"]+/)*([^/\s'\"]*)", r"\1", message)
    # The files are saved under our names ("upload is not a video…"): say which file it was.
    message = re.sub(rf"^({UPLOAD}|{BACKGROUND})\b(?!-)", lambda m: _FILE_WORDS[m.group(1)], message)
    exc.message, exc.args = message, (message,)
    return exc


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


@dataclass(frozen=True)
class JobSettings:
    max_upload_bytes: int = 100 * 1024 * 1024
    max_seconds: float = 120.0
    ttl: float = 3600.0
    workers: int = 1
    queue_size: int = 4
    sweep_every: float = 5.0
    # The longest clip (120 s) of 1080p at ``best`` runs ~10 minutes here; 30 leave room for a
    # slower machine while still freeing a worker a stuck or hostile file would hold for hours.
    timeout: float = 1800.0
    # What every job's files together may take (uploads, results kept for the TTL); 0: no limit.
    # ProRes and PNG outputs are 10-100x their upload, so a few finished jobs can fill a disk.
    disk_bytes: int = 10 * 1024**3
    # A stalled upload holds a jobs slot, a file and its descriptors: 100 MiB arrive in 300 s at
    # 2.8 Mbit/s, slower than any link a video is worth sending over.
    upload_timeout: float = 300.0
    folder: str | None = None  # shared by every process; None: a private temporary folder

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobSettings:
        env = os.environ if env is None else env
        ttl = env_number(env, "MATTEKIT_JOB_TTL", 3600.0, 1.0, float)
        return cls(
            max_upload_bytes=env_number(env, "MATTEKIT_JOB_MAX_UPLOAD_BYTES", 100 * 1024 * 1024, 1),
            max_seconds=env_number(env, "MATTEKIT_JOB_MAX_SECONDS", 120.0, 0.1, float),
            ttl=ttl,
            workers=env_number(env, "MATTEKIT_JOB_WORKERS", 1, 1),
            queue_size=env_number(env, "MATTEKIT_JOB_QUEUE", 4, 0),
            sweep_every=min(5.0, max(0.2, ttl / 4)),
            timeout=env_number(env, "MATTEKIT_JOB_TIMEOUT", 1800.0, 0.0, float),
            upload_timeout=env_number(env, "MATTEKIT_JOB_UPLOAD_TIMEOUT", 300.0, 0.0, float),
            disk_bytes=env_number(env, "MATTEKIT_JOB_DISK_BYTES", 10 * 1024**3, 0),
            folder=env.get("MATTEKIT_JOB_DIR", "").strip() or None,
        )


@dataclass
class Job:
    id: str
    folder: Path
    output: str
    state: str = "queued"  # queued | running | done | failed | cancelled
    done: int = 0
    total: int = 0
    fps: float = 0.0
    created: float = field(default_factory=time.time)
    finished: float | None = None
    error: MattekitError | None = None
    result: Path | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Any = None
    stopped: MattekitError | None = None  # why the server (not the client) cancelled it
    owned: bool = True  # False: read from another process's record
    owner: str = ""  # common.key_owner of the key that made it: another key gets 404

    def view(self, ttl: float) -> dict:
        body: dict = {
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
        }
        if self.error is not None:
            body["error"] = {"code": self.error.code, "message": self.error.worded("api")}
        if self.state == "done":
            body["result_url"] = f"/api/v1/jobs/{self.id}/result"
            body["media_type"], ext = MEDIA_TYPES[self.output]
            body["filename"] = f"video-{self.id}{ext}"  # what the result is saved as (the page's download name)
        if self.finished is not None:
            body["expires"] = self.finished + ttl
        return body


class JobStore:
    """Every job by id; files live in one folder per job (shared by all processes, or private)."""

    def __init__(self, settings: JobSettings, root: Path | None = None) -> None:
        self.settings = settings
        self.shared = root is None and settings.folder is not None
        if self.shared:
            self.root = Path(settings.folder)  # type: ignore[arg-type]
            _private_folder(self.root)
        else:
            self.root = Path(root or tempfile.mkdtemp(prefix="mattekit-jobs-"))
        self.pool = WorkPool(settings.workers, settings.queue_size, name="jobs")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._saved: dict[str, float] = {}  # when each job's record was last written
        self._used: tuple[float, int] = (-1.0, 0)  # (when, bytes) of the last walk of the root
        self.timeouts: Any = None  # a prometheus counter child, set by on_startup

    def new(self, output: str, owner: str = "") -> Job:
        job_id = secrets.token_urlsafe(12)
        folder = self.root / job_id
        folder.mkdir(mode=0o700)
        job = Job(job_id, folder, output, owner=owner)
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

    def get(self, job_id: str, owner: str = "") -> Job:
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
        elif job is None and self.shared and _JOB_ID.match(job_id):
            job = self._read(job_id)
        if job is None or not hmac.compare_digest(job.owner, owner):
            raise NotFound("no such job (finished jobs are deleted after a while)")
        return job

    # -- the shared folder -----------------------------------------------------------------
    def save(self, job: Job, *, every: float = 0.0) -> None:
        """Write ``job``'s state for the other processes (at most once per ``every`` seconds)."""
        if not self.shared or not job.owned:
            return
        with self._lock:
            now = time.monotonic()
            if every and now - self._saved.get(job.id, -every) < every:
                return
            self._saved[job.id] = now
            record = {
                **job.view(self.settings.ttl),
                "finished": job.finished,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "owner": job.owner,
                "result_name": job.result.name if job.result else None,
            }
            if not job.folder.is_dir():
                return  # deleted meanwhile: nothing to describe
            tmp = job.folder / f".{RECORD}.{os.getpid()}"
            try:
                tmp.write_text(json.dumps(record))
                os.replace(tmp, job.folder / RECORD)  # readers see the old record or the new, never half
            except OSError as exc:
                log.warning("could not write the state of video job %s: %s", job.id, exc)

    def _read(self, job_id: str) -> Job | None:
        """Another process's job, from its record (None if there is none)."""
        folder = self.root / job_id
        try:
            record = json.loads((folder / RECORD).read_text())
        except (OSError, ValueError):
            return None
        if record.get("output") not in MEDIA_TYPES:
            return None
        progress = record.get("progress", {})
        job = Job(
            job_id,
            folder,
            record.get("output", "webm"),
            state=record.get("state", "failed"),
            done=progress.get("frames_done", 0),
            total=progress.get("frames_total", 0),
            fps=progress.get("fps", 0.0),
            created=record.get("created", 0.0),
            finished=record.get("finished"),
            owned=False,
            owner=str(record.get("owner") or ""),
        )
        if record.get("error"):
            job.error = MattekitError(record["error"].get("message", "the job failed"))
            job.error.code = record["error"].get("code", "error")
        if job.state == "done" and record.get("result_name"):
            job.result = folder / _result_name(job.output)
            if record["result_name"] != job.result.name:  # never a path taken from a file on disk
                return None
        if job.state in ("queued", "running") and not _alive(record.get("pid"), record.get("host")):
            # Its process is gone (killed, or crashed) and it never will finish.
            job.state, job.finished = "failed", job.finished or time.time()
            job.error = ShuttingDown("the server process running this video stopped; submit it again")
        return job

    def cancel_requested(self, job: Job) -> bool:
        return job.cancel.is_set() or (self.shared and (job.folder / CANCEL).exists())

    def out_of_room(self, job: Job) -> bool:
        """Whether the jobs' files passed ``MATTEKIT_JOB_DISK_BYTES`` while ``job`` writes its
        output (polled between frames): it then stops, failed with ``no_space``, and its files go.
        Outputs can be 10-100x their upload, so the check at admission alone does not bound them."""
        budget = self.settings.disk_bytes
        if not budget or self.used_bytes(max_age=0.25) <= budget:
            return False
        job.stopped = job.stopped or NoSpace(
            "this video's output filled the server's video storage (MATTEKIT_JOB_DISK_BYTES); "
            "send a shorter clip (start/end) or a more compact output (webm)"
        )
        return True

    def discard_files(self, job: Job) -> None:
        """Delete a job's files; a shared folder keeps its record (until the TTL) to say what happened."""
        if not self.shared:
            shutil.rmtree(job.folder, ignore_errors=True)
            return
        for path in job.folder.glob("*"):
            if path.name != RECORD:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    def drop(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
            self._saved.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)

    def sweep(self, now: float | None = None, *, shared: bool = False) -> int:
        """Delete jobs that finished more than ``ttl`` seconds ago (``shared``: every process's). Returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            old = [j for j in self._jobs.values() if j.finished is not None and now - j.finished > self.settings.ttl]
            mine = set(self._jobs)
        if shared and self.shared:
            for folder in self.root.iterdir():
                if folder.name not in mine and _JOB_ID.match(folder.name):
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
        if not self.shared:
            shutil.rmtree(self.root, ignore_errors=True)


def _result_name(output: str) -> str:
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


def run_job(store: JobStore, job: Job, source: Path, options: Options, vopts: Any, engine: Any) -> None:
    """The work of one job, in a jobs-pool thread. Outcomes are recorded on the job, not raised."""
    from ..video import process_video

    if store.cancel_requested(job):
        if job.stopped is not None:
            job.state, job.error, job.finished = "failed", job.stopped, time.time()
        elif job.state == "queued":  # cancelled by a DELETE that reached another process
            job.state, job.error, job.finished = "cancelled", Cancelled("the video was cancelled"), time.time()
        store.discard_files(job)
        store.save(job)
        return
    job.state = "running"
    store.save(job)
    target = job.folder / _result_name(job.output)

    def progress(p: Any) -> None:
        job.done, job.total, job.fps = p.done, p.total, p.fps
        store.save(job, every=0.5)

    deadline = Deadline.after(store.settings.timeout, "this video", "send a shorter clip (start/end) or a faster preset")
    try:
        process_video(
            source,
            target,
            options,
            vopts,
            engine=engine,
            progress=progress,
            cancel=lambda: store.cancel_requested(job) or store.out_of_room(job),
            deadline=deadline,
        )
        if store.cancel_requested(job):  # cancelled just as it finished: honour the cancel
            raise Cancelled("the video was cancelled")
        job.result, job.state = target, "done"
    except Cancelled as exc:
        job.state, job.error = ("failed", job.stopped) if job.stopped is not None else ("cancelled", exc)
        if isinstance(job.stopped, NoSpace):
            log.warning(
                "video job %s stopped: the jobs' files passed MATTEKIT_JOB_DISK_BYTES (%d)", job.id, store.settings.disk_bytes
            )
    except DeadlineExceeded as exc:
        log.warning("video job %s stopped at its deadline (%g s)", job.id, store.settings.timeout)
        job.state, job.error = "failed", exc
        if store.timeouts is not None:
            store.timeouts.inc()
    except MattekitError as exc:
        job.state, job.error = "failed", without_paths(exc, store.root)
    except MemoryError:
        job.state, job.error = "failed", MattekitError("out of memory while processing this video")
    except Exception as exc:  # never a stack trace to the client; the log has it
        if _disk_full(exc):
            log.error("video job %s failed: the temporary disk %s is full", job.id, store.root)
            job.state, job.error = "failed", NoSpace("the server ran out of disk space while writing this video")
        else:
            log.exception("video job %s failed", job.id)
            job.state, job.error = "failed", MattekitError("internal error: the server logged the details")
    finally:
        job.finished = time.time()
        if job.state == "done":  # the uploads are not needed any more: the result alone stays
            source.unlink(missing_ok=True)
            (job.folder / BACKGROUND).unlink(missing_ok=True)
        else:  # nothing worth keeping: the record stays (until the TTL) to say what happened
            store.discard_files(job)
        store.save(job)


# -- routes ---------------------------------------------------------------------------------
router = APIRouter(prefix="/api/v1/jobs", dependencies=[Depends(require_api_key)], tags=["video jobs"])


def _store(request: Request) -> JobStore:
    return request.app.state.jobs


def _parse(fields: Mapping[str, str], has_bg_file: bool, base: Options) -> tuple[str, Options, dict]:
    from ..video import VideoOptions, resolve_output

    unknown = sorted(set(fields) - JOB_FIELDS)
    if unknown:
        raise InvalidOption(f"unknown option {unknown[0]!r}; known: {', '.join(sorted(JOB_FIELDS | {'file', 'bg_file'}))}")
    stills = {k: v for k, v in fields.items() if k not in ("output", "start", "end") and not (k == "bg" and has_bg_file)}
    options = Options.from_fields(stills, base=base)
    if options.subject == "general":  # said at admission, not as a failed job after the upload
        raise InvalidOption("video is matted for people only (the person model): use subject auto or person for a clip")
    output = (fields.get("output") or "").strip().lower() or default_output(options, has_bg_file)
    if output not in JOB_OUTPUTS:
        raise InvalidOption(f"output must be one of {', '.join(JOB_OUTPUTS)}, not {output!r}")
    times: dict = {}
    for name in ("start", "end"):
        raw = (fields.get(name) or "").strip()
        if raw:
            try:
                times[name] = float(raw)
            except ValueError:
                raise InvalidOption(f"{name} must be a number of seconds") from None
    vopts = VideoOptions(output=output, **times)  # validates the range now (400), nan and inf included
    if not has_bg_file:  # with one, the background is known only once the upload is read
        resolve_output(_result_name(output), options, vopts)
    return output, options, times


async def _receive(request: Request, settings: JobSettings, sinks: Mapping[str, Any]) -> Upload:
    """The upload, streamed into ``sinks``, within ``MATTEKIT_JOB_UPLOAD_TIMEOUT`` (408 after it)."""
    deadline = Deadline.after(settings.upload_timeout, "this upload")
    try:
        return await within(deadline, read_upload(request, settings.max_upload_bytes, sinks=sinks, what="video"))
    except DeadlineExceeded:
        raise UploadTimeout(
            f"the video did not arrive within this server's limit of {settings.upload_timeout:g} s "
            "for an upload; send a shorter clip or use a faster connection"
        ) from None


def _prepare(
    store: JobStore, job: Job, source: Path, bg_path: Path | None, options: Options, output: str, times: dict, fit: str
) -> tuple[Path, Options, Any]:
    """Check the uploaded clip is a video within the limits (in a thread: it decodes a frame)."""
    from .. import imaging
    from ..errors import TooLarge
    from ..video import VideoOptions, probe, resolve_output

    # Every frame is held to the limit while the job runs; the first one here, so a clip that is
    # too large from its start is refused at admission (422) instead of becoming a failed job.
    info = probe(source, max_pixels=options.max_pixels)
    bg_video = None
    if bg_path is not None:
        try:
            options = options.replace(
                background=BackgroundImage(imaging.decode(bg_path, Options(max_pixels=options.max_pixels)), fit)  # type: ignore[arg-type]
            )
        except InvalidInput:
            probe(bg_path, max_pixels=options.max_pixels)  # not a picture: a background video, or a clear error
            bg_video = bg_path
        else:
            bg_path.unlink(missing_ok=True)  # decoded into the options: the file is not needed
    start = times.get("start", 0.0)
    duration = info.duration or (info.frames / info.fps if info.frames and info.fps else 0.0)
    end = min(times.get("end", duration), duration) if duration else times.get("end", start)
    seconds = max(0.0, end - start)
    if seconds > store.settings.max_seconds + 1e-6:
        raise TooLarge(
            f"the clip is {seconds:.1f} s long; this server takes at most {store.settings.max_seconds:g} s "
            "(send a shorter clip, or start/end)"
        )
    # A container may not say, or lie about, its length: cap the frames too, so the limit holds for
    # any file (a 100 MiB upload of tiny frames could otherwise hold a worker for hours).
    cap = int(math.ceil(store.settings.max_seconds * min(max(info.fps, 1.0), 240.0))) + 1
    job.total = min(cap, int(round(seconds * info.fps))) if seconds and info.fps else 0  # "frame 0 of N" at once
    vopts = VideoOptions(output=output, background_video=bg_video, max_frames=cap, **times)
    resolve_output(job.folder / _result_name(output), options, vopts)
    return source, options, vopts


# A job's slot is reserved before its upload is read, and held through the upload and the probe.
_JobSlot = Annotated[Reservation, Depends(admission(lambda state: state.jobs.pool, while_draining=True), scope="function")]


@router.post(
    "",
    status_code=202,
    summary="Start a video job",
    description="Multipart: `file` (the video), optional `bg_file` (a picture or a clip to put behind), "
    f"and options: `output` ({' | '.join(JOB_OUTPUTS)}), `preset`, `ratio`, "
    "`bg`, `bg_fit`, `blur`, `mask`, `decontaminate`, `start`, `end` (seconds). "
    "Answers 202 with the job; poll `GET /api/v1/jobs/{id}`.",
)
async def create_job(request: Request, slot: _JobSlot) -> JSONResponse:
    store = _store(request)
    store.sweep()
    job = store.new("webm", owner=key_owner(request))  # a private folder for the upload; the output type is known after it
    try:
        store.refuse_if_full()
        source, bg_path = job.folder / UPLOAD, job.folder / BACKGROUND
        # Streamed to disk as it arrives: a video upload never sits in memory.
        with _FileOnWrite(source) as video_file, _FileOnWrite(bg_path) as bg_file:
            upload = await _receive(request, store.settings, {"file": video_file, "bg_file": bg_file})
        fields = {**dict(request.query_params), **upload.fields}
        check_fields(fields)
        has_bg = "bg_file" in upload.saved
        if has_bg and not upload.saved["bg_file"]:
            raise InvalidInput("bg_file is empty")
        output, options, times = _parse(fields, has_bg, server_options(request.app.state.settings))
        job.output = output
        require_file(upload, "video")
        source, options, vopts = await asyncio.to_thread(
            _prepare,
            store,
            job,
            source,
            bg_path if has_bg else None,
            options,
            output,
            times,
            (fields.get("bg_fit") or "fill").lower(),
        )
        job.future = slot.submit(run_job, store, job, source, options, vopts, request.app.state.matter.engine)
        store.save(job)
    except BaseException as exc:
        store.drop(job)
        if isinstance(exc, MattekitError):
            without_paths(exc, store.root)  # its message is rewritten in place; raised below
        if _disk_full(exc):
            log.error("video upload refused: the temporary disk %s is full", store.root)
            raise NoSpace("the server has no disk space left for this video; try again later") from None
        raise
    return JSONResponse(job.view(store.settings.ttl), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@router.get("/{job_id}", summary="A job's state and progress")
async def get_job(job_id: str, request: Request) -> dict:
    store = _store(request)
    return store.get(job_id, key_owner(request)).view(store.settings.ttl)


@router.get("/{job_id}/result", summary="The finished job's output file")
async def get_result(job_id: str, request: Request) -> FileResponse:
    job = _store(request).get(job_id, key_owner(request))
    if job.state != "done" or job.result is None:
        if job.state == "failed" and job.error is not None:
            raise NotReady(f"the job failed: {job.error.worded('api')}")
        raise NotReady(f"the job is {job.state}; poll GET /api/v1/jobs/{job.id} until it is done")
    media, ext = MEDIA_TYPES[job.output]
    return FileResponse(job.result, media_type=media, filename=f"video-{job.id}{ext}", headers={"Cache-Control": "no-store"})


@router.delete("/{job_id}", summary="Cancel a job, or delete a finished job's result")
async def delete_job(job_id: str, request: Request) -> dict:
    store = _store(request)
    job = store.get(job_id, key_owner(request))
    if job.state in ("queued", "running") and not job.owned:
        # Another process runs it: it sees this file between frames (or before it starts), stops,
        # deletes the files and records "cancelled".
        (job.folder / CANCEL).touch()
        return {"id": job.id, "state": "cancelled"}
    if job.state in ("queued", "running"):
        job.cancel.set()  # a running job sees it between frames and deletes its files
        if job.future is not None and job.future.cancel():  # still waiting: it never runs
            store.discard_files(job)
        job.state, job.error, job.finished = "cancelled", Cancelled("the video was cancelled"), time.time()
        store.save(job)
        return {"id": job.id, "state": "cancelled"}
    store.drop(job)
    return {"id": job.id, "state": "deleted"}


async def _sweeper(store: JobStore) -> None:
    while True:
        await asyncio.sleep(store.settings.sweep_every)
        try:
            store.sweep(shared=True)
        except Exception:  # a sweep must never stop the loop
            log.exception("sweeping expired jobs failed")


async def on_startup(app: Any) -> None:
    settings = getattr(app.state, "job_settings", None) or JobSettings.from_env()
    app.state.jobs = JobStore(settings)
    app.state.jobs.timeouts = app.state.metrics.timeouts.labels("job")
    getattr(app.state, "on_drain", []).append(app.state.jobs.fail_queued)
    app.state.jobs_sweeper = asyncio.ensure_future(_sweeper(app.state.jobs))


async def on_shutdown(app: Any) -> None:
    app.state.jobs_sweeper.cancel()
    app.state.jobs.close()
