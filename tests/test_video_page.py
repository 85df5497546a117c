"""The web page's video part in Chromium against the real server: upload a real clip, follow
the progress bar, and play the transparent WebM over the checkerboard (read back from a canvas:
the picture really has see-through and opaque pixels)."""

from __future__ import annotations

import pytest

from live_server import live_server
from samples import sample_path

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def base_url_live():
    with live_server({"MATTEKIT_THREADS": "2"}) as base:
        yield base


def test_video_upload_progress_and_transparent_playback(page, base_url_live):
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
