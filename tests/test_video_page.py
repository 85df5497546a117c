"""The web page's video part in Chromium against the real server: upload a real clip, follow
the progress bar, and play the transparent WebM over the checkerboard (read back from a canvas:
the picture really has see-through and opaque pixels)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import live_server
from samples import sample_path

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def base_url_live() -> Iterator[str]:
    with live_server({"MATTEKIT_THREADS": "2"}) as base:
        yield base


def test_video_upload_progress_and_transparent_playback(page: Any, base_url_live: Any) -> None:
    page.goto(base_url_live + "/")
    page.select_option("#preset", "fast")
    page.set_input_files("#video-input", str(sample_path("carphone")))
    page.wait_for_selector("#video-status:not([hidden])")
    seen = set()
    for _ in range(600):  # progress is shown while it runs
        seen.add(page.eval_on_selector("#video-progress", "p => p.value"))
        if page.is_visible("#video-result"):
            break
        page.wait_for_timeout(200)
    assert page.is_visible("#video-player")
    assert page.text_content("#video-text").startswith("Done: 120 frames")
    assert max(seen) > 0 or 100 in seen
    alpha = page.evaluate("""async () => {
        const v = document.querySelector('#video-player');
        v.pause();
        if (v.readyState < 2) await new Promise(r => v.addEventListener('loadeddata', r, { once: true }));
        v.currentTime = 1.0;
        await new Promise(r => v.addEventListener('seeked', r, { once: true }));
        const c = document.createElement('canvas');
        c.width = v.videoWidth; c.height = v.videoHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(v, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let clear = 0, solid = 0;
        for (let i = 3; i < d.length; i += 4) { if (d[i] < 16) clear++; else if (d[i] > 240) solid++; }
        return { w: c.width, h: c.height, clear: clear / (d.length / 4), solid: solid / (d.length / 4) };
    }""")
    assert (alpha["w"], alpha["h"]) == (176, 144)
    # Carphone: a man in a car; both the background and the person must be there.
    assert alpha["clear"] > 0.2 and alpha["solid"] > 0.1, alpha
    assert page.get_attribute("#video-download", "href").endswith("/result")


def _clip_bytes(tmp_path: Path, size: tuple[int, int], suffix: str) -> bytes:
    """A few plain frames (no model needed): what the page shows a finished job's result as."""
    import numpy as np

    from mattekit.video import write_frames

    w, h = size
    frames = [np.full((h, w, 3), 40 * i, np.uint8) for i in range(3)]
    if suffix == ".webm":
        path = write_frames(frames, tmp_path / f"r{suffix}", codec="libvpx-vp9", rate=5, fmt="webm", pix_fmt="yuv420p")
    else:
        path = write_frames(frames, tmp_path / f"r{suffix}", rate=5)
    return path.read_bytes()


@pytest.mark.parametrize("output, media, suffix", [("webm", "video/webm", ".webm"), ("composite", "video/mp4", ".mp4")])
def test_video_result_keeps_the_clips_name_and_fits_its_frame(
    page: Any, base_url_live: Any, tmp_path: Path, output: Any, media: Any, suffix: Any
) -> None:
    """Issue 28 item 7: the download is NAME-cutout.EXT (was video-<job id>.webm); the frame around
    the player is as wide as the picture (a 720p clip at 1920 px left a 160 px checkerboard strip),
    and only a result with see-through pixels has the checkerboard behind it. The job's answers
    are stubbed: this is the page's part, the job itself is tested above and in test_jobs.py."""
    body = _clip_bytes(tmp_path, (1280, 720), suffix)
    job = {
        "id": "j1",
        "state": "done",
        "output": output,
        "created": 0,
        "progress": {"frames_done": 3, "frames_total": 3, "fps": 5.0, "percent": 100.0},
        "result_url": "/api/v1/jobs/j1/result",
        "media_type": media,
        "filename": f"video-j1{suffix}",
    }
    page.route("**/api/v1/jobs", lambda route: route.fulfill(status=202, json={**job, "state": "queued"}))
    page.route("**/api/v1/jobs/j1", lambda route: route.fulfill(json=job))
    page.route("**/api/v1/jobs/j1/result", lambda route: route.fulfill(body=body, content_type=media))
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(base_url_live + "/")
    page.select_option("#video-output", output)
    clip = tmp_path / "Beach day.2.mp4"
    clip.write_bytes(b"stubbed: the server's answers are routed")
    page.set_input_files("#video-input", str(clip))
    page.wait_for_selector("#video-result:not([hidden])")
    assert page.get_attribute("#video-download", "download") == f"Beach day.2-cutout{suffix}"
    page.wait_for_function("document.querySelector('#video-player').readyState >= 1")
    box = page.evaluate("""() => {
        const v = document.querySelector('#video-player'), f = v.parentElement.getBoundingClientRect(), e = v.getBoundingClientRect();
        return { vw: v.videoWidth, vh: v.videoHeight, ew: e.width, eh: e.height, fw: f.width, fh: f.height,
                 checker: v.parentElement.classList.contains('checker') };
    }""")
    assert (box["vw"], box["vh"]) == (1280, 720)
    assert abs(box["fw"] - box["ew"]) <= 1 and abs(box["fh"] - box["eh"]) <= 1, box  # no strip beside it
    assert abs(box["ew"] / box["eh"] - 16 / 9) < 0.01, box  # nor inside it (letterboxing)
    assert box["checker"] == (output == "webm"), box
    with page.expect_download() as info:
        page.click("#video-download")
    assert info.value.suggested_filename == f"Beach day.2-cutout{suffix}"
