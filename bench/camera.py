"""Camera-mode speed in Chromium: ms a frame and fps at each input size, and where the adaptive
default settles (the README's Camera figures).

    .venv/bin/python bench/camera.py            # ~1 min; needs /usr/bin/chromium and `make web`

Chromium's fake camera plays a 1280x720 30 fps Y4M of scikit-image's astronaut (the tests'
sample, no evaluation data); the page is pinned to each size (``size=N``), then left to adapt
(its default target, 12 fps). Per-frame time is the page's own (prepare the tensor, run RVM,
compose), fps the page's counter (wall time, so it includes waiting for the camera's next frame).
Writes ``bench/out/camera.json``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from live_server import live_server  # noqa: E402
from samples import sample_path  # noqa: E402

OUT = ROOT / "bench" / "out"
SIZES = [320, 640, 1280, 0]  # 0: not pinned (adaptive)
SECONDS = 12


def y4m(dst: Path) -> Path:
    import av
    from PIL import Image

    with Image.open(sample_path("astronaut")) as img:
        rgb = np.asarray(img.convert("RGB").crop((0, 0, 512, 288)).resize((1280, 720)))
    yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray().tobytes()
    dst.write_bytes(b"YUV4MPEG2 W1280 H720 F30:1 Ip A1:1 C420jpeg\n" + (b"FRAME\n" + yuv) * 3)
    return dst


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    clip = y4m(OUT / "camera-astronaut.y4m")
    rows = []
    with live_server() as base, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={clip}",
            ],
        )
        warm = browser.new_page()  # the first page compiles the runtime and the model: not timed
        warm.goto(f"{base}/?camera=1&size=320")
        time.sleep(5)
        warm.close()
        for size in SIZES:
            page = browser.new_page()
            page.goto(f"{base}/?camera=1" + (f"&size={size}" if size else ""))
            page.evaluate("""() => { window.ms = []; document.querySelector('#camera-view')
                .addEventListener('camera-frame', e => window.ms.push([e.detail.ms, e.detail.w, e.detail.h, e.detail.ratio])); }""")
            time.sleep(SECONDS)
            ms = page.evaluate("() => window.ms")
            settled = [m for m in ms[3:] if m[1:] == ms[-1][1:]]
            row = {
                "pinned": size or "adaptive",
                "size": f"{ms[-1][1]}x{ms[-1][2]}",
                "ratio": ms[-1][3],
                "frames": len(ms),
                "ms_per_frame": float(np.median([m[0] for m in settled])),
                "fps": float(page.get_attribute("#camera-fps", "data-fps") or 0),
                "backend": page.text_content("#camera-backend"),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            page.close()
        meta = {
            "chromium": browser.version,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        }
        browser.close()
    (OUT / "camera.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
