"""Camera mode in Chromium, per backend: time to the first frame, fps, and how far the page's
matte is from the server's engine on the same frames (docs/camera.md's figures).

    .venv/bin/python -m bench.camera            # ~3 min; needs /usr/bin/chromium and `make web`

Chromium's fake camera plays a still 640x360 Y4M of scikit-image's astronaut (the tests' sample,
no evaluation data). Each run is a fresh browser context (nothing cached but the HTTP files):

- ``wasm``: ``backend=wasm&pass=320`` (ratio 0.5), WebAssembly with threads.
- ``wasm adaptive``: ``backend=wasm``, the page's own pass-size adaptation (12 fps asked).
- ``webgpu``: ``backend=webgpu&pass=320`` in Chromium with ``--enable-unsafe-webgpu`` (a SwiftShader
  adapter here: a CPU pretending to be a GPU, so its speed says nothing about real GPUs).
- ``webgpu unfixed``: the same with ``pad=off&referee=off``: the model as it is, without
  onnx-pad.js's fix, its matte kept on screen so it can be measured (the bug the fix is for).

Time to first frame is the page's own (``data-first-frame-ms``: from Start to the first drawn
frame: model download, session creation, shader compilation, the first run); fps the page's
counter after the first frames; the matte's difference is mean and 99.9th percentile |Δα| (in
1/255) between the canvas's alpha of the last frame and the engine's ``step`` on the same RGB
(the camera's yuv420p decoded by PyAV) at the same ratio with the same number of passes (RVM's
state settled on the still picture, as the page's is). Writes ``bench/out/camera.json``.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from tests.live_server import live_server
from tests.samples import sample_path

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / "bench" / "out"
SIZE = (640, 360)
PASS = 320
SECONDS = 12  # after the first frame, per WebAssembly run
WEBGPU_SECONDS = 60  # SwiftShader: ~10-35 s a frame
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
RUNS: list[tuple[str, str, list[str]]] = [
    ("wasm", f"backend=wasm&pass={PASS}", []),
    ("wasm adaptive", "backend=wasm", []),
    ("webgpu", f"backend=webgpu&pass={PASS}", ["--enable-unsafe-webgpu"]),
    ("webgpu unfixed", f"backend=webgpu&pass={PASS}&pad=off&referee=off", ["--enable-unsafe-webgpu"]),
]
# After each drawn frame: its alpha, and which backend drew it.
COLLECT = """() => { window.frames_ = []; const v = document.querySelector('#camera-view');
    v.addEventListener('camera-frame', (e) => { const d = v.getContext('2d').getImageData(0, 0, v.width, v.height).data;
        const a = new Uint8Array(d.length / 4); for (let i = 0; i < a.length; i++) a[i] = d[4 * i + 3];
        let s = ''; for (let i = 0; i < a.length; i += 8192) s += String.fromCharCode.apply(null, a.subarray(i, i + 8192));
        window.frames_.push({ ms: e.detail.ms, ratio: e.detail.ratio, pass: e.detail.pass, backend: e.detail.backend,
            w: v.width, h: v.height, alpha: btoa(s) }); }); }"""


def still_camera(dst: Path) -> tuple[Path, np.ndarray]:
    """The Y4M, and the RGB the engine sees for it (the same yuv420p planes, decoded by PyAV)."""
    import av
    from PIL import Image

    with Image.open(sample_path("astronaut")) as img:
        rgb = np.asarray(img.convert("RGB").crop((0, 0, 512, 288)).resize(SIZE))
    yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
    header = f"YUV4MPEG2 W{SIZE[0]} H{SIZE[1]} F30:1 Ip A1:1 C420jpeg\n".encode()
    dst.write_bytes(header + (b"FRAME\n" + yuv.tobytes()) * 3)
    return dst, av.VideoFrame.from_ndarray(yuv, format="yuv420p").to_ndarray(format="rgb24")


def versus_engine(engine: Any, rgb: np.ndarray, frame: dict[str, Any], passes: int) -> dict[str, float]:
    """Mean and p99.9 |Δα| (1/255) of a drawn frame against the engine on the same RGB."""
    shown = np.frombuffer(base64.b64decode(frame["alpha"]), np.uint8).reshape(frame["h"], frame["w"])
    matte, _ = engine.step(rgb, float(frame["ratio"]), passes=passes)
    diff = np.abs(shown.astype(np.float32) - np.asarray(matte.alpha, np.float32) * 255.0)
    return {"mean_255": round(float(diff.mean()), 3), "p999_255": round(float(np.percentile(diff, 99.9)), 1)}


def run(p: Any, base: str, y4m: Path, name: str, query: str, flags: list[str], engine: Any, rgb: np.ndarray) -> dict[str, Any]:
    browser = p.chromium.launch(
        executable_path="/usr/bin/chromium", args=[*FAKE_CAMERA, f"--use-file-for-fake-video-capture={y4m}", *flags]
    )
    try:
        page = browser.new_context().new_page()
        page.goto(f"{base}/?camera=1&{query}")
        page.evaluate(COLLECT)
        page.wait_for_function("() => window.frames_.length >= 1", timeout=300_000)
        seconds = WEBGPU_SECONDS if "backend=webgpu" in query else SECONDS
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and page.evaluate("window.frames_.length") < 400:
            time.sleep(1)
        view = page.evaluate("() => ({ ...document.querySelector('#camera-view').dataset })")
        frames = page.evaluate("() => window.frames_")
        row: dict[str, Any] = {
            "run": name,
            "backend": page.text_content("#camera-backend"),
            "drew": frames[-1]["backend"],
            "first_frame_s": round(int(view["firstFrameMs"]) / 1000, 1),
            "frames": len(frames),
            "fps": float(page.get_attribute("#camera-fps", "data-fps") or 0),
            "ms_per_frame": round(float(np.median([f["ms"] for f in frames[1:] or frames])), 1),
            "size": f"{frames[-1]['w']}x{frames[-1]['h']}",
            "pass": frames[-1]["pass"],
            "why": page.text_content("#camera-why") or "",
        }
        if "webgpuFirstFrameMs" in view:
            row["webgpu_first_frame_s"] = round(int(view["webgpuFirstFrameMs"]) / 1000, 1)
        if "webgpuVsWasm" in view:
            row["webgpu_vs_wasm_first_frame_255"] = float(view["webgpuVsWasm"])
        # frames drawn since the last pass-size change: the engine runs that many passes
        settled = [f for f in frames if f["pass"] == frames[-1]["pass"] and f["backend"] == frames[-1]["backend"]]
        row["vs_engine"] = versus_engine(engine, rgb, frames[-1], len(settled))
        return row
    finally:
        browser.close()


def main() -> None:
    from playwright.sync_api import sync_playwright

    from mattekit.core.engine import get_engine

    engine = get_engine().load()
    OUT.mkdir(parents=True, exist_ok=True)
    y4m, rgb = still_camera(OUT / "camera-astronaut.y4m")
    rows = []
    with live_server() as base, sync_playwright() as p:
        for name, query, flags in RUNS:
            row = run(p, base, y4m, name, query, flags, engine, rgb)
            rows.append(row)
            print(json.dumps(row), flush=True)
        version = p.chromium.launch(executable_path="/usr/bin/chromium")
        chromium = version.version
        version.close()
    meta = {
        "chromium": chromium,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    (OUT / "camera.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
