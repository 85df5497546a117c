"""Peak memory of one large still: what ONNX Runtime's arenas keep, with and without shrinking.

    .venv/bin/python -m bench.memory                      # 3000x2000 at ratio 1, 1 and 4 passes
    .venv/bin/python -m bench.memory --size 1920x1080

Each case runs in its own process (peak RSS is per process): two stills at the given ratio, then
``ru_maxrss``. "shrink" is the engine as shipped (runs with at least
``runtime.ARENA_SHRINK_PIXELS`` low-resolution pixels hand the arena's memory back); "keep" sets
that threshold out of reach, so the (shared) arena keeps its largest run's buffers. The presets'
own 640 px pass stays far below the threshold: this is about ``--ratio`` near 1 on big photos.
Writes ``bench/out/memory.json`` and ``bench/out/memory.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"

CASE = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {src!r})
from mattekit.core import engine, runtime
if {keep}:
    runtime.ARENA_SHRINK_PIXELS = 10 ** 15
rgb = np.random.default_rng(0).integers(0, 256, ({h}, {w}, 3), dtype=np.uint8)
e = engine.Engine()
t = time.perf_counter()
for _ in range(2):
    e.matte(rgb, {ratio}, passes={passes})
print(json.dumps({{"seconds": (time.perf_counter() - t) / 2,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def case(w: int, h: int, ratio: float, passes: int, keep: bool) -> dict:
    code = CASE.format(src=str(ROOT / "src"), keep=keep, h=h, w=w, ratio=ratio, passes=passes)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="3000x2000", help="WxH of the (synthetic) photo")
    ap.add_argument("--ratio", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    rows = []
    for passes in (1, 4):
        for keep in (True, False):
            r = {
                "size": f"{w}x{h}",
                "ratio": args.ratio,
                "passes": passes,
                "arena": "keep" if keep else "shrink (shipped)",
                **case(w, h, args.ratio, passes, keep),
            }
            rows.append(r)
            print(
                f"{r['size']} ratio {r['ratio']} passes {passes} arena {r['arena']}: "
                f"peak {r['peak_mb']:.0f} MB, {r['seconds']:.1f} s per still",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(rows, indent=2))
    md = ["| photo | ratio | passes | arena | peak RSS | s/still |", "|---|---:|---:|---|---:|---:|"]
    md += [
        f"| {r['size']} | {r['ratio']} | {r['passes']} | {r['arena']} | {r['peak_mb'] / 1024:.1f} GB | {r['seconds']:.1f} |"
        for r in rows
    ]
    (args.out / "memory.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
