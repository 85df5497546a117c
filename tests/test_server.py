"""The real server (``uvicorn app:app`` as a subprocess): many users at once, and a full queue.

The original demo wrote every result to one shared file, so two users at once got each other's
pictures. Here 16 different photos go in at the same time and each answer must be the cut-out
of its own photo: same size, and exactly its own pixels wherever the cut-out is opaque.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import numpy as np
from live_server import live_server
from PIL import Image, ImageOps

from mattekit import decode
from mattekit.options import Options

FIELDS = {"preset": "fast", "max_size": "320"}
CONCURRENT = 16


def sixteen_photos(sample_paths: list[Path]) -> list[tuple[str, bytes]]:
    """Real, pairwise different photos: the eval set's people when present, plus the samples,
    plus mirrored / cropped variants of the samples when those are not enough."""
    from conftest import EVAL_DIR

    photos = [(p.name, p.read_bytes()) for p in sorted((EVAL_DIR / "people" / "image").glob("*.jpg"))]
    photos += [(p.name, p.read_bytes()) for p in sample_paths]
    variants = []
    for p in sample_paths:
        img = Image.open(p)
        for name, v in (
            ("mirror", ImageOps.mirror(img)),
            ("crop", img.crop((0, 0, 448, 480))),
            ("flip", ImageOps.flip(img)),
            ("mcrop", ImageOps.mirror(img).crop((32, 16, 512, 512))),
            ("rot90", img.transpose(Image.Transpose.ROTATE_90)),
            ("crop2", img.crop((64, 32, 512, 512))),
            ("mrot270", ImageOps.mirror(img).transpose(Image.Transpose.ROTATE_270)),
        ):
            buf = io.BytesIO()
            v.save(buf, "PNG")
            variants.append((f"{p.stem}-{name}.png", buf.getvalue()))
    photos += variants
    return photos[:CONCURRENT]


async def post_all(base: str, photos: list[tuple[str, bytes]], fields: dict) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        return await asyncio.gather(
            *(client.post("/api/v1/remove", data=fields, files={"file": ("upload", data)}) for _, data in photos)
        )


def test_concurrent_requests_each_get_their_own_cutout(sample_photo, sample_grey_photo):
    photos = sixteen_photos([sample_photo, sample_grey_photo])
    assert len(photos) == CONCURRENT and len({d for _, d in photos}) == CONCURRENT
    with live_server({"MATTEKIT_QUEUE_SIZE": str(CONCURRENT)}) as base:
        responses = asyncio.run(post_all(base, photos, FIELDS))
    for (name, data), r in zip(photos, responses):
        assert r.status_code == 200, (name, r.text)
        out = np.asarray(Image.open(io.BytesIO(r.content)))
        mine = decode.decode(data, Options(max_size=int(FIELDS["max_size"]))).rgb
        assert out.shape[:2] == mine.shape[:2], name
        opaque = out[:, :, 3] == 255
        assert opaque.sum() > 500, f"{name}: almost nothing kept"
        # Opaque pixels are the photo's own (edge decontamination may move a nearly-opaque one
        # by a few levels): another request's picture cannot pass this.
        diff = np.abs(out[:, :, :3][opaque].astype(int) - mine[opaque])
        assert diff.mean() < 0.5 and (diff > 8).mean() < 0.001, (name, diff.mean())


def test_full_queue_answers_503_with_retry_after_then_recovers(sample_photo):
    photo = sample_photo.read_bytes()
    env = {"MATTEKIT_WORKERS": "1", "MATTEKIT_QUEUE_SIZE": "1"}
    with live_server(env) as base:
        burst = asyncio.run(post_all(base, [("p", photo)] * 6, {"preset": "balanced"}))
        codes = [r.status_code for r in burst]
        assert codes.count(200) >= 2 and codes.count(503) >= 1, codes
        for r in burst:
            if r.status_code == 503:
                assert r.json()["error"]["code"] == "busy"
                assert 1 <= int(r.headers["retry-after"]) <= 60
        again = httpx.post(f"{base}/api/v1/remove", data=FIELDS, files={"file": ("p", photo)}, timeout=120)
        assert again.status_code == 200
        metrics = httpx.get(f"{base}/metrics").text
        rejected = [line for line in metrics.splitlines() if line.startswith("mattekit_rejected_busy_total")]
        assert rejected and float(rejected[0].split()[-1]) >= codes.count(503)
        assert httpx.get(f"{base}/healthz").status_code == 200


def test_mattekit_serve_starts_the_same_app(sample_photo):
    command = ["mattekit", "serve", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1", "--queue-size", "0"]
    with live_server(command=command) as base:
        limits = httpx.get(f"{base}/api/v1/limits").json()
        assert limits["workers"] == 1 and limits["queue_size"] == 0
        r = httpx.post(f"{base}/api/v1/remove", data=FIELDS, files={"file": ("p", sample_photo.read_bytes())}, timeout=120)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert "<title>mattekit" in httpx.get(f"{base}/").text
