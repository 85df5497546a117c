"""The video jobs' HTTP routes (``/api/v1/jobs``): admission, upload, state, result, cancel.

Handlers only parse and answer; the store keeps the jobs (:mod:`.store`) and the runner does
the work (:mod:`.runner`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ...deadline import Deadline, within
from ...errors import DeadlineExceeded, InvalidInput, InvalidOption, MattekitError, UploadTimeout
from ...options import Options
from ...video import VideoOptions, resolve_output
from ...video.outputs import default_output
from ..common import key_owner, refuse_blur_with_bg, require_api_key, server_options, set_fields
from ..deploy import admission
from ..errors import NoSpace, NotReady
from ..executor import Reservation
from ..settings import JobSettings
from ..state import service_of
from ..uploads import Sink, Upload, check_fields, merge_fields, read_upload, require_file
from .runner import prepare, run_job, without_paths
from .store import BACKGROUND, JOB_OUTPUTS, MEDIA_TYPES, UPLOAD, JobStore, disk_full, result_name
from .webhooks import check_url

log = logging.getLogger("mattekit.service.jobs")

# What a client may set on a video job (stills-only options such as crop or format are refused).
JOB_FIELDS = frozenset(
    {"output", "preset", "ratio", "bg", "bg_fit", "blur", "mask", "decontaminate", "start", "end", "subject", "webhook_url"}
)
_NOT_OPTIONS = ("output", "start", "end", "webhook_url")  # the job's own fields, not the frames' Options


class _FileOnWrite:
    """A sink that creates its file at the first byte written, so a part never sent leaves no
    empty file behind (a job without a background has no ``background`` file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None

    def write(self, data: bytes) -> int:
        if self._file is None:
            self._file = open(self.path, "wb")
        return self._file.write(data)

    def __enter__(self) -> _FileOnWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


router = APIRouter(prefix="/api/v1/jobs", dependencies=[Depends(require_api_key)], tags=["video jobs"])


def _store(request: Request) -> JobStore:
    return service_of(request).jobs


def _parse(fields: Mapping[str, str], has_bg_file: bool, base: Options) -> tuple[str, Options, dict[str, float]]:
    unknown = sorted(set(fields) - JOB_FIELDS)
    if unknown:
        raise InvalidOption(f"unknown option {unknown[0]!r}; known: {', '.join(sorted(JOB_FIELDS | {'file', 'bg_file'}))}")
    fields = set_fields(fields)
    refuse_blur_with_bg(fields)
    stills = {k: v for k, v in fields.items() if k not in _NOT_OPTIONS and not (k == "bg" and has_bg_file)}
    options = Options.from_fields(stills, base=base)
    if options.subject == "general":  # said at admission, not as a failed job after the upload
        raise InvalidOption("video is matted for people only (the person model): use subject auto or person for a clip")
    output = (fields.get("output") or "").strip().lower() or default_output(options, has_bg_file)
    if output not in JOB_OUTPUTS:
        raise InvalidOption(f"output must be one of {', '.join(JOB_OUTPUTS)}, not {output!r}")
    times: dict[str, float] = {}
    for name in ("start", "end"):
        raw = (fields.get(name) or "").strip()
        if raw:
            try:
                times[name] = float(raw)
            except ValueError:
                raise InvalidOption(f"{name} must be a number of seconds") from None
    # validates the range now (400), nan and inf included
    vopts = VideoOptions(output=output, start=times.get("start", 0.0), end=times.get("end"))
    # the range now (400), nan and inf included
    if not has_bg_file:  # with one, the background is known only once the upload is read
        resolve_output(result_name(output), options, vopts)
    return output, options, times


async def _receive(request: Request, settings: JobSettings, sinks: Mapping[str, Sink]) -> Upload:
    """The upload, streamed into ``sinks``, within ``MATTEKIT_JOB_UPLOAD_TIMEOUT`` (408 after it)."""
    deadline = Deadline.after(settings.upload_timeout, "this upload")
    try:
        return await within(deadline, read_upload(request, settings.max_upload_bytes, sinks=sinks, what="video"))
    except DeadlineExceeded:
        raise UploadTimeout(
            f"the video did not arrive within this server's limit of {settings.upload_timeout:g} s "
            "for an upload; send a shorter clip or use a faster connection"
        ) from None


# A job's slot is reserved before its upload is read, and held through the upload and the probe.
_JobSlot = Annotated[Reservation, Depends(admission(lambda service: service.jobs.pool, while_draining=True), scope="function")]


@router.post(
    "",
    status_code=202,
    summary="Start a video job",
    description="Multipart: `file` (the video), optional `bg_file` (a picture or a clip to put behind), "
    f"and options: `output` ({' | '.join(JOB_OUTPUTS)}), `preset`, `ratio`, "
    "`bg`, `bg_fit`, `blur`, `mask`, `decontaminate`, `start`, `end` (seconds). "
    "`webhook_url` (optional): POSTed to, signed, when the job is done or has failed; its host must be "
    "one of `MATTEKIT_WEBHOOK_HOSTS`. Answers 202 with the job; poll its `status_url`.",
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
        fields = merge_fields(request.query_params.multi_items(), upload.fields)
        check_fields(fields)
        has_bg = "bg_file" in upload.saved
        if has_bg and not upload.saved["bg_file"]:
            raise InvalidInput("bg_file is empty")
        output, options, times = _parse(fields, has_bg, server_options(service_of(request).settings))
        job.output = output
        if fields.get("webhook_url"):  # empty means unset, as for every field
            job.webhook_url = check_url(fields["webhook_url"], store.settings.webhook_hosts)
        require_file(upload, "video")
        source, options, vopts = await asyncio.to_thread(
            prepare,
            store,
            job,
            source,
            bg_path if has_bg else None,
            options,
            output,
            times,
            (fields.get("bg_fit") or "fill").lower(),
        )
        # In a thread: on a cluster, starting waits for the job's runner to be up (~0.5 s), and the
        # event loop must answer other requests meanwhile.
        engine = service_of(request).matter.engine
        starting = asyncio.ensure_future(asyncio.to_thread(store.start, job, slot, run_job, source, options, vopts, engine))
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:  # the request was cancelled: drop the job once start is over, not meanwhile
            await asyncio.wait([starting])
            raise
        store.save(job)
    except BaseException as exc:
        store.drop(job)
        if isinstance(exc, MattekitError):
            without_paths(exc, store.root)  # its message is rewritten in place; raised below
        if disk_full(exc):
            log.error("video upload refused: the temporary disk %s is full", store.root)
            raise NoSpace("the server has no disk space left for this video; try again later") from None
        raise
    return JSONResponse(job.view(store.settings.ttl), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@router.get("/{job_id}", summary="A job's state and progress")
async def get_job(job_id: str, request: Request) -> dict[str, Any]:
    store = _store(request)
    return store.get(job_id, key_owner(request)).view(store.settings.ttl)


@router.get("/{job_id}/result", summary="The finished job's output file")
async def get_result(job_id: str, request: Request) -> Response:
    store = _store(request)
    job = store.get(job_id, key_owner(request))
    if job.state != "done" or job.result is None:
        if job.state == "failed" and job.error is not None:
            raise NotReady(f"the job failed: {job.error.worded('api')}")
        raise NotReady(f"the job is {job.state}; poll GET /api/v1/jobs/{job.id} until it is done")
    media, ext = MEDIA_TYPES[job.output]
    return store.result_response(job, media, f"video-{job.id}{ext}")


@router.delete("/{job_id}", summary="Cancel a job, or delete a finished job's result")
async def delete_job(job_id: str, request: Request) -> dict[str, str]:
    store = _store(request)
    job = store.get(job_id, key_owner(request))
    if job.state in ("queued", "running"):
        store.cancel(job)
        return {"id": job.id, "state": "cancelled"}
    store.drop(job)
    return {"id": job.id, "state": "deleted"}
