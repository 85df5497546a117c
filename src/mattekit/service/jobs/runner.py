"""The work of a video job: check the upload at admission (:func:`prepare`), then run it
(:func:`run_job`) in a thread of the jobs' pool, recording the outcome on the job."""

from __future__ import annotations

import logging
import math
import os
import re
import time
from pathlib import Path

from ... import decode
from ...core.engine import Engine
from ...deadline import Deadline
from ...errors import Cancelled, DeadlineExceeded, InvalidInput, MattekitError, TooLarge
from ...options import BackgroundImage, Options
from ...video import Progress, VideoOptions, probe, process_video, resolve_output
from ...video.pipeline import NO_PERSON
from ..errors import NoSpace
from .store import BACKGROUND, UPLOAD, JobStore, VideoJob, disk_full, result_name

log = logging.getLogger("mattekit.service.jobs")
_FILE_WORDS = {UPLOAD: "the clip", BACKGROUND: "the background"}


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


def prepare(
    store: JobStore,
    job: VideoJob,
    source: Path,
    bg_path: Path | None,
    options: Options,
    output: str,
    times: dict[str, float],
    fit: str,
) -> tuple[Path, Options, VideoOptions]:
    """Check the uploaded clip is a video within the limits (in a thread: it decodes a frame)."""
    # Every frame is held to the limit while the job runs; the first one here, so a clip that is
    # too large from its start is refused at admission (422) instead of becoming a failed job.
    info = probe(source, max_pixels=options.max_pixels)
    bg_video = None
    if bg_path is not None:
        try:
            options = options.replace(
                background=BackgroundImage(decode.decode(bg_path, Options(max_pixels=options.max_pixels)), fit)  # type: ignore[arg-type]
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
    vopts = VideoOptions(
        output=output, background_video=bg_video, max_frames=cap, start=times.get("start", 0.0), end=times.get("end")
    )
    resolve_output(job.folder / result_name(output), options, vopts)
    return source, options, vopts


def run_job(store: JobStore, job: VideoJob, source: Path, options: Options, vopts: VideoOptions, engine: Engine) -> None:
    """The work of one job, in a jobs-pool thread. Outcomes are recorded on the job, not raised."""
    if store.cancel_requested(job):
        if job.stopped is not None:
            job.state, job.error, job.finished = "failed", job.stopped, time.time()
        elif job.state == "queued":  # cancelled by a DELETE that reached another process
            job.state, job.error, job.finished = "cancelled", Cancelled("the video was cancelled"), time.time()
        store.discard_files(job)
        store.save(job)
        store.notify(job)
        return
    job.state = "running"
    store.save(job)
    target = job.folder / result_name(job.output)

    def progress(p: Progress) -> None:
        job.done, job.total, job.fps = p.done, p.total, p.fps
        store.save(job, every=0.5)

    deadline = Deadline.after(store.settings.timeout, "this video", "send a shorter clip (start/end) or a faster preset")
    try:
        result = process_video(
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
        job.notice = NO_PERSON if result.empty else None
    except Cancelled as exc:
        job.state, job.error = ("failed", job.stopped) if job.stopped is not None else ("cancelled", exc)
        if isinstance(job.stopped, NoSpace):
            log.warning(
                "video job %s stopped: the jobs' files passed MATTEKIT_JOB_DISK_BYTES (%d)", job.id, store.settings.disk_bytes
            )
    except DeadlineExceeded as exc:
        log.warning("video job %s stopped at its deadline (%g s)", job.id, store.settings.timeout)
        job.state, job.error = "failed", exc
        if store.on_timeout is not None:
            store.on_timeout()
    except MattekitError as exc:
        job.state, job.error = "failed", without_paths(exc, store.root)
    except MemoryError:
        job.state, job.error = "failed", MattekitError("out of memory while processing this video")
    except Exception as exc:  # never a stack trace to the client; the log has it
        if disk_full(exc):
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
        store.notify(job)
