"""Video jobs: upload a clip, poll its progress, fetch the result, or cancel.

    POST   /api/v1/jobs               multipart: file (the video) [+ bg_file] + options → 202 {id, ...}
    GET    /api/v1/jobs/{id}          state (queued|running|done|failed|cancelled) and progress
    GET    /api/v1/jobs/{id}/result   the output file once done (409 before)
    DELETE /api/v1/jobs/{id}          cancel a queued/running job, or delete a finished one's result

Jobs run in their own small bounded pool (``MATTEKIT_JOB_WORKERS``, default 1, plus
``MATTEKIT_JOB_QUEUE`` waiting, default 4), so a long video never takes the slots stills need;
the engine underneath is the same. Each job has a private folder under a temporary directory;
finished jobs (and their files) are deleted ``MATTEKIT_JOB_TTL`` seconds after they end.

| variable                        | default            | meaning                                   |
|---------------------------------|--------------------|-------------------------------------------|
| ``MATTEKIT_JOB_MAX_UPLOAD_BYTES`` | 104857600 (100 MiB) | video upload limit (413)                |
| ``MATTEKIT_JOB_MAX_SECONDS``      | 120                | longest clip (after start/end) accepted (422) |
| ``MATTEKIT_JOB_TTL``              | 3600               | seconds a finished job and its result are kept |
| ``MATTEKIT_JOB_WORKERS``          | 1                  | videos processed at once                  |
| ``MATTEKIT_JOB_QUEUE``            | 4                  | videos waiting before 503 Busy            |
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse

from ..errors import Cancelled, InvalidInput, InvalidOption, MattekitError
from ..options import BackgroundImage, Options
from .common import require_api_key, server_options
from .executor import WorkPool
from .settings import env_number
from .uploads import read_upload

log = logging.getLogger("mattekit.service.jobs")

# What a client may set on a video job (stills-only options such as crop or format are refused).
JOB_FIELDS = frozenset({"output", "preset", "ratio", "bg", "bg_fit", "blur", "mask", "decontaminate", "start", "end"})
MEDIA_TYPES = {
    "webm": ("video/webm", ".webm"), "mov": ("video/quicktime", ".mov"), "png-zip": ("application/zip", ".zip"),
    "matte": ("video/mp4", ".mp4"), "composite": ("video/mp4", ".mp4"),
}
JOB_OUTPUTS = tuple(MEDIA_TYPES)


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


def _disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == errno.ENOSPC


@dataclass(frozen=True)
class JobSettings:
    max_upload_bytes: int = 100 * 1024 * 1024
    max_seconds: float = 120.0
    ttl: float = 3600.0
    workers: int = 1
    queue_size: int = 4
    sweep_every: float = 5.0

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "JobSettings":
        env = os.environ if env is None else env
        ttl = env_number(env, "MATTEKIT_JOB_TTL", 3600.0, 1.0, float)
        return cls(
            max_upload_bytes=env_number(env, "MATTEKIT_JOB_MAX_UPLOAD_BYTES", 100 * 1024 * 1024, 1),
            max_seconds=env_number(env, "MATTEKIT_JOB_MAX_SECONDS", 120.0, 0.1, float),
            ttl=ttl,
            workers=env_number(env, "MATTEKIT_JOB_WORKERS", 1, 1),
            queue_size=env_number(env, "MATTEKIT_JOB_QUEUE", 4, 0),
            sweep_every=min(5.0, max(0.2, ttl / 4)),
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
    finished: Optional[float] = None
    error: Optional[MattekitError] = None
    result: Optional[Path] = None
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Any = None

    def view(self, ttl: float) -> dict:
        body: dict = {
            "id": self.id, "state": self.state, "output": self.output,
            "progress": {
                "frames_done": self.done, "frames_total": self.total, "fps": round(self.fps, 2),
                "percent": round(100.0 * self.done / self.total, 1) if self.total else (100.0 if self.state == "done" else 0.0),
            },
            "created": self.created,
        }
        if self.error is not None:
            body["error"] = {"code": self.error.code, "message": self.error.message}
        if self.state == "done":
            body["result_url"] = f"/api/v1/jobs/{self.id}/result"
            body["media_type"] = MEDIA_TYPES[self.output][0]
        if self.finished is not None:
            body["expires"] = self.finished + ttl
        return body


class JobStore:
    """Every job by id; files live in one temporary folder per job."""

    def __init__(self, settings: JobSettings, root: Optional[Path] = None) -> None:
        self.settings = settings
        self.root = Path(root or tempfile.mkdtemp(prefix="mattekit-jobs-"))
        self.pool = WorkPool(settings.workers, settings.queue_size, name="jobs")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def new(self, output: str) -> Job:
        job_id = secrets.token_urlsafe(12)
        folder = self.root / job_id
        folder.mkdir(parents=True)
        job = Job(job_id, folder, output)
        with self._lock:
            self._jobs[job_id] = job
        return job

    def get(self, job_id: str) -> Job:
        self.sweep()
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound("no such job (finished jobs are deleted after a while)")
        return job

    def drop(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)

    def sweep(self, now: Optional[float] = None) -> int:
        """Delete jobs that finished more than ``ttl`` seconds ago. Returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            old = [j for j in self._jobs.values() if j.finished is not None and now - j.finished > self.settings.ttl]
        for job in old:
            self.drop(job)
        return len(old)

    def close(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel.set()
        self.pool.shutdown(wait=False)
        shutil.rmtree(self.root, ignore_errors=True)


def run_job(store: JobStore, job: Job, source: Path, options: Options, vopts: Any, engine: Any) -> None:
    """The work of one job, in a jobs-pool thread. Outcomes are recorded on the job, not raised."""
    from ..video import process_video

    if job.cancel.is_set():
        return
    job.state = "running"
    target = job.folder / f"result{MEDIA_TYPES[job.output][1]}"

    def progress(p: Any) -> None:
        job.done, job.total, job.fps = p.done, p.total, p.fps

    try:
        process_video(source, target, options, vopts, engine=engine, progress=progress, cancel=job.cancel.is_set)
        if job.cancel.is_set():  # cancelled just as it finished: honour the cancel
            raise Cancelled("the video was cancelled")
        job.result, job.state = target, "done"
    except Cancelled as exc:
        job.state, job.error = "cancelled", exc
    except MattekitError as exc:
        job.state, job.error = "failed", exc
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
        if job.state == "done":
            source.unlink(missing_ok=True)  # the upload is not needed any more
        else:  # nothing worth keeping: the record stays (until the TTL) to say what happened
            shutil.rmtree(job.folder, ignore_errors=True)


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
    output = (fields.get("output") or "").strip().lower() or (
        "matte" if options.mask else ("composite" if options.background is not None or has_bg_file else "webm"))
    if output not in JOB_OUTPUTS:
        raise InvalidOption(f"output must be one of {', '.join(JOB_OUTPUTS)}, not {output!r}")
    times: dict = {}
    for name in ("start", "end"):
        raw = (fields.get(name) or "").strip()
        if raw:
            try:
                times[name] = float(raw)
            except ValueError:
                raise InvalidOption(f"{name} must be a number of seconds, not {raw!r}") from None
    vopts = VideoOptions(output=output, **times)  # type: ignore[arg-type]  # validates the range now (400)
    if not has_bg_file:  # with one, the background is known only once the upload is read
        resolve_output(f"result{MEDIA_TYPES[output][1]}", options, vopts)
    return output, options, times


def _prepare(store: JobStore, job: Job, source: Path, bg_path: Optional[Path], options: Options,
             output: str, times: dict, fit: str) -> tuple[Path, Options, Any]:
    """Check the uploaded clip is a video within the limits (in a thread: it decodes a frame)."""
    from .. import imaging
    from ..errors import TooLarge
    from ..video import VideoOptions, probe, resolve_output

    info = probe(source)
    bg_video = None
    if bg_path is not None:
        try:
            options = options.replace(background=BackgroundImage(imaging.decode(bg_path, Options(max_pixels=options.max_pixels)), fit))  # type: ignore[arg-type]
        except InvalidInput:
            probe(bg_path)  # not a picture: a background video then, or a clear error
            bg_video = bg_path
    start = times.get("start", 0.0)
    duration = info.duration or (info.frames / info.fps if info.frames and info.fps else 0.0)
    end = min(times.get("end", duration), duration) if duration else times.get("end", start)
    seconds = max(0.0, end - start)
    if seconds > store.settings.max_seconds + 1e-6:
        raise TooLarge(f"the clip is {seconds:.1f} s long; this server takes at most {store.settings.max_seconds:g} s "
                       "(send a shorter clip, or start/end)")
    # A container may not say, or lie about, its length: cap the frames too, so the limit holds for
    # any file (a 100 MiB upload of tiny frames could otherwise hold a worker for hours).
    cap = int(math.ceil(store.settings.max_seconds * min(max(info.fps, 1.0), 240.0))) + 1
    job.total = min(cap, int(round(seconds * info.fps))) if seconds and info.fps else 0  # "frame 0 of N" at once
    vopts = VideoOptions(output=output, background_video=bg_video, max_frames=cap, **times)  # type: ignore[arg-type]
    resolve_output(job.folder / f"result{MEDIA_TYPES[output][1]}", options, vopts)
    return source, options, vopts


@router.post("", status_code=202, summary="Start a video job",
             description="Multipart: `file` (the video), optional `bg_file` (a picture or a clip to put behind), "
                         "and options: `output` (webm | mov | png-zip | matte | composite), `preset`, `ratio`, "
                         "`bg`, `bg_fit`, `blur`, `mask`, `decontaminate`, `start`, `end` (seconds). "
                         "Answers 202 with the job; poll `GET /api/v1/jobs/{id}`.")
async def create_job(request: Request) -> JSONResponse:
    store = _store(request)
    store.sweep()
    job = store.new("webm")  # a private folder for the upload; the output type is known after it
    try:
        source, bg_path = job.folder / "upload", job.folder / "background"
        # Streamed to disk as it arrives: a video upload never sits in memory.
        with open(source, "wb") as video_file, open(bg_path, "wb") as bg_file:
            upload = await read_upload(request, store.settings.max_upload_bytes,
                                       sinks={"file": video_file, "bg_file": bg_file})
        fields = {**dict(request.query_params), **upload.fields}
        has_bg = "bg_file" in upload.saved
        if has_bg and not upload.saved["bg_file"]:
            raise InvalidInput("bg_file is empty")
        output, options, times = _parse(fields, has_bg, server_options(request.app.state.settings))
        job.output = output
        if not upload.saved.get("file"):
            raise InvalidInput("no video: send it as the multipart field 'file'")
        source, options, vopts = await asyncio.to_thread(
            _prepare, store, job, source, bg_path if has_bg else None, options, output, times,
            (fields.get("bg_fit") or "fill").lower())
        job.future = store.pool.submit(run_job, store, job, source, options, vopts, request.app.state.matter.engine)
    except BaseException as exc:
        store.drop(job)
        if _disk_full(exc):
            log.error("video upload refused: the temporary disk %s is full", store.root)
            raise NoSpace("the server has no disk space left for this video; try again later") from None
        raise
    return JSONResponse(job.view(store.settings.ttl), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@router.get("/{job_id}", summary="A job's state and progress")
async def get_job(job_id: str, request: Request) -> dict:
    store = _store(request)
    return store.get(job_id).view(store.settings.ttl)


@router.get("/{job_id}/result", summary="The finished job's output file")
async def get_result(job_id: str, request: Request) -> FileResponse:
    job = _store(request).get(job_id)
    if job.state != "done" or job.result is None:
        if job.state == "failed" and job.error is not None:
            raise NotReady(f"the job failed: {job.error.message}")
        raise NotReady(f"the job is {job.state}; poll GET /api/v1/jobs/{job.id} until it is done")
    media, ext = MEDIA_TYPES[job.output]
    return FileResponse(job.result, media_type=media, filename=f"video-{job.id}{ext}",
                        headers={"Cache-Control": "no-store"})


@router.delete("/{job_id}", summary="Cancel a job, or delete a finished job's result")
async def delete_job(job_id: str, request: Request) -> dict:
    store = _store(request)
    job = store.get(job_id)
    if job.state in ("queued", "running"):
        job.cancel.set()  # a running job sees it between frames and deletes its files
        if job.future is not None and job.future.cancel():  # still waiting: it never runs
            shutil.rmtree(job.folder, ignore_errors=True)
        job.state, job.error, job.finished = "cancelled", Cancelled("the video was cancelled"), time.time()
        return {"id": job.id, "state": "cancelled"}
    store.drop(job)
    return {"id": job.id, "state": "deleted"}


async def _sweeper(store: JobStore) -> None:
    while True:
        await asyncio.sleep(store.settings.sweep_every)
        try:
            store.sweep()
        except Exception:  # a sweep must never stop the loop
            log.exception("sweeping expired jobs failed")


async def on_startup(app: Any) -> None:
    settings = getattr(app.state, "job_settings", None) or JobSettings.from_env()
    app.state.jobs = JobStore(settings)
    app.state.jobs_sweeper = asyncio.ensure_future(_sweeper(app.state.jobs))


async def on_shutdown(app: Any) -> None:
    app.state.jobs_sweeper.cancel()
    app.state.jobs.close()
