"""Video bench: temporal stability (recurrent vs per-frame) and end-to-end fps per output type.

    .venv/bin/python -m bench.video                      # everything (a few minutes on 2 cores)
    .venv/bin/python -m bench.video --part stability --frames 40
    .venv/bin/python -m bench.video --part speed --frames 24 --sizes 720

Stability, on the evaluation clips (``$MATTEKIT_EVAL_DIR/video``, default ``../shared/eval``):
the same engine either carries RVM's recurrent state from frame to frame ("recurrent", what
``mattekit video`` does) or starts from an empty state every frame ("per-frame", what an image
model does). Scores: mean absolute frame-to-frame alpha change (``flicker``, in 1/255; lower is
steadier, though real motion also counts) on every clip, and dtSSD against the ground-truth alpha
on ``comp_D`` (``mattekit.metrics.dtssd``; lower is better), plus SAD-per-frame there.

Speed: ``process_video`` end to end (decode → matte → compose → encode → mux) on a real clip
(``openpose_street.mp4``, 1280x720; upscaled to 1920x1080 into a temporary file for 1080p), for
each output type, in frames per second of wall time; then, for 720p transparent WebM and 1080p
composite MP4, the same at ``--ratio 0.25`` (RVM's own speed setting, its README's choice for
1080p), to show what trading detail for speed buys. Writes ``bench/out/video.json`` and
``bench/out/video.md`` (the README table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mattekit import metrics
from mattekit.core.engine import get_engine
from mattekit.options import Options, parse_background
from mattekit.video import VideoOptions, alpha_sequence, flicker, process_video, read_frames, write_frames

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
EVAL = Path(os.environ.get("MATTEKIT_EVAL_DIR") or ROOT.parent / "shared" / "eval")

SPEED_OUTPUTS: list[tuple[str, str, Callable[[], Options]]] = [  # (label, file name, options)
    ("transparent WebM (VP9 alpha)", "out.webm", lambda: Options(preset="fast")),
    ("transparent MOV (ProRes 4444)", "out.mov", lambda: Options(preset="fast")),
    ("PNG frames (ZIP)", "out.zip", lambda: Options(preset="fast")),
    ("alpha matte MP4", "matte.mp4", lambda: Options(preset="fast", mask=True)),
    ("composite MP4 on colour", "colour.mp4", lambda: Options(preset="fast", background=parse_background("white"))),
    ("composite MP4 on blur", "blur.mp4", lambda: Options(preset="fast", background=parse_background("blur"))),
]

# (height, label, file name, options): the speed trade, at RVM's own 1080p ratio instead of the
# preset's measured low-resolution size (640 px: ratio 0.5 at 720p, 0.33 at 1080p).
FAST_RATIO = 0.25
RATIO_OUTPUTS: list[tuple[int, str, str, Callable[[], Options]]] = [
    (720, "transparent WebM (VP9 alpha)", "out_r.webm", lambda: Options(preset="fast", ratio=FAST_RATIO)),
    (
        1080,
        "composite MP4 on colour",
        "colour_r.mp4",
        lambda: Options(preset="fast", ratio=FAST_RATIO, background=parse_background("white")),
    ),
]


def stability(frames_cap: int) -> list[dict[str, Any]]:
    rows = []
    clips = [("carphone.mp4", None), ("openpose_street.mp4", None), ("comp_D.mp4", "comp_D_alpha")]
    for name, gt_dir in clips:
        path = EVAL / "video" / name
        if not path.is_file():
            print(f"skip {name}: not found under {EVAL}", file=sys.stderr)
            continue
        frames = list(read_frames(path, limit=frames_cap))
        row = {"clip": name, "frames": len(frames), "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}"}
        gt = None
        if gt_dir:
            gt = [np.asarray(Image.open(EVAL / "video" / gt_dir / f"{i:06d}.png")) / 255.0 for i in range(len(frames))]
        for mode in ("recurrent", "per-frame"):
            t = time.perf_counter()
            seq = alpha_sequence(frames, recurrent=mode == "recurrent")
            row[f"{mode}_s_per_frame"] = (time.perf_counter() - t) / len(frames)
            row[f"{mode}_flicker"] = flicker(seq)
            if gt is not None:
                row[f"{mode}_dtssd"] = metrics.dtssd(seq, gt)
                row[f"{mode}_sad"] = float(np.mean([metrics.sad(p, g) for p, g in zip(seq, gt)]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _upscaled(src: Path, frames_cap: int, size: tuple[int, int], tmp: Path) -> Path:
    """A 1080p copy of a real 720p clip (high-quality x264) for the 1080p speed runs."""
    import av
    import cv2

    with av.open(str(src)) as vin:
        rate = vin.streams.video[0].average_rate
    big = (cv2.resize(f[:, :, :3], size, interpolation=cv2.INTER_CUBIC) for f in read_frames(src, limit=frames_cap))
    return write_frames(big, tmp / f"upscaled_{size[1]}p.mp4", rate=rate, options={"preset": "ultrafast", "crf": "14"})


def _street_clip(part: str) -> Path | None:
    """The speed runs' real clip (1280x720), or None (said on stderr) where the eval set is absent."""
    src = EVAL / "video" / "openpose_street.mp4"
    if not src.is_file():
        print(f"skip {part}: {src} not found", file=sys.stderr)
        return None
    return src


def speed(frames_cap: int, sizes: list[int]) -> list[dict[str, Any]]:
    src = _street_clip("speed")
    if src is None:
        return []
    rows = []
    with tempfile.TemporaryDirectory(prefix="mattekit-bench-video-") as tmpname:
        tmp = Path(tmpname)
        get_engine().load()
        process_video(src, tmp / "warm.webm", Options(preset="fast"), VideoOptions(max_frames=3))
        for height in sizes:
            clip = src if height == 720 else _upscaled(src, frames_cap, (height * 16 // 9, height), tmp)
            runs = [(label, name, make) for label, name, make in SPEED_OUTPUTS]
            runs += [(label, name, make) for h, label, name, make in RATIO_OUTPUTS if h == height]
            for label, name, make in runs:
                options = make()
                result = process_video(clip, tmp / name, options, VideoOptions(max_frames=frames_cap))
                row = {
                    "size": f"{result.width}x{result.height}",
                    "output": label,
                    "frames": result.frames,
                    "ratio": options.ratio,
                    "fps": result.frames / result.seconds,
                    "matte_s_per_frame": result.timings["matte"] / result.frames,
                    "compose_encode_s_per_frame": result.timings["write"] / result.frames,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def markdown(stab: list[dict[str, Any]], fps: list[dict[str, Any]]) -> str:
    lines = []
    if stab:
        lines += [
            "| clip | frames | flicker recurrent | flicker per-frame | dtSSD recurrent | dtSSD per-frame | SAD recurrent | SAD per-frame |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in stab:

            def g(k: str, r: dict[str, Any] = r) -> str:
                return f"{r[k]:.2f}" if k in r else "–"

            lines.append(
                f"| {r['clip']} ({r['size']}) | {r['frames']} | {g('recurrent_flicker')} | {g('per-frame_flicker')} | "
                f"{g('recurrent_dtssd')} | {g('per-frame_dtssd')} | {g('recurrent_sad')} | {g('per-frame_sad')} |"
            )
        lines.append("")
    if fps:
        lines += [
            "| size | output | ratio | fps end to end | matte s/frame | compose+encode s/frame |",
            "|---|---|---|---:|---:|---:|",
        ]
        for r in fps:
            ratio = r.get("ratio", "auto")
            ratio = "preset (640 px)" if ratio == "auto" else f"{ratio:g}"
            lines.append(
                f"| {r['size']} | {r['output']} | {ratio} | {r['fps']:.2f} | {r['matte_s_per_frame']:.3f} | "
                f"{r['compose_encode_s_per_frame']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "stability", "speed"), default="all")
    ap.add_argument("--frames", type=int, default=60, help="frames per clip for stability")
    ap.add_argument("--speed-frames", type=int, default=30, help="frames per speed run")
    ap.add_argument("--sizes", default="720,1080", help="heights for the speed runs")
    args = ap.parse_args()
    stab = stability(args.frames) if args.part in ("all", "stability") else []
    fps = speed(args.speed_frames, [int(s) for s in args.sizes.split(",")]) if args.part in ("all", "speed") else []
    OUT.mkdir(parents=True, exist_ok=True)
    previous = json.loads((OUT / "video.json").read_text()) if (OUT / "video.json").is_file() else {}
    stab = stab or previous.get("stability", [])  # a run of one part keeps the other's last results
    fps = fps or previous.get("speed", [])
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "threads": os.environ.get("MATTEKIT_THREADS", "all"),
    }
    (OUT / "video.json").write_text(json.dumps({"meta": meta, "stability": stab, "speed": fps}, indent=2))
    md = markdown(stab, fps)
    (OUT / "video.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
